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

/* portable */
#define V vgen
#define VFN __attribute__((always_inline)) static inline
#define KFN static
#define K(name) name##_generic
#define DW_P 4
#define VLOAD vgen_load
#define VSTORE vgen_store
#define VSET1 vgen_set1
#define VZERO vgen_zero
#define VADD vgen_add
#define VSUB vgen_sub
#define VMUL vgen_mul
#define VMAX vgen_max
#define VMIN vgen_min
#define VFMA vgen_fma
#define VHSUM vgen_hsum
#include "cpu_simd_kernels.inc"
SIMD_TABLE(generic, "portable C");
#undef V
#undef VFN
#undef KFN
#undef K
#undef DW_P
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VZERO
#undef VADD
#undef VSUB
#undef VMUL
#undef VMAX
#undef VMIN
#undef VFMA
#undef VHSUM

#ifdef CPU_SIMD_X86

#define V v512
#define VFN __attribute__((target("avx512f"), always_inline)) static inline
#define KFN __attribute__((target("avx512f"))) static
#define K(name) name##_avx512
#define DW_P 8
#define VLOAD v512_load
#define VSTORE v512_store
#define VSET1 v512_set1
#define VZERO v512_zero
#define VADD v512_add
#define VSUB v512_sub
#define VMUL v512_mul
#define VMAX v512_max
#define VMIN v512_min
#define VFMA v512_fma
#define VHSUM v512_hsum
#include "cpu_simd_kernels.inc"
SIMD_TABLE(avx512, "AVX-512");
#undef V
#undef VFN
#undef KFN
#undef K
#undef DW_P
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VZERO
#undef VADD
#undef VSUB
#undef VMUL
#undef VMAX
#undef VMIN
#undef VFMA
#undef VHSUM

#define V v256
#define VFN __attribute__((target("avx2,fma"), always_inline)) static inline
#define KFN __attribute__((target("avx2,fma"))) static
#define K(name) name##_avx2
#define DW_P 4
#define VLOAD v256_load
#define VSTORE v256_store
#define VSET1 v256_set1
#define VZERO v256_zero
#define VADD v256_add
#define VSUB v256_sub
#define VMUL v256_mul
#define VMAX v256_max
#define VMIN v256_min
#define VFMA v256_fma
#define VHSUM v256_hsum
#include "cpu_simd_kernels.inc"
SIMD_TABLE(avx2, "AVX2+FMA");

#endif
