/* Load-time graph rewrites; see passes.h for the list and the rules. */
#include "passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "const_eval.h"

static void remove_node_forwarding(graph *g, graph_node *n)
{
    /* readers of the output read input 0 instead */
    if (n->outputs[0] >= 0)
        graph_replace_uses(g, n->outputs[0], n->inputs[0]);
    n->op = OP_NONE;
}

static bool dropout_is_noop(const graph *g, const graph_node *n, const int *uses)
{
    if (n->n_outputs > 1 && n->outputs[1] >= 0 && uses[n->outputs[1]] > 0)
        return false; /* someone reads the mask */
    if (n->n_inputs > 2 && n->inputs[2] >= 0) {
        const graph_value *t = &g->values[n->inputs[2]];
        if (!t->data)
            return false;
        if (t->dtype == DTYPE_INT64 ? *(int64_t *)t->data != 0 : *(float *)t->data != 0)
            return false;
    }
    return true;
}

static engine_status remove_identities(graph *g, int *uses, pass_stats *stats)
{
    graph_count_uses(g, uses);
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->op == OP_IDENTITY || (n->op == OP_DROPOUT && dropout_is_noop(g, n, uses)) ||
            (n->op == OP_CONCAT && n->n_inputs == 1)) {
            remove_node_forwarding(g, n);
            stats->identities_removed++;
        }
    }
    return ENGINE_OK;
}

/* Clip's min/max inputs (opset 11+) become activation parameters. */
static engine_status resolve_clip(graph *g, graph_node *n, engine_error *err)
{
    for (int k = 1; k < n->n_inputs && k <= 2; k++) {
        int v = n->inputs[k];
        if (v < 0)
            continue;
        const graph_value *b = &g->values[v];
        if (!b->data)
            return ENGINE_OK; /* not constant (yet); the plan will say so */
        if (b->dtype != DTYPE_FLOAT32 || shape_numel(&b->shape) != 1)
            return engine_fail(err, ENGINE_E_UNSUPPORTED,
                               "node '%s' (Clip): bounds must be float scalars", n->name);
        float x = *(const float *)b->data;
        if (k == 1)
            n->act.alpha = x;
        else
            n->act.beta = x;
    }
    n->n_inputs = 1;
    return ENGINE_OK;
}

static engine_status fold_constants(graph *g, pass_stats *stats, engine_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->op == OP_CLIP && n->n_inputs > 1) {
            engine_status st = resolve_clip(g, n, err);
            if (st)
                return st;
        }
        if (n->op == OP_NONE || !const_eval_supported(n->op) || n->n_outputs > 16)
            continue;
        tensor_desc in[16], out[16];
        if (n->n_inputs > 16)
            continue;
        bool foldable = true;
        memset(in, 0, sizeof in); /* optional inputs past n_inputs read as absent */
        for (int k = 0; k < n->n_inputs && foldable; k++) {
            int v = n->inputs[k];
            if (v < 0)
                continue;
            const graph_value *gv = &g->values[v];
            bool static_input = n->op == OP_SHAPE && gv->producer < 0 && gv->dtype != 0 &&
                                !(gv->shape.rank > 0 && gv->shape.dim[0] < 0);
            if (!gv->data && !static_input)
                foldable = false;
            in[k] = (tensor_desc){gv->dtype, gv->shape, gv->data};
        }
        if (!foldable)
            continue;
        step_params r;
        int64_t flops;
        engine_status st = shape_infer_node(n, in, out, &r, &flops, err);
        if (!st)
            st = const_eval_node(n, in, out, &r, err);
        if (st)
            return engine_error_prefix(err, "node '%s' (%s): ", n->name, op_name(n->op));
        for (int k = 0; k < n->n_outputs; k++) {
            if (out[k].dtype == DTYPE_UNDEFINED)
                continue;
            if (n->outputs[k] < 0) {
                tensor_free((void *)out[k].data);
                continue;
            }
            graph_set_const(g, n->outputs[k], out[k].dtype, &out[k].shape, (void *)out[k].data);
        }
        n->op = OP_NONE;
        stats->constants_folded++;
    }
    return ENGINE_OK;
}

static engine_status remove_noop_pads(graph *g, pass_stats *stats)
{
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->op != OP_PAD || n->n_inputs < 2 || !graph_is_const(g, n->inputs[1]))
            continue;
        if (n->n_inputs > 3 && n->inputs[3] >= 0)
            continue;
        const graph_value *pads = &g->values[n->inputs[1]];
        if (pads->dtype != DTYPE_INT64)
            continue;
        bool zero = true;
        for (int64_t k = 0; k < shape_numel(&pads->shape); k++)
            if (((const int64_t *)pads->data)[k] != 0)
                zero = false;
        if (zero) {
            remove_node_forwarding(g, n);
            stats->pads_removed++;
        }
    }
    return ENGINE_OK;
}

/* The single node reading value v, or NULL when v has other readers or is a
 * graph output. */
static graph_node *sole_consumer(graph *g, int v, const int *uses)
{
    if (v < 0 || uses[v] != 1 || graph_is_output(g, v))
        return NULL;
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->op == OP_NONE)
            continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == v)
                return n;
    }
    return NULL;
}

static bool const_vector(const graph *g, int v, int64_t len)
{
    return graph_is_const(g, v) && g->values[v].dtype == DTYPE_FLOAT32 &&
           shape_numel(&g->values[v].shape) == len;
}

/* Per-channel scale and shift of an inference-mode BatchNormalization. */
static bool bn_scale_shift(const graph *g, const graph_node *bn, int64_t c, float *scale,
                           float *shift)
{
    for (int k = 1; k <= 4; k++)
        if (!const_vector(g, bn->inputs[k], c) || g->values[bn->inputs[k]].shape.rank != 1)
            return false;
    const float *gamma = g->values[bn->inputs[1]].data, *beta = g->values[bn->inputs[2]].data;
    const float *mean = g->values[bn->inputs[3]].data, *var = g->values[bn->inputs[4]].data;
    for (int64_t i = 0; i < c; i++) {
        double s = gamma[i] / sqrt((double)var[i] + bn->p.epsilon);
        scale[i] = (float)s;
        shift[i] = (float)(beta[i] - mean[i] * s);
    }
    return true;
}

static engine_status fold_batchnorms(graph *g, int *uses, pass_stats *stats, engine_error *err)
{
    graph_count_uses(g, uses);
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *conv = &g->nodes[i];
        if (conv->op != OP_CONV || conv->act.kind != ACT_NONE)
            continue;
        graph_node *bn = sole_consumer(g, conv->outputs[0], uses);
        if (!bn || bn->op != OP_BATCHNORM || bn->n_inputs != 5 || bn->inputs[0] != conv->outputs[0])
            continue;
        int wv = conv->inputs[1];
        if (!graph_is_const(g, wv) || g->values[wv].dtype != DTYPE_FLOAT32 ||
            g->values[wv].shape.rank < 3)
            continue;
        int64_t m = g->values[wv].shape.dim[0];
        int bv = conv->n_inputs > 2 ? conv->inputs[2] : -1;
        if (bv >= 0 && !const_vector(g, bv, m))
            continue;
        float *scale = malloc((size_t)m * sizeof *scale), *shift = malloc((size_t)m * sizeof *shift);
        if (!scale || !shift) {
            free(scale);
            free(shift);
            return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        }
        if (!bn_scale_shift(g, bn, m, scale, shift)) {
            free(scale);
            free(shift);
            continue;
        }
        shape_t ws = g->values[wv].shape;
        int64_t per_out = shape_numel(&ws) / (m ? m : 1);
        float *w = tensor_alloc((size_t)shape_numel(&ws) * sizeof *w);
        float *b = tensor_alloc((size_t)m * sizeof *b);
        if (!w || !b) {
            free(scale), free(shift), tensor_free(w), tensor_free(b);
            return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        }
        const float *w0 = g->values[wv].data;
        const float *b0 = bv >= 0 ? g->values[bv].data : NULL;
        for (int64_t o = 0; o < m; o++) {
            for (int64_t k = 0; k < per_out; k++)
                w[o * per_out + k] = w0[o * per_out + k] * scale[o];
            b[o] = (b0 ? b0[o] : 0.0f) * scale[o] + shift[o];
        }
        free(scale);
        free(shift);
        shape_t bs = {.rank = 1, .dim = {m}};
        int nw = graph_add_value_unique(g, g->values[wv].name, err);
        if (nw < 0) {
            tensor_free(w), tensor_free(b);
            return err->status;
        }
        graph_set_const(g, nw, DTYPE_FLOAT32, &ws, w);
        int nb = graph_add_value_unique(g, "bn_folded_bias", err);
        if (nb < 0) {
            tensor_free(b);
            return err->status;
        }
        graph_set_const(g, nb, DTYPE_FLOAT32, &bs, b);
        /* graph_add_value may move g->values but not g->nodes */
        conv = &g->nodes[i];
        conv->inputs[1] = nw;
        engine_status st = graph_node_set_input(conv, 2, nb, err);
        if (st)
            return st;
        graph_replace_uses(g, bn->outputs[0], conv->outputs[0]);
        bn->op = OP_NONE;
        stats->batchnorms_folded++;
        graph_count_uses(g, uses);
    }
    /* What is left becomes y = x * scale + shift per channel. */
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *bn = &g->nodes[i];
        if (bn->op != OP_BATCHNORM || bn->n_inputs != 5 || !graph_is_const(g, bn->inputs[1]))
            continue;
        int64_t c = shape_numel(&g->values[bn->inputs[1]].shape);
        float *scale = tensor_alloc((size_t)c * sizeof(float));
        float *shift = tensor_alloc((size_t)c * sizeof(float));
        if (!scale || !shift) {
            tensor_free(scale), tensor_free(shift);
            return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        }
        if (!bn_scale_shift(g, bn, c, scale, shift)) {
            tensor_free(scale), tensor_free(shift);
            continue;
        }
        shape_t cs = {.rank = 1, .dim = {c}};
        int sv = graph_add_value_unique(g, "bn_scale", err);
        if (sv < 0) {
            tensor_free(scale), tensor_free(shift);
            return err->status;
        }
        graph_set_const(g, sv, DTYPE_FLOAT32, &cs, scale);
        int hv = graph_add_value_unique(g, "bn_shift", err);
        if (hv < 0) {
            tensor_free(shift);
            return err->status;
        }
        graph_set_const(g, hv, DTYPE_FLOAT32, &cs, shift);
        bn = &g->nodes[i];
        bn->inputs[1] = sv;
        bn->inputs[2] = hv;
        bn->n_inputs = 3;
        stats->batchnorms_standalone++;
    }
    return ENGINE_OK;
}

/* Length of the per-channel vector an Add constant holds, if it only varies
 * along the channel axis of an output of rank `rank` whose channel axis is
 * `caxis`; 0 otherwise. */
static int64_t channel_vector_len(const shape_t *k, int rank, int caxis)
{
    if (k->rank > rank)
        return 0;
    int64_t len = 0;
    for (int i = 0; i < k->rank; i++) {
        int axis = rank - k->rank + i;
        if (k->dim[i] == 1)
            continue;
        if (axis != caxis || len)
            return 0;
        len = k->dim[i];
    }
    return len;
}

static engine_status fuse_bias_adds(graph *g, int *uses, pass_stats *stats, engine_error *err)
{
    graph_count_uses(g, uses);
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if ((n->op != OP_CONV && n->op != OP_GEMM) || n->act.kind != ACT_NONE)
            continue;
        graph_node *add = sole_consumer(g, n->outputs[0], uses);
        if (!add || add->op != OP_ADD)
            continue;
        int kv = add->inputs[0] == n->outputs[0] ? add->inputs[1] : add->inputs[0];
        if (!graph_is_const(g, kv) || g->values[kv].dtype != DTYPE_FLOAT32)
            continue;
        int64_t m;
        int rank, caxis;
        if (n->op == OP_CONV) {
            if (!graph_is_const(g, n->inputs[1]))
                continue;
            rank = g->values[n->inputs[1]].shape.rank;
            caxis = 1;
            m = g->values[n->inputs[1]].shape.dim[0];
        } else {
            int bw = n->inputs[1];
            if (!graph_is_const(g, bw) || g->values[bw].shape.rank != 2)
                continue;
            rank = 2;
            caxis = 1;
            m = g->values[bw].shape.dim[n->p.gemm.trans_b ? 0 : 1];
            int cv = n->n_inputs > 2 ? n->inputs[2] : -1;
            if (cv >= 0 && (!graph_is_const(g, cv) ||
                            channel_vector_len(&g->values[cv].shape, 2, 1) != m))
                continue;
        }
        const shape_t ks = g->values[kv].shape;
        if (channel_vector_len(&ks, rank, caxis) != m || shape_numel(&ks) != m)
            continue;
        int bv = n->n_inputs > 2 ? n->inputs[2] : -1;
        float scale_old = n->op == OP_GEMM ? n->p.gemm.beta : 1.0f;
        float *b = tensor_alloc((size_t)m * sizeof *b);
        if (!b)
            return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        const float *k = g->values[kv].data;
        const float *b0 = bv >= 0 ? g->values[bv].data : NULL;
        for (int64_t o = 0; o < m; o++)
            b[o] = (b0 ? scale_old * b0[o] : 0.0f) + k[o];
        shape_t bs = {.rank = 1, .dim = {m}};
        int nb = graph_add_value_unique(g, "fused_bias", err);
        if (nb < 0) {
            tensor_free(b);
            return err->status;
        }
        graph_set_const(g, nb, DTYPE_FLOAT32, &bs, b);
        n = &g->nodes[i];
        engine_status st = graph_node_set_input(n, 2, nb, err);
        if (st)
            return st;
        if (n->op == OP_GEMM)
            n->p.gemm.beta = 1.0f;
        graph_replace_uses(g, add->outputs[0], n->outputs[0]);
        add->op = OP_NONE;
        stats->biases_fused++;
        graph_count_uses(g, uses);
    }
    return ENGINE_OK;
}

/* A float constant of one element close to `want`. */
static bool const_scalar_near(const graph *g, int v, float want)
{
    if (!graph_is_const(g, v) || g->values[v].dtype != DTYPE_FLOAT32 ||
        shape_numel(&g->values[v].shape) != 1)
        return false;
    float x = *(const float *)g->values[v].data;
    return fabsf(x - want) <= 1e-6f * fabsf(want) + 1e-7f;
}

/* The operand of binary node n that is not v, or -1 when n does not read v. */
static int other_operand(const graph_node *n, int v)
{
    if (n->n_inputs != 2)
        return -1;
    return n->inputs[0] == v ? n->inputs[1] : n->inputs[1] == v ? n->inputs[0] : -1;
}

/* Gelu as exporters spell it before opset 20:
 * Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5) -> one Gelu node. */
static bool fuse_gelu_at(graph *g, graph_node *div, int *uses)
{
    int x = div->inputs[0];
    if (!(div->op == OP_DIV && const_scalar_near(g, div->inputs[1], 1.41421356f)) &&
        !(div->op == OP_MUL && const_scalar_near(g, div->inputs[1], 0.70710678f)))
        return false;
    graph_node *erf = sole_consumer(g, div->outputs[0], uses);
    if (!erf || erf->op != OP_ERF)
        return false;
    graph_node *add = sole_consumer(g, erf->outputs[0], uses);
    if (!add || add->op != OP_ADD || !const_scalar_near(g, other_operand(add, erf->outputs[0]), 1))
        return false;
    graph_node *mul = sole_consumer(g, add->outputs[0], uses);
    if (!mul || mul->op != OP_MUL || other_operand(mul, add->outputs[0]) != x)
        return false;
    graph_node *half = sole_consumer(g, mul->outputs[0], uses);
    if (!half || half->op != OP_MUL ||
        !const_scalar_near(g, other_operand(half, mul->outputs[0]), 0.5f))
        return false;
    half->op = OP_GELU;
    half->n_inputs = 1;
    half->inputs[0] = x;
    half->act = (act_params){.kind = ACT_GELU};
    div->op = erf->op = add->op = mul->op = OP_NONE;
    return true;
}

/* SiLU/Swish: Mul(x, Sigmoid(x)) -> one SiLU node, which can then become a
 * convolution's epilogue. */
static bool fuse_silu_at(graph *g, graph_node *sig, int *uses)
{
    if (sig->op != OP_SIGMOID)
        return false;
    int x = sig->inputs[0];
    graph_node *mul = sole_consumer(g, sig->outputs[0], uses);
    if (!mul || mul->op != OP_MUL || other_operand(mul, sig->outputs[0]) != x)
        return false;
    mul->op = OP_SILU;
    mul->n_inputs = 1;
    mul->inputs[0] = x;
    mul->act = (act_params){.kind = ACT_SILU};
    sig->op = OP_NONE;
    return true;
}

static void fuse_patterns(graph *g, int *uses, pass_stats *stats)
{
    graph_count_uses(g, uses);
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (fuse_gelu_at(g, n, uses) || fuse_silu_at(g, n, uses)) {
            stats->patterns_fused++;
            graph_count_uses(g, uses);
        }
    }
}

static void fuse_activations(graph *g, int *uses, pass_stats *stats)
{
    graph_count_uses(g, uses);
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if ((n->op != OP_CONV && n->op != OP_GEMM) || n->act.kind != ACT_NONE)
            continue;
        graph_node *act = sole_consumer(g, n->outputs[0], uses);
        /* with a fused residual, the conv output is act(conv + residual): fine */
        /* the kernels' epilogues vectorise the activations up to Exp; the
         * others run faster as a vectorised pass of their own */
        if (!act || !op_is_unary_activation(act->op) || act->n_inputs != 1 ||
            act->act.kind > ACT_EXP)
            continue;
        n->act = act->act;
        graph_replace_uses(g, act->outputs[0], n->outputs[0]);
        act->op = OP_NONE;
        stats->activations_fused++;
        graph_count_uses(g, uses);
    }
}

engine_status passes_run(graph *g, pass_stats *stats, engine_error *err)
{
    pass_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    int *uses = malloc(((size_t)g->n_values + 1) * sizeof *uses);
    if (!uses)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    engine_status st;
    if ((st = remove_identities(g, uses, stats)) || (st = fold_constants(g, stats, err)) ||
        (st = remove_noop_pads(g, stats)))
        goto out;
    graph_compact(g);
    /* passes below add values: the use counts need room for them */
    free(uses);
    uses = malloc(((size_t)g->n_values + 4 * (size_t)g->n_nodes + 1) * sizeof *uses);
    if (!uses)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    if ((st = fold_batchnorms(g, uses, stats, err)) ||
        (st = fuse_bias_adds(g, uses, stats, err)))
        goto out;
    fuse_patterns(g, uses, stats);
    fuse_activations(g, uses, stats);
    graph_compact(g);
out:
    free(uses);
    if (st)
        engine_error_prefix(err, "%s: ", g->source);
    return st;
}

/* The taps [*lo, *hi] of one axis of a dilated window that read the input
 * for some output position; the others only ever read padding. */
static void live_taps(int64_t in, int64_t out, int64_t k, int64_t s, int64_t d, int64_t pb,
                      int64_t *lo, int64_t *hi)
{
    *lo = k;
    *hi = -1;
    for (int64_t t = 0; t < k; t++) {
        bool live = false; /* some output position o reads row o*s - pb + t*d */
        for (int64_t o = 0; o < out && !live; o++)
            live = o * s - pb + t * d >= 0 && o * s - pb + t * d < in;
        if (live) {
            *lo = t < *lo ? t : *lo;
            *hi = t;
        }
    }
}

/* A dilated convolution whose outer taps only read padding (DeepLab's ASPP
 * at rates larger than its feature map) becomes the smaller convolution of
 * the taps that read the input, with the pads that keep its output. Only
 * when the plan tells the spatial size, which every batch shares. */
static engine_status trim_dead_taps(graph *g, graph_node *conv, const plan *probe,
                                    const plan_step *st, engine_error *err)
{
    window_params *w = &conv->p.win;
    const shape_t *x = &probe->values[conv->inputs[0]].shape;
    const shape_t *y = &probe->values[conv->outputs[0]].shape;
    const shape_t *ws = &g->values[conv->inputs[1]].shape;
    if (w->spatial != 2 || x->rank != 4 || (w->dilation[0] == 1 && w->dilation[1] == 1) ||
        !graph_is_const(g, conv->inputs[1]))
        return ENGINE_OK;
    int64_t lo[2], hi[2], pb[2], pe[2];
    for (int i = 0; i < 2; i++) {
        live_taps(x->dim[2 + i], y->dim[2 + i], ws->dim[2 + i], w->stride[i], w->dilation[i],
                  st->r.win.pad_begin[i], &lo[i], &hi[i]);
        if (hi[i] < lo[i])
            return ENGINE_OK; /* reads nothing but padding: leave it as it is */
        pb[i] = st->r.win.pad_begin[i] - lo[i] * w->dilation[i];
        pe[i] = st->r.win.pad_end[i] - (ws->dim[2 + i] - 1 - hi[i]) * w->dilation[i];
        if (pb[i] < 0 || pe[i] < 0)
            return ENGINE_OK;
    }
    int64_t kh = hi[0] - lo[0] + 1, kw = hi[1] - lo[1] + 1;
    if (kh == ws->dim[2] && kw == ws->dim[3])
        return ENGINE_OK;
    shape_t ns = {.rank = 4, .dim = {ws->dim[0], ws->dim[1], kh, kw}};
    float *nw = malloc((size_t)shape_numel(&ns) * sizeof(float) + 1);
    if (!nw)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    const float *ow = g->values[conv->inputs[1]].data;
    for (int64_t f = 0; f < ws->dim[0] * ws->dim[1]; f++)
        for (int64_t a = 0; a < kh; a++)
            for (int64_t b = 0; b < kw; b++)
                nw[(f * kh + a) * kw + b] =
                    ow[(f * ws->dim[2] + lo[0] + a) * ws->dim[3] + lo[1] + b];
    int v = graph_add_const(g, g->values[conv->inputs[1]].name, DTYPE_FLOAT32, &ns, nw, err);
    free(nw);
    if (v < 0)
        return err->status;
    conv->inputs[1] = v;
    w->kernel[0] = kh, w->kernel[1] = kw;
    w->auto_pad = AUTO_PAD_NOTSET;
    for (int i = 0; i < 2; i++)
        w->pad_begin[i] = pb[i], w->pad_end[i] = pe[i];
    return ENGINE_OK;
}

engine_status passes_fuse_residuals(graph *g, const plan *probe, pass_stats *stats,
                                    engine_error *err)
{
    for (int s = 0; s < probe->n_steps; s++) {
        graph_node *n = &g->nodes[probe->steps[s].node];
        engine_status st = n->op == OP_CONV ? trim_dead_taps(g, n, probe, &probe->steps[s], err)
                                            : ENGINE_OK;
        if (st)
            return st;
    }
    pass_stats local;
    if (!stats)
        stats = &local;
    int *uses = malloc(((size_t)g->n_values + 1) * sizeof *uses);
    if (!uses)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    graph_count_uses(g, uses);
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *conv = &g->nodes[i];
        if (conv->op != OP_CONV || conv->act.kind != ACT_NONE || conv->n_inputs > 3 ||
            probe->values[conv->outputs[0]].storage != STORE_ARENA)
            continue;
        graph_node *add = sole_consumer(g, conv->outputs[0], uses);
        if (!add || add->op != OP_ADD)
            continue;
        int other = add->inputs[0] == conv->outputs[0] ? add->inputs[1] : add->inputs[0];
        const plan_value *ov = &probe->values[other], *cv = &probe->values[conv->outputs[0]];
        if (other < 0 || other == conv->outputs[0] || ov->storage == STORE_CONST ||
            ov->dtype != DTYPE_FLOAT32 || !shape_equal(&ov->shape, &cv->shape))
            continue;
        engine_status st = graph_node_set_input(conv, 3, other, err);
        if (st) {
            free(uses);
            return st;
        }
        graph_replace_uses(g, add->outputs[0], conv->outputs[0]);
        add->op = OP_NONE;
        stats->residuals_fused++;
        graph_count_uses(g, uses);
    }
    fuse_activations(g, uses, stats);
    free(uses);
    graph_compact(g);
    /* the residual's producer may come after the conv in the file's order */
    return graph_sort(g, err);
}
