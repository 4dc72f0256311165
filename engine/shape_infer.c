/* Shape and type inference for every operator visiond runs (see
 * shape_infer.h). Rules follow the ONNX operator specifications. */
#include "shape_infer.h"

#include <stdio.h>
#include <string.h>

#define FAIL(...) engine_fail(err, ENGINE_E_INVALID, __VA_ARGS__)

static const char *fmt(const shape_t *s, char *buf)
{
    return shape_format(s, buf, 96);
}

uint32_t op_const_inputs(op_t op)
{
    switch (op) {
    case OP_CONV: return 0x6;          /* W, B */
    case OP_BATCHNORM: return 0x1e;    /* scale, bias, mean, var */
    case OP_CLIP: return 0x6;          /* min, max */
    case OP_PAD: return 0xe;           /* pads, value, axes */
    case OP_RESHAPE: return 0x2;       /* shape */
    case OP_SLICE: return 0x1e;        /* starts, ends, axes, steps */
    case OP_SPLIT: return 0x2;         /* split */
    case OP_SQUEEZE:
    case OP_UNSQUEEZE:
    case OP_REDUCE_MEAN: return 0x2;   /* axes */
    case OP_DROPOUT: return 0x6;       /* ratio, training_mode */
    case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN: return 0x2; /* axes */
    case OP_LAYER_NORM: case OP_INSTANCE_NORM: return 0x6; /* scale, bias */
    case OP_PRELU: return 0x2;         /* slope */
    case OP_EXPAND: case OP_TILE: return 0x2; /* shape, repeats */
    case OP_CONSTANT_OF_SHAPE: return 0x1;
    case OP_RANGE: return 0x7;
    case OP_SCATTER_ND: return 0x2;    /* indices */
    case OP_RESIZE: return 0xe;        /* roi, scales, sizes */
    case OP_CONV_TRANSPOSE: return 0x6; /* W, B */
    case OP_TOPK: return 0x2;          /* K */
    case OP_NMS: return 0x1c;          /* max boxes, IoU and score thresholds */
    default: return 0;
    }
}

static bool present(const tensor_desc *d)
{
    return d->dtype != DTYPE_UNDEFINED;
}

/* Reads a constant int64 1-D (or scalar) tensor into vals. */
engine_status shape_const_ints(const tensor_desc *d, const char *what, int64_t *vals, int max,
                                int *count, engine_error *err)
{
    if (!d->data)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "%s must be a constant", what);
    if (d->dtype != DTYPE_INT64 || d->shape.rank > 1)
        return FAIL("%s must be a 1-D int64 tensor", what);
    int64_t n = shape_numel(&d->shape);
    if (n > max)
        return FAIL("%s has %lld values (at most %d)", what, (long long)n, max);
    memcpy(vals, d->data, (size_t)n * sizeof(int64_t));
    *count = (int)n;
    return ENGINE_OK;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

engine_status window_resolve(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                             auto_pad_t auto_pad, int64_t pad_begin, int64_t pad_end,
                             bool ceil_mode, int64_t *out, int64_t *res_begin, int64_t *res_end,
                             engine_error *err)
{
    int64_t ek = (kernel - 1) * dilation + 1;
    int64_t b = pad_begin, e = pad_end;
    if (auto_pad == AUTO_PAD_VALID) {
        b = e = 0;
    } else if (auto_pad == AUTO_PAD_SAME_UPPER || auto_pad == AUTO_PAD_SAME_LOWER) {
        int64_t o = ceil_div(in, stride);
        int64_t total = (o - 1) * stride + ek - in;
        if (total < 0)
            total = 0;
        b = auto_pad == AUTO_PAD_SAME_UPPER ? total / 2 : total - total / 2;
        e = total - b;
    }
    int64_t span = in + b + e - ek;
    if (span < 0)
        return FAIL("window of %lld (kernel %lld, dilation %lld) is larger than the padded input "
                    "of %lld",
                    (long long)ek, (long long)kernel, (long long)dilation, (long long)(in + b + e));
    int64_t o = (ceil_mode ? ceil_div(span, stride) : span / stride) + 1;
    /* The last window must start inside the input or its leading pad. */
    if (ceil_mode && (o - 1) * stride >= in + b)
        o--;
    *out = o;
    *res_begin = b;
    *res_end = e;
    return ENGINE_OK;
}

/* Conv and the pools share their spatial arithmetic. */
static engine_status infer_window(const graph_node *n, const shape_t *x, const int64_t kernel[2],
                                  shape_t *out_spatial, step_params *r, engine_error *err)
{
    const window_params *w = &n->p.win;
    int spatial = x->rank - 2;
    *out_spatial = *x;
    int64_t in[2] = {spatial == 1 ? 1 : x->dim[2], x->dim[x->rank - 1]};
    for (int i = 0; i < 2; i++) {
        int64_t o;
        bool ceil_mode = (n->op == OP_MAXPOOL || n->op == OP_AVGPOOL) && w->ceil_mode;
        engine_status st = window_resolve(in[i], kernel[i], w->stride[i], w->dilation[i],
                                          w->auto_pad, w->pad_begin[i], w->pad_end[i], ceil_mode,
                                          &o, &r->win.pad_begin[i], &r->win.pad_end[i], err);
        if (st)
            return st;
        if (spatial == 2 || i == 1)
            out_spatial->dim[x->rank - 2 + (spatial == 2 ? i : 1)] = o;
    }
    return ENGINE_OK;
}

static engine_status infer_conv(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                step_params *r, int64_t *flops, engine_error *err)
{
    const shape_t *x = &in[0].shape, *w = &in[1].shape;
    char a[96], b[96];
    if (x->rank != 3 && x->rank != 4)
        return engine_fail(err, ENGINE_E_UNSUPPORTED,
                           "input is %s; visiond convolves 1-D (N,C,L) and 2-D (N,C,H,W) inputs",
                           fmt(x, a));
    if (w->rank != x->rank)
        return FAIL("weights %s do not match input %s", fmt(w, a), fmt(x, b));
    int spatial = x->rank - 2;
    if (n->p.win.spatial && n->p.win.spatial != spatial)
        return FAIL("attributes describe a %d-D window but the input is %s", n->p.win.spatial,
                    fmt(x, a));
    int64_t g = n->p.win.group, m = w->dim[0], c = x->dim[1];
    if (w->dim[1] * g != c || m % g != 0)
        return FAIL("weights %s with group %lld do not fit input %s", fmt(w, a), (long long)g,
                    fmt(x, b));
    int64_t kernel[2] = {spatial == 1 ? 1 : w->dim[2], w->dim[w->rank - 1]};
    for (int i = 0; i < 2; i++)
        if (n->p.win.kernel[i] && n->p.win.kernel[i] != kernel[i])
            return FAIL("kernel_shape disagrees with weights %s", fmt(w, a));
    if (present(&in[2]) && (in[2].shape.rank != 1 || in[2].shape.dim[0] != m))
        return FAIL("bias %s does not have %lld elements", fmt(&in[2].shape, a), (long long)m);
    shape_t o;
    engine_status st = infer_window(n, x, kernel, &o, r, err);
    if (st)
        return st;
    o.dim[1] = m;
    /* input 3: a residual Add fused into the convolution (passes.c) */
    if (n->n_inputs > 3 && present(&in[3]) &&
        (in[3].dtype != DTYPE_FLOAT32 || !shape_equal(&in[3].shape, &o)))
        return FAIL("fused residual %s does not match the output %s", fmt(&in[3].shape, a),
                    fmt(&o, b));
    out[0].dtype = DTYPE_FLOAT32;
    out[0].shape = o;
    *flops = 2 * shape_numel(&o) * (c / g) * kernel[0] * kernel[1];
    return ENGINE_OK;
}

static engine_status infer_pool(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                step_params *r, int64_t *flops, engine_error *err)
{
    const shape_t *x = &in[0].shape;
    char a[96];
    if (x->rank != 2 + n->p.win.spatial)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "a %d-D window cannot pool input %s",
                           n->p.win.spatial, fmt(x, a));
    shape_t o;
    engine_status st = infer_window(n, x, n->p.win.kernel, &o, r, err);
    if (st)
        return st;
    out[0].dtype = DTYPE_FLOAT32;
    out[0].shape = o;
    *flops = shape_numel(&o) * n->p.win.kernel[0] * n->p.win.kernel[1];
    return ENGINE_OK;
}

static engine_status infer_gemm(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                int64_t *flops, engine_error *err)
{
    const shape_t *a = &in[0].shape, *b = &in[1].shape;
    char s1[96], s2[96];
    if (a->rank != 2 || b->rank != 2)
        return FAIL("Gemm needs 2-D operands, got %s and %s", fmt(a, s1), fmt(b, s2));
    int64_t m = n->p.gemm.trans_a ? a->dim[1] : a->dim[0];
    int64_t k = n->p.gemm.trans_a ? a->dim[0] : a->dim[1];
    int64_t k2 = n->p.gemm.trans_b ? b->dim[1] : b->dim[0];
    int64_t nn = n->p.gemm.trans_b ? b->dim[0] : b->dim[1];
    if (k != k2)
        return FAIL("inner dimensions differ: A is %s, B is %s", fmt(a, s1), fmt(b, s2));
    shape_t o = {.rank = 2, .dim = {m, nn}};
    if (present(&in[2])) {
        shape_t bc;
        engine_status st = shape_broadcast(&o, &in[2].shape, &bc, err);
        if (st || !shape_equal(&bc, &o))
            return FAIL("C %s does not broadcast to %s", fmt(&in[2].shape, s1), fmt(&o, s2));
    }
    out[0].dtype = DTYPE_FLOAT32;
    out[0].shape = o;
    *flops = 2 * m * nn * k;
    return ENGINE_OK;
}

static engine_status infer_matmul(const tensor_desc *in, tensor_desc *out, int64_t *flops,
                                  engine_error *err)
{
    shape_t a = in[0].shape, b = in[1].shape;
    char s1[96], s2[96];
    if (a.rank < 1 || b.rank < 1)
        return FAIL("MatMul operands must have rank >= 1");
    bool a_vec = a.rank == 1, b_vec = b.rank == 1;
    if (a_vec) {
        a.rank = 2;
        a.dim[1] = a.dim[0];
        a.dim[0] = 1;
    }
    if (b_vec) {
        b.rank = 2;
        b.dim[1] = 1;
    }
    int64_t m = a.dim[a.rank - 2], k = a.dim[a.rank - 1];
    int64_t k2 = b.dim[b.rank - 2], nn = b.dim[b.rank - 1];
    if (k != k2)
        return FAIL("inner dimensions differ: %s x %s", fmt(&in[0].shape, s1),
                    fmt(&in[1].shape, s2));
    shape_t ba = {.rank = a.rank - 2}, bb = {.rank = b.rank - 2}, batch;
    memcpy(ba.dim, a.dim, sizeof(int64_t) * (size_t)ba.rank);
    memcpy(bb.dim, b.dim, sizeof(int64_t) * (size_t)bb.rank);
    engine_status st = shape_broadcast(&ba, &bb, &batch, err);
    if (st)
        return st;
    shape_t o = batch;
    if (o.rank + 2 > ENGINE_MAX_RANK)
        return FAIL("MatMul rank too large");
    if (!a_vec)
        o.dim[o.rank++] = m;
    if (!b_vec)
        o.dim[o.rank++] = nn;
    out[0].dtype = DTYPE_FLOAT32;
    out[0].shape = o;
    *flops = 2 * shape_numel(&batch) * m * nn * k;
    return ENGINE_OK;
}

static engine_status infer_concat(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                  step_params *r, engine_error *err)
{
    const shape_t *first = &in[0].shape;
    int axis = axis_normalize(n->p.axis, first->rank);
    if (axis < 0)
        return FAIL("axis %lld out of range for rank %d", (long long)n->p.axis, first->rank);
    shape_t o = *first;
    o.dim[axis] = 0;
    char s1[96], s2[96];
    for (int i = 0; i < n->n_inputs; i++) {
        const tensor_desc *d = &in[i];
        if (!present(d))
            return FAIL("input %d is missing", i);
        if (d->dtype != in[0].dtype || d->shape.rank != first->rank)
            return FAIL("input %d (%s %s) does not match input 0 (%s %s)", i,
                        dtype_name(d->dtype), fmt(&d->shape, s1), dtype_name(in[0].dtype),
                        fmt(first, s2));
        for (int k = 0; k < first->rank; k++)
            if (k != axis && d->shape.dim[k] != first->dim[k])
                return FAIL("input %d %s does not match input 0 %s outside axis %d", i,
                            fmt(&d->shape, s1), fmt(first, s2), axis);
        o.dim[axis] += d->shape.dim[axis];
    }
    r->axis = axis;
    out[0].dtype = in[0].dtype;
    out[0].shape = o;
    return ENGINE_OK;
}

static engine_status infer_reshape(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                   engine_error *err)
{
    int64_t want[ENGINE_MAX_RANK];
    int cnt;
    engine_status st = shape_const_ints(&in[1], "the target shape", want, ENGINE_MAX_RANK, &cnt, err);
    if (st)
        return st;
    const shape_t *x = &in[0].shape;
    shape_t o = {.rank = cnt};
    int infer_at = -1;
    int64_t known = 1;
    for (int i = 0; i < cnt; i++) {
        int64_t d = want[i];
        if (d == 0 && !n->p.allowzero) {
            if (i >= x->rank)
                return FAIL("target shape copies dimension %d, which the input lacks", i);
            d = x->dim[i];
        }
        if (d == -1) {
            if (infer_at >= 0)
                return FAIL("target shape has more than one -1");
            infer_at = i;
            continue;
        }
        if (d < 0)
            return FAIL("target shape has dimension %lld", (long long)d);
        o.dim[i] = d;
        if (d > 0 && known > ENGINE_MAX_ELEMENTS / d)
            return FAIL("target shape is absurdly large");
        known *= d;
    }
    int64_t total = shape_numel(x);
    char s1[96];
    if (infer_at >= 0) {
        if (known == 0 || total % known != 0)
            return FAIL("cannot reshape %s: %lld elements do not divide by %lld", fmt(x, s1),
                        (long long)total, (long long)known);
        o.dim[infer_at] = total / known;
    } else if (known != total) {
        return FAIL("cannot reshape %s (%lld elements) to %lld elements", fmt(x, s1),
                    (long long)total, (long long)known);
    }
    out[0].dtype = in[0].dtype;
    out[0].shape = o;
    return ENGINE_OK;
}

static engine_status infer_slice(const tensor_desc *in, tensor_desc *out, step_params *r,
                                 engine_error *err)
{
    int64_t starts[ENGINE_MAX_RANK], ends[ENGINE_MAX_RANK], axes[ENGINE_MAX_RANK],
        steps[ENGINE_MAX_RANK];
    int ns, ne, na = -1, nst = -1;
    engine_status st;
    if ((st = shape_const_ints(&in[1], "starts", starts, ENGINE_MAX_RANK, &ns, err)) ||
        (st = shape_const_ints(&in[2], "ends", ends, ENGINE_MAX_RANK, &ne, err)))
        return st;
    if (present(&in[3]) && (st = shape_const_ints(&in[3], "axes", axes, ENGINE_MAX_RANK, &na, err)))
        return st;
    if (present(&in[4]) && (st = shape_const_ints(&in[4], "steps", steps, ENGINE_MAX_RANK, &nst, err)))
        return st;
    if (ne != ns || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return FAIL("starts, ends, axes and steps differ in length");
    const shape_t *x = &in[0].shape;
    shape_t o = *x;
    for (int i = 0; i < x->rank; i++) {
        r->slice.start[i] = 0;
        r->slice.step[i] = 1;
    }
    uint32_t seen = 0;
    for (int i = 0; i < ns; i++) {
        int axis = axis_normalize(na >= 0 ? axes[i] : i, x->rank);
        if (axis < 0 || (seen & (1u << axis)))
            return FAIL("slice axis %lld is out of range or repeated",
                        (long long)(na >= 0 ? axes[i] : i));
        seen |= 1u << axis;
        int64_t step = nst >= 0 ? steps[i] : 1;
        if (step == 0)
            return FAIL("slice step is 0");
        int64_t d = x->dim[axis], s = starts[i], e = ends[i];
        if (s < 0)
            s += d;
        if (e < 0)
            e += d;
        int64_t len;
        if (step > 0) {
            s = s < 0 ? 0 : s > d ? d : s;
            e = e < 0 ? 0 : e > d ? d : e;
            len = e > s ? (e - s + step - 1) / step : 0;
        } else {
            s = s < 0 ? -1 : s > d - 1 ? d - 1 : s;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            len = s > e ? (s - e + (-step) - 1) / (-step) : 0;
        }
        o.dim[axis] = len;
        r->slice.start[axis] = s;
        r->slice.step[axis] = step;
    }
    out[0].dtype = in[0].dtype;
    out[0].shape = o;
    return ENGINE_OK;
}

static engine_status infer_split(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                 step_params *r, engine_error *err)
{
    const shape_t *x = &in[0].shape;
    int axis = axis_normalize(n->p.split.axis, x->rank);
    if (axis < 0)
        return FAIL("axis %lld out of range", (long long)n->p.split.axis);
    int nout = n->n_outputs;
    int64_t sizes[SPLIT_MAX_OUTPUTS];
    if (nout > SPLIT_MAX_OUTPUTS)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "Split into %d parts (at most %d)", nout,
                           SPLIT_MAX_OUTPUTS);
    int64_t d = x->dim[axis];
    if (n->n_inputs > 1 && present(&in[1])) {
        int cnt;
        engine_status st = shape_const_ints(&in[1], "split", sizes, SPLIT_MAX_OUTPUTS, &cnt, err);
        if (st)
            return st;
        int64_t sum = 0;
        for (int i = 0; i < cnt; i++) {
            if (sizes[i] < 0)
                return FAIL("negative split size");
            sum += sizes[i];
        }
        if (cnt != nout || sum != d)
            return FAIL("split sizes do not add up to %lld over %d outputs", (long long)d, nout);
    } else {
        int64_t parts = n->p.split.num_outputs ? n->p.split.num_outputs : nout;
        if (parts != nout)
            return FAIL("num_outputs %lld but %d outputs", (long long)parts, nout);
        int64_t each = n->p.split.num_outputs ? (d + parts - 1) / parts : d / parts;
        if (!n->p.split.num_outputs && d % parts)
            return FAIL("axis of %lld does not split evenly into %d", (long long)d, nout);
        for (int i = 0; i < nout; i++) {
            int64_t left = d - each * i;
            sizes[i] = left < each ? (left > 0 ? left : 0) : each;
        }
    }
    for (int i = 0; i < nout; i++) {
        out[i].dtype = in[0].dtype;
        out[i].shape = *x;
        out[i].shape.dim[axis] = sizes[i];
    }
    r->axis = axis;
    return ENGINE_OK;
}

static engine_status infer_pad(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                               step_params *r, engine_error *err)
{
    const shape_t *x = &in[0].shape;
    int64_t pads[2 * ENGINE_MAX_RANK], axes[ENGINE_MAX_RANK];
    int np_, na = -1;
    engine_status st = shape_const_ints(&in[1], "pads", pads, 2 * ENGINE_MAX_RANK, &np_, err);
    if (st)
        return st;
    if (n->n_inputs > 3 && present(&in[3]) &&
        (st = shape_const_ints(&in[3], "axes", axes, ENGINE_MAX_RANK, &na, err)))
        return st;
    int naxes = na >= 0 ? na : x->rank;
    if (np_ != 2 * naxes)
        return FAIL("pads has %d values for %d axes", np_, naxes);
    float value = 0;
    if (n->n_inputs > 2 && present(&in[2])) {
        if (!in[2].data || in[2].dtype != DTYPE_FLOAT32 || shape_numel(&in[2].shape) != 1)
            return engine_fail(err, ENGINE_E_UNSUPPORTED, "the pad value must be a float constant");
        value = *(const float *)in[2].data;
    }
    shape_t o = *x;
    int64_t begin[ENGINE_MAX_RANK] = {0};
    for (int i = 0; i < naxes; i++) {
        int axis = na >= 0 ? axis_normalize(axes[i], x->rank) : i;
        if (axis < 0)
            return FAIL("pad axis out of range");
        int64_t b = pads[i], e = pads[i + naxes], d = x->dim[axis];
        if (b > (1 << 20) || e > (1 << 20))
            return FAIL("pad of %lld is absurd", (long long)(b > e ? b : e));
        if (d + b + e < 0)
            return FAIL("pads crop axis %d below zero", axis);
        if (n->p.pad == PAD_REFLECT && (b >= d || e >= d) && (b > 0 || e > 0))
            return FAIL("reflect pads must be smaller than the axis");
        if (n->p.pad == PAD_EDGE && d == 0 && (b > 0 || e > 0))
            return FAIL("edge padding of an empty axis");
        begin[axis] = b;
        o.dim[axis] = d + b + e;
    }
    memcpy(r->pad.begin, begin, sizeof begin);
    r->pad.value = value;
    out[0].dtype = in[0].dtype;
    out[0].shape = o;
    return ENGINE_OK;
}

static engine_status infer_squeeze(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                   engine_error *err)
{
    const shape_t *x = &in[0].shape;
    int64_t axes[ENGINE_MAX_RANK];
    int na = -1;
    if (n->n_inputs > 1 && present(&in[1])) {
        engine_status st = shape_const_ints(&in[1], "axes", axes, ENGINE_MAX_RANK, &na, err);
        if (st)
            return st;
    }
    shape_t o = {.rank = 0};
    if (n->op == OP_SQUEEZE) {
        uint32_t drop = 0;
        for (int i = 0; i < na; i++) {
            int a = axis_normalize(axes[i], x->rank);
            if (a < 0 || x->dim[a] != 1)
                return FAIL("cannot squeeze axis %lld", (long long)axes[i]);
            drop |= 1u << a;
        }
        for (int i = 0; i < x->rank; i++)
            if (!(na < 0 ? x->dim[i] == 1 : (drop >> i) & 1))
                o.dim[o.rank++] = x->dim[i];
    } else {
        if (na < 0)
            return FAIL("Unsqueeze needs axes");
        int rank = x->rank + na;
        if (rank > ENGINE_MAX_RANK)
            return engine_fail(err, ENGINE_E_UNSUPPORTED, "rank %d after Unsqueeze", rank);
        uint32_t add = 0;
        for (int i = 0; i < na; i++) {
            int a = axis_normalize(axes[i], rank);
            if (a < 0 || (add >> a) & 1)
                return FAIL("Unsqueeze axis %lld out of range or repeated", (long long)axes[i]);
            add |= 1u << a;
        }
        o.rank = rank;
        for (int i = 0, k = 0; i < rank; i++)
            o.dim[i] = (add >> i) & 1 ? 1 : x->dim[k++];
    }
    out[0].dtype = in[0].dtype;
    out[0].shape = o;
    return ENGINE_OK;
}

static engine_status infer_gather(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                  step_params *r, engine_error *err)
{
    const shape_t *x = &in[0].shape, *idx = &in[1].shape;
    int axis = axis_normalize(n->p.axis, x->rank);
    if (axis < 0)
        return FAIL("axis %lld out of range", (long long)n->p.axis);
    if (in[1].dtype != DTYPE_INT64)
        return FAIL("Gather indices must be int64");
    /* runtime indices are checked as they are read (host_ops.c) */
    const int64_t *iv = in[1].data;
    for (int64_t i = 0; iv && i < shape_numel(idx); i++)
        if (iv[i] < -x->dim[axis] || iv[i] >= x->dim[axis])
            return FAIL("Gather index %lld out of range for axis of %lld", (long long)iv[i],
                        (long long)x->dim[axis]);
    shape_t o = {.rank = x->rank - 1 + idx->rank};
    if (o.rank > ENGINE_MAX_RANK)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "Gather output rank %d", o.rank);
    int k = 0;
    for (int i = 0; i < axis; i++)
        o.dim[k++] = x->dim[i];
    for (int i = 0; i < idx->rank; i++)
        o.dim[k++] = idx->dim[i];
    for (int i = axis + 1; i < x->rank; i++)
        o.dim[k++] = x->dim[i];
    r->axis = axis;
    out[0].dtype = in[0].dtype;
    out[0].shape = o;
    return ENGINE_OK;
}

static engine_status infer_reduce(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                                  step_params *r, int64_t *flops, engine_error *err)
{
    const shape_t *x = &in[0].shape;
    int64_t axes[ENGINE_MAX_RANK];
    int na = 0;
    if (n->n_inputs > 1 && present(&in[1])) {
        engine_status st = shape_const_ints(&in[1], "axes", axes, ENGINE_MAX_RANK, &na, err);
        if (st)
            return st;
    }
    uint32_t mask = 0;
    if (na == 0)
        mask = n->p.reduce.noop_with_empty_axes ? 0 : (x->rank ? (1u << x->rank) - 1 : 0);
    for (int i = 0; i < na; i++) {
        int a = axis_normalize(axes[i], x->rank);
        if (a < 0)
            return FAIL("axis %lld out of range", (long long)axes[i]);
        mask |= 1u << a;
    }
    shape_t o = {.rank = 0};
    for (int i = 0; i < x->rank; i++) {
        if ((mask >> i) & 1) {
            if (n->p.reduce.keepdims)
                o.dim[o.rank++] = 1;
        } else {
            o.dim[o.rank++] = x->dim[i];
        }
    }
    r->reduce.axes_mask = mask;
    out[0].dtype = in[0].dtype;
    out[0].shape = o;
    *flops = shape_numel(x);
    return ENGINE_OK;
}

static engine_status infer_transpose(const graph_node *n, const tensor_desc *in,
                                     tensor_desc *out, step_params *r, engine_error *err)
{
    const shape_t *x = &in[0].shape;
    int rank = x->rank;
    if (n->p.transpose.n && n->p.transpose.n != rank)
        return FAIL("perm has %d entries for rank %d", n->p.transpose.n, rank);
    uint32_t seen = 0;
    shape_t o = {.rank = rank};
    for (int i = 0; i < rank; i++) {
        int p = n->p.transpose.n ? axis_normalize(n->p.transpose.perm[i], rank) : rank - 1 - i;
        if (p < 0 || (seen >> p) & 1)
            return FAIL("perm is not a permutation");
        seen |= 1u << p;
        r->transpose.perm[i] = p;
        o.dim[i] = x->dim[p];
    }
    out[0].dtype = in[0].dtype;
    out[0].shape = o;
    return ENGINE_OK;
}

static engine_status expect_float(const graph_node *n, const tensor_desc *in, engine_error *err)
{
    for (int i = 0; i < n->n_inputs; i++) {
        if (!present(&in[i]) || (op_const_inputs(n->op) >> i) & 1)
            continue;
        if (in[i].dtype != DTYPE_FLOAT32)
            return engine_fail(err, ENGINE_E_UNSUPPORTED, "input %d is %s; %s takes float32", i,
                               dtype_name(in[i].dtype), op_name(n->op));
    }
    return ENGINE_OK;
}

engine_status shape_infer_node(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                               step_params *r, int64_t *flops, engine_error *err)
{
    char s1[96], s2[96];
    const shape_t *x = &in[0].shape;
    int64_t numel = shape_numel(x);
    *flops = 0;
    memset(r, 0, sizeof *r);
    for (int i = 0; i < n->n_outputs; i++)
        out[i].dtype = DTYPE_UNDEFINED, out[i].data = NULL;
    if (!present(&in[0]) && n->op != OP_NONE)
        return FAIL("input 0 is missing");
    /* int64 tensors exist for shape arithmetic; float math ops refuse them. */
    switch (n->op) {
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_CONCAT: case OP_FLATTEN:
    case OP_RESHAPE: case OP_TRANSPOSE: case OP_SLICE: case OP_SPLIT: case OP_SQUEEZE:
    case OP_UNSQUEEZE: case OP_GATHER: case OP_SHAPE: case OP_CAST: case OP_IDENTITY:
    case OP_DROPOUT: case OP_PAD: case OP_NORMALIZE_IMAGE:
    case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN:
        break;
    default: {
        if (op_runtime_int64(n->op) || n->op == OP_POW || n->op == OP_MOD || n->op == OP_MIN ||
            n->op == OP_MAX || n->op == OP_EXPAND || n->op == OP_CONSTANT_OF_SHAPE ||
            n->op == OP_RANGE || n->op == OP_TILE || n->op == OP_SCATTER_ND)
            break; /* their own rules (shape_infer_ext.c) */
        engine_status st = expect_float(n, in, err);
        if (st)
            return st;
    }
    }
    switch (n->op) {
    case OP_CONV:
        return infer_conv(n, in, out, r, flops, err);
    case OP_MAXPOOL:
    case OP_AVGPOOL:
        return infer_pool(n, in, out, r, flops, err);
    case OP_GLOBAL_AVGPOOL:
    case OP_GLOBAL_MAXPOOL:
        if (x->rank < 3)
            return FAIL("global pooling needs an (N,C,...) input, got %s", fmt(x, s1));
        out[0].dtype = DTYPE_FLOAT32;
        out[0].shape = *x;
        for (int i = 2; i < x->rank; i++)
            out[0].shape.dim[i] = 1;
        *flops = numel;
        return ENGINE_OK;
    case OP_GEMM:
        return infer_gemm(n, in, out, flops, err);
    case OP_MATMUL:
        return infer_matmul(in, out, flops, err);
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: {
        if (in[0].dtype != in[1].dtype)
            return FAIL("operands are %s and %s", dtype_name(in[0].dtype), dtype_name(in[1].dtype));
        engine_status st = shape_broadcast(&in[0].shape, &in[1].shape, &out[0].shape, err);
        if (st)
            return st; /* out[0] holds nothing to count */
        out[0].dtype = in[0].dtype;
        *flops = shape_numel(&out[0].shape);
        return ENGINE_OK;
    }
    case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID: case OP_HARD_SIGMOID:
    case OP_HARD_SWISH: case OP_EXP:
        out[0] = (tensor_desc){DTYPE_FLOAT32, *x, NULL};
        *flops = numel;
        return ENGINE_OK;
    case OP_BATCHNORM: {
        if (x->rank < 2)
            return FAIL("BatchNormalization needs an (N,C,...) input, got %s", fmt(x, s1));
        int nparams = n->n_inputs - 1; /* 4 raw parameters, or 2 precomputed */
        for (int i = 1; i <= nparams; i++)
            if (!present(&in[i]) || in[i].shape.rank != 1 || in[i].shape.dim[0] != x->dim[1])
                return FAIL("parameter %d is %s; expected %lld values", i,
                            fmt(&in[i].shape, s2), (long long)x->dim[1]);
        out[0] = (tensor_desc){DTYPE_FLOAT32, *x, NULL};
        *flops = 2 * numel;
        return ENGINE_OK;
    }
    case OP_LRN:
        if (x->rank < 3)
            return FAIL("LRN needs an (N,C,...) input, got %s", fmt(x, s1));
        out[0] = (tensor_desc){DTYPE_FLOAT32, *x, NULL};
        *flops = numel * (n->p.lrn.size + 4);
        return ENGINE_OK;
    case OP_SOFTMAX:
        r->axis = axis_normalize(n->p.softmax.axis, x->rank);
        if (r->axis < 0)
            return FAIL("axis %lld out of range for %s", (long long)n->p.softmax.axis, fmt(x, s1));
        out[0] = (tensor_desc){DTYPE_FLOAT32, *x, NULL};
        *flops = 3 * numel;
        return ENGINE_OK;
    case OP_CONCAT:
        return infer_concat(n, in, out, r, err);
    case OP_FLATTEN: {
        int64_t axis = n->p.axis < 0 ? n->p.axis + x->rank : n->p.axis;
        if (axis < 0 || axis > x->rank)
            return FAIL("axis %lld out of range for %s", (long long)n->p.axis, fmt(x, s1));
        int64_t outer = 1;
        for (int i = 0; i < axis; i++)
            outer *= x->dim[i];
        out[0].dtype = in[0].dtype;
        out[0].shape = (shape_t){.rank = 2, .dim = {outer, outer ? numel / outer : 0}};
        if (outer == 0) {
            int64_t inner = 1;
            for (int i = (int)axis; i < x->rank; i++)
                inner *= x->dim[i];
            out[0].shape.dim[1] = inner;
        }
        r->axis = (int)axis;
        return ENGINE_OK;
    }
    case OP_RESHAPE:
        return infer_reshape(n, in, out, err);
    case OP_TRANSPOSE:
        return infer_transpose(n, in, out, r, err);
    case OP_SLICE:
        return infer_slice(in, out, r, err);
    case OP_SPLIT:
        return infer_split(n, in, out, r, err);
    case OP_PAD:
        return infer_pad(n, in, out, r, err);
    case OP_SQUEEZE:
    case OP_UNSQUEEZE:
        return infer_squeeze(n, in, out, err);
    case OP_GATHER:
        return infer_gather(n, in, out, r, err);
    case OP_SHAPE: {
        int64_t rank = x->rank, s = n->p.shape.start, e = n->p.shape.has_end ? n->p.shape.end : rank;
        if (s < 0)
            s += rank;
        if (e < 0)
            e += rank;
        s = s < 0 ? 0 : s > rank ? rank : s;
        e = e < 0 ? 0 : e > rank ? rank : e;
        out[0].dtype = DTYPE_INT64;
        out[0].shape = (shape_t){.rank = 1, .dim = {e > s ? e - s : 0}};
        return ENGINE_OK;
    }
    case OP_CAST:
        out[0] = (tensor_desc){n->p.cast.to, *x, NULL};
        return ENGINE_OK;
    case OP_REDUCE_MEAN: case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN:
        return infer_reduce(n, in, out, r, flops, err);
    case OP_DROPOUT:
        if (n->n_inputs > 2 && present(&in[2])) {
            if (!in[2].data)
                return engine_fail(err, ENGINE_E_UNSUPPORTED, "training_mode must be a constant");
            bool training = in[2].dtype == DTYPE_INT64 ? *(const int64_t *)in[2].data != 0
                                                       : *(const float *)in[2].data != 0;
            /* training with a ratio of 0 drops nothing (torch's functional dropout in eval) */
            bool no_ratio = present(&in[1]) && in[1].data && in[1].dtype == DTYPE_FLOAT32 &&
                            *(const float *)in[1].data == 0.0f;
            if (training && !no_ratio)
                return engine_fail(err, ENGINE_E_UNSUPPORTED, "Dropout in training mode");
        }
        out[0] = (tensor_desc){in[0].dtype, *x, NULL};
        return ENGINE_OK;
    case OP_IDENTITY:
        out[0] = (tensor_desc){in[0].dtype, *x, NULL};
        return ENGINE_OK;
    case OP_NORMALIZE_IMAGE: {
        const shape_t *b = &in[1].shape;
        if (in[0].dtype != DTYPE_FLOAT32 || x->rank != 4 || in[1].dtype != DTYPE_UINT8 ||
            b->rank != 4 || b->dim[0] != x->dim[0] || b->dim[1] != x->dim[2] ||
            b->dim[2] != x->dim[3] || b->dim[3] != x->dim[1])
            return FAIL("images %s do not match the input %s", shape_format(b, s1, sizeof s1),
                        shape_format(x, s2, sizeof s2));
        out[0] = (tensor_desc){DTYPE_FLOAT32, *x, NULL};
        *flops = 2 * numel;
        return ENGINE_OK;
    }
    default:
        return shape_infer_ext(n, in, out, r, flops, err);
    }
}
