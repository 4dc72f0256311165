/* Unit test of the CPU backend's blocked kernels against naive references
 * written here in double precision on NCHW data: direct convolution
 * (blocked and NCHW inputs and outputs, strides, dilations, padding,
 * channel counts that are not multiples of 16, fused residual and
 * activations), Winograd F(4x4, 3x3), depthwise convolution, pools and the
 * small-batch Gemm. It runs once per micro-kernel set this CPU has
 * (VISIOND_CPU_ISA=avx512, avx2, neon, generic); `make arm-test` builds it
 * for arm64 and ARMv7 and runs it under qemu, NEON and portable C.
 *
 * Built for ARM without a BLAS (-DTEST_NO_BLAS), it brings a naive SGEMM
 * of its own for the few NCHW code paths linked in beside the kernels.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cpu_fallback/cpu_nchwc.h"

#include "check.h"

#ifdef TEST_NO_BLAS
#include <cblas.h>
void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                 const enum CBLAS_TRANSPOSE tb, const blasint m, const blasint n, const blasint k,
                 const float alpha, const float *a, const blasint lda, const float *b,
                 const blasint ldb, const float beta, float *c, const blasint ldc)
{
    CHECK(order == CblasRowMajor);
    for (blasint i = 0; i < m; i++)
        for (blasint j = 0; j < n; j++) {
            double s = 0;
            for (blasint p = 0; p < k; p++)
                s += (double)(ta == CblasTrans ? a[p * lda + i] : a[i * lda + p]) *
                     (tb == CblasTrans ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * ldc + j] = (float)(alpha * s + (beta != 0 ? beta * c[i * ldc + j] : 0));
        }
}
#endif

static unsigned rng = 12345;
static float rnd(void)
{
    rng = rng * 1103515245u + 12345u;
    return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *randoms(size_t n)
{
    float *p = tensor_alloc(n * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++)
        p[i] = rnd();
    return p;
}

/* NCHW [n][c][hw] <-> blocked [n][c/16][hw][16] (padding lanes zero) */
static float *to_blocked(const float *x, int64_t n, int64_t c, int64_t hw)
{
    float *b = tensor_alloc(sizeof(float) * (size_t)nchwc_floats(n, c, hw) + 64);
    memset(b, 0, sizeof(float) * (size_t)nchwc_floats(n, c, hw));
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t p = 0; p < hw; p++)
                b[((i * cpu_blocks(c) + ch / 16) * hw + p) * 16 + ch % 16] = x[(i * c + ch) * hw + p];
    return b;
}

static void from_blocked(const float *b, float *x, int64_t n, int64_t c, int64_t hw)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t p = 0; p < hw; p++)
                x[(i * c + ch) * hw + p] = b[((i * cpu_blocks(c) + ch / 16) * hw + p) * 16 + ch % 16];
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

static void expect_close(const char *what, const float *got, const float *ref, size_t n)
{
    double err = 0, tol = 1e-4 * max_abs(ref, n) + 1e-5;
    for (size_t i = 0; i < n; i++)
        err = fabs((double)got[i] - ref[i]) > err ? fabs((double)got[i] - ref[i]) : err;
    if (!(err <= tol)) {
        fprintf(stderr, "%s: max|diff| %.3g > %.3g\n", what, err, tol);
        exit(1);
    }
}

/* --- convolution --- */

static void conv_ref(const conv_shape *s, const float *x, const float *w, const float *bias,
                     const float *res, float *y)
{
    int64_t cg = s->c / s->group, mg = s->m / s->group;
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t m = 0; m < s->m; m++)
            for (int64_t oy = 0; oy < s->oh; oy++)
                for (int64_t ox = 0; ox < s->ow; ox++) {
                    double acc = bias ? bias[m] : 0;
                    int64_t g = m / mg;
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t ky = 0; ky < s->kh; ky++)
                            for (int64_t kx = 0; kx < s->kw; kx++) {
                                int64_t iy = oy * s->sh - s->ph + ky * s->dh;
                                int64_t ix = ox * s->sw - s->pw + kx * s->dw;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                                    continue;
                                acc += (double)x[((n * s->c + g * cg + c) * s->h + iy) * s->w + ix] *
                                       w[((m * cg + c) * s->kh + ky) * s->kw + kx];
                            }
                    size_t at = (size_t)(((n * s->m + m) * s->oh + oy) * s->ow + ox);
                    if (res)
                        acc += res[at];
                    y[at] = act_apply(&s->act, (float)acc);
                }
}

typedef enum { RUN_DIRECT, RUN_WINOGRAD, RUN_DEPTHWISE } conv_kind;

static void test_conv(const char *name, conv_shape s, conv_kind kind, bool residual)
{
    s.oh = (s.h + 2 * s.ph - s.dh * (s.kh - 1) - 1) / s.sh + 1;
    s.ow = (s.w + 2 * s.pw - s.dw * (s.kw - 1) - 1) / s.sw + 1;
    int64_t in_n = s.n * s.c * s.h * s.w, out_n = s.n * s.m * s.oh * s.ow;
    int64_t cg = s.c / s.group;
    float *x = randoms((size_t)in_n), *w = randoms((size_t)(s.m * cg * s.kh * s.kw));
    float *bias = randoms((size_t)s.m), *res = residual ? randoms((size_t)out_n) : NULL;
    float *ref = tensor_alloc(sizeof(float) * (size_t)out_n), *got = tensor_alloc(sizeof(float) * (size_t)out_n);
    conv_ref(&s, x, w, bias, res, ref);

    float *xb = s.x_blocked ? to_blocked(x, s.n, s.c, s.h * s.w) : x;
    float *rb = res && s.y_blocked ? to_blocked(res, s.n, s.m, s.oh * s.ow) : res;
    size_t y_floats = (size_t)(s.y_blocked ? nchwc_floats(s.n, s.m, s.oh * s.ow) : out_n);
    float *yb = tensor_alloc(sizeof(float) * y_floats + 64);
    nchwc_weights *pw = kind == RUN_DIRECT    ? nchwc_pack_for(&s, w, bias)
                        : kind == RUN_WINOGRAD ? nchwc_winograd_pack(w, bias, s.m, s.c)
                                               : nchwc_depthwise_pack(w, bias, s.c, s.kh * s.kw);
    size_t ws = kind == RUN_DIRECT    ? nchwc_direct_workspace(&s)
                : kind == RUN_WINOGRAD ? nchwc_winograd_workspace(&s, omp_get_max_threads())
                                       : 0;
    float *work = tensor_alloc(sizeof(float) * ws + 64);
    conv_buffers b = {.x = xb, .weights = w, .bias = bias, .y = yb, .work = work,
                      .residual = rb, .packed = pw};
    if (kind == RUN_DIRECT)
        nchwc_direct_run(&s, &b, pw);
    else if (kind == RUN_WINOGRAD)
        nchwc_winograd_run(&s, &b, pw);
    else
        nchwc_depthwise_run(&s, &b);
    if (s.y_blocked)
        from_blocked(yb, got, s.n, s.m, s.oh * s.ow);
    else
        memcpy(got, yb, sizeof(float) * (size_t)out_n);
    expect_close(name, got, ref, (size_t)out_n);

    nchwc_weights_free(pw);
    if (xb != x)
        tensor_free(xb);
    if (rb != res)
        tensor_free(rb);
    tensor_free(x), tensor_free(w), tensor_free(bias), tensor_free(res), tensor_free(ref);
    tensor_free(got), tensor_free(yb), tensor_free(work);
}

static conv_shape shape(int64_t n, int64_t c, int64_t hw, int64_t m, int64_t k, int64_t stride,
                        int64_t pad, int64_t dil, act_kind act)
{
    return (conv_shape){.n = n, .c = c, .h = hw, .w = hw + 1, .m = m, .kh = k, .kw = k,
                        .sh = stride, .sw = stride, .dh = dil, .dw = dil, .ph = pad, .pw = pad,
                        .group = 1, .act = {act, 0.0f, 6.0f}, .x_blocked = true,
                        .y_blocked = true};
}

static void test_convolutions(void)
{
    conv_shape s;
    test_conv("1x1 contiguous", shape(2, 48, 9, 64, 1, 1, 0, 1, ACT_RELU), RUN_DIRECT, true);
    test_conv("1x1 few outputs", shape(1, 40, 12, 16, 1, 1, 0, 1, ACT_NONE), RUN_DIRECT, false);
    test_conv("1x1 stride 2", shape(2, 32, 11, 40, 1, 2, 0, 1, ACT_CLIP), RUN_DIRECT, false);
    test_conv("3x3", shape(2, 24, 10, 72, 3, 1, 1, 1, ACT_RELU), RUN_DIRECT, true);
    test_conv("3x3 stride 2", shape(1, 64, 13, 32, 3, 2, 1, 1, ACT_RELU), RUN_DIRECT, false);
    test_conv("5x5 dilated", shape(1, 16, 14, 20, 5, 1, 4, 2, ACT_LEAKY_RELU), RUN_DIRECT, false);
    s = shape(2, 3, 21, 32, 7, 2, 3, 1, ACT_RELU); /* the network's image */
    s.x_blocked = false;
    test_conv("7x7 stride 2, NCHW in", s, RUN_DIRECT, false);
    s = shape(1, 20, 8, 36, 3, 1, 1, 1, ACT_NONE);
    s.x_blocked = s.y_blocked = false;
    test_conv("3x3 NCHW in and out", s, RUN_DIRECT, true);
    s = shape(1, 32, 8, 24, 3, 1, 1, 1, ACT_SIGMOID);
    s.y_blocked = false;
    test_conv("3x3 blocked in, NCHW out", s, RUN_DIRECT, false);

    test_conv("Winograd", shape(2, 32, 11, 48, 3, 1, 1, 1, ACT_RELU), RUN_WINOGRAD, true);
    test_conv("Winograd odd channels", shape(1, 20, 9, 36, 3, 1, 1, 1, ACT_NONE), RUN_WINOGRAD,
              false);

    s = shape(2, 40, 12, 40, 3, 1, 1, 1, ACT_CLIP);
    s.group = 40;
    test_conv("depthwise 3x3", s, RUN_DEPTHWISE, true);
    s = shape(1, 24, 15, 24, 5, 2, 2, 1, ACT_HARD_SWISH);
    s.group = 24;
    test_conv("depthwise 5x5 stride 2", s, RUN_DEPTHWISE, false);
    s = shape(1, 16, 10, 16, 3, 1, 2, 2, ACT_NONE);
    s.group = 16;
    test_conv("depthwise dilated", s, RUN_DEPTHWISE, false);
}

/* --- pools --- */

static void pool_ref(const float *x, float *y, int64_t nc, const pool_shape *s, bool is_max)
{
    for (int64_t p = 0; p < nc; p++)
        for (int64_t oy = 0; oy < s->oh; oy++)
            for (int64_t ox = 0; ox < s->ow; ox++) {
                double acc = is_max ? -INFINITY : 0;
                int64_t count = 0, padded = 0;
                for (int64_t ky = 0; ky < s->kh; ky++)
                    for (int64_t kx = 0; kx < s->kw; kx++) {
                        int64_t iy = oy * s->sh - s->ph + ky * s->dh;
                        int64_t ix = ox * s->sw - s->pw + kx * s->dw;
                        if (iy < s->h + s->pe_h && ix < s->w + s->pe_w)
                            padded++;
                        if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                            continue;
                        double v = x[(p * s->h + iy) * s->w + ix];
                        acc = is_max ? (v > acc ? v : acc) : acc + v;
                        count++;
                    }
                double r = count == 0 ? 0 : is_max ? acc : acc / (s->count_include_pad ? padded : count);
                y[(p * s->oh + oy) * s->ow + ox] = (float)r;
            }
}

static void test_pool(const char *name, int64_t n, int64_t c, int64_t h, int64_t k, int64_t st,
                      int64_t pad, bool ceil_mode, bool incl, int64_t dil, bool is_max)
{
    pool_shape s = {.nc = n * c, .h = h, .w = h + 2, .kh = k, .kw = k, .sh = st, .sw = st,
                    .dh = dil, .dw = dil, .ph = pad, .pw = pad, .count_include_pad = incl};
    int64_t ext = dil * (k - 1) + 1;
    for (int a = 0; a < 2; a++) {
        int64_t in = (a ? s.w : s.h) + 2 * pad - ext, out = (ceil_mode ? in + st - 1 : in) / st + 1;
        if (ceil_mode && (out - 1) * st >= (a ? s.w : s.h) + pad)
            out--; /* the last window must start inside the input or its left pad */
        *(a ? &s.ow : &s.oh) = out;
    }
    s.pe_h = s.pe_w = pad; /* the plan passes the model's end pads */
    size_t in_n = (size_t)(n * c * s.h * s.w), out_n = (size_t)(n * c * s.oh * s.ow);
    float *x = randoms(in_n), *ref = tensor_alloc(out_n * 4), *got = tensor_alloc(out_n * 4);
    /* ONNX's count_include_pad counts the pads but not ceil_mode's overhang */
    pool_ref(x, ref, n * c, &s, is_max);
    float *xb = to_blocked(x, n, c, s.h * s.w);
    float *yb = tensor_alloc(sizeof(float) * (size_t)nchwc_floats(n, c, s.oh * s.ow) + 64);
    nchwc_pool(xb, yb, n, c, &s, is_max);
    from_blocked(yb, got, n, c, s.oh * s.ow);
    expect_close(name, got, ref, out_n);
    tensor_free(x), tensor_free(ref), tensor_free(got), tensor_free(xb), tensor_free(yb);
}

static void test_pools(void)
{
    test_pool("max 3x3 s2 ceil", 2, 40, 13, 3, 2, 0, true, false, 1, true);
    test_pool("max 3x3 s1 pad", 1, 16, 9, 3, 1, 1, false, false, 1, true);
    test_pool("max dilated", 1, 20, 12, 3, 2, 1, false, false, 2, true);
    test_pool("avg 2x2 s2", 2, 24, 10, 2, 2, 0, false, false, 1, false);
    test_pool("avg 3x3 pad incl", 1, 32, 8, 3, 1, 1, false, true, 1, false);
    test_pool("avg 3x3 s2 pad excl ceil", 1, 17, 11, 3, 2, 1, true, false, 1, false);
}

/* --- the small-batch Gemm --- */

static void test_gemm(bool trans_b, int m)
{
    int64_t k = 37, n = 70;
    float *a = randoms((size_t)(m * k)), *b = randoms((size_t)(k * n)), *c = randoms((size_t)n);
    float *got = tensor_alloc(sizeof(float) * (size_t)(m * n)), *ref = tensor_alloc(sizeof(float) * (size_t)(m * n));
    for (int i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t p = 0; p < k; p++)
                s += (double)a[i * k + p] * (trans_b ? b[j * k + p] : b[p * n + j]);
            ref[i * n + j] = (float)fmax(0.5 * s + 2.0 * c[j], 0);
        }
    shape_t as = {2, {m, k}}, bs = {2, {trans_b ? n : k, trans_b ? k : n}}, cs = {1, {n}};
    gemm_params p = {.alpha = 0.5f, .beta = 2.0f, .trans_b = trans_b};
    act_params relu = {ACT_RELU, 0, 0};
    cpu_gemm(a, &as, b, &bs, c, &cs, got, &p, &relu);
    expect_close(trans_b ? "gemm trans_b" : "gemm", got, ref, (size_t)(m * n));
    tensor_free(a), tensor_free(b), tensor_free(c), tensor_free(got), tensor_free(ref);
}

int main(void)
{
    static const char *const isas[] = {"avx512", "avx2", "neon", "generic"};
    static const char *const names[] = {"AVX-512", "AVX2+FMA", "NEON", "portable C"};
    int ran = 0;
    for (int i = 0; i < 4; i++) {
        setenv("VISIOND_CPU_ISA", isas[i], 1);
        if (strcmp(nchwc_isa_get()->name, names[i]) != 0)
            continue; /* this CPU lacks it */
        test_convolutions();
        test_pools();
        for (int m = 1; m <= 9; m += 4) {
            test_gemm(false, m);
            test_gemm(true, m);
        }
        printf("test_cpu_kernels: %s kernels ok\n", names[i]);
        ran++;
    }
    CHECK(ran >= 1);
    return 0;
}
