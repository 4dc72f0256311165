/* Image decoding: JPEG (libjpeg-turbo) and PNG (libpng) bytes to 8-bit
 * pixels, RGB or grayscale.
 *
 * The decoded size is read from the file header and checked against a
 * caller's bound before any pixel buffer is allocated, so a small file
 * claiming to be 60000x60000 costs nothing; the number of progressive
 * scans and the decode time are bounded too (image_limits). Grayscale, RGBA, CMYK (Adobe
 * inverted or not) and progressive JPEGs, palette and 16-bit PNGs are
 * accepted; libpng composites any alpha onto black. EXIF orientation is
 * not applied: pixels come out in file order.
 */
#ifndef VISIOND_IMAGE_H
#define VISIOND_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef enum { IMAGE_RGB = 3, IMAGE_GRAY = 1 } image_format;

typedef struct {
    int width, height, channels; /* channels: 1 or 3 */
    uint8_t *pixels;             /* height rows of width*channels bytes */
    int full_width, full_height; /* the size in the file: larger when decoded scaled (hint) */
} image_u8;

/* Recognises JPEG and PNG by their magic bytes. */
const char *image_sniff(const void *data, size_t size); /* "jpeg", "png" or NULL */

/* The smallest image the caller will still downscale from: a JPEG may then
 * be decoded at 1/2, 1/4 or 1/8 of its size straight from its DCT
 * coefficients (libjpeg's scaled decoding, as PIL's draft mode), which
 * costs a fraction of a full decode plus a long resize. Zeros: full size. */
typedef struct {
    int min_width, min_height; /* both decoded sides at least these */
    int min_shorter;           /* the decoded shorter side at least this */
} image_decode_hint;

/* What one decode may cost. Untrusted images are small files that can ask
 * for a lot of work: a 196 KB progressive JPEG with thousands of scans
 * took 38 s at 7000x7000, and a 45 KB one claiming 7071x7071 pixels had
 * its decoder fill a 150 MB buffer from data that was not there. */
typedef struct {
    int64_t max_pixels;  /* width x height at full size */
    int64_t max_bytes;   /* the decoded pixels, and the decoder's own buffers (a progressive
                            JPEG keeps every coefficient: 2-6 bytes per pixel), each; 0: none */
    int max_scans;       /* progressive JPEG scans; 0: no limit */
    int64_t max_cpu_ms;  /* CPU time of the decoding thread (not wall time, so a busy
                            machine does not fail good images); 0: no limit */
} image_limits;

/* Decodes into `want` (RGB or gray). Fails with ENGINE_E_INVALID for data
 * that is not a JPEG or PNG, is corrupt or truncated (data ending before
 * the last pixel), and for images over a limit (each named in the message).
 * hint may be NULL. */
engine_status image_decode(const void *data, size_t size, image_format want,
                           const image_limits *limits, const image_decode_hint *hint,
                           image_u8 *out, engine_error *err);
void image_free(image_u8 *img);

#endif
