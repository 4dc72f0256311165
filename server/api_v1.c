/* visiond's own API: POST /v1/models/{name}/classify (and the steps that
 * /detect and /segment share with it: api_tasks.c finishes those) and
 * GET /v1/models.
 *
 * The image endpoints take one raw image (JPEG or PNG) or a
 * multipart/form-data body with one or more file parts, and answer one
 * result per image, in order; classify's:
 *   {"model": ..., "model_version": v,
 *    "results": [{"predictions": [{"index", "label", "score"}]}],
 *    "batch_size": b, "timing_ms": {"queue", "preprocess", "inference", "total"}}
 * The same times go in a Server-Timing header, for browsers' tools.
 */
#include <stdlib.h>
#include <string.h>

#include "../engine/image.h"
#include "../engine/postproc.h"
#include "../engine/preproc.h"
#include "model_task.h"
#include "server.h"

/* Query and Accept for detect and segment: render, mask. */
static enum MHD_Result task_options(request *r)
{
    served_model *m = r->model;
    const char *render = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "render");
    const char *mask = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "mask");
    const char *accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
    if (render && strcmp(render, "jpeg") != 0)
        return http_defer(r, MHD_HTTP_BAD_REQUEST, "render must be \"jpeg\"");
    r->render = render != NULL;
    if (m->cfg.task == TASK_DETECT && mask)
        return http_defer(r, MHD_HTTP_BAD_REQUEST, "mask is a segment option");
    if (mask && strcmp(mask, "png") != 0 && strcmp(mask, "base64") != 0)
        return http_defer(r, MHD_HTTP_BAD_REQUEST,
                          "mask must be \"png\" (the body) or \"base64\" (in the JSON)");
    if (mask)
        r->mask = strcmp(mask, "png") == 0 ? MASK_PNG : MASK_BASE64;
    else if (m->cfg.task == TASK_SEGMENT && accept && strstr(accept, "image/png") &&
             !strstr(accept, "application/json"))
        r->mask = MASK_PNG;
    if (r->render && r->mask == MASK_PNG)
        return http_defer(r, MHD_HTTP_BAD_REQUEST, "ask for render=jpeg or the mask, not both");
    r->after_job = m->cfg.task == TASK_DETECT ? api_detect_after : api_segment_after;
    return MHD_YES;
}

/* The head is in: what the body must be, and the query. */
enum MHD_Result api_image_start(request *r)
{
    served_model *m = r->model;
    char type[128];
    http_media_type(r, type, sizeof type);
    if (strcmp(type, "multipart/form-data") == 0) {
        if (!http_accept_multipart(r))
            return http_defer(r, MHD_HTTP_BAD_REQUEST, "multipart/form-data without a boundary");
    } else if (type[0] && strcmp(type, "image/jpeg") != 0 && strcmp(type, "image/png") != 0 &&
               strcmp(type, "application/octet-stream") != 0) {
        return http_defer(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                          "unsupported content type '%s': send image/jpeg, image/png, "
                          "application/octet-stream or multipart/form-data",
                          type);
    }
    if (!m->image_input)
        return http_defer(r, MHD_HTTP_BAD_REQUEST,
                          "model '%s' does not take images; use /v2/models/%s/infer", m->name,
                          m->name);
    const char *task = model_task_name(m->cfg.task);
    if (strcmp(r->route->endpoint, task) != 0)
        return http_defer(r, MHD_HTTP_BAD_REQUEST,
                          "model '%s' is a %s model: use POST /v1/models/%s/%s", m->name, task,
                          m->name, task);
    if (m->cfg.task != TASK_CLASSIFY)
        return task_options(r);
    const char *k = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "top_k");
    r->top_k = 5;
    if (k) {
        char *end;
        long v = strtol(k, &end, 10);
        if (!*k || *end || v < 1 || v > 1000000)
            return http_defer(r, MHD_HTTP_BAD_REQUEST, "top_k must be a positive integer");
        r->top_k = (int)v;
    }
    return MHD_YES;
}

/* The body is in: how many images, and is there room for them? */
enum MHD_Result api_image_admit(request *r)
{
    served_model *m = r->model;
    int n = 1;
    if (r->pp) {
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
    if (n > 1 && (r->render || r->mask == MASK_PNG))
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST,
                                  "%s answers one image; this request has %d",
                                  r->render ? "render=jpeg" : "a PNG mask", n);
    if (n > m->cfg.max_queue_size)
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST,
                                  "%d images is more than the queue of model '%s' holds (%d)", n,
                                  m->name, m->cfg.max_queue_size);
    /* admission: room for every image is held before any pixel is decoded */
    if (!batcher_reserve(m->batcher, n))
        return http_respond_busy(r, "queue_full",
                                 "the queue of model '%s' is full (%d items); retry later",
                                 m->name, m->cfg.max_queue_size);
    r->reserved_items = n;
    r->job.n_items = n;
    return http_prepare(r, api_image_prepare);
}

/* In the decode pool: every image decoded and resized into the job. */
int api_image_prepare(request *r)
{
    served_model *m = r->model;
    const preproc_params *pre = &m->cfg.pre;
    const server_config *cfg = &r->srv->cfg;
    int n = r->job.n_items;
    bool multipart = r->n_parts > 0;
    if (request_alloc_job(r, n, true) ||
        (m->cfg.task != TASK_CLASSIFY && !(r->geometry = calloc((size_t)n, sizeof *r->geometry))))
        return http_fail_status(r, ENGINE_E_NOMEM, "out of memory");
    int64_t t0 = http_now_ns();
    size_t pixels = (size_t)pre->width * (size_t)pre->height * (size_t)preproc_channels(pre);
    /* a rendered answer is the whole image: no scaled decoding */
    image_decode_hint hint = r->render ? (image_decode_hint){0} : preproc_decode_hint(pre);
    for (int i = 0; i < n; i++) {
        if (i > 0 && http_now_ns() > r->due_ns) { /* many costly images: the request's time is up */
            return http_fail(r, MHD_HTTP_GATEWAY_TIMEOUT,
                             "no answer within %lld ms (decoding %d images took longer)",
                             (long long)m->cfg.timeout_ms, n);
        }
        const byte_buf *b = multipart ? &r->parts[i] : &r->body;
        image_u8 img;
        engine_error e = {0};
        image_limits lim = {.max_pixels = cfg->max_image_pixels,
                            .max_bytes = cfg->max_decode_bytes,
                            .max_scans = cfg->max_jpeg_scans,
                            .max_cpu_ms = cfg->decode_timeout_ms};
        /* bytes go to the engine as they are: the model's graph normalises them */
        uint8_t *dst = (uint8_t *)r->input_ptrs[0] + (size_t)i * pixels;
        if (image_decode(b->data, b->len, pre->color == PREPROC_GRAY ? IMAGE_GRAY : IMAGE_RGB,
                         &lim, &hint, &img, &e) ||
            preproc_resample(&img, pre, dst, &e)) {
            image_free(&img);
            if (n > 1)
                return http_fail_status(r, e.status, "image %d: %s", i + 1, e.message);
            return http_fail_status(r, e.status, "%s", e.message);
        }
        if (r->geometry)
            r->geometry[i] = preproc_geometry_of_image(pre, &img);
        if (r->render && pre->color == PREPROC_GRAY) { /* drawn in colour */
            image_free(&img);
            if (image_decode(b->data, b->len, IMAGE_RGB, &lim, &hint, &img, &e))
                return http_fail_status(r, e.status, "%s", e.message);
        }
        if (r->render) { /* held until answered: counted with the bodies in memory */
            size_t bytes = (size_t)img.width * (size_t)img.height * 3;
            r->kept_image = img;
            if (!body_budget_take(&r->srv->bodies, bytes))
                return http_fail_busy(r, "memory_budget",
                                      "request bytes in memory are at the server's limit of %zu "
                                      "bytes; retry later",
                                      r->srv->bodies.limit);
            r->kept_budget = bytes;
            continue;
        }
        image_free(&img);
    }
    http_drop_body(r);
    r->preprocess_ms = (double)(http_now_ns() - t0) / 1e6;
    metric_observe(server_metrics_get()->preprocess_seconds, r->preprocess_ms / 1e3, m->name);
    return http_submit_job(r);
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
                preds, json_pack("{s:i,s:o,s:o}", "index", idx, "label", api_label(m, idx),
                                 "score", json_float(top[j].score)));
        }
        json_array_append_new(results, json_pack("{s:o}", "predictions", preds));
    }
    free(scores);
    free(top);
    json_t *body = json_pack("{s:s,s:I,s:o,s:i,s:o}", "model", m->name, "model_version",
                             (json_int_t)m->version, "results", results, "batch_size",
                             r->job.batch_size, "timing_ms", api_timing(r));
    return http_respond_json(r, MHD_HTTP_OK, body);
}

json_t *api_label(const served_model *m, int index)
{
    return index < m->n_labels ? json_string(m->labels[index]) : json_null();
}

json_t *api_timing(request *r)
{
    double total = (double)(http_now_ns() - r->t0_ns) / 1e6;
    snprintf(r->server_timing, sizeof r->server_timing,
             "queue;dur=%.3f, preprocess;dur=%.3f, inference;dur=%.3f, total;dur=%.3f",
             r->job.queue_ms, r->preprocess_ms, r->job.inference_ms, total);
    return json_pack("{s:f,s:f,s:f,s:f}", "queue", r->job.queue_ms, "preprocess",
                     r->preprocess_ms, "inference", r->job.inference_ms, "total", total);
}

/* The output section as the task reads it (model_config.h). */
static json_t *output_json(const served_model *m)
{
    const model_config *c = &m->cfg;
    const detect_params *d = &c->detect;
    static const char *const acts[] = {"none", "sigmoid", "softmax"};
    if (c->task == TASK_CLASSIFY)
        return json_pack("{s:b,s:I,s:i}", "softmax", c->softmax, "classes",
                         (json_int_t)m->classes, "labels", m->n_labels);
    if (c->task == TASK_SEGMENT)
        return json_pack("{s:s,s:I,s:i}", "logits", m->task_out_name[0], "classes",
                         (json_int_t)m->task_dims[0], "labels", m->n_labels);
    json_t *o = json_pack(
        "{s:s,s:I,s:i,s:s,s:f,s:f,s:i,s:i,s:s,s:o}", "layout",
        d->layout == DETECT_YOLO ? "yolo" : "boxes_scores", "classes",
        (json_int_t)m->task_dims[1], "labels", m->n_labels, "score_activation",
        acts[d->activation], "score_threshold", (double)d->score_threshold, "iou_threshold",
        d->iou_threshold, "max_detections", d->max_detections, "max_candidates",
        d->max_candidates, "nms", d->class_agnostic ? "class_agnostic" : "per_class",
        "background_class", d->background_class < 0 ? json_null() : json_integer(d->background_class));
    if (d->layout == DETECT_YOLO) {
        json_object_set_new(o, "predictions", json_string(m->task_out_name[0]));
    } else {
        json_object_set_new(o, "boxes", json_string(m->task_out_name[0]));
        json_object_set_new(o, "scores", json_string(m->task_out_name[1]));
        json_object_set_new(o, "coordinates", json_string(d->normalized ? "normalized" : "pixels"));
    }
    return o;
}

/* One model in /v1/models: its state, and how its highest serving version
 * reads images and answers. */
static json_t *model_json(const model_view *v)
{
    static const char *const colors[] = {"rgb", "bgr", "gray"};
    static const char *const resizes[] = {"shorter_side_crop", "stretch", "letterbox"};
    json_t *o = json_pack("{s:s,s:s}", "name", v->name, "state", model_state_name(v->state));
    json_t *versions = json_array();
    const char *failure = v->error[0] ? v->error : NULL;
    for (int k = 0; k < v->n_versions; k++) {
        const version_view *vv = &v->versions[k];
        json_t *row = json_pack("{s:I,s:s}", "version", (json_int_t)vv->version, "state",
                                model_state_name(vv->state));
        if (vv->reason[0])
            json_object_set_new(row, "error", json_string(vv->reason));
        if (vv->state == MODEL_FAILED && !failure)
            failure = vv->reason;
        json_array_append_new(versions, row);
    }
    json_object_set_new(o, "versions", versions);
    /* the model's own problem (its model.json, its policy) shows even while an
     * earlier load serves; a version's failure when nothing serves */
    if (v->error[0] || (v->state == MODEL_FAILED && failure))
        json_object_set_new(o, "error", json_string(failure));
    const served_model *m = v->latest;
    if (!m)
        return o;
    const model_config *c = &m->cfg;
    json_object_set_new(o, "version", json_integer((json_int_t)m->version));
    if (m->image_input) {
        json_t *mean = json_array(), *std = json_array();
        for (int k = 0; k < preproc_channels(&c->pre); k++) {
            json_array_append_new(mean, json_real(c->pre.mean[k]));
            json_array_append_new(std, json_real(c->pre.std[k]));
        }
        json_t *in = json_pack("{s:i,s:i,s:s,s:s,s:f,s:o,s:o,s:o}", "width", c->pre.width,
                               "height", c->pre.height, "color", colors[c->pre.color], "resize",
                               resizes[c->pre.resize], "scale", (double)c->pre.scale, "mean",
                               mean, "std", std, "jpeg_dct_scaling",
                               c->pre.jpeg_dct_scaling == PREPROC_DCT_AUTO
                                   ? json_string("auto")
                                   : json_boolean(c->pre.jpeg_dct_scaling == PREPROC_DCT_ON));
        if (c->pre.resize == PREPROC_SHORTER_SIDE_CROP)
            json_object_set_new(in, "resize_shorter_side", json_integer(c->pre.resize_shorter_side));
        if (c->pre.resize == PREPROC_LETTERBOX)
            json_object_set_new(in, "pad_value", json_integer(c->pre.pad_value));
        json_object_set_new(o, "input", in);
    }
    json_object_set_new(o, "task", json_string(model_task_name(c->task)));
    json_object_set_new(o, "output", output_json(m));
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
    model_view *v;
    int n = model_repo_list(&r->srv->repo, &v);
    if (n < 0)
        return http_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, model_json(&v[i]));
    model_repo_list_free(v, n);
    server *s = r->srv;
    json_t *srv = json_pack("{s:b,s:b,s:b,s:b}", "insecure", s->insecure, "tls", s->tls,
                            "api_keys", s->auth.n > 0, "model_control", s->model_control);
    return http_respond_json(r, MHD_HTTP_OK,
                             json_pack("{s:o,s:o}", "server", srv, "models", arr));
}

/* GET /v1/models/{name}/algorithms[?batch=N]: how each convolution's
 * algorithm was chosen for that batch size (default: the largest), with
 * every candidate's time, workspace and status, as `visiond bench --algos`
 * prints it. */
enum MHD_Result api_v1_algorithms(request *r)
{
    served_model *m = r->model;
    int batch = batcher_max_batch(m->batcher);
    const char *q = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "batch");
    if (q) {
        char *end;
        long v = strtol(q, &end, 10);
        if (!*q || *end || v < 1 || v > engine_max_batch(m->engine) ||
            (!engine_batch_is_dynamic(m->engine) && v != engine_max_batch(m->engine)))
            return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "batch must be 1 to %d",
                                      engine_max_batch(m->engine));
        batch = (int)v;
    }
    json_t *layers = json_array();
    engine_error e = {0};
    for (int l = 0; l < engine_layer_count(m->engine); l++) {
        engine_algo_report rep;
        engine_layer_summary li;
        if (engine_layer_algos(m->engine, batch, l, &rep, &e) != ENGINE_OK ||
            engine_layer_info(m->engine, batch, l, &li, &e) != ENGINE_OK)
            continue;
        json_t *cands = json_array();
        for (int k = 0; k < rep.n; k++)
            json_array_append_new(
                cands, json_pack("{s:s,s:o,s:I,s:s}", "name", rep.cand[k].name, "ms",
                                 rep.cand[k].ms >= 0 ? json_real(rep.cand[k].ms) : json_null(),
                                 "workspace", (json_int_t)rep.cand[k].workspace, "status",
                                 rep.cand[k].status));
        char shape[96];
        json_array_append_new(
            layers, json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "layer", li.name, "op", li.op,
                              "output", shape_format(&li.output, shape, sizeof shape), "mode",
                              rep.mode, "chosen",
                              rep.chosen >= 0 ? json_string(rep.cand[rep.chosen].name)
                                              : json_null(),
                              "candidates", cands));
    }
    return http_respond_json(r, MHD_HTTP_OK,
                             json_pack("{s:s,s:I,s:s,s:i,s:o}", "model", m->name, "version",
                                       (json_int_t)m->version, "backend", m->backend, "batch",
                                       batch, "layers", layers));
}
