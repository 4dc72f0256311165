/* Graph IR storage: values, nodes, the name index and the edits passes need.
 * See graph.h for the model. */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[OP_COUNT] = {
    [OP_NONE] = "(removed)",
    [OP_CONV] = "Conv",
    [OP_GEMM] = "Gemm",
    [OP_MATMUL] = "MatMul",
    [OP_ADD] = "Add",
    [OP_SUB] = "Sub",
    [OP_MUL] = "Mul",
    [OP_DIV] = "Div",
    [OP_RELU] = "Relu",
    [OP_LEAKY_RELU] = "LeakyRelu",
    [OP_CLIP] = "Clip",
    [OP_SIGMOID] = "Sigmoid",
    [OP_HARD_SIGMOID] = "HardSigmoid",
    [OP_HARD_SWISH] = "HardSwish",
    [OP_EXP] = "Exp",
    [OP_MAXPOOL] = "MaxPool",
    [OP_AVGPOOL] = "AveragePool",
    [OP_GLOBAL_AVGPOOL] = "GlobalAveragePool",
    [OP_GLOBAL_MAXPOOL] = "GlobalMaxPool",
    [OP_BATCHNORM] = "BatchNormalization",
    [OP_LRN] = "LRN",
    [OP_SOFTMAX] = "Softmax",
    [OP_CONCAT] = "Concat",
    [OP_FLATTEN] = "Flatten",
    [OP_RESHAPE] = "Reshape",
    [OP_TRANSPOSE] = "Transpose",
    [OP_SLICE] = "Slice",
    [OP_SPLIT] = "Split",
    [OP_PAD] = "Pad",
    [OP_SQUEEZE] = "Squeeze",
    [OP_UNSQUEEZE] = "Unsqueeze",
    [OP_GATHER] = "Gather",
    [OP_SHAPE] = "Shape",
    [OP_CAST] = "Cast",
    [OP_REDUCE_MEAN] = "ReduceMean",
    [OP_DROPOUT] = "Dropout",
    [OP_IDENTITY] = "Identity",
    [OP_ERF] = "Erf",
    [OP_GELU] = "Gelu",
    [OP_SQRT] = "Sqrt",
    [OP_RECIPROCAL] = "Reciprocal",
    [OP_NEG] = "Neg",
    [OP_ABS] = "Abs",
    [OP_TANH] = "Tanh",
    [OP_SOFTPLUS] = "Softplus",
    [OP_MISH] = "Mish",
    [OP_LOG] = "Log",
    [OP_POW] = "Pow",
    [OP_MOD] = "Mod",
    [OP_MIN] = "Min",
    [OP_MAX] = "Max",
    [OP_EQUAL] = "Equal",
    [OP_LESS] = "Less",
    [OP_LESS_OR_EQUAL] = "LessOrEqual",
    [OP_GREATER] = "Greater",
    [OP_GREATER_OR_EQUAL] = "GreaterOrEqual",
    [OP_AND] = "And",
    [OP_OR] = "Or",
    [OP_NOT] = "Not",
    [OP_WHERE] = "Where",
    [OP_LAYER_NORM] = "LayerNormalization",
    [OP_INSTANCE_NORM] = "InstanceNormalization",
    [OP_LOG_SOFTMAX] = "LogSoftmax",
    [OP_REDUCE_SUM] = "ReduceSum",
    [OP_REDUCE_MAX] = "ReduceMax",
    [OP_REDUCE_MIN] = "ReduceMin",
    [OP_PRELU] = "PRelu",
    [OP_EXPAND] = "Expand",
    [OP_CONSTANT_OF_SHAPE] = "ConstantOfShape",
    [OP_RANGE] = "Range",
    [OP_TILE] = "Tile",
    [OP_GATHER_ELEMENTS] = "GatherElements",
    [OP_SCATTER_ND] = "ScatterND",
    [OP_EINSUM] = "Einsum",
    [OP_RESIZE] = "Resize",
    [OP_CONV_TRANSPOSE] = "ConvTranspose",
    [OP_TOPK] = "TopK",
    [OP_ARGMAX] = "ArgMax",
    [OP_ARGMIN] = "ArgMin",
    [OP_NMS] = "NonMaxSuppression",
    [OP_SILU] = "SiLU",
    [OP_NORMALIZE_IMAGE] = "NormalizeImage",
};

const char *op_name(op_t op)
{
    return (op >= 0 && op < OP_COUNT && op_names[op]) ? op_names[op] : "?";
}

bool op_is_unary_activation(op_t op)
{
    switch (op) {
    case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID:
    case OP_HARD_SIGMOID: case OP_HARD_SWISH: case OP_EXP: case OP_ERF: case OP_GELU:
    case OP_SQRT: case OP_RECIPROCAL: case OP_NEG: case OP_ABS: case OP_TANH: case OP_SOFTPLUS:
    case OP_MISH: case OP_LOG: case OP_SILU:
        return true;
    default:
        return false;
    }
}

bool op_is_binary_elementwise(op_t op)
{
    return op == OP_ADD || op == OP_SUB || op == OP_MUL || op == OP_DIV;
}

bool op_is_comparison(op_t op)
{
    switch (op) {
    case OP_EQUAL: case OP_LESS: case OP_LESS_OR_EQUAL: case OP_GREATER:
    case OP_GREATER_OR_EQUAL: case OP_AND: case OP_OR:
        return true;
    default:
        return false;
    }
}

graph *graph_create(const char *source)
{
    graph *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->source = strdup(source ? source : "(memory)");
    if (!g->source) {
        free(g);
        return NULL;
    }
    return g;
}

void graph_free(graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i].name);
        tensor_free(g->values[i].data);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].inputs);
        free(g->nodes[i].outputs);
    }
    for (int i = 0; i < g->n_outputs; i++)
        free(g->output_names[i]);
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->output_names);
    free(g->index);
    free(g->source);
    free(g);
}

/* --- name index: FNV-1a over the name, linear probing --- */

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void index_insert(int *index, int cap, const graph *g, int id)
{
    uint32_t h = name_hash(g->values[id].name) & (uint32_t)(cap - 1);
    while (index[h] >= 0)
        h = (h + 1) & (uint32_t)(cap - 1);
    index[h] = id;
}

static bool index_grow(graph *g)
{
    int cap = g->index_cap ? g->index_cap * 2 : 256;
    int *index = malloc((size_t)cap * sizeof *index);
    if (!index)
        return false;
    for (int i = 0; i < cap; i++)
        index[i] = -1;
    for (int v = 0; v < g->n_values; v++)
        index_insert(index, cap, g, v);
    free(g->index);
    g->index = index;
    g->index_cap = cap;
    return true;
}

int graph_find_value(const graph *g, const char *name)
{
    if (!g->index_cap || !name)
        return -1;
    uint32_t h = name_hash(name) & (uint32_t)(g->index_cap - 1);
    while (g->index[h] >= 0) {
        if (strcmp(g->values[g->index[h]].name, name) == 0)
            return g->index[h];
        h = (h + 1) & (uint32_t)(g->index_cap - 1);
    }
    return -1;
}

int graph_add_value(graph *g, const char *name, engine_error *err)
{
    if (graph_find_value(g, name) >= 0) {
        engine_fail(err, ENGINE_E_INVALID, "value '%s' is defined twice", name);
        return -1;
    }
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? g->cap_values * 2 : 256;
        graph_value *nv = realloc(g->values, (size_t)cap * sizeof *nv);
        if (!nv)
            goto nomem;
        g->values = nv;
        g->cap_values = cap;
    }
    if ((g->n_values + 1) * 2 > g->index_cap && !index_grow(g))
        goto nomem;
    graph_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->producer = -1;
    v->name = strdup(name);
    if (!v->name)
        goto nomem;
    int id = g->n_values++;
    index_insert(g->index, g->index_cap, g, id);
    return id;
nomem:
    engine_fail(err, ENGINE_E_NOMEM, "out of memory adding value '%s'", name);
    return -1;
}

int graph_add_value_unique(graph *g, const char *hint, engine_error *err)
{
    char name[512];
    for (int k = g->n_values;; k++) {
        snprintf(name, sizeof name, "%.400s#%d", hint, k);
        if (graph_find_value(g, name) < 0)
            return graph_add_value(g, name, err);
    }
}

void graph_set_const(graph *g, int v, dtype_t dt, const shape_t *s, void *data)
{
    graph_value *val = &g->values[v];
    tensor_free(val->data);
    val->dtype = dt;
    val->shape = *s;
    val->data = data;
    val->producer = -1;
}

int graph_add_const(graph *g, const char *hint, dtype_t dt, const shape_t *s, const void *data,
                    engine_error *err)
{
    size_t bytes = (size_t)shape_numel(s) * dtype_size(dt);
    void *copy = tensor_alloc(bytes);
    if (!copy) {
        engine_fail(err, ENGINE_E_NOMEM, "out of memory for constant '%s'", hint);
        return -1;
    }
    if (bytes)
        memcpy(copy, data, bytes);
    int v = graph_add_value_unique(g, hint, err);
    if (v < 0) {
        tensor_free(copy);
        return -1;
    }
    graph_set_const(g, v, dt, s, copy);
    return v;
}

graph_node *graph_add_node(graph *g, op_t op, const char *name, int n_inputs, int n_outputs,
                           engine_error *err)
{
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 128;
        graph_node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn)
            goto nomem;
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    graph_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->name = strdup(name ? name : "");
    n->inputs = malloc(((size_t)n_inputs + 1) * sizeof(int));
    n->outputs = malloc(((size_t)n_outputs + 1) * sizeof(int));
    if (!n->name || !n->inputs || !n->outputs) {
        free(n->name);
        free(n->inputs);
        free(n->outputs);
        goto nomem;
    }
    n->n_inputs = n_inputs;
    n->n_outputs = n_outputs;
    for (int i = 0; i < n_inputs; i++)
        n->inputs[i] = -1;
    for (int i = 0; i < n_outputs; i++)
        n->outputs[i] = -1;
    g->n_nodes++;
    return n;
nomem:
    engine_fail(err, ENGINE_E_NOMEM, "out of memory adding node '%s'", name ? name : "");
    return NULL;
}

engine_status graph_node_set_input(graph_node *n, int k, int v, engine_error *err)
{
    if (k >= n->n_inputs) {
        int *ni = realloc(n->inputs, ((size_t)k + 1) * sizeof *ni);
        if (!ni)
            return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        for (int i = n->n_inputs; i <= k; i++)
            ni[i] = -1;
        n->inputs = ni;
        n->n_inputs = k + 1;
    }
    n->inputs[k] = v;
    return ENGINE_OK;
}

void graph_replace_uses(graph *g, int from, int to)
{
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->op == OP_NONE)
            continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == from)
                n->inputs[k] = to;
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == from)
            g->outputs[i] = to;
}

void graph_count_uses(const graph *g, int *uses)
{
    memset(uses, 0, (size_t)g->n_values * sizeof *uses);
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->op == OP_NONE)
            continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0)
                uses[n->inputs[k]]++;
    }
    for (int i = 0; i < g->n_outputs; i++)
        uses[g->outputs[i]]++;
}

bool graph_is_output(const graph *g, int v)
{
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v)
            return true;
    return false;
}

static void node_release(graph_node *n)
{
    free(n->name);
    free(n->inputs);
    free(n->outputs);
}

void graph_compact(graph *g)
{
    int *uses = calloc((size_t)g->n_values + 1, sizeof *uses);
    if (!uses)
        return; /* compaction is an optimisation; the graph stays valid */
    /* Dead-node elimination, last to first so chains disappear in one sweep. */
    graph_count_uses(g, uses);
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        graph_node *n = &g->nodes[i];
        if (n->op == OP_NONE)
            continue;
        bool used = false;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && uses[n->outputs[k]] > 0)
                used = true;
        if (!used) {
            for (int k = 0; k < n->n_inputs; k++)
                if (n->inputs[k] >= 0)
                    uses[n->inputs[k]]--;
            n->op = OP_NONE;
        }
    }
    int kept = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == OP_NONE)
            node_release(&g->nodes[i]);
        else
            g->nodes[kept++] = g->nodes[i];
    }
    g->n_nodes = kept;
    for (int v = 0; v < g->n_values; v++) {
        g->values[v].producer = -1;
        if (uses[v] == 0 && g->values[v].data) {
            tensor_free(g->values[v].data);
            g->values[v].data = NULL;
            g->values[v].dtype = DTYPE_UNDEFINED;
        }
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_outputs; k++)
            if (g->nodes[i].outputs[k] >= 0)
                g->values[g->nodes[i].outputs[k]].producer = i;
    free(uses);
}

engine_status graph_sort(graph *g, engine_error *err)
{
    int nn = g->n_nodes;
    bool sorted_already = true;
    for (int i = 0; i < nn && sorted_already; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (v >= 0 && g->values[v].producer >= i)
                sorted_already = false;
        }
    if (sorted_already)
        return ENGINE_OK;

    /* consumers of each node, in CSR form */
    size_t edges = 0;
    for (int i = 0; i < nn; i++)
        edges += (size_t)g->nodes[i].n_inputs;
    int *pending = calloc((size_t)nn + 1, sizeof *pending);
    int *start = calloc((size_t)nn + 2, sizeof *start);
    int *adj = malloc((edges + 1) * sizeof *adj);
    int *queue = malloc(((size_t)nn + 1) * sizeof *queue);
    graph_node *sorted = malloc(((size_t)nn + 1) * sizeof *sorted);
    engine_status st = ENGINE_OK;
    if (!pending || !start || !adj || !queue || !sorted) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory sorting nodes");
        goto out;
    }
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (v >= 0 && g->values[v].producer >= 0) {
                pending[i]++;
                start[g->values[v].producer + 1]++;
            }
        }
    for (int i = 0; i < nn; i++)
        start[i + 1] += start[i];
    {
        int *fill = calloc((size_t)nn + 1, sizeof *fill);
        if (!fill) {
            st = engine_fail(err, ENGINE_E_NOMEM, "out of memory sorting nodes");
            goto out;
        }
        for (int i = 0; i < nn; i++)
            for (int k = 0; k < g->nodes[i].n_inputs; k++) {
                int v = g->nodes[i].inputs[k];
                if (v >= 0 && g->values[v].producer >= 0) {
                    int p = g->values[v].producer;
                    adj[start[p] + fill[p]++] = i;
                }
            }
        free(fill);
    }
    int head = 0, tail = 0;
    for (int i = 0; i < nn; i++)
        if (!pending[i])
            queue[tail++] = i;
    while (head < tail) {
        int i = queue[head++];
        for (int e = start[i]; e < start[i + 1]; e++)
            if (--pending[adj[e]] == 0)
                queue[tail++] = adj[e];
    }
    if (tail < nn) {
        for (int i = 0; i < nn; i++)
            if (pending[i]) {
                st = engine_fail(err, ENGINE_E_INVALID, "node '%s' (%s) is part of a cycle",
                                 g->nodes[i].name, op_name(g->nodes[i].op));
                break;
            }
        goto out;
    }
    for (int i = 0; i < nn; i++)
        sorted[i] = g->nodes[queue[i]];
    memcpy(g->nodes, sorted, (size_t)nn * sizeof *sorted);
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_outputs; k++)
            if (g->nodes[i].outputs[k] >= 0)
                g->values[g->nodes[i].outputs[k]].producer = i;
out:
    free(pending);
    free(start);
    free(adj);
    free(queue);
    free(sorted);
    return st;
}

