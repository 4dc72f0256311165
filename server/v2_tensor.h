/* OIP tensor datatypes converted at the edge, and the binary tensor data
 * extension's layouts (v2_tensor.c). */
#ifndef VISIOND_V2_TENSOR_H
#define VISIOND_V2_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    V2_BOOL, V2_U8, V2_U16, V2_U32, V2_U64, V2_I8, V2_I16, V2_I32, V2_I64,
    V2_F16, V2_F32, V2_F64, V2_BYTES
} v2_kind;

typedef struct {
    const char *name; /* the protocol's: "FP32", "UINT8", ... */
    int size;         /* bytes per element; 0 for BYTES */
    v2_kind kind;
} v2_dtype;

/* The datatype called `name`, or NULL. */
const v2_dtype *v2_dtype_find(const char *name);
/* n elements of type t, little-endian at src (any alignment), as float32. */
void v2_to_float(const v2_dtype *t, const uint8_t *src, int64_t n, float *dst);
float v2_half_to_float(uint16_t h);

typedef struct {
    const uint8_t *data;
    size_t len;
} v2_bytes_elem;

/* A BYTES tensor's binary data: exactly `want` elements, each a 4-byte
 * little-endian length and its bytes, filling len exactly. 0 or -1. */
int v2_bytes_split(const uint8_t *data, size_t len, int64_t want, v2_bytes_elem *out);
void v2_put_le32(uint8_t *p, uint32_t v);

#endif
