/* Every endpoint, in one table: method, path pattern, metrics label and
 * handler. Adding an endpoint is one line here plus its handler; http.c
 * looks requests up here and knows no endpoint by name.
 *
 * Patterns are literal segments and captures: {model} (the model's name)
 * and {version} (one version of it; without, the highest serving).
 * A trailing slash is ignored. A path that matches with another method is
 * answered 405 with the methods it takes. */
#include <string.h>

#include "server.h"

static enum MHD_Result alive(request *r)
{
    /* "live" is the OIP's field (inference_rest.md, Health) */
    return http_respond_json(r, MHD_HTTP_OK,
                             json_pack("{s:s,s:b}", "status", "alive", "live", 1));
}

static enum MHD_Result v2_ready(request *r)
{
    return api_v2_ready(r, true);
}

static enum MHD_Result readyz(request *r)
{
    return api_v2_ready(r, false);
}

static const post_api classify = {api_image_start, api_image_admit, api_classify_finish};
static const post_api task = {api_image_start, api_image_admit, api_task_finish};
static const post_api infer = {api_v2_infer_start, api_v2_infer_admit, api_v2_infer_finish};
static const post_api repo = {api_repo_start, api_repo_admit, api_repo_finish};

static const route routes[] = {
    {"GET", "/", "page", api_page, NULL, 0},
    {"GET", "/metrics", "metrics", api_metrics, NULL, ROUTE_METRICS},
    {"GET", "/healthz", "health", alive, NULL, ROUTE_PUBLIC},
    {"GET", "/readyz", "health", readyz, NULL, ROUTE_PUBLIC},
    {"GET", "/v1/models", "metadata", api_v1_models, NULL, 0},
    {"POST", "/v1/models/{model}/classify", "classify", NULL, &classify, 0},
    {"POST", "/v1/models/{model}/versions/{version}/classify", "classify", NULL, &classify, 0},
    {"POST", "/v1/models/{model}/detect", "detect", NULL, &task, 0},
    {"POST", "/v1/models/{model}/versions/{version}/detect", "detect", NULL, &task, 0},
    {"POST", "/v1/models/{model}/segment", "segment", NULL, &task, 0},
    {"POST", "/v1/models/{model}/versions/{version}/segment", "segment", NULL, &task, 0},
    {"GET", "/v1/models/{model}/algorithms", "metadata", api_v1_algorithms, NULL, 0},
    {"GET", "/v1/models/{model}/versions/{version}/algorithms", "metadata", api_v1_algorithms,
     NULL, 0},
    {"GET", "/v2", "metadata", api_v2_server, NULL, 0},
    {"GET", "/v2/health/live", "health", alive, NULL, ROUTE_PUBLIC},
    {"GET", "/v2/health/ready", "health", v2_ready, NULL, ROUTE_PUBLIC},
    {"GET", "/v2/models/{model}", "metadata", api_v2_model, NULL, 0},
    {"GET", "/v2/models/{model}/versions/{version}", "metadata", api_v2_model, NULL, 0},
    {"GET", "/v2/models/{model}/ready", "health", api_v2_model_ready, NULL, ROUTE_ANY_STATE},
    {"GET", "/v2/models/{model}/versions/{version}/ready", "health", api_v2_model_ready, NULL,
     ROUTE_ANY_STATE},
    {"POST", "/v2/models/{model}/infer", "infer", NULL, &infer, 0},
    {"POST", "/v2/models/{model}/versions/{version}/infer", "infer", NULL, &infer, 0},
    {"POST", "/v2/repository/index", "repository", NULL, &repo, ROUTE_CONTROL},
    {"POST", "/v2/repository/models/{model}/load", "repository", NULL, &repo, ROUTE_CONTROL},
    {"POST", "/v2/repository/models/{model}/unload", "repository", NULL, &repo, ROUTE_CONTROL},
};

/* The next segment of *p (after its '/'), as [start, start+len). */
static bool next_segment(const char **p, const char **start, size_t *len)
{
    if (**p != '/')
        return false;
    *start = *p + 1;
    const char *end = strchr(*start, '/');
    *len = end ? (size_t)(end - *start) : strlen(*start);
    *p = *start + *len;
    return true;
}

static bool matches(const char *pattern, const char *url, size_t url_len, route_match *m)
{
    const char *p = pattern, *u = url, *u_end = url + url_len;
    m->model[0] = m->version[0] = '\0';
    while (*p) {
        const char *ps, *us;
        size_t pl, ul;
        if (!next_segment(&p, &ps, &pl) || u >= u_end || !next_segment(&u, &us, &ul))
            return false;
        char *capture = pl == 7 && strncmp(ps, "{model}", 7) == 0      ? m->model
                        : pl == 9 && strncmp(ps, "{version}", 9) == 0 ? m->version
                                                                       : NULL;
        size_t room = capture == m->model ? sizeof m->model : sizeof m->version;
        if (capture) {
            if (ul == 0 || ul >= room)
                return false;
            memcpy(capture, us, ul);
            capture[ul] = '\0';
        } else if (pl != ul || strncmp(ps, us, ul) != 0) {
            return false;
        }
    }
    return u == u_end;
}

const route *route_find(const char *method, const char *url, route_match *m)
{
    size_t len = strlen(url);
    if (len > 1 && url[len - 1] == '/')
        len--;
    bool head = strcmp(method, "HEAD") == 0;
    m->allow = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route *r = &routes[i];
        if (!matches(r->pattern, url, len, m))
            continue;
        if (strcmp(method, r->method) == 0 || (head && strcmp(r->method, "GET") == 0))
            return r;
        m->allow = strcmp(r->method, "GET") == 0 ? "GET, HEAD" : r->method;
    }
    return NULL;
}
