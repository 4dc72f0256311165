/* ConvTranspose for the CPU backend: per image and group, one SGEMM makes
 * every (output channel, kernel tap) row for each input pixel, and a
 * col2im pass adds each row into the output where that tap lands. The
 * transposed convolution is the gradient of a convolution, so this is the
 * im2col convolution run backwards; upsampling decoders are its users. */
#include <cblas.h>
#include <string.h>

#include "cpu_kernels.h"

size_t cpu_conv_transpose_workspace(const conv_transpose_shape *s)
{
    return (size_t)(s->m / s->group * s->kh * s->kw * s->h * s->w);
}

void cpu_conv_transpose(const conv_transpose_shape *s, const float *x, const float *wt,
                        const float *bias, float *y, float *col)
{
    int64_t cg = s->c / s->group, mg = s->m / s->group, hw = s->h * s->w, ohw = s->oh * s->ow;
    int64_t rows = mg * s->kh * s->kw;
    memset(y, 0, sizeof(float) * (size_t)(s->n * s->m * ohw));
    for (int64_t b = 0; b < s->n; b++)
        for (int64_t g = 0; g < s->group; g++) {
            const float *xg = x + (b * s->c + g * cg) * hw;
            const float *wg = wt + g * cg * rows; /* (cg, mg*kh*kw) */
            /* col (rows x hw) = wg^T (rows x cg) * xg (cg x hw) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)rows, (int)hw, (int)cg,
                        1.0f, wg, (int)rows, xg, (int)hw, 0.0f, col, (int)hw);
            float *yg = y + (b * s->m + g * mg) * ohw;
#pragma omp parallel for schedule(static) if (rows * hw > 32768)
            for (int64_t m = 0; m < mg; m++)
                for (int64_t ki = 0; ki < s->kh; ki++)
                    for (int64_t kj = 0; kj < s->kw; kj++) {
                        const float *cr = col + ((m * s->kh + ki) * s->kw + kj) * hw;
                        float *ym = yg + m * ohw;
                        for (int64_t i = 0; i < s->h; i++) {
                            int64_t oi = i * s->sh - s->ph + ki * s->dh;
                            if (oi < 0 || oi >= s->oh)
                                continue;
                            for (int64_t j = 0; j < s->w; j++) {
                                int64_t oj = j * s->sw - s->pw + kj * s->dw;
                                if (oj >= 0 && oj < s->ow)
                                    ym[oi * s->ow + oj] += cr[i * s->w + j];
                            }
                        }
                    }
        }
    if (bias)
        for (int64_t b = 0; b < s->n; b++)
            for (int64_t m = 0; m < s->m; m++) {
                float *ym = y + (b * s->m + m) * ohw;
                for (int64_t i = 0; i < ohw; i++)
                    ym[i] += bias[m];
            }
}
