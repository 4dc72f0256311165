/* The model repository extension (KServe v2 / Triton's
 * extension_model_repository):
 *
 *   POST /v2/repository/index               [{"name", "version", "state", "reason"}]
 *   POST /v2/repository/models/{name}/load  200 once loaded, 400 with why
 *   POST /v2/repository/models/{name}/unload 200 once out of service
 *
 * A load or unload is the repository manager's work (model_repo.h), so the
 * connection is suspended meanwhile and holds no thread; the manager's
 * callback resumes it. An unload answers once new requests no longer reach
 * the model; what it holds drains after (the index shows UNLOADING).
 * These endpoints change what is served: they answer only where
 * model_control allows (config.h), 403 elsewhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define MAX_REPO_BODY 65536

enum MHD_Result api_repo_start(request *r)
{
    if (!r->srv->model_control)
        return http_defer(r, MHD_HTTP_FORBIDDEN,
                          "model control is off on this listener (model_control in "
                          "visiond.json: on by default only on a loopback address)");
    char type[128];
    http_media_type(r, type, sizeof type);
    if (type[0] && strcmp(type, "application/json") != 0)
        return http_defer(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                          "unsupported content type '%s': send application/json", type);
    const char *cl =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > MAX_REPO_BODY)
        return http_defer(r, MHD_HTTP_CONTENT_TOO_LARGE,
                          "a repository request's body is at most %d bytes", MAX_REPO_BODY);
    return MHD_YES;
}

static void repo_done(void *arg, unsigned status, const char *message)
{
    request *r = arg;
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        http_fail_busy(r, "shutting_down", "%s", message);
    else if (status)
        http_fail(r, status, "%s", message);
    http_resume(r);
}

/* The index: one row per version, and one without a version for a model
 * with none (unloaded, or none loaded yet). */
static enum MHD_Result index_answer(request *r, bool ready_only)
{
    model_view *v;
    int n = model_repo_list(&r->srv->repo, &v);
    if (n < 0)
        return http_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    json_t *rows = json_array();
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < v[i].n_versions; k++) {
            const version_view *vv = &v[i].versions[k];
            if (ready_only && vv->state != MODEL_READY)
                continue;
            char ver[24];
            snprintf(ver, sizeof ver, "%lld", (long long)vv->version);
            json_array_append_new(rows, json_pack("{s:s,s:s,s:s,s:s}", "name", v[i].name,
                                                  "version", ver, "state",
                                                  model_state_index_name(vv->state), "reason",
                                                  vv->reason));
        }
        if (v[i].n_versions == 0 && !ready_only)
            json_array_append_new(
                rows, json_pack("{s:s,s:s,s:s}", "name", v[i].name, "state",
                                model_state_index_name(v[i].state), "reason",
                                v[i].state == MODEL_LOADING ? ""
                                : v[i].error[0]             ? v[i].error
                                                            : "unloaded"));
    }
    model_repo_list_free(v, n);
    return http_respond_json(r, MHD_HTTP_OK, rows);
}

enum MHD_Result api_repo_admit(request *r)
{
    if (r->body.len > MAX_REPO_BODY)
        return http_respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                                  "a repository request's body is at most %d bytes",
                                  MAX_REPO_BODY);
    json_t *body = NULL;
    if (r->body.len) {
        json_error_t jerr;
        body = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(body)) {
            json_decref(body);
            return http_respond_error(r, MHD_HTTP_BAD_REQUEST,
                                      "the body must be a JSON object (%s)", jerr.text);
        }
    }
    bool is_index = !r->model_name[0];
    const char *bad = NULL;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (is_index && strcmp(key, "ready") == 0 && json_is_boolean(v))
            continue;
        if (!is_index && strcmp(key, "parameters") == 0 && json_is_object(v)) {
            const char *pk;
            json_t *pv;
            json_object_foreach(v, pk, pv) /* no ensembles: nothing depends on a model */
                if (strcmp(pk, "unload_dependents") != 0 || !json_is_boolean(pv))
                    bad = pk;
            if (!bad)
                continue;
            break;
        }
        bad = key;
        break;
    }
    bool ready_only = json_is_true(json_object_get(body, "ready"));
    char what[80];
    snprintf(what, sizeof what, "%.70s", bad ? bad : "");
    json_decref(body);
    if (bad)
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "unsupported key or parameter '%s'",
                                  what);
    if (is_index)
        return index_answer(r, ready_only);
    if (!model_name_valid(r->model_name))
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "'%.64s' is not a model name",
                                  r->model_name);
    http_drop_body(r);
    bool load = strstr(r->route->pattern, "/load") != NULL;
    http_suspend(r); /* first: the manager may be done before the request returns */
    if (!model_repo_request(&r->srv->repo, load ? REPO_LOAD : REPO_UNLOAD, r->model_name,
                            repo_done, r)) {
        http_fail_busy(r, "shutting_down", "the server is stopping");
        http_resume(r);
    }
    return MHD_YES;
}

enum MHD_Result api_repo_finish(request *r)
{
    char *empty = strdup("{}");
    return empty ? http_respond_text(r, MHD_HTTP_OK, "application/json", empty, 2) : MHD_NO;
}
