/* KServe v2 / Open Inference Protocol over HTTP/JSON, so that KServe and
 * Triton clients work unchanged: server and model metadata, health, and
 * POST /v2/models/{name}/infer with FP32 tensors in JSON (the batch in the
 * shape). Tensor data may be flat or nested, as the protocol allows; the
 * binary-data extension is not supported and is refused clearly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_tensor.h"
#include "server.h"

enum MHD_Result api_v2_server(request *r)
{
    json_t *ext = json_array();
    if (r->srv->model_control)
        json_array_append_new(ext, json_string("model_repository"));
    return http_respond_json(r, MHD_HTTP_OK,
                             json_pack("{s:s,s:s,s:o}", "name", "visiond", "version",
                                       VISIOND_VERSION, "extensions", ext));
}

/* The versions of m's model that serve, as strings (the protocol's form). */
static json_t *ready_versions(server *s, const char *name)
{
    json_t *out = json_array();
    model_view *v;
    int n = model_repo_list(&s->repo, &v);
    for (int i = 0; i < n; i++)
        for (int k = 0; strcmp(v[i].name, name) == 0 && k < v[i].n_versions; k++)
            if (v[i].versions[k].state == MODEL_READY) {
                char ver[24];
                snprintf(ver, sizeof ver, "%lld", (long long)v[i].versions[k].version);
                json_array_append_new(out, json_string(ver));
            }
    model_repo_list_free(v, n > 0 ? n : 0);
    return out;
}

static json_t *tensor_meta(const engine_tensor_info *t, bool dynamic)
{
    json_t *shape = json_array();
    for (int d = 0; d < t->rank; d++)
        json_array_append_new(shape, json_integer(d == 0 && dynamic ? -1 : t->dims[d]));
    return json_pack("{s:s,s:s,s:o}", "name", t->name, "datatype",
                     t->dtype == DTYPE_INT64 ? "INT64" : "FP32", "shape", shape);
}

enum MHD_Result api_v2_model(request *r)
{
    served_model *m = r->model;
    bool dyn = engine_batch_is_dynamic(m->engine);
    json_t *ins = json_array(), *outs = json_array();
    for (int k = 0; k < engine_input_count(m->engine); k++) {
        engine_tensor_info t;
        engine_input_info(m->engine, k, &t);
        json_array_append_new(ins, tensor_meta(&t, dyn));
    }
    for (int k = 0; k < engine_output_count(m->engine); k++) {
        engine_tensor_info t;
        engine_error e;
        if (engine_output_info(m->engine, k, engine_max_batch(m->engine), &t, &e) == ENGINE_OK)
            json_array_append_new(outs, tensor_meta(&t, dyn));
    }
    return http_respond_json(r, MHD_HTTP_OK,
                             json_pack("{s:s,s:o,s:s,s:o,s:o}", "name", m->name, "versions",
                                       ready_versions(r->srv, m->name), "platform",
                                       "onnxruntime_onnx", "inputs", ins, "outputs", outs));
}

enum MHD_Result api_v2_model_ready(request *r)
{
    /* r->model is NULL when the model (or that version) is not serving */
    bool ready = r->model && !atomic_load(&r->srv->stopping);
    return http_respond_json(r, ready ? MHD_HTTP_OK : MHD_HTTP_BAD_REQUEST,
                             json_pack("{s:s,s:b}", "name", r->model_name, "ready", ready));
}

/* /v2/health/ready (v2) and /readyz: ready when no model is loading, one at
 * least serves, and the server is not stopping. The body lists models that
 * failed and models whose device faults sent batches to the CPU, so an
 * operator sees a degraded server at a glance. */
enum MHD_Result api_v2_ready(request *r, bool v2)
{
    server *s = r->srv;
    bool ready = model_repo_ready(&s->repo) && !atomic_load(&s->stopping);
    json_t *failed = json_array(), *fell_back = json_array();
    model_view *v;
    int n = model_repo_list(&s->repo, &v);
    for (int i = 0; i < n; i++) {
        if (v[i].state == MODEL_FAILED)
            json_array_append_new(failed, json_string(v[i].name));
        else if (v[i].latest && engine_fallback_count(v[i].latest->engine) > 0)
            json_array_append_new(fell_back, json_string(v[i].name));
    }
    model_repo_list_free(v, n > 0 ? n : 0);
    /* degraded: a model failed to load, or its device failed and batches
     * now run on the CPU fallback */
    bool degraded = json_array_size(failed) > 0 || json_array_size(fell_back) > 0;
    json_t *body = json_pack("{s:b,s:b,s:o,s:o}", "ready", ready, "degraded", degraded,
                             "failed_models", failed, "cpu_fallback_models", fell_back);
    unsigned status = ready ? MHD_HTTP_OK : v2 ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_SERVICE_UNAVAILABLE;
    return http_respond_json(r, status, body);
}

/* The body is in: parsing it is the decode pool's work. */
/* The head is in: the body must be JSON. */
enum MHD_Result api_v2_infer_start(request *r)
{
    char type[128];
    http_media_type(r, type, sizeof type);
    if (type[0] && strcmp(type, "application/json") != 0)
        return http_defer(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                          "unsupported content type '%s': send application/json", type);
    if (MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Inference-Header-Content-Length"))
        return http_defer(r, MHD_HTTP_BAD_REQUEST,
                          "the binary tensor data extension is not supported: send JSON");
    return MHD_YES;
}

enum MHD_Result api_v2_infer_admit(request *r)
{
    return http_prepare(r, api_v2_infer_prepare);
}

/* The most numbers any one input of the model can take in a request. */
static int64_t largest_input(const served_model *m)
{
    int64_t most = 0;
    for (int k = 0; k < engine_input_count(m->engine); k++) {
        int64_t n = batcher_input_elems(m->batcher, k) * m->cfg.max_queue_size;
        most = n > most ? n : most;
    }
    return most;
}

/* Checks each input's name, datatype and shape against the model; fills
 * by_input (request input index per model input) and the batch. */
static int match_inputs(request *r, json_t *inputs, int by_input[8], int64_t *batch)
{
    served_model *m = r->model;
    int ni = engine_input_count(m->engine);
    bool dyn = engine_batch_is_dynamic(m->engine);
    *batch = -1;
    for (int k = 0; k < ni; k++)
        by_input[k] = -1;
    for (size_t i = 0; i < json_array_size(inputs); i++) {
        json_t *t = json_array_get(inputs, i);
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *dt = json_string_value(json_object_get(t, "datatype"));
        json_t *shape = json_object_get(t, "shape");
        int k = -1;
        for (int q = 0; q < ni && name; q++) {
            engine_tensor_info info;
            engine_input_info(m->engine, q, &info);
            if (strcmp(info.name, name) == 0)
                k = q;
        }
        if (!name || k < 0 || by_input[k] >= 0)
            return http_fail(r, MHD_HTTP_BAD_REQUEST, "input %zu: unknown or repeated name '%s'",
                             i, name ? name : "(none)");
        if (!dt || strcmp(dt, "FP32") != 0)
            return http_fail(r, MHD_HTTP_BAD_REQUEST,
                             "input '%s': datatype %s is not supported (FP32 is)", name,
                             dt ? dt : "(none)");
        engine_tensor_info info;
        engine_input_info(m->engine, k, &info);
        bool ok = json_is_array(shape) && (int)json_array_size(shape) == info.rank;
        for (int d = 0; ok && d < info.rank; d++) {
            json_t *x = json_array_get(shape, (size_t)d);
            int64_t v = json_is_integer(x) ? json_integer_value(x) : -1;
            if (d > 0) {
                ok = v == info.dims[d];
            } else { /* the batch: any size (rows are queued one by one), the same everywhere */
                ok = v >= 1 && (*batch < 0 || v == *batch);
                *batch = v;
            }
        }
        if (!ok) {
            char want[160];
            int len = 0;
            for (int d = 0; d < info.rank; d++)
                len += snprintf(want + len, sizeof want - (size_t)len, d ? ",%lld" : "[%lld",
                                (long long)(d == 0 && dyn ? -1 : info.dims[d]));
            snprintf(want + len, sizeof want - (size_t)len, "]");
            return http_fail(r, MHD_HTTP_BAD_REQUEST,
                             "input '%s': shape must be %s (-1: any batch, the same for every "
                             "input)",
                             name, want);
        }
        by_input[k] = (int)i;
    }
    return 0;
}

/* In the decode pool: the JSON tensors into the job, with room for its
 * rows. The numbers go straight from the body into the job's buffers
 * (json_tensor.h); jansson sees the rest. */
int api_v2_infer_prepare(request *r)
{
    served_model *m = r->model;
    char err[256];
    json_tensor_split split;
    if (json_tensor_split_request(r->body.data ? r->body.data : "", r->body.len,
                                  largest_input(m), &split, err, sizeof err)) {
        http_drop_body(r);
        json_tensor_split_free(&split);
        return http_fail(r, MHD_HTTP_BAD_REQUEST, "%s", err);
    }
    json_error_t jerr;
    json_t *root = json_loadb(split.skeleton, split.skeleton_len, JSON_REJECT_DUPLICATES, &jerr);
    int ret = -1;
    if (!root) {
        ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "invalid JSON at line %d: %s", jerr.line,
                        jerr.text);
        goto out;
    }
    json_t *inputs = json_object_get(root, "inputs");
    int ni = engine_input_count(m->engine);
    if (!json_is_object(root) || !json_is_array(inputs)) {
        ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "the request needs an \"inputs\" array");
        goto out;
    }
    if ((int)json_array_size(inputs) != ni) {
        ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "model '%s' takes %d inputs, got %zu", m->name,
                        ni, json_array_size(inputs));
        goto out;
    }
    int by_input[8];
    int64_t items; /* each row is one item of the batcher */
    if ((ret = match_inputs(r, inputs, by_input, &items)))
        goto out;
    for (int k = 0; k < ni; k++) {
        int i = by_input[k];
        int64_t want = batcher_input_elems(m->batcher, k) * items;
        if (!split.has_data[i] || split.data[i].count != want) {
            ret = http_fail(r, MHD_HTTP_BAD_REQUEST,
                            "input '%s': \"data\" must hold %lld numbers (flat or nested as "
                            "the shape)",
                            json_string_value(json_object_get(json_array_get(inputs, i), "name")),
                            (long long)want);
            goto out;
        }
    }
    if (items > m->cfg.max_queue_size) {
        ret = http_fail(r, MHD_HTTP_BAD_REQUEST,
                        "a batch of %lld is more than the queue of model '%s' holds (%d)",
                        (long long)items, m->name, m->cfg.max_queue_size);
        goto out;
    }
    json_t *outputs = json_object_get(root, "outputs");
    if (outputs && !json_is_array(outputs)) {
        ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "\"outputs\" must be an array");
        goto out;
    }
    if (!batcher_reserve(m->batcher, (int)items)) {
        ret = http_fail_busy(r, "queue_full",
                             "the queue of model '%s' is full (%d items); retry later", m->name,
                             m->cfg.max_queue_size);
        goto out;
    }
    r->reserved_items = (int)items;
    if (request_alloc_job(r, (int)items, false)) {
        ret = http_fail_status(r, ENGINE_E_NOMEM, "out of memory");
        goto out;
    }
    for (int k = 0; k < ni; k++)
        json_tensor_parse(r->body.data, &split.data[by_input[k]], (float *)r->input_ptrs[k]);
    if (outputs)
        r->v2_outputs = json_incref(outputs);
    json_t *id = json_object_get(root, "id");
    if (json_is_string(id))
        r->v2_id = json_incref(id);
    http_drop_body(r);
    json_decref(root);
    json_tensor_split_free(&split);
    return http_submit_job(r);
out:
    http_drop_body(r);
    json_decref(root);
    json_tensor_split_free(&split);
    return ret;
}

/* An output is wanted when the request named it, or named none. */
static bool wanted(const request *r, const char *name)
{
    if (!r->v2_outputs)
        return true;
    size_t i;
    json_t *o;
    json_array_foreach(r->v2_outputs, i, o) {
        const char *n = json_string_value(json_object_get(o, "name"));
        if (n && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

enum MHD_Result api_v2_infer_finish(request *r)
{
    served_model *m = r->model;
    int no = engine_output_count(m->engine);
    /* every requested name must exist */
    if (r->v2_outputs) {
        size_t i;
        json_t *o;
        json_array_foreach(r->v2_outputs, i, o) {
            const char *n = json_string_value(json_object_get(o, "name"));
            bool found = false;
            for (int k = 0; k < no && n; k++) {
                engine_tensor_info t;
                engine_error e;
                if (!engine_output_info(m->engine, k, batcher_max_batch(m->batcher), &t, &e) &&
                    strcmp(t.name, n) == 0)
                    found = true;
            }
            if (!found)
                return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "unknown output '%s'",
                                          n ? n : "(none)");
        }
    }
    json_t *outs = json_array();
    for (int k = 0; k < no; k++) {
        engine_tensor_info t;
        engine_error e;
        engine_output_info(m->engine, k, batcher_max_batch(m->batcher), &t, &e);
        if (!wanted(r, t.name))
            continue;
        int64_t per = batcher_output_elems(m->batcher, k);
        json_t *shape = json_array(), *data = json_array();
        json_array_append_new(shape, json_integer(r->job.n_items));
        for (int d = 1; d < t.rank; d++)
            json_array_append_new(shape, json_integer(t.dims[d]));
        int64_t total = per * r->job.n_items;
        bool is_int = t.dtype == DTYPE_INT64;
        for (int64_t i = 0; i < total; i++)
            json_array_append_new(data, is_int ? json_integer(((int64_t *)r->output_ptrs[k])[i])
                                               : json_float(((float *)r->output_ptrs[k])[i]));
        json_array_append_new(outs, json_pack("{s:s,s:s,s:o,s:o}", "name", t.name, "datatype",
                                              is_int ? "INT64" : "FP32", "shape", shape, "data",
                                              data));
    }
    char version[24];
    snprintf(version, sizeof version, "%lld", (long long)m->version);
    json_t *body = json_pack("{s:s,s:s,s:o}", "model_name", m->name, "model_version", version,
                             "outputs", outs);
    if (r->v2_id)
        json_object_set(body, "id", r->v2_id);
    return http_respond_json(r, MHD_HTTP_OK, body);
}
