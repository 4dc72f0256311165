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

engine_status preproc_resample(const image_u8 *img, const preproc_params *p, uint8_t *out,
                               engine_error *err)
{
    int ch = preproc_channels(p);
    if (img->channels != ch)
        return engine_fail(err, ENGINE_E_INVALID, "image has %d channels, the model %d",
                           img->channels, ch);
    int rw = p->width, rh = p->height, ox = 0, oy = 0;
    if (p->resize == PREPROC_SHORTER_SIDE_CROP) {
        int s = p->resize_shorter_side;
        if (img->width <= img->height) {
            rw = s;
            rh = (int)((int64_t)s * img->height / img->width);
        } else {
            rh = s;
            rw = (int)((int64_t)s * img->width / img->height);
        }
        if (rw < p->width)
            rw = p->width;
        if (rh < p->height)
            rh = p->height;
        ox = round_half_even((rw - p->width) / 2.0);
        oy = round_half_even((rh - p->height) / 2.0);
    }
    taps *tx = malloc(sizeof *tx * (size_t)p->width), *ty = malloc(sizeof *ty * (size_t)p->height);
    int cx, cy;
    float *wx = tx ? make_taps(img->width, rw, ox, p->width, tx, &cx) : NULL;
    float *wy = ty ? make_taps(img->height, rh, oy, p->height, ty, &cy) : NULL;
    /* horizontal pass over the source rows the vertical pass needs */
    int y0 = ty ? ty[0].first : 0;
    int y1 = ty ? ty[p->height - 1].first + ty[p->height - 1].count : 0;
    float *mid = malloc(sizeof(float) * (size_t)(y1 - y0 > 0 ? y1 - y0 : 1) * (size_t)p->width *
                        (size_t)ch);
    engine_status st = ENGINE_OK;
    if (!tx || !ty || !wx || !wy || !mid) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory resizing");
        goto out;
    }
    for (int y = y0; y < y1; y++) {
        const uint8_t *src = img->pixels + (size_t)y * (size_t)img->width * (size_t)ch;
        float *dst = mid + (size_t)(y - y0) * (size_t)p->width * (size_t)ch;
        if (ch == 3) {
            for (int x = 0; x < p->width; x++) {
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
            for (int x = 0; x < p->width; x++) {
                const uint8_t *px = src + tx[x].first;
                float acc = 0;
                for (int k = 0; k < tx[x].count; k++)
                    acc += tx[x].weights[k] * px[k];
                dst[x] = acc;
            }
        }
    }
    /* vertical pass: accumulate whole rows (unit stride, vectorised) */
    size_t row = (size_t)p->width * (size_t)ch;
    float *acc = malloc(row * sizeof *acc);
    if (!acc) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory resizing");
        goto out;
    }
    for (int y = 0; y < p->height; y++) {
        for (size_t i = 0; i < row; i++)
            acc[i] = 0;
        for (int k = 0; k < ty[y].count; k++) {
            float w = ty[y].weights[k];
            const float *m = mid + (size_t)(ty[y].first + k - y0) * row;
            for (size_t i = 0; i < row; i++)
                acc[i] += w * m[i];
        }
        uint8_t *dst = out + (size_t)y * row;
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
