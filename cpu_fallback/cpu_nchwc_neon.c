/* The blocked convolutions' micro-kernel (cpu_nchwc.h) in NEON intrinsics,
 * for arm64 and for ARMv7 with NEON (the Jetson TK1's Cortex-A15).
 *
 * A block of 16 channels is four 128-bit registers. Each step loads four
 * consecutive input channels of a pixel in one register and multiplies the
 * weights by each of its lanes (FMLA by element on arm64), so a tile of ob
 * blocks x p pixels does 16 ob p multiply-adds per 4 ob + p loads.
 * Register budget: arm64 has 32 vector registers, so 1 block x 5 pixels
 * (20 sums, 4 weights, 5 inputs) or 2 x 2; ARMv7 has 16, so 1 x 2 or 2 x 1.
 *
 * Why intrinsics: the portable kernel (cpu_nchwc_tile.c) is what GCC
 * vectorises on its own; on ARMv7 Debian's baseline has no NEON at all, so
 * that path is scalar VFP there. This file is built with -mfpu=neon-vfpv4
 * on ARMv7 and its kernel is handed out only when the CPU reports NEON
 * (AT_HWCAP), so one binary still runs on a board without it. No ARM
 * hardware was available to time it: its instruction counts under qemu are
 * the proxy (bench/arm/neon_proxy.sh).
 */
#include "cpu_nchwc.h"
#include "cpu_simd.h"

#ifdef CPU_SIMD_NEON

#define INLINE __attribute__((always_inline)) static inline
#if defined(__aarch64__)
#define NEON_P1 5 /* pixels of a 1-block tile */
#define NEON_P2 2 /* pixels of a 2-block tile */
#else
#define NEON_P1 2
#define NEON_P2 1
#endif

/* acc += w * lane k of x. ARMv7 has no fused multiply-add by scalar, and
 * a broadcast first (VMOV to a core register, VDUP back) cost GCC two more
 * instructions per lane and pixel: the multiply-accumulate by scalar
 * (VMLA.F32 q, q, d[x]; rounded twice) is one instruction (bench/arm). */
#if defined(__aarch64__)
#define FMA_LANE(acc, w, x, k) vfmaq_laneq_f32(acc, w, x, k)
#else
#define FMA_LANE(acc, w, x, k)                                                                     \
    vmlaq_lane_f32(acc, w, (k) < 2 ? vget_low_f32(x) : vget_high_f32(x), (k) & 1)
#endif

/* One input lane (k of the four in xv[p]) times the weights of OB blocks,
 * read in order from wp. */
#define STEP_LANE(k)                                                                               \
    do {                                                                                           \
        _Pragma("GCC unroll 2") for (int o = 0; o < OB; o++)                                       \
        {                                                                                          \
            float32x4_t w0 = vld1q_f32(wp), w1 = vld1q_f32(wp + 4), w2 = vld1q_f32(wp + 8),      \
                        w3 = vld1q_f32(wp + 12);                                                   \
            wp += CPU_BLOCK;                                                                       \
            _Pragma("GCC unroll 8") for (int p = 0; p < P; p++)                                    \
            {                                                                                      \
                acc[p][o * 4 + 0] = FMA_LANE(acc[p][o * 4 + 0], w0, xv[p], k);                    \
                acc[p][o * 4 + 1] = FMA_LANE(acc[p][o * 4 + 1], w1, xv[p], k);                    \
                acc[p][o * 4 + 2] = FMA_LANE(acc[p][o * 4 + 2], w2, xv[p], k);                    \
                acc[p][o * 4 + 3] = FMA_LANE(acc[p][o * 4 + 3], w3, xv[p], k);                    \
            }                                                                                      \
        }                                                                                          \
    } while (0)

INLINE void tile_neon(const nchwc_tile *t, const int OB, const int P)
{
    float32x4_t acc[NEON_P1][8];
#pragma GCC unroll 8
    for (int p = 0; p < P; p++)
#pragma GCC unroll 8
        for (int o = 0; o < OB * 4; o++)
            acc[p][o] = t->accumulate ? vld1q_f32(t->y + (o / 4) * t->y_ob_stride +
                                                  p * CPU_BLOCK + (o % 4) * 4)
                                      : vdupq_n_f32(0.0f);
    const float *w = t->w;
    int full = t->lanes_last == CPU_BLOCK && t->lane_stride == 1 ? t->cblocks : t->cblocks - 1;
    /* whole blocks of unit-stride channels: four lanes per input load */
    for (int cb = 0; cb < full; cb++)
        for (int tp = 0; tp < t->taps; tp++, w += OB * CPU_BLOCK * CPU_BLOCK) {
            int64_t off = cb * t->cb_stride + t->tap_off[tp];
            const float *wp = w;
            for (int l = 0; l < CPU_BLOCK; l += 4) {
                float32x4_t xv[NEON_P1];
#pragma GCC unroll 8
                for (int p = 0; p < P; p++)
                    xv[p] = vld1q_f32(t->px[p] + off + l);
                STEP_LANE(0);
                STEP_LANE(1);
                STEP_LANE(2);
                STEP_LANE(3);
            }
        }
    /* the last block's lanes (or one-lane taps of an NCHW input), any stride */
    for (int cb = full; cb < t->cblocks; cb++) {
        int lanes = t->lanes_last;
        for (int tp = 0; tp < t->taps; tp++, w += lanes * OB * CPU_BLOCK) {
            int64_t off = cb * t->cb_stride + t->tap_off[tp];
            for (int l = 0; l < lanes; l++)
#pragma GCC unroll 2
                for (int o = 0; o < OB; o++) {
                    const float *wl = w + (l * OB + o) * CPU_BLOCK;
                    float32x4_t w0 = vld1q_f32(wl), w1 = vld1q_f32(wl + 4),
                                w2 = vld1q_f32(wl + 8), w3 = vld1q_f32(wl + 12);
#pragma GCC unroll 8
                    for (int p = 0; p < P; p++) {
                        float32x4_t a = vdupq_n_f32(t->px[p][off + l * t->lane_stride]);
                        acc[p][o * 4 + 0] = neon_fma_q(a, w0, acc[p][o * 4 + 0]);
                        acc[p][o * 4 + 1] = neon_fma_q(a, w1, acc[p][o * 4 + 1]);
                        acc[p][o * 4 + 2] = neon_fma_q(a, w2, acc[p][o * 4 + 2]);
                        acc[p][o * 4 + 3] = neon_fma_q(a, w3, acc[p][o * 4 + 3]);
                    }
                }
        }
    }
    if (t->partial) {
#pragma GCC unroll 8
        for (int o = 0; o < OB * 4; o++)
#pragma GCC unroll 8
            for (int p = 0; p < P; p++)
                vst1q_f32(t->y + (o / 4) * t->y_ob_stride + p * CPU_BLOCK + (o % 4) * 4,
                          acc[p][o]);
        return;
    }
    const act_params *va = simd_act_is_vector(t->act) ? t->act : NULL;
#pragma GCC unroll 2
    for (int o = 0; o < OB; o++) {
        vneon b = t->bias ? vneon_load(t->bias + o * CPU_BLOCK) : vneon_zero();
#pragma GCC unroll 8
        for (int p = 0; p < P; p++) {
            vneon v = {{acc[p][o * 4], acc[p][o * 4 + 1], acc[p][o * 4 + 2], acc[p][o * 4 + 3]}};
            v = vneon_add(v, b);
            int64_t at = o * t->y_ob_stride + p * CPU_BLOCK;
            if (t->res)
                v = vneon_add(v, vneon_load(t->res + at));
            vneon_store(t->y + at, vneon_act(v, va));
        }
    }
}

/* One function per tile shape, as for x86: one dispatcher inlining them
 * all would make the register allocation of each worse. */
#define SHAPE_NEON(o, p)                                                                           \
    __attribute__((noinline)) static void tneon_##o##_##p(const nchwc_tile *t)                     \
    {                                                                                              \
        tile_neon(t, o, p);                                                                        \
    }
#define CASE_NEON(o, p)                                                                            \
    case (o) * 16 + (p): tneon_##o##_##p(t); break;

#if defined(__aarch64__)
SHAPE_NEON(1, 1) SHAPE_NEON(1, 2) SHAPE_NEON(1, 3) SHAPE_NEON(1, 4) SHAPE_NEON(1, 5)
SHAPE_NEON(2, 1) SHAPE_NEON(2, 2)
#define NEON_CASES                                                                                 \
    CASE_NEON(1, 1) CASE_NEON(1, 2) CASE_NEON(1, 3) CASE_NEON(1, 4) CASE_NEON(1, 5)               \
    CASE_NEON(2, 1) CASE_NEON(2, 2)
#else
SHAPE_NEON(1, 1) SHAPE_NEON(1, 2) SHAPE_NEON(2, 1)
#define NEON_CASES CASE_NEON(1, 1) CASE_NEON(1, 2) CASE_NEON(2, 1)
#endif

static void run_neon(const nchwc_tile *tile, int ob, int p)
{
    nchwc_tile copy;
    const float *px[NCHWC_MAX_P];
    const nchwc_tile *t = nchwc_tile_with_pointers(tile, p, &copy, px);
    switch (ob * 16 + p) {
    NEON_CASES
    default: break;
    }
    if (!t->partial && !simd_act_is_vector(t->act))
        nchwc_tile_scalar_act(t, ob, p);
}

const nchwc_isa nchwc_isa_neon = {"NEON", &cpu_simd_neon, 2, {0, NEON_P1, NEON_P2},
                                  {0, NEON_P1, NEON_P2}, run_neon};

#else
typedef int cpu_nchwc_neon_unused; /* ISO C wants a declaration in every file */
#endif /* CPU_SIMD_NEON */
