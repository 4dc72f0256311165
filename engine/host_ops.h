/* Reference implementations, on host memory, of the operators that are not
 * worth a tuned kernel: comparisons and logic, Where, Expand, Tile, Range,
 * ConstantOfShape, GatherElements, ScatterND, Einsum, the reductions, TopK,
 * ArgMax/ArgMin, NonMaxSuppression, PRelu, Pow/Mod/Min/Max and Cast.
 *
 * Written once and used twice, like tensor_ops.c: the engine folds
 * constants with them (const_eval.c) and the CPU backend runs them when
 * their inputs are only known at run time. Every routine handles float32
 * and int64 (booleans are int64 0/1) and checks indices it reads from data.
 */
#ifndef VISIOND_HOST_OPS_H
#define VISIOND_HOST_OPS_H

#include "shape_infer.h"

bool host_op_supported(op_t op);

/* in/out as shape_infer_node described them; each out[k].data points at
 * room for the output (out[k].dtype UNDEFINED: not wanted). Fails only on
 * data the shapes could not vouch for (an index out of range). */
engine_status host_op_run(const graph_node *n, const tensor_desc *in, const tensor_desc *out,
                          const step_params *r, engine_error *err);

#endif
