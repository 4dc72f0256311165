/* The OIP datatypes converted at the edge (server/v2_tensor.c): every one
 * of the 65536 half-precision values against the compiler's own _Float16
 * conversion (where the target has one; 32-bit ARM's GCC has not, so there
 * the reference is IEEE 754's definition through ldexp), little-endian loads of each integer width and sign, and the
 * BYTES layout's bounds. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "v2_tensor.h"

static float half_reference(uint16_t h)
{
#ifdef __FLT16_MAX__
    _Float16 ref;
    memcpy(&ref, &h, 2);
    return (float)ref;
#else
    int e = (h >> 10) & 31, m = h & 1023;
    float mag = e == 31 ? (m ? NAN : INFINITY) : e == 0 ? ldexpf((float)m, -24)
                                                        : ldexpf((float)(1024 + m), e - 25);
    return h & 0x8000 ? -mag : mag;
#endif
}

static void every_half(void)
{
    for (uint32_t bits = 0; bits < 65536; bits++) {
        uint16_t h = (uint16_t)bits;
        float want = half_reference(h), got = v2_half_to_float(h);
        if (isnan(want))
            CHECK(isnan(got));
        else
            CHECK(memcmp(&want, &got, 4) == 0); /* -0 stays -0 */
    }
    /* through the conversion of a buffer, unaligned */
    uint8_t buf[5] = {0, 0x00, 0x3c, 0x00, 0xc0}; /* 1.0, -2.0 */
    float out[2];
    v2_to_float(v2_dtype_find("FP16"), buf + 1, 2, out);
    CHECK(out[0] == 1.0f && out[1] == -2.0f);
}

static void integers(void)
{
    const uint8_t le[8] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    float out;
    v2_to_float(v2_dtype_find("INT8"), le, 1, &out);
    CHECK(out == -2.0f);
    v2_to_float(v2_dtype_find("UINT8"), le, 1, &out);
    CHECK(out == 254.0f);
    v2_to_float(v2_dtype_find("INT16"), le, 1, &out);
    CHECK(out == -2.0f);
    v2_to_float(v2_dtype_find("UINT16"), le, 1, &out);
    CHECK(out == 65534.0f);
    v2_to_float(v2_dtype_find("INT32"), le, 1, &out);
    CHECK(out == -2.0f);
    v2_to_float(v2_dtype_find("INT64"), le, 1, &out);
    CHECK(out == -2.0f);
    v2_to_float(v2_dtype_find("UINT64"), le, 1, &out);
    CHECK(out == 18446744073709551614.0f);
    const uint8_t one[8] = {1, 0, 0, 0, 0, 0, 0xf0, 0x3f}; /* 1 as BOOL; 1.0 as FP64 (+tiny) */
    v2_to_float(v2_dtype_find("BOOL"), one, 1, &out);
    CHECK(out == 1.0f);
    v2_to_float(v2_dtype_find("FP64"), one, 1, &out);
    CHECK(out == 1.0f);
    const uint8_t f32[4] = {0x00, 0x00, 0x80, 0xbf}; /* -1.0f */
    v2_to_float(v2_dtype_find("FP32"), f32, 1, &out);
    CHECK(out == -1.0f);
    CHECK(!v2_dtype_find("FP8") && !v2_dtype_find(NULL) && !v2_dtype_find("fp32"));
    CHECK(v2_dtype_find("BYTES")->size == 0);
}

static void bytes_layout(void)
{
    const uint8_t two[] = {3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0};
    v2_bytes_elem e[3];
    CHECK(v2_bytes_split(two, sizeof two, 2, e) == 0);
    CHECK(e[0].len == 3 && memcmp(e[0].data, "abc", 3) == 0 && e[1].len == 0);
    CHECK(v2_bytes_split(two, sizeof two, 1, e) == -1);      /* bytes left over */
    CHECK(v2_bytes_split(two, sizeof two, 3, e) == -1);      /* one missing */
    CHECK(v2_bytes_split(two, sizeof two - 1, 2, e) == -1);  /* a short length */
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'x'};    /* a length past the end */
    CHECK(v2_bytes_split(huge, sizeof huge, 1, e) == -1);
    uint8_t le[4];
    v2_put_le32(le, 0x01020304);
    CHECK(le[0] == 4 && le[3] == 1);
}

int main(void)
{
    every_half();
    integers();
    bytes_layout();
    printf("test_v2_tensor: ok\n");
    return 0;
}
