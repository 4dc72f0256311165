/* A 16-float vector, one channel block, for each instruction set the CPU
 * kernels are built for; cpu_simd_kernels.inc is written once against it
 * and compiled once per set (cpu_simd_kernels.c).
 *
 *   avx512   one __m512
 *   avx2     two __m256 (with FMA)
 *   neon     four float32x4_t (arm64 always; ARMv7 only in the files built
 *            with -mfpu=neon-vfpv4, cpu_simd_neon.c and cpu_nchwc_neon.c,
 *            whose kernels run once the CPU says it has NEON)
 *   generic  sixteen floats in a struct, plain C loops the compiler
 *            vectorises for whatever it targets
 *
 * Why not let GCC vectorise plain loops under target_clones: it did, but
 * not reliably. A dot product whose partial sums lived in a float[16] came
 * out vectorised along the wrong loop, at 8 GB/s of weights where the same
 * work in vectors streams 20 GB/s on the bench machine.
 */
#ifndef VISIOND_CPU_SIMD_H
#define VISIOND_CPU_SIMD_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../engine/graph.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CPU_SIMD_X86 1
#endif

/* --- portable --- */

#define GEN_FN __attribute__((always_inline)) static inline

typedef struct {
    float f[16];
} vgen;

GEN_FN vgen vgen_load(const float *p)
{
    vgen v;
    memcpy(v.f, p, sizeof v.f);
    return v;
}
GEN_FN void vgen_store(float *p, vgen v)
{
    memcpy(p, v.f, sizeof v.f);
}
GEN_FN vgen vgen_set1(float x)
{
    vgen v;
    for (int i = 0; i < 16; i++)
        v.f[i] = x;
    return v;
}
GEN_FN vgen vgen_zero(void)
{
    return vgen_set1(0.0f);
}
#define VGEN_BINARY(name, expr)                                                                    \
    GEN_FN vgen vgen_##name(vgen a, vgen b)                                                        \
    {                                                                                              \
        vgen r;                                                                                    \
        for (int i = 0; i < 16; i++)                                                               \
            r.f[i] = (expr);                                                                       \
        return r;                                                                                  \
    }
VGEN_BINARY(add, a.f[i] + b.f[i])
VGEN_BINARY(sub, a.f[i] - b.f[i])
VGEN_BINARY(mul, a.f[i] * b.f[i])
VGEN_BINARY(max, a.f[i] > b.f[i] ? a.f[i] : b.f[i])
VGEN_BINARY(min, a.f[i] < b.f[i] ? a.f[i] : b.f[i])
GEN_FN vgen vgen_fma(vgen a, vgen b, vgen c) /* a * b + c */
{
    vgen r;
    for (int i = 0; i < 16; i++)
        r.f[i] = a.f[i] * b.f[i] + c.f[i];
    return r;
}
GEN_FN float vgen_hsum(vgen a)
{
    float s = 0.0f;
    for (int i = 0; i < 16; i++)
        s += a.f[i];
    return s;
}


/* The fused activations with a vector form; the others run per float
 * (cpu_act) after the vector store. NULL: no activation. */
static inline bool simd_act_is_vector(const act_params *a)
{
    return !a || a->kind == ACT_NONE || a->kind == ACT_RELU || a->kind == ACT_CLIP ||
           a->kind == ACT_LEAKY_RELU;
}

/* T_act(v, a): v through a vector-form activation (identity otherwise). */
#define SIMD_ACT(T, FN)                                                                            \
    FN T T##_act(T v, const act_params *a)                                                         \
    {                                                                                              \
        switch (a ? a->kind : ACT_NONE) {                                                          \
        case ACT_RELU: return T##_max(v, T##_zero());                                              \
        case ACT_CLIP: return T##_min(T##_max(v, T##_set1(a->alpha)), T##_set1(a->beta));          \
        case ACT_LEAKY_RELU:                                                                       \
            return T##_add(T##_max(v, T##_zero()), T##_mul(T##_set1(a->alpha), T##_min(v, T##_zero()))); \
        default: return v;                                                                         \
        }                                                                                          \
    }
SIMD_ACT(vgen, GEN_FN)

#ifdef CPU_SIMD_X86

/* --- AVX-512 --- */

#define V512_FN __attribute__((target("avx512f"), always_inline)) static inline

typedef __m512 v512;

V512_FN v512 v512_load(const float *p) { return _mm512_loadu_ps(p); }
V512_FN void v512_store(float *p, v512 v) { _mm512_storeu_ps(p, v); }
V512_FN v512 v512_set1(float x) { return _mm512_set1_ps(x); }
V512_FN v512 v512_zero(void) { return _mm512_setzero_ps(); }
V512_FN v512 v512_add(v512 a, v512 b) { return _mm512_add_ps(a, b); }
V512_FN v512 v512_sub(v512 a, v512 b) { return _mm512_sub_ps(a, b); }
V512_FN v512 v512_mul(v512 a, v512 b) { return _mm512_mul_ps(a, b); }
V512_FN v512 v512_max(v512 a, v512 b) { return _mm512_max_ps(a, b); }
V512_FN v512 v512_min(v512 a, v512 b) { return _mm512_min_ps(a, b); }
V512_FN v512 v512_fma(v512 a, v512 b, v512 c) { return _mm512_fmadd_ps(a, b, c); }
V512_FN float v512_hsum(v512 a) { return _mm512_reduce_add_ps(a); }
SIMD_ACT(v512, V512_FN)

/* --- AVX2 + FMA: two halves --- */

#define V256_FN __attribute__((target("avx2,fma"), always_inline)) static inline

typedef struct {
    __m256 lo, hi;
} v256;

V256_FN v256 v256_load(const float *p)
{
    return (v256){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
V256_FN void v256_store(float *p, v256 v)
{
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}
V256_FN v256 v256_set1(float x)
{
    __m256 s = _mm256_set1_ps(x);
    return (v256){s, s};
}
V256_FN v256 v256_zero(void)
{
    return (v256){_mm256_setzero_ps(), _mm256_setzero_ps()};
}
#define V256_BINARY(name, intr)                                                                    \
    V256_FN v256 v256_##name(v256 a, v256 b)                                                       \
    {                                                                                              \
        return (v256){intr(a.lo, b.lo), intr(a.hi, b.hi)};                                         \
    }
V256_BINARY(add, _mm256_add_ps)
V256_BINARY(sub, _mm256_sub_ps)
V256_BINARY(mul, _mm256_mul_ps)
V256_BINARY(max, _mm256_max_ps)
V256_BINARY(min, _mm256_min_ps)
V256_FN v256 v256_fma(v256 a, v256 b, v256 c)
{
    return (v256){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
V256_FN float v256_hsum(v256 a)
{
    __m256 s = _mm256_add_ps(a.lo, a.hi);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    return _mm_cvtss_f32(q);
}
SIMD_ACT(v256, V256_FN)

#endif /* CPU_SIMD_X86 */

#if defined(__ARM_NEON)
#include <arm_neon.h>
#define CPU_SIMD_NEON 1

/* --- NEON: four quarters --- */

#define VNEON_FN __attribute__((always_inline)) static inline

typedef struct {
    float32x4_t q[4];
} vneon;

/* a * b + c; fused where the FPU has it (arm64, ARMv7 with VFPv4: every
 * Jetson's Cortex-A15/A57/Carmel/A78AE) */
VNEON_FN float32x4_t neon_fma_q(float32x4_t a, float32x4_t b, float32x4_t c)
{
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
    return vfmaq_f32(c, a, b);
#else
    return vmlaq_f32(c, a, b);
#endif
}
VNEON_FN vneon vneon_load(const float *p)
{
    return (vneon){{vld1q_f32(p), vld1q_f32(p + 4), vld1q_f32(p + 8), vld1q_f32(p + 12)}};
}
VNEON_FN void vneon_store(float *p, vneon v)
{
    for (int i = 0; i < 4; i++)
        vst1q_f32(p + 4 * i, v.q[i]);
}
VNEON_FN vneon vneon_set1(float x)
{
    float32x4_t s = vdupq_n_f32(x);
    return (vneon){{s, s, s, s}};
}
VNEON_FN vneon vneon_zero(void)
{
    return vneon_set1(0.0f);
}
#define VNEON_BINARY(name, intr)                                                                   \
    VNEON_FN vneon vneon_##name(vneon a, vneon b)                                                  \
    {                                                                                              \
        return (vneon){{intr(a.q[0], b.q[0]), intr(a.q[1], b.q[1]), intr(a.q[2], b.q[2]),          \
                        intr(a.q[3], b.q[3])}};                                                    \
    }
VNEON_BINARY(add, vaddq_f32)
VNEON_BINARY(sub, vsubq_f32)
VNEON_BINARY(mul, vmulq_f32)
VNEON_BINARY(max, vmaxq_f32)
VNEON_BINARY(min, vminq_f32)
VNEON_FN vneon vneon_fma(vneon a, vneon b, vneon c)
{
    return (vneon){{neon_fma_q(a.q[0], b.q[0], c.q[0]), neon_fma_q(a.q[1], b.q[1], c.q[1]),
                    neon_fma_q(a.q[2], b.q[2], c.q[2]), neon_fma_q(a.q[3], b.q[3], c.q[3])}};
}
VNEON_FN float vneon_hsum(vneon a)
{
    float32x4_t s = vaddq_f32(vaddq_f32(a.q[0], a.q[1]), vaddq_f32(a.q[2], a.q[3]));
#if defined(__aarch64__)
    return vaddvq_f32(s);
#else
    float32x2_t h = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    return vget_lane_f32(vpadd_f32(h, h), 0);
#endif
}
SIMD_ACT(vneon, VNEON_FN)

#endif /* __ARM_NEON */

#endif
