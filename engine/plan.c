/* Per-batch plans: shape inference, batch-dependent constant folding, views
 * and the arena layout. See plan.h. */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "const_eval.h"
#include "shape_infer.h"

#define ARENA_ALIGN 64

size_t plan_value_bytes(const plan *p, int v)
{
    const plan_value *pv = &p->values[v];
    return (size_t)shape_numel(&pv->shape) * dtype_size(pv->dtype);
}

size_t plan_value_room(const plan *p, int v)
{
    size_t bytes = plan_value_bytes(p, v);
    if (!p->room)
        return bytes;
    size_t room = p->room(p, v);
    return room > bytes ? room : bytes;
}

void plan_free(plan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_owned; i++)
        tensor_free(p->owned[i]);
    free(p->owned);
    free(p->values);
    free(p->steps);
    free(p);
}

static engine_status own(plan *p, void *data, engine_error *err)
{
    if (p->n_owned == p->cap_owned) {
        int cap = p->cap_owned ? p->cap_owned * 2 : 64;
        void **no = realloc(p->owned, (size_t)cap * sizeof *no);
        if (!no) {
            tensor_free(data);
            return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        }
        p->owned = no;
        p->cap_owned = cap;
    }
    p->owned[p->n_owned++] = data;
    return ENGINE_OK;
}

static bool is_view_op(op_t op)
{
    return op == OP_RESHAPE || op == OP_FLATTEN || op == OP_SQUEEZE || op == OP_UNSQUEEZE ||
           op == OP_IDENTITY || op == OP_DROPOUT;
}

static engine_status fail_node(engine_error *err, const graph_node *n)
{
    return engine_error_prefix(err, "node '%s' (%s): ", n->name, op_name(n->op));
}

static engine_status init_values(plan *p, const graph *g, int batch, engine_error *err)
{
    for (int v = 0; v < g->n_values; v++) {
        plan_value *pv = &p->values[v];
        pv->view_of = -1;
        if (g->values[v].data) {
            pv->dtype = g->values[v].dtype;
            pv->shape = g->values[v].shape;
            pv->storage = STORE_CONST;
            pv->data = g->values[v].data;
            pv->defined = true;
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        plan_value *pv = &p->values[v];
        pv->dtype = g->values[v].dtype;
        pv->shape = g->values[v].shape;
        if (pv->shape.rank > 0 && pv->shape.dim[0] < 0)
            pv->shape.dim[0] = batch;
        pv->storage = STORE_INPUT;
        pv->input_index = i;
        pv->defined = true;
        engine_status st = shape_check(&pv->shape, g->values[v].name, err);
        if (st)
            return st;
    }
    return ENGINE_OK;
}

/* Runtime steps compute float32 (int64 only for indices, booleans and data
 * movement: op_runtime_int64) and need their weights, shapes and axes as
 * constants. */
static engine_status check_runtime_node(const plan *p, const graph *g, const graph_node *n,
                                        const tensor_desc *out, engine_error *err)
{
    uint32_t must_const = op_const_inputs(n->op);
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v < 0)
            continue;
        const plan_value *pv = &p->values[v];
        if ((must_const >> k) & 1) {
            if (pv->storage != STORE_CONST)
                return engine_fail(err, ENGINE_E_UNSUPPORTED,
                                   "input %d ('%s') must be a constant (an initializer), but it "
                                   "is computed at run time",
                                   k, g->values[v].name);
        } else if (pv->dtype != DTYPE_FLOAT32 &&
                   !(n->op == OP_NORMALIZE_IMAGE && pv->dtype == DTYPE_UINT8) &&
                   !(op_runtime_int64(n->op) && pv->dtype == DTYPE_INT64)) {
            return engine_fail(err, ENGINE_E_UNSUPPORTED,
                               "input %d ('%s') is a %s tensor computed at run time; visiond "
                               "computes int64 tensors only from constants",
                               k, g->values[v].name, dtype_name(pv->dtype));
        }
    }
    for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] >= 0 && out[k].dtype != DTYPE_UNDEFINED &&
            out[k].dtype != DTYPE_FLOAT32 &&
            !(op_runtime_int64(n->op) && out[k].dtype == DTYPE_INT64))
            return engine_fail(err, ENGINE_E_UNSUPPORTED,
                               "output %d would be a %s tensor computed at run time", k,
                               dtype_name(out[k].dtype));
    return ENGINE_OK;
}

static engine_status plan_node(plan *p, const graph *g, int node_id, engine_error *err)
{
    const graph_node *n = &g->nodes[node_id];
    tensor_desc in[64], out_small[8];
    tensor_desc *ins = in, *outs = out_small;
    engine_status st = ENGINE_OK;
    if (n->n_inputs > 64 && !(ins = calloc((size_t)n->n_inputs, sizeof *ins)))
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    if (n->n_outputs > 8 && !(outs = calloc((size_t)n->n_outputs, sizeof *outs))) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        goto out;
    }
    bool all_const = true;
    /* shape inference may look at optional inputs past n_inputs: they read as absent */
    memset(ins, 0, (size_t)(n->n_inputs > 64 ? n->n_inputs : 64) * sizeof *ins);
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v < 0)
            continue;
        const plan_value *pv = &p->values[v];
        if (!pv->defined) {
            st = engine_fail(err, ENGINE_E_UNSUPPORTED,
                             "input %d ('%s') is an output visiond does not compute", k,
                             g->values[v].name);
            goto out;
        }
        ins[k].dtype = pv->dtype;
        ins[k].shape = pv->shape;
        ins[k].data = pv->storage == STORE_CONST ? pv->data : NULL;
        if (pv->storage != STORE_CONST)
            all_const = false;
    }
    plan_step step = {.node = node_id};
    if ((st = shape_infer_node(n, ins, outs, &step.r, &step.flops, err)))
        goto out;
    for (int k = 0; k < n->n_outputs; k++) {
        if (n->outputs[k] < 0 || outs[k].dtype == DTYPE_UNDEFINED)
            continue;
        if ((st = shape_check(&outs[k].shape, g->values[n->outputs[k]].name, err)))
            goto out;
    }
    if ((all_const || n->op == OP_SHAPE) && const_eval_supported(n->op)) {
        if ((st = const_eval_node(n, ins, outs, &step.r, err)))
            goto out;
        for (int k = 0; k < n->n_outputs; k++) {
            if (outs[k].dtype == DTYPE_UNDEFINED)
                continue;
            int v = n->outputs[k];
            if (v < 0 || (st = own(p, (void *)outs[k].data, err))) {
                if (v < 0)
                    tensor_free((void *)outs[k].data);
                if (st)
                    goto out;
                continue;
            }
            p->values[v] = (plan_value){.dtype = outs[k].dtype, .shape = outs[k].shape,
                                        .storage = STORE_CONST, .data = outs[k].data,
                                        .view_of = -1, .defined = true};
        }
        goto out;
    }
    if ((st = check_runtime_node(p, g, n, outs, err)))
        goto out;
    if (is_view_op(n->op)) {
        int src = n->inputs[0];
        int root = p->values[src].view_of >= 0 ? p->values[src].view_of : src;
        plan_value *o = &p->values[n->outputs[0]];
        *o = p->values[root];
        o->shape = outs[0].shape;
        o->view_of = root;
        goto out;
    }
    for (int k = 0; k < n->n_outputs; k++) {
        int v = n->outputs[k];
        if (v < 0 || outs[k].dtype == DTYPE_UNDEFINED)
            continue;
        p->values[v] = (plan_value){.dtype = outs[k].dtype, .shape = outs[k].shape,
                                    .storage = STORE_ARENA, .view_of = -1, .defined = true};
    }
    p->steps[p->n_steps++] = step;
    p->flops += step.flops;
out:
    if (ins != in)
        free(ins);
    if (outs != out_small)
        free(outs);
    return st;
}

/* Marks the inputs of channel Concats (4-D, axis 1) that a backend could
 * produce in place: computed arena values that nothing else reads or views. */
static engine_status mark_concat_inputs(plan *p, const graph *g, unsigned flags,
                                        engine_error *err)
{
    int nv = g->n_values;
    if (!(flags & PLAN_CONCAT_IN_PLACE)) {
        for (int v = 0; v < nv; v++)
            p->values[v].concat_into = -1;
        return ENGINE_OK;
    }
    int *readers = calloc((size_t)nv + 1, sizeof *readers);
    if (!readers)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory planning memory");
    for (int v = 0; v < nv; v++) {
        p->values[v].concat_into = -1;
        if (p->values[v].view_of >= 0)
            readers[p->values[v].view_of] += 2; /* a viewed buffer is never eligible */
    }
    for (int i = 0; i < g->n_outputs; i++)
        readers[g->outputs[i]] += 2;
    for (int s = 0; s < p->n_steps; s++) {
        const graph_node *n = &g->nodes[p->steps[s].node];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0)
                readers[n->inputs[k]]++;
    }
    for (int s = 0; s < p->n_steps; s++) {
        const graph_node *n = &g->nodes[p->steps[s].node];
        int y = n->outputs[0];
        if (n->op != OP_CONCAT || p->steps[s].r.axis != 1 || p->values[y].shape.rank != 4)
            continue;
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            const plan_value *pv = &p->values[v];
            if (v >= 0 && readers[v] == 1 && pv->storage == STORE_ARENA && pv->view_of < 0 &&
                g->values[v].producer >= 0)
                p->values[v].concat_into = y;
        }
    }
    free(readers);
    return ENGINE_OK;
}

typedef struct {
    int value;
    size_t size;
    int first, last; /* steps during which the buffer must hold its contents */
} buffer_life;

static int by_size_desc(const void *a, const void *b)
{
    const buffer_life *x = a, *y = b;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->first - y->first;
}

static int by_offset(const void *a, const void *b)
{
    const size_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* PLAN_RESIDUAL_IN_PLACE: a convolution's output takes its residual's
 * buffer (alias[y] = the buffer's owner) when nothing reads the residual
 * after that step; the owner's lifetime grows to cover the output's. */
static void residuals_in_place(const plan *p, const graph *g, int *last, int *alias)
{
    for (int s = 0; s < p->n_steps; s++) {
        const graph_node *n = &g->nodes[p->steps[s].node];
        if (n->op != OP_CONV || n->n_inputs < 4 || n->inputs[3] < 0)
            continue;
        int r = n->inputs[3], y = n->outputs[0], x = n->inputs[0];
        const plan_value *pr = &p->values[r], *py = &p->values[y];
        int x_root = p->values[x].view_of >= 0 ? p->values[x].view_of : x;
        if (pr->storage != STORE_ARENA || py->storage != STORE_ARENA || pr->view_of >= 0 ||
            pr->concat_into >= 0 || py->concat_into >= 0 || x_root == r || last[r] != s ||
            plan_value_room(p, r) != plan_value_room(p, y))
            continue;
        int owner = r;
        while (alias[owner] >= 0)
            owner = alias[owner];
        alias[y] = owner;
        if (last[y] > last[owner])
            last[owner] = last[y];
    }
}

/* Greedy by size: each buffer, largest first, takes the lowest offset that
 * does not overlap a placed buffer whose lifetime overlaps its own. */
static engine_status assign_offsets(plan *p, const graph *g, unsigned flags, engine_error *err)
{
    int nv = g->n_values;
    int *first = malloc((size_t)nv * sizeof *first), *last = malloc((size_t)nv * sizeof *last);
    int *alias = malloc((size_t)nv * sizeof *alias);
    buffer_life *bufs = malloc((size_t)nv * sizeof *bufs);
    size_t *placed = malloc((size_t)nv * 2 * sizeof *placed); /* offset, size pairs */
    int *placed_idx = malloc((size_t)nv * sizeof *placed_idx);
    size_t *cands = malloc((size_t)nv * 2 * sizeof *cands);
    engine_status st = ENGINE_OK;
    if (!first || !last || !alias || !bufs || !placed || !placed_idx || !cands) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory planning memory");
        goto out;
    }
    for (int v = 0; v < nv; v++)
        first[v] = last[v] = alias[v] = -1;
    for (int s = 0; s < p->n_steps; s++) {
        const graph_node *n = &g->nodes[p->steps[s].node];
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && p->values[n->outputs[k]].storage == STORE_ARENA)
                first[n->outputs[k]] = last[n->outputs[k]] = s;
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0)
                continue;
            int root = p->values[v].view_of >= 0 ? p->values[v].view_of : v;
            if (p->values[root].storage == STORE_ARENA)
                last[root] = s;
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        int root = p->values[v].view_of >= 0 ? p->values[v].view_of : v;
        if (p->values[root].storage == STORE_ARENA)
            last[root] = p->n_steps;
    }
    for (int v = 0; v < nv; v++) { /* a Concat's buffer lives from its first producer on */
        int y = p->values[v].concat_into;
        if (y >= 0 && first[v] >= 0 && first[v] < first[y])
            first[y] = first[v];
    }
    if (flags & PLAN_RESIDUAL_IN_PLACE)
        residuals_in_place(p, g, last, alias);
    int nb = 0;
    for (int v = 0; v < nv; v++)
        if (first[v] >= 0 && p->values[v].view_of < 0 && alias[v] < 0)
            bufs[nb++] = (buffer_life){v, (plan_value_room(p, v) + ARENA_ALIGN - 1) &
                                              ~(size_t)(ARENA_ALIGN - 1),
                                       first[v], last[v]};
    qsort(bufs, (size_t)nb, sizeof *bufs, by_size_desc);
    size_t arena = 0;
    for (int i = 0; i < nb; i++) {
        int nc = 0;
        for (int j = 0; j < i; j++)
            if (bufs[j].first <= bufs[i].last && bufs[i].first <= bufs[j].last) {
                cands[2 * nc] = placed[2 * j];
                cands[2 * nc + 1] = placed[2 * j + 1];
                nc++;
            }
        qsort(cands, (size_t)nc, 2 * sizeof *cands, by_offset);
        size_t off = 0;
        for (int c = 0; c < nc; c++) {
            if (off + bufs[i].size <= cands[2 * c])
                break;
            if (cands[2 * c] + cands[2 * c + 1] > off)
                off = cands[2 * c] + cands[2 * c + 1];
        }
        if (off > SIZE_MAX / 2 - bufs[i].size) { /* only a 32-bit size_t gets here */
            st = engine_fail(err, ENGINE_E_NOMEM,
                             "activations need more memory than this CPU can address");
            goto out;
        }
        placed[2 * i] = off;
        placed[2 * i + 1] = bufs[i].size;
        p->values[bufs[i].value].offset = off;
        if (off + bufs[i].size > arena)
            arena = off + bufs[i].size;
    }
    for (int v = 0; v < nv; v++)
        if (alias[v] >= 0)
            p->values[v].offset = p->values[alias[v]].offset;
    p->arena_bytes = arena;
out:
    free(first);
    free(last);
    free(alias);
    free(bufs);
    free(placed);
    free(placed_idx);
    free(cands);
    return st;
}

static engine_status copy_layout(plan *p, const plan *layout, const graph *g, engine_error *err)
{
    for (int v = 0; v < g->n_values; v++) {
        plan_value *pv = &p->values[v];
        if (pv->storage != STORE_ARENA || pv->view_of >= 0)
            continue;
        const plan_value *lv = &layout->values[v];
        if (lv->storage != STORE_ARENA || plan_value_room(p, v) > plan_value_room(layout, v))
            return engine_fail(err, ENGINE_E_INVALID,
                               "value '%s' does not fit the layout of batch %d at batch %d",
                               g->values[v].name, layout->batch, p->batch);
        pv->offset = lv->offset;
    }
    p->arena_bytes = layout->arena_bytes;
    return ENGINE_OK;
}

engine_status plan_create(const graph *g, int batch, const plan *layout, unsigned flags,
                          plan **out, engine_error *err)
{
    return plan_create_for(g, batch, layout, flags, NULL, out, err);
}

engine_status plan_create_for(const graph *g, int batch, const plan *layout, unsigned flags,
                              size_t (*room)(const plan *p, int v), plan **out,
                              engine_error *err)
{
    *out = NULL;
    plan *p = calloc(1, sizeof *p);
    if (!p)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    p->g = g;
    p->room = room;
    p->batch = batch;
    p->values = calloc((size_t)g->n_values + 1, sizeof *p->values);
    p->steps = calloc((size_t)g->n_nodes + 1, sizeof *p->steps);
    engine_status st;
    if (!p->values || !p->steps) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = init_values(p, g, batch, err)))
        goto fail;
    for (int i = 0; i < g->n_nodes; i++)
        if ((st = plan_node(p, g, i, err))) {
            fail_node(err, &g->nodes[i]);
            goto fail;
        }
    for (int i = 0; i < g->n_outputs; i++)
        if (!p->values[g->outputs[i]].defined) {
            st = engine_fail(err, ENGINE_E_UNSUPPORTED, "graph output '%s' is not computed (visiond computes "
                               "inference outputs only, not masks or training statistics)",
                             g->output_names[i]);
            goto fail;
        }
    if ((st = mark_concat_inputs(p, g, flags, err)))
        goto fail;
    /* views point at their root's offset once roots have one */
    st = layout ? copy_layout(p, layout, g, err) : assign_offsets(p, g, flags, err);
    if (st)
        goto fail;
    for (int v = 0; v < g->n_values; v++)
        if (p->values[v].view_of >= 0 && p->values[v].storage == STORE_ARENA)
            p->values[v].offset = p->values[p->values[v].view_of].offset;
    *out = p;
    return ENGINE_OK;
fail:
    engine_error_prefix(err, "%s: batch %d: ", g->source, batch);
    plan_free(p);
    return st;
}
