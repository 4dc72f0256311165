/* The micro-kernel of the blocked convolutions (cpu_nchwc.h), written three
 * times here (the fourth, NEON, is cpu_nchwc_neon.c): AVX-512 (one
 * register per block of 16 channels, up to 4 blocks x 6
 * pixels of sums in 24 of its 32 registers; 1 x 24 when the pixels are
 * contiguous), AVX2+FMA (two registers a block, 16 registers: 1 block x 6
 * pixels or 2 x 2) and portable C, which
 * compilers vectorise for NEON or SSE. Each step of the reduction loads the
 * weights of the tile's output blocks once and broadcasts one input value
 * per pixel, so a tile does ob x p multiply-adds per ob + p loads.
 *
 * Why intrinsics rather than GCC's generic vectors: measured on the 2-core
 * Xeon of the bench, the same loop in 64-byte generic vectors ran at 150
 * GFLOP/s with AVX-512 and 21 with AVX2 (GCC spills the split halves),
 * against 270 for these intrinsics. The x86 versions sit behind target
 * attributes and __builtin_cpu_supports, so one binary runs everywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__aarch64__) || defined(__arm__)
#include <sys/auxv.h>
#endif

#include "cpu_nchwc.h"
#include "cpu_simd.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NCHWC_X86 1
#endif

#define MAX_P NCHWC_MAX_CONTIG_P
#define INLINE __attribute__((always_inline)) static inline

/* Activations without a vector form (simd_act_is_vector) run as a scalar
 * pass over the stored tile. */
void nchwc_tile_scalar_act(const nchwc_tile *t, int ob, int p)
{
    for (int o = 0; o < ob; o++)
        for (int i = 0; i < p * CPU_BLOCK; i++)
            t->y[o * t->y_ob_stride + i] = act_apply(t->act, t->y[o * t->y_ob_stride + i]);
}

/* --- portable C --- */

INLINE void tile_generic(const nchwc_tile *t, const int OB, const int P)
{
    float acc[MAX_P][2][CPU_BLOCK];
    for (int p = 0; p < P; p++)
        for (int o = 0; o < OB; o++)
            for (int j = 0; j < CPU_BLOCK; j++)
                acc[p][o][j] = t->accumulate ? t->y[o * t->y_ob_stride + p * CPU_BLOCK + j] : 0.0f;
    const float *w = t->w;
    for (int cb = 0; cb < t->cblocks; cb++) {
        int lanes = cb == t->cblocks - 1 ? t->lanes_last : CPU_BLOCK;
        for (int tp = 0; tp < t->taps; tp++) {
            int64_t off = cb * t->cb_stride + t->tap_off[tp];
            for (int l = 0; l < lanes; l++, w += OB * CPU_BLOCK)
                for (int p = 0; p < P; p++) {
                    float a = t->px[p][off + l * t->lane_stride];
                    for (int o = 0; o < OB; o++)
                        for (int j = 0; j < CPU_BLOCK; j++)
                            acc[p][o][j] += a * w[o * CPU_BLOCK + j];
                }
        }
    }
    for (int o = 0; o < OB; o++)
        for (int p = 0; p < P; p++) {
            float *y = t->y + o * t->y_ob_stride + p * CPU_BLOCK;
            const float *r = t->res ? t->res + o * t->y_ob_stride + p * CPU_BLOCK : NULL;
            for (int j = 0; j < CPU_BLOCK; j++) {
                float v = acc[p][o][j];
                if (!t->partial) {
                    v += t->bias ? t->bias[o * CPU_BLOCK + j] : 0.0f;
                    v += r ? r[j] : 0.0f;
                    v = t->act ? cpu_act(t->act, v) : v;
                }
                y[j] = v;
            }
        }
}

/* A contiguous tile for kernels that address pixels by pointers. */
const nchwc_tile *nchwc_tile_with_pointers(const nchwc_tile *t, int p, nchwc_tile *copy,
                                           const float **px)
{
    if (!t->contiguous)
        return t;
    for (int i = 0; i < p; i++)
        px[i] = t->px[0] + i * CPU_BLOCK;
    *copy = *t;
    copy->px = px;
    copy->contiguous = false;
    return copy;
}

static void run_generic(const nchwc_tile *tile, int ob, int p)
{
    nchwc_tile copy;
    const float *px[NCHWC_MAX_P];
    const nchwc_tile *t = nchwc_tile_with_pointers(tile, p, &copy, px);
    switch (ob * 16 + p) {
    case 16 + 1: tile_generic(t, 1, 1); break;
    case 16 + 2: tile_generic(t, 1, 2); break;
    case 16 + 3: tile_generic(t, 1, 3); break;
    case 16 + 4: tile_generic(t, 1, 4); break;
    case 32 + 1: tile_generic(t, 2, 1); break;
    case 32 + 2: tile_generic(t, 2, 2); break;
    default: break;
    }
}

static const nchwc_isa isa_generic = {"portable C", &cpu_simd_generic, 2, {0, 4, 2}, {0, 4, 2},
                                      run_generic};

#ifdef NCHWC_X86

/* --- AVX-512 --- */

#define AVX512 __attribute__((target("avx512f"), always_inline)) static inline

AVX512 void tile512(const nchwc_tile *t, const int OB, const int P, const bool CONTIG)
{
    __m512 acc[MAX_P][4];
#pragma GCC unroll 32
    for (int p = 0; p < P; p++)
#pragma GCC unroll 32
        for (int o = 0; o < OB; o++)
            acc[p][o] = t->accumulate ? _mm512_loadu_ps(t->y + o * t->y_ob_stride + p * CPU_BLOCK)
                                      : _mm512_setzero_ps();
    const float *w = t->w;
    bool flat = t->cblocks == 1 && t->lanes_last == 1;
    int full = flat ? 0
               : t->lanes_last == CPU_BLOCK && t->lane_stride == 1 ? t->cblocks
                                                                   : t->cblocks - 1;
    /* The hot loop: whole blocks of 16 channels, one straight nest with no
     * other path through it, so the sums stay in registers throughout (a
     * second, rolled path inside the nest made GCC spill them). */
    for (int cb = 0; cb < full; cb++)
        for (int tp = 0; tp < t->taps; tp++, w += OB * CPU_BLOCK * CPU_BLOCK) {
            int64_t off = cb * t->cb_stride + t->tap_off[tp];
            const float *xp[MAX_P];
#pragma GCC unroll 32
            for (int p = 0; p < P; p++)
                xp[p] = CONTIG ? t->px[0] + off + p * CPU_BLOCK : t->px[p] + off;
            /* The next block's lines of the same tap, one block ahead: a
             * block's 16 steps are more than the out-of-order window holds,
             * so without this each block began with a stall on its first
             * broadcasts (measured: the 1x1 layers of resnet50 0.95x the
             * time at batch 1 and 8; two blocks ahead gained nothing more;
             * the next tile's first block, another 0.95-0.98x on 1x1 layers
             * with 64 inputs). */
            if (cb + 1 < full)
#pragma GCC unroll 32
                for (int p = 0; p < P; p++)
                    _mm_prefetch((const char *)(xp[p] + t->cb_stride), _MM_HINT_T0);
            else if (CONTIG) /* the last block: the next tile's first (a
                              * prefetch past the tensor's end cannot fault) */
#pragma GCC unroll 32
                for (int p = 0; p < P; p++)
                    _mm_prefetch((const char *)(t->px[0] + t->tap_off[tp] + (P + p) * CPU_BLOCK),
                                 _MM_HINT_T0);
#pragma GCC unroll 16
            for (int l = 0; l < CPU_BLOCK; l++) {
                __m512 wv[4];
#pragma GCC unroll 32
                for (int o = 0; o < OB; o++)
                    wv[o] = _mm512_loadu_ps(w + (l * OB + o) * CPU_BLOCK);
#pragma GCC unroll 32
                for (int p = 0; p < P; p++) {
                    __m512 a = _mm512_set1_ps(xp[p][l]);
#pragma GCC unroll 32
                    for (int o = 0; o < OB; o++)
                        acc[p][o] = _mm512_fmadd_ps(a, wv[o], acc[p][o]);
                }
            }
        }
    if (flat) {
        /* one-lane taps (an NCHW input): each broadcast addresses its pixel's
         * base plus the tap offset, with no per-tap pointer arithmetic */
        const float *pp[MAX_P];
#pragma GCC unroll 32
        for (int p = 0; p < P; p++)
            pp[p] = CONTIG ? t->px[0] + p * CPU_BLOCK : t->px[p];
        for (int tp = 0; tp < t->taps; tp++, w += OB * CPU_BLOCK) {
            int64_t off = t->tap_off[tp];
            __m512 wv[4];
#pragma GCC unroll 32
            for (int o = 0; o < OB; o++)
                wv[o] = _mm512_loadu_ps(w + o * CPU_BLOCK);
#pragma GCC unroll 32
            for (int p = 0; p < P; p++) {
                __m512 a = _mm512_set1_ps(pp[p][off]);
#pragma GCC unroll 32
                for (int o = 0; o < OB; o++)
                    acc[p][o] = _mm512_fmadd_ps(a, wv[o], acc[p][o]);
            }
        }
    } else if (full < t->cblocks) { /* the last block's lanes, any stride */
        int lanes = t->lanes_last;
        for (int tp = 0; tp < t->taps; tp++, w += lanes * OB * CPU_BLOCK) {
            int64_t off = full * t->cb_stride + t->tap_off[tp];
            for (int l = 0; l < lanes; l++) {
                __m512 wv[4];
#pragma GCC unroll 32
                for (int o = 0; o < OB; o++)
                    wv[o] = _mm512_loadu_ps(w + (l * OB + o) * CPU_BLOCK);
#pragma GCC unroll 32
                for (int p = 0; p < P; p++) {
                    const float *x = CONTIG ? t->px[0] + p * CPU_BLOCK : t->px[p];
                    __m512 a = _mm512_set1_ps(x[off + l * t->lane_stride]);
#pragma GCC unroll 32
                    for (int o = 0; o < OB; o++)
                        acc[p][o] = _mm512_fmadd_ps(a, wv[o], acc[p][o]);
                }
            }
        }
    }
    if (t->partial) {
#pragma GCC unroll 32
        for (int o = 0; o < OB; o++)
#pragma GCC unroll 32
            for (int p = 0; p < P; p++)
                _mm512_storeu_ps(t->y + o * t->y_ob_stride + p * CPU_BLOCK, acc[p][o]);
        return;
    }
    const act_params *va = simd_act_is_vector(t->act) ? t->act : NULL;
#pragma GCC unroll 32
    for (int o = 0; o < OB; o++) {
        __m512 b = t->bias ? _mm512_loadu_ps(t->bias + o * CPU_BLOCK) : _mm512_setzero_ps();
#pragma GCC unroll 32
        for (int p = 0; p < P; p++) {
            __m512 v = _mm512_add_ps(acc[p][o], b);
            int64_t at = o * t->y_ob_stride + p * CPU_BLOCK;
            if (t->res)
                v = _mm512_add_ps(v, _mm512_loadu_ps(t->res + at));
            _mm512_storeu_ps(t->y + at, v512_act(v, va));
        }
    }
}

/* Each tile shape is a function of its own: inlined into one dispatcher,
 * the 30 shapes made GCC's register allocation spill the sums. */
#define SHAPE512(o, p, c)                                                                          \
    __attribute__((target("avx512f"), noinline)) static void t512_##o##_##p##_##c(                 \
        const nchwc_tile *t)                                                                       \
    {                                                                                              \
        tile512(t, o, p, c);                                                                       \
    }
#define SHAPES512(o)                                                                               \
    SHAPE512(o, 1, 0) SHAPE512(o, 2, 0) SHAPE512(o, 3, 0) SHAPE512(o, 4, 0) SHAPE512(o, 5, 0)     \
    SHAPE512(o, 6, 0)
SHAPES512(1) SHAPES512(2) SHAPES512(3) SHAPES512(4)
SHAPE512(1, 7, 0) SHAPE512(1, 8, 0) SHAPE512(2, 7, 0) SHAPE512(2, 8, 0) SHAPE512(3, 7, 0)
SHAPE512(3, 8, 0)
SHAPE512(1, 24, 1) SHAPE512(2, 12, 1) SHAPE512(3, 8, 1) SHAPE512(4, 6, 1)

#define CASE512(o, p) case (o) * 16 + (p): t512_##o##_##p##_0(t); break;
__attribute__((target("avx512f"))) static void run_avx512(const nchwc_tile *t, int ob, int p)
{
    if (t->contiguous) {
        switch (ob) {
        case 1: t512_1_24_1(t); break;
        case 2: t512_2_12_1(t); break;
        case 3: t512_3_8_1(t); break;
        default: t512_4_6_1(t); break;
        }
    } else {
        switch (ob * 16 + p) {
        CASE512(1, 1) CASE512(1, 2) CASE512(1, 3) CASE512(1, 4)
        CASE512(1, 5) CASE512(1, 6) CASE512(1, 7) CASE512(1, 8)
        CASE512(2, 1) CASE512(2, 2) CASE512(2, 3) CASE512(2, 4)
        CASE512(2, 5) CASE512(2, 6) CASE512(2, 7) CASE512(2, 8)
        CASE512(3, 1) CASE512(3, 2) CASE512(3, 3) CASE512(3, 4)
        CASE512(3, 5) CASE512(3, 6) CASE512(3, 7) CASE512(3, 8)
        CASE512(4, 1) CASE512(4, 2) CASE512(4, 3) CASE512(4, 4)
        CASE512(4, 5) CASE512(4, 6)
        default: break;
        }
    }
    if (!t->partial && !simd_act_is_vector(t->act))
        nchwc_tile_scalar_act(t, ob, p);
}

static const nchwc_isa isa_avx512 = {"AVX-512", &cpu_simd_avx512, 4, {0, 8, 8, 8, 6},
                                     {0, 24, 12, 8, 6}, run_avx512};

/* --- AVX2 + FMA: a block is two 8-float registers --- */

#define AVX2 __attribute__((target("avx2,fma"), always_inline)) static inline

AVX2 void tile256(const nchwc_tile *t, const int OB, const int P)
{
    enum { H = 2 }; /* registers per block */
    __m256 acc[6][2 * H];
#pragma GCC unroll 8
    for (int p = 0; p < P; p++)
#pragma GCC unroll 8
        for (int o = 0; o < OB * H; o++)
            acc[p][o] = t->accumulate ? _mm256_loadu_ps(t->y + (o / H) * t->y_ob_stride +
                                                        (o % H) * 8 + p * CPU_BLOCK)
                                      : _mm256_setzero_ps();
    const float *w = t->w;
    int full = t->lanes_last == CPU_BLOCK && t->lane_stride == 1 ? t->cblocks : t->cblocks - 1;
    /* whole blocks of unit-stride channels: one straight nest (see tile512) */
    for (int cb = 0; cb < full; cb++)
        for (int tp = 0; tp < t->taps; tp++, w += OB * CPU_BLOCK * CPU_BLOCK) {
            int64_t off = cb * t->cb_stride + t->tap_off[tp];
            const float *xp[6];
#pragma GCC unroll 8
            for (int p = 0; p < P; p++)
                xp[p] = t->px[p] + off;
            /* the next block's lines, as in tile512 (0.95x on resnet50's 1x1s) */
            if (cb + 1 < full)
#pragma GCC unroll 8
                for (int p = 0; p < P; p++)
                    _mm_prefetch((const char *)(xp[p] + t->cb_stride), _MM_HINT_T0);
#pragma GCC unroll 16
            for (int l = 0; l < CPU_BLOCK; l++)
                /* block by block, re-broadcasting each pixel: two weight
                 * registers, not four, keep 12 sums within 16 registers */
#pragma GCC unroll 4
                for (int o = 0; o < OB; o++) {
                    __m256 w0 = _mm256_loadu_ps(w + (l * OB + o) * CPU_BLOCK);
                    __m256 w1 = _mm256_loadu_ps(w + (l * OB + o) * CPU_BLOCK + 8);
#pragma GCC unroll 8
                    for (int p = 0; p < P; p++) {
                        __m256 a = _mm256_broadcast_ss(xp[p] + l);
                        acc[p][o * H] = _mm256_fmadd_ps(a, w0, acc[p][o * H]);
                        acc[p][o * H + 1] = _mm256_fmadd_ps(a, w1, acc[p][o * H + 1]);
                    }
                }
        }
    /* the last block's lanes (or one-lane taps), any stride */
    for (int cb = full; cb < t->cblocks; cb++) {
        int lanes = t->lanes_last;
        for (int tp = 0; tp < t->taps; tp++, w += lanes * OB * CPU_BLOCK) {
            int64_t off = cb * t->cb_stride + t->tap_off[tp];
            for (int l = 0; l < lanes; l++) {
                __m256 wv[2 * H];
#pragma GCC unroll 8
                for (int o = 0; o < OB * H; o++)
                    wv[o] = _mm256_loadu_ps(w + (l * OB * H + o) * 8);
#pragma GCC unroll 8
                for (int p = 0; p < P; p++) {
                    __m256 a = _mm256_broadcast_ss(t->px[p] + off + l * t->lane_stride);
#pragma GCC unroll 8
                    for (int o = 0; o < OB * H; o++)
                        acc[p][o] = _mm256_fmadd_ps(a, wv[o], acc[p][o]);
                }
            }
        }
    }
    if (t->partial) {
        for (int o = 0; o < OB * H; o++)
            for (int p = 0; p < P; p++)
                _mm256_storeu_ps(t->y + (o / H) * t->y_ob_stride + (o % H) * 8 + p * CPU_BLOCK,
                                 acc[p][o]);
        return;
    }
    const act_params *va = simd_act_is_vector(t->act) ? t->act : NULL;
#pragma GCC unroll 8
    for (int o = 0; o < OB; o++) {
        v256 b = t->bias ? v256_load(t->bias + o * CPU_BLOCK) : v256_zero();
#pragma GCC unroll 8
        for (int p = 0; p < P; p++) {
            v256 v = v256_add((v256){acc[p][o * H], acc[p][o * H + 1]}, b);
            int64_t at = o * t->y_ob_stride + p * CPU_BLOCK;
            if (t->res)
                v = v256_add(v, v256_load(t->res + at));
            v256_store(t->y + at, v256_act(v, va));
        }
    }
}

#define SHAPE256(o, p)                                                                             \
    __attribute__((target("avx2,fma"), noinline)) static void t256_##o##_##p(const nchwc_tile *t) \
    {                                                                                              \
        tile256(t, o, p);                                                                          \
    }
SHAPE256(1, 1) SHAPE256(1, 2) SHAPE256(1, 3) SHAPE256(1, 4) SHAPE256(1, 5) SHAPE256(1, 6)
SHAPE256(2, 1) SHAPE256(2, 2)

#define CASE256(o, p) case (o) * 16 + (p): t256_##o##_##p(t); break;
__attribute__((target("avx2,fma"))) static void run_avx2(const nchwc_tile *tile, int ob, int p)
{
    nchwc_tile copy;
    const float *px[NCHWC_MAX_P];
    const nchwc_tile *t = nchwc_tile_with_pointers(tile, p, &copy, px);
    switch (ob * 16 + p) {
    CASE256(1, 1) CASE256(1, 2) CASE256(1, 3) CASE256(1, 4) CASE256(1, 5) CASE256(1, 6)
    CASE256(2, 1) CASE256(2, 2)
    default: break;
    }
    if (!t->partial && !simd_act_is_vector(t->act))
        nchwc_tile_scalar_act(t, ob, p);
}

static const nchwc_isa isa_avx2 = {"AVX2+FMA", &cpu_simd_avx2, 2, {0, 6, 2}, {0, 6, 2}, run_avx2};

#endif /* NCHWC_X86 */

/* Whether this ARM CPU runs the NEON kernels: always on arm64 (Advanced
 * SIMD is part of ARMv8-A, but the kernel still says so), on ARMv7 when the
 * kernel reports NEON and the VFPv4 the NEON file was built for. */
#if defined(__aarch64__) || defined(__arm__)
static bool arm_has_neon(void)
{
    unsigned long hw = getauxval(AT_HWCAP);
#if defined(__aarch64__)
    return (hw & (1ul << 1)) != 0; /* HWCAP_ASIMD */
#else
    return (hw & (1ul << 12)) && (hw & (1ul << 16)); /* HWCAP_NEON, HWCAP_VFPv4 */
#endif
}
#endif

const nchwc_isa *nchwc_isa_get(void)
{
    const char *force = getenv("VISIOND_CPU_ISA");
    const nchwc_isa *best = &isa_generic;
#ifdef NCHWC_X86
    bool has512 = __builtin_cpu_supports("avx512f");
    bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (has512)
        best = &isa_avx512;
    else if (has2)
        best = &isa_avx2;
    if (force && strcmp(force, "avx2") == 0 && has2)
        best = &isa_avx2;
#endif
#if defined(__aarch64__) || defined(__arm__)
    if (arm_has_neon())
        best = &nchwc_isa_neon;
#endif
    if (force && strcmp(force, "generic") == 0)
        best = &isa_generic;
    return best;
}
