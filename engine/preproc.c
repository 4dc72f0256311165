/* Resampling and normalisation; see preproc.h. */
#include "preproc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Taps of one output coordinate: source indices [first, first+count). */
typedef struct {
    int first, count;
    float *weights;
} taps;

/* Builds the antialiased triangle-filter taps mapping `in` samples onto
 * `out` samples, for output positions offset..offset+n-1 of a grid whose
 * full size is `out_full` (the crop takes a window of the resized grid). */
static float *make_taps(int in, int out_full, int offset, int n, taps *t, int *max_count)
{
    double scale = (double)in / out_full;
    double support = scale > 1.0 ? scale : 1.0;
    int width = (int)ceil(support) * 2 + 1;
    float *w = malloc((size_t)n * (size_t)width * sizeof *w);
    if (!w)
        return NULL;
    *max_count = width;
    for (int i = 0; i < n; i++) {
        double center = (offset + i + 0.5) * scale;
        int lo = (int)floor(center - support), hi = (int)ceil(center + support);
        if (lo < 0)
            lo = 0;
        if (hi > in)
            hi = in;
        float *wi = w + (size_t)i * (size_t)width;
        double total = 0;
        int count = 0;
        for (int j = lo; j < hi && count < width; j++, count++) {
            double d = fabs((j + 0.5 - center) / support);
            double v = d < 1.0 ? 1.0 - d : 0.0;
            wi[count] = (float)v;
            total += v;
        }
        if (total <= 0) { /* cannot happen for in >= 1, but never divide by zero */
            wi[0] = 1.0f;
            count = 1;
            total = 1.0;
            lo = (int)fmin(fmax(floor(center), 0), in - 1);
        }
        for (int k = 0; k < count; k++)
            wi[k] = (float)(wi[k] / total);
        t[i] = (taps){lo, count, wi};
    }
    return w;
}

/* Round half to even, as Python's round() in torchvision's center crop. */
static int round_half_even(double x)
{
    double r = nearbyint(x); /* default rounding mode: to nearest, ties to even */
    return (int)r;
}

image_decode_hint preproc_decode_hint(const preproc_params *p)
{
    image_decode_hint h = {0};
    if (p->jpeg_dct_scaling == PREPROC_DCT_OFF)
        return h;
    int k = p->jpeg_dct_scaling == PREPROC_DCT_AUTO ? 2 : 1;
    if (p->resize == PREPROC_SHORTER_SIDE_CROP)
        h.min_shorter = k * p->resize_shorter_side;
    else {
        h.min_width = k * p->width;
        h.min_height = k * p->height;
    }
    return h;
}

preproc_geometry preproc_geometry_of(const preproc_params *p, int image_w, int image_h)
{
    preproc_geometry g = {.image_w = image_w, .image_h = image_h, .resized_w = p->width,
                          .resized_h = p->height};
    if (p->resize == PREPROC_SHORTER_SIDE_CROP) {
        int s = p->resize_shorter_side;
        if (image_w <= image_h) {
            g.resized_w = s;
            g.resized_h = (int)((int64_t)s * image_h / image_w);
        } else {
            g.resized_h = s;
            g.resized_w = (int)((int64_t)s * image_w / image_h);
        }
        if (g.resized_w < p->width)
            g.resized_w = p->width;
        if (g.resized_h < p->height)
            g.resized_h = p->height;
        g.offset_x = -round_half_even((g.resized_w - p->width) / 2.0);
        g.offset_y = -round_half_even((g.resized_h - p->height) / 2.0);
    } else if (p->resize == PREPROC_LETTERBOX) {
        double r = fmin((double)p->width / image_w, (double)p->height / image_h);
        g.resized_w = round_half_even(image_w * r);
        g.resized_h = round_half_even(image_h * r);
        g.resized_w = g.resized_w < 1 ? 1 : g.resized_w > p->width ? p->width : g.resized_w;
        g.resized_h = g.resized_h < 1 ? 1 : g.resized_h > p->height ? p->height : g.resized_h;
        g.offset_x = (p->width - g.resized_w) / 2;
        g.offset_y = (p->height - g.resized_h) / 2;
    }
    g.scale_x = (double)g.resized_w / image_w;
    g.scale_y = (double)g.resized_h / image_h;
    return g;
}

preproc_geometry preproc_geometry_of_image(const preproc_params *p, const image_u8 *img)
{
    preproc_geometry g = preproc_geometry_of(p, img->width, img->height);
    if (img->full_width > 0 && img->full_height > 0) {
        g.image_w = img->full_width;
        g.image_h = img->full_height;
        g.scale_x = (double)g.resized_w / g.image_w;
        g.scale_y = (double)g.resized_h / g.image_h;
    }
    return g;
}

/* img resized to rw x rh, of which the out_w x out_h window at (ox, oy) is
 * written to out (rows of `stride` bytes). */
static engine_status resample_window(const image_u8 *img, int ch, int rw, int rh, int ox, int oy,
                                     int out_w, int out_h, uint8_t *out, size_t stride,
                                     engine_error *err);

engine_status preproc_resample(const image_u8 *img, const preproc_params *p, uint8_t *out,
                               engine_error *err)
{
    int ch = preproc_channels(p);
    if (img->channels != ch)
        return engine_fail(err, ENGINE_E_INVALID, "image has %d channels, the model %d",
                           img->channels, ch);
    preproc_geometry g = preproc_geometry_of(p, img->width, img->height);
    size_t stride = (size_t)p->width * (size_t)ch;
    if (p->resize != PREPROC_LETTERBOX)
        return resample_window(img, ch, g.resized_w, g.resized_h, -g.offset_x, -g.offset_y,
                               p->width, p->height, out, stride, err);
    memset(out, p->pad_value, stride * (size_t)p->height);
    return resample_window(img, ch, g.resized_w, g.resized_h, 0, 0, g.resized_w, g.resized_h,
                           out + (size_t)g.offset_y * stride + (size_t)g.offset_x * (size_t)ch,
                           stride, err);
}

static engine_status resample_window(const image_u8 *img, int ch, int rw, int rh, int ox, int oy,
                                     int out_w, int out_h, uint8_t *out, size_t stride,
                                     engine_error *err)
{
    taps *tx = malloc(sizeof *tx * (size_t)out_w), *ty = malloc(sizeof *ty * (size_t)out_h);
    int cx, cy;
    float *wx = tx ? make_taps(img->width, rw, ox, out_w, tx, &cx) : NULL;
    float *wy = ty ? make_taps(img->height, rh, oy, out_h, ty, &cy) : NULL;
    /* horizontal pass over the source rows the vertical pass needs */
    int y0 = ty ? ty[0].first : 0;
    int y1 = ty ? ty[out_h - 1].first + ty[out_h - 1].count : 0;
    float *mid = malloc(sizeof(float) * (size_t)(y1 - y0 > 0 ? y1 - y0 : 1) * (size_t)out_w *
                        (size_t)ch);
    engine_status st = ENGINE_OK;
    if (!tx || !ty || !wx || !wy || !mid) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory resizing");
        goto out;
    }
    for (int y = y0; y < y1; y++) {
        const uint8_t *src = img->pixels + (size_t)y * (size_t)img->width * (size_t)ch;
        float *dst = mid + (size_t)(y - y0) * (size_t)out_w * (size_t)ch;
        if (ch == 3) {
            for (int x = 0; x < out_w; x++) {
                const uint8_t *px = src + (size_t)tx[x].first * 3;
                const float *w = tx[x].weights;
                float r = 0, g = 0, b = 0;
                for (int k = 0; k < tx[x].count; k++, px += 3) {
                    r += w[k] * px[0];
                    g += w[k] * px[1];
                    b += w[k] * px[2];
                }
                dst[3 * x] = r, dst[3 * x + 1] = g, dst[3 * x + 2] = b;
            }
        } else {
            for (int x = 0; x < out_w; x++) {
                const uint8_t *px = src + tx[x].first;
                float acc = 0;
                for (int k = 0; k < tx[x].count; k++)
                    acc += tx[x].weights[k] * px[k];
                dst[x] = acc;
            }
        }
    }
    /* vertical pass: accumulate whole rows (unit stride, vectorised) */
    size_t row = (size_t)out_w * (size_t)ch;
    float *acc = malloc(row * sizeof *acc);
    if (!acc) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory resizing");
        goto out;
    }
    for (int y = 0; y < out_h; y++) {
        for (size_t i = 0; i < row; i++)
            acc[i] = 0;
        for (int k = 0; k < ty[y].count; k++) {
            float w = ty[y].weights[k];
            const float *m = mid + (size_t)(ty[y].first + k - y0) * row;
            for (size_t i = 0; i < row; i++)
                acc[i] += w * m[i];
        }
        uint8_t *dst = out + (size_t)y * stride;
        for (size_t i = 0; i < row; i++) {
            float v = acc[i] + 0.5f;
            dst[i] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : (int)v);
        }
    }
    free(acc);
out:
    free(tx);
    free(ty);
    free(wx);
    free(wy);
    free(mid);
    return st;
}

void preproc_normalize_channel(const uint8_t *hwc, size_t plane, int channels, int c,
                               const float *mul, const float *add, bool bgr, float *chw)
{
    int src_c = bgr ? 2 - c : c; /* decoded pixels are RGB */
    float a = mul[c], b = add[c];
    float *dst = chw + (size_t)c * plane;
    for (size_t i = 0; i < plane; i++)
        dst[i] = (float)hwc[i * (size_t)channels + (size_t)src_c] * a + b;
}

void preproc_normalize(const uint8_t *hwc, const preproc_params *p, float *chw)
{
    int ch = preproc_channels(p);
    float mul[3], add[3];
    for (int c = 0; c < ch; c++) { /* (v * scale - mean) / std */
        mul[c] = p->scale / p->std[c];
        add[c] = -p->mean[c] / p->std[c];
    }
    for (int c = 0; c < ch; c++)
        preproc_normalize_channel(hwc, (size_t)p->width * (size_t)p->height, ch, c, mul, add,
                                  p->color == PREPROC_BGR, chw);
}
