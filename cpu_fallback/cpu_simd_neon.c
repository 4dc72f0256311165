/* The kernels of cpu_simd_kernels.inc (depthwise rows, pools, reductions,
 * the per-channel affine, Winograd F(4x4, 3x3) transforms, the small-batch
 * classifier) in NEON intrinsics, over cpu_simd.h's vneon: four float32x4_t
 * per block of 16 channels.
 *
 * A file of its own because ARMv7 builds it with -mfpu=neon-vfpv4 while
 * the rest of the binary keeps Debian armhf's baseline (VFPv3, no NEON):
 * nchwc_isa_get() hands this table out only on a CPU that reports NEON. On
 * x86 it compiles to nothing. */
#include <float.h>

#include "cpu_nchwc.h"
#include "cpu_simd.h"
#include "cpu_simd_table.h"

#ifdef CPU_SIMD_NEON

#define V vneon
#define VFN __attribute__((always_inline)) static inline
#define KFN static
#define K(name) name##_neon
/* depthwise and pool tiles: pixels whose sums (four registers each) stay in
 * registers, with the weights' four: 32 registers on arm64, 16 on ARMv7 */
#if defined(__aarch64__)
#define DW_P 4
#else
#define DW_P 2
#endif
#include "cpu_simd_kernels.inc"
SIMD_TABLE(neon, "NEON");

#else
typedef int cpu_simd_neon_unused; /* ISO C wants a declaration in every file */
#endif
