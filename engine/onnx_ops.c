/* ONNX operators: which ones visiond accepts, and their attributes parsed
 * into the canonical parameters of graph.h.
 *
 * Older opsets passed some operands as attributes (Slice starts/ends, Clip
 * min/max, Pad pads, Squeeze/Unsqueeze/ReduceMean axes, Split sizes); those
 * become constant inputs here, so the rest of the engine sees one form.
 * Attribute values are bounded here too: they come from an untrusted file.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

#define MAX_WINDOW 65536 /* bound on kernel sizes, strides, dilations and pads */

typedef engine_status (*parse_fn)(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                  engine_error *err);

struct onnx_op_def {
    const char *type;
    op_t op;
    int min_in, max_in, min_out, max_out; /* max -1: unbounded */
    parse_fn parse;
};

/* --- attribute access --- */

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *np, const char *name)
{
    for (size_t i = 0; i < np->n_attribute; i++)
        if (np->attribute[i]->name && strcmp(np->attribute[i]->name, name) == 0)
            return np->attribute[i];
    return NULL;
}

static engine_status get_int(const Onnx__NodeProto *np, const char *name, int64_t def,
                             int64_t *out, engine_error *err)
{
    const Onnx__AttributeProto *a = find_attr(np, name);
    if (!a) {
        *out = def;
        return ENGINE_OK;
    }
    if (!a->has_i)
        return engine_fail(err, ENGINE_E_INVALID, "attribute '%s' should be an integer", name);
    *out = a->i;
    return ENGINE_OK;
}

static engine_status get_float(const Onnx__NodeProto *np, const char *name, float def, float *out,
                               engine_error *err)
{
    const Onnx__AttributeProto *a = find_attr(np, name);
    if (!a) {
        *out = def;
        return ENGINE_OK;
    }
    if (!a->has_f)
        return engine_fail(err, ENGINE_E_INVALID, "attribute '%s' should be a float", name);
    if (!isfinite(a->f) && strcmp(name, "min") != 0 && strcmp(name, "max") != 0)
        return engine_fail(err, ENGINE_E_INVALID, "attribute '%s' is not finite", name);
    *out = a->f;
    return ENGINE_OK;
}

/* *count = -1 when the attribute is absent. */
static engine_status get_ints(const Onnx__NodeProto *np, const char *name, int64_t *out, int max,
                              int *count, engine_error *err)
{
    const Onnx__AttributeProto *a = find_attr(np, name);
    *count = -1;
    if (!a)
        return ENGINE_OK;
    if (a->n_ints > (size_t)max)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "attribute '%s' has %zu values (at most %d)",
                           name, a->n_ints, max);
    for (size_t i = 0; i < a->n_ints; i++)
        out[i] = a->ints[i];
    *count = (int)a->n_ints;
    return ENGINE_OK;
}

static engine_status get_string(const Onnx__NodeProto *np, const char *name, const char *def,
                                char *out, size_t n, engine_error *err)
{
    const Onnx__AttributeProto *a = find_attr(np, name);
    if (!a) {
        snprintf(out, n, "%s", def);
        return ENGINE_OK;
    }
    if (!a->has_s)
        return engine_fail(err, ENGINE_E_INVALID, "attribute '%s' should be a string", name);
    size_t len = a->s.len < n - 1 ? a->s.len : n - 1;
    memcpy(out, a->s.data, len);
    out[len] = 0;
    return ENGINE_OK;
}

/* Attribute list of int64 -> constant 1-D int64 input at slot k. */
static engine_status ints_to_input(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                   const char *attr, int k, bool required, engine_error *err)
{
    int64_t vals[64];
    int cnt;
    engine_status st = get_ints(np, attr, vals, 64, &cnt, err);
    if (st)
        return st;
    if (cnt < 0) {
        if (required)
            return engine_fail(err, ENGINE_E_INVALID, "attribute '%s' is required", attr);
        return ENGINE_OK;
    }
    shape_t s = {.rank = 1, .dim = {cnt}};
    char hint[300];
    snprintf(hint, sizeof hint, "%.200s:%s", n->name, attr);
    int v = graph_add_const(g, hint, DTYPE_INT64, &s, vals, err);
    if (v < 0)
        return err->status;
    return graph_node_set_input(n, k, v, err);
}

static engine_status float_to_input(graph *g, graph_node *n, float value, const char *what, int k,
                                    engine_error *err)
{
    shape_t s = {.rank = 0};
    char hint[300];
    snprintf(hint, sizeof hint, "%.200s:%s", n->name, what);
    int v = graph_add_const(g, hint, DTYPE_FLOAT32, &s, &value, err);
    if (v < 0)
        return err->status;
    return graph_node_set_input(n, k, v, err);
}

/* --- sliding windows (Conv, pools) --- */

static engine_status parse_window(const Onnx__NodeProto *np, window_params *w, bool is_pool,
                                  engine_error *err)
{
    int64_t kernel[8], strides[8], dil[8], pads[16];
    int nk, ns, nd, np_;
    engine_status st;
    if ((st = get_ints(np, "kernel_shape", kernel, 8, &nk, err)) ||
        (st = get_ints(np, "strides", strides, 8, &ns, err)) ||
        (st = get_ints(np, "dilations", dil, 8, &nd, err)) ||
        (st = get_ints(np, "pads", pads, 16, &np_, err)))
        return st;
    int spatial = nk >= 0 ? nk : ns >= 0 ? ns : nd >= 0 ? nd : np_ >= 0 ? np_ / 2 : 0;
    if (is_pool && nk < 0)
        return engine_fail(err, ENGINE_E_INVALID, "attribute 'kernel_shape' is required");
    if (spatial > 2)
        return engine_fail(err, ENGINE_E_UNSUPPORTED,
                           "%d-D windows are not supported (1-D and 2-D are)", spatial);
    if ((ns >= 0 && ns != spatial) || (nd >= 0 && nd != spatial) ||
        (np_ >= 0 && np_ != 2 * spatial) || (nk >= 0 && nk != spatial) ||
        (is_pool && spatial == 0))
        return engine_fail(err, ENGINE_E_INVALID,
                           "kernel_shape, strides, dilations and pads disagree on the number of "
                           "spatial axes");
    memset(w, 0, sizeof *w);
    w->spatial = spatial;
    /* Stored as 2-D: a 1-D window becomes height 1 on axis 0. */
    int off = spatial == 1 ? 1 : 0;
    for (int i = 0; i < 2; i++) {
        w->kernel[i] = 0;
        w->stride[i] = 1;
        w->dilation[i] = 1;
    }
    if (spatial == 1)
        w->kernel[0] = 1;
    for (int i = 0; i < spatial; i++) {
        if (nk >= 0)
            w->kernel[i + off] = kernel[i];
        if (ns >= 0)
            w->stride[i + off] = strides[i];
        if (nd >= 0)
            w->dilation[i + off] = dil[i];
        if (np_ >= 0) {
            w->pad_begin[i + off] = pads[i];
            w->pad_end[i + off] = pads[i + spatial];
        }
    }
    for (int i = 0; i < 2; i++) {
        if ((nk >= 0 && (w->kernel[i] < 1 || w->kernel[i] > MAX_WINDOW)) || w->stride[i] < 1 ||
            w->stride[i] > MAX_WINDOW || w->dilation[i] < 1 || w->dilation[i] > MAX_WINDOW ||
            w->pad_begin[i] < 0 || w->pad_begin[i] > MAX_WINDOW || w->pad_end[i] < 0 ||
            w->pad_end[i] > MAX_WINDOW)
            return engine_fail(err, ENGINE_E_INVALID,
                               "kernel, stride, dilation or pad out of range");
    }
    char ap[32];
    if ((st = get_string(np, "auto_pad", "NOTSET", ap, sizeof ap, err)))
        return st;
    if (strcmp(ap, "NOTSET") == 0 || ap[0] == 0)
        w->auto_pad = AUTO_PAD_NOTSET;
    else if (strcmp(ap, "SAME_UPPER") == 0)
        w->auto_pad = AUTO_PAD_SAME_UPPER;
    else if (strcmp(ap, "SAME_LOWER") == 0)
        w->auto_pad = AUTO_PAD_SAME_LOWER;
    else if (strcmp(ap, "VALID") == 0)
        w->auto_pad = AUTO_PAD_VALID;
    else
        return engine_fail(err, ENGINE_E_INVALID, "unknown auto_pad '%s'", ap);
    return ENGINE_OK;
}

static engine_status parse_conv(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                engine_error *err)
{
    (void)g;
    engine_status st = parse_window(np, &n->p.win, false, err);
    if (st)
        return st;
    if ((st = get_int(np, "group", 1, &n->p.win.group, err)))
        return st;
    if (n->p.win.group < 1 || n->p.win.group > (1 << 20))
        return engine_fail(err, ENGINE_E_INVALID, "group %lld out of range",
                           (long long)n->p.win.group);
    return ENGINE_OK;
}

static engine_status parse_pool(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                engine_error *err)
{
    (void)g;
    engine_status st = parse_window(np, &n->p.win, true, err);
    if (st)
        return st;
    int64_t ceil_mode, cip;
    if ((st = get_int(np, "ceil_mode", 0, &ceil_mode, err)) ||
        (st = get_int(np, "count_include_pad", 0, &cip, err)))
        return st;
    n->p.win.ceil_mode = ceil_mode != 0;
    n->p.win.count_include_pad = cip != 0;
    n->p.win.group = 1;
    if (n->op == OP_MAXPOOL && np->n_output > 1 && np->output[1] && np->output[1][0])
        return engine_fail(err, ENGINE_E_UNSUPPORTED,
                           "the Indices output of MaxPool is not supported");
    return ENGINE_OK;
}

static engine_status parse_none(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                engine_error *err)
{
    (void)g, (void)n, (void)np, (void)err;
    return ENGINE_OK;
}

static engine_status parse_gemm(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                engine_error *err)
{
    (void)g;
    int64_t ta, tb;
    engine_status st;
    if ((st = get_float(np, "alpha", 1.0f, &n->p.gemm.alpha, err)) ||
        (st = get_float(np, "beta", 1.0f, &n->p.gemm.beta, err)) ||
        (st = get_int(np, "transA", 0, &ta, err)) || (st = get_int(np, "transB", 0, &tb, err)))
        return st;
    n->p.gemm.trans_a = ta != 0;
    n->p.gemm.trans_b = tb != 0;
    return ENGINE_OK;
}

static engine_status parse_activation(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                      engine_error *err)
{
    engine_status st = ENGINE_OK;
    act_params *a = &n->act;
    switch (n->op) {
    case OP_RELU: a->kind = ACT_RELU; break;
    case OP_SIGMOID: a->kind = ACT_SIGMOID; break;
    case OP_EXP: a->kind = ACT_EXP; break;
    case OP_HARD_SWISH: a->kind = ACT_HARD_SWISH; break;
    case OP_ERF: a->kind = ACT_ERF; break;
    case OP_SQRT: a->kind = ACT_SQRT; break;
    case OP_RECIPROCAL: a->kind = ACT_RECIPROCAL; break;
    case OP_NEG: a->kind = ACT_NEG; break;
    case OP_ABS: a->kind = ACT_ABS; break;
    case OP_TANH: a->kind = ACT_TANH; break;
    case OP_SOFTPLUS: a->kind = ACT_SOFTPLUS; break;
    case OP_MISH: a->kind = ACT_MISH; break;
    case OP_LOG: a->kind = ACT_LOG; break;
    case OP_LEAKY_RELU:
        a->kind = ACT_LEAKY_RELU;
        st = get_float(np, "alpha", 0.01f, &a->alpha, err);
        break;
    case OP_HARD_SIGMOID:
        a->kind = ACT_HARD_SIGMOID;
        if (!(st = get_float(np, "alpha", 0.2f, &a->alpha, err)))
            st = get_float(np, "beta", 0.5f, &a->beta, err);
        break;
    case OP_CLIP:
        a->kind = ACT_CLIP;
        a->alpha = -INFINITY;
        a->beta = INFINITY;
        if (g->opset < 11) {
            if (!(st = get_float(np, "min", -INFINITY, &a->alpha, err)))
                st = get_float(np, "max", INFINITY, &a->beta, err);
        } /* else: min/max are inputs, resolved once constants are folded */
        break;
    default:
        break;
    }
    return st;
}

static engine_status parse_batchnorm(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                     engine_error *err)
{
    int64_t spatial, training;
    engine_status st;
    if ((st = get_float(np, "epsilon", 1e-5f, &n->p.epsilon, err)) ||
        (st = get_int(np, "spatial", 1, &spatial, err)) ||
        (st = get_int(np, "training_mode", 0, &training, err)))
        return st;
    if (g->opset < 9 && spatial != 1)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "spatial=0 batch normalization");
    if (training)
        return engine_fail(err, ENGINE_E_UNSUPPORTED,
                           "training_mode=1 is not supported (visiond runs inference only)");
    if (!(n->p.epsilon >= 0))
        return engine_fail(err, ENGINE_E_INVALID, "negative epsilon");
    return ENGINE_OK;
}

static engine_status parse_lrn(graph *g, graph_node *n, const Onnx__NodeProto *np,
                               engine_error *err)
{
    (void)g;
    engine_status st;
    if ((st = get_int(np, "size", 0, &n->p.lrn.size, err)) ||
        (st = get_float(np, "alpha", 1e-4f, &n->p.lrn.alpha, err)) ||
        (st = get_float(np, "beta", 0.75f, &n->p.lrn.beta, err)) ||
        (st = get_float(np, "bias", 1.0f, &n->p.lrn.bias, err)))
        return st;
    if (n->p.lrn.size < 1 || n->p.lrn.size > 4096)
        return engine_fail(err, ENGINE_E_INVALID, "LRN size %lld out of range",
                           (long long)n->p.lrn.size);
    return ENGINE_OK;
}

static engine_status parse_softmax(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                   engine_error *err)
{
    n->p.softmax.legacy_2d = g->opset < 13;
    return get_int(np, "axis", g->opset < 13 ? 1 : -1, &n->p.softmax.axis, err);
}

static engine_status parse_axis_required(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                         engine_error *err)
{
    (void)g;
    if (!find_attr(np, "axis"))
        return engine_fail(err, ENGINE_E_INVALID, "attribute 'axis' is required");
    return get_int(np, "axis", 0, &n->p.axis, err);
}

static engine_status parse_axis_default0(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                         engine_error *err)
{
    (void)g;
    return get_int(np, "axis", 0, &n->p.axis, err);
}

static engine_status parse_flatten(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                   engine_error *err)
{
    (void)g;
    return get_int(np, "axis", 1, &n->p.axis, err);
}

static engine_status parse_reshape(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                   engine_error *err)
{
    (void)g;
    int64_t az;
    engine_status st = get_int(np, "allowzero", 0, &az, err);
    n->p.allowzero = az != 0;
    return st;
}

static engine_status parse_transpose(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                     engine_error *err)
{
    (void)g;
    int cnt;
    engine_status st = get_ints(np, "perm", n->p.transpose.perm, ENGINE_MAX_RANK, &cnt, err);
    n->p.transpose.n = cnt < 0 ? 0 : cnt;
    return st;
}

static engine_status parse_slice(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                 engine_error *err)
{
    if (g->opset >= 10)
        return ENGINE_OK;
    engine_status st;
    if ((st = ints_to_input(g, n, np, "starts", 1, true, err)) ||
        (st = ints_to_input(g, n, np, "ends", 2, true, err)) ||
        (st = ints_to_input(g, n, np, "axes", 3, false, err)))
        return st;
    return ENGINE_OK;
}

static engine_status parse_split(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                 engine_error *err)
{
    engine_status st;
    for (size_t i = 0; i < np->n_output; i++)
        if (!np->output[i] || !np->output[i][0])
            return engine_fail(err, ENGINE_E_UNSUPPORTED, "Split with an unnamed output");
    if ((st = get_int(np, "axis", 0, &n->p.split.axis, err)) ||
        (st = get_int(np, "num_outputs", 0, &n->p.split.num_outputs, err)))
        return st;
    if (g->opset < 13 && n->n_inputs < 2)
        return ints_to_input(g, n, np, "split", 1, false, err);
    return ENGINE_OK;
}

static engine_status parse_pad(graph *g, graph_node *n, const Onnx__NodeProto *np,
                               engine_error *err)
{
    char mode[32];
    engine_status st = get_string(np, "mode", "constant", mode, sizeof mode, err);
    if (st)
        return st;
    if (strcmp(mode, "constant") == 0)
        n->p.pad = PAD_CONSTANT;
    else if (strcmp(mode, "reflect") == 0)
        n->p.pad = PAD_REFLECT;
    else if (strcmp(mode, "edge") == 0)
        n->p.pad = PAD_EDGE;
    else
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "Pad mode '%s'", mode);
    if (g->opset < 11) {
        float value;
        if ((st = ints_to_input(g, n, np, "pads", 1, true, err)) ||
            (st = get_float(np, "value", 0.0f, &value, err)) ||
            (st = float_to_input(g, n, value, "value", 2, err)))
            return st;
    }
    return ENGINE_OK;
}

static engine_status parse_squeeze(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                   engine_error *err)
{
    if (g->opset >= 13)
        return ENGINE_OK;
    return ints_to_input(g, n, np, "axes", 1, n->op == OP_UNSQUEEZE, err);
}

static engine_status parse_shape(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                 engine_error *err)
{
    (void)g;
    engine_status st = get_int(np, "start", 0, &n->p.shape.start, err);
    if (st)
        return st;
    n->p.shape.has_end = find_attr(np, "end") != NULL;
    return get_int(np, "end", 0, &n->p.shape.end, err);
}

static engine_status parse_cast(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                engine_error *err)
{
    (void)g;
    int64_t to;
    if (!find_attr(np, "to"))
        return engine_fail(err, ENGINE_E_INVALID, "attribute 'to' is required");
    engine_status st = get_int(np, "to", 0, &to, err);
    if (st)
        return st;
    if (to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        n->p.cast.to = DTYPE_FLOAT32;
    else if (to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 ||
             to == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL) {
        n->p.cast.to = DTYPE_INT64;
        n->p.cast.to_bool = to == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
    }
    else
        return engine_fail(err, ENGINE_E_UNSUPPORTED,
                           "Cast to ONNX type %lld (visiond casts to float, int32, int64 and bool)",
                           (long long)to);
    return ENGINE_OK;
}

static engine_status parse_reduce(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                  engine_error *err)
{
    int64_t keep, noop;
    engine_status st;
    if ((st = get_int(np, "keepdims", 1, &keep, err)) ||
        (st = get_int(np, "noop_with_empty_axes", 0, &noop, err)))
        return st;
    n->p.reduce.keepdims = keep != 0;
    n->p.reduce.noop_with_empty_axes = noop != 0;
    if (g->opset < (n->op == OP_REDUCE_SUM ? 13 : 18))
        return ints_to_input(g, n, np, "axes", 1, false, err);
    return ENGINE_OK;
}

/* --- operators of transformers, segmentation and detection models --- */

static engine_status parse_layer_norm(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                      engine_error *err)
{
    (void)g;
    engine_status st;
    if ((st = get_int(np, "axis", -1, &n->p.layer_norm.axis, err)) ||
        (st = get_float(np, "epsilon", 1e-5f, &n->p.layer_norm.epsilon, err)))
        return st;
    if (!(n->p.layer_norm.epsilon >= 0))
        return engine_fail(err, ENGINE_E_INVALID, "negative epsilon");
    return ENGINE_OK;
}

static engine_status parse_instance_norm(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                         engine_error *err)
{
    (void)g;
    engine_status st = get_float(np, "epsilon", 1e-5f, &n->p.epsilon, err);
    if (!st && !(n->p.epsilon >= 0))
        return engine_fail(err, ENGINE_E_INVALID, "negative epsilon");
    return st;
}

static engine_status parse_gelu(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                engine_error *err)
{
    (void)g;
    char approx[16];
    engine_status st = get_string(np, "approximate", "none", approx, sizeof approx, err);
    if (st)
        return st;
    n->act.kind = ACT_GELU;
    if (strcmp(approx, "tanh") == 0)
        n->act.alpha = 1.0f;
    else if (strcmp(approx, "none") != 0)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "attribute 'approximate' = '%s'", approx);
    return ENGINE_OK;
}

static engine_status parse_mod(graph *g, graph_node *n, const Onnx__NodeProto *np,
                               engine_error *err)
{
    (void)g;
    int64_t fmod_;
    engine_status st = get_int(np, "fmod", 0, &fmod_, err);
    n->p.fmod = fmod_ != 0;
    return st;
}

static engine_status parse_constant_of_shape(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                             engine_error *err)
{
    (void)g;
    n->p.fill.dtype = DTYPE_FLOAT32;
    const Onnx__AttributeProto *a = find_attr(np, "value");
    if (!a)
        return ENGINE_OK;
    if (!a->t)
        return engine_fail(err, ENGINE_E_INVALID, "attribute 'value' should be a tensor");
    dtype_t dt;
    shape_t s;
    void *data;
    engine_status st = onnx_tensor_convert(a->t, "value", &dt, &s, &data, err);
    if (st)
        return st;
    if (shape_numel(&s) != 1) {
        tensor_free(data);
        return engine_fail(err, ENGINE_E_INVALID, "attribute 'value' must hold one element");
    }
    n->p.fill.dtype = dt;
    if (dt == DTYPE_INT64)
        n->p.fill.i = *(int64_t *)data;
    else
        n->p.fill.f = *(float *)data;
    tensor_free(data);
    return ENGINE_OK;
}

static engine_status parse_scatter_nd(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                      engine_error *err)
{
    (void)g;
    char red[16];
    engine_status st = get_string(np, "reduction", "none", red, sizeof red, err);
    static const char *const names[] = {"none", "add", "mul", "max", "min"};
    n->p.scatter_reduction = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(red, names[i]) == 0)
            n->p.scatter_reduction = i;
    if (!st && n->p.scatter_reduction < 0)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "attribute 'reduction' = '%s'", red);
    return st;
}

static engine_status parse_prelu(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                 engine_error *err)
{
    (void)g, (void)n, (void)np, (void)err;
    return ENGINE_OK;
}

/* "ij,jk->ik": letters to labels 0..51; "..." is not supported. */
static engine_status parse_einsum(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                  engine_error *err)
{
    (void)g;
    char eq[128];
    engine_status st = get_string(np, "equation", "", eq, sizeof eq, err);
    if (st)
        return st;
    einsum_params *e = &n->p.einsum;
    memset(e, 0, sizeof *e);
    e->n_operands = n->n_inputs;
    if (n->n_inputs < 1 || n->n_inputs > 2)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "Einsum of %d operands (one or two are "
                           "supported)", n->n_inputs);
    if (strstr(eq, "..."))
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "Einsum equation '%s' uses an ellipsis", eq);
    int which = 0;
    bool arrow = false;
    for (const char *c = eq; *c; c++) {
        if (*c == ' ')
            continue;
        if (*c == ',') {
            if (arrow || ++which >= e->n_operands)
                return engine_fail(err, ENGINE_E_INVALID, "Einsum equation '%s' does not match "
                                   "its %d inputs", eq, e->n_operands);
            continue;
        }
        if (c[0] == '-' && c[1] == '>') {
            if (arrow || which != e->n_operands - 1)
                return engine_fail(err, ENGINE_E_INVALID, "malformed Einsum equation '%s'", eq);
            arrow = true;
            which = 2;
            c++;
            continue;
        }
        int lab = *c >= 'a' && *c <= 'z' ? *c - 'a' : *c >= 'A' && *c <= 'Z' ? 26 + *c - 'A' : -1;
        if (lab < 0 || e->rank[which] >= ENGINE_MAX_RANK)
            return engine_fail(err, ENGINE_E_UNSUPPORTED, "Einsum equation '%s'", eq);
        e->label[which][e->rank[which]++] = (int8_t)lab;
    }
    if (which != (arrow ? 2 : e->n_operands - 1))
        return engine_fail(err, ENGINE_E_INVALID, "Einsum equation '%s' does not match its %d "
                           "inputs", eq, e->n_operands);
    if (!arrow) { /* implicit output: labels seen once, in alphabetical order */
        int count[52] = {0};
        for (int k = 0; k < e->n_operands; k++)
            for (int i = 0; i < e->rank[k]; i++)
                count[e->label[k][i]]++;
        for (int l = 0; l < 52; l++)
            if (count[l] == 1 && e->rank[2] < ENGINE_MAX_RANK)
                e->label[2][e->rank[2]++] = (int8_t)l;
    }
    return ENGINE_OK;
}

static engine_status parse_resize(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                  engine_error *err)
{
    char mode[32], coord[40], nearest[32];
    engine_status st;
    bool upsample = n->op == OP_RESIZE && strcmp(np->op_type, "Upsample") == 0;
    int64_t antialias, exclude;
    if ((st = get_string(np, "mode", "nearest", mode, sizeof mode, err)) ||
        (st = get_string(np, "coordinate_transformation_mode", "half_pixel", coord, sizeof coord,
                         err)) ||
        (st = get_string(np, "nearest_mode", "round_prefer_floor", nearest, sizeof nearest, err)) ||
        (st = get_int(np, "antialias", 0, &antialias, err)) ||
        (st = get_int(np, "exclude_outside", 0, &exclude, err)))
        return st;
    if (strcmp(mode, "nearest") == 0)
        n->p.resize.mode = RESIZE_NEAREST;
    else if (strcmp(mode, "linear") == 0 || strcmp(mode, "bilinear") == 0)
        n->p.resize.mode = RESIZE_LINEAR;
    else
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "attribute 'mode' = '%s' (nearest and "
                           "linear are supported)", mode);
    static const char *const coords[] = {"half_pixel", "pytorch_half_pixel", "align_corners",
                                         "asymmetric", "tf_half_pixel_for_nn",
                                         "half_pixel_symmetric"};
    static const char *const nearests[] = {"round_prefer_floor", "round_prefer_ceil", "floor",
                                           "ceil"};
    int ci = -1, ni = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(coord, coords[i]) == 0)
            ci = i;
    for (int i = 0; i < 4; i++)
        if (strcmp(nearest, nearests[i]) == 0)
            ni = i;
    if (upsample || g->opset < 11) /* Upsample and Resize-10 read coordinates this way */
        ci = COORD_ASYMMETRIC, ni = g->opset < 11 ? NEAREST_FLOOR : ni;
    if (ci < 0)
        return engine_fail(err, ENGINE_E_UNSUPPORTED,
                           "attribute 'coordinate_transformation_mode' = '%s'", coord);
    if (ni < 0)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "attribute 'nearest_mode' = '%s'", nearest);
    if (antialias)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "attribute 'antialias' = 1");
    if (find_attr(np, "axes"))
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "attribute 'axes'");
    char policy[32];
    if ((st = get_string(np, "keep_aspect_ratio_policy", "stretch", policy, sizeof policy, err)))
        return st;
    if (strcmp(policy, "stretch") != 0)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "attribute 'keep_aspect_ratio_policy' = "
                           "'%s'", policy);
    n->p.resize.coord = (coord_mode)ci;
    n->p.resize.nearest = (nearest_mode)ni;
    /* one form for all opsets: X, roi, scales, sizes */
    if (upsample && g->opset < 9) {
        float scales[ENGINE_MAX_RANK];
        const Onnx__AttributeProto *a = find_attr(np, "scales");
        if (!a || a->n_floats < 1 || a->n_floats > ENGINE_MAX_RANK)
            return engine_fail(err, ENGINE_E_INVALID, "attribute 'scales' is required");
        for (size_t i = 0; i < a->n_floats; i++)
            scales[i] = a->floats[i];
        shape_t s = {.rank = 1, .dim = {(int64_t)a->n_floats}};
        int v = graph_add_const(g, "upsample:scales", DTYPE_FLOAT32, &s, scales, err);
        if (v < 0)
            return err->status;
        return graph_node_set_input(n, 2, v, err);
    }
    if (upsample || g->opset < 11) { /* (X, scales) */
        int scales = n->n_inputs > 1 ? n->inputs[1] : -1;
        n->inputs[1] = -1;
        return graph_node_set_input(n, 2, scales, err);
    }
    return ENGINE_OK;
}

static engine_status parse_conv_transpose(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                          engine_error *err)
{
    (void)g;
    engine_status st = parse_window(np, &n->p.convt.win, false, err);
    if (st || (st = get_int(np, "group", 1, &n->p.convt.win.group, err)))
        return st;
    if (n->p.convt.win.group < 1 || n->p.convt.win.group > (1 << 20))
        return engine_fail(err, ENGINE_E_INVALID, "group out of range");
    int64_t op[4], os[4];
    int nop, nos;
    if ((st = get_ints(np, "output_padding", op, 4, &nop, err)) ||
        (st = get_ints(np, "output_shape", os, 4, &nos, err)))
        return st;
    int sp = n->p.convt.win.spatial, off = sp == 1 ? 1 : 0;
    if ((nop >= 0 && nop != sp) || (nos >= 0 && nos != sp))
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "output_padding or output_shape does not "
                           "match the %d spatial axes", sp);
    for (int i = 0; i < sp; i++) {
        if (nop >= 0) {
            if (op[i] < 0 || op[i] > MAX_WINDOW)
                return engine_fail(err, ENGINE_E_INVALID, "output_padding out of range");
            n->p.convt.output_padding[i + off] = op[i];
        }
        if (nos >= 0) {
            if (os[i] < 1 || os[i] > ENGINE_MAX_ELEMENTS)
                return engine_fail(err, ENGINE_E_INVALID, "output_shape out of range");
            n->p.convt.output_shape[i + off] = os[i];
        }
    }
    if (sp == 1 && nos >= 0)
        n->p.convt.output_shape[0] = 1;
    n->p.convt.has_output_shape = nos >= 0;
    return ENGINE_OK;
}

static engine_status parse_topk(graph *g, graph_node *n, const Onnx__NodeProto *np,
                                engine_error *err)
{
    int64_t largest, sorted;
    engine_status st;
    if ((st = get_int(np, "axis", -1, &n->p.topk.axis, err)) ||
        (st = get_int(np, "largest", 1, &largest, err)) ||
        (st = get_int(np, "sorted", 1, &sorted, err)))
        return st;
    n->p.topk.largest = largest != 0;
    n->p.topk.sorted = sorted != 0;
    if (g->opset < 10) {
        int64_t k;
        if (!find_attr(np, "k"))
            return engine_fail(err, ENGINE_E_INVALID, "attribute 'k' is required");
        if ((st = get_int(np, "k", 0, &k, err)))
            return st;
        shape_t s = {.rank = 1, .dim = {1}};
        int v = graph_add_const(g, "topk:k", DTYPE_INT64, &s, &k, err);
        if (v < 0)
            return err->status;
        return graph_node_set_input(n, 1, v, err);
    }
    return ENGINE_OK;
}

static engine_status parse_arg(graph *g, graph_node *n, const Onnx__NodeProto *np,
                               engine_error *err)
{
    (void)g;
    int64_t keep, last;
    engine_status st;
    if ((st = get_int(np, "axis", 0, &n->p.arg.axis, err)) ||
        (st = get_int(np, "keepdims", 1, &keep, err)) ||
        (st = get_int(np, "select_last_index", 0, &last, err)))
        return st;
    n->p.arg.keepdims = keep != 0;
    n->p.arg.select_last = last != 0;
    return ENGINE_OK;
}

static engine_status parse_nms(graph *g, graph_node *n, const Onnx__NodeProto *np,
                               engine_error *err)
{
    (void)g;
    int64_t cpb;
    engine_status st = get_int(np, "center_point_box", 0, &cpb, err);
    if (!st && cpb != 0 && cpb != 1)
        return engine_fail(err, ENGINE_E_INVALID, "center_point_box must be 0 or 1");
    n->p.center_point_box = cpb == 1;
    return st;
}

static const struct onnx_op_def op_table[] = {
    {"Conv", OP_CONV, 2, 3, 1, 1, parse_conv},
    {"Gemm", OP_GEMM, 2, 3, 1, 1, parse_gemm},
    {"MatMul", OP_MATMUL, 2, 2, 1, 1, parse_none},
    {"Add", OP_ADD, 2, 2, 1, 1, parse_none},
    {"Sub", OP_SUB, 2, 2, 1, 1, parse_none},
    {"Mul", OP_MUL, 2, 2, 1, 1, parse_none},
    {"Div", OP_DIV, 2, 2, 1, 1, parse_none},
    {"Relu", OP_RELU, 1, 1, 1, 1, parse_activation},
    {"LeakyRelu", OP_LEAKY_RELU, 1, 1, 1, 1, parse_activation},
    {"Clip", OP_CLIP, 1, 3, 1, 1, parse_activation},
    {"Sigmoid", OP_SIGMOID, 1, 1, 1, 1, parse_activation},
    {"HardSigmoid", OP_HARD_SIGMOID, 1, 1, 1, 1, parse_activation},
    {"HardSwish", OP_HARD_SWISH, 1, 1, 1, 1, parse_activation},
    {"Exp", OP_EXP, 1, 1, 1, 1, parse_activation},
    {"MaxPool", OP_MAXPOOL, 1, 1, 1, 2, parse_pool},
    {"AveragePool", OP_AVGPOOL, 1, 1, 1, 1, parse_pool},
    {"GlobalAveragePool", OP_GLOBAL_AVGPOOL, 1, 1, 1, 1, parse_none},
    {"GlobalMaxPool", OP_GLOBAL_MAXPOOL, 1, 1, 1, 1, parse_none},
    {"BatchNormalization", OP_BATCHNORM, 5, 5, 1, 5, parse_batchnorm},
    {"LRN", OP_LRN, 1, 1, 1, 1, parse_lrn},
    {"Softmax", OP_SOFTMAX, 1, 1, 1, 1, parse_softmax},
    {"Concat", OP_CONCAT, 1, -1, 1, 1, parse_axis_required},
    {"Flatten", OP_FLATTEN, 1, 1, 1, 1, parse_flatten},
    {"Reshape", OP_RESHAPE, 2, 2, 1, 1, parse_reshape},
    {"Transpose", OP_TRANSPOSE, 1, 1, 1, 1, parse_transpose},
    {"Slice", OP_SLICE, 1, 5, 1, 1, parse_slice},
    {"Split", OP_SPLIT, 1, 2, 1, -1, parse_split},
    {"Pad", OP_PAD, 1, 4, 1, 1, parse_pad},
    {"Squeeze", OP_SQUEEZE, 1, 2, 1, 1, parse_squeeze},
    {"Unsqueeze", OP_UNSQUEEZE, 1, 2, 1, 1, parse_squeeze},
    {"Gather", OP_GATHER, 2, 2, 1, 1, parse_axis_default0},
    {"Shape", OP_SHAPE, 1, 1, 1, 1, parse_shape},
    {"Cast", OP_CAST, 1, 1, 1, 1, parse_cast},
    {"ReduceMean", OP_REDUCE_MEAN, 1, 2, 1, 1, parse_reduce},
    {"Dropout", OP_DROPOUT, 1, 3, 1, 2, parse_none},
    {"Identity", OP_IDENTITY, 1, 1, 1, 1, parse_none},
    {"Erf", OP_ERF, 1, 1, 1, 1, parse_activation},
    {"Gelu", OP_GELU, 1, 1, 1, 1, parse_gelu},
    {"Sqrt", OP_SQRT, 1, 1, 1, 1, parse_activation},
    {"Reciprocal", OP_RECIPROCAL, 1, 1, 1, 1, parse_activation},
    {"Neg", OP_NEG, 1, 1, 1, 1, parse_activation},
    {"Abs", OP_ABS, 1, 1, 1, 1, parse_activation},
    {"Tanh", OP_TANH, 1, 1, 1, 1, parse_activation},
    {"Softplus", OP_SOFTPLUS, 1, 1, 1, 1, parse_activation},
    {"Mish", OP_MISH, 1, 1, 1, 1, parse_activation},
    {"Log", OP_LOG, 1, 1, 1, 1, parse_activation},
    {"Pow", OP_POW, 2, 2, 1, 1, parse_none},
    {"Mod", OP_MOD, 2, 2, 1, 1, parse_mod},
    {"Min", OP_MIN, 1, 8, 1, 1, parse_none},
    {"Max", OP_MAX, 1, 8, 1, 1, parse_none},
    {"Equal", OP_EQUAL, 2, 2, 1, 1, parse_none},
    {"Less", OP_LESS, 2, 2, 1, 1, parse_none},
    {"LessOrEqual", OP_LESS_OR_EQUAL, 2, 2, 1, 1, parse_none},
    {"Greater", OP_GREATER, 2, 2, 1, 1, parse_none},
    {"GreaterOrEqual", OP_GREATER_OR_EQUAL, 2, 2, 1, 1, parse_none},
    {"And", OP_AND, 2, 2, 1, 1, parse_none},
    {"Or", OP_OR, 2, 2, 1, 1, parse_none},
    {"Not", OP_NOT, 1, 1, 1, 1, parse_none},
    {"Where", OP_WHERE, 3, 3, 1, 1, parse_none},
    {"LayerNormalization", OP_LAYER_NORM, 2, 3, 1, 3, parse_layer_norm},
    {"InstanceNormalization", OP_INSTANCE_NORM, 3, 3, 1, 1, parse_instance_norm},
    {"LogSoftmax", OP_LOG_SOFTMAX, 1, 1, 1, 1, parse_softmax},
    {"ReduceSum", OP_REDUCE_SUM, 1, 2, 1, 1, parse_reduce},
    {"ReduceMax", OP_REDUCE_MAX, 1, 2, 1, 1, parse_reduce},
    {"ReduceMin", OP_REDUCE_MIN, 1, 2, 1, 1, parse_reduce},
    {"PRelu", OP_PRELU, 2, 2, 1, 1, parse_prelu},
    {"Expand", OP_EXPAND, 2, 2, 1, 1, parse_none},
    {"ConstantOfShape", OP_CONSTANT_OF_SHAPE, 1, 1, 1, 1, parse_constant_of_shape},
    {"Range", OP_RANGE, 3, 3, 1, 1, parse_none},
    {"Tile", OP_TILE, 2, 2, 1, 1, parse_none},
    {"GatherElements", OP_GATHER_ELEMENTS, 2, 2, 1, 1, parse_axis_default0},
    {"ScatterND", OP_SCATTER_ND, 3, 3, 1, 1, parse_scatter_nd},
    {"Einsum", OP_EINSUM, 1, 2, 1, 1, parse_einsum},
    {"Resize", OP_RESIZE, 1, 4, 1, 1, parse_resize},
    {"Upsample", OP_RESIZE, 1, 2, 1, 1, parse_resize},
    {"ConvTranspose", OP_CONV_TRANSPOSE, 2, 3, 1, 1, parse_conv_transpose},
    {"TopK", OP_TOPK, 1, 2, 2, 2, parse_topk},
    {"ArgMax", OP_ARGMAX, 1, 1, 1, 1, parse_arg},
    {"ArgMin", OP_ARGMIN, 1, 1, 1, 1, parse_arg},
    {"NonMaxSuppression", OP_NMS, 2, 5, 1, 1, parse_nms},
    /* Constant never becomes a node: onnx_import turns it into a value. */
    {"Constant", OP_NONE, 0, 0, 1, 1, NULL},
};

const onnx_op_def *onnx_op_lookup(const char *op_type)
{
    if (!op_type)
        return NULL;
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
        if (strcmp(op_table[i].type, op_type) == 0)
            return &op_table[i];
    return NULL;
}

op_t onnx_op_kind(const onnx_op_def *def)
{
    return def->op;
}

engine_status onnx_op_check_arity(const onnx_op_def *def, const Onnx__NodeProto *np,
                                  engine_error *err)
{
    int nin = (int)np->n_input, nout = (int)np->n_output;
    /* trailing empty names are absent optional inputs */
    while (nin > 0 && (!np->input[nin - 1] || !np->input[nin - 1][0]))
        nin--;
    if (nin < def->min_in || (def->max_in >= 0 && nin > def->max_in))
        return engine_fail(err, ENGINE_E_INVALID, "has %d inputs (expected %d to %d)", nin,
                           def->min_in, def->max_in);
    if (nout < def->min_out || (def->max_out >= 0 && nout > def->max_out))
        return engine_fail(err, ENGINE_E_INVALID, "has %d outputs (expected %d to %d)", nout,
                           def->min_out, def->max_out);
    return ENGINE_OK;
}

engine_status onnx_op_parse(const onnx_op_def *def, graph *g, graph_node *node,
                            const Onnx__NodeProto *np, engine_error *err)
{
    return def->parse ? def->parse(g, node, np, err) : ENGINE_OK;
}

/* Turns a Constant node's attribute into the constant value `v`. */
engine_status onnx_constant_value(graph *g, int v, const Onnx__NodeProto *np, engine_error *err)
{
    const char *name = g->values[v].name;
    for (size_t i = 0; i < np->n_attribute; i++) {
        const Onnx__AttributeProto *a = np->attribute[i];
        const char *an = a->name ? a->name : "";
        shape_t s = {0};
        void *data = NULL;
        dtype_t dt = DTYPE_FLOAT32;
        if (strcmp(an, "value") == 0 && a->t) {
            engine_status st = onnx_tensor_convert(a->t, name, &dt, &s, &data, err);
            if (st)
                return st;
        } else if (strcmp(an, "value_float") == 0 || strcmp(an, "value_int") == 0) {
            bool is_f = an[6] == 'f';
            dt = is_f ? DTYPE_FLOAT32 : DTYPE_INT64;
            data = tensor_alloc(8);
            if (!data)
                return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
            if (is_f)
                *(float *)data = a->f;
            else
                *(int64_t *)data = a->i;
        } else if (strcmp(an, "value_floats") == 0 || strcmp(an, "value_ints") == 0) {
            bool is_f = an[6] == 'f';
            size_t cnt = is_f ? a->n_floats : a->n_ints;
            if ((int64_t)cnt > ENGINE_MAX_ELEMENTS)
                return engine_fail(err, ENGINE_E_INVALID, "constant too large");
            dt = is_f ? DTYPE_FLOAT32 : DTYPE_INT64;
            s.rank = 1;
            s.dim[0] = (int64_t)cnt;
            data = tensor_alloc(cnt * 8);
            if (!data)
                return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
            if (cnt)
                memcpy(data, is_f ? (void *)a->floats : (void *)a->ints, cnt * (is_f ? 4 : 8));
        } else {
            continue;
        }
        graph_set_const(g, v, dt, &s, data);
        if (dt == DTYPE_FLOAT32)
            g->n_params += shape_numel(&s);
        return ENGINE_OK;
    }
    return engine_fail(err, ENGINE_E_UNSUPPORTED,
                       "Constant node '%s' has no float or integer value (sparse and string "
                       "constants are not supported)",
                       np->name ? np->name : name);
}
