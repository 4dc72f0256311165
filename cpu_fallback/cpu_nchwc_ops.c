/* Depthwise convolution, pools, the batch-norm affine and Concat on blocked
 * tensors. Each works on whole 16-channel vectors: every loop over `l`
 * below is one AVX-512 operation (two AVX2 ones) once the compiler has
 * vectorised it, which CPU_MULTIVERSION asks it to do for each ISA. A row
 * of outputs splits into the interior, where every tap of the window lies
 * inside the input and no bound is checked, and the borders.
 */
#include <float.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_nchwc.h"

#define B CPU_BLOCK
#define DW_P 8 /* pixels a depthwise tile keeps in registers */

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

static inline void finish(float *acc, const float *res, float *y, const act_params *act)
{
    if (res)
        for (int l = 0; l < B; l++)
            acc[l] += res[l];
    switch (act->kind) {
    case ACT_NONE:
        for (int l = 0; l < B; l++)
            y[l] = acc[l];
        break;
    case ACT_RELU:
        for (int l = 0; l < B; l++)
            y[l] = acc[l] > 0.0f ? acc[l] : 0.0f;
        break;
    case ACT_CLIP:
        for (int l = 0; l < B; l++) {
            float v = acc[l] < act->alpha ? act->alpha : acc[l];
            y[l] = v > act->beta ? act->beta : v;
        }
        break;
    default:
        for (int l = 0; l < B; l++)
            y[l] = cpu_act(act, acc[l]);
        break;
    }
}

/* One output row of one channel block. */
CPU_MULTIVERSION
static void depthwise_row(const conv_shape *s, const float *x, const float *w, const float *bias,
                          float *y, const float *res, int64_t oy, int64_t lo, int64_t hi)
{
    int64_t ky0 = 0, ky1 = s->kh; /* taps whose row lies inside the input */
    while (ky0 < ky1 && oy * s->sh - s->ph + ky0 * s->dh < 0)
        ky0++;
    while (ky1 > ky0 && oy * s->sh - s->ph + (ky1 - 1) * s->dh >= s->h)
        ky1--;
    int64_t ox = 0;
    while (ox < s->ow) {
        bool inner = ox >= lo && ox < hi;
        int p = inner ? (int)(hi - ox < DW_P ? hi - ox : DW_P) : 1;
        float acc[DW_P][B];
        for (int i = 0; i < p; i++)
            for (int l = 0; l < B; l++)
                acc[i][l] = bias[l];
        for (int64_t ky = ky0; ky < ky1; ky++) {
            const float *xr = x + (oy * s->sh - s->ph + ky * s->dh) * s->w * B;
            for (int64_t kx = 0; kx < s->kw; kx++) {
                const float *wv = w + (ky * s->kw + kx) * B;
                int64_t ix = ox * s->sw - s->pw + kx * s->dw;
                if (!inner) {
                    if (ix < 0 || ix >= s->w)
                        continue;
                    for (int l = 0; l < B; l++)
                        acc[0][l] += wv[l] * xr[ix * B + l];
                    continue;
                }
                for (int i = 0; i < p; i++) {
                    const float *xv = xr + (ix + i * s->sw) * B;
                    for (int l = 0; l < B; l++)
                        acc[i][l] += wv[l] * xv[l];
                }
            }
        }
        for (int i = 0; i < p; i++)
            finish(acc[i], res ? res + (ox + i) * B : NULL, y + (ox + i) * B, &s->act);
        ox += p;
    }
}

void nchwc_depthwise_run(const conv_shape *s, const conv_buffers *b)
{
    const nchwc_weights *pw = b->packed;
    int64_t cb = cpu_blocks(s->c), rows = s->n * cb * s->oh, lo, hi;
    interior(s->ow, s->sw, s->pw, s->kw, s->dw, s->w, &lo, &hi);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t plane = r / s->oh, oy = r % s->oh, blk = plane % cb;
        int64_t out = (plane * s->oh + oy) * s->ow * B;
        depthwise_row(s, b->x + plane * s->h * s->w * B, pw->w + blk * pw->group_floats,
                      pw->bias + blk * B, b->y + out, b->residual ? b->residual + out : NULL,
                      oy, lo, hi);
    }
}

/* --- pools --- */

/* Taps of a window starting at `start` (step dil) that land in [0, size). */
static void taps_inside(int64_t start, int64_t dil, int64_t k, int64_t size, int64_t *lo,
                        int64_t *hi)
{
    int64_t a = start >= 0 ? 0 : (-start + dil - 1) / dil;
    int64_t b = size - 1 - start >= 0 ? (size - 1 - start) / dil + 1 : 0;
    *hi = b < k ? b : k;
    *lo = a < *hi ? a : *hi;
}

/* Taps within the padded extent [-pad_begin, size + pad_end), the divisor
 * of count_include_pad (as cpu_pool.c). */
static int64_t taps_padded(int64_t start, int64_t dil, int64_t k, int64_t size, int64_t pad_end)
{
    int64_t end = start + (k - 1) * dil + 1, limit = size + pad_end;
    if (end > limit)
        end = limit;
    return end > start ? (end - start + dil - 1) / dil : 0;
}

CPU_MULTIVERSION
static void pool_row(const float *x, float *y, const pool_shape *s, int64_t oy, bool is_max)
{
    int64_t y0 = oy * s->sh - s->ph, ylo, yhi;
    taps_inside(y0, s->dh, s->kh, s->h, &ylo, &yhi);
    int64_t rows_div = s->count_include_pad ? taps_padded(y0, s->dh, s->kh, s->h, s->pe_h)
                                            : yhi - ylo;
    for (int64_t ox = 0; ox < s->ow; ox++) {
        int64_t x0 = ox * s->sw - s->pw, xlo, xhi;
        taps_inside(x0, s->dw, s->kw, s->w, &xlo, &xhi);
        float *o = y + ox * B;
        if (ylo >= yhi || xlo >= xhi) { /* a window entirely in the padding */
            for (int l = 0; l < B; l++)
                o[l] = 0.0f;
            continue;
        }
        float acc[B];
        for (int l = 0; l < B; l++)
            acc[l] = is_max ? -FLT_MAX : 0.0f;
        for (int64_t ky = ylo; ky < yhi; ky++) {
            const float *r = x + ((y0 + ky * s->dh) * s->w + x0) * B;
            for (int64_t kx = xlo; kx < xhi; kx++) {
                const float *v = r + kx * s->dw * B;
                if (is_max)
                    for (int l = 0; l < B; l++)
                        acc[l] = v[l] > acc[l] ? v[l] : acc[l];
                else
                    for (int l = 0; l < B; l++)
                        acc[l] += v[l];
            }
        }
        if (is_max) {
            for (int l = 0; l < B; l++)
                o[l] = acc[l];
            continue;
        }
        int64_t cols_div = s->count_include_pad ? taps_padded(x0, s->dw, s->kw, s->w, s->pe_w)
                                                : xhi - xlo;
        float inv = 1.0f / (float)(rows_div * cols_div);
        for (int l = 0; l < B; l++)
            o[l] = acc[l] * inv;
    }
}

void nchwc_pool(const float *x, float *y, int64_t n, int64_t c, const pool_shape *s, bool is_max)
{
    int64_t rows = n * cpu_blocks(c) * s->oh;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t plane = r / s->oh, oy = r % s->oh;
        pool_row(x + plane * s->h * s->w * B, y + (plane * s->oh + oy) * s->ow * B, s, oy,
                 is_max);
    }
}

CPU_MULTIVERSION
static void global_block(const float *x, float *out, int64_t spatial, int64_t lanes, bool is_max)
{
    float acc[B];
    for (int l = 0; l < B; l++)
        acc[l] = is_max ? -FLT_MAX : 0.0f;
    for (int64_t i = 0; i < spatial; i++) {
        const float *v = x + i * B;
        if (is_max)
            for (int l = 0; l < B; l++)
                acc[l] = v[l] > acc[l] ? v[l] : acc[l];
        else
            for (int l = 0; l < B; l++)
                acc[l] += v[l];
    }
    for (int64_t l = 0; l < lanes; l++)
        out[l] = is_max ? acc[l] : acc[l] / (float)spatial;
}

void nchwc_global_pool(const float *x, float *y, int64_t n, int64_t c, int64_t spatial,
                       bool is_max)
{
    int64_t cb = cpu_blocks(c);
#pragma omp parallel for schedule(static) if (n * cb * spatial > 16384)
    for (int64_t i = 0; i < n * cb; i++) {
        int64_t img = i / cb, blk = i % cb;
        int64_t lanes = c - blk * B < B ? c - blk * B : B;
        global_block(x + i * spatial * B, y + img * c + blk * B, spatial, lanes, is_max);
    }
}

/* --- batch-norm affine and Concat --- */

CPU_MULTIVERSION
static void affine_plane(const float *x, float *y, const float *scale, const float *shift,
                         int64_t spatial)
{
    for (int64_t i = 0; i < spatial; i++)
        for (int l = 0; l < B; l++)
            y[i * B + l] = x[i * B + l] * scale[l] + shift[l];
}

void nchwc_channel_affine(const float *x, float *y, const float *scale, const float *shift,
                          int64_t n, int64_t c, int64_t spatial)
{
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
        affine_plane(x + i * spatial * B, y + i * spatial * B, sc, sh, spatial);
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
            memcpy(y + img * out_image + before * spatial, xs[k] + img * floats,
                   (size_t)floats * sizeof(float));
        }
}
