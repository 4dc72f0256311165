/* Answers that are images: a segmentation mask as a PNG (libpng) and a
 * picture with results drawn on it as a JPEG (libjpeg-turbo), encoded in
 * memory; plus the drawing itself (boxes, a mask blended over the photo)
 * and the colours both share, so a mask PNG and a rendered JPEG agree. */
#ifndef VISIOND_IMAGE_ENCODE_H
#define VISIOND_IMAGE_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/detect.h"
#include "../engine/image.h"

/* Class i's colour (PASCAL VOC's colour map: 0 black, 1 dark red, ...). */
void label_color(int i, uint8_t rgb[3]);

/* A mask of class indices -> PNG: 8-bit with the palette above when
 * classes <= 256, else 16-bit grayscale; pixel values are the indices.
 * *out is malloc'd. -1 when out of memory or libpng fails. */
int encode_mask_png(const uint16_t *mask, int w, int h, int classes, uint8_t **out,
                    size_t *len);

/* RGB pixels -> baseline JPEG at `quality`. -1 on failure. */
int encode_jpeg(const image_u8 *img, int quality, uint8_t **out, size_t *len);

/* Drawing on an RGB image: box outlines in their class's colour (class +
 * 1, so class 0 is not black), and a mask blended at half strength
 * (label 0, background, left as it is). */
void draw_boxes(image_u8 *img, const detection *d, int n);
void draw_mask(image_u8 *img, const uint16_t *mask);

#endif
