/* Activations and exponentials as loops without library calls, so that
 * they vectorise (cpu_fast_expf, cpu_fast_erff in cpu_kernels.h), one
 * clone per instruction set.
 *
 * This file alone is compiled with finite-math flags (Makefile): without
 * them GCC keeps the clamps inside cpu_fast_expf as calls and vectorises
 * nothing. The clamps keep every intermediate finite for finite inputs;
 * a NaN input gives an unspecified value, not a NaN.
 */
#include "cpu_kernels.h"

#ifdef __clang__ /* "omp simd" is a request: an unoptimised (sanitizer) build need not honour it */
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* The activations of transformers and YOLO heads, as loops without library
 * calls (cpu_fast_expf), one clone per instruction set. */
CPU_MULTIVERSION
bool cpu_fast_activation(const float *x, float *y, int64_t n, const act_params *act)
{
    switch (act->kind) {
    case ACT_GELU:
        if (act->alpha != 0.0f)
            return false; /* the tanh form keeps tanhf */
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = 0.5f * x[i] * (1.0f + cpu_fast_erff(x[i] * 0.70710678f));
        return true;
    case ACT_ERF:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = cpu_fast_erff(x[i]);
        return true;
    case ACT_SILU:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] / (1.0f + cpu_fast_expf(-x[i]));
        return true;
    default:
        return false;
    }
}

/* y = e^(x - sub) over a row; returns the sum. */
CPU_MULTIVERSION
float cpu_exp_row(const float *x, float *y, int64_t n, float sub)
{
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; i++) {
        y[i] = cpu_fast_expf(x[i] - sub);
        sum += y[i];
    }
    return sum;
}

