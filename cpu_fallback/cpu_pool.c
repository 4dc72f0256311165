/* Max and average pooling over (N*C) planes, and global pooling.
 *
 * A window reduces in two passes per output row: first down the window's
 * valid input rows (an element-wise max or sum of whole rows, which the
 * compiler vectorises), then across each output's valid columns of that
 * row. Bounds are worked out per row and per column once, not per tap.
 *
 * Average pooling follows ONNX (and PyTorch): with count_include_pad the
 * divisor counts padding cells but not the cells a ceil_mode window hangs
 * past the padded input; without it, only cells inside the input count.
 */
#include <float.h>
#include <stdlib.h>

#include "cpu_kernels.h"

/* Taps k of a window starting at `start` with step `dil` that land in [0, size). */
static void valid_taps(int64_t start, int64_t dil, int64_t k, int64_t size, int64_t *lo,
                       int64_t *hi)
{
    int64_t a = start >= 0 ? 0 : (-start + dil - 1) / dil;
    int64_t b = size - 1 - start >= 0 ? (size - 1 - start) / dil + 1 : 0;
    *lo = a;
    *hi = b < k ? b : k;
    if (*lo > *hi)
        *lo = *hi;
}

/* Taps within the padded extent [-pad_begin, size + pad_end). */
static int64_t padded_taps(int64_t start, int64_t dil, int64_t k, int64_t size, int64_t pad_end)
{
    int64_t end = start + (k - 1) * dil + 1, limit = size + pad_end;
    if (end > limit)
        end = limit;
    return end > start ? (end - start + dil - 1) / dil : 0;
}

static void pool(const float *x, float *y, const pool_shape *s, bool is_max)
{
    int64_t planes = s->nc;
    /* per output column: first valid tap, tap count, and the average's divisor share */
    int64_t *cols = malloc(sizeof(int64_t) * 3 * (size_t)(s->ow > 0 ? s->ow : 1));
    if (!cols)
        return;
    for (int64_t ox = 0; ox < s->ow; ox++) {
        int64_t x0 = ox * s->sw - s->pw, xlo, xhi;
        valid_taps(x0, s->dw, s->kw, s->w, &xlo, &xhi);
        cols[3 * ox] = x0 + xlo * s->dw;
        cols[3 * ox + 1] = xhi - xlo;
        cols[3 * ox + 2] = s->count_include_pad ? padded_taps(x0, s->dw, s->kw, s->w, s->pe_w)
                                                : xhi - xlo;
    }
#pragma omp parallel
    {
        float *row = malloc(sizeof(float) * (size_t)(s->w > 0 ? s->w : 1));
#pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            const float *xp = x + p * s->h * s->w;
            float *yp = y + p * s->oh * s->ow;
            for (int64_t oy = 0; oy < s->oh; oy++) {
                int64_t y0 = oy * s->sh - s->ph, ylo, yhi;
                valid_taps(y0, s->dh, s->kh, s->h, &ylo, &yhi);
                float *out = yp + oy * s->ow;
                if (!row || ylo >= yhi) { /* a window entirely in the padding */
                    for (int64_t ox = 0; ox < s->ow; ox++)
                        out[ox] = 0.0f;
                    continue;
                }
                const float *r0 = xp + (y0 + ylo * s->dh) * s->w;
                for (int64_t i = 0; i < s->w; i++)
                    row[i] = r0[i];
                for (int64_t ky = ylo + 1; ky < yhi; ky++) {
                    const float *r = xp + (y0 + ky * s->dh) * s->w;
                    if (is_max)
                        for (int64_t i = 0; i < s->w; i++)
                            row[i] = r[i] > row[i] ? r[i] : row[i];
                    else
                        for (int64_t i = 0; i < s->w; i++)
                            row[i] += r[i];
                }
                int64_t rows = yhi - ylo;
                int64_t prow = s->count_include_pad
                                   ? padded_taps(y0, s->dh, s->kh, s->h, s->pe_h)
                                   : rows;
                int64_t dw = s->dw;
                for (int64_t ox = 0; ox < s->ow; ox++) {
                    int64_t n = cols[3 * ox + 1];
                    if (n <= 0) {
                        out[ox] = 0.0f;
                        continue;
                    }
                    const float *c = row + cols[3 * ox];
                    float acc = c[0];
                    if (is_max) {
                        for (int64_t k = 1; k < n; k++)
                            acc = c[k * dw] > acc ? c[k * dw] : acc;
                    } else {
                        for (int64_t k = 1; k < n; k++)
                            acc += c[k * dw];
                        acc /= (float)(prow * cols[3 * ox + 2]);
                    }
                    out[ox] = acc;
                }
            }
        }
        free(row);
    }
    free(cols);
}

void cpu_maxpool(const float *x, float *y, const pool_shape *s)
{
    pool(x, y, s, true);
}

void cpu_avgpool(const float *x, float *y, const pool_shape *s)
{
    pool(x, y, s, false);
}

void cpu_global_pool(const float *x, float *y, int64_t nc, int64_t spatial, bool is_max)
{
#pragma omp parallel for schedule(static) if (nc * spatial > 65536)
    for (int64_t p = 0; p < nc; p++) {
        const float *xp = x + p * spatial;
        if (is_max) {
            float best = spatial ? xp[0] : 0.0f;
            for (int64_t i = 1; i < spatial; i++)
                best = xp[i] > best ? xp[i] : best;
            y[p] = best;
        } else {
            double sum = 0.0;
            for (int64_t i = 0; i < spatial; i++)
                sum += xp[i];
            y[p] = spatial ? (float)(sum / (double)spatial) : 0.0f;
        }
    }
}
