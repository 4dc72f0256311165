/* Detection decoding, NMS and segmentation masks; see detect.h.
 *
 * Written here rather than taken from a library: the arithmetic has to be
 * torchvision's to the last float (the same boxes kept, in the same order)
 * and none of the C libraries we use does NMS. */
#include "detect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void detect_params_defaults(detect_params *p)
{
    *p = (detect_params){.layout = DETECT_BOXES_SCORES,
                         .normalized = true,
                         .activation = DETECT_ACT_NONE,
                         .score_threshold = 0.5f,
                         .iou_threshold = 0.45,
                         .max_detections = 100,
                         .max_candidates = 10000,
                         .class_agnostic = false,
                         .background_class = -1};
}

static float sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* The best class of one box: scores at s[0], s[stride], ... */
static int best_class(const detect_params *p, const float *s, int64_t stride, int64_t c,
                      float *score)
{
    int best = -1;
    float best_v = 0, mx = -INFINITY;
    double sum = 0;
    if (p->activation == DETECT_ACT_SOFTMAX) {
        for (int64_t j = 0; j < c; j++)
            mx = s[j * stride] > mx ? s[j * stride] : mx;
        for (int64_t j = 0; j < c; j++)
            sum += exp((double)s[j * stride] - mx);
    }
    for (int64_t j = 0; j < c; j++) {
        if (j == p->background_class)
            continue;
        float v = s[j * stride];
        if (p->activation == DETECT_ACT_SIGMOID)
            v = sigmoid(v);
        else if (p->activation == DETECT_ACT_SOFTMAX)
            v = (float)(exp((double)v - mx) / sum);
        if (best < 0 || v > best_v) {
            best = (int)j;
            best_v = v;
        }
    }
    *score = best_v;
    return best;
}

int detect_decode(const detect_params *p, const float *a, const float *b, int64_t k, int64_t c,
                  int input_w, int input_h, detection *out)
{
    int n = 0;
    for (int64_t i = 0; i < k; i++) {
        detection d = {.anchor = (int)i};
        if (p->layout == DETECT_YOLO) {
            d.class_index = best_class(p, a + 4 * k + i, k, c, &d.score);
            float cx = a[i], cy = a[k + i], w = a[2 * k + i], h = a[3 * k + i];
            d.box[0] = cx - w / 2;
            d.box[1] = cy - h / 2;
            d.box[2] = cx + w / 2;
            d.box[3] = cy + h / 2;
        } else {
            d.class_index = best_class(p, b + i * c, 1, c, &d.score);
            for (int j = 0; j < 4; j++)
                d.box[j] = a[i * 4 + j];
            if (p->normalized) {
                d.box[0] *= (float)input_w, d.box[2] *= (float)input_w;
                d.box[1] *= (float)input_h, d.box[3] *= (float)input_h;
            }
        }
        if (d.class_index < 0 || !(d.score > p->score_threshold) || !isfinite(d.score))
            continue;
        if (!isfinite(d.box[0]) || !isfinite(d.box[1]) || !isfinite(d.box[2]) ||
            !isfinite(d.box[3]))
            continue;
        out[n++] = d;
    }
    return n;
}

static int by_score(const void *x, const void *y)
{
    const detection *a = x, *b = y;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->anchor > b->anchor) - (a->anchor < b->anchor);
}

int detect_nms(detection *d, int n, int max_candidates, double iou_threshold,
               bool class_agnostic, int max_keep)
{
    int m = 0;
    for (int i = 0; i < n; i++) /* a NaN has no place in an order */
        if (isfinite(d[i].score) && isfinite(d[i].box[0]) && isfinite(d[i].box[1]) &&
            isfinite(d[i].box[2]) && isfinite(d[i].box[3]))
            d[m++] = d[i];
    n = m;
    qsort(d, (size_t)n, sizeof *d, by_score);
    if (max_candidates >= 0 && n > max_candidates)
        n = max_candidates;
    float *area = malloc(sizeof(float) * (size_t)(n ? n : 1));
    unsigned char *gone = calloc((size_t)(n ? n : 1), 1);
    if (!area || !gone) {
        free(area);
        free(gone);
        return -1;
    }
    for (int i = 0; i < n; i++)
        area[i] = (d[i].box[2] - d[i].box[0]) * (d[i].box[3] - d[i].box[1]);
    int kept = 0;
    for (int i = 0; i < n && (max_keep < 0 || kept < max_keep); i++) {
        if (gone[i])
            continue;
        const float *bi = d[i].box;
        for (int j = i + 1; j < n; j++) {
            if (gone[j] || (!class_agnostic && d[j].class_index != d[i].class_index))
                continue;
            const float *bj = d[j].box;
            float xx1 = bi[0] > bj[0] ? bi[0] : bj[0], yy1 = bi[1] > bj[1] ? bi[1] : bj[1];
            float xx2 = bi[2] < bj[2] ? bi[2] : bj[2], yy2 = bi[3] < bj[3] ? bi[3] : bj[3];
            float w = xx2 - xx1 > 0 ? xx2 - xx1 : 0, h = yy2 - yy1 > 0 ? yy2 - yy1 : 0;
            float inter = w * h;
            float iou = inter / (area[i] + area[j] - inter); /* 0/0 (empty boxes): NaN, kept */
            if ((double)iou > iou_threshold)
                gone[j] = 1;
        }
        /* kept ones gather at the front, in order (kept <= i) */
        area[kept] = area[i];
        d[kept++] = d[i];
    }
    free(area);
    free(gone);
    return kept;
}

void detect_to_image(detection *d, int n, const preproc_geometry *g)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 4; j++) {
            bool x = (j & 1) == 0;
            double off = x ? g->offset_x : g->offset_y, s = x ? g->scale_x : g->scale_y;
            double lim = x ? g->image_w : g->image_h;
            double v = (d[i].box[j] - off) / s;
            d[i].box[j] = (float)(v < 0 ? 0 : v > lim ? lim : v);
        }
}

int segment_argmax(const float *logits, int c, int h, int w, uint16_t *labels)
{
    size_t plane = (size_t)h * (size_t)w;
    float *best = malloc(sizeof(float) * plane);
    if (!best)
        return -1;
    /* plane by plane: unit stride for every class */
    memcpy(best, logits, sizeof(float) * plane);
    memset(labels, 0, sizeof(uint16_t) * plane);
    for (int k = 1; k < c; k++) {
        const float *l = logits + (size_t)k * plane;
        for (size_t i = 0; i < plane; i++)
            if (l[i] > best[i]) {
                best[i] = l[i];
                labels[i] = (uint16_t)k;
            }
    }
    free(best);
    return 0;
}

/* torch's "nearest" (ATen's nearest_idx): the source of output index i when
 * `in` samples are resized to `out`. */
static int nearest_source(int i, int in, int out)
{
    if (in == out)
        return i;
    if (out == 2 * in)
        return i >> 1;
    float scale = (float)in / (float)out;
    int64_t s = (int64_t)floorf((float)i * scale);
    return s < in - 1 ? (int)s : in - 1;
}

/* The label column (or row) of each image column (row). */
static int *axis_sources(int image, int resized, int offset, int input, int labels)
{
    int *src = malloc(sizeof(int) * (size_t)image);
    if (!src)
        return NULL;
    for (int i = 0; i < image; i++) {
        int v = nearest_source(i, resized, image) + offset; /* in input pixels */
        v = v < 0 ? 0 : v >= input ? input - 1 : v;
        src[i] = nearest_source(v, labels, input);
    }
    return src;
}

int segment_to_image(const uint16_t *labels, int h, int w, int input_w, int input_h,
                     const preproc_geometry *g, uint16_t *mask)
{
    int *sx = axis_sources(g->image_w, g->resized_w, g->offset_x, input_w, w);
    int *sy = axis_sources(g->image_h, g->resized_h, g->offset_y, input_h, h);
    for (int y = 0; sx && sy && y < g->image_h; y++) {
        const uint16_t *row = labels + (size_t)sy[y] * (size_t)w;
        uint16_t *out = mask + (size_t)y * (size_t)g->image_w;
        for (int x = 0; x < g->image_w; x++)
            out[x] = row[sx[x]];
    }
    int rc = sx && sy ? 0 : -1;
    free(sx);
    free(sy);
    return rc;
}
