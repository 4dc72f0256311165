/* The backend seam: how the engine hands a planned graph to a device.
 *
 * A backend is a table of functions plus an opaque context, in the manner of
 * ggml's backend interface: the graph and its plans do not know where they
 * run, and a backend never sees ONNX or the server. The engine calls, in
 * order: create, load_weights (once per graph: upload or repack constants),
 * prepare (once per planned batch size: pick algorithms, size workspaces,
 * reserve the arena; nothing is allocated later on the request path), then
 * run any number of times, one at a time per context.
 */
#ifndef VISIOND_BACKEND_H
#define VISIOND_BACKEND_H

#include "engine.h"
#include "graph.h"
#include "plan.h"
#include "preproc.h"
#include "tensor_ops.h"

typedef struct {
    int device_index;       /* cuda:N */
    int threads;            /* CPU threads; 0 = every core */
    const char *conv_algo;  /* NULL: the backend's default selection; see engine_options */
    const char *algo_cache; /* file remembering measured choices, or NULL */
    size_t workspace_limit; /* bytes one convolution may use; 0: the backend's default */
} backend_config;

enum {
    BACKEND_CAP_GPU = 1u << 0,
    BACKEND_CAP_INTEGRATED = 1u << 1, /* shares memory with the host (Jetson) */
    /* every convolution copes with its output in its residual's buffer
     * (plan.h, PLAN_RESIDUAL_IN_PLACE) */
    BACKEND_CAP_RESIDUAL_IN_PLACE = 1u << 2,
};

typedef struct backend_ops {
    const char *name;
    engine_status (*create)(const backend_config *cfg, void **ctx, engine_error *err);
    void (*destroy)(void *ctx);
    /* one line for logs and `visiond info`: library, kernel, threads, device */
    const char *(*describe)(void *ctx);
    unsigned (*capabilities)(void *ctx);
    engine_status (*load_weights)(void *ctx, const graph *g, engine_error *err);
    engine_status (*prepare)(void *ctx, const plan *p, void **prepared, engine_error *err);
    void (*release)(void *ctx, void *prepared);
    /* inputs: one host float buffer per graph input; outputs: one host
     * buffer per graph output, filled on return. step_ms, when not NULL,
     * receives each step's wall time. */
    engine_status (*run)(void *ctx, void *prepared, const plan *p, const float *const *inputs,
                         void *const *outputs, double *step_ms, engine_error *err);
    /* Optional. As run, with input 0 given as 8-bit images (batch x H x W x C)
     * that the backend normalises itself (on a GPU: images cross the bus as
     * bytes). NULL: the engine normalises on the CPU and calls run. */
    engine_status (*run_u8)(void *ctx, void *prepared, const plan *p, const uint8_t *images,
                            const preproc_params *norm, void *const *outputs, double *step_ms,
                            engine_error *err);
    /* Optional. How the algorithm of step `step` was chosen at prepare;
     * false when the step has no choice to report. */
    bool (*algo_report)(void *ctx, void *prepared, const plan *p, int step,
                        engine_algo_report *out);
} backend_ops;

extern const backend_ops cpu_backend_ops;
#ifdef VISIOND_WITH_CUDA
extern const backend_ops cuda_backend_ops;
/* Number of usable CUDA devices (0 when the driver finds none). */
int cuda_backend_device_count(void);
#endif

#endif
