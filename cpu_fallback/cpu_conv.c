/* CPU convolution.
 *
 * Three algorithms, picked per layer by cpu_conv_choose():
 *  - im2col + SGEMM, the general case (any kernel, stride, dilation, group);
 *  - 1x1 with stride 1 and no padding, where an NCHW image already is the
 *    C x HW GEMM operand, so im2col would only copy it;
 *  - depthwise (one input channel per group), where a GEMM would have a
 *    single row: a direct sliding window over rows vectorises better.
 * Bias and the fused activation are applied to each image right after its
 * GEMM, while the output is still in cache.
 */
#include <cblas.h>
#include <string.h>

#include "cpu_kernels.h"

const char *cpu_conv_algo_name(cpu_conv_algo a)
{
    switch (a) {
    case CPU_CONV_IM2COL: return "im2col_gemm";
    case CPU_CONV_1X1: return "gemm_1x1";
    case CPU_CONV_DEPTHWISE: return "direct_depthwise";
    default: return "?";
    }
}

bool cpu_conv_supports(cpu_conv_algo a, const conv_shape *s)
{
    switch (a) {
    case CPU_CONV_IM2COL:
        return true;
    case CPU_CONV_1X1:
        return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 &&
               s->pw == 0 && s->oh == s->h && s->ow == s->w && s->group == 1;
    case CPU_CONV_DEPTHWISE:
        return s->group > 1 && s->group == s->c && s->m % s->c == 0;
    default:
        return false;
    }
}

cpu_conv_algo cpu_conv_choose(const conv_shape *s)
{
    if (cpu_conv_supports(CPU_CONV_DEPTHWISE, s))
        return CPU_CONV_DEPTHWISE;
    if (cpu_conv_supports(CPU_CONV_1X1, s))
        return CPU_CONV_1X1;
    return CPU_CONV_IM2COL;
}

size_t cpu_conv_workspace(cpu_conv_algo a, const conv_shape *s)
{
    if (a != CPU_CONV_IM2COL)
        return 0;
    return (size_t)((s->c / s->group) * s->kh * s->kw * s->oh * s->ow);
}

static inline void act_row(float *row, int64_t n, float bias, const act_params *act)
{
    switch (act->kind) {
    case ACT_NONE:
        for (int64_t i = 0; i < n; i++)
            row[i] += bias;
        break;
    case ACT_RELU:
        for (int64_t i = 0; i < n; i++) {
            float v = row[i] + bias;
            row[i] = v > 0.0f ? v : 0.0f;
        }
        break;
    case ACT_CLIP: {
        float lo = act->alpha, hi = act->beta;
        for (int64_t i = 0; i < n; i++) {
            float v = row[i] + bias;
            v = v < lo ? lo : v;
            row[i] = v > hi ? hi : v;
        }
        break;
    }
    case ACT_LEAKY_RELU: {
        float a = act->alpha;
        for (int64_t i = 0; i < n; i++) {
            float v = row[i] + bias;
            row[i] = v >= 0.0f ? v : a * v;
        }
        break;
    }
    default:
        for (int64_t i = 0; i < n; i++)
            row[i] = act_apply(act, row[i] + bias);
        break;
    }
}

void cpu_bias_act(float *y, int64_t channels, int64_t spatial, const float *bias,
                  const act_params *act)
{
    if (!bias && act->kind == ACT_NONE)
        return;
#pragma omp parallel for schedule(static) if (channels * spatial > 32768)
    for (int64_t ch = 0; ch < channels; ch++)
        act_row(y + ch * spatial, spatial, bias ? bias[ch] : 0.0f, act);
}

/* Output columns [*lo, *hi) whose input column ox*stride + offset lies in [0, size). */
static void valid_range(int64_t offset, int64_t stride, int64_t size, int64_t out, int64_t *lo,
                        int64_t *hi)
{
    int64_t a = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int64_t b = size - 1 - offset >= 0 ? (size - 1 - offset) / stride + 1 : 0;
    if (b > out)
        b = out;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

/* Rows (c, ky, kx) x columns (oy, ox) of one image's group of channels. */
static void im2col(const float *x, float *col, const conv_shape *s, int64_t channels)
{
    int64_t rows = channels * s->kh * s->kw, cols = s->oh * s->ow;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++) {
        int64_t kx = r % s->kw, ky = (r / s->kw) % s->kh, c = r / (s->kw * s->kh);
        const float *xc = x + c * s->h * s->w;
        float *dst = col + r * cols;
        int64_t ix0 = kx * s->dw - s->pw, lo, hi;
        valid_range(ix0, s->sw, s->w, s->ow, &lo, &hi);
        for (int64_t oy = 0; oy < s->oh; oy++) {
            float *d = dst + oy * s->ow;
            int64_t iy = oy * s->sh - s->ph + ky * s->dh;
            if (iy < 0 || iy >= s->h) {
                memset(d, 0, (size_t)s->ow * sizeof *d);
                continue;
            }
            const float *xr = xc + iy * s->w;
            for (int64_t ox = 0; ox < lo; ox++)
                d[ox] = 0.0f;
            if (s->sw == 1) {
                memcpy(d + lo, xr + lo + ix0, (size_t)(hi - lo) * sizeof *d);
            } else {
                for (int64_t ox = lo; ox < hi; ox++)
                    d[ox] = xr[ox * s->sw + ix0];
            }
            for (int64_t ox = hi; ox < s->ow; ox++)
                d[ox] = 0.0f;
        }
    }
}

static void conv_im2col(const conv_shape *s, const conv_buffers *b)
{
    int64_t cg = s->c / s->group, mg = s->m / s->group;
    int64_t k = cg * s->kh * s->kw, cols = s->oh * s->ow;
    for (int64_t n = 0; n < s->n; n++) {
        const float *xn = b->x + n * s->c * s->h * s->w;
        float *yn = b->y + n * s->m * cols;
        for (int64_t g = 0; g < s->group; g++) {
            im2col(xn + g * cg * s->h * s->w, b->work, s, cg);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mg, (int)cols, (int)k,
                        1.0f, b->weights + g * mg * k, (int)k, b->work, (int)cols, 0.0f,
                        yn + g * mg * cols, (int)cols);
        }
        cpu_bias_act(yn, s->m, cols, b->bias, &s->act);
    }
}

static void conv_1x1(const conv_shape *s, const conv_buffers *b)
{
    int64_t hw = s->h * s->w;
    for (int64_t n = 0; n < s->n; n++) {
        float *yn = b->y + n * s->m * hw;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->m, (int)hw, (int)s->c,
                    1.0f, b->weights, (int)s->c, b->x + n * s->c * hw, (int)hw, 0.0f, yn,
                    (int)hw);
        cpu_bias_act(yn, s->m, hw, b->bias, &s->act);
    }
}

static void conv_depthwise(const conv_shape *s, const conv_buffers *b)
{
    int64_t mult = s->m / s->c, planes = s->n * s->m;
    int64_t in_plane = s->h * s->w, out_plane = s->oh * s->ow;
#pragma omp parallel for schedule(static)
    for (int64_t idx = 0; idx < planes; idx++) {
        int64_t img = idx / s->m, o = idx % s->m, ic = o / mult;
        const float *xc = b->x + (img * s->c + ic) * in_plane;
        const float *wk = b->weights + o * s->kh * s->kw;
        float *yo = b->y + idx * out_plane;
        float bias = b->bias ? b->bias[o] : 0.0f;
        for (int64_t oy = 0; oy < s->oh; oy++) {
            float *yr = yo + oy * s->ow;
            for (int64_t ox = 0; ox < s->ow; ox++)
                yr[ox] = 0.0f;
            for (int64_t ky = 0; ky < s->kh; ky++) {
                int64_t iy = oy * s->sh - s->ph + ky * s->dh;
                if (iy < 0 || iy >= s->h)
                    continue;
                const float *xr = xc + iy * s->w;
                for (int64_t kx = 0; kx < s->kw; kx++) {
                    float wv = wk[ky * s->kw + kx];
                    int64_t ix0 = kx * s->dw - s->pw, lo, hi;
                    valid_range(ix0, s->sw, s->w, s->ow, &lo, &hi);
                    if (s->sw == 1) {
                        for (int64_t ox = lo; ox < hi; ox++)
                            yr[ox] += wv * xr[ox + ix0];
                    } else {
                        for (int64_t ox = lo; ox < hi; ox++)
                            yr[ox] += wv * xr[ox * s->sw + ix0];
                    }
                }
            }
        }
        act_row(yo, out_plane, bias, &s->act);
    }
}

void cpu_conv_run(cpu_conv_algo a, const conv_shape *s, const conv_buffers *b)
{
    switch (a) {
    case CPU_CONV_1X1: conv_1x1(s, b); break;
    case CPU_CONV_DEPTHWISE: conv_depthwise(s, b); break;
    default: conv_im2col(s, b); break;
    }
}
