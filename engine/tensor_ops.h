/* N-dimensional data movement and element-wise arithmetic on host memory.
 *
 * Used twice: by the engine to fold constants (shape arithmetic in int64,
 * weight transforms in float) and by the CPU backend for the layout
 * operators (Transpose, Slice, Concat, Split, Gather, Pad) and the general
 * broadcasting case of Add/Sub/Mul/Div. One strided-copy routine covers
 * Transpose, Slice and broadcasting, which differ only in their strides.
 */
#ifndef VISIOND_TENSOR_OPS_H
#define VISIOND_TENSOR_OPS_H

#include "graph.h"
#include "tensor.h"

/* Contiguous strides (in elements) of a shape. */
void nd_strides(const shape_t *s, int64_t *strides);
/* Strides that read `in` broadcast to `out` (0 on broadcast axes). */
void nd_broadcast_strides(const shape_t *in, const shape_t *out, int64_t *strides);

/* dst (contiguous, shape `shape`) [i] = src[base + sum(idx[k] * strides[k])]. */
void nd_strided_copy(void *dst, const void *src, const shape_t *shape, int64_t base,
                     const int64_t *strides, size_t elem);

void nd_transpose(void *dst, const void *src, const shape_t *in_shape, const int *perm,
                  size_t elem);
void nd_slice(void *dst, const void *src, const shape_t *in_shape, const shape_t *out_shape,
              const int64_t *start, const int64_t *step, size_t elem);
/* Concatenates n contiguous inputs along axis into dst. */
void nd_concat(void *dst, const void *const *srcs, const shape_t *const *shapes, int n, int axis,
               size_t elem);
/* The inverse of nd_concat. */
void nd_split(void *const *dsts, const shape_t *const *shapes, int n, const void *src, int axis,
              size_t elem);
void nd_gather(void *dst, const void *src, const shape_t *in_shape, int axis,
               const int64_t *indices, int64_t n_indices, size_t elem);
void nd_pad(void *dst, const void *src, const shape_t *in_shape, const shape_t *out_shape,
            const int64_t *begin, pad_mode mode, const void *fill, size_t elem);

/* out = a (op) b with NumPy broadcasting; op is OP_ADD/SUB/MUL/DIV. */
void nd_binary_f32(op_t op, float *out, const shape_t *out_shape, const float *a,
                   const shape_t *a_shape, const float *b, const shape_t *b_shape);
void nd_binary_i64(op_t op, int64_t *out, const shape_t *out_shape, const int64_t *a,
                   const shape_t *a_shape, const int64_t *b, const shape_t *b_shape);

/* One activation applied to one value (the reference the backends' fused
 * versions are written against). */
float act_apply(const act_params *a, float x);

#endif
