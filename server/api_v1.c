/* visiond's own API: POST /v1/models/{name}/classify and GET /v1/models.
 *
 * classify takes one raw image (JPEG or PNG) or a multipart/form-data body
 * with one or more file parts, and answers one result per image, in order:
 *   {"model": ..., "results": [{"predictions": [{"index", "label", "score"}]}],
 *    "batch_size": b, "timing_ms": {"queue", "preprocess", "inference", "total"}}
 */
#include <stdlib.h>
#include <string.h>

#include "../engine/image.h"
#include "../engine/postproc.h"
#include "../engine/preproc.h"
#include "server.h"

static enum MHD_Result bad_image(request *r, int index, int n, const char *why)
{
    if (n > 1)
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "image %d: %s", index + 1, why);
    return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "%s", why);
}

enum MHD_Result api_classify_start(request *r)
{
    served_model *m = r->model;
    const preproc_params *pre = &m->cfg.pre;
    int n = 1;
    bool multipart = r->pp != NULL;
    if (multipart) {
        /* the post processor may hold the last bytes of the last part */
        enum MHD_Result ok = MHD_destroy_post_processor(r->pp);
        r->pp = NULL;
        if (r->body_too_large)
            return http_respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                                      "the body is larger than the limit of %zu bytes",
                                      r->srv->cfg.max_body_bytes);
        if (ok != MHD_YES)
            return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "malformed multipart body");
        n = r->n_parts;
        if (n == 0)
            return http_respond_error(r, MHD_HTTP_BAD_REQUEST,
                                      "the multipart body has no file part");
    } else if (r->body.len == 0) {
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "the body is empty: send an image");
    }
    if (n > m->cfg.max_queue_size)
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST,
                                  "%d images is more than the queue of model '%s' holds (%d)", n,
                                  m->name, m->cfg.max_queue_size);
    if (request_alloc_job(r, n))
        return http_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    int64_t t0 = http_now_ns();
    size_t pixels = (size_t)pre->width * (size_t)pre->height * (size_t)preproc_channels(pre);
    uint8_t *hwc = malloc(pixels);
    if (!hwc)
        return http_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    int64_t per = batcher_input_elems(m->batcher, 0);
    image_decode_hint hint = preproc_decode_hint(pre);
    for (int i = 0; i < n; i++) {
        const byte_buf *b = multipart ? &r->parts[i] : &r->body;
        image_u8 img;
        engine_error e = {0};
        if (image_decode(b->data, b->len, pre->color == PREPROC_GRAY ? IMAGE_GRAY : IMAGE_RGB,
                         r->srv->cfg.max_image_pixels, &hint, &img, &e) ||
            preproc_resample(&img, pre, hwc, &e)) {
            image_free(&img);
            free(hwc);
            return bad_image(r, i, n, e.message);
        }
        image_free(&img);
        preproc_normalize(hwc, pre, r->input_ptrs[0] + (size_t)i * (size_t)per);
    }
    free(hwc);
    r->preprocess_ms = (double)(http_now_ns() - t0) / 1e6;
    metric_observe(server_metrics_get()->preprocess_seconds, r->preprocess_ms / 1e3, m->name);
    return http_submit(r);
}

enum MHD_Result api_classify_finish(request *r)
{
    served_model *m = r->model;
    int classes = (int)m->classes, k = r->top_k < classes ? r->top_k : classes;
    float *scores = malloc(sizeof(float) * (size_t)classes + 1);
    postproc_pred *top = malloc(sizeof *top * (size_t)k + 1);
    if (!scores || !top) {
        free(scores);
        free(top);
        return http_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    json_t *results = json_array();
    for (int i = 0; i < r->job.n_items; i++) {
        memcpy(scores, (float *)r->output_ptrs[0] + (size_t)i * (size_t)classes,
               sizeof(float) * (size_t)classes);
        if (m->cfg.softmax)
            postproc_softmax(scores, classes);
        int got = postproc_top_k(scores, classes, k, top);
        json_t *preds = json_array();
        for (int j = 0; j < got; j++) {
            int idx = top[j].index;
            json_array_append_new(
                preds, json_pack("{s:i,s:o,s:o}", "index", idx, "label",
                                 idx < m->n_labels ? json_string(m->labels[idx]) : json_null(),
                                 "score", json_float(top[j].score)));
        }
        json_array_append_new(results, json_pack("{s:o}", "predictions", preds));
    }
    free(scores);
    free(top);
    double total = (double)(http_now_ns() - r->t0_ns) / 1e6;
    json_t *body = json_pack("{s:s,s:o,s:i,s:{s:f,s:f,s:f,s:f}}", "model", m->name, "results",
                             results, "batch_size", r->job.batch_size, "timing_ms", "queue",
                             r->job.queue_ms, "preprocess", r->preprocess_ms, "inference",
                             r->job.inference_ms, "total", total);
    return http_respond_json(r, MHD_HTTP_OK, body);
}

static json_t *model_json(const served_model *m)
{
    static const char *const colors[] = {"rgb", "bgr", "gray"};
    static const char *const resizes[] = {"shorter_side_crop", "stretch"};
    const model_config *c = &m->cfg;
    int state = atomic_load(&m->state);
    json_t *o = json_pack("{s:s,s:s}", "name", m->name, "state", model_state_name(state));
    if (state == MODEL_FAILED)
        json_object_set_new(o, "error", json_string(m->error));
    if (state != MODEL_READY)
        return o;
    if (m->image_input) {
        json_t *mean = json_array(), *std = json_array();
        for (int k = 0; k < preproc_channels(&c->pre); k++) {
            json_array_append_new(mean, json_real(c->pre.mean[k]));
            json_array_append_new(std, json_real(c->pre.std[k]));
        }
        json_t *in = json_pack("{s:i,s:i,s:s,s:s,s:f,s:o,s:o,s:b}", "width", c->pre.width,
                               "height", c->pre.height, "color", colors[c->pre.color], "resize",
                               resizes[c->pre.resize], "scale", (double)c->pre.scale, "mean",
                               mean, "std", std, "jpeg_dct_scaling", c->pre.jpeg_dct_scaling);
        if (c->pre.resize == PREPROC_SHORTER_SIDE_CROP)
            json_object_set_new(in, "resize_shorter_side", json_integer(c->pre.resize_shorter_side));
        json_object_set_new(o, "input", in);
    }
    json_object_set_new(o, "output", json_pack("{s:b,s:I,s:i}", "softmax", c->softmax, "classes",
                                               (json_int_t)m->classes, "labels", m->n_labels));
    json_object_set_new(o, "batching",
                        json_pack("{s:i,s:I,s:i,s:I}", "max_batch_size",
                                  batcher_max_batch(m->batcher), "max_queue_delay_us",
                                  (json_int_t)c->max_queue_delay_us, "max_queue_size",
                                  c->max_queue_size, "timeout_ms", (json_int_t)c->timeout_ms));
    json_object_set_new(o, "backend", json_string(m->backend));
    return o;
}

enum MHD_Result api_v1_models(request *r)
{
    json_t *arr = json_array();
    for (int i = 0; i < r->srv->repo.n; i++)
        json_array_append_new(arr, model_json(&r->srv->repo.models[i]));
    return http_respond_json(r, MHD_HTTP_OK, json_pack("{s:o}", "models", arr));
}
