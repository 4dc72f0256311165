/* libFuzzer harness: the ONNX loader, and one run of what loads.
 *
 * Every model file is untrusted input: whatever the bytes, loading must
 * end in a model or a one-line error, never a crash, a sanitizer report or
 * a hang. Models that load and are small enough to run in a millisecond
 * or so are also run once on zeros, so shapes the loader accepted are
 * checked against what the kernels do with them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define MAX_RUN_FLOPS 20000000LL
#define MAX_RUN_BYTES (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    engine_options o = {.device = "cpu", .max_batch = 1, .threads = 1};
    engine *e;
    engine_error err;
    if (engine_load_buffer(data, size, "fuzz.onnx", &o, &e, &err))
        return 0;
    engine_model_summary info;
    int ni = engine_input_count(e), no = engine_output_count(e);
    if (ni > 8 || no > 8 || engine_model_info(e, engine_max_batch(e), &info, &err) ||
        info.flops > MAX_RUN_FLOPS || info.peak_activation_bytes > MAX_RUN_BYTES) {
        engine_free(e);
        return 0;
    }
    void *in[8] = {0}, *out[8] = {0};
    bool ok = true;
    int batch = engine_max_batch(e);
    for (int k = 0; k < ni && ok; k++) {
        engine_tensor_info t;
        engine_input_info(e, k, &t);
        size_t n = 1;
        for (int d = 0; d < t.rank; d++)
            n *= (size_t)(d == 0 && t.dims[d] < 0 ? batch : t.dims[d] > 0 ? t.dims[d] : 1);
        ok = n <= MAX_RUN_BYTES / 8 && (in[k] = calloc(n, 8)) != NULL;
    }
    for (int k = 0; k < no && ok; k++) {
        engine_tensor_info t;
        ok = engine_output_info(e, k, batch, &t, &err) == ENGINE_OK;
        size_t n = 1;
        for (int d = 0; ok && d < t.rank; d++)
            n *= (size_t)(t.dims[d] > 0 ? t.dims[d] : 1);
        ok = ok && n <= MAX_RUN_BYTES / 8 && (out[k] = calloc(n, 8)) != NULL;
    }
    if (ok)
        engine_run(e, batch, (const float *const *)in, out, &err);
    for (int k = 0; k < 8; k++) {
        free(in[k]);
        free(out[k]);
    }
    engine_free(e);
    return 0;
}
