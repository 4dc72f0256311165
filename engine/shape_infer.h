/* Per-operator shape and type inference.
 *
 * Given the dtype and shape of each input (and the data of those that are
 * constant, which Reshape, Slice, Pad and friends need), computes each
 * output's dtype and shape, the step parameters that depend on shapes, and
 * the step's FLOPs. Every inconsistency in the model surfaces here as an
 * error naming what disagrees.
 */
#ifndef VISIOND_SHAPE_INFER_H
#define VISIOND_SHAPE_INFER_H

#include "graph.h"
#include "plan.h"

#define SPLIT_MAX_OUTPUTS 1024

typedef struct {
    dtype_t dtype;    /* DTYPE_UNDEFINED for an absent optional input */
    shape_t shape;
    const void *data; /* non-NULL when the value is constant */
} tensor_desc;

engine_status shape_infer_node(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                               step_params *r, int64_t *flops, engine_error *err);

/* Which inputs of an op must be constant when the node runs (weights,
 * shapes, axes, bounds); bit k set for input k. */
uint32_t op_const_inputs(op_t op);

/* Which operators take or make int64 tensors at run time (indices,
 * booleans, data movement); every other runtime step is float32 only. */
bool op_runtime_int64(op_t op);

/* Reads a constant int64 1-D (or scalar) tensor into vals. */
engine_status shape_const_ints(const tensor_desc *d, const char *what, int64_t *vals, int max,
                               int *count, engine_error *err);

/* The operators of transformers, segmentation and detection models
 * (shape_infer_ext.c); ENGINE_E_UNSUPPORTED with no message for others. */
engine_status shape_infer_ext(const graph_node *n, const tensor_desc *in, tensor_desc *out,
                              step_params *r, int64_t *flops, engine_error *err);

/* Sliding window arithmetic shared with the backends: output length of one
 * spatial axis and the pads actually applied. */
engine_status window_resolve(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                             auto_pad_t auto_pad, int64_t pad_begin, int64_t pad_end,
                             bool ceil_mode, int64_t *out, int64_t *res_begin, int64_t *res_end,
                             engine_error *err);

#endif
