/* Declarations shared by the two halves of the ONNX importer:
 * onnx_import.c (model, tensors, graph wiring) and onnx_ops.c (operators). */
#ifndef VISIOND_ONNX_INTERNAL_H
#define VISIOND_ONNX_INTERNAL_H

#include "graph.h"
#include "onnx.pb-c.h"

/* Converts a TensorProto into (dtype, shape, owned data); float32, int64,
 * int32 (widened to int64) and double (narrowed to float32) are accepted. */
engine_status onnx_tensor_convert(const Onnx__TensorProto *t, const char *what, dtype_t *dt,
                                  shape_t *shape, void **data, engine_error *err);

/* Looks up the operator for op_type; NULL when visiond has no such operator. */
typedef struct onnx_op_def onnx_op_def;
const onnx_op_def *onnx_op_lookup(const char *op_type);
op_t onnx_op_kind(const onnx_op_def *def);
/* Checks input/output counts for the op and opset. */
engine_status onnx_op_check_arity(const onnx_op_def *def, const Onnx__NodeProto *np,
                                  engine_error *err);
/* Parses attributes into node->p / node->act and turns attribute-form
 * operands of older opsets into constant inputs (may grow node->inputs). */
engine_status onnx_op_parse(const onnx_op_def *def, graph *g, graph_node *node,
                            const Onnx__NodeProto *np, engine_error *err);

/* Makes value v the constant a Constant node defines. */
engine_status onnx_constant_value(graph *g, int v, const Onnx__NodeProto *np, engine_error *err);

#endif
