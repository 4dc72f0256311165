/* JPEG and PNG decoding; see image.h. */
#include "image.h"

#include <stdbool.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *image_sniff(const void *data, size_t size)
{
    const unsigned char *p = data;
    if (size >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
        return "jpeg";
    if (size >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
        return "png";
    return NULL;
}

void image_free(image_u8 *img)
{
    free(img->pixels);
    img->pixels = NULL;
}

static engine_status check_size(int64_t w, int64_t h, int64_t max_pixels, engine_error *err)
{
    if (w <= 0 || h <= 0)
        return engine_fail(err, ENGINE_E_INVALID, "the image has no pixels");
    if (w * h > max_pixels)
        return engine_fail(err, ENGINE_E_INVALID,
                           "the image is %lldx%lld: more than the limit of %lld pixels",
                           (long long)w, (long long)h, (long long)max_pixels);
    return ENGINE_OK;
}

/* --- JPEG --- */

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_error;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_error *e = (jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void jpeg_on_message(j_common_ptr cinfo)
{
    (void)cinfo; /* warnings (e.g. premature end of data) are not errors */
}

/* The largest power-of-two reduction that keeps the hint's minimum sizes. */
static unsigned jpeg_reduction(unsigned w, unsigned h, const image_decode_hint *hint)
{
    if (!hint || (!hint->min_shorter && !hint->min_width && !hint->min_height))
        return 1;
    for (unsigned d = 8; d > 1; d /= 2) {
        unsigned dw = (w + d - 1) / d, dh = (h + d - 1) / d; /* libjpeg rounds up */
        unsigned shorter = dw < dh ? dw : dh;
        if (shorter >= (unsigned)hint->min_shorter && dw >= (unsigned)hint->min_width &&
            dh >= (unsigned)hint->min_height)
            return d;
    }
    return 1;
}

static engine_status decode_jpeg(const void *data, size_t size, image_format want,
                                 int64_t max_pixels, const image_decode_hint *hint,
                                 image_u8 *out, engine_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_error jerr;
    /* volatile: modified between setjmp and longjmp */
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    cinfo.err = jpeg_std_error(&jerr.mgr);
    jerr.mgr.error_exit = jpeg_on_error;
    jerr.mgr.output_message = jpeg_on_message;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return engine_fail(err, ENGINE_E_INVALID, "undecodable JPEG: %s", jerr.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    engine_status st = check_size(cinfo.image_width, cinfo.image_height, max_pixels, err);
    if (st) {
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    cinfo.scale_num = 1;
    cinfo.scale_denom = jpeg_reduction(cinfo.image_width, cinfo.image_height, hint);
    bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if (cmyk)
        cinfo.out_color_space = JCS_CMYK; /* converted below: libjpeg has no CMYK->RGB */
    else
        cinfo.out_color_space = want == IMAGE_GRAY ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, ch = (int)want;
    pixels = malloc((size_t)w * (size_t)h * (size_t)ch);
    row = malloc((size_t)w * (size_t)cinfo.output_components);
    if (!pixels || !row) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory decoding a %dx%d JPEG", w, h);
    }
    /* Adobe writes CMYK inverted (255 = no ink) and marks it so. */
    bool inverted = cmyk && cinfo.saw_Adobe_marker;
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        uint8_t *dst = pixels + (size_t)y * (size_t)w * (size_t)ch;
        JSAMPROW rows[1] = {cmyk ? row : dst};
        jpeg_read_scanlines(&cinfo, rows, 1);
        if (!cmyk)
            continue;
        for (int x = 0; x < w; x++) {
            int c = row[4 * x], m = row[4 * x + 1], yy = row[4 * x + 2], k = row[4 * x + 3];
            if (!inverted) {
                c = 255 - c, m = 255 - m, yy = 255 - yy, k = 255 - k;
            }
            /* now 255 = no ink: r = c' * k' / 255 */
            int r = c * k / 255, g = m * k / 255, b = yy * k / 255;
            if (ch == 3) {
                dst[3 * x] = (uint8_t)r, dst[3 * x + 1] = (uint8_t)g, dst[3 * x + 2] = (uint8_t)b;
            } else {
                dst[x] = (uint8_t)((299 * r + 587 * g + 114 * b + 500) / 1000);
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    *out = (image_u8){.width = w, .height = h, .channels = ch, .pixels = pixels};
    return ENGINE_OK;
}

/* --- PNG, through libpng's simplified API (it handles palettes, 16-bit
 * samples, gamma and alpha) --- */

static engine_status decode_png(const void *data, size_t size, image_format want,
                                int64_t max_pixels, image_u8 *out, engine_error *err)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, data, size))
        return engine_fail(err, ENGINE_E_INVALID, "undecodable PNG: %s", img.message);
    engine_status st = check_size(img.width, img.height, max_pixels, err);
    if (st) {
        png_image_free(&img);
        return st;
    }
    img.format = want == IMAGE_GRAY ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    size_t bytes = PNG_IMAGE_SIZE(img);
    uint8_t *pixels = malloc(bytes);
    if (!pixels) {
        png_image_free(&img);
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory decoding a PNG");
    }
    png_color black = {0, 0, 0};
    if (!png_image_finish_read(&img, &black, pixels, 0, NULL)) {
        free(pixels);
        return engine_fail(err, ENGINE_E_INVALID, "undecodable PNG: %s", img.message);
    }
    *out = (image_u8){.width = (int)img.width, .height = (int)img.height, .channels = (int)want,
                      .pixels = pixels};
    return ENGINE_OK;
}

engine_status image_decode(const void *data, size_t size, image_format want, int64_t max_pixels,
                           const image_decode_hint *hint, image_u8 *out, engine_error *err)
{
    memset(out, 0, sizeof *out);
    const char *kind = image_sniff(data, size);
    if (!kind)
        return engine_fail(err, ENGINE_E_INVALID, "the data is neither a JPEG nor a PNG image");
    if (kind[0] == 'j')
        return decode_jpeg(data, size, want, max_pixels, hint, out, err);
    return decode_png(data, size, want, max_pixels, out, err);
}
