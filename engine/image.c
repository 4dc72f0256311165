/* JPEG and PNG decoding; see image.h. */
#define _GNU_SOURCE /* fopencookie: libpng reads through a stream that checks the clock */
#include "image.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "clock.h"

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

static engine_status check_bytes(int64_t bytes, const image_limits *lim, engine_error *err)
{
    if (lim->max_bytes > 0 && bytes > lim->max_bytes)
        return engine_fail(err, ENGINE_E_INVALID,
                           "decoding the image needs %lld bytes: more than the limit of %lld",
                           (long long)bytes, (long long)lim->max_bytes);
    return ENGINE_OK;
}

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* When a decode started, on the wall clock and in the thread's CPU time. */
typedef struct {
    int64_t wall, cpu;
} decode_start;

static decode_start started(const image_limits *lim)
{
    return lim->max_cpu_ms > 0 ? (decode_start){clock_monotonic_ns(), cpu_ns()}
                               : (decode_start){0, 0};
}

/* Whether the decode has used its CPU time. The thread's CPU clock is a
 * system call (a few microseconds in a VM, and this is asked per row), the
 * monotonic clock is not; a thread cannot have used more CPU time than
 * wall time, so the CPU clock is only read once the wall clock says it may
 * be over. */
static bool over_time(const image_limits *lim, decode_start start)
{
    int64_t limit = lim->max_cpu_ms * 1000000;
    return lim->max_cpu_ms > 0 && clock_monotonic_ns() - start.wall > limit &&
           cpu_ns() - start.cpu > limit;
}

/* --- JPEG --- */

typedef struct {
    struct jpeg_error_mgr mgr;
    struct jpeg_progress_mgr progress;
    const image_limits *limits;
    decode_start start;
    jmp_buf jump;
    bool own_message; /* message says it all (a limit, truncation), no prefix */
    char message[JMSG_LENGTH_MAX + 64];
} jpeg_error;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_error *e = (jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void __attribute__((format(printf, 2, 3))) jpeg_stop(j_common_ptr cinfo, const char *fmt,
                                                            ...)
{
    jpeg_error *e = (jpeg_error *)cinfo->err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->own_message = true;
    longjmp(e->jump, 1);
}

/* Warnings are not errors (a few stray bytes before a marker, as many
 * cameras write), except data ending early: libjpeg would go on with grey
 * pixels, and answering for an image that is not there is wrong. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        jpeg_stop(cinfo, "truncated JPEG: the data ends before the image does");
}

/* Called by libjpeg between scans and rows: where the scan count and the
 * time are checked. */
static void jpeg_on_progress(j_common_ptr cinfo)
{
    jpeg_error *e = (jpeg_error *)cinfo->err;
    if (cinfo->is_decompressor) {
        j_decompress_ptr d = (j_decompress_ptr)cinfo;
        if (e->limits->max_scans > 0 && d->input_scan_number > e->limits->max_scans)
            jpeg_stop(cinfo, "the JPEG has more than %d progressive scans (the limit)",
                      e->limits->max_scans);
    }
    if (over_time(e->limits, e->start))
        jpeg_stop(cinfo, "decoding the image took more than its limit of %lld ms",
                  (long long)e->limits->max_cpu_ms);
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
                                 const image_limits *lim, const image_decode_hint *hint,
                                 image_u8 *out, engine_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_error jerr = {.limits = lim, .start = started(lim)};
    /* volatile: modified between setjmp and longjmp */
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    cinfo.err = jpeg_std_error(&jerr.mgr);
    jerr.mgr.error_exit = jpeg_on_error;
    jerr.mgr.emit_message = jpeg_on_message;
    jerr.progress.progress_monitor = jpeg_on_progress;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        if (jerr.own_message)
            return engine_fail(err, ENGINE_E_INVALID, "%s", jerr.message);
        if (jerr.mgr.msg_code == JERR_NO_BACKING_STORE) /* over max_memory_to_use */
            return engine_fail(err, ENGINE_E_INVALID,
                               "decoding the JPEG needs more than the limit of %lld bytes",
                               (long long)lim->max_bytes);
        return engine_fail(err, ENGINE_E_INVALID, "undecodable JPEG: %s", jerr.message);
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &jerr.progress;
    if (lim->max_bytes > 0) /* libjpeg fails (it has no backing store) past this */
        cinfo.mem->max_memory_to_use = (long)lim->max_bytes;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    engine_status st = check_size(cinfo.image_width, cinfo.image_height, lim->max_pixels, err);
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
    int full_w = (int)cinfo.image_width, full_h = (int)cinfo.image_height;
    if ((st = check_bytes((int64_t)w * h * ch, lim, err))) {
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
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
    *out = (image_u8){.width = w, .height = h, .channels = ch, .pixels = pixels,
                      .full_width = full_w, .full_height = full_h};
    return ENGINE_OK;
}

/* --- PNG, through libpng's simplified API (it handles palettes, 16-bit
 * samples, gamma and alpha). The simplified API has no progress hook, so
 * libpng reads the file through a stdio stream whose read function checks
 * the time limit: the decoder asks for compressed data every few
 * kilobytes, and its work per byte is bounded (at most 1032 bytes out per
 * byte in, and the pixel limit bounds the output). --- */

typedef struct {
    const unsigned char *data;
    size_t size, at;
    const image_limits *limits;
    decode_start start;
    bool late;
    bool eof; /* libpng asked for bytes past the end */
} png_source;

static ssize_t png_source_read(void *cookie, char *buf, size_t n)
{
    png_source *s = cookie;
    if (over_time(s->limits, s->start)) {
        s->late = true;
        errno = ETIMEDOUT;
        return -1;
    }
    size_t left = s->size - s->at, k = n < left ? n : left;
    if (k == 0 && n > 0)
        s->eof = true;
    memcpy(buf, s->data + s->at, k);
    s->at += k;
    return (ssize_t)k;
}

static engine_status png_failed(png_image *img, const png_source *src, engine_error *err)
{
    if (src->late)
        return engine_fail(err, ENGINE_E_INVALID,
                           "decoding the image took more than its limit of %lld ms",
                           (long long)src->limits->max_cpu_ms);
    if (src->eof) /* libpng wanted more than there was */
        return engine_fail(err, ENGINE_E_INVALID,
                           "truncated PNG: the data ends before the image does (%s)",
                           img->message);
    return engine_fail(err, ENGINE_E_INVALID, "undecodable PNG: %s", img->message);
}

static engine_status decode_png(const void *data, size_t size, image_format want,
                                const image_limits *lim, image_u8 *out, engine_error *err)
{
    png_source src = {.data = data, .size = size, .limits = lim, .start = started(lim)};
    FILE *f = fopencookie(&src, "rb", (cookie_io_functions_t){.read = png_source_read});
    if (!f)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory decoding a PNG");
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    engine_status st = ENGINE_OK;
    uint8_t *pixels = NULL;
    if (!png_image_begin_read_from_stdio(&img, f)) {
        st = png_failed(&img, &src, err);
        goto out;
    }
    if ((st = check_size(img.width, img.height, lim->max_pixels, err))) {
        png_image_free(&img);
        goto out;
    }
    img.format = want == IMAGE_GRAY ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    if ((st = check_bytes((int64_t)PNG_IMAGE_SIZE(img), lim, err))) {
        png_image_free(&img);
        goto out;
    }
    pixels = malloc(PNG_IMAGE_SIZE(img));
    if (!pixels) {
        png_image_free(&img);
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory decoding a PNG");
        goto out;
    }
    png_color black = {0, 0, 0};
    if (!png_image_finish_read(&img, &black, pixels, 0, NULL)) {
        free(pixels);
        pixels = NULL;
        st = png_failed(&img, &src, err);
        goto out;
    }
    *out = (image_u8){.width = (int)img.width, .height = (int)img.height, .channels = (int)want,
                      .pixels = pixels, .full_width = (int)img.width,
                      .full_height = (int)img.height};
out:
    fclose(f);
    return st;
}

static const image_limits no_limits = {.max_pixels = INT64_MAX};

engine_status image_decode(const void *data, size_t size, image_format want,
                           const image_limits *limits, const image_decode_hint *hint,
                           image_u8 *out, engine_error *err)
{
    memset(out, 0, sizeof *out);
    const image_limits *lim = limits ? limits : &no_limits;
    const char *kind = image_sniff(data, size);
    if (!kind)
        return engine_fail(err, ENGINE_E_INVALID, "the data is neither a JPEG nor a PNG image");
    if (kind[0] == 'j')
        return decode_jpeg(data, size, want, lim, hint, out, err);
    return decode_png(data, size, want, lim, out, err);
}
