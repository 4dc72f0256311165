/* Image preprocessing: decoded pixels -> the model's input tensor.
 *
 * Two stages, so that a GPU backend can take over the second: resample
 * (resize and crop, on the CPU, 8-bit in and out, so images travel to a
 * device as bytes) and normalise (8-bit HWC -> float CHW with
 * (v * scale - mean[c]) / std[c], RGB, BGR or gray channel order).
 *
 * Resampling is separable and antialiased: a triangle (bilinear) filter
 * whose support widens with the downscale factor, as PIL and torchvision
 * resize, so a 4000-pixel photo shrinks without aliasing. Sizes follow
 * torchvision: the shorter side becomes resize_shorter_side, the longer
 * one is scaled and truncated, and the crop is centred (offsets rounded
 * half to even).
 */
#ifndef VISIOND_PREPROC_H
#define VISIOND_PREPROC_H

#include <stdbool.h>
#include <stdint.h>

#include "image.h"

typedef enum { PREPROC_RGB = 0, PREPROC_BGR, PREPROC_GRAY } preproc_color;
typedef enum { PREPROC_SHORTER_SIDE_CROP = 0, PREPROC_STRETCH } preproc_resize;
/* JPEG decoding at 1/2..1/8 size from the DCT coefficients: never, whenever
 * what is left is enough for the resize, or (auto) only when the image is
 * at least 4x what the resize needs, so that the resampler still has 2x. */
typedef enum { PREPROC_DCT_OFF = 0, PREPROC_DCT_ON, PREPROC_DCT_AUTO } preproc_dct;

typedef struct preproc_params {
    int width, height;            /* of the model input */
    preproc_color color;
    preproc_resize resize;
    int resize_shorter_side;      /* PREPROC_SHORTER_SIDE_CROP: >= max(width, height) */
    float scale;
    float mean[3], std[3];
    preproc_dct jpeg_dct_scaling; /* let JPEGs decode at 1/2..1/8 size when still large enough */
} preproc_params;

static inline int preproc_channels(const preproc_params *p)
{
    return p->color == PREPROC_GRAY ? 1 : 3;
}

/* What the resampler needs of a decoded image (image_decode's hint): the
 * shorter side at least resize_shorter_side, or both sides at least the
 * input size when stretching; twice that with PREPROC_DCT_AUTO. All zeros
 * when jpeg_dct_scaling is off. */
image_decode_hint preproc_decode_hint(const preproc_params *p);

/* img (RGB or gray as p->color asks) -> width x height x channels bytes. */
engine_status preproc_resample(const image_u8 *img, const preproc_params *p, uint8_t *out,
                               engine_error *err);
/* width x height x channels bytes -> channels x height x width floats. */
void preproc_normalize(const uint8_t *hwc, const preproc_params *p, float *chw);
/* The same for one output channel c of `plane` pixels: v * mul[c] + add[c]
 * (the graph's NormalizeImage node runs this on the CPU). */
void preproc_normalize_channel(const uint8_t *hwc, size_t plane, int channels, int c,
                               const float *mul, const float *add, bool bgr, float *chw);

#endif
