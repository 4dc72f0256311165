/* Which BLAS runs, which of its kernels, and how fast it is.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks a kernel for the CPU
 * model when the library loads. On CPUs its table does not know, it falls
 * back to an older kernel: on the 2-core Xeon of our CI that can be the
 * AVX2 (Haswell) kernel on cores that have AVX-512, where a 1024^3 SGEMM
 * measured 145 GFLOP/s against 227 for the SkylakeX kernel. The kernel can
 * only be changed before the library initialises, through the environment
 * variable OPENBLAS_CORETYPE, so the choice made here is applied by the
 * binary re-executing itself once at start-up (server/main.c, through
 * the backend's startup_environment).
 *
 * The rule: cores with AVX-512 (and an OS that saves its registers, which
 * __builtin_cpu_supports checks) get SkylakeX; cores with AVX2 and FMA that
 * were handed a pre-AVX2 kernel get Haswell. VISIOND_BLAS_CORETYPE=keep
 * keeps OpenBLAS's own pick, VISIOND_BLAS_CORETYPE=NAME loads that kernel,
 * and an OPENBLAS_CORETYPE set by the user stands unless
 * VISIOND_BLAS_CORETYPE=auto asks visiond to decide anyway.
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../engine/engine.h"
#include "../engine/graph.h"
#include "cpu_kernels.h"

/* set in the re-executed process to the kernel OpenBLAS had picked */
#define REEXEC_ENV "VISIOND_BLAS_REEXEC"

static bool in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcasecmp(name, *list) == 0)
            return true;
    return false;
}

static const char *loaded_kernel(void)
{
#ifdef OPENBLAS_VERSION
    return openblas_get_corename();
#else
    return NULL;
#endif
}

static const char *kernel_choice(char *why, size_t n)
{
    snprintf(why, n, "%s", "");
#ifdef OPENBLAS_VERSION
    const char *current = openblas_get_corename();
    const char *user = getenv("VISIOND_BLAS_CORETYPE");
    if (getenv(REEXEC_ENV))
        return NULL; /* already chosen */
    if (user && strcasecmp(user, "keep") == 0)
        return NULL;
    if (user && *user && strcasecmp(user, "auto") != 0) {
        snprintf(why, n, "VISIOND_BLAS_CORETYPE=%s", user);
        return strcasecmp(user, current) ? user : NULL;
    }
    /* a user's OPENBLAS_CORETYPE stands, unless VISIOND_BLAS_CORETYPE=auto */
    if (!user && getenv("OPENBLAS_CORETYPE"))
        return NULL;
#if defined(__x86_64__) && defined(__GNUC__)
    static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    static const char *const pre_avx2[] = {"Prescott", "Core2", "Penryn", "Dunnington",
                                           "Nehalem", "Sandybridge", "Atom", "Barcelona",
                                           "Bobcat", "Bulldozer", "Piledriver", "Steamroller",
                                           "Excavator", "Katmai", "Coppermine", "Northwood",
                                           "Opteron", "Opteron_SSE3", NULL};
    if (__builtin_cpu_supports("avx512f") && !in_list(current, avx512)) {
        snprintf(why, n, "the cores have AVX-512; OpenBLAS picked %s", current);
        return "SkylakeX";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        in_list(current, pre_avx2)) {
        snprintf(why, n, "the cores have AVX2 and FMA; OpenBLAS picked %s", current);
        return "Haswell";
    }
#endif
#endif
    return NULL;
}

bool cpu_blas_startup_environment(char *why, size_t n)
{
    const char *core = kernel_choice(why, n);
    const char *loaded = loaded_kernel();
    if (!core || !loaded)
        return false;
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv(REEXEC_ENV, loaded, 1);
    return true;
}

const char *cpu_blas_description(char *buf, size_t n)
{
#ifdef OPENBLAS_VERSION
    /* openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..." */
    char version[32] = "?";
    sscanf(openblas_get_config(), "OpenBLAS %31s", version);
    const char *before = getenv(REEXEC_ENV), *user = getenv("VISIOND_BLAS_CORETYPE");
    bool named = user && *user && strcasecmp(user, "keep") && strcasecmp(user, "auto");
    char how[128];
    if (named)
        snprintf(how, sizeof how, "set by VISIOND_BLAS_CORETYPE");
    else if (before)
        snprintf(how, sizeof how, "chosen at start-up for the cores' %s; OpenBLAS alone picked %s",
#if defined(__x86_64__) && defined(__GNUC__)
                 __builtin_cpu_supports("avx512f") ? "AVX-512" : "AVX2",
#else
                 "vector unit",
#endif
                 before);
    else if (getenv("OPENBLAS_CORETYPE"))
        snprintf(how, sizeof how, "set by OPENBLAS_CORETYPE");
    else
        snprintf(how, sizeof how, "OpenBLAS's own pick%s", user ? ", kept" : "");
    snprintf(buf, n, "OpenBLAS %s, %s kernel (%s)", version, openblas_get_corename(), how);
#else
    snprintf(buf, n, "CBLAS");
#endif
    return buf;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double cpu_sgemm_gflops(int n, int threads, int reps)
{
    if (n < 16 || n > 8192 || reps < 1 || reps > 1000)
        return -1.0;
    size_t count = (size_t)n * (size_t)n;
    float *a = tensor_alloc(count * sizeof(float)), *b = tensor_alloc(count * sizeof(float)),
          *c = tensor_alloc(count * sizeof(float));
    double *t = malloc(sizeof(double) * (size_t)reps);
    double result = -1.0;
    if (a && b && c && t) {
        for (size_t i = 0; i < count; i++) {
            a[i] = (float)(i % 7) * 0.125f;
            b[i] = (float)(i % 5) * 0.25f;
        }
        int th = threads > 0 ? threads : omp_get_num_procs();
        omp_set_num_threads(th);
#ifdef OPENBLAS_VERSION
        openblas_set_num_threads(th);
#endif
        for (int r = -1; r < reps; r++) { /* one warm-up */
            double t0 = seconds();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n,
                        0.0f, c, n);
            if (r >= 0)
                t[r] = seconds() - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, by_value);
        result = 2.0 * n * (double)n * n / t[reps / 2] / 1e9;
    }
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
    free(t);
    return result;
}
