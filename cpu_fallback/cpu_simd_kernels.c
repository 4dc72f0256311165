/* The kernels of cpu_simd_kernels.inc, compiled for AVX-512, for AVX2+FMA
 * and in portable C, each set behind its own target attribute so one binary
 * carries all three; nchwc_isa_get() hands out the best the CPU runs. */
#include <float.h>

#include "cpu_nchwc.h"
#include "cpu_simd.h"

/* Taps of a window starting at `start` (step dil) that land in [0, size). */
static inline void pool_taps_inside(int64_t start, int64_t dil, int64_t k, int64_t size,
                                    int64_t *lo, int64_t *hi)
{
    int64_t a = start >= 0 ? 0 : (-start + dil - 1) / dil;
    int64_t b = size - 1 - start >= 0 ? (size - 1 - start) / dil + 1 : 0;
    *hi = b < k ? b : k;
    *lo = a < *hi ? a : *hi;
}

/* Taps within the padded extent [-pad_begin, size + pad_end): the divisor
 * of count_include_pad, as in cpu_pool.c. */
static inline int64_t pool_taps_padded(int64_t start, int64_t dil, int64_t k, int64_t size,
                                       int64_t pad_end)
{
    int64_t end = start + (k - 1) * dil + 1, limit = size + pad_end;
    if (end > limit)
        end = limit;
    return end > start ? (end - start + dil - 1) / dil : 0;
}

#define SIMD_TABLE(sfx, label)                                                                     \
    const cpu_simd_kernels cpu_simd_##sfx = {                                                      \
        label,           dw_row_##sfx,    pool_row_##sfx, reduce_block_##sfx, affine_plane_##sfx,  \
        wino_in_##sfx,   wino_out_##sfx,  dot_rows_##sfx, axpy_rows_##sfx,                         \
    }

/* The vector operations the kernels use, named after V, the vector type
 * each block below defines (v512 -> v512_load, ...). */
#define VCAT_(a, b) a##_##b
#define VCAT(a, b) VCAT_(a, b)
#define VLOAD VCAT(V, load)
#define VSTORE VCAT(V, store)
#define VSET1 VCAT(V, set1)
#define VZERO VCAT(V, zero)
#define VADD VCAT(V, add)
#define VSUB VCAT(V, sub)
#define VMUL VCAT(V, mul)
#define VMAX VCAT(V, max)
#define VMIN VCAT(V, min)
#define VFMA VCAT(V, fma)
#define VHSUM VCAT(V, hsum)
#define VACT VCAT(V, act)

/* portable */
#define V vgen
#define VFN __attribute__((always_inline)) static inline
#define KFN static
#define K(name) name##_generic
#define DW_P 4
#include "cpu_simd_kernels.inc"
SIMD_TABLE(generic, "portable C");
#undef V
#undef VFN
#undef KFN
#undef K
#undef DW_P

#ifdef CPU_SIMD_X86

#define V v512
#define VFN __attribute__((target("avx512f"), always_inline)) static inline
#define KFN __attribute__((target("avx512f"))) static
#define K(name) name##_avx512
#define DW_P 8
#include "cpu_simd_kernels.inc"
SIMD_TABLE(avx512, "AVX-512");
#undef V
#undef VFN
#undef KFN
#undef K
#undef DW_P

#define V v256
#define VFN __attribute__((target("avx2,fma"), always_inline)) static inline
#define KFN __attribute__((target("avx2,fma"))) static
#define K(name) name##_avx2
#define DW_P 4
#include "cpu_simd_kernels.inc"
SIMD_TABLE(avx2, "AVX2+FMA");

#endif
