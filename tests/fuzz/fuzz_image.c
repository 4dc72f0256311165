/* libFuzzer harness: image decoding and resampling, as the daemon does them.
 *
 * The bytes are an upload: JPEG, PNG or anything. They are decoded under
 * the daemon's kind of limits (smaller, so that each run stays quick),
 * then resized and normalised for a colour and a grey model, with and
 * without JPEG DCT scaling.
 */
#include <stdint.h>
#include <stdlib.h>

#include "image.h"
#include "preproc.h"

static void through(const uint8_t *data, size_t size, preproc_color color, preproc_resize resize,
                    preproc_dct dct)
{
    preproc_params p = {.width = 32, .height = 24, .color = color, .resize = resize,
                        .resize_shorter_side = 40, .scale = 1.0f / 255, .mean = {0.5f, 0.4f, 0.3f},
                        .std = {0.2f, 0.2f, 0.2f}, .jpeg_dct_scaling = dct};
    image_limits lim = {.max_pixels = 4000000, .max_scans = 64, .max_bytes = 64 << 20,
                        .max_cpu_ms = 2000};
    image_decode_hint hint = preproc_decode_hint(&p);
    image_u8 img;
    engine_error err;
    if (image_decode(data, size, color == PREPROC_GRAY ? IMAGE_GRAY : IMAGE_RGB, &lim, &hint,
                     &img, &err) == ENGINE_OK) {
        int ch = preproc_channels(&p);
        uint8_t *hwc = malloc((size_t)p.width * (size_t)p.height * (size_t)ch);
        float *chw = malloc(sizeof(float) * (size_t)p.width * (size_t)p.height * (size_t)ch);
        if (hwc && chw && preproc_resample(&img, &p, hwc, &err) == ENGINE_OK)
            preproc_normalize(hwc, &p, chw);
        free(hwc);
        free(chw);
    }
    image_free(&img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    through(data, size, PREPROC_RGB, PREPROC_SHORTER_SIDE_CROP, PREPROC_DCT_AUTO);
    through(data, size, PREPROC_GRAY, PREPROC_STRETCH, PREPROC_DCT_ON);
    through(data, size, PREPROC_BGR, PREPROC_STRETCH, PREPROC_DCT_OFF);
    return 0;
}
