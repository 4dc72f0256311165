/* Shape and type inference for the operators transformers, segmentation
 * and detection models brought (LayerNormalization, Resize, Einsum, the
 * comparisons and selections ...), kept apart from shape_infer.c so each
 * file stays readable. Rules follow the ONNX operator specifications. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "shape_infer.h"

#define FAIL(...) engine_fail(err, ENGINE_E_INVALID, __VA_ARGS__)

static const char *fmt(const shape_t *s, char *buf)
{
    return shape_format(s, buf, 96);
}

static bool present(const tensor_desc *d)
{
    return d->dtype != DTYPE_UNDEFINED;
}

bool op_runtime_int64(op_t op)
{
    switch (op) {
    case OP_EQUAL: case OP_LESS: case OP_LESS_OR_EQUAL: case OP_GREATER:
    case OP_GREATER_OR_EQUAL: case OP_AND: case OP_OR: case OP_NOT: case OP_WHERE:
    case OP_GATHER: case OP_GATHER_ELEMENTS: case OP_TOPK: case OP_ARGMAX: case OP_ARGMIN:
    case OP_NMS: case OP_CAST: case OP_CONCAT: case OP_SLICE: case OP_TRANSPOSE: case OP_SPLIT:
    case OP_RESHAPE: case OP_FLATTEN: case OP_SQUEEZE: case OP_UNSQUEEZE: case OP_IDENTITY:
    case OP_EXPAND: case OP_TILE: case OP_SCATTER_ND: case OP_POW: case OP_MOD: case OP_MIN:
    case OP_MAX: case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV:
        return true;
    default:
        return false;
    }
}

/* The one float scalar a constant input holds (Range bounds, NMS thresholds). */
static double scalar_of(const tensor_desc *d)
{
    return d->dtype == DTYPE_INT64 ? (double)*(const int64_t *)d->data
                                   : (double)*(const float *)d->data;
}

static engine_status broadcast_many(const tensor_desc *in, int n, shape_t *o, engine_error *err)
{
    *o = in[0].shape;
    for (int i = 1; i < n; i++) {
        shape_t t;
        engine_status st = shape_broadcast(o, &in[i].shape, &t, err);
        if (st)
            return st;
        *o = t;
    }
    return ENGINE_OK;
}

static engine_status infer_elementwise(const graph_node *n, const tensor_desc *in,
                                       tensor_desc *out, int64_t *flops, engine_error *err)
{
    bool logic = n->op == OP_AND || n->op == OP_OR;
    if (n->op == OP_WHERE) {
        if (in[0].dtype != DTYPE_INT64 || in[1].dtype != in[2].dtype)
            return FAIL("Where needs a boolean condition and two values of one type");
    } else if (n->op == OP_POW) {
        /* base and exponent may differ in type; the result has the base's */
    } else if (logic && (in[0].dtype != DTYPE_INT64 || in[1].dtype != DTYPE_INT64)) {
        return FAIL("%s needs boolean operands", op_name(n->op));
    } else if (n->n_inputs > 1 && in[0].dtype != in[1].dtype) {
        return FAIL("operands are %s and %s", dtype_name(in[0].dtype), dtype_name(in[1].dtype));
    }
    engine_status st = broadcast_many(in, n->n_inputs, &out[0].shape, err);
    if (st)
        return st;
    out[0].dtype = op_is_comparison(n->op) || n->op == OP_NOT ? DTYPE_INT64
                   : n->op == OP_WHERE                        ? in[1].dtype
                                                              : in[0].dtype;
    *flops = shape_numel(&out[0].shape);
    return ENGINE_OK;
}

static engine_status infer_norm(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                step_params *r, int64_t *flops, engine_error *err)
{
    const shape_t *x = &in[0].shape;
    char a[96], b[96];
    int64_t len;
    if (n->op == OP_LAYER_NORM) {
        int axis = axis_normalize(n->p.layer_norm.axis, x->rank);
        if (axis < 0)
            return FAIL("axis %lld out of range for %s", (long long)n->p.layer_norm.axis,
                        fmt(x, a));
        r->axis = axis;
        len = 1;
        for (int i = axis; i < x->rank; i++)
            len *= x->dim[i];
    } else {
        if (x->rank < 3)
            return FAIL("InstanceNormalization needs an (N,C,...) input, got %s", fmt(x, a));
        len = x->dim[1];
    }
    for (int k = 1; k < n->n_inputs; k++) {
        if (!present(&in[k]))
            continue;
        int64_t c = shape_numel(&in[k].shape);
        if (c != len && !(n->op == OP_LAYER_NORM && c == 1))
            return FAIL("%s %s does not fit the input %s", k == 1 ? "scale" : "bias",
                        fmt(&in[k].shape, a), fmt(x, b));
    }
    out[0] = (tensor_desc){DTYPE_FLOAT32, *x, NULL};
    if (n->op == OP_LAYER_NORM) { /* Mean and InvStdDev: the normalised axes kept as 1 */
        shape_t stat = *x;
        for (int i = r->axis; i < x->rank; i++)
            stat.dim[i] = 1;
        for (int k = 1; k < n->n_outputs && k < 3; k++)
            out[k] = (tensor_desc){DTYPE_FLOAT32, stat, NULL};
    }
    *flops = 5 * shape_numel(x);
    return ENGINE_OK;
}

static engine_status infer_expand(const tensor_desc *in, tensor_desc *out, engine_error *err)
{
    int64_t dims[ENGINE_MAX_RANK];
    int cnt;
    engine_status st = shape_const_ints(&in[1], "shape", dims, ENGINE_MAX_RANK, &cnt, err);
    if (st)
        return st;
    shape_t want = {.rank = cnt};
    for (int i = 0; i < cnt; i++) {
        if (dims[i] < 0)
            return FAIL("Expand to a negative dimension");
        want.dim[i] = dims[i];
    }
    if ((st = shape_broadcast(&in[0].shape, &want, &out[0].shape, err)))
        return st;
    out[0].dtype = in[0].dtype;
    return ENGINE_OK;
}

static engine_status infer_constant_of_shape(const graph_node *n, const tensor_desc *in,
                                             tensor_desc *out, engine_error *err)
{
    int64_t dims[ENGINE_MAX_RANK];
    int cnt;
    engine_status st = shape_const_ints(&in[0], "shape", dims, ENGINE_MAX_RANK, &cnt, err);
    if (st)
        return st;
    out[0].shape.rank = cnt;
    for (int i = 0; i < cnt; i++) {
        if (dims[i] < 0)
            return FAIL("ConstantOfShape with a negative dimension");
        out[0].shape.dim[i] = dims[i];
    }
    out[0].dtype = n->p.fill.dtype;
    return ENGINE_OK;
}

static engine_status infer_range(const tensor_desc *in, tensor_desc *out, engine_error *err)
{
    for (int k = 0; k < 3; k++)
        if (shape_numel(&in[k].shape) != 1 || in[k].dtype != in[0].dtype)
            return FAIL("Range takes three scalars of one type");
    double start = scalar_of(&in[0]), limit = scalar_of(&in[1]), delta = scalar_of(&in[2]);
    if (delta == 0 || !isfinite(start) || !isfinite(limit) || !isfinite(delta))
        return FAIL("Range with a zero or non-finite step");
    double cnt = ceil((limit - start) / delta);
    if (cnt > (double)ENGINE_MAX_ELEMENTS)
        return FAIL("Range of %.0f elements", cnt);
    out[0].dtype = in[0].dtype;
    out[0].shape = (shape_t){.rank = 1, .dim = {cnt > 0 ? (int64_t)cnt : 0}};
    return ENGINE_OK;
}

static engine_status infer_tile(const tensor_desc *in, tensor_desc *out, engine_error *err)
{
    int64_t reps[ENGINE_MAX_RANK];
    int cnt;
    engine_status st = shape_const_ints(&in[1], "repeats", reps, ENGINE_MAX_RANK, &cnt, err);
    if (st)
        return st;
    if (cnt != in[0].shape.rank)
        return FAIL("repeats has %d values for rank %d", cnt, in[0].shape.rank);
    out[0] = (tensor_desc){in[0].dtype, in[0].shape, NULL};
    for (int i = 0; i < cnt; i++) {
        if (reps[i] < 0)
            return FAIL("negative repeat");
        if (reps[i] && out[0].shape.dim[i] > ENGINE_MAX_ELEMENTS / reps[i])
            return FAIL("Tile output too large");
        out[0].shape.dim[i] *= reps[i];
    }
    return ENGINE_OK;
}

static engine_status infer_gather_elements(const graph_node *n, const tensor_desc *in,
                                           tensor_desc *out, step_params *r, engine_error *err)
{
    const shape_t *x = &in[0].shape, *idx = &in[1].shape;
    char a[96], b[96];
    int axis = axis_normalize(n->p.axis, x->rank);
    if (axis < 0 || in[1].dtype != DTYPE_INT64 || idx->rank != x->rank)
        return FAIL("indices %s do not fit data %s on axis %lld", fmt(idx, a), fmt(x, b),
                    (long long)n->p.axis);
    for (int i = 0; i < x->rank; i++)
        if (i != axis && idx->dim[i] > x->dim[i])
            return FAIL("indices %s exceed data %s", fmt(idx, a), fmt(x, b));
    r->axis = axis;
    out[0] = (tensor_desc){in[0].dtype, *idx, NULL};
    return ENGINE_OK;
}

static engine_status infer_scatter_nd(const tensor_desc *in, tensor_desc *out, engine_error *err)
{
    const shape_t *x = &in[0].shape, *idx = &in[1].shape, *u = &in[2].shape;
    char a[96], b[96];
    if (in[1].dtype != DTYPE_INT64 || idx->rank < 1 || in[2].dtype != in[0].dtype)
        return FAIL("ScatterND needs int64 indices and updates of the data's type");
    int64_t q = idx->rank, k = idx->dim[q - 1];
    if (k > x->rank || u->rank != q - 1 + x->rank - k)
        return FAIL("updates %s do not fit indices %s", fmt(u, a), fmt(idx, b));
    for (int i = 0; i < q - 1; i++)
        if (u->dim[i] != idx->dim[i])
            return FAIL("updates %s do not fit indices %s", fmt(u, a), fmt(idx, b));
    for (int64_t i = k; i < x->rank; i++)
        if (u->dim[q - 1 + i - k] != x->dim[i])
            return FAIL("updates %s do not fit data %s", fmt(u, a), fmt(x, b));
    const int64_t *iv = in[1].data;
    int64_t tuples = shape_numel(idx) / (k ? k : 1);
    for (int64_t t = 0; iv && k && t < tuples; t++)
        for (int64_t j = 0; j < k; j++)
            if (iv[t * k + j] < -x->dim[j] || iv[t * k + j] >= x->dim[j])
                return FAIL("ScatterND index %lld out of range", (long long)iv[t * k + j]);
    out[0] = (tensor_desc){in[0].dtype, *x, NULL};
    return ENGINE_OK;
}

static engine_status infer_einsum(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                  int64_t *flops, engine_error *err)
{
    const einsum_params *e = &n->p.einsum;
    int64_t size[52];
    for (int l = 0; l < 52; l++)
        size[l] = -1;
    for (int k = 0; k < e->n_operands; k++) {
        if (in[k].shape.rank != e->rank[k])
            return FAIL("operand %d has rank %d; the equation gives it %d", k, in[k].shape.rank,
                        e->rank[k]);
        for (int i = 0; i < e->rank[k]; i++) {
            int l = e->label[k][i];
            int64_t d = in[k].shape.dim[i];
            if (size[l] >= 0 && size[l] != d && size[l] != 1 && d != 1)
                return FAIL("Einsum label '%c' has sizes %lld and %lld", l < 26 ? 'a' + l : 'A' + l - 26,
                            (long long)size[l], (long long)d);
            if (size[l] < 0 || size[l] == 1)
                size[l] = d;
        }
    }
    int64_t work = 1;
    int labels = 0;
    for (int l = 0; l < 52; l++)
        if (size[l] >= 0) {
            work *= size[l] ? size[l] : 1;
            labels++;
        }
    if (labels > ENGINE_MAX_RANK)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "Einsum with %d labels (at most %d)",
                           labels, ENGINE_MAX_RANK);
    out[0].dtype = DTYPE_FLOAT32;
    out[0].shape.rank = e->rank[2];
    for (int i = 0; i < e->rank[2]; i++) {
        int l = e->label[2][i];
        if (size[l] < 0)
            return FAIL("output label '%c' is in no operand", l < 26 ? 'a' + l : 'A' + l - 26);
        out[0].shape.dim[i] = size[l];
    }
    *flops = 2 * work;
    return ENGINE_OK;
}

static engine_status infer_resize(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                  step_params *r, int64_t *flops, engine_error *err)
{
    const shape_t *x = &in[0].shape;
    char a[96];
    bool has_scales = n->n_inputs > 2 && present(&in[2]) && shape_numel(&in[2].shape) > 0;
    bool has_sizes = n->n_inputs > 3 && present(&in[3]) && shape_numel(&in[3].shape) > 0;
    if (has_scales == has_sizes)
        return FAIL("Resize needs exactly one of scales and sizes");
    if (x->rank < 2)
        return FAIL("Resize of %s", fmt(x, a));
    shape_t o = *x;
    double scale[ENGINE_MAX_RANK];
    if (has_sizes) {
        int64_t sizes[ENGINE_MAX_RANK];
        int cnt;
        engine_status st = shape_const_ints(&in[3], "sizes", sizes, ENGINE_MAX_RANK, &cnt, err);
        if (st)
            return st;
        if (cnt != x->rank)
            return FAIL("sizes has %d values for rank %d", cnt, x->rank);
        for (int i = 0; i < cnt; i++) {
            if (sizes[i] < 1 || sizes[i] > ENGINE_MAX_ELEMENTS)
                return FAIL("size %lld out of range", (long long)sizes[i]);
            o.dim[i] = sizes[i];
            scale[i] = x->dim[i] ? (double)sizes[i] / (double)x->dim[i] : 1.0;
        }
    } else {
        if (in[2].dtype != DTYPE_FLOAT32 || !in[2].data)
            return engine_fail(err, ENGINE_E_UNSUPPORTED, "scales must be a float constant");
        if (shape_numel(&in[2].shape) != x->rank)
            return FAIL("scales has %lld values for rank %d", (long long)shape_numel(&in[2].shape),
                        x->rank);
        const float *sv = in[2].data;
        for (int i = 0; i < x->rank; i++) {
            if (!(sv[i] > 0) || sv[i] > 65536)
                return FAIL("scale %g out of range", (double)sv[i]);
            scale[i] = sv[i];
            o.dim[i] = (int64_t)floor((double)x->dim[i] * sv[i]);
        }
    }
    for (int i = 0; i < x->rank - 2; i++)
        if (o.dim[i] != x->dim[i])
            return engine_fail(err, ENGINE_E_UNSUPPORTED,
                               "Resize of axis %d (%s): visiond resizes the last two axes only",
                               i, fmt(x, a));
    r->resize.scale[0] = (float)scale[x->rank - 2];
    r->resize.scale[1] = (float)scale[x->rank - 1];
    out[0] = (tensor_desc){DTYPE_FLOAT32, o, NULL};
    *flops = 4 * shape_numel(&o);
    return ENGINE_OK;
}

static engine_status infer_conv_transpose(const graph_node *n, const tensor_desc *in,
                                          tensor_desc *out, step_params *r, int64_t *flops,
                                          engine_error *err)
{
    const shape_t *x = &in[0].shape, *w = &in[1].shape;
    char a[96], b[96];
    const window_params *win = &n->p.convt.win;
    if ((x->rank != 3 && x->rank != 4) || w->rank != x->rank)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "ConvTranspose of %s with weights %s",
                           fmt(x, a), fmt(w, b));
    int spatial = x->rank - 2;
    int64_t g = win->group, c = x->dim[1];
    if (w->dim[0] != c || c % g != 0)
        return FAIL("weights %s with group %lld do not fit input %s", fmt(w, a), (long long)g,
                    fmt(x, b));
    int64_t m = w->dim[1] * g;
    if (present(&in[2]) && shape_numel(&in[2].shape) != m)
        return FAIL("bias %s does not have %lld elements", fmt(&in[2].shape, a), (long long)m);
    int64_t kernel[2] = {spatial == 1 ? 1 : w->dim[2], w->dim[w->rank - 1]};
    int64_t in_sp[2] = {spatial == 1 ? 1 : x->dim[2], x->dim[x->rank - 1]};
    shape_t o = *x;
    o.dim[1] = m;
    for (int i = 0; i < 2; i++) {
        if (win->kernel[i] && win->kernel[i] != kernel[i])
            return FAIL("kernel_shape disagrees with weights %s", fmt(w, a));
        int64_t full = win->stride[i] * (in_sp[i] - 1) + n->p.convt.output_padding[i] +
                       (kernel[i] - 1) * win->dilation[i] + 1;
        int64_t pb = win->pad_begin[i], pe = win->pad_end[i], os;
        if (n->p.convt.has_output_shape || win->auto_pad == AUTO_PAD_SAME_UPPER ||
            win->auto_pad == AUTO_PAD_SAME_LOWER) {
            os = n->p.convt.has_output_shape ? n->p.convt.output_shape[i]
                                             : in_sp[i] * win->stride[i];
            int64_t total = full - os; /* negative: the output reaches past the last tap */
            bool upper = win->auto_pad != AUTO_PAD_SAME_LOWER;
            pb = upper ? total / 2 : total - total / 2;
            pe = total - pb;
        } else {
            if (win->auto_pad == AUTO_PAD_VALID)
                pb = pe = 0;
            os = full - pb - pe;
        }
        if (os < 1)
            return FAIL("ConvTranspose output would be empty");
        r->win.pad_begin[i] = pb;
        r->win.pad_end[i] = pe;
        if (spatial == 2 || i == 1)
            o.dim[x->rank - 2 + (spatial == 2 ? i : 1)] = os;
    }
    out[0] = (tensor_desc){DTYPE_FLOAT32, o, NULL};
    *flops = 2 * shape_numel(x) * (m / g) * kernel[0] * kernel[1];
    return ENGINE_OK;
}

static engine_status infer_select(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                  step_params *r, int64_t *flops, engine_error *err)
{
    const shape_t *x = &in[0].shape;
    char a[96];
    int64_t axis_attr = n->op == OP_TOPK ? n->p.topk.axis : n->p.arg.axis;
    int axis = axis_normalize(axis_attr, x->rank);
    if (axis < 0)
        return FAIL("axis %lld out of range for %s", (long long)axis_attr, fmt(x, a));
    r->axis = axis;
    shape_t o = *x;
    if (n->op == OP_TOPK) {
        int64_t k[1];
        int cnt;
        engine_status st = shape_const_ints(&in[1], "K", k, 1, &cnt, err);
        if (st)
            return st;
        if (cnt != 1 || k[0] < 0 || k[0] > x->dim[axis])
            return FAIL("K = %lld for an axis of %lld", cnt ? (long long)k[0] : -1LL,
                        (long long)x->dim[axis]);
        r->topk.k = k[0];
        o.dim[axis] = k[0];
        out[0] = (tensor_desc){in[0].dtype, o, NULL};
        out[1] = (tensor_desc){DTYPE_INT64, o, NULL};
    } else {
        if (x->dim[axis] == 0)
            return FAIL("ArgMax/ArgMin over an empty axis");
        if (n->p.arg.keepdims) {
            o.dim[axis] = 1;
        } else {
            for (int i = axis; i < x->rank - 1; i++)
                o.dim[i] = x->dim[i + 1];
            o.rank--;
        }
        out[0] = (tensor_desc){DTYPE_INT64, o, NULL};
    }
    *flops = shape_numel(x);
    return ENGINE_OK;
}

/* NonMaxSuppression's output has as many rows as boxes survive; visiond
 * plans the most there can be and fills the rows past the survivors with -1. */
static engine_status infer_nms(const tensor_desc *in, tensor_desc *out, int64_t *flops,
                               engine_error *err)
{
    const shape_t *b = &in[0].shape, *s = &in[1].shape;
    char a[96], c[96];
    if (b->rank != 3 || b->dim[2] != 4 || s->rank != 3 || s->dim[0] != b->dim[0] ||
        s->dim[2] != b->dim[1])
        return FAIL("boxes %s and scores %s do not match", fmt(b, a), fmt(s, c));
    int64_t max_out = 0;
    if (present(&in[2])) {
        if (in[2].dtype != DTYPE_INT64 || shape_numel(&in[2].shape) != 1)
            return FAIL("max_output_boxes_per_class must be one int64");
        max_out = *(const int64_t *)in[2].data;
    }
    for (int k = 3; k < 5; k++)
        if (present(&in[k]) && (in[k].dtype != DTYPE_FLOAT32 || shape_numel(&in[k].shape) != 1))
            return FAIL("thresholds must be float scalars");
    if (max_out < 0)
        max_out = 0;
    int64_t per = max_out < b->dim[1] ? max_out : b->dim[1];
    out[0] = (tensor_desc){DTYPE_INT64, {.rank = 2, .dim = {b->dim[0] * s->dim[1] * per, 3}},
                           NULL};
    *flops = b->dim[0] * s->dim[1] * b->dim[1] * (per + 1);
    return ENGINE_OK;
}

engine_status shape_infer_ext(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                              step_params *r, int64_t *flops, engine_error *err)
{
    const shape_t *x = &in[0].shape;
    char a[96];
    switch (n->op) {
    case OP_ERF: case OP_GELU: case OP_SQRT: case OP_RECIPROCAL: case OP_NEG: case OP_ABS:
    case OP_TANH: case OP_SOFTPLUS: case OP_MISH: case OP_LOG: case OP_SILU:
        out[0] = (tensor_desc){DTYPE_FLOAT32, *x, NULL};
        *flops = shape_numel(x);
        return ENGINE_OK;
    case OP_NOT:
        if (in[0].dtype != DTYPE_INT64)
            return FAIL("Not needs a boolean operand");
        out[0] = (tensor_desc){DTYPE_INT64, *x, NULL};
        return ENGINE_OK;
    case OP_POW: case OP_MOD: case OP_MIN: case OP_MAX: case OP_EQUAL: case OP_LESS:
    case OP_LESS_OR_EQUAL: case OP_GREATER: case OP_GREATER_OR_EQUAL: case OP_AND: case OP_OR:
    case OP_WHERE:
        return infer_elementwise(n, in, out, flops, err);
    case OP_LAYER_NORM: case OP_INSTANCE_NORM:
        return infer_norm(n, in, out, r, flops, err);
    case OP_LOG_SOFTMAX:
        r->axis = axis_normalize(n->p.softmax.axis, x->rank);
        if (r->axis < 0)
            return FAIL("axis %lld out of range for %s", (long long)n->p.softmax.axis, fmt(x, a));
        out[0] = (tensor_desc){DTYPE_FLOAT32, *x, NULL};
        *flops = 3 * shape_numel(x);
        return ENGINE_OK;
    case OP_PRELU: {
        shape_t o;
        engine_status st = shape_broadcast(x, &in[1].shape, &o, err);
        if (st || !shape_equal(&o, x))
            return FAIL("slope %s does not broadcast to %s", fmt(&in[1].shape, a), fmt(x, a));
        out[0] = (tensor_desc){DTYPE_FLOAT32, *x, NULL};
        *flops = shape_numel(x);
        return ENGINE_OK;
    }
    case OP_EXPAND:
        return infer_expand(in, out, err);
    case OP_CONSTANT_OF_SHAPE:
        return infer_constant_of_shape(n, in, out, err);
    case OP_RANGE:
        return infer_range(in, out, err);
    case OP_TILE:
        return infer_tile(in, out, err);
    case OP_GATHER_ELEMENTS:
        return infer_gather_elements(n, in, out, r, err);
    case OP_SCATTER_ND:
        return infer_scatter_nd(in, out, err);
    case OP_EINSUM:
        return infer_einsum(n, in, out, flops, err);
    case OP_RESIZE:
        return infer_resize(n, in, out, r, flops, err);
    case OP_CONV_TRANSPOSE:
        return infer_conv_transpose(n, in, out, r, flops, err);
    case OP_TOPK: case OP_ARGMAX: case OP_ARGMIN:
        return infer_select(n, in, out, r, flops, err);
    case OP_NMS:
        return infer_nms(in, out, flops, err);
    default:
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "no shape inference for %s",
                           op_name(n->op));
    }
}
