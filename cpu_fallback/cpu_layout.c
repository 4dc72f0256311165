/* The layout decision of cpu_layout.h: union-find over values. */
#include "cpu_layout.h"

#include <stdlib.h>

static int find(int *parent, int v)
{
    while (parent[v] != v) {
        parent[v] = parent[parent[v]];
        v = parent[v];
    }
    return v;
}

static void join(int *parent, int a, int b)
{
    if (a < 0 || b < 0)
        return;
    a = find(parent, a);
    b = find(parent, b);
    if (a != b)
        parent[a] = b;
}

bool cpu_layout_is_depthwise(const graph_node *n, const plan *p)
{
    const shape_t *x = &p->values[n->inputs[0]].shape, *y = &p->values[n->outputs[0]].shape;
    return n->op == OP_CONV && x->rank == 4 && n->p.win.group > 1 &&
           n->p.win.group == x->dim[1] && y->dim[1] == x->dim[1];
}

static bool same_shape(const plan *p, int a, int b)
{
    return a >= 0 && b >= 0 && shape_equal(&p->values[a].shape, &p->values[b].shape);
}

/* Marks every data input and output of n as plain. */
static void all_plain(const graph_node *n, bool *plain)
{
    for (int k = 0; k < n->n_inputs; k++)
        if (n->inputs[k] >= 0)
            plain[n->inputs[k]] = true;
    for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] >= 0)
            plain[n->outputs[k]] = true;
}

static bool concat_blockable(const graph_node *n, const plan *p, const plan_step *st)
{
    const shape_t *y = &p->values[n->outputs[0]].shape;
    if (y->rank != 4 || st->r.axis != 1)
        return false;
    for (int k = 0; k + 1 < n->n_inputs; k++)
        if (n->inputs[k] < 0 || p->values[n->inputs[k]].shape.dim[1] % CPU_BLOCK)
            return false;
    return true;
}

bool cpu_layout_channel_operand(const graph_node *n, const plan *p, int *full, int *chan)
{
    if (n->n_inputs != 2 || n->inputs[0] < 0 || n->inputs[1] < 0)
        return false;
    const shape_t *y = &p->values[n->outputs[0]].shape;
    for (int k = 0; k < 2; k++) {
        const shape_t *a = &p->values[n->inputs[k]].shape, *b = &p->values[n->inputs[1 - k]].shape;
        if (y->rank == 4 && shape_equal(a, y) && b->rank == 4 && b->dim[1] == y->dim[1] &&
            (b->dim[0] == y->dim[0] || b->dim[0] == 1) && b->dim[2] == 1 && b->dim[3] == 1 &&
            p->values[n->inputs[1 - k]].dtype == DTYPE_FLOAT32 && !(n->op == OP_DIV && k == 1)) {
            *full = n->inputs[k];
            *chan = n->inputs[1 - k];
            return true;
        }
    }
    return false;
}

bool cpu_layout_decide(const plan *p, bool *blocked)
{
    const graph *g = p->g;
    int nv = g->n_values;
    int *parent = malloc((size_t)(nv + 1) * sizeof *parent);
    bool *plain = calloc((size_t)nv + 1, sizeof *plain);
    if (!parent || !plain) {
        free(parent);
        free(plain);
        return false;
    }
    for (int v = 0; v < nv; v++) {
        const plan_value *pv = &p->values[v];
        parent[v] = v;
        plain[v] = pv->storage != STORE_ARENA || pv->view_of >= 0 ||
                   pv->dtype != DTYPE_FLOAT32 || pv->shape.rank != 4;
        if (pv->view_of >= 0)
            plain[pv->view_of] = true; /* a view reinterprets its root as NCHW */
    }
    for (int i = 0; i < g->n_outputs; i++)
        plain[g->outputs[i]] = true;
    for (int s = 0; s < p->n_steps; s++) {
        const graph_node *n = &g->nodes[p->steps[s].node];
        int x = n->n_inputs > 0 ? n->inputs[0] : -1, y = n->outputs[0];
        switch (n->op) {
        case OP_CONV:
            if (p->values[x].shape.rank != 4) {
                all_plain(n, plain);
            } else if (cpu_layout_is_depthwise(n, p)) {
                join(parent, x, y);
            } else if (n->p.win.group != 1) {
                plain[x] = plain[y] = true;
            }
            if (n->n_inputs > 3)
                join(parent, n->inputs[3], y); /* the fused residual */
            break;
        case OP_MAXPOOL: case OP_AVGPOOL: case OP_BATCHNORM:
        case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID: case OP_HARD_SIGMOID:
        case OP_HARD_SWISH: case OP_EXP: case OP_ERF: case OP_GELU: case OP_NEG: case OP_ABS:
        case OP_TANH: case OP_SOFTPLUS: case OP_MISH: case OP_SILU: /* finite on the padding channels */
            if (n->n_outputs != 1)
                all_plain(n, plain);
            join(parent, x, y);
            break;
        case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: {
            int full, chan;
            if (same_shape(p, x, y) && same_shape(p, n->inputs[1], y)) {
                join(parent, x, y);
                join(parent, n->inputs[1], y);
            } else if (cpu_layout_channel_operand(n, p, &full, &chan)) {
                join(parent, full, y); /* per-channel operand: read as NCHW */
                plain[chan] = true;
            } else {
                all_plain(n, plain);
            }
            break;
        }
        case OP_CONCAT:
            if (concat_blockable(n, p, &p->steps[s]))
                for (int k = 0; k < n->n_inputs; k++)
                    join(parent, n->inputs[k], y);
            else
                all_plain(n, plain);
            break;
        case OP_GLOBAL_AVGPOOL: case OP_GLOBAL_MAXPOOL:
            plain[y] = true; /* reads either layout, writes NCHW */
            break;
        default:
            all_plain(n, plain);
            break;
        }
    }
    /* a group is plain when any member is */
    bool *group_plain = calloc((size_t)nv + 1, sizeof *group_plain);
    if (!group_plain) {
        free(parent);
        free(plain);
        return false;
    }
    for (int v = 0; v < nv; v++)
        if (plain[v])
            group_plain[find(parent, v)] = true;
    for (int v = 0; v < nv; v++)
        blocked[v] = !group_plain[find(parent, v)];
    free(group_plain);
    free(parent);
    free(plain);
    return true;
}
