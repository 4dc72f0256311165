/* KServe v2 / Open Inference Protocol over HTTP/JSON, so that KServe and
 * Triton clients work unchanged: server and model metadata, health, and
 * the extensions GET /v2 lists. Inference is in api_v2_infer.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_tensor.h"
#include "server.h"

enum MHD_Result api_v2_server(request *r)
{
    json_t *ext = json_pack("[s,s]", "binary_tensor_data", "classification");
    if (r->srv->model_control)
        json_array_append_new(ext, json_string("model_repository"));
    json_t *body = json_pack("{s:s,s:s,s:o}", "name", "visiond", "version", VISIOND_VERSION,
                             "extensions", ext);
    if (r->srv->insecure) /* beyond loopback without TLS and keys: said where clients look */
        json_object_set_new(body, "insecure", json_true());
    return http_respond_json(r, MHD_HTTP_OK, body);
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
    json_t *body = json_pack("{s:b,s:b,s:b,s:o,s:o}", "live", 1, "ready", ready, "degraded",
                             degraded, "failed_models", failed, "cpu_fallback_models",
                             fell_back);
    unsigned status = ready ? MHD_HTTP_OK : v2 ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_SERVICE_UNAVAILABLE;
    return http_respond_json(r, status, body);
}
