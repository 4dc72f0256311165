/* Evaluating nodes whose inputs are all known before anything runs.
 *
 * Load-time passes use it to fold constant subgraphs, and plans use it for
 * what becomes constant once the batch size is fixed (Shape and the int64
 * arithmetic exporters build on it). Only data-movement, shape arithmetic
 * and element-wise operators are evaluated here; heavy float operators on
 * constants are left to the backend.
 */
#ifndef VISIOND_CONST_EVAL_H
#define VISIOND_CONST_EVAL_H

#include "shape_infer.h"

bool const_eval_supported(op_t op);

/* `out` holds the shapes shape_infer_node computed; on success each output's
 * data points at a fresh tensor_alloc'd payload the caller owns. */
engine_status const_eval_node(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                              const step_params *r, engine_error *err);

#endif
