/* State shared by the files of the CUDA backend (cuda_backend.c,
 * cuda_conv.c): the per-device context and the per-plan preparation. */
#ifndef VISIOND_CUDA_INTERNAL_H
#define VISIOND_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdbool.h>

#include "../engine/backend.h"
#include "../engine/algo_select.h"
#include "gpu_check.h"
#include "kernels.h"

#define CUDA_MAX_IO 16
#define CUDA_MAX_PINNED 32
#define CUDA_DEFAULT_WORKSPACE ((size_t)256 << 20)

typedef struct {
    bool is_conv;
    bool use_cudnn;        /* else our im2col + cuBLAS path */
    bool one_by_one;       /* the im2col path skips im2col: the input is the GEMM operand */
    cudnnTensorDescriptor_t x_desc, y_desc;
    cudnnFilterDescriptor_t w_desc;
    cudnnConvolutionDescriptor_t conv_desc;
    cudnnConvolutionFwdAlgo_t algo;
    size_t workspace;
    engine_algo_report report;
} cuda_conv_step;

typedef struct {
    int device;
    struct cudaDeviceProp prop;
    bool integrated;       /* Jetson: host and device share DRAM, staging is mapped */
    cudaStream_t stream;   /* one per engine instance */
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    char description[320];
    algo_policy policy;    /* how convolution algorithms are chosen (algo_select.h) */
    algo_cache *cache;     /* the engine's, or NULL */
    char device_key[160];  /* the cache key's device part: GPU, compute capability, cuDNN */
    size_t ws_limit;
    const graph *g;
    void **weights;        /* per graph value: its constant on the device, or NULL */
    size_t weight_bytes;   /* those, and the constants plans folded, on the device */
    char *arena;
    size_t arena_bytes;
    void *workspace;
    size_t workspace_bytes;
    char *h_in, *d_in;     /* pinned input staging and its device side (same memory when mapped) */
    size_t in_bytes;
    char *h_out;           /* pinned output staging */
    size_t out_bytes;
    cudaEvent_t ev_start, ev_stop;
    bool given[CUDA_MAX_IO]; /* this run's inputs that were given (NormalizeImage's choice) */
    /* pinned host blocks handed out by host_alloc: inputs in them cross the
     * bus without a host copy into h_in */
    struct { char *p; size_t n; } pinned[CUDA_MAX_PINNED];
    long input_copies;
} cuda_ctx;

typedef struct {
    int n_steps;
    cuda_conv_step *conv;  /* per step */
    void **folded;         /* per value: device copy of a constant this plan folded */
    size_t in_offset[CUDA_MAX_IO], out_offset[CUDA_MAX_IO];
    size_t in_total, out_total;
} cuda_prepared;

/* Device address of value v for this plan. */
void *cuda_value_ptr(const cuda_ctx *c, const cuda_prepared *pr, const plan *p, int v);

/* cuda_conv.c */
extern const char *const cuda_conv_algorithms[]; /* what a policy may force */
engine_status cuda_conv_prepare(cuda_ctx *c, cuda_prepared *pr, const plan *p, int step,
                                engine_error *err);
engine_status cuda_conv_run(cuda_ctx *c, const cuda_prepared *pr, const plan *p, int step,
                            engine_error *err);
void cuda_conv_release(cuda_conv_step *cs);
/* Makes sure the shared workspace holds at least `bytes`. */
engine_status cuda_reserve_workspace(cuda_ctx *c, size_t bytes, engine_error *err);
k_act cuda_act(const act_params *a);

#endif
