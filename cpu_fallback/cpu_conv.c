/* CPU convolution: the algorithms and the per-layer choice between them.
 *
 * Activations in 16-channel blocks (cpu_layout.c decides which) take the
 * blocked kernels: direct_nchw16c (cpu_nchwc_conv.c, any kernel, stride,
 * dilation; 1x1 included), winograd_nchw16c (F(4x4,3x3), cpu_nchwc_winograd.c)
 * and depthwise_nchw16c. Plain NCHW activations take the algorithms here:
 *  - im2col + SGEMM, the general case (any kernel, stride, dilation, group);
 *  - 1x1 with stride 1 and no padding, where an NCHW image already is the
 *    C x HW GEMM operand, so im2col would only copy it;
 *  - depthwise (one input channel per group), where a GEMM would have a
 *    single row: a direct sliding window over rows vectorises better;
 *  - Winograd F(4x4,3x3) with the element-wise products as GEMMs.
 * Bias and the fused activation are applied to each image right after its
 * GEMM, while the output is still in cache.
 */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_kernels.h"
#include "cpu_nchwc.h"

#ifdef __clang__ /* "omp simd" is a request: an unoptimised (sanitizer) build need not honour it */
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#define DEPTHWISE_MAX_KW 64 /* wider depthwise kernels take the im2col path */

/* In cpu_conv_algo's order, NULL-terminated (the backend's conv_algorithms). */
const char *const cpu_conv_algo_names[CPU_CONV_ALGO_COUNT + 1] = {
    [CPU_CONV_IM2COL] = "im2col_gemm",
    [CPU_CONV_1X1] = "gemm_1x1",
    [CPU_CONV_DEPTHWISE] = "direct_depthwise",
    [CPU_CONV_WINOGRAD] = "winograd_f4x4",
    [CPU_CONV_DIRECT_NCHWC] = "direct_nchw16c",
    [CPU_CONV_WINOGRAD_NCHWC] = "winograd_nchw16c",
    [CPU_CONV_DEPTHWISE_NCHWC] = "depthwise_nchw16c",
    [CPU_CONV_ALGO_COUNT] = NULL,
};

const char *cpu_conv_algo_name(cpu_conv_algo a)
{
    return a >= 0 && a < CPU_CONV_ALGO_COUNT ? cpu_conv_algo_names[a] : "?";
}

int cpu_conv_algo_by_name(const char *name)
{
    for (int a = 0; a < CPU_CONV_ALGO_COUNT; a++)
        if (strcmp(name, cpu_conv_algo_name((cpu_conv_algo)a)) == 0)
            return a;
    return -1;
}

bool cpu_conv_supports(cpu_conv_algo a, const conv_shape *s)
{
    bool plain = !s->x_blocked && !s->y_blocked; /* the NCHW algorithms */
    switch (a) {
    case CPU_CONV_DIRECT_NCHWC:
        return nchwc_direct_applies(s);
    case CPU_CONV_WINOGRAD_NCHWC:
        return nchwc_winograd_applies(s);
    case CPU_CONV_DEPTHWISE_NCHWC:
        return nchwc_depthwise_applies(s);
    default:
        break;
    }
    if (!plain)
        return false;
    switch (a) {
    case CPU_CONV_IM2COL:
        return true;
    case CPU_CONV_1X1:
        return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 &&
               s->pw == 0 && s->oh == s->h && s->ow == s->w && s->group == 1;
    case CPU_CONV_DEPTHWISE:
        return s->group > 1 && s->group == s->c && s->m % s->c == 0 &&
               s->kw <= DEPTHWISE_MAX_KW;
    case CPU_CONV_WINOGRAD:
        return cpu_winograd_applies(s);
    default:
        return false;
    }
}

/* The rule behind conv_algo "auto" (timing every layer is conv_algo
 * "exhaustive"). Winograd F(4x4, 3x3) needs enough tiles to amortise its
 * transforms and 4x larger filters: measured on a 2-core AVX-512 Xeon
 * (`visiond bench --conv-algo exhaustive --algos` over resnet18/50, vgg16,
 * googlenet and squeezenet at batch 1 and 8) it was 1.3-2.7x faster than
 * im2col + SGEMM wherever C >= 32 and there were >= 16 tiles of 4x4, and
 * 0.4-0.9x for C = 3 or 16 or a single 7x7 map (4 tiles). */
cpu_conv_algo cpu_conv_choose(const conv_shape *s)
{
    if (cpu_conv_supports(CPU_CONV_DEPTHWISE_NCHWC, s))
        return CPU_CONV_DEPTHWISE_NCHWC;
    if (s->x_blocked || s->y_blocked) {
        int64_t tiles = s->n * ((s->oh + 3) / 4) * ((s->ow + 3) / 4);
        if (cpu_conv_supports(CPU_CONV_WINOGRAD_NCHWC, s) && s->c >= 32 && tiles >= 16)
            return CPU_CONV_WINOGRAD_NCHWC;
        return CPU_CONV_DIRECT_NCHWC;
    }
    if (cpu_conv_supports(CPU_CONV_DEPTHWISE, s))
        return CPU_CONV_DEPTHWISE;
    if (cpu_conv_supports(CPU_CONV_1X1, s))
        return CPU_CONV_1X1;
    int64_t tiles = s->n * ((s->oh + 3) / 4) * ((s->ow + 3) / 4);
    if (cpu_conv_supports(CPU_CONV_WINOGRAD, s) && s->c >= 32 && tiles >= 16)
        return CPU_CONV_WINOGRAD;
    return CPU_CONV_IM2COL;
}

/* The zero-bordered plane of the 3x3 depthwise kernel. */
/* Stride 1, kernels up to 11 wide other than the 3x3 (ConvNeXt's 7x7,
 * MobileNetV3's 5x5, dilated or not): the padded-plane path below. */
static bool depthwise_tiled(const conv_shape *s)
{
    return s->sh == 1 && s->sw == 1 && s->kw <= 11 && s->kh <= 11 &&
           !(s->kh == 3 && s->kw == 3 && s->dh == 1 && s->dw == 1);
}

/* The zero-bordered plane of depthwise_tiled: every output tile of 16
 * columns reads its taps without a bounds check, 16 columns of slack. */
static void depthwise_tiled_scratch(const conv_shape *s, int64_t *pw_total, int64_t *ph_total)
{
    int64_t need_w = s->ow + (s->kw - 1) * s->dw, need_h = s->oh + (s->kh - 1) * s->dh;
    *pw_total = ((need_w > s->w + s->pw ? need_w : s->w + s->pw) + 15) / 16 * 16 + 16;
    *ph_total = need_h > s->h + s->ph ? need_h : s->h + s->ph;
}

static void depthwise_scratch(const conv_shape *s, int64_t *pw_total, int64_t *ph_total)
{
    if (depthwise_tiled(s)) {
        depthwise_tiled_scratch(s, pw_total, ph_total);
        return;
    }
    *pw_total = (s->ow - 1) * s->sw + 3;
    *ph_total = (s->oh - 1) * s->sh + 3;
    if (*pw_total < s->w + s->pw)
        *pw_total = s->w + s->pw;
    if (*ph_total < s->h + s->ph)
        *ph_total = s->h + s->ph;
}

/* With the output in the residual's buffer (y_holds_residual), the blocked
 * algorithms read each residual element just before writing its sum; the
 * NCHW ones write their GEMM's product over y first, so they get a copy of
 * the residual at the start of their workspace. */
static bool needs_residual_copy(cpu_conv_algo a, const conv_shape *s)
{
    return s->y_holds_residual && a != CPU_CONV_DIRECT_NCHWC && a != CPU_CONV_WINOGRAD_NCHWC &&
           a != CPU_CONV_DEPTHWISE_NCHWC;
}

static size_t residual_copy_floats(cpu_conv_algo a, const conv_shape *s)
{
    size_t n = needs_residual_copy(a, s) ? (size_t)(s->n * s->m * s->oh * s->ow) : 0;
    return (n + 15) / 16 * 16; /* keeps the rest of the workspace 64-byte aligned */
}

static size_t workspace_floats(cpu_conv_algo a, const conv_shape *s, int threads)
{
    switch (a) {
    case CPU_CONV_DIRECT_NCHWC:
        return nchwc_direct_workspace(s);
    case CPU_CONV_WINOGRAD_NCHWC:
        return nchwc_winograd_workspace(s, threads);
    case CPU_CONV_IM2COL:
        return (size_t)((s->c / s->group) * s->kh * s->kw * s->oh * s->ow);
    case CPU_CONV_WINOGRAD:
        return cpu_winograd_workspace(s, threads);
    case CPU_CONV_DEPTHWISE: {
        int64_t pw, ph;
        depthwise_scratch(s, &pw, &ph);
        return (s->kh == 3 && s->kw == 3 && s->dh == 1 && s->dw == 1) || depthwise_tiled(s)
                   ? (size_t)(pw * ph) * (size_t)(threads > 0 ? threads : 1)
                   : 0;
    }
    default:
        return 0;
    }
}

size_t cpu_conv_workspace(cpu_conv_algo a, const conv_shape *s, int threads)
{
    return residual_copy_floats(a, s) + workspace_floats(a, s, threads);
}

CPU_MULTIVERSION
void cpu_act_row(float *row, int64_t n, float bias, const float *residual, const act_params *act)
{
    if (residual) /* a fused residual Add comes before the activation */
        for (int64_t i = 0; i < n; i++)
            row[i] += residual[i];
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
                  const float *residual, const act_params *act)
{
    if (!bias && !residual && act->kind == ACT_NONE)
        return;
#pragma omp parallel for schedule(static) if (channels * spatial > 32768)
    for (int64_t ch = 0; ch < channels; ch++)
        cpu_act_row(y + ch * spatial, spatial, bias ? bias[ch] : 0.0f,
                    residual ? residual + ch * spatial : NULL, act);
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
        cpu_bias_act(yn, s->m, cols, b->bias, b->residual ? b->residual + n * s->m * cols : NULL,
                     &s->act);
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
        cpu_bias_act(yn, s->m, hw, b->bias, b->residual ? b->residual + n * s->m * hw : NULL,
                     &s->act);
    }
}

/* One output plane of a depthwise convolution: each output row sums the
 * kernel's taps as whole-row multiply-adds over the columns where the tap
 * lands inside the input (lo[kx]..hi[kx], worked out once per layer). */
CPU_MULTIVERSION
static void depthwise_plane(const float *xc, const float *wk, float *yo, float bias,
                            const float *res, const conv_shape *s, const int64_t *lo,
                            const int64_t *hi)
{
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
                int64_t ix0 = kx * s->dw - s->pw;
                if (s->sw == 1) {
                    const float *src = xr + ix0 + lo[kx]; /* in bounds from lo[kx] on */
                    float *dst = yr + lo[kx];
                    for (int64_t i = 0; i < hi[kx] - lo[kx]; i++)
                        dst[i] += wv * src[i];
                } else {
                    for (int64_t ox = lo[kx]; ox < hi[kx]; ox++)
                        yr[ox] += wv * xr[ox * s->sw + ix0];
                }
            }
        }
        cpu_act_row(yr, s->ow, bias, res ? res + oy * s->ow : NULL, &s->act);
    }
}

/* The common depthwise case, 3x3 without dilation (MobileNet, EfficientNet,
 * ShuffleNet): the plane is first copied into a zero-bordered scratch so
 * that every output column reads its nine taps without a bounds check, and
 * the sums stay in registers. */
CPU_MULTIVERSION
static void depthwise3x3_plane(const float *xc, const float *wk, float *yo, float bias,
                               const float *res, const conv_shape *s, float *scratch,
                               int64_t pw_total, int64_t ph_total)
{
    for (int64_t i = 0; i < pw_total * ph_total; i++)
        scratch[i] = 0.0f;
    for (int64_t y = 0; y < s->h && y + s->ph < ph_total; y++) {
        float *dst = scratch + (y + s->ph) * pw_total + s->pw;
        const float *src = xc + y * s->w;
        int64_t n = s->w < pw_total - s->pw ? s->w : pw_total - s->pw;
        for (int64_t x = 0; x < n; x++)
            dst[x] = src[x];
    }
    float w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6],
          w7 = wk[7], w8 = wk[8];
    for (int64_t oy = 0; oy < s->oh; oy++) {
        const float *r0 = scratch + oy * s->sh * pw_total;
        const float *r1 = r0 + pw_total, *r2 = r1 + pw_total;
        float *yr = yo + oy * s->ow;
        if (s->sw == 1) {
            for (int64_t ox = 0; ox < s->ow; ox++)
                yr[ox] = w0 * r0[ox] + w1 * r0[ox + 1] + w2 * r0[ox + 2] + w3 * r1[ox] +
                         w4 * r1[ox + 1] + w5 * r1[ox + 2] + w6 * r2[ox] + w7 * r2[ox + 1] +
                         w8 * r2[ox + 2];
        } else {
            int64_t st = s->sw;
            for (int64_t ox = 0; ox < s->ow; ox++) {
                int64_t i = ox * st;
                yr[ox] = w0 * r0[i] + w1 * r0[i + 1] + w2 * r0[i + 2] + w3 * r1[i] +
                         w4 * r1[i + 1] + w5 * r1[i + 2] + w6 * r2[i] + w7 * r2[i + 1] +
                         w8 * r2[i + 2];
            }
        }
        cpu_act_row(yr, s->ow, bias, res ? res + oy * s->ow : NULL, &s->act);
    }
}

/* depthwise_tiled: 16 output columns at a time summed in one vector
 * register over every tap, from a zero-bordered copy of the plane. */
CPU_MULTIVERSION
static void depthwise_tiled_plane(const float *xc, const float *wk, float *yo, float bias,
                                  const float *res, const conv_shape *s, float *scratch,
                                  int64_t pw_total, int64_t ph_total)
{
    for (int64_t i = 0; i < pw_total * ph_total; i++)
        scratch[i] = 0.0f;
    for (int64_t y = 0; y < s->h; y++)
        memcpy(scratch + (y + s->ph) * pw_total + s->pw, xc + y * s->w,
               (size_t)s->w * sizeof(float));
    for (int64_t oy = 0; oy < s->oh; oy++) {
        float *yr = yo + oy * s->ow;
        for (int64_t ox = 0; ox < s->ow; ox += 16) {
            float acc[16] = {0};
            for (int64_t ky = 0; ky < s->kh; ky++) {
                const float *r = scratch + (oy + ky * s->dh) * pw_total + ox;
                for (int64_t kx = 0; kx < s->kw; kx++) {
                    float wv = wk[ky * s->kw + kx];
                    const float *t = r + kx * s->dw;
#pragma omp simd
                    for (int l = 0; l < 16; l++)
                        acc[l] += wv * t[l];
                }
            }
            int64_t n = s->ow - ox < 16 ? s->ow - ox : 16;
            memcpy(yr + ox, acc, (size_t)n * sizeof(float));
        }
        cpu_act_row(yr, s->ow, bias, res ? res + oy * s->ow : NULL, &s->act);
    }
}

static void conv_depthwise(const conv_shape *s, const conv_buffers *b)
{
    int64_t mult = s->m / s->c, planes = s->n * s->m;
    int64_t in_plane = s->h * s->w, out_plane = s->oh * s->ow;
    bool three = s->kh == 3 && s->kw == 3 && s->dh == 1 && s->dw == 1;
    if (three || depthwise_tiled(s)) {
        /* each thread's zero-bordered plane: its slice of the workspace */
        int64_t pw_total, ph_total;
        depthwise_scratch(s, &pw_total, &ph_total);
#pragma omp parallel
        {
            float *scratch = b->work + (size_t)omp_get_thread_num() * (size_t)(pw_total * ph_total);
#pragma omp for schedule(static)
            for (int64_t idx = 0; idx < planes; idx++) {
                int64_t img = idx / s->m, o = idx % s->m, ic = o / mult;
                const float *x = b->x + (img * s->c + ic) * in_plane;
                const float *w = b->weights + o * s->kh * s->kw;
                float bias = b->bias ? b->bias[o] : 0.0f;
                const float *res = b->residual ? b->residual + idx * out_plane : NULL;
                if (three)
                    depthwise3x3_plane(x, w, b->y + idx * out_plane, bias, res, s, scratch,
                                       pw_total, ph_total);
                else
                    depthwise_tiled_plane(x, w, b->y + idx * out_plane, bias, res, s, scratch,
                                          pw_total, ph_total);
            }
        }
        return;
    }
    int64_t lo[DEPTHWISE_MAX_KW], hi[DEPTHWISE_MAX_KW];
    for (int64_t kx = 0; kx < s->kw; kx++)
        valid_range(kx * s->dw - s->pw, s->sw, s->w, s->ow, &lo[kx], &hi[kx]);
#pragma omp parallel for schedule(static)
    for (int64_t idx = 0; idx < planes; idx++) {
        int64_t img = idx / s->m, o = idx % s->m, ic = o / mult;
        depthwise_plane(b->x + (img * s->c + ic) * in_plane, b->weights + o * s->kh * s->kw,
                        b->y + idx * out_plane, b->bias ? b->bias[o] : 0.0f,
                        b->residual ? b->residual + idx * out_plane : NULL, s, lo, hi);
    }
}

void cpu_conv_run(cpu_conv_algo a, const conv_shape *s, const conv_buffers *in)
{
    conv_buffers copy;
    const conv_buffers *b = in;
    if (needs_residual_copy(a, s) && in->residual) {
        copy = *in;
        copy.work = in->work + residual_copy_floats(a, s);
        memcpy(in->work, in->residual, (size_t)(s->n * s->m * s->oh * s->ow) * sizeof(float));
        copy.residual = in->work;
        b = &copy;
    }
    switch (a) {
    case CPU_CONV_1X1: conv_1x1(s, b); break;
    case CPU_CONV_DEPTHWISE: conv_depthwise(s, b); break;
    case CPU_CONV_WINOGRAD: cpu_winograd_run(s, b, b->winograd_u); break;
    case CPU_CONV_DIRECT_NCHWC: nchwc_direct_run(s, b, b->packed); break;
    case CPU_CONV_WINOGRAD_NCHWC: nchwc_winograd_run(s, b, b->packed); break;
    case CPU_CONV_DEPTHWISE_NCHWC: nchwc_depthwise_run(s, b); break;
    default: conv_im2col(s, b); break;
    }
}
