/* libFuzzer harness: the .npy reader behind `visiond run --input`.
 *
 * A .npy header states a shape; the reader must check it against the
 * bytes that follow before allocating (a 150-byte file once asked for
 * 7 GB), and never read past them.
 */
#include <stdint.h>

#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npy_array a;
    char err[256];
    if (npy_parse(data, size, "fuzz.npy", &a, err, sizeof err) == 0) {
        size_t n = (size_t)shape_numel(&a.shape) * dtype_size(a.dtype);
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < n; i++) /* every byte the shape promises is there */
            sum += ((const uint8_t *)a.data)[i];
        (void)sum;
        npy_free(&a);
    }
    return 0;
}
