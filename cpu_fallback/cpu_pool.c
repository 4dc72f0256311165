/* Max and average pooling over (N*C) planes, and global pooling.
 *
 * Average pooling follows ONNX (and PyTorch): with count_include_pad the
 * divisor counts padding cells but not the cells a ceil_mode window hangs
 * past the padded input; without it, only cells inside the input count.
 */
#include <float.h>

#include "cpu_kernels.h"

void cpu_maxpool(const float *x, float *y, const pool_shape *s)
{
#pragma omp parallel for schedule(static) if (s->nc * s->oh * s->ow > 16384)
    for (int64_t p = 0; p < s->nc; p++) {
        const float *xp = x + p * s->h * s->w;
        float *yp = y + p * s->oh * s->ow;
        for (int64_t oy = 0; oy < s->oh; oy++)
            for (int64_t ox = 0; ox < s->ow; ox++) {
                float best = -FLT_MAX;
                bool any = false;
                for (int64_t ky = 0; ky < s->kh; ky++) {
                    int64_t iy = oy * s->sh - s->ph + ky * s->dh;
                    if (iy < 0 || iy >= s->h)
                        continue;
                    for (int64_t kx = 0; kx < s->kw; kx++) {
                        int64_t ix = ox * s->sw - s->pw + kx * s->dw;
                        if (ix < 0 || ix >= s->w)
                            continue;
                        float v = xp[iy * s->w + ix];
                        if (!any || v > best || v != v)
                            best = v;
                        any = true;
                    }
                }
                yp[oy * s->ow + ox] = any ? best : 0.0f;
            }
    }
}

void cpu_avgpool(const float *x, float *y, const pool_shape *s)
{
#pragma omp parallel for schedule(static) if (s->nc * s->oh * s->ow > 16384)
    for (int64_t p = 0; p < s->nc; p++) {
        const float *xp = x + p * s->h * s->w;
        float *yp = y + p * s->oh * s->ow;
        for (int64_t oy = 0; oy < s->oh; oy++) {
            int64_t y0 = oy * s->sh - s->ph, y1 = y0 + (s->kh - 1) * s->dh + 1;
            int64_t y1p = y1 < s->h + s->pe_h ? y1 : s->h + s->pe_h;
            for (int64_t ox = 0; ox < s->ow; ox++) {
                int64_t x0 = ox * s->sw - s->pw, x1 = x0 + (s->kw - 1) * s->dw + 1;
                int64_t x1p = x1 < s->w + s->pe_w ? x1 : s->w + s->pe_w;
                float sum = 0.0f;
                int64_t count = 0;
                for (int64_t iy = y0; iy < y1; iy += s->dh) {
                    if (iy < 0 || iy >= s->h)
                        continue;
                    for (int64_t ix = x0; ix < x1; ix += s->dw) {
                        if (ix < 0 || ix >= s->w)
                            continue;
                        sum += xp[iy * s->w + ix];
                        count++;
                    }
                }
                if (s->count_include_pad) {
                    int64_t ny = 0, nx = 0;
                    for (int64_t iy = y0; iy < y1p; iy += s->dh)
                        ny++;
                    for (int64_t ix = x0; ix < x1p; ix += s->dw)
                        nx++;
                    count = ny * nx;
                }
                yp[oy * s->ow + ox] = count ? sum / (float)count : 0.0f;
            }
        }
    }
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
