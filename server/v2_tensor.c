/* The Open Inference Protocol's tensor datatypes at the edge, and the
 * binary tensor data extension's byte layouts.
 *
 * Models take float32 tensors; a client may send any numeric datatype
 * (FP16 from a GPU pipeline, UINT8 pixels, INT64 ids), in JSON or as
 * binary data: little-endian, row major, no padding (Triton's binary data
 * extension). Each is converted to float32 here, once, into the job's
 * buffer. BYTES elements are a 4-byte little-endian length and the bytes.
 * Written by hand: no Debian library converts between these layouts, and
 * half-precision needs a few lines only.
 */
#include "v2_tensor.h"

#include <math.h>
#include <string.h>

static const v2_dtype dtypes[] = {
    {"BOOL", 1, V2_BOOL},   {"UINT8", 1, V2_U8},    {"UINT16", 2, V2_U16},
    {"UINT32", 4, V2_U32},  {"UINT64", 8, V2_U64},  {"INT8", 1, V2_I8},
    {"INT16", 2, V2_I16},   {"INT32", 4, V2_I32},   {"INT64", 8, V2_I64},
    {"FP16", 2, V2_F16},    {"FP32", 4, V2_F32},    {"FP64", 8, V2_F64},
    {"BYTES", 0, V2_BYTES},
};

const v2_dtype *v2_dtype_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return &dtypes[i];
    return NULL;
}

/* Little-endian loads that do not care about alignment or the host. */
static uint64_t load_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* IEEE 754 binary16 to float: normals, subnormals, infinities, NaN. */
float v2_half_to_float(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
    float v;
    if (exp == 0)
        v = ldexpf((float)mant, -24); /* subnormal: mant x 2^-24 */
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexpf((float)(mant | 1024), exp - 25);
    return sign ? -v : v;
}

void v2_to_float(const v2_dtype *t, const uint8_t *src, int64_t n, float *dst)
{
    if (t->kind == V2_F32) {
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)load_le(src + 4 * i, 4);
            memcpy(&dst[i], &bits, 4);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *p = src + (size_t)i * t->size;
        uint64_t u = load_le(p, t->size);
        switch (t->kind) {
        case V2_BOOL: dst[i] = u != 0; break;
        case V2_U8: case V2_U16: case V2_U32: case V2_U64: dst[i] = (float)u; break;
        case V2_I8: dst[i] = (int8_t)u; break;
        case V2_I16: dst[i] = (int16_t)u; break;
        case V2_I32: dst[i] = (float)(int32_t)u; break;
        case V2_I64: dst[i] = (float)(int64_t)u; break;
        case V2_F16: dst[i] = v2_half_to_float((uint16_t)u); break;
        case V2_F64: {
            double d;
            memcpy(&d, &u, 8);
            dst[i] = (float)d;
            break;
        }
        default: dst[i] = 0; break;
        }
    }
}

int v2_bytes_split(const uint8_t *data, size_t len, int64_t want, v2_bytes_elem *out)
{
    size_t pos = 0;
    for (int64_t i = 0; i < want; i++) {
        if (len - pos < 4)
            return -1;
        uint64_t n = load_le(data + pos, 4);
        pos += 4;
        if (n > len - pos)
            return -1;
        out[i] = (v2_bytes_elem){data + pos, (size_t)n};
        pos += (size_t)n;
    }
    return pos == len ? 0 : -1;
}

void v2_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
