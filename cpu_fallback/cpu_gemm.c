/* Gemm and MatMul on CBLAS (OpenBLAS from Debian).
 *
 * Gemm writes beta*C into the output first and lets SGEMM accumulate onto
 * it, so the bias costs no extra pass; the fused activation follows. MatMul
 * with a 2-D right operand (a linear layer over a batch of rows) becomes one
 * SGEMM over all rows instead of one per batch entry.
 *
 * A classifier at small batch (a few rows against a large weight matrix)
 * is bound by reading the weights, not by arithmetic: SGEMM there reached
 * 9 GB/s of weights (0.57 ms for MobileNet's 5 MB classifier, one thread
 * doing the work), so rows up to SMALL_ROWS take a streaming kernel of our
 * own that reads each weight once, on every thread.
 */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "cpu_kernels.h"
#include "cpu_nchwc.h"

#define SMALL_ROWS 8
#define COLS 32 /* output columns per call of the [K][N] kernel */

/* y (m x n, already holding beta C) += alpha A B for m <= SMALL_ROWS and
 * an untransposed A: every weight is read once, the rows of A stay in cache. */
static void gemm_small_rows(const float *a, int64_t lda, const float *b, bool trans_b, int m,
                            int64_t n, int64_t k, float alpha, float *y)
{
    const cpu_simd_kernels *simd = nchwc_isa_get()->simd;
    if (trans_b) { /* B is N x K: dot products with its rows, two at a time */
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < n; j += 2)
            simd->dot_rows(b + j * k, b + (j + 1 < n ? j + 1 : j) * k, a, lda, m, k, alpha,
                           y + j, n);
        return;
    }
    int64_t full = n / COLS * COLS; /* B is K x N: 32 columns at a time */
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < full; c0 += COLS)
        simd->axpy_rows(b + c0, n, a, lda, m, k, alpha, y + c0, n);
    for (int i = 0; i < m; i++)
        for (int64_t c = full; c < n; c++) {
            float sum = 0.0f;
            for (int64_t t = 0; t < k; t++)
                sum += a[i * lda + t] * b[t * n + c];
            y[i * n + c] += alpha * sum;
        }
}

void cpu_gemm(const float *a, const shape_t *as, const float *b, const shape_t *bs,
              const float *c, const shape_t *cs, float *y, const gemm_params *p,
              const act_params *act)
{
    int m = (int)(p->trans_a ? as->dim[1] : as->dim[0]);
    int k = (int)(p->trans_a ? as->dim[0] : as->dim[1]);
    int n = (int)(p->trans_b ? bs->dim[0] : bs->dim[1]);
    shape_t ys = {.rank = 2, .dim = {m, n}};
    float beta = 0.0f;
    if (c && p->beta != 0.0f) {
        int64_t strides[ENGINE_MAX_RANK];
        nd_broadcast_strides(cs, &ys, strides);
        nd_strided_copy(y, c, &ys, 0, strides, sizeof(float));
        if (p->beta != 1.0f)
            for (int64_t i = 0; i < (int64_t)m * n; i++)
                y[i] *= p->beta;
        beta = 1.0f;
    }
    if (m == 0 || n == 0)
        return;
    bool small = m <= SMALL_ROWS && !p->trans_a;
    if (k > 0 && small) {
        if (beta == 0.0f)
            memset(y, 0, sizeof(float) * (size_t)m * (size_t)n);
        gemm_small_rows(a, as->dim[1], b, p->trans_b, m, n, k, p->alpha, y);
    } else if (k > 0)
        cblas_sgemm(CblasRowMajor, p->trans_a ? CblasTrans : CblasNoTrans,
                    p->trans_b ? CblasTrans : CblasNoTrans, m, n, k, p->alpha, a,
                    (int)as->dim[1], b, (int)bs->dim[1], beta, y, n);
    else if (beta == 0.0f)
        for (int64_t i = 0; i < (int64_t)m * n; i++)
            y[i] = 0.0f;
    if (act->kind != ACT_NONE)
        cpu_activation(y, y, (int64_t)m * n, act);
}

void cpu_matmul(const float *a, const shape_t *as, const float *b, const shape_t *bs, float *y,
                const shape_t *ys)
{
    (void)ys;
    shape_t a2 = *as, b2 = *bs;
    if (a2.rank == 1) {
        a2.rank = 2;
        a2.dim[1] = a2.dim[0];
        a2.dim[0] = 1;
    }
    if (b2.rank == 1) {
        b2.rank = 2;
        b2.dim[1] = 1;
    }
    int64_t m = a2.dim[a2.rank - 2], k = a2.dim[a2.rank - 1], n = b2.dim[b2.rank - 1];
    shape_t ba = {.rank = a2.rank - 2}, bb = {.rank = b2.rank - 2}, ob;
    for (int i = 0; i < ba.rank; i++)
        ba.dim[i] = a2.dim[i];
    for (int i = 0; i < bb.rank; i++)
        bb.dim[i] = b2.dim[i];
    shape_broadcast(&ba, &bb, &ob, NULL); /* checked by shape inference */
    int64_t batches = shape_numel(&ob);
    if (batches == 0 || m == 0 || n == 0)
        return;
    if (k == 0) {
        for (int64_t i = 0; i < batches * m * n; i++)
            y[i] = 0.0f;
        return;
    }
    if (shape_numel(&bb) == 1 && shape_numel(&ba) == batches) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(batches * m), (int)n, (int)k,
                    1.0f, a, (int)k, b, (int)n, 0.0f, y, (int)n);
        return;
    }
    int64_t sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK];
    nd_broadcast_strides(&ba, &ob, sa);
    nd_broadcast_strides(&bb, &ob, sb);
    /* Many small products (attention heads): one per thread, each SGEMM on
     * one thread (OpenBLAS runs single-threaded inside a parallel region);
     * few large ones: one at a time, each on every thread. */
    bool per_thread = batches >= 2 && m * n * k <= ((int64_t)1 << 22);
#pragma omp parallel for schedule(static) if (per_thread)
    for (int64_t t = 0; t < batches; t++) {
        int64_t oa = 0, obb = 0, rest = t;
        for (int d = ob.rank - 1; d >= 0; d--) { /* batch t's offsets from its index */
            int64_t i = rest % ob.dim[d];
            rest /= ob.dim[d];
            oa += i * sa[d];
            obb += i * sb[d];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f,
                    a + oa * m * k, (int)k, b + obb * k * n, (int)n, 0.0f, y + t * m * n, (int)n);
    }
}
