/* CUDA kernels of the GPU backend, callable from C.
 *
 * Every launcher enqueues on the given stream and returns
 * cudaGetLastError(), which the caller checks through GPU_CHECK
 * (gpu_check.h). Shapes travel by value in small structs; sizes are
 * int64_t throughout, as in the rest of the engine.
 */
#ifndef VISIOND_CUDA_KERNELS_H
#define VISIOND_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define K_MAX_RANK 8

/* Activation kinds: the values of act_kind in engine/graph.h. */
typedef struct {
    int kind;
    float alpha, beta;
} k_act;

/* An output of `rank` axes and, per axis, the element strides of up to two
 * sources (0 on broadcast axes). */
typedef struct {
    int rank;
    int64_t dim[K_MAX_RANK];
    int64_t sa[K_MAX_RANK], sb[K_MAX_RANK];
    int64_t base_a;
} k_strides;

typedef struct {
    int64_t nc, h, w, oh, ow;
    int64_t kh, kw, sh, sw, dh, dw, ph, pw, pe_h, pe_w;
    int is_max, count_include_pad;
} k_pool_desc;

typedef struct {
    int64_t c, h, w, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw;
} k_im2col_desc;

/* y = a (op) b; op: 1 add, 2 sub, 3 mul, 4 div (graph.h's OP_ADD.. order). */
cudaError_t k_binary(cudaStream_t s, int op, const float *a, const float *b, float *y,
                     const k_strides *st, int64_t n);
cudaError_t k_activation(cudaStream_t s, const float *x, float *y, int64_t n, k_act act);
/* y[i][c][*] = act(y[i][c][*] + bias[c] + residual[i][c][*]); bias and
 * residual may be NULL. */
cudaError_t k_bias_act(cudaStream_t s, float *y, const float *bias, const float *residual,
                       int64_t images, int64_t channels, int64_t spatial, k_act act);
cudaError_t k_channel_affine(cudaStream_t s, const float *x, float *y, const float *scale,
                             const float *shift, int64_t images, int64_t channels,
                             int64_t spatial);
cudaError_t k_pool2d(cudaStream_t s, const float *x, float *y, const k_pool_desc *p);
cudaError_t k_global_pool(cudaStream_t s, const float *x, float *y, int64_t nc,
                          int64_t spatial, int is_max);
cudaError_t k_softmax(cudaStream_t s, const float *x, float *y, int64_t outer, int64_t len,
                      int64_t inner);
cudaError_t k_lrn(cudaStream_t s, const float *x, float *y, int64_t images, int64_t channels,
                  int64_t spatial, int64_t size, float alpha, float beta, float bias);
/* dst[i] (contiguous, st->dim) = src[base_a + sum idx * sa]; elem 4 or 8 bytes */
cudaError_t k_strided_copy(cudaStream_t s, void *dst, const void *src, const k_strides *st,
                           int64_t n, int elem);
/* Pad: st->dim is the output shape, st->sa the input's contiguous strides,
 * in_dim the input shape, begin the leading pads; mode 0 constant, 1
 * reflect, 2 edge. */
cudaError_t k_pad(cudaStream_t s, float *dst, const float *src, const k_strides *st,
                  const int64_t *in_dim, const int64_t *begin, int mode, float value, int64_t n);
cudaError_t k_gather(cudaStream_t s, float *dst, const float *src, const int64_t *indices,
                     int64_t n_indices, int64_t outer, int64_t axis_len, int64_t inner);
/* ReduceMean: st->dim the input shape, st->sa the output strides (0 on
 * reduced axes); y has n_out elements. */
cudaError_t k_reduce_mean(cudaStream_t s, const float *x, float *y, const k_strides *st,
                          int64_t n_in, int64_t n_out, float inv_count);
cudaError_t k_im2col(cudaStream_t s, const float *x, float *col, const k_im2col_desc *p);
/* 8-bit HWC images -> float CHW: y[c] = x[src(c)] * mul[c] + add[c]. */
cudaError_t k_normalize_u8(cudaStream_t s, const uint8_t *hwc, float *chw, int64_t images,
                           int64_t h, int64_t w, int channels, const float *mul,
                           const float *add, int bgr);

#ifdef __cplusplus
}
#endif

#endif
