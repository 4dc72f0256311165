/* The kernels of cpu_simd_kernels.inc, compiled for AVX-512, for AVX2+FMA
 * and in portable C, each set behind its own target attribute so one binary
 * carries all three; nchwc_isa_get() hands out the best the CPU runs. The
 * NEON set is compiled in cpu_simd_neon.c, a file of its own because ARMv7
 * needs it built with NEON flags the rest of the binary must not have. */
#include <float.h>

#include "cpu_nchwc.h"
#include "cpu_simd.h"
#include "cpu_simd_table.h"

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
