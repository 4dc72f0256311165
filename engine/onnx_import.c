/* ONNX import: file bytes -> protobuf-c messages -> graph IR.
 *
 * Everything here treats the file as untrusted: the file size, tensor ranks
 * and dimensions, payload lengths, node and edge counts are bounded before
 * they are used, and every failure names the file plus the node, operator or
 * value at fault. Operators and their attributes live in onnx_ops.c.
 */
#include "onnx_import.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_read.h"
#include "onnx_internal.h"

#define MIN_OPSET 7
#define MAX_OPSET 21

static bool is_default_domain(const char *d)
{
    return d == NULL || d[0] == 0 || strcmp(d, "ai.onnx") == 0;
}

/* --- tensors --- */

static engine_status copy_payload(const Onnx__TensorProto *t, const char *what, int64_t numel,
                                  size_t elem_bytes, size_t typed_count, const void *typed,
                                  void *dst, engine_error *err)
{
    size_t want = (size_t)numel * elem_bytes;
    if (t->has_raw_data) {
        if (t->raw_data.len != want)
            return engine_fail(err, ENGINE_E_INVALID,
                               "tensor '%s' holds %zu bytes of raw data, its shape needs %zu", what,
                               t->raw_data.len, want);
        if (want)
            memcpy(dst, t->raw_data.data, want);
        return ENGINE_OK;
    }
    if (typed_count != (size_t)numel)
        return engine_fail(err, ENGINE_E_INVALID,
                           "tensor '%s' holds %zu values, its shape needs %lld", what, typed_count,
                           (long long)numel);
    if (want)
        memcpy(dst, typed, want);
    return ENGINE_OK;
}

/* The element size of the type's raw data and the count of its typed
 * values; false for types visiond does not read. */
static bool payload_of(const Onnx__TensorProto *t, int type, size_t *raw_elem, size_t *typed)
{
    switch (type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: *raw_elem = 4, *typed = t->n_float_data; return true;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: *raw_elem = 8, *typed = t->n_int64_data; return true;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: *raw_elem = 4, *typed = t->n_int32_data; return true;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: *raw_elem = 1, *typed = t->n_int32_data; return true;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        *raw_elem = 8, *typed = t->n_double_data;
        return true;
    default: return false;
    }
}

engine_status onnx_tensor_convert(const Onnx__TensorProto *t, const char *what, dtype_t *dt,
                                  shape_t *shape, void **data, engine_error *err)
{
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return engine_fail(err, ENGINE_E_UNSUPPORTED,
                           "tensor '%s' keeps its data in an external file, which visiond does not "
                           "read; save the model with its weights inside",
                           what);
    if (t->segment)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "tensor '%s' is segmented", what);
    if (t->n_dims > ENGINE_MAX_RANK)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "tensor '%s' has rank %zu (at most %d)", what,
                           t->n_dims, ENGINE_MAX_RANK);
    shape_t s = {.rank = (int)t->n_dims};
    for (size_t i = 0; i < t->n_dims; i++)
        s.dim[i] = t->dims[i];
    char label[320];
    snprintf(label, sizeof label, "tensor '%.300s'", what);
    engine_status st = shape_check(&s, label, err);
    if (st)
        return st;
    int64_t n = shape_numel(&s);
    int type = t->has_data_type ? t->data_type : 0;
    /* the data present must be what the shape says before anything is
     * allocated: a few bytes of file must not claim gigabytes */
    size_t raw_elem, typed;
    if (payload_of(t, type, &raw_elem, &typed)) {
        size_t held = t->has_raw_data ? t->raw_data.len / raw_elem : typed;
        if (held != (size_t)n || (t->has_raw_data && t->raw_data.len % raw_elem))
            return engine_fail(err, ENGINE_E_INVALID,
                               "tensor '%s' holds %zu %s, its shape needs %lld values", what,
                               t->has_raw_data ? t->raw_data.len : typed,
                               t->has_raw_data ? "bytes of raw data" : "values", (long long)n);
    }
    void *buf = NULL;
    switch (type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        buf = tensor_alloc((size_t)n * 4);
        if (!buf)
            break;
        st = copy_payload(t, what, n, 4, t->n_float_data, t->float_data, buf, err);
        *dt = DTYPE_FLOAT32;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        buf = tensor_alloc((size_t)n * 8);
        if (!buf)
            break;
        st = copy_payload(t, what, n, 8, t->n_int64_data, t->int64_data, buf, err);
        *dt = DTYPE_INT64;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: {
        buf = tensor_alloc((size_t)n * 8);
        int32_t *tmp = malloc((size_t)n * 4 + 4);
        if (!buf || !tmp) {
            free(tmp);
            break;
        }
        st = copy_payload(t, what, n, 4, t->n_int32_data, t->int32_data, tmp, err);
        for (int64_t i = 0; i < n && !st; i++)
            ((int64_t *)buf)[i] = tmp[i];
        free(tmp);
        *dt = DTYPE_INT64;
        break;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: { /* flags such as Dropout's training_mode */
        buf = tensor_alloc((size_t)n * 8);
        uint8_t *tmp = malloc((size_t)n + 1);
        if (!buf || !tmp) {
            free(tmp);
            break;
        }
        if (t->has_raw_data) {
            st = copy_payload(t, what, n, 1, 0, NULL, tmp, err);
        } else if (t->n_int32_data != (size_t)n) {
            st = engine_fail(err, ENGINE_E_INVALID, "tensor '%s' holds %zu values, needs %lld",
                             what, t->n_int32_data, (long long)n);
        } else {
            for (int64_t i = 0; i < n; i++)
                tmp[i] = t->int32_data[i] != 0;
        }
        for (int64_t i = 0; i < n && !st; i++)
            ((int64_t *)buf)[i] = tmp[i] != 0;
        free(tmp);
        *dt = DTYPE_INT64;
        break;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
        buf = tensor_alloc((size_t)n * 4);
        double *tmp = malloc((size_t)n * 8 + 8);
        if (!buf || !tmp) {
            free(tmp);
            break;
        }
        st = copy_payload(t, what, n, 8, t->n_double_data, t->double_data, tmp, err);
        for (int64_t i = 0; i < n && !st; i++)
            ((float *)buf)[i] = (float)tmp[i];
        free(tmp);
        *dt = DTYPE_FLOAT32;
        break;
    }
    default:
        return engine_fail(err, ENGINE_E_UNSUPPORTED,
                           "tensor '%s' has ONNX data type %d; visiond reads float, double, int32 "
                           "and int64 tensors",
                           what, type);
    }
    if (!buf)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory reading tensor '%s'", what);
    if (st) {
        tensor_free(buf);
        return st;
    }
    *shape = s;
    *data = buf;
    return ENGINE_OK;
}

/* --- graph inputs --- */

static engine_status add_runtime_input(graph *g, const Onnx__ValueInfoProto *vi, engine_error *err)
{
    const char *name = vi->name ? vi->name : "";
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "input '%s' is not a tensor", name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (!tt->has_elem_type || tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return engine_fail(err, ENGINE_E_UNSUPPORTED,
                           "input '%s' has ONNX element type %d; visiond takes float32 inputs", name,
                           tt->has_elem_type ? tt->elem_type : 0);
    if (!tt->shape)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "input '%s' declares no shape", name);
    if (tt->shape->n_dim > ENGINE_MAX_RANK)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "input '%s' has rank %zu (at most %d)", name,
                           tt->shape->n_dim, ENGINE_MAX_RANK);
    shape_t s = {.rank = (int)tt->shape->n_dim};
    for (int i = 0; i < s.rank; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        bool fixed = d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                     d->dim_value >= 0;
        if (fixed) {
            s.dim[i] = d->dim_value;
        } else if (i == 0) {
            s.dim[i] = -1; /* the batch */
        } else {
            const char *param = d && d->value_case ==
                                         ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                                    ? d->dim_param
                                    : "?";
            return engine_fail(err, ENGINE_E_UNSUPPORTED,
                               "input '%s' has a symbolic dimension '%s' at axis %d; only the "
                               "batch dimension (axis 0) may vary",
                               name, param, i);
        }
    }
    shape_t check = s;
    if (check.rank > 0 && check.dim[0] < 0)
        check.dim[0] = 1;
    char label[320];
    snprintf(label, sizeof label, "input '%.300s'", name);
    engine_status st = shape_check(&check, label, err);
    if (st)
        return st;
    int v = graph_add_value(g, name, err);
    if (v < 0)
        return err->status;
    g->values[v].dtype = DTYPE_FLOAT32;
    g->values[v].shape = s;
    int *ni = realloc(g->inputs, ((size_t)g->n_inputs + 1) * sizeof *ni);
    if (!ni)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    g->inputs = ni;
    g->inputs[g->n_inputs++] = v;
    return ENGINE_OK;
}

/* --- nodes --- */

static const char *node_label(const Onnx__NodeProto *np, int index, char *buf, size_t n)
{
    if (np->name && np->name[0])
        return np->name;
    snprintf(buf, n, "#%d", index);
    return buf;
}

/* Creates the node and its output values; inputs are wired in a second pass
 * so that a graph listed out of order can still be sorted. */
static engine_status declare_node(graph *g, const Onnx__NodeProto *np, int index, int *node_id,
                                  engine_error *err)
{
    *node_id = -1;
    char label_buf[32];
    const char *label = node_label(np, index, label_buf, sizeof label_buf);
    const char *type = np->op_type ? np->op_type : "";
    if (!is_default_domain(np->domain))
        return engine_fail(err, ENGINE_E_UNSUPPORTED,
                           "unsupported operator '%s' from domain '%s' (node '%s')", type,
                           np->domain, label);
    const onnx_op_def *def = onnx_op_lookup(type);
    if (!def)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "unsupported operator '%s' (node '%s')",
                           type, label);
    if (np->n_input > ONNX_MAX_NODE_IO || np->n_output > ONNX_MAX_NODE_IO)
        return engine_fail(err, ENGINE_E_INVALID, "node '%s' (%s) has too many inputs or outputs",
                           label, type);
    engine_status st = onnx_op_check_arity(def, np, err);
    if (st)
        return engine_error_prefix(err, "node '%s' (%s): ", label, type);
    if (onnx_op_kind(def) == OP_NONE) { /* Constant */
        int v = graph_add_value(g, np->output[0] ? np->output[0] : "", err);
        if (v < 0 || (st = onnx_constant_value(g, v, np, err)))
            return engine_error_prefix(err, "node '%s' (%s): ", label, type);
        return ENGINE_OK;
    }
    graph_node *n =
        graph_add_node(g, onnx_op_kind(def), label, (int)np->n_input, (int)np->n_output, err);
    if (!n)
        return err->status;
    int id = g->n_nodes - 1;
    *node_id = id;
    for (size_t k = 0; k < np->n_output; k++) {
        const char *out = np->output[k];
        if (!out || !out[0])
            continue;
        int v = graph_add_value(g, out, err);
        if (v < 0)
            return engine_error_prefix(err, "node '%s' (%s): ", label, type);
        g->values[v].producer = id;
        g->nodes[id].outputs[k] = v;
    }
    return ENGINE_OK;
}

static engine_status wire_node(graph *g, int id, const Onnx__NodeProto *np, engine_error *err)
{
    graph_node *n = &g->nodes[id];
    for (size_t k = 0; k < np->n_input; k++) {
        const char *in = np->input[k];
        if (!in || !in[0])
            continue;
        int v = graph_find_value(g, in);
        if (v < 0)
            return engine_fail(err, ENGINE_E_INVALID,
                               "node '%s' (%s) reads '%s', which is neither a graph input, an "
                               "initializer nor the output of a node (missing initializer?)",
                               n->name, op_name(n->op), in);
        n->inputs[k] = v;
    }
    return ENGINE_OK;
}

static engine_status import_graph(graph *g, const Onnx__GraphProto *gp, int *node_ids,
                                  engine_error *err)
{
    engine_status st;
    /* Initializers first: a graph input that has one is a constant. */
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *t = gp->initializer[i];
        const char *name = t->name ? t->name : "";
        if (!name[0])
            return engine_fail(err, ENGINE_E_INVALID, "initializer #%zu has no name", i);
        dtype_t dt;
        shape_t s;
        void *data;
        if ((st = onnx_tensor_convert(t, name, &dt, &s, &data, err)))
            return st;
        int v = graph_add_value(g, name, err);
        if (v < 0) {
            tensor_free(data);
            return err->status;
        }
        graph_set_const(g, v, dt, &s, data);
        if (dt == DTYPE_FLOAT32)
            g->n_params += shape_numel(&s);
    }
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !vi->name[0])
            return engine_fail(err, ENGINE_E_INVALID, "graph input #%zu has no name", i);
        if (graph_find_value(g, vi->name) >= 0)
            continue; /* an initializer listed as input (IR < 4 style) */
        if ((st = add_runtime_input(g, vi, err)))
            return st;
    }
    if (g->n_inputs == 0)
        return engine_fail(err, ENGINE_E_INVALID, "the graph has no runtime input");
    for (size_t i = 0; i < gp->n_node; i++)
        if ((st = declare_node(g, gp->node[i], (int)i, &node_ids[i], err)))
            return st;
    for (size_t i = 0; i < gp->n_node; i++)
        if (node_ids[i] >= 0 && (st = wire_node(g, node_ids[i], gp->node[i], err)))
            return st;
    /* Attributes after wiring, so attribute-form operands can become inputs. */
    for (size_t i = 0; i < gp->n_node; i++) {
        if (node_ids[i] < 0)
            continue;
        const onnx_op_def *def = onnx_op_lookup(gp->node[i]->op_type);
        graph_node *n = &g->nodes[node_ids[i]];
        if ((st = onnx_op_parse(def, g, n, gp->node[i], err)))
            return engine_error_prefix(err, "node '%s' (%s): ", n->name, gp->node[i]->op_type);
    }
    /* ONNX requires topological order; sorting anyway accepts sloppy exporters */
    if ((st = graph_sort(g, err)))
        return st;
    if (gp->n_output == 0)
        return engine_fail(err, ENGINE_E_INVALID, "the graph has no output");
    g->outputs = calloc(gp->n_output, sizeof *g->outputs);
    g->output_names = calloc(gp->n_output, sizeof *g->output_names);
    if (!g->outputs || !g->output_names)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *name = gp->output[i]->name ? gp->output[i]->name : "";
        int v = graph_find_value(g, name);
        if (v < 0)
            return engine_fail(err, ENGINE_E_INVALID,
                               "graph output '%s' is not produced by any node", name);
        g->output_names[i] = strdup(name);
        if (!g->output_names[i])
            return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        g->outputs[i] = v;
        g->n_outputs++;
    }
    return ENGINE_OK;
}

engine_status onnx_import_buffer(const void *data, size_t size, const char *label, graph **out,
                                 engine_error *err)
{
    *out = NULL;
    if (size == 0)
        return engine_fail(err, ENGINE_E_PARSE, "%s: the model file is empty", label);
    if (size > ONNX_MAX_FILE_BYTES)
        return engine_fail(err, ENGINE_E_INVALID, "%s: the model is %zu bytes (at most %zu)", label,
                           size, ONNX_MAX_FILE_BYTES);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
    if (!m)
        return engine_fail(err, ENGINE_E_PARSE,
                           "%s: not an ONNX model (the protobuf does not decode; truncated or not "
                           "ONNX)",
                           label);
    engine_status st = ENGINE_OK;
    graph *g = graph_create(label);
    int *node_ids = NULL;
    if (!g) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        goto done;
    }
    if (!m->graph) {
        st = engine_fail(err, ENGINE_E_PARSE, "not an ONNX model (it has no graph)");
        goto fail;
    }
    g->ir_version = m->has_ir_version ? m->ir_version : 0;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (is_default_domain(o->domain) && o->has_version)
            g->opset = o->version;
    }
    if (g->opset == 0 && g->ir_version > 0 && g->ir_version < 3)
        g->opset = 1; /* pre-opset_import files */
    if (g->opset < MIN_OPSET || g->opset > MAX_OPSET) {
        st = engine_fail(err, ENGINE_E_UNSUPPORTED,
                         "the model uses ONNX opset %lld; visiond supports opsets %d to %d",
                         (long long)g->opset, MIN_OPSET, MAX_OPSET);
        goto fail;
    }
    if (m->graph->n_node > ONNX_MAX_NODES) {
        st = engine_fail(err, ENGINE_E_INVALID, "the graph has %zu nodes (at most %d)",
                         m->graph->n_node, ONNX_MAX_NODES);
        goto fail;
    }
    node_ids = calloc(m->graph->n_node + 1, sizeof *node_ids);
    if (!node_ids) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        goto fail;
    }
    g->nodes_in_file = (int)m->graph->n_node;
    st = import_graph(g, m->graph, node_ids, err);
    if (st == ENGINE_OK)
        goto done;
fail:
    engine_error_prefix(err, "%s: ", label);
    graph_free(g);
    g = NULL;
done:
    free(node_ids);
    onnx__model_proto__free_unpacked(m, NULL);
    *out = g;
    return st;
}

engine_status onnx_import_file(const char *path, graph **out, engine_error *err)
{
    *out = NULL;
    char *buf;
    size_t size;
    engine_status st = file_read_regular(path, ONNX_MAX_FILE_BYTES, &buf, &size, NULL, err);
    if (st)
        return st;
    st = onnx_import_buffer(buf, size, path, out, err);
    free(buf);
    return st;
}
