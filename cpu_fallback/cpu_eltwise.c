/* Element-wise and normalisation kernels of the CPU backend.
 *
 * Broadcasting arithmetic first collapses the output's axes: adjacent axes
 * that both operands walk contiguously (or both broadcast) merge, so the
 * common CNN cases (same shape, per-channel [C,1,1] operands, scalars) run
 * as long unit-stride inner loops the compiler vectorises.
 */
#include <math.h>

#include "cpu_kernels.h"

#define PAR_THRESHOLD 32768

void cpu_activation(const float *x, float *y, int64_t n, const act_params *act)
{
    const int64_t chunk = 16384;
    int64_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
        if (cpu_fast_activation(x + lo, y + lo, hi - lo, act))
            continue;
        switch (act->kind) {
        case ACT_RELU:
            for (int64_t i = lo; i < hi; i++)
                y[i] = x[i] > 0.0f ? x[i] : 0.0f;
            break;
        case ACT_CLIP:
            for (int64_t i = lo; i < hi; i++) {
                float v = x[i] < act->alpha ? act->alpha : x[i];
                y[i] = v > act->beta ? act->beta : v;
            }
            break;
        default:
            for (int64_t i = lo; i < hi; i++)
                y[i] = act_apply(act, x[i]);
            break;
        }
    }
}

#define BINARY_LOOP(EXPR)                                                                         \
    do {                                                                                          \
        if (ia == 1 && ib == 1)                                                                   \
            for (int64_t i = 0; i < inner; i++) {                                                 \
                float u = pa[i], v = pb[i];                                                       \
                py[i] = (EXPR);                                                                   \
            }                                                                                     \
        else if (ia == 1 && ib == 0) {                                                            \
            float v = pb[0];                                                                      \
            for (int64_t i = 0; i < inner; i++) {                                                 \
                float u = pa[i];                                                                  \
                py[i] = (EXPR);                                                                   \
            }                                                                                     \
        } else if (ia == 0 && ib == 1) {                                                          \
            float u = pa[0];                                                                      \
            for (int64_t i = 0; i < inner; i++) {                                                 \
                float v = pb[i];                                                                  \
                py[i] = (EXPR);                                                                   \
            }                                                                                     \
        } else                                                                                    \
            for (int64_t i = 0; i < inner; i++) {                                                 \
                float u = pa[i * ia], v = pb[i * ib];                                             \
                py[i] = (EXPR);                                                                   \
            }                                                                                     \
    } while (0)

void cpu_binary(op_t op, const float *a, const shape_t *as, const float *b, const shape_t *bs,
                float *y, const shape_t *ys)
{
    int64_t sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK];
    nd_broadcast_strides(as, ys, sa);
    nd_broadcast_strides(bs, ys, sb);
    int64_t dims[ENGINE_MAX_RANK], ca[ENGINE_MAX_RANK], cb[ENGINE_MAX_RANK];
    int cr = 0;
    for (int i = 0; i < ys->rank; i++) {
        if (ys->dim[i] == 1)
            continue;
        if (cr > 0 && ca[cr - 1] == sa[i] * ys->dim[i] && cb[cr - 1] == sb[i] * ys->dim[i]) {
            dims[cr - 1] *= ys->dim[i];
            ca[cr - 1] = sa[i];
            cb[cr - 1] = sb[i];
        } else {
            dims[cr] = ys->dim[i];
            ca[cr] = sa[i];
            cb[cr] = sb[i];
            cr++;
        }
    }
    int64_t total = shape_numel(ys);
    if (total == 0)
        return;
    if (cr == 0) {
        dims[0] = 1;
        ca[0] = cb[0] = 0;
        cr = 1;
    }
    int64_t inner = dims[cr - 1], ia = ca[cr - 1], ib = cb[cr - 1];
    int64_t outer = total / inner;
#pragma omp parallel for schedule(static) if (total > PAR_THRESHOLD && outer > 1)
    for (int64_t o = 0; o < outer; o++) {
        int64_t rem = o, oa = 0, ob = 0;
        for (int d = cr - 2; d >= 0; d--) {
            int64_t i = rem % dims[d];
            rem /= dims[d];
            oa += i * ca[d];
            ob += i * cb[d];
        }
        const float *pa = a + oa, *pb = b + ob;
        float *py = y + o * inner;
        switch (op) {
        case OP_ADD: BINARY_LOOP(u + v); break;
        case OP_SUB: BINARY_LOOP(u - v); break;
        case OP_MUL: BINARY_LOOP(u * v); break;
        default: BINARY_LOOP(u / v); break;
        }
    }
}

void cpu_channel_affine(const float *x, float *y, const float *scale, const float *shift,
                        int64_t n, int64_t c, int64_t spatial)
{
#pragma omp parallel for schedule(static) if (n * c * spatial > PAR_THRESHOLD)
    for (int64_t p = 0; p < n * c; p++) {
        float s = scale[p % c], t = shift[p % c];
        const float *xp = x + p * spatial;
        float *yp = y + p * spatial;
        for (int64_t i = 0; i < spatial; i++)
            yp[i] = xp[i] * s + t;
    }
}

void cpu_softmax(const float *x, float *y, int64_t outer, int64_t len, int64_t inner)
{
    if (inner == 1) { /* rows in memory: the attention case */
#pragma omp parallel for schedule(static) if (outer * len > PAR_THRESHOLD)
        for (int64_t o = 0; o < outer; o++) {
            const float *xp = x + o * len;
            float *yp = y + o * len;
            float mx = -INFINITY;
            for (int64_t i = 0; i < len; i++)
                mx = xp[i] > mx ? xp[i] : mx;
            float inv = 1.0f / cpu_exp_row(xp, yp, len, mx);
            for (int64_t i = 0; i < len; i++)
                yp[i] *= inv;
        }
        return;
    }
#pragma omp parallel for schedule(static) if (outer * len * inner > PAR_THRESHOLD)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *xp = x + o * len * inner + j;
            float *yp = y + o * len * inner + j;
            float mx = -INFINITY;
            for (int64_t i = 0; i < len; i++)
                mx = xp[i * inner] > mx ? xp[i * inner] : mx;
            double sum = 0.0;
            for (int64_t i = 0; i < len; i++) {
                float e = expf(xp[i * inner] - mx);
                yp[i * inner] = e;
                sum += e;
            }
            float inv = (float)(1.0 / sum);
            for (int64_t i = 0; i < len; i++)
                yp[i * inner] *= inv;
        }
}

void cpu_lrn(const float *x, float *y, int64_t n, int64_t c, int64_t spatial,
             const lrn_params *p)
{
    int64_t before = (p->size - 1) / 2, after = p->size - 1 - before;
    float scale = p->alpha / (float)p->size;
#pragma omp parallel for schedule(static) if (n * c * spatial > PAR_THRESHOLD)
    for (int64_t q = 0; q < n * c; q++) {
        int64_t img = q / c, ch = q % c;
        int64_t lo = ch - before < 0 ? 0 : ch - before;
        int64_t hi = ch + after >= c ? c - 1 : ch + after;
        const float *base = x + img * c * spatial;
        float *yp = y + q * spatial;
        for (int64_t i = 0; i < spatial; i++) {
            float sq = 0.0f;
            for (int64_t k = lo; k <= hi; k++) {
                float v = base[k * spatial + i];
                sq += v * v;
            }
            yp[i] = base[ch * spatial + i] / powf(p->bias + scale * sq, p->beta);
        }
    }
}

void cpu_reduce_mean(const float *x, const shape_t *xs, float *y, uint32_t axes_mask)
{
    /* Output strides per input axis, 0 on reduced axes (keepdims or not, the
     * output elements come in the same order). */
    shape_t kept = *xs;
    int64_t count = 1;
    for (int i = 0; i < xs->rank; i++)
        if ((axes_mask >> i) & 1) {
            kept.dim[i] = 1;
            count *= xs->dim[i];
        }
    int64_t ostr[ENGINE_MAX_RANK];
    nd_strides(&kept, ostr);
    for (int i = 0; i < xs->rank; i++)
        if ((axes_mask >> i) & 1)
            ostr[i] = 0;
    int64_t nout = shape_numel(&kept), total = shape_numel(xs);
    for (int64_t i = 0; i < nout; i++)
        y[i] = 0.0f;
    int64_t idx[ENGINE_MAX_RANK] = {0}, off = 0;
    for (int64_t e = 0; e < total; e++) {
        y[off] += x[e];
        for (int d = xs->rank - 1; d >= 0; d--) {
            idx[d]++;
            off += ostr[d];
            if (idx[d] < xs->dim[d])
                break;
            off -= ostr[d] * idx[d];
            idx[d] = 0;
        }
    }
    float inv = count ? 1.0f / (float)count : 0.0f;
    for (int64_t i = 0; i < nout; i++)
        y[i] *= inv;
}
