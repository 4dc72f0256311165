/* Host reference implementations; see host_ops.h. */
#include "host_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor_ops.h"

#define FAIL(...) engine_fail(err, ENGINE_E_INVALID, __VA_ARGS__)

bool host_op_supported(op_t op)
{
    switch (op) {
    case OP_POW: case OP_MOD: case OP_MIN: case OP_MAX: case OP_EQUAL: case OP_LESS:
    case OP_LESS_OR_EQUAL: case OP_GREATER: case OP_GREATER_OR_EQUAL: case OP_AND: case OP_OR:
    case OP_NOT: case OP_WHERE: case OP_EXPAND: case OP_CONSTANT_OF_SHAPE: case OP_RANGE:
    case OP_TILE: case OP_GATHER_ELEMENTS: case OP_SCATTER_ND: case OP_EINSUM:
    case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN: case OP_REDUCE_MEAN:
    case OP_TOPK: case OP_ARGMAX: case OP_ARGMIN: case OP_NMS: case OP_PRELU: case OP_CAST:
    case OP_LOG_SOFTMAX:
        return true;
    default:
        return false;
    }
}

static double get(const tensor_desc *t, int64_t i)
{
    return t->dtype == DTYPE_INT64 ? (double)((const int64_t *)t->data)[i]
                                   : (double)((const float *)t->data)[i];
}

static void put(const tensor_desc *t, int64_t i, double v)
{
    if (t->dtype == DTYPE_INT64)
        ((int64_t *)t->data)[i] = (int64_t)v;
    else
        ((float *)t->data)[i] = (float)v;
}

/* Advances a row-major index over `s`, keeping k offsets (strides st[k])
 * in step. */
static void step_index(int64_t *idx, const shape_t *s, int k, int64_t (*st)[ENGINE_MAX_RANK],
                       int64_t *off)
{
    for (int d = s->rank - 1; d >= 0; d--) {
        idx[d]++;
        for (int j = 0; j < k; j++)
            off[j] += st[j][d];
        if (idx[d] < s->dim[d])
            return;
        for (int j = 0; j < k; j++)
            off[j] -= st[j][d] * idx[d];
        idx[d] = 0;
    }
}

static double binary(op_t op, double a, double b, bool ints, bool fmod_)
{
    switch (op) {
    case OP_POW: return pow(a, b);
    case OP_MOD:
        if (ints) { /* the sign of the divisor, as Python */
            int64_t x = (int64_t)a, y = (int64_t)b;
            if (y == 0)
                return 0;
            int64_t m = x % y;
            return !fmod_ && m != 0 && ((m < 0) != (y < 0)) ? m + y : m;
        } else {
            double m = fmod(a, b);
            return !fmod_ && m != 0 && ((m < 0) != (b < 0)) ? m + b : m;
        }
    case OP_MIN: return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
    case OP_MAX: return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
    case OP_EQUAL: return a == b;
    case OP_LESS: return a < b;
    case OP_LESS_OR_EQUAL: return a <= b;
    case OP_GREATER: return a > b;
    case OP_GREATER_OR_EQUAL: return a >= b;
    case OP_AND: return a != 0 && b != 0;
    case OP_OR: return a != 0 || b != 0;
    default: return 0;
    }
}

static void run_broadcast(const graph_node *n, const tensor_desc *in, const tensor_desc *out)
{
    const shape_t *os = &out[0].shape;
    int64_t st[8][ENGINE_MAX_RANK], off[8] = {0}, idx[ENGINE_MAX_RANK] = {0};
    int k = n->n_inputs; /* at most 8: the importer's bound on Min and Max */
    for (int j = 0; j < k; j++)
        nd_broadcast_strides(&in[j].shape, os, st[j]);
    int64_t total = shape_numel(os);
    bool ints = in[0].dtype == DTYPE_INT64;
    for (int64_t e = 0; e < total; e++) {
        double v;
        if (n->op == OP_WHERE)
            v = get(&in[0], off[0]) != 0 ? get(&in[1], off[1]) : get(&in[2], off[2]);
        else if (n->op == OP_PRELU) {
            double x = get(&in[0], off[0]);
            v = x < 0 ? x * get(&in[1], off[1]) : x;
        } else {
            v = get(&in[0], off[0]);
            for (int j = 1; j < k; j++) /* Min and Max take one input or more */
                v = binary(n->op, v, get(&in[j], off[j]), ints, n->p.fmod);
        }
        if (out[0].dtype == DTYPE_INT64 && n->op == OP_WHERE)
            ((int64_t *)((void *)out[0].data))[e] = get(&in[0], off[0]) != 0
                                               ? ((const int64_t *)in[1].data)[off[1]]
                                               : ((const int64_t *)in[2].data)[off[2]];
        else
            put(&out[0], e, v);
        step_index(idx, os, k, st, off);
    }
}

/* Expand and Tile: out[i] = in[map(i)]. */
static void run_replicate(const graph_node *n, const tensor_desc *in, const tensor_desc *out)
{
    const shape_t *xs = &in[0].shape, *os = &out[0].shape;
    size_t elem = dtype_size(in[0].dtype);
    if (n->op == OP_EXPAND) {
        int64_t st[ENGINE_MAX_RANK];
        nd_broadcast_strides(xs, os, st);
        nd_strided_copy(((void *)out[0].data), in[0].data, os, 0, st, elem);
        return;
    }
    int64_t xst[ENGINE_MAX_RANK], idx[ENGINE_MAX_RANK] = {0};
    nd_strides(xs, xst);
    int64_t total = shape_numel(os);
    for (int64_t e = 0; e < total; e++) {
        int64_t src = 0;
        for (int d = 0; d < os->rank; d++)
            src += (idx[d] % xs->dim[d]) * xst[d];
        memcpy((char *)((void *)out[0].data) + e * (int64_t)elem, (const char *)in[0].data + src * (int64_t)elem,
               elem);
        step_index(idx, os, 0, NULL, NULL);
    }
}

static engine_status run_gather_elements(const tensor_desc *in, const tensor_desc *out, int axis,
                                         engine_error *err)
{
    const shape_t *xs = &in[0].shape, *os = &out[0].shape;
    int64_t xst[ENGINE_MAX_RANK], idx[ENGINE_MAX_RANK] = {0};
    nd_strides(xs, xst);
    size_t elem = dtype_size(in[0].dtype);
    const int64_t *iv = in[1].data;
    int64_t total = shape_numel(os), d = xs->dim[axis];
    for (int64_t e = 0; e < total; e++) {
        int64_t k = iv[e] < 0 ? iv[e] + d : iv[e];
        if (k < 0 || k >= d)
            return FAIL("GatherElements index %lld out of range for an axis of %lld",
                        (long long)iv[e], (long long)d);
        int64_t src = 0;
        for (int j = 0; j < os->rank; j++)
            src += (j == axis ? k : idx[j]) * xst[j];
        memcpy((char *)((void *)out[0].data) + e * (int64_t)elem, (const char *)in[0].data + src * (int64_t)elem,
               elem);
        step_index(idx, os, 0, NULL, NULL);
    }
    return ENGINE_OK;
}

static engine_status run_scatter_nd(const graph_node *n, const tensor_desc *in,
                                    const tensor_desc *out, engine_error *err)
{
    const shape_t *xs = &in[0].shape, *is = &in[1].shape;
    size_t elem = dtype_size(in[0].dtype);
    memcpy(((void *)out[0].data), in[0].data, (size_t)shape_numel(xs) * elem);
    int64_t k = is->dim[is->rank - 1], xst[ENGINE_MAX_RANK];
    nd_strides(xs, xst);
    int64_t slice = 1;
    for (int i = (int)k; i < xs->rank; i++)
        slice *= xs->dim[i];
    int64_t tuples = k ? shape_numel(is) / k : shape_numel(is);
    const int64_t *iv = in[1].data;
    for (int64_t t = 0; t < tuples; t++) {
        int64_t off = 0;
        for (int64_t j = 0; j < k; j++) {
            int64_t v = iv[t * k + j] < 0 ? iv[t * k + j] + xs->dim[j] : iv[t * k + j];
            if (v < 0 || v >= xs->dim[j])
                return FAIL("ScatterND index %lld out of range", (long long)iv[t * k + j]);
            off += v * xst[j];
        }
        int red = n->p.scatter_reduction;
        if (red == 0) {
            memcpy((char *)((void *)out[0].data) + off * (int64_t)elem,
                   (const char *)in[2].data + t * slice * (int64_t)elem, (size_t)slice * elem);
            continue;
        }
        for (int64_t i = 0; i < slice; i++) {
            double a = get(&out[0], off + i), b = get(&in[2], t * slice + i);
            put(&out[0], off + i, red == 1 ? a + b : red == 2 ? a * b : red == 3 ? fmax(a, b)
                                                                                 : fmin(a, b));
        }
    }
    return ENGINE_OK;
}

/* Every label combination once: fine for the small contractions exporters
 * emit beside their matrix products. */
static void run_einsum(const einsum_params *e, const tensor_desc *in, const tensor_desc *out)
{
    int64_t size[52];
    int used[52], n_used = 0;
    for (int l = 0; l < 52; l++)
        size[l] = -1;
    for (int k = 0; k < e->n_operands; k++)
        for (int i = 0; i < e->rank[k]; i++) {
            int l = e->label[k][i];
            if (size[l] < 0)
                used[n_used++] = l;
            if (size[l] < 0 || size[l] == 1)
                size[l] = in[k].shape.dim[i];
        }
    shape_t space = {.rank = 0};
    int64_t st[3][ENGINE_MAX_RANK]; /* operand 0, operand 1, output */
    memset(st, 0, sizeof st);
    for (int u = 0; u < n_used && space.rank < ENGINE_MAX_RANK; u++) {
        int l = used[u];
        space.dim[space.rank] = size[l];
        for (int k = 0; k < 3; k++) {
            if (k == 1 && e->n_operands < 2)
                continue;
            const shape_t *s = k < 2 ? &in[k].shape : &out[0].shape;
            int64_t stride = 1;
            for (int i = e->rank[k] - 1; i >= 0; i--) {
                if (e->label[k][i] == l && s->dim[i] != 1)
                    st[k][space.rank] += stride;
                stride *= s->dim[i];
            }
        }
        space.rank++;
    }
    float *y = ((void *)out[0].data);
    const float *a = in[0].data, *b = e->n_operands > 1 ? in[1].data : NULL;
    memset(y, 0, (size_t)shape_numel(&out[0].shape) * sizeof(float));
    int64_t total = shape_numel(&space), idx[ENGINE_MAX_RANK] = {0}, off[3] = {0};
    for (int64_t t = 0; t < total; t++) {
        float v = a[off[0]];
        if (b)
            v *= b[off[1]];
        y[off[2]] += v;
        step_index(idx, &space, 3, st, off);
    }
}

static void run_reduce(op_t op, const tensor_desc *in, const tensor_desc *out, uint32_t mask)
{
    const shape_t *xs = &in[0].shape;
    shape_t kept = *xs;
    int64_t count = 1;
    for (int i = 0; i < xs->rank; i++)
        if ((mask >> i) & 1) {
            kept.dim[i] = 1;
            count *= xs->dim[i];
        }
    int64_t ost[1][ENGINE_MAX_RANK], off = 0, idx[ENGINE_MAX_RANK] = {0};
    nd_strides(&kept, ost[0]);
    for (int i = 0; i < xs->rank; i++)
        if ((mask >> i) & 1)
            ost[0][i] = 0;
    int64_t nout = shape_numel(&kept), total = shape_numel(xs);
    double *acc = calloc((size_t)nout + 1, sizeof *acc);
    bool *seen = calloc((size_t)nout + 1, 1);
    if (!acc || !seen) { /* the plan sized everything else; keep going without scratch */
        free(acc);
        free(seen);
        return;
    }
    for (int64_t e = 0; e < total; e++) {
        double v = get(&in[0], e);
        if (!seen[off])
            acc[off] = v, seen[off] = true;
        else if (op == OP_REDUCE_MAX)
            acc[off] = v > acc[off] || isnan(v) ? v : acc[off];
        else if (op == OP_REDUCE_MIN)
            acc[off] = v < acc[off] || isnan(v) ? v : acc[off];
        else
            acc[off] += v;
        step_index(idx, xs, 1, ost, &off);
    }
    for (int64_t i = 0; i < nout; i++) {
        double v = !seen[i] ? (op == OP_REDUCE_MAX ? -INFINITY : op == OP_REDUCE_MIN ? INFINITY : 0)
                            : acc[i];
        put(&out[0], i, op == OP_REDUCE_MEAN && count ? v / (double)count : v);
    }
    free(acc);
    free(seen);
}

typedef struct {
    double v;
    int64_t i;
    bool largest;
} ranked;

static int by_rank(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->v != b->v) {
        bool a_first = a->largest ? a->v > b->v : a->v < b->v;
        return a_first ? -1 : 1;
    }
    return a->i < b->i ? -1 : a->i > b->i;
}

static engine_status run_select(const graph_node *n, const tensor_desc *in,
                                const tensor_desc *out, const step_params *r, engine_error *err)
{
    const shape_t *xs = &in[0].shape;
    int axis = r->axis;
    int64_t outer = 1, inner = 1, d = xs->dim[axis];
    for (int i = 0; i < axis; i++)
        outer *= xs->dim[i];
    for (int i = axis + 1; i < xs->rank; i++)
        inner *= xs->dim[i];
    ranked *buf = n->op == OP_TOPK ? malloc(((size_t)d + 1) * sizeof *buf) : NULL;
    if (n->op == OP_TOPK && !buf)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    int64_t k = n->op == OP_TOPK ? r->topk.k : 1;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            int64_t base = o * d * inner + j, obase = o * k * inner + j;
            if (n->op != OP_TOPK) {
                int64_t best = 0;
                double bv = get(&in[0], base);
                bool max = n->op == OP_ARGMAX;
                for (int64_t i = 1; i < d; i++) {
                    double v = get(&in[0], base + i * inner);
                    bool better = max ? v > bv : v < bv;
                    if (better || (n->p.arg.select_last && v == bv))
                        best = i, bv = v;
                }
                ((int64_t *)((void *)out[0].data))[o * inner + j] = best;
                continue;
            }
            for (int64_t i = 0; i < d; i++)
                buf[i] = (ranked){get(&in[0], base + i * inner), i, n->p.topk.largest};
            qsort(buf, (size_t)d, sizeof *buf, by_rank);
            for (int64_t i = 0; i < k; i++) {
                if (out[0].dtype != DTYPE_UNDEFINED)
                    put(&out[0], obase + i * inner, buf[i].v);
                if (out[1].dtype != DTYPE_UNDEFINED)
                    ((int64_t *)((void *)out[1].data))[obase + i * inner] = buf[i].i;
            }
        }
    free(buf);
    return ENGINE_OK;
}

static void corners(const float *b, bool center, float c[4])
{
    if (center) {
        c[0] = b[1] - b[3] / 2, c[2] = b[1] + b[3] / 2; /* y */
        c[1] = b[0] - b[2] / 2, c[3] = b[0] + b[2] / 2; /* x */
        return;
    }
    c[0] = fminf(b[0], b[2]), c[2] = fmaxf(b[0], b[2]);
    c[1] = fminf(b[1], b[3]), c[3] = fmaxf(b[1], b[3]);
}

static float iou(const float *a, const float *b, bool center)
{
    float p[4], q[4];
    corners(a, center, p);
    corners(b, center, q);
    float ih = fminf(p[2], q[2]) - fmaxf(p[0], q[0]), iw = fminf(p[3], q[3]) - fmaxf(p[1], q[1]);
    if (ih <= 0 || iw <= 0)
        return 0;
    float inter = ih * iw, area = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]);
    return area - inter > 0 ? inter / (area - inter) : 0;
}

/* Greedy per (image, class), highest score first; rows past the survivors
 * are -1 (infer_nms). */
static engine_status run_nms(const graph_node *n, const tensor_desc *in, const tensor_desc *out,
                             engine_error *err)
{
    const shape_t *bs = &in[0].shape, *ss = &in[1].shape;
    int64_t nb = bs->dim[0], nbox = bs->dim[1], ncls = ss->dim[1];
    int64_t max_out = n->n_inputs > 2 && in[2].dtype ? *(const int64_t *)in[2].data : 0;
    float iou_thr = n->n_inputs > 3 && in[3].dtype ? *(const float *)in[3].data : 0.0f;
    bool has_score = n->n_inputs > 4 && in[4].dtype;
    float score_thr = has_score ? *(const float *)in[4].data : 0.0f;
    int64_t *y = ((void *)out[0].data), rows = out[0].shape.dim[0], w = 0;
    for (int64_t i = 0; i < rows * 3; i++)
        y[i] = -1;
    ranked *cand = malloc(((size_t)nbox + 1) * sizeof *cand);
    int64_t *kept = malloc(((size_t)nbox + 1) * sizeof *kept);
    if (!cand || !kept) {
        free(cand);
        free(kept);
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    }
    const float *boxes = in[0].data, *scores = in[1].data;
    for (int64_t b = 0; b < nb && max_out > 0; b++)
        for (int64_t c = 0; c < ncls; c++) {
            const float *sc = scores + (b * ncls + c) * nbox;
            int64_t nc = 0, nk = 0;
            for (int64_t i = 0; i < nbox; i++)
                if (!has_score || sc[i] > score_thr)
                    cand[nc++] = (ranked){sc[i], i, true};
            qsort(cand, (size_t)nc, sizeof *cand, by_rank);
            for (int64_t i = 0; i < nc && nk < max_out; i++) {
                const float *bi = boxes + (b * nbox + cand[i].i) * 4;
                bool keep = true;
                for (int64_t j = 0; j < nk && keep; j++)
                    keep = iou(bi, boxes + (b * nbox + kept[j]) * 4, n->p.center_point_box) <=
                           iou_thr;
                if (keep) {
                    kept[nk++] = cand[i].i;
                    y[w * 3] = b, y[w * 3 + 1] = c, y[w * 3 + 2] = cand[i].i;
                    w++;
                }
            }
        }
    free(cand);
    free(kept);
    return ENGINE_OK;
}

static void run_log_softmax(const tensor_desc *in, const tensor_desc *out, int axis,
                            bool legacy_2d)
{
    const shape_t *xs = &in[0].shape;
    int64_t outer = 1, inner = 1, d = xs->dim[axis];
    for (int i = 0; i < axis; i++)
        outer *= xs->dim[i];
    for (int i = axis + 1; i < xs->rank; i++)
        inner *= xs->dim[i];
    if (legacy_2d) /* before opset 13: the axes from `axis` on are one */
        d *= inner, inner = 1;
    const float *x = in[0].data;
    float *y = ((void *)out[0].data);
#pragma omp parallel for collapse(2) schedule(static) if (outer * inner * d > 65536)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *xp = x + o * d * inner + j;
            float *yp = y + o * d * inner + j;
            float mx = -INFINITY;
            for (int64_t i = 0; i < d; i++)
                mx = xp[i * inner] > mx ? xp[i * inner] : mx;
            double sum = 0;
            for (int64_t i = 0; i < d; i++)
                sum += exp((double)(xp[i * inner] - mx));
            float lse = mx + (float)log(sum);
            for (int64_t i = 0; i < d; i++)
                yp[i * inner] = xp[i * inner] - lse;
        }
}

engine_status host_op_run(const graph_node *n, const tensor_desc *in, const tensor_desc *out,
                          const step_params *r, engine_error *err)
{
    int64_t total = shape_numel(&out[0].shape);
    switch (n->op) {
    case OP_POW: case OP_MOD: case OP_MIN: case OP_MAX: case OP_EQUAL: case OP_LESS:
    case OP_LESS_OR_EQUAL: case OP_GREATER: case OP_GREATER_OR_EQUAL: case OP_AND: case OP_OR:
    case OP_WHERE: case OP_PRELU:
        run_broadcast(n, in, out);
        return ENGINE_OK;
    case OP_NOT:
        for (int64_t i = 0; i < total; i++)
            ((int64_t *)((void *)out[0].data))[i] = ((const int64_t *)in[0].data)[i] == 0;
        return ENGINE_OK;
    case OP_CAST:
        for (int64_t i = 0; i < total; i++)
            put(&out[0], i, n->p.cast.to_bool          ? get(&in[0], i) != 0
                            : out[0].dtype == DTYPE_INT64 ? trunc(get(&in[0], i))
                                                          : get(&in[0], i));
        return ENGINE_OK;
    case OP_EXPAND: case OP_TILE:
        run_replicate(n, in, out);
        return ENGINE_OK;
    case OP_CONSTANT_OF_SHAPE:
        for (int64_t i = 0; i < total; i++)
            put(&out[0], i, out[0].dtype == DTYPE_INT64 ? (double)n->p.fill.i : n->p.fill.f);
        return ENGINE_OK;
    case OP_RANGE: {
        double start = get(&in[0], 0), delta = get(&in[2], 0);
        for (int64_t i = 0; i < total; i++)
            put(&out[0], i, start + (double)i * delta);
        return ENGINE_OK;
    }
    case OP_GATHER_ELEMENTS:
        return run_gather_elements(in, out, r->axis, err);
    case OP_SCATTER_ND:
        return run_scatter_nd(n, in, out, err);
    case OP_EINSUM:
        run_einsum(&n->p.einsum, in, out);
        return ENGINE_OK;
    case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN: case OP_REDUCE_MEAN:
        run_reduce(n->op, in, out, r->reduce.axes_mask);
        return ENGINE_OK;
    case OP_TOPK: case OP_ARGMAX: case OP_ARGMIN:
        return run_select(n, in, out, r, err);
    case OP_NMS:
        return run_nms(n, in, out, err);
    case OP_LOG_SOFTMAX:
        run_log_softmax(in, out, r->axis, n->p.softmax.legacy_2d);
        return ENGINE_OK;
    default:
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "no host implementation of %s",
                           op_name(n->op));
    }
}
