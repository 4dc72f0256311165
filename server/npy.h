/* NumPy .npy files: the tensor format of `visiond run` and the tests.
 * Version 1-3 headers, little-endian float32 ('<f4'), float64 ('<f8', read
 * as float32) and int64 ('<i8'), C order. Every size in the header is
 * checked against the file before anything is allocated. */
#ifndef VISIOND_NPY_H
#define VISIOND_NPY_H

#include <stddef.h>

#include "../engine/tensor.h"

typedef struct {
    dtype_t dtype;
    shape_t shape;
    void *data;
} npy_array;

int npy_read(const char *path, npy_array *out, char *err, size_t errlen);
/* The same from a file's bytes in memory; `label` names it in errors. */
int npy_parse(const void *data, size_t size, const char *label, npy_array *out, char *err,
              size_t errlen);
int npy_write(const char *path, dtype_t dtype, const shape_t *shape, const void *data, char *err,
              size_t errlen);
void npy_free(npy_array *a);

#endif
