/* visiond's engine: the public C API.
 *
 * Load an ONNX CNN, ask it for its inputs and outputs, run batches of any
 * size up to the maximum given at load, free it. The engine picks a backend
 * at load time (device "auto" prefers a CUDA GPU and falls back to the CPU).
 * Errors come back as an engine_status plus a message in engine_error; the
 * engine never prints and never exits.
 *
 * An engine runs one batch at a time; engine_run serialises callers.
 */
#ifndef VISIOND_ENGINE_H
#define VISIOND_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct engine engine;

typedef struct {
    const char *device;    /* "auto" (or NULL), "cpu", "cuda", "cuda:N" */
    int max_batch;         /* largest batch engine_run accepts; 0 means 1 */
    int threads;           /* CPU threads; 0 means every core */
    /* Convolution algorithm selection, the same policy on every backend
     * (algo_select.h): NULL or "auto" (the cached choice, else timing on a
     * GPU and the CPU's ranking rule), "heuristic" (the backend's ranking,
     * nothing timed), "exhaustive" (time every algorithm per layer and
     * batch size, remembered in algo_cache), or one algorithm's name to
     * force wherever it applies. */
    const char *conv_algo;
    const char *algo_cache;  /* file keeping measured choices across restarts; NULL: none */
    size_t workspace_limit;  /* bytes one convolution may use; 0: the backend's default */
    /* Testing aid: every Nth run fails as a device fault would (0: never),
     * exercising the CPU fallback on machines without a GPU. */
    int inject_faults;
    /* The status an injected fault has: 0 means ENGINE_E_BACKEND (a device
     * fault, which the CPU fallback answers); any other reaches the caller,
     * so a test can follow an error's kind to the client. */
    engine_status inject_status;
    /* A device fault fails the batch with the device's own error instead
     * of re-running it on the CPU: what `run`, `bench` and the tests want
     * when they name a device (a GPU result, or an error), not what a
     * daemon that must keep answering wants. */
    bool strict_device;
    /* When set and true, loading and preparing stop at their next step with
     * ENGINE_E_ARG ("cancelled"): a daemon told to stop while loading. It
     * must outlive the engine. */
    const atomic_bool *cancel;
} engine_options;

typedef struct {
    const char *name;
    dtype_t dtype;
    int rank;
    int64_t dims[ENGINE_MAX_RANK]; /* input info: -1 at axis 0 when it is the batch */
} engine_tensor_info;

typedef struct {
    const char *name;   /* the ONNX node name */
    const char *op;     /* operator, with any fused epilogue: "Conv+Relu" */
    char op_buf[48];
    shape_t output;     /* shape of its first output */
    int64_t flops;
} engine_layer_summary;

typedef struct {
    int64_t parameters;          /* float weights in the file */
    int64_t flops;               /* per batch, multiply-add counted as 2 */
    size_t peak_activation_bytes;/* the activation arena for this batch */
    int layers;                  /* steps that run */
    int nodes_in_file;
    int opset;
} engine_model_summary;

/* What a started engine holds in memory, in bytes (a snapshot taken when
 * a batch size was last prepared; never waits for a running batch). */
typedef struct {
    size_t weights;         /* the model's float weights, as loaded from the file */
    size_t backend_weights; /* the backends' own copies: packed or transformed
                             * for the CPU kernels, on the device for a GPU */
    size_t arena;           /* activation arenas: the largest batch prepared */
    size_t workspace;       /* convolution workspaces */
    size_t resident;        /* all of the above */
} engine_memory_info;
void engine_memory(engine *e, engine_memory_info *m);

engine_status engine_load(const char *path, const engine_options *opt, engine **out,
                          engine_error *err);
/* engine_load in two steps, for a caller that adds an image input between
 * them: open imports and optimises the graph (engine_input_info works),
 * start puts it on a backend. engine_free frees an engine in either state. */
engine_status engine_open(const char *path, const engine_options *opt, engine **out,
                          engine_error *err);
engine_status engine_start(engine *e, engine_error *err);

/* Between open and start: images enter the model as bytes (batch x height
 * x width x channels), normalised as `norm` says by a node of the graph
 * that every backend runs (engine_run_images); the model's float input
 * still takes tensors (engine_run). The model must have one N x C x H x W
 * input matching norm's size and channels. */
struct preproc_params;
engine_status engine_set_image_input(engine *e, const struct preproc_params *norm,
                                     engine_error *err);
/* The same from an ONNX file's bytes in memory; `label` names it in errors. */
engine_status engine_load_buffer(const void *data, size_t size, const char *label,
                                 const engine_options *opt, engine **out, engine_error *err);
void engine_free(engine *e);

int engine_input_count(const engine *e);
int engine_output_count(const engine *e);
engine_status engine_input_info(const engine *e, int i, engine_tensor_info *info);
/* The output's concrete shape when run at `batch`. */
engine_status engine_output_info(engine *e, int i, int batch, engine_tensor_info *info,
                                 engine_error *err);

/* Whether axis 0 of the inputs is a free batch dimension; when it is not,
 * the model only runs at engine_max_batch(). */
bool engine_batch_is_dynamic(const engine *e);
int engine_max_batch(const engine *e);

/* Plans and prepares `batch` now rather than at its first run. */
engine_status engine_prepare(engine *e, int batch, engine_error *err);

/* inputs[i]: float32 data for input i at `batch`; outputs[i]: room for output
 * i (engine_output_info), float32 or int64 by its dtype. */
engine_status engine_run(engine *e, int batch, const float *const *inputs, void *const *outputs,
                         engine_error *err);
/* As engine_run, also writing each layer's milliseconds to layer_ms
 * (engine_layer_count entries). */
engine_status engine_run_profiled(engine *e, int batch, const float *const *inputs,
                                  void *const *outputs, double *layer_ms, engine_error *err);

int engine_layer_count(engine *e);
engine_status engine_layer_info(engine *e, int batch, int i, engine_layer_summary *info,
                                engine_error *err);
engine_status engine_model_info(engine *e, int batch, engine_model_summary *info, engine_error *err);

/* One algorithm a layer could use, as the backend saw it at prepare. */
typedef struct {
    char name[40];
    double ms;          /* measured time; < 0 when not timed */
    size_t workspace;   /* bytes */
    char status[64];    /* "ok", "not supported", "workspace over the limit", ... */
} engine_algo_candidate;

typedef struct {
    int n;
    engine_algo_candidate cand[16];
    int chosen;         /* index into cand; -1 when none */
    char mode[24];      /* "exhaustive", "heuristic", "forced", "cached", "rule" */
} engine_algo_report;

/* The algorithm choice of layer `layer` at `batch`; ENGINE_E_ARG (without a
 * message) when that layer has no choice to report. */
engine_status engine_layer_algos(engine *e, int batch, int layer, engine_algo_report *out,
                                 engine_error *err);

/* images: `batch` images of engine_image_bytes() each, as
 * engine_set_image_input described them. */
engine_status engine_run_images(engine *e, int batch, const uint8_t *images, void *const *outputs,
                                engine_error *err);
/* Bytes of one image at the image input; 0 when there is none. */
size_t engine_image_bytes(const engine *e);

/* Host memory the engine's backend reads inputs from without a copy
 * (pinned on a GPU): the batcher gathers batches into it. Ordinary memory
 * where the backend has no such kind. Free with engine_host_free. */
void *engine_host_alloc(engine *e, size_t bytes);
void engine_host_free(engine *e, void *p);
/* Inputs the backend copied on the host before using them, since load. */
long engine_input_copies(const engine *e);

/* Batches that failed on the primary backend and ran on the CPU instead. */
long engine_fallback_count(const engine *e);
/* The same count, and the device's error for the latest of them ("" when
 * none), read together. */
long engine_fallback_info(engine *e, char *why, size_t n);

const char *engine_backend_name(const engine *e);
/* e.g. "cpu: OpenBLAS 0.3.21, SkylakeX kernel, 2 threads" */
const char *engine_backend_description(const engine *e);
/* Why the backend is not the one asked for, or NULL ("no CUDA device: using the CPU"). */
const char *engine_backend_note(const engine *e);

/* The operators a model's steps use at `batch` (fused epilogues count under
 * the operator they are fused into), in order of first use, each with how
 * many steps use it and the backend that runs them. */
typedef struct {
    const char *op;
    int steps;
    int64_t flops;
    const char *backend;
} engine_op_usage;
/* Fills up to max entries; returns how many there are, or -1 (err set). */
int engine_operator_usage(engine *e, int batch, engine_op_usage *out, int max, engine_error *err);

/* --- the backends this binary has (process-wide; engine_backends.c) --- */

/* Settings backends need in the environment before their libraries load
 * (the OpenBLAS kernel): sets them and returns true when the program must
 * re-execute itself, once, for them to apply; `why` says what and why. */
bool engine_startup_environment(char *why, size_t n);
/* One line per backend for start-up logs, for i from 0 until it returns
 * NULL: "cpu: OpenBLAS 0.3.21, SkylakeX kernel (...)", "cuda: 1 device",
 * "cuda: not used: <why>". */
const char *engine_backend_line(int i, char *buf, size_t n);
/* Median GFLOP/s of an n x n x n single-precision GEMM in backend `name`'s
 * library on `threads` threads; `desc` says which library. < 0 when that
 * backend has no such measure or it failed. */
double engine_gemm_gflops(const char *name, int n, int threads, int reps, char *desc,
                          size_t desc_len);

#endif
