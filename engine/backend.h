/* The backend seam: how the engine hands a planned graph to a device.
 *
 * A backend is a table of functions plus an opaque context, in the manner of
 * ggml's backend interface: the graph and its plans do not know where they
 * run, and a backend never sees ONNX or the server. The engine calls, in
 * order: create, load_weights (once per graph: upload or repack constants),
 * prepare (once per planned batch size: pick algorithms, size workspaces,
 * reserve the arena; nothing is allocated later on the request path), then
 * run any number of times, one at a time per context.
 *
 * Backends are found through a registry (backend_registry.c), never by
 * symbol: the ones built into the binary are listed at build time
 * (build/gen/backend_list.c), the others are shared modules
 * (libvisiond_<name>.so, such as the CUDA backend) loaded with dlopen when
 * present, so one binary runs with or without a GPU's libraries.
 */
#ifndef VISIOND_BACKEND_H
#define VISIOND_BACKEND_H

#include "algo_select.h"
#include "engine.h"
#include "graph.h"
#include "plan.h"
#include "tensor_ops.h"

typedef struct {
    int device_index;       /* cuda:N */
    int threads;            /* CPU threads; 0 = every core */
    /* how convolution algorithms are chosen, and where choices are kept
     * (NULL: nowhere); backends call algo_select with them (algo_select.h) */
    algo_policy policy;
    algo_cache *cache;
    size_t workspace_limit; /* bytes one convolution may use; 0: the backend's default */
} backend_config;

/* Memory a backend context holds for its model, in bytes: its own copies of
 * the weights (packed or transformed on the CPU, on the device for a GPU),
 * the activation arena, and convolution workspaces. */
typedef struct {
    size_t weights, arena, workspace;
} backend_memory;

enum {
    BACKEND_CAP_GPU = 1u << 0,
    /* runs on host memory and is always there: the fallback for batches a
     * device fails */
    BACKEND_CAP_HOST = 1u << 3,
    BACKEND_CAP_INTEGRATED = 1u << 1, /* shares memory with the host (Jetson) */
    /* every convolution copes with its output in its residual's buffer
     * (plan.h, PLAN_RESIDUAL_IN_PLACE) */
    BACKEND_CAP_RESIDUAL_IN_PLACE = 1u << 2,
    /* it writes a convolution's output into its slice of a channel Concat
     * when the plan marks it (plan.h, PLAN_CONCAT_IN_PLACE) */
    BACKEND_CAP_CONCAT_IN_PLACE = 1u << 4,
};

typedef struct backend_ops {
    const char *name;     /* what --device names it by: "cpu", "cuda" */
    int priority;         /* device "auto" takes the highest that has a device */
    unsigned kind;        /* BACKEND_CAP_GPU / BACKEND_CAP_HOST, known before create */
    /* Usable devices; 0 with `why` filled when there are none. */
    int (*device_count)(char *why, size_t n);
    /* Optional, process-wide, called before any engine exists: settings its
     * libraries read only when they load (the OpenBLAS kernel). Sets them in
     * the environment and returns true when the program must re-execute
     * itself for them to apply; `why` says what and why. */
    bool (*startup_environment)(char *why, size_t n);
    /* Optional: one line about the host library it runs on, for start-up
     * logs ("OpenBLAS 0.3.21, SkylakeX kernel (...)"). */
    const char *(*library_description)(char *buf, size_t n);
    /* The convolution algorithms a policy may force, NULL-terminated. */
    const char *const *conv_algorithms;
    /* Optional: median GFLOP/s of an n x n x n single-precision GEMM on
     * `threads` threads (0: the backend's default); < 0 on failure. */
    double (*gemm_gflops)(int n, int threads, int reps);
    engine_status (*create)(const backend_config *cfg, void **ctx, engine_error *err);
    void (*destroy)(void *ctx);
    /* one line for logs and `visiond info`: library, kernel, threads, device */
    const char *(*describe)(void *ctx);
    unsigned (*capabilities)(void *ctx);
    /* Optional: host memory it reads inputs from without staging them
     * (pinned on a GPU), for the batcher to gather batches into; NULL:
     * ordinary memory. */
    void *(*host_alloc)(void *ctx, size_t bytes);
    void (*host_free)(void *ctx, void *p);
    /* Optional: how many inputs it has copied on the host before using
     * them (staging what was not in its host memory). */
    long (*input_copies)(void *ctx);
    /* Optional: whether it can run step `step` of plan p (operator and
     * attributes as planned), with `why` filled when not. NULL: every step.
     * The engine asks before load_weights, and places a model where every
     * step can run. */
    bool (*supports_step)(void *ctx, const plan *p, int step, char *why, size_t n);
    /* Optional: bytes the arena must hold for value v of a plan, when the
     * backend keeps it in a layout larger than its bytes (the CPU's
     * 16-channel blocks); NULL: exactly its bytes. The engine makes this
     * backend's plans with it (plan_create_for). */
    size_t (*value_room)(const plan *p, int v);
    engine_status (*load_weights)(void *ctx, const graph *g, engine_error *err);
    engine_status (*prepare)(void *ctx, const plan *p, void **prepared, engine_error *err);
    void (*release)(void *ctx, void *prepared);
    /* inputs: one host buffer per graph input, or NULL for one not given
     * (a NormalizeImage node gets exactly one of its two inputs: images as
     * bytes or the model's floats); outputs: one host buffer per graph
     * output, filled on return. step_ms, when not NULL, receives each
     * step's wall time. */
    engine_status (*run)(void *ctx, void *prepared, const plan *p, const void *const *inputs,
                         void *const *outputs, double *step_ms, engine_error *err);
    /* Optional. How the algorithm of step `step` was chosen at prepare;
     * false when the step has no choice to report. */
    bool (*algo_report)(void *ctx, void *prepared, const plan *p, int step,
                        engine_algo_report *out);
    /* Optional. What the context holds now, in bytes (called under the
     * engine's lock, like prepare). */
    void (*memory)(void *ctx, backend_memory *out);
} backend_ops;

/* --- the registry (backend_registry.c) --- */

/* A module's entry point, found by dlsym in libvisiond_<name>.so: returns
 * its backend when the module was built for this ABI, else NULL. */
#define BACKEND_MODULE_ENTRY "visiond_backend_module"
#define BACKEND_ABI 2 /* 2: backend_ops.memory */
typedef const backend_ops *(*backend_module_entry)(int abi);

/* Every backend this process has: built-in ones first, then the modules
 * found next to the executable (or in VISIOND_MODULE_DIR's build-time
 * value), loaded on first call. */
int backend_count(void);
const backend_ops *backend_at(int i);
const backend_ops *backend_find(const char *name);
/* The backend that runs on the host (BACKEND_CAP_HOST). */
const backend_ops *backend_host(void);
/* Why module `name` is not loaded ("libcudnn.so.9: cannot open shared
 * object file"), or NULL when it is, or was never found. */
const char *backend_module_problem(const char *name);
/* The i-th module that was found but did not load: its name, with `why`;
 * NULL past the last one. */
const char *backend_failed_module(int i, const char **why);

/* The built-in list, generated at build time (Makefile: BUILTIN_BACKENDS). */
extern const backend_ops *const backend_builtin[];

#endif
