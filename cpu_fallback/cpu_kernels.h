/* Kernels of the CPU backend, one family per file:
 *   cpu_conv.c     convolution: im2col + GEMM, 1x1 as plain GEMM, direct depthwise
 *   cpu_gemm.c     Gemm and MatMul on CBLAS
 *   cpu_pool.c     max/average pooling, global pooling
 *   cpu_eltwise.c  activations, broadcasting arithmetic, batch norm, softmax, LRN, ReduceMean
 * Layout operators (Concat, Slice, Transpose, ...) use engine/tensor_ops.h.
 * Kernels parallelise with OpenMP; BLAS calls are made outside parallel
 * regions so OpenBLAS (its OpenMP build) uses the same thread pool.
 */
#ifndef VISIOND_CPU_KERNELS_H
#define VISIOND_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/backend.h"

/* --- convolution --- */

typedef enum {
    CPU_CONV_IM2COL = 0, /* im2col then one SGEMM per image and group */
    CPU_CONV_1X1,        /* 1x1, stride 1, no pad: the input already is the GEMM operand */
    CPU_CONV_DEPTHWISE,  /* one input channel per group: direct sliding window */
    CPU_CONV_ALGO_COUNT
} cpu_conv_algo;

const char *cpu_conv_algo_name(cpu_conv_algo a);

typedef struct {
    int64_t n, c, h, w;       /* input (a 1-D convolution has h = 1) */
    int64_t m, oh, ow;        /* output channels and size */
    int64_t kh, kw, sh, sw, dh, dw, ph, pw;
    int64_t group;
    act_params act;
} conv_shape;

typedef struct {
    const float *x, *weights, *bias; /* bias may be NULL */
    float *y;
    float *work;                     /* cpu_conv_workspace() floats */
} conv_buffers;

bool cpu_conv_supports(cpu_conv_algo a, const conv_shape *s);
cpu_conv_algo cpu_conv_choose(const conv_shape *s);
size_t cpu_conv_workspace(cpu_conv_algo a, const conv_shape *s);
void cpu_conv_run(cpu_conv_algo a, const conv_shape *s, const conv_buffers *b);

/* y[ch][i] = act(y[ch][i] + bias[ch]) over `channels` rows of `spatial`. */
void cpu_bias_act(float *y, int64_t channels, int64_t spatial, const float *bias,
                  const act_params *act);

/* --- GEMM --- */

void cpu_gemm(const float *a, const shape_t *as, const float *b, const shape_t *bs,
              const float *c, const shape_t *cs, float *y, const gemm_params *p,
              const act_params *act);
void cpu_matmul(const float *a, const shape_t *as, const float *b, const shape_t *bs, float *y,
                const shape_t *ys);

/* --- pooling --- */

typedef struct {
    int64_t nc, h, w, oh, ow;
    int64_t kh, kw, sh, sw, dh, dw, ph, pw, pe_h, pe_w;
    bool count_include_pad;
} pool_shape;

void cpu_maxpool(const float *x, float *y, const pool_shape *s);
void cpu_avgpool(const float *x, float *y, const pool_shape *s);
void cpu_global_pool(const float *x, float *y, int64_t nc, int64_t spatial, bool is_max);

/* --- element-wise and normalisation --- */

void cpu_activation(const float *x, float *y, int64_t n, const act_params *act);
void cpu_binary(op_t op, const float *a, const shape_t *as, const float *b, const shape_t *bs,
                float *y, const shape_t *ys);
void cpu_channel_affine(const float *x, float *y, const float *scale, const float *shift,
                        int64_t n, int64_t c, int64_t spatial);
void cpu_softmax(const float *x, float *y, int64_t outer, int64_t len, int64_t inner);
void cpu_lrn(const float *x, float *y, int64_t n, int64_t c, int64_t spatial,
             const lrn_params *p);
void cpu_reduce_mean(const float *x, const shape_t *xs, float *y, uint32_t axes_mask);

#endif
