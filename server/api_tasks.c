/* POST /v1/models/{name}/detect and /segment: the answers of detectors
 * and segmenters (api_v1.c decodes and queues their images as for
 * classify). Post-processing and image encoding run in the decode pool
 * once the batch is back (after_job), not on a connection thread.
 *
 *   detect:  {"model", "results": [{"detections": [{"box": [x1, y1, x2, y2],
 *             "score", "index", "label"}], "width", "height"}], "batch_size",
 *             "timing_ms"}, boxes in the uploaded image's pixels;
 *   segment: {"model", "results": [{"classes": [{"index", "label", "fraction"}],
 *             "width", "height"[, "mask": base64 PNG]}], ...}, classes by
 *             falling fraction of the image's pixels;
 *   ?mask=png or Accept: image/png: the mask as a PNG (one image);
 *   ?render=jpeg: the image with the boxes or the mask drawn (one image).
 */
#include <stdlib.h>
#include <string.h>

#include "image_encode.h"
#include "model_task.h"
#include "server.h"

/* The encoded image becomes the answer (render or a PNG mask). */
static int answer_image(request *r, int rc, uint8_t *bytes, size_t len, const char *type)
{
    if (rc)
        return http_fail_status(r, ENGINE_E_NOMEM, "encoding the %s answer failed", type);
    r->answer_bytes = bytes;
    r->answer_len = len;
    r->answer_type = type;
    return 0;
}

int api_detect_after(request *r)
{
    served_model *m = r->model;
    json_t *results = json_array();
    r->answer = results;
    for (int i = 0; i < r->job.n_items; i++) {
        detection *d;
        int n = model_task_detect(m, r->output_ptrs, i, &r->geometry[i], &d);
        if (n < 0) {
            free(d);
            return http_fail_status(r, ENGINE_E_NOMEM, "out of memory");
        }
        metric_observe(server_metrics_get()->detections, n, m->name);
        json_t *list = json_array();
        for (int j = 0; j < n; j++)
            json_array_append_new(
                list, json_pack("{s:[f,f,f,f],s:o,s:i,s:o}", "box", (double)d[j].box[0],
                                (double)d[j].box[1], (double)d[j].box[2], (double)d[j].box[3],
                                "score", json_float(d[j].score), "index", d[j].class_index,
                                "label", api_label(m, d[j].class_index)));
        json_array_append_new(results, json_pack("{s:o,s:i,s:i}", "detections", list, "width",
                                                 r->geometry[i].image_w, "height",
                                                 r->geometry[i].image_h));
        if (r->render) {
            uint8_t *jpeg = NULL;
            size_t len = 0;
            draw_boxes(&r->kept_image, d, n);
            free(d);
            int rc = encode_jpeg(&r->kept_image, 90, &jpeg, &len);
            return answer_image(r, rc, jpeg, len, "image/jpeg");
        }
        free(d);
    }
    return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* jansson has no base64; a PNG in a JSON string needs it */
static json_t *base64_string(const uint8_t *p, size_t n)
{
    char *s = malloc((n + 2) / 3 * 4 + 1), *o = s;
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? b64[v & 63] : '=';
    }
    json_t *j = json_stringn(s, (size_t)(o - s));
    free(s);
    return j;
}

typedef struct {
    int index;
    size_t pixels;
} class_count;

static int by_pixels(const void *a, const void *b)
{
    const class_count *x = a, *y = b;
    if (x->pixels != y->pixels)
        return x->pixels > y->pixels ? -1 : 1;
    return x->index - y->index;
}

/* The classes present in a mask, by falling pixel count. */
static json_t *classes_present(const served_model *m, const uint16_t *mask, size_t pixels)
{
    int c = (int)m->task_dims[0];
    class_count *counts = calloc((size_t)c, sizeof *counts);
    if (!counts)
        return NULL;
    for (int k = 0; k < c; k++)
        counts[k].index = k;
    for (size_t i = 0; i < pixels; i++)
        counts[mask[i]].pixels++;
    qsort(counts, (size_t)c, sizeof *counts, by_pixels);
    json_t *list = json_array();
    for (int k = 0; k < c && counts[k].pixels; k++)
        json_array_append_new(list, json_pack("{s:i,s:o,s:f}", "index", counts[k].index, "label",
                                              api_label(m, counts[k].index), "fraction",
                                              (double)counts[k].pixels / (double)pixels));
    free(counts);
    return list;
}

int api_segment_after(request *r)
{
    served_model *m = r->model;
    json_t *results = json_array();
    r->answer = results;
    for (int i = 0; i < r->job.n_items; i++) {
        const preproc_geometry *g = &r->geometry[i];
        uint16_t *mask;
        size_t pixels = (size_t)g->image_w * (size_t)g->image_h;
        if (model_task_segment(m, r->output_ptrs, i, g, &mask))
            return http_fail_status(r, ENGINE_E_NOMEM, "out of memory");
        json_t *classes = classes_present(m, mask, pixels);
        if (!classes) {
            free(mask);
            return http_fail_status(r, ENGINE_E_NOMEM, "out of memory");
        }
        json_t *one = json_pack("{s:o,s:i,s:i}", "classes", classes, "width", g->image_w,
                                "height", g->image_h);
        json_array_append_new(results, one);
        uint8_t *bytes = NULL;
        size_t len = 0;
        int rc = 0;
        if (r->render) {
            draw_mask(&r->kept_image, mask);
            rc = encode_jpeg(&r->kept_image, 90, &bytes, &len);
        } else if (r->mask != MASK_NONE) {
            rc = encode_mask_png(mask, g->image_w, g->image_h, (int)m->task_dims[0], &bytes, &len);
        }
        free(mask);
        if (r->render || r->mask == MASK_PNG)
            return answer_image(r, rc, bytes, len, r->render ? "image/jpeg" : "image/png");
        if (r->mask == MASK_BASE64) {
            json_t *s = rc ? NULL : base64_string(bytes, len);
            free(bytes);
            if (!s)
                return http_fail_status(r, ENGINE_E_NOMEM, "encoding the mask failed");
            json_object_set_new(one, "mask", s);
        }
    }
    return 0;
}

enum MHD_Result api_task_finish(request *r)
{
    if (!r->after_done) { /* the pool had no room: do it here */
        r->after_done = true;
        if (r->after_job(r))
            return http_respond_error(r, r->failed_status, "%s", r->failed_error);
    }
    json_t *timing = api_timing(r);
    if (r->answer_bytes) {
        json_decref(timing);
        uint8_t *bytes = r->answer_bytes;
        r->answer_bytes = NULL; /* the response frees it */
        return http_respond_text(r, MHD_HTTP_OK, r->answer_type, (char *)bytes, r->answer_len);
    }
    json_t *results = r->answer;
    r->answer = NULL;
    return http_respond_json(r, MHD_HTTP_OK,
                             json_pack("{s:s,s:I,s:s,s:o,s:i,s:o}", "model", r->model->name,
                                       "model_version", (json_int_t)r->model->version, "task",
                                       model_task_name(r->model->cfg.task), "results", results,
                                       "batch_size", r->job.batch_size, "timing_ms", timing));
}
