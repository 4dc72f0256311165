/* What every compilation of cpu_simd_kernels.inc shares: the pool window
 * helpers, the per-set names of the vector operations, and the table each
 * set fills (cpu_simd_kernels.c for x86 and portable C, cpu_simd_neon.c
 * for ARM). */
#ifndef VISIOND_CPU_SIMD_TABLE_H
#define VISIOND_CPU_SIMD_TABLE_H

#include <stdint.h>

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
 * the including file defines before each set (v512 -> v512_load, ...). */
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

#endif
