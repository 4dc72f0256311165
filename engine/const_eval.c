/* Constant evaluation; see const_eval.h. */
#include "const_eval.h"

#include <string.h>

#include "host_ops.h"
#include "tensor_ops.h"

#define CONCAT_FOLD_MAX_INPUTS 4096

bool const_eval_supported(op_t op)
{
    switch (op) {
    case OP_SHAPE: case OP_GATHER: case OP_UNSQUEEZE: case OP_SQUEEZE: case OP_CONCAT:
    case OP_SLICE: case OP_CAST: case OP_RESHAPE: case OP_FLATTEN: case OP_IDENTITY:
    case OP_DROPOUT: case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_TRANSPOSE:
    case OP_SPLIT: case OP_PAD:
        return true;
    default:
        return op_is_unary_activation(op) || host_op_supported(op);
    }
}

engine_status const_eval_node(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                              const step_params *r, engine_error *err)
{
    for (int i = 0; i < n->n_outputs; i++) {
        if (out[i].dtype == DTYPE_UNDEFINED)
            continue;
        size_t bytes = (size_t)shape_numel(&out[i].shape) * dtype_size(out[i].dtype);
        void *p = tensor_alloc(bytes);
        if (!p) {
            for (int k = 0; k < i; k++)
                tensor_free((void *)out[k].data);
            return engine_fail(err, ENGINE_E_NOMEM, "out of memory folding constants");
        }
        out[i].data = p;
    }
    void *o = (void *)out[0].data;
    const void *x = in[0].data;
    size_t elem = dtype_size(in[0].dtype);
    int64_t numel = shape_numel(&in[0].shape);
    switch (n->op) {
    case OP_SHAPE: {
        int64_t s = n->p.shape.start, rank = in[0].shape.rank;
        if (s < 0)
            s += rank;
        if (s < 0)
            s = 0;
        for (int64_t i = 0; i < out[0].shape.dim[0]; i++)
            ((int64_t *)o)[i] = in[0].shape.dim[s + i];
        break;
    }
    case OP_GATHER:
        nd_gather(o, x, &in[0].shape, r->axis, in[1].data, shape_numel(&in[1].shape), elem);
        break;
    case OP_UNSQUEEZE: case OP_SQUEEZE: case OP_RESHAPE: case OP_FLATTEN: case OP_IDENTITY:
    case OP_DROPOUT:
        memcpy(o, x, (size_t)numel * elem);
        break;
    case OP_CONCAT: {
        const void *srcs[CONCAT_FOLD_MAX_INPUTS];
        const shape_t *shapes[CONCAT_FOLD_MAX_INPUTS];
        if (n->n_inputs > CONCAT_FOLD_MAX_INPUTS)
            return engine_fail(err, ENGINE_E_UNSUPPORTED, "constant Concat of %d inputs",
                               n->n_inputs);
        for (int i = 0; i < n->n_inputs; i++) {
            srcs[i] = in[i].data;
            shapes[i] = &in[i].shape;
        }
        nd_concat(o, srcs, shapes, n->n_inputs, r->axis, elem);
        break;
    }
    case OP_SPLIT: {
        void *dsts[SPLIT_MAX_OUTPUTS];
        const shape_t *shapes[SPLIT_MAX_OUTPUTS];
        for (int i = 0; i < n->n_outputs; i++) {
            dsts[i] = (void *)out[i].data;
            shapes[i] = &out[i].shape;
        }
        nd_split(dsts, shapes, n->n_outputs, x, r->axis, elem);
        break;
    }
    case OP_SLICE:
        nd_slice(o, x, &in[0].shape, &out[0].shape, r->slice.start, r->slice.step, elem);
        break;
    case OP_TRANSPOSE:
        nd_transpose(o, x, &in[0].shape, r->transpose.perm, elem);
        break;
    case OP_PAD: {
        int64_t fill_i = (int64_t)r->pad.value;
        const void *fill = in[0].dtype == DTYPE_INT64 ? (const void *)&fill_i : &r->pad.value;
        nd_pad(o, x, &in[0].shape, &out[0].shape, r->pad.begin, n->p.pad, fill, elem);
        break;
    }
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV:
        if (in[0].dtype == DTYPE_FLOAT32)
            nd_binary_f32(n->op, o, &out[0].shape, in[0].data, &in[0].shape, in[1].data,
                          &in[1].shape);
        else
            nd_binary_i64(n->op, o, &out[0].shape, in[0].data, &in[0].shape, in[1].data,
                          &in[1].shape);
        break;
    default:
        if (host_op_supported(n->op)) {
            engine_status st = host_op_run(n, in, out, r, err);
            if (st)
                for (int i = 0; i < n->n_outputs; i++)
                    tensor_free((void *)out[i].data);
            return st;
        }
        if (op_is_unary_activation(n->op)) {
            for (int64_t i = 0; i < numel; i++)
                ((float *)o)[i] = act_apply(&n->act, ((const float *)x)[i]);
            break;
        }
        for (int i = 0; i < n->n_outputs; i++)
            tensor_free((void *)out[i].data);
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "cannot fold %s", op_name(n->op));
    }
    return ENGINE_OK;
}
