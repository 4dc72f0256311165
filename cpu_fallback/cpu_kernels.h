/* Kernels of the CPU backend, one family per file:
 *   cpu_conv.c     convolution: im2col + GEMM, 1x1 as plain GEMM, direct depthwise
 *   cpu_winograd.c convolution: Winograd F(4x4, 3x3)
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

/* Hot loops are compiled three times on x86-64, for AVX-512, AVX2 and the
 * baseline, and the loader picks the best the CPU has (GCC's target_clones,
 * through an ifunc). Elsewhere (ARM, clang) they are plain C the compiler
 * vectorises for the target it was given (NEON with -mfpu=neon).
 * OpenMP outlines parallel loop bodies into functions of their own that
 * would not inherit the attribute, so multiversioned code lives in helpers
 * called from inside those loops. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define CPU_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CPU_MULTIVERSION
#endif

/* --- convolution --- */

typedef enum {
    CPU_CONV_IM2COL = 0, /* im2col then one SGEMM per image and group */
    CPU_CONV_1X1,        /* 1x1, stride 1, no pad: the input already is the GEMM operand */
    CPU_CONV_DEPTHWISE,  /* one input channel per group: direct sliding window */
    CPU_CONV_WINOGRAD,   /* 3x3 stride 1: Winograd F(4x4, 3x3), 36 batched GEMMs */
    /* on channel-blocked (NCHW16c) tensors, cpu_nchwc.h: */
    CPU_CONV_DIRECT_NCHWC,    /* direct: register-blocked tiles, no im2col; either layout */
    CPU_CONV_WINOGRAD_NCHWC,  /* Winograd F(4x4, 3x3), blocked in and out */
    CPU_CONV_DEPTHWISE_NCHWC, /* depthwise, blocked in and out */
    CPU_CONV_ALGO_COUNT
} cpu_conv_algo;

const char *cpu_conv_algo_name(cpu_conv_algo a);
extern const char *const cpu_conv_algo_names[CPU_CONV_ALGO_COUNT + 1];

typedef struct {
    int64_t n, c, h, w;       /* input (a 1-D convolution has h = 1) */
    int64_t m, oh, ow;        /* output channels and size */
    int64_t kh, kw, sh, sw, dh, dw, ph, pw;
    int64_t group;
    act_params act;
    bool x_blocked, y_blocked; /* layouts (cpu_layout.h): NCHW16c or NCHW */
    /* the plan put the output in the fused residual's buffer (plan.h,
     * PLAN_RESIDUAL_IN_PLACE) */
    bool y_holds_residual;
} conv_shape;

typedef struct {
    const float *x, *weights, *bias; /* bias may be NULL */
    float *y;
    float *work;                     /* cpu_conv_workspace() floats */
    const float *winograd_u;         /* CPU_CONV_WINOGRAD: cpu_winograd_filters() output */
    const float *residual;           /* a fused residual Add (shaped like y), or NULL */
    const struct nchwc_weights *packed; /* the blocked algorithms' packed weights */
    /* floats from one image of y to the next, 0 for y's own size: a blocked
     * output written straight into its slice of a Concat (cpu_backend.c) */
    int64_t y_image_stride;
} conv_buffers;

bool cpu_conv_supports(cpu_conv_algo a, const conv_shape *s);
cpu_conv_algo cpu_conv_choose(const conv_shape *s);
/* Floats of scratch the algorithm needs for this layer with `threads` threads. */
size_t cpu_conv_workspace(cpu_conv_algo a, const conv_shape *s, int threads);
void cpu_conv_run(cpu_conv_algo a, const conv_shape *s, const conv_buffers *b);
/* by name, as the conv_algo option spells them; -1 when unknown */
int cpu_conv_algo_by_name(const char *name);

/* --- Winograd F(4x4, 3x3), cpu_winograd.c --- */

bool cpu_winograd_applies(const conv_shape *s);
/* w: K x C x 3 x 3 -> u: 36 x K x C */
void cpu_winograd_filters(const float *w, int64_t k, int64_t c, float *u);
size_t cpu_winograd_workspace(const conv_shape *s, int threads);
void cpu_winograd_run(const conv_shape *s, const conv_buffers *b, const float *u);

/* e^x without a library call, so loops of it vectorise: Cody-Waite range
 * reduction and Cephes' degree-6 polynomial, about 2 ulp; the input is
 * clamped to where the result is finite and normal. */
static inline float cpu_fast_expf(float x)
{
    /* written without branches so that GCC vectorises loops of it */
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float t = x * 1.44269504f;
    int32_t k = (int32_t)(t + __builtin_copysignf(0.5f, t));
    float n = (float)k;
    float r = x - n * 0.693145751953125f - n * 1.428606765330187e-06f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } s = {.i = (k + 127) * (1 << 23)};
    return p * s.f;
}

/* erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7). */
static inline float cpu_fast_erff(float x)
{
    float a = __builtin_fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
               0.254829592f) * t;
    return __builtin_copysignf(1.0f - p * cpu_fast_expf(-a * a), x);
}

/* The fused activation, inline for per-element use in kernels. */
static inline float cpu_act(const act_params *a, float x)
{
    switch (a->kind) {
    case ACT_NONE: return x;
    case ACT_RELU: return x > 0.0f ? x : 0.0f;
    case ACT_CLIP: return x < a->alpha ? a->alpha : x > a->beta ? a->beta : x;
    case ACT_SILU: return x / (1.0f + cpu_fast_expf(-x));
    default: return act_apply(a, x);
    }
}

/* row[i] = act(row[i] + bias + residual[i]), the epilogue of one output
 * channel; residual may be NULL. */
void cpu_act_row(float *row, int64_t n, float bias, const float *residual, const act_params *act);
/* The same over `channels` rows of `spatial`, bias[ch] per row. */
void cpu_bias_act(float *y, int64_t channels, int64_t spatial, const float *bias,
                  const float *residual, const act_params *act);

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
/* cpu_fastmath.c: Gelu, Erf and SiLU over n values (false: not one of
 * those, nothing done); y = e^(x - sub) over a row, returning its sum */
bool cpu_fast_activation(const float *x, float *y, int64_t n, const act_params *act);
float cpu_exp_row(const float *x, float *y, int64_t n, float sub);
void cpu_binary(op_t op, const float *a, const shape_t *as, const float *b, const shape_t *bs,
                float *y, const shape_t *ys);
void cpu_channel_affine(const float *x, float *y, const float *scale, const float *shift,
                        int64_t n, int64_t c, int64_t spatial);
void cpu_softmax(const float *x, float *y, int64_t outer, int64_t len, int64_t inner);
void cpu_lrn(const float *x, float *y, int64_t n, int64_t c, int64_t spatial,
             const lrn_params *p);
void cpu_reduce_mean(const float *x, const shape_t *xs, float *y, uint32_t axes_mask);

/* --- transformer, segmentation and decoder operators --- */

/* rows of len: (x - mean) / sqrt(var + eps) * scale + bias; scale and bias
 * hold len values or one (bias may be NULL); each row's mean and 1/std go
 * to mean_out and inv_std_out when they are not NULL */
void cpu_layer_norm(const float *x, float *y, int64_t rows, int64_t len, const float *scale,
                    int64_t scale_n, const float *bias, int64_t bias_n, float epsilon,
                    float *mean_out, float *inv_std_out);
void cpu_instance_norm(const float *x, float *y, int64_t n, int64_t c, int64_t spatial,
                       const float *scale, const float *bias, float epsilon);
/* planes of h x w resized to oh x ow; false when out of memory */
bool cpu_resize(const float *x, float *y, int64_t planes, int64_t h, int64_t w, int64_t oh,
                int64_t ow, const float scale[2], const resize_params *p);

typedef struct {
    int64_t n, c, h, w, m, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw, group;
} conv_transpose_shape;
/* floats of the col workspace cpu_conv_transpose needs */
size_t cpu_conv_transpose_workspace(const conv_transpose_shape *s);
void cpu_conv_transpose(const conv_transpose_shape *s, const float *x, const float *wt,
                        const float *bias, float *y, float *col);

/* cpu_blas.c: the BLAS underneath, for the backend's registry entry */
bool cpu_blas_startup_environment(char *why, size_t n);
const char *cpu_blas_description(char *buf, size_t n);
double cpu_sgemm_gflops(int n, int threads, int reps);

#endif
