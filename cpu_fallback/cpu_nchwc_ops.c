/* Depthwise convolution, pools, the batch-norm affine and Concat on blocked
 * tensors: the parallel loops and the weight packing. The per-row work is
 * in cpu_simd_kernels.inc, on whole 16-channel vectors; a row of outputs
 * splits into the interior, where every tap of the window lies inside the
 * input and no bound is checked, and the borders.
 */
#include <float.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_nchwc.h"

#define B CPU_BLOCK

/* Output columns whose every tap (k taps, dilation d) lies in [0, size). */
static void interior(int64_t out, int64_t stride, int64_t pad, int64_t k, int64_t d,
                     int64_t size, int64_t *lo, int64_t *hi)
{
    int64_t a = (pad + stride - 1) / stride;
    int64_t last = size - 1 + pad - (k - 1) * d; /* ox * stride <= last */
    int64_t b = last < 0 ? 0 : last / stride + 1;
    if (b > out)
        b = out;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

/* --- depthwise --- */

bool nchwc_depthwise_applies(const conv_shape *s)
{
    return s->group > 1 && s->group == s->c && s->m == s->c && s->x_blocked && s->y_blocked;
}

/* Weights as [block][tap][16] and the bias as [block][16]. */
nchwc_weights *nchwc_depthwise_pack(const float *w, const float *bias, int64_t c, int64_t taps)
{
    nchwc_weights *pw = calloc(1, sizeof *pw);
    if (!pw)
        return NULL;
    int64_t cb = cpu_blocks(c);
    pw->isa = nchwc_isa_get();
    pw->groups = (int)cb;
    pw->ob = 1;
    pw->group_floats = taps * B;
    pw->w = tensor_alloc(sizeof(float) * (size_t)(cb * taps * B));
    pw->bias = tensor_alloc(sizeof(float) * (size_t)(cb * B));
    pw->bytes = sizeof(float) * (size_t)(cb * (taps + 1) * B);
    if (!pw->w || !pw->bias) {
        nchwc_weights_free(pw);
        return NULL;
    }
    for (int64_t b = 0; b < cb; b++)
        for (int64_t l = 0; l < B; l++) {
            int64_t ch = b * B + l;
            pw->bias[b * B + l] = bias && ch < c ? bias[ch] : 0.0f;
            for (int64_t t = 0; t < taps; t++)
                pw->w[(b * taps + t) * B + l] = ch < c ? w[ch * taps + t] : 0.0f;
        }
    return pw;
}

void nchwc_depthwise_run(const conv_shape *s, const conv_buffers *b)
{
    const nchwc_weights *pw = b->packed;
    const cpu_simd_kernels *k = pw->isa->simd;
    int64_t cb = cpu_blocks(s->c), rows = s->n * cb * s->oh, lo, hi;
    interior(s->ow, s->sw, s->pw, s->kw, s->dw, s->w, &lo, &hi);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t plane = r / s->oh, oy = r % s->oh, img = plane / cb, blk = plane % cb;
        int64_t out = (plane * s->oh + oy) * s->ow * B;
        int64_t at = b->y_image_stride ? img * b->y_image_stride + (blk * s->oh + oy) * s->ow * B
                                       : out;
        k->dw_row(s, b->x + plane * s->h * s->w * B, pw->w + blk * pw->group_floats,
                  pw->bias + blk * B, b->y + at, b->residual ? b->residual + out : NULL, oy, lo,
                  hi);
    }
}

/* --- pools --- */

void nchwc_pool(const float *x, float *y, int64_t n, int64_t c, const pool_shape *s, bool is_max)
{
    const cpu_simd_kernels *k = nchwc_isa_get()->simd;
    int64_t rows = n * cpu_blocks(c) * s->oh;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t plane = r / s->oh, oy = r % s->oh;
        k->pool_row(x + plane * s->h * s->w * B, y + (plane * s->oh + oy) * s->ow * B, s, oy,
                 is_max);
    }
}

void nchwc_global_pool(const float *x, float *y, int64_t n, int64_t c, int64_t spatial,
                       bool is_max)
{
    const cpu_simd_kernels *k = nchwc_isa_get()->simd;
    int64_t cb = cpu_blocks(c);
#pragma omp parallel for schedule(static) if (n * cb * spatial > 16384)
    for (int64_t i = 0; i < n * cb; i++) {
        int64_t img = i / cb, blk = i % cb;
        int64_t lanes = c - blk * B < B ? c - blk * B : B;
        float acc[B];
        k->reduce_block(x + i * spatial * B, spatial, is_max, acc);
        for (int64_t l = 0; l < lanes; l++)
            y[img * c + blk * B + l] = is_max ? acc[l] : acc[l] / (float)spatial;
    }
}

/* --- batch-norm affine and Concat --- */

void nchwc_channel_affine(const float *x, float *y, const float *scale, const float *shift,
                          int64_t n, int64_t c, int64_t spatial)
{
    const cpu_simd_kernels *k = nchwc_isa_get()->simd;
    int64_t cb = cpu_blocks(c);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n * cb; i++) {
        int64_t blk = i % cb;
        float sc[B], sh[B];
        for (int64_t l = 0; l < B; l++) {
            int64_t ch = blk * B + l;
            sc[l] = ch < c ? scale[ch] : 0.0f;
            sh[l] = ch < c ? shift[ch] : 0.0f;
        }
        k->affine_plane(x + i * spatial * B, y + i * spatial * B, sc, sh, spatial);
    }
}

void nchwc_channel_binary(const float *x, float *y, const float *chan, bool per_image,
                          bool chan_first, op_t op, int64_t n, int64_t c, int64_t spatial)
{
    const cpu_simd_kernels *k = nchwc_isa_get()->simd;
    int64_t cb = cpu_blocks(c);
#pragma omp parallel for schedule(static) if (n * cb * spatial * B > 32768)
    for (int64_t i = 0; i < n * cb; i++) {
        int64_t img = i / cb, blk = i % cb;
        const float *cv = chan + (per_image ? img * c : 0);
        float sc[B], sh[B];
        for (int64_t l = 0; l < B; l++) {
            int64_t ch = blk * B + l;
            float v = ch < c ? cv[ch] : 0.0f;
            switch (op) { /* y = x * sc + sh */
            case OP_MUL: sc[l] = v, sh[l] = 0.0f; break;
            case OP_ADD: sc[l] = 1.0f, sh[l] = v; break;
            case OP_SUB: sc[l] = chan_first ? -1.0f : 1.0f, sh[l] = chan_first ? v : -v; break;
            default: sc[l] = ch < c ? 1.0f / v : 0.0f, sh[l] = 0.0f; break; /* x / v */
            }
        }
        k->affine_plane(x + i * spatial * B, y + i * spatial * B, sc, sh, spatial);
    }
}

void nchwc_concat(float *y, const float *const *xs, const int64_t *channels, int count,
                  int64_t n, int64_t spatial)
{
    int64_t total = 0;
    for (int k = 0; k < count; k++)
        total += channels[k];
    int64_t out_image = cpu_blocks(total) * B * spatial;
#pragma omp parallel for schedule(static) collapse(2) if (n * out_image > 65536)
    for (int64_t img = 0; img < n; img++)
        for (int k = 0; k < count; k++) {
            int64_t before = 0;
            for (int j = 0; j < k; j++)
                before += channels[j];
            int64_t floats = cpu_blocks(channels[k]) * B * spatial;
            if (xs[k]) /* NULL: its producer wrote it in place */
                memcpy(y + img * out_image + before * spatial, xs[k] + img * floats,
                   (size_t)floats * sizeof(float));
        }
}
