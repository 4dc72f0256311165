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
/* letterbox: the whole image scaled to fit (aspect kept), centred, the
 * rest of the input filled with pad_value (YOLO's preprocessing). */
typedef enum { PREPROC_SHORTER_SIDE_CROP = 0, PREPROC_STRETCH, PREPROC_LETTERBOX } preproc_resize;
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
    int pad_value;                /* PREPROC_LETTERBOX: the border's byte value (every channel) */
} preproc_params;

/* Where an image's pixels land in the model's input, so that answers in
 * input pixels (boxes, masks) can be mapped back to the image:
 *   input_x = image_x * scale_x + offset_x   (likewise y)
 * The image is resized to resized_w x resized_h; of that, the input shows
 * the window at (-offset_x, -offset_y) (a crop: offset <= 0) or the whole
 * of it placed at (offset_x, offset_y) (a letterbox: offset >= 0). */
typedef struct {
    int image_w, image_h;
    int resized_w, resized_h;
    int offset_x, offset_y;
    double scale_x, scale_y; /* resized / image */
} preproc_geometry;

/* The geometry preproc_resample uses for an image of that size. */
preproc_geometry preproc_geometry_of(const preproc_params *p, int image_w, int image_h);
/* The geometry of a decoded image against the size in its file (they
 * differ when a JPEG was decoded scaled): answers map to the file's size. */
preproc_geometry preproc_geometry_of_image(const preproc_params *p, const image_u8 *img);

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
