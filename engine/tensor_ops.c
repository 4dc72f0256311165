/* N-dimensional helpers; see tensor_ops.h. */
#include "tensor_ops.h"

#include <math.h>
#include <string.h>

void nd_strides(const shape_t *s, int64_t *strides)
{
    int64_t acc = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        strides[i] = acc;
        acc *= s->dim[i];
    }
}

void nd_broadcast_strides(const shape_t *in, const shape_t *out, int64_t *strides)
{
    int64_t own[ENGINE_MAX_RANK];
    nd_strides(in, own);
    int off = out->rank - in->rank;
    for (int i = 0; i < out->rank; i++) {
        int k = i - off;
        strides[i] = (k < 0 || in->dim[k] == 1) ? 0 : own[k];
    }
}

static inline void copy_elem(char *dst, const char *src, size_t elem)
{
    if (elem == 4)
        memcpy(dst, src, 4);
    else if (elem == 8)
        memcpy(dst, src, 8);
    else
        memcpy(dst, src, elem);
}

void nd_strided_copy(void *dst, const void *src, const shape_t *shape, int64_t base,
                     const int64_t *strides, size_t elem)
{
    int64_t total = shape_numel(shape);
    if (total == 0)
        return;
    char *d = dst;
    const char *s = src;
    if (shape->rank == 0) {
        copy_elem(d, s + base * (int64_t)elem, elem);
        return;
    }
    int r = shape->rank;
    int64_t inner = shape->dim[r - 1], is = strides[r - 1];
    int64_t outer = total / inner;
    int64_t idx[ENGINE_MAX_RANK] = {0};
    int64_t off = base;
    for (int64_t o = 0; o < outer; o++) {
        if (is == 1) {
            memcpy(d, s + off * (int64_t)elem, (size_t)inner * elem);
        } else {
            for (int64_t i = 0; i < inner; i++)
                copy_elem(d + i * (int64_t)elem, s + (off + i * is) * (int64_t)elem, elem);
        }
        d += inner * (int64_t)elem;
        for (int k = r - 2; k >= 0; k--) { /* odometer over the outer axes */
            idx[k]++;
            off += strides[k];
            if (idx[k] < shape->dim[k])
                break;
            off -= strides[k] * idx[k];
            idx[k] = 0;
        }
    }
}

void nd_transpose(void *dst, const void *src, const shape_t *in_shape, const int *perm,
                  size_t elem)
{
    int64_t in_strides[ENGINE_MAX_RANK], strides[ENGINE_MAX_RANK];
    nd_strides(in_shape, in_strides);
    shape_t out = {.rank = in_shape->rank};
    for (int i = 0; i < in_shape->rank; i++) {
        out.dim[i] = in_shape->dim[perm[i]];
        strides[i] = in_strides[perm[i]];
    }
    nd_strided_copy(dst, src, &out, 0, strides, elem);
}

void nd_slice(void *dst, const void *src, const shape_t *in_shape, const shape_t *out_shape,
              const int64_t *start, const int64_t *step, size_t elem)
{
    int64_t in_strides[ENGINE_MAX_RANK], strides[ENGINE_MAX_RANK];
    nd_strides(in_shape, in_strides);
    int64_t base = 0;
    for (int i = 0; i < in_shape->rank; i++) {
        if (out_shape->dim[i] > 0)
            base += start[i] * in_strides[i];
        strides[i] = step[i] * in_strides[i];
    }
    nd_strided_copy(dst, src, out_shape, base, strides, elem);
}

static void outer_inner(const shape_t *s, int axis, int64_t *outer, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; i++)
        *outer *= s->dim[i];
    for (int i = axis + 1; i < s->rank; i++)
        *inner *= s->dim[i];
}

void nd_concat(void *dst, const void *const *srcs, const shape_t *const *shapes, int n, int axis,
               size_t elem)
{
    int64_t outer, inner;
    outer_inner(shapes[0], axis, &outer, &inner);
    int64_t total_axis = 0;
    for (int i = 0; i < n; i++)
        total_axis += shapes[i]->dim[axis];
    size_t out_row = (size_t)(total_axis * inner) * elem;
    size_t col = 0;
    for (int i = 0; i < n; i++) {
        size_t chunk = (size_t)(shapes[i]->dim[axis] * inner) * elem;
        const char *s = srcs[i];
        char *d = (char *)dst + col;
        for (int64_t o = 0; o < outer; o++)
            memcpy(d + (size_t)o * out_row, s + (size_t)o * chunk, chunk);
        col += chunk;
    }
}

void nd_split(void *const *dsts, const shape_t *const *shapes, int n, const void *src, int axis,
              size_t elem)
{
    int64_t outer, inner;
    outer_inner(shapes[0], axis, &outer, &inner);
    int64_t total_axis = 0;
    for (int i = 0; i < n; i++)
        total_axis += shapes[i]->dim[axis];
    size_t in_row = (size_t)(total_axis * inner) * elem;
    size_t col = 0;
    for (int i = 0; i < n; i++) {
        size_t chunk = (size_t)(shapes[i]->dim[axis] * inner) * elem;
        if (dsts[i]) {
            const char *s = (const char *)src + col;
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)dsts[i] + (size_t)o * chunk, s + (size_t)o * in_row, chunk);
        }
        col += chunk;
    }
}

void nd_gather(void *dst, const void *src, const shape_t *in_shape, int axis,
               const int64_t *indices, int64_t n_indices, size_t elem)
{
    int64_t outer, inner;
    outer_inner(in_shape, axis, &outer, &inner);
    int64_t d = in_shape->dim[axis];
    size_t block = (size_t)inner * elem;
    char *out = dst;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < n_indices; j++) {
            int64_t k = indices[j] < 0 ? indices[j] + d : indices[j];
            memcpy(out, (const char *)src + ((size_t)(o * d + k)) * block, block);
            out += block;
        }
}

static int64_t pad_source(int64_t i, int64_t d, pad_mode mode)
{
    if (i >= 0 && i < d)
        return i;
    if (mode == PAD_CONSTANT || d == 0)
        return -1;
    if (mode == PAD_EDGE)
        return i < 0 ? 0 : d - 1;
    /* reflect without repeating the edge: period 2(d-1) */
    if (d == 1)
        return 0;
    int64_t period = 2 * (d - 1);
    int64_t m = ((i % period) + period) % period;
    return m < d ? m : period - m;
}

void nd_pad(void *dst, const void *src, const shape_t *in_shape, const shape_t *out_shape,
            const int64_t *begin, pad_mode mode, const void *fill, size_t elem)
{
    int r = out_shape->rank;
    int64_t total = shape_numel(out_shape);
    int64_t in_strides[ENGINE_MAX_RANK];
    nd_strides(in_shape, in_strides);
    int64_t idx[ENGINE_MAX_RANK] = {0};
    char *d = dst;
    for (int64_t e = 0; e < total; e++) {
        int64_t off = 0;
        bool inside = true;
        for (int k = 0; k < r; k++) {
            int64_t s = pad_source(idx[k] - begin[k], in_shape->dim[k], mode);
            if (s < 0) {
                inside = false;
                break;
            }
            off += s * in_strides[k];
        }
        copy_elem(d + e * (int64_t)elem, inside ? (const char *)src + off * (int64_t)elem : fill,
                  elem);
        for (int k = r - 1; k >= 0; k--) {
            if (++idx[k] < out_shape->dim[k])
                break;
            idx[k] = 0;
        }
    }
}

#define DEFINE_BINARY(NAME, T, DIV_EXPR)                                                          \
    void NAME(op_t op, T *out, const shape_t *out_shape, const T *a, const shape_t *a_shape,      \
              const T *b, const shape_t *b_shape)                                                 \
    {                                                                                             \
        int64_t sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK];                                         \
        nd_broadcast_strides(a_shape, out_shape, sa);                                             \
        nd_broadcast_strides(b_shape, out_shape, sb);                                             \
        int64_t total = shape_numel(out_shape);                                                   \
        if (total == 0)                                                                           \
            return;                                                                               \
        int r = out_shape->rank;                                                                  \
        int64_t inner = r ? out_shape->dim[r - 1] : 1;                                            \
        int64_t ia = r ? sa[r - 1] : 0, ib = r ? sb[r - 1] : 0;                                   \
        int64_t idx[ENGINE_MAX_RANK] = {0}, oa = 0, ob = 0;                                       \
        for (int64_t o = 0; o < total / inner; o++) {                                             \
            const T *pa = a + oa, *pb = b + ob;                                                   \
            T *po = out + o * inner;                                                              \
            for (int64_t i = 0; i < inner; i++) {                                                 \
                T x = pa[i * ia], y = pb[i * ib];                                                 \
                po[i] = op == OP_ADD ? x + y : op == OP_SUB ? x - y : op == OP_MUL ? x * y        \
                                                                    : (DIV_EXPR);                 \
            }                                                                                     \
            for (int k = r - 2; k >= 0; k--) {                                                    \
                idx[k]++;                                                                         \
                oa += sa[k];                                                                      \
                ob += sb[k];                                                                      \
                if (idx[k] < out_shape->dim[k])                                                   \
                    break;                                                                        \
                oa -= sa[k] * idx[k];                                                             \
                ob -= sb[k] * idx[k];                                                             \
                idx[k] = 0;                                                                       \
            }                                                                                     \
        }                                                                                         \
    }

DEFINE_BINARY(nd_binary_f32, float, x / y)
/* Integer division truncates, as ONNX runtimes do; by zero gives 0, not a trap. */
DEFINE_BINARY(nd_binary_i64, int64_t, y ? x / y : 0)

float act_apply(const act_params *a, float x)
{
    switch (a->kind) {
    case ACT_NONE: return x;
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_LEAKY_RELU: return x >= 0 ? x : a->alpha * x;
    case ACT_CLIP: return x < a->alpha ? a->alpha : x > a->beta ? a->beta : x;
    case ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case ACT_HARD_SIGMOID: {
        float y = a->alpha * x + a->beta;
        return y < 0 ? 0 : y > 1 ? 1 : y;
    }
    case ACT_HARD_SWISH: {
        float y = x / 6.0f + 0.5f;
        return x * (y < 0 ? 0 : y > 1 ? 1 : y);
    }
    case ACT_EXP: return expf(x);
    case ACT_ERF: return erff(x);
    case ACT_GELU:
        if (a->alpha != 0.0f) /* the tanh approximation */
            return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
        return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case ACT_SQRT: return sqrtf(x);
    case ACT_RECIPROCAL: return 1.0f / x;
    case ACT_NEG: return -x;
    case ACT_ABS: return fabsf(x);
    case ACT_TANH: return tanhf(x);
    case ACT_SOFTPLUS: return x > 20.0f ? x : log1pf(expf(x));
    case ACT_MISH: return x * tanhf(x > 20.0f ? x : log1pf(expf(x)));
    case ACT_LOG: return logf(x);
    case ACT_SILU: return x / (1.0f + expf(-x));
    }
    return x;
}
