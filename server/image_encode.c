/* PNG and JPEG encoding in memory, and drawing; see image_encode.h. */
#include "image_encode.h"

#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void label_color(int i, uint8_t rgb[3])
{
    /* VOC's map: the bits of i spread over the top bits of r, g and b */
    int r = 0, g = 0, b = 0;
    for (int shift = 7; i && shift >= 0; shift--, i >>= 3) {
        r |= (i & 1) << shift;
        g |= ((i >> 1) & 1) << shift;
        b |= ((i >> 2) & 1) << shift;
    }
    rgb[0] = (uint8_t)r, rgb[1] = (uint8_t)g, rgb[2] = (uint8_t)b;
}

typedef struct {
    uint8_t *data;
    size_t len, cap;
    int failed;
} mem_out;

static void png_to_memory(png_structp png, png_bytep data, png_size_t n)
{
    mem_out *o = png_get_io_ptr(png);
    if (o->failed)
        return;
    if (o->len + n > o->cap) {
        size_t cap = (o->cap ? o->cap * 2 : 65536);
        while (cap < o->len + n)
            cap *= 2;
        uint8_t *d = realloc(o->data, cap);
        if (!d) {
            o->failed = 1;
            return;
        }
        o->data = d, o->cap = cap;
    }
    memcpy(o->data + o->len, data, n);
    o->len += n;
}

static void png_no_flush(png_structp png)
{
    (void)png;
}

int encode_mask_png(const uint16_t *mask, int w, int h, int classes, uint8_t **out, size_t *len)
{
    bool palette = classes <= 256;
    mem_out o = {0};
    uint8_t *row = malloc((size_t)w * 2);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!row || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(row);
        free(o.data);
        return -1;
    }
    png_set_write_fn(png, &o, png_to_memory, png_no_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, palette ? 8 : 16,
                 palette ? PNG_COLOR_TYPE_PALETTE : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) {
        png_color colors[256];
        for (int i = 0; i < classes; i++) {
            uint8_t c[3];
            label_color(i, c);
            colors[i] = (png_color){c[0], c[1], c[2]};
        }
        png_set_PLTE(png, info, colors, classes);
    }
    png_set_compression_level(png, 3); /* masks are flat: fast levels compress them well */
    png_write_info(png, info);
    for (int y = 0; y < h; y++) {
        const uint16_t *m = mask + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x++) {
            if (palette) {
                row[x] = (uint8_t)m[x];
            } else { /* PNG is big-endian */
                row[2 * x] = (uint8_t)(m[x] >> 8);
                row[2 * x + 1] = (uint8_t)m[x];
            }
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    if (o.failed) {
        free(o.data);
        return -1;
    }
    *out = o.data;
    *len = o.len;
    return 0;
}

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
} jpeg_fail;

static void jpeg_fail_exit(j_common_ptr cinfo)
{
    longjmp(((jpeg_fail *)cinfo->err)->jump, 1);
}

int encode_jpeg(const image_u8 *img, int quality, uint8_t **out, size_t *len)
{
    struct jpeg_compress_struct cinfo;
    jpeg_fail err;
    unsigned char *buf = NULL;
    unsigned long size = 0;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_fail_exit;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buf);
        return -1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buf, &size);
    cinfo.image_width = (JDIMENSION)img->width;
    cinfo.image_height = (JDIMENSION)img->height;
    cinfo.input_components = img->channels;
    cinfo.in_color_space = img->channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    /* full-resolution colour: 4:2:0 would smear thin coloured box lines */
    for (int c = 0; c < cinfo.num_components; c++)
        cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)img->width * (size_t)img->channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = img->pixels + cinfo.next_scanline * stride;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = buf;
    *len = size;
    return 0;
}

static void fill(image_u8 *img, int x0, int y0, int x1, int y1, const uint8_t c[3])
{
    x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > img->width ? img->width : x1, y1 = y1 > img->height ? img->height : y1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            memcpy(img->pixels + ((size_t)y * (size_t)img->width + (size_t)x) * 3, c, 3);
}

void draw_boxes(image_u8 *img, const detection *d, int n)
{
    int shorter = img->width < img->height ? img->width : img->height;
    int t = shorter / 250 > 2 ? shorter / 250 : 2; /* visible on a photo, not on top of it */
    for (int i = 0; i < n; i++) {
        uint8_t c[3];
        label_color(d[i].class_index + 1, c);
        int x0 = (int)d[i].box[0], y0 = (int)d[i].box[1];
        int x1 = (int)d[i].box[2], y1 = (int)d[i].box[3];
        fill(img, x0, y0, x1 + 1, y0 + t, c);
        fill(img, x0, y1 + 1 - t, x1 + 1, y1 + 1, c);
        fill(img, x0, y0, x0 + t, y1 + 1, c);
        fill(img, x1 + 1 - t, y0, x1 + 1, y1 + 1, c);
    }
}

void draw_mask(image_u8 *img, const uint16_t *mask)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < n; i++) {
        if (!mask[i])
            continue;
        uint8_t c[3];
        label_color(mask[i], c);
        uint8_t *p = img->pixels + i * 3;
        for (int k = 0; k < 3; k++)
            p[k] = (uint8_t)((p[k] + c[k] + 1) / 2);
    }
}
