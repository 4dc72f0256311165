/* POST /v2/models/{name}[/versions/{v}]/infer: the Open Inference
 * Protocol's inference, with Triton's binary tensor data and
 * classification extensions, as real OIP clients send them.
 *
 *   JSON        {"inputs": [{"name", "shape", "datatype", "data"}], "outputs": [...]}
 *   binary      Inference-Header-Content-Length: J; the first J bytes are
 *               that JSON, an input with parameters.binary_data_size has no
 *               "data" and its bytes follow, in the order of the inputs
 *   raw         Inference-Header-Content-Length: 0; the body is the one
 *               input's tensor, batch 1; every output comes back binary
 *   images      one BYTES input [N] (binary: 4-byte length + an encoded
 *               image each) for a model that takes images: decoded and
 *               preprocessed as /classify does
 * Inputs of any numeric datatype (FP16, UINT8, INT64, ...) are converted to
 * the model's float32 here (v2_tensor.c); sizes are checked against the
 * shape, and the shape against the model and its queue, before anything
 * is allocated.
 *
 * Outputs: JSON by default; binary where the output asks
 * (parameters.binary_data) or the request does (binary_data_output); an
 * output with parameters.classification = K answers BYTES [N, K] strings
 * "value:index[:label]", the K highest values of each row (Triton's form,
 * the value printed as C's %f).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/postproc.h"
#include "json_tensor.h"
#include "server.h"
#include "v2_tensor.h"

#define HEADER_LEN "Inference-Header-Content-Length"
#define MAX_CLASSIFICATION 1000 /* classes per row one output may ask for */

/* The head is in: JSON, or binary with the header giving the JSON's length. */
enum MHD_Result api_v2_infer_start(request *r)
{
    char type[128];
    http_media_type(r, type, sizeof type);
    const char *hl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, HEADER_LEN);
    r->v2_header_len = -1;
    if (hl) {
        char *end;
        long long v = strtoll(hl, &end, 10);
        if (!*hl || *end || v < 0 || (unsigned long long)v > r->srv->cfg.max_body_bytes)
            return http_defer(r, MHD_HTTP_BAD_REQUEST,
                              HEADER_LEN " must be a byte count up to the body limit (%zu)",
                              r->srv->cfg.max_body_bytes);
        r->v2_header_len = v;
    }
    bool json = !type[0] || strcmp(type, "application/json") == 0;
    if (!json && !(hl && strcmp(type, "application/octet-stream") == 0))
        return http_defer(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                          "unsupported content type '%s': send application/json, or "
                          "application/octet-stream with " HEADER_LEN,
                          type);
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

static const char *name_of(json_t *input)
{
    const char *n = json_string_value(json_object_get(input, "name"));
    return n ? n : "(none)";
}

/* Checks each input's name, datatype and shape against the model; fills
 * by_input (request input index per model input), the batch, and each
 * input's datatype. The batch is bounded by the model's queue, so sizes
 * computed from it cannot overflow. */
static int match_inputs(request *r, json_t *inputs, int by_input[8], const v2_dtype *types[8],
                        int64_t *batch)
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
        const v2_dtype *dt = v2_dtype_find(json_string_value(json_object_get(t, "datatype")));
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
        if (!dt)
            return http_fail(r, MHD_HTTP_BAD_REQUEST,
                             "input '%s': datatype must be one of BOOL, UINT8-64, INT8-64, FP16, "
                             "FP32, FP64, BYTES",
                             name);
        types[k] = dt;
        by_input[k] = (int)i;
        if (dt->kind == V2_BYTES) { /* encoded images: [N] or [N, 1] */
            bool ok = m->image_input && json_is_array(shape) && json_array_size(shape) >= 1 &&
                      json_array_size(shape) <= 2 &&
                      (json_array_size(shape) == 1 ||
                       json_integer_value(json_array_get(shape, 1)) == 1);
            int64_t n = json_integer_value(json_array_get(shape, 0));
            if (!ok || n < 1 || n > MAX_IMAGES_PER_REQUEST)
                return http_fail(r, MHD_HTTP_BAD_REQUEST,
                                 "input '%s': BYTES is for encoded images, shape [N] (N up to "
                                 "%d), to a model that takes images",
                                 name, MAX_IMAGES_PER_REQUEST);
            *batch = n;
            continue;
        }
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
    }
    if (*batch > m->cfg.max_queue_size)
        return http_fail(r, MHD_HTTP_BAD_REQUEST,
                         "a batch of %lld is more than the queue of model '%s' holds (%d)",
                         (long long)*batch, m->name, m->cfg.max_queue_size);
    return 0;
}

/* Where each input's binary data lies in the body: in the order of the
 * inputs, after the JSON, adding up to the rest of the body exactly. */
static int locate_binary(request *r, json_t *inputs, size_t json_len, size_t offsets[8],
                         int64_t sizes[8])
{
    size_t at = json_len;
    for (size_t i = 0; i < json_array_size(inputs) && i < 8; i++) {
        json_t *t = json_array_get(inputs, i);
        json_t *p = json_object_get(json_object_get(t, "parameters"), "binary_data_size");
        sizes[i] = -1;
        if (!p)
            continue;
        if (!json_is_integer(p) || json_integer_value(p) < 0 ||
            (uint64_t)json_integer_value(p) > r->body.len - at)
            return http_fail(r, MHD_HTTP_BAD_REQUEST,
                             "input '%s': binary_data_size must be a byte count within the %zu "
                             "bytes after the JSON",
                             name_of(t), r->body.len - at);
        if (json_object_get(t, "data"))
            return http_fail(r, MHD_HTTP_BAD_REQUEST,
                             "input '%s': binary_data_size and \"data\" both given", name_of(t));
        offsets[i] = at;
        sizes[i] = json_integer_value(p);
        at += (size_t)sizes[i];
    }
    if (at != r->body.len)
        return http_fail(r, MHD_HTTP_BAD_REQUEST,
                         "%zu bytes follow the JSON, but the inputs' binary_data_size add up to "
                         "%zu",
                         r->body.len - json_len, at - json_len);
    return 0;
}

/* One BYTES input of encoded images: each becomes a part, decoded and
 * preprocessed as /classify's multipart files are (api_image_prepare). */
static int prepare_images(request *r, json_t *input, int64_t n, size_t offset, int64_t size)
{
    served_model *m = r->model;
    if (size < 0)
        return http_fail(r, MHD_HTTP_BAD_REQUEST,
                         "input '%s': BYTES data is sent as binary (binary_data_size)",
                         name_of(input));
    v2_bytes_elem elems[MAX_IMAGES_PER_REQUEST];
    if (v2_bytes_split((const uint8_t *)r->body.data + offset, (size_t)size, n, elems))
        return http_fail(r, MHD_HTTP_BAD_REQUEST,
                         "input '%s': the binary data is not %lld elements of a 4-byte length "
                         "and its bytes",
                         name_of(input), (long long)n);
    for (int64_t i = 0; i < n; i++) {
        if (elems[i].len == 0)
            return http_fail(r, MHD_HTTP_BAD_REQUEST, "image %lld is empty", (long long)i + 1);
        byte_buf *b = &r->parts[r->n_parts];
        if (!(b->data = malloc(elems[i].len)))
            return http_fail_status(r, ENGINE_E_NOMEM, "out of memory");
        memcpy(b->data, elems[i].data, elems[i].len);
        b->len = b->cap = elems[i].len;
        r->n_parts++;
    }
    if (!batcher_reserve(m->batcher, (int)n))
        return http_fail_busy(r, "queue_full",
                              "the queue of model '%s' is full (%d items); retry later", m->name,
                              m->cfg.max_queue_size);
    r->reserved_items = (int)n;
    r->job.n_items = (int)n;
    return api_image_prepare(r);
}

/* Inference-Header-Content-Length: 0: the body is the model's one input,
 * batch 1, in its own datatype (FP32); every output is answered binary. */
static int prepare_raw(request *r)
{
    served_model *m = r->model;
    engine_tensor_info in;
    engine_input_info(m->engine, 0, &in);
    size_t want = (size_t)batcher_input_elems(m->batcher, 0) * sizeof(float);
    if (engine_input_count(m->engine) != 1 || r->body.len != want)
        return http_fail(r, MHD_HTTP_BAD_REQUEST,
                         "a raw request (" HEADER_LEN ": 0) is the model's one input as FP32, "
                         "batch 1: %zu bytes for '%s'; got %zu",
                         want, in.name, r->body.len);
    if (!batcher_reserve(m->batcher, 1))
        return http_fail_busy(r, "queue_full",
                              "the queue of model '%s' is full (%d items); retry later", m->name,
                              m->cfg.max_queue_size);
    r->reserved_items = 1;
    if (request_alloc_job(r, 1, false))
        return http_fail_status(r, ENGINE_E_NOMEM, "out of memory");
    v2_to_float(v2_dtype_find("FP32"), (const uint8_t *)r->body.data,
                batcher_input_elems(m->batcher, 0), r->input_ptrs[0]);
    r->v2_binary_all = true;
    http_drop_body(r);
    return http_submit_job(r);
}

/* The requested outputs: names must exist; parameters checked. */
static int check_outputs(request *r, json_t *outputs)
{
    served_model *m = r->model;
    size_t i;
    json_t *o;
    json_array_foreach(outputs, i, o) {
        const char *n = json_string_value(json_object_get(o, "name"));
        bool found = false;
        for (int k = 0; k < engine_output_count(m->engine) && n; k++) {
            engine_tensor_info t;
            engine_error e;
            if (!engine_output_info(m->engine, k, batcher_max_batch(m->batcher), &t, &e) &&
                strcmp(t.name, n) == 0)
                found = true;
        }
        if (!found)
            return http_fail(r, MHD_HTTP_BAD_REQUEST, "unknown output '%s'", n ? n : "(none)");
        json_t *params = json_object_get(o, "parameters");
        json_t *bin = json_object_get(params, "binary_data");
        json_t *cls = json_object_get(params, "classification");
        if ((params && !json_is_object(params)) || (bin && !json_is_boolean(bin)) ||
            (cls && (!json_is_integer(cls) || json_integer_value(cls) < 1 ||
                     json_integer_value(cls) > MAX_CLASSIFICATION)))
            return http_fail(r, MHD_HTTP_BAD_REQUEST,
                             "output '%s': parameters.binary_data must be a boolean and "
                             "parameters.classification a count from 1 to %d",
                             n, MAX_CLASSIFICATION);
    }
    return 0;
}

/* In the decode pool: the request's tensors into the job, with room for its
 * rows. JSON numbers go straight from the body into the job's buffers
 * (json_tensor.h); binary data is converted from its datatype. */
int api_v2_infer_prepare(request *r)
{
    served_model *m = r->model;
    if (r->v2_header_len == 0)
        return prepare_raw(r);
    size_t json_len = r->v2_header_len > 0 ? (size_t)r->v2_header_len : r->body.len;
    if (json_len > r->body.len)
        return http_fail(r, MHD_HTTP_BAD_REQUEST,
                         HEADER_LEN " is %zu but the body has %zu bytes", json_len, r->body.len);
    char err[256];
    json_tensor_split split;
    json_t *root = NULL;
    int ret = -1;
    if (json_tensor_split_request(r->body.data ? r->body.data : "", json_len, largest_input(m),
                                  &split, err, sizeof err)) {
        ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "%s", err);
        goto out;
    }
    json_error_t jerr;
    root = json_loadb(split.skeleton, split.skeleton_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "invalid JSON at line %d: %s", jerr.line,
                        jerr.text);
        goto out;
    }
    json_t *inputs = json_object_get(root, "inputs");
    json_t *outputs = json_object_get(root, "outputs");
    json_t *params = json_object_get(root, "parameters");
    int ni = engine_input_count(m->engine);
    if (!json_is_object(root) || !json_is_array(inputs)) {
        ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "the request needs an \"inputs\" array");
        goto out;
    }
    if ((outputs && !json_is_array(outputs)) || (params && !json_is_object(params))) {
        ret = http_fail(r, MHD_HTTP_BAD_REQUEST,
                        "\"outputs\" must be an array and \"parameters\" an object");
        goto out;
    }
    json_t *all_binary = json_object_get(params, "binary_data_output");
    if (all_binary && !json_is_boolean(all_binary)) {
        ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "binary_data_output must be a boolean");
        goto out;
    }
    if ((int)json_array_size(inputs) != ni) {
        ret = http_fail(r, MHD_HTTP_BAD_REQUEST, "model '%s' takes %d inputs, got %zu", m->name,
                        ni, json_array_size(inputs));
        goto out;
    }
    int by_input[8];
    const v2_dtype *types[8];
    size_t offsets[8];
    int64_t sizes[8], items; /* each row is one item of the batcher */
    if ((ret = match_inputs(r, inputs, by_input, types, &items)) ||
        (ret = locate_binary(r, inputs, json_len, offsets, sizes)) ||
        (outputs && (ret = check_outputs(r, outputs))))
        goto out;
    r->v2_binary_all = json_is_true(all_binary);
    if (outputs)
        r->v2_outputs = json_incref(outputs);
    json_t *id = json_object_get(root, "id");
    if (json_is_string(id))
        r->v2_id = json_incref(id);
    if (types[0]->kind == V2_BYTES) { /* ni is 1: BYTES needs an image model */
        ret = prepare_images(r, json_array_get(inputs, 0), items, offsets[0], sizes[0]);
        goto out;
    }
    for (int k = 0; k < ni; k++) {
        int i = by_input[k];
        int64_t want = batcher_input_elems(m->batcher, k) * items;
        bool ok = sizes[i] >= 0 ? sizes[i] == want * types[k]->size
                                : split.has_data[i] && split.data[i].count == want;
        if (types[k]->kind == V2_BYTES || !ok) {
            ret = http_fail(r, MHD_HTTP_BAD_REQUEST,
                            sizes[i] >= 0 ? "input '%s': binary_data_size must be %lld bytes "
                                            "(%s, as the shape)"
                                          : "input '%s': \"data\" must hold %lld numbers (flat "
                                            "or nested as the shape)%.0s",
                            name_of(json_array_get(inputs, i)),
                            (long long)(sizes[i] >= 0 ? want * types[k]->size : want),
                            types[k]->name);
            goto out;
        }
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
    for (int k = 0; k < ni; k++) {
        int i = by_input[k];
        if (sizes[i] >= 0)
            v2_to_float(types[k], (const uint8_t *)r->body.data + offsets[i],
                        batcher_input_elems(m->batcher, k) * items, r->input_ptrs[k]);
        else
            json_tensor_parse(r->body.data, &split.data[i], (float *)r->input_ptrs[k]);
    }
    http_drop_body(r);
    ret = http_submit_job(r);
out:
    if (ret)
        http_drop_body(r);
    json_decref(root);
    json_tensor_split_free(&split);
    return ret;
}

/* The request's entry for an output, or NULL (all wanted when none named);
 * *wanted says whether it is answered at all. */
static json_t *requested(const request *r, const char *name, bool *wanted)
{
    *wanted = !r->v2_outputs;
    size_t i;
    json_t *o;
    json_array_foreach(r->v2_outputs, i, o) {
        const char *n = json_string_value(json_object_get(o, "name"));
        if (n && strcmp(n, name) == 0) {
            *wanted = true;
            return o;
        }
    }
    return NULL;
}

/* Binary outputs, appended as they are made. */
static bool bin_add(byte_buf *b, const void *p, size_t n)
{
    return byte_buf_append(b, p, n, SIZE_MAX, 0);
}

/* Output value i as a double, whatever the engine's type. */
static double value_at(const engine_tensor_info *t, const void *data, int64_t i)
{
    return t->dtype == DTYPE_INT64 ? (double)((const int64_t *)data)[i]
                                   : (double)((const float *)data)[i];
}

/* classification = K: per row, the K highest values as "value:index[:label]"
 * (postproc_top_k: ties the lower index first, NaN last), as JSON strings or
 * BYTES binary. */
static bool classify_output(request *r, const engine_tensor_info *t, const void *data,
                            int64_t per, int count, json_t *strings, byte_buf *bin)
{
    served_model *m = r->model;
    int k = count < per ? count : (int)per;
    postproc_pred *top = malloc((size_t)k * sizeof *top);
    float *row = t->dtype == DTYPE_INT64 ? malloc((size_t)per * sizeof *row) : NULL;
    bool ok = top && (t->dtype != DTYPE_INT64 || row);
    for (int item = 0; ok && item < r->job.n_items; item++) {
        int64_t base = (int64_t)item * per;
        const float *v = (const float *)data + base;
        if (row) { /* int64 outputs ranked as floats, printed as they are */
            for (int64_t i = 0; i < per; i++)
                row[i] = (float)((const int64_t *)data)[base + i];
            v = row;
        }
        postproc_top_k(v, (int)per, k, top);
        for (int c = 0; ok && c < k; c++) {
            char s[4200];
            int idx = top[c].index;
            const char *label = idx < m->n_labels ? m->labels[idx] : NULL;
            int n = snprintf(s, sizeof s, label ? "%f:%d:%s" : "%f:%d",
                             value_at(t, data, base + idx), idx, label);
            n = n < (int)sizeof s ? n : (int)sizeof s - 1;
            if (bin) {
                uint8_t len4[4];
                v2_put_le32(len4, (uint32_t)n);
                ok = bin_add(bin, len4, 4) && bin_add(bin, s, (size_t)n);
            } else {
                ok = json_array_append_new(strings, json_stringn(s, (size_t)n)) == 0;
            }
        }
    }
    free(top);
    free(row);
    return ok;
}

enum MHD_Result api_v2_infer_finish(request *r)
{
    served_model *m = r->model;
    int no = engine_output_count(m->engine);
    json_t *outs = json_array();
    byte_buf bin = {0};
    bool ok = true, any_binary = false;
    for (int k = 0; ok && k < no; k++) {
        engine_tensor_info t;
        engine_error e;
        engine_output_info(m->engine, k, batcher_max_batch(m->batcher), &t, &e);
        bool wanted;
        json_t *req = requested(r, t.name, &wanted);
        if (!wanted)
            continue;
        json_t *params = json_object_get(req, "parameters");
        json_t *bin_param = json_object_get(params, "binary_data");
        bool binary = bin_param ? json_is_true(bin_param) : r->v2_binary_all;
        any_binary |= binary;
        int count = (int)json_integer_value(json_object_get(params, "classification"));
        int64_t per = batcher_output_elems(m->batcher, k);
        int64_t total = per * r->job.n_items;
        const void *data = r->output_ptrs[k];
        bool is_int = t.dtype == DTYPE_INT64;
        json_t *shape = json_array(), *values = binary ? NULL : json_array();
        json_array_append_new(shape, json_integer(r->job.n_items));
        size_t before = bin.len;
        if (count) {
            json_array_append_new(shape, json_integer(count < per ? count : per));
            ok = classify_output(r, &t, data, per, count, values, binary ? &bin : NULL);
        } else {
            for (int d = 1; d < t.rank; d++)
                json_array_append_new(shape, json_integer(t.dims[d]));
            if (binary)
                ok = bin_add(&bin, data, (size_t)total * (is_int ? 8 : 4)); /* little-endian hosts */
            for (int64_t i = 0; !binary && i < total; i++)
                json_array_append_new(values, is_int ? json_integer(((const int64_t *)data)[i])
                                                     : json_float(((const float *)data)[i]));
        }
        json_t *o = json_pack("{s:s,s:s,s:o}", "name", t.name, "datatype",
                              count ? "BYTES" : is_int ? "INT64" : "FP32", "shape", shape);
        if (binary)
            json_object_set_new(o, "parameters",
                                json_pack("{s:I}", "binary_data_size",
                                          (json_int_t)(bin.len - before)));
        else
            json_object_set_new(o, "data", values);
        json_array_append_new(outs, o);
    }
    char version[24];
    snprintf(version, sizeof version, "%lld", (long long)m->version);
    json_t *body = json_pack("{s:s,s:s,s:o}", "model_name", m->name, "model_version", version,
                             "outputs", outs);
    if (r->v2_id)
        json_object_set(body, "id", r->v2_id);
    if (!ok) {
        json_decref(body);
        free(bin.data);
        return http_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    if (!any_binary)
        return http_respond_json(r, MHD_HTTP_OK, body);
    /* the JSON, then the binary outputs in order; the header says where
     * the JSON ends */
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(body);
    size_t tlen = text ? strlen(text) : 0;
    char *all = text ? malloc(tlen + bin.len + 1) : NULL;
    if (!all) {
        free(text);
        free(bin.data);
        return http_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    memcpy(all, text, tlen);
    if (bin.len)
        memcpy(all + tlen, bin.data, bin.len);
    free(text);
    free(bin.data);
    r->answer_json_len = (long long)tlen;
    return http_respond_text(r, MHD_HTTP_OK, "application/octet-stream", all, tlen + bin.len);
}
