/* Shapes and element types.
 *
 * The engine computes in float32 only; int64 exists because ONNX graphs carry
 * shapes and indices as int64 tensors, which the engine folds to constants
 * before anything runs. Every shape that comes from a model file passes
 * through shape_check() so that later size arithmetic cannot overflow.
 */
#ifndef VISIOND_TENSOR_H
#define VISIOND_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define ENGINE_MAX_RANK 8
/* Largest element count of any one tensor: 2^31 floats is 8 GiB; on a
 * 32-bit CPU (the TK1) 2^27, so that an int64 tensor's bytes (8 per
 * element, 1 GiB) and a sum of two such stay inside a size_t there. */
#define ENGINE_MAX_ELEMENTS ((int64_t)1 << (SIZE_MAX > 0xFFFFFFFFu ? 31 : 27))

typedef enum {
    DTYPE_UNDEFINED = 0,
    DTYPE_FLOAT32 = 1, /* the ONNX TensorProto.DataType numbers */
    DTYPE_UINT8 = 2,   /* images, entering through OP_NORMALIZE_IMAGE only */
    DTYPE_INT64 = 7,
} dtype_t;

typedef struct {
    int rank;
    int64_t dim[ENGINE_MAX_RANK];
} shape_t;

size_t dtype_size(dtype_t t);
const char *dtype_name(dtype_t t);

/* Product of the dimensions (1 for a scalar). Callers only use it on shapes
 * that passed shape_check. */
int64_t shape_numel(const shape_t *s);
bool shape_equal(const shape_t *a, const shape_t *b);

/* Rejects negative dimensions, too many dimensions and element counts above
 * ENGINE_MAX_ELEMENTS; `what` names the tensor in the message. */
engine_status shape_check(const shape_t *s, const char *what, engine_error *err);

/* NumPy broadcasting of two shapes. */
engine_status shape_broadcast(const shape_t *a, const shape_t *b, shape_t *out, engine_error *err);

/* "1x3x224x224" ("scalar" for rank 0); returns buf. */
char *shape_format(const shape_t *s, char *buf, size_t n);

/* Normalises an axis in [-rank, rank) to [0, rank); -1 if out of range. */
int axis_normalize(int64_t axis, int rank);

#endif
