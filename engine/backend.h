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

#include "graph.h"
#include "plan.h"
#include "tensor_ops.h"

typedef struct {
    int device_index; /* cuda:N */
    int threads;      /* CPU threads; 0 = every core */
    const char *conv_algo; /* NULL/"auto", or an algorithm name to force */
} backend_config;

enum {
    BACKEND_CAP_GPU = 1u << 0,
    BACKEND_CAP_INTEGRATED = 1u << 1, /* shares memory with the host (Jetson) */
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
} backend_ops;

extern const backend_ops cpu_backend_ops;
#ifdef VISIOND_WITH_CUDA
extern const backend_ops cuda_backend_ops;
/* Number of usable CUDA devices (0 when the driver finds none). */
int cuda_backend_device_count(void);
#endif

#endif
