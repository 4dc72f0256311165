/* HTTP plumbing over libmicrohttpd: the listening socket, routing, bounded
 * request bodies (raw, JSON or multipart/form-data through MHD's post
 * processor), suspend/resume around the batcher, and JSON responses that
 * also feed the request metrics. The life of a request is described in
 * server.h; the endpoints themselves live in api_*.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

#define POST_BUFFER 65536

int64_t http_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

json_t *json_float(double v)
{
    return v == v && v - v == 0 ? json_real(v) : json_null(); /* NaN, inf: null */
}

/* --- responses --- */

static void record(request *r, unsigned status)
{
    const server_metrics *m = server_metrics_get();
    char code[8];
    snprintf(code, sizeof code, "%u", status);
    const char *model = r->model ? r->model->name : "";
    metric_add(m->requests, 1, model, r->endpoint ? r->endpoint : "other", code);
    if (r->model)
        metric_observe(m->request_seconds, (double)(http_now_ns() - r->t0_ns) / 1e9, model,
                       r->endpoint);
}

static enum MHD_Result queue(request *r, unsigned status, const char *content_type, char *data,
                             size_t len, bool retry_after)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_SERVER, "visiond/" VISIOND_VERSION);
    if (retry_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                r->route == ROUTE_CLASSIFY || r->route == ROUTE_V2_INFER
                                    ? "POST"
                                    : "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    record(r, status);
    if (r->arriving) { /* refused before submitting: no longer on its way */
        batcher_arriving(r->model->batcher, -1);
        r->arriving = false;
    }
    if (r->state == REQ_RESUMED)
        atomic_fetch_sub(&r->srv->inflight, 1);
    r->state = REQ_ANSWERED;
    return ret;
}

enum MHD_Result http_respond_text(request *r, unsigned status, const char *content_type,
                                  char *text, size_t len)
{
    return queue(r, status, content_type, text, len, false);
}

enum MHD_Result http_respond_json(request *r, unsigned status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(body);
    if (!text)
        return MHD_NO;
    size_t len = strlen(text);
    return queue(r, status, "application/json", text, len, status == MHD_HTTP_SERVICE_UNAVAILABLE);
}

enum MHD_Result http_respond_error(request *r, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (status >= 500)
        log_msg(LOG_WARN, "%u %s", status, msg);
    else
        log_msg(LOG_DEBUG, "%u %s", status, msg);
    return http_respond_json(r, status, json_pack("{s:s}", "error", msg));
}

/* --- routing --- */

/* Copies the next path segment of *p into out; false if there is none. */
static bool segment(const char **p, char *out, size_t n)
{
    if (**p != '/')
        return false;
    const char *s = *p + 1, *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len == 0 || len >= n)
        return false;
    memcpy(out, s, len);
    out[len] = 0;
    *p = s + len;
    return true;
}

static route_id route_of(const char *url, char *model, size_t n)
{
    model[0] = 0;
    if (strcmp(url, "/metrics") == 0)
        return ROUTE_METRICS;
    if (strcmp(url, "/healthz") == 0)
        return ROUTE_HEALTHZ;
    if (strcmp(url, "/readyz") == 0)
        return ROUTE_READYZ;
    if (strcmp(url, "/v1/models") == 0 || strcmp(url, "/v1/models/") == 0)
        return ROUTE_V1_MODELS;
    if (strcmp(url, "/v2") == 0 || strcmp(url, "/v2/") == 0)
        return ROUTE_V2_SERVER;
    if (strcmp(url, "/v2/health/live") == 0)
        return ROUTE_V2_LIVE;
    if (strcmp(url, "/v2/health/ready") == 0)
        return ROUTE_V2_READY;
    const char *p;
    if (strncmp(url, "/v1/models/", 10) == 0) {
        p = url + 10;
        if (segment(&p, model, n) && strcmp(p, "/classify") == 0)
            return ROUTE_CLASSIFY;
        if (model[0] && strcmp(p, "/algorithms") == 0)
            return ROUTE_V1_ALGORITHMS;
        return ROUTE_NONE;
    }
    if (strncmp(url, "/v2/models/", 10) == 0) {
        p = url + 10;
        if (!segment(&p, model, n))
            return ROUTE_NONE;
        char version[32];
        if (strncmp(p, "/versions/", 9) == 0) { /* KServe allows an explicit version */
            const char *q = p + 9;
            if (!segment(&q, version, sizeof version))
                return ROUTE_NONE;
            p = q;
        }
        if (*p == 0)
            return ROUTE_V2_MODEL;
        if (strcmp(p, "/ready") == 0)
            return ROUTE_V2_MODEL_READY;
        if (strcmp(p, "/infer") == 0)
            return ROUTE_V2_INFER;
    }
    return ROUTE_NONE;
}

static const char *endpoint_label(route_id r)
{
    switch (r) {
    case ROUTE_CLASSIFY: return "classify";
    case ROUTE_V2_INFER: return "infer";
    case ROUTE_V1_MODELS: case ROUTE_V2_SERVER: case ROUTE_V2_MODEL: case ROUTE_V1_ALGORITHMS:
        return "metadata";
    case ROUTE_METRICS: return "metrics";
    case ROUTE_HEALTHZ: case ROUTE_READYZ: case ROUTE_V2_LIVE: case ROUTE_V2_READY:
    case ROUTE_V2_MODEL_READY: return "health";
    default: return "other";
    }
}

static bool is_post_route(route_id r)
{
    return r == ROUTE_CLASSIFY || r == ROUTE_V2_INFER;
}

/* --- bodies --- */

static bool buf_append(byte_buf *b, const char *data, size_t len, size_t limit)
{
    if (b->len + len > limit)
        return false;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap < b->len + len)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        char *nd = realloc(b->data, cap);
        if (!nd)
            return false;
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return true;
}

static enum MHD_Result on_post_part(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *filename, const char *content_type,
                                    const char *transfer_encoding, const char *data,
                                    uint64_t off, size_t size)
{
    (void)kind, (void)key, (void)transfer_encoding;
    request *r = cls;
    bool is_file = filename != NULL ||
                   (content_type && (strncasecmp(content_type, "image/", 6) == 0 ||
                                     strncasecmp(content_type, "application/octet-stream", 24) == 0));
    if (!is_file)
        return MHD_YES; /* plain form fields are ignored */
    if (off == 0) {
        if (r->n_parts == MAX_IMAGES_PER_REQUEST) {
            r->too_many_parts = true;
            return MHD_NO;
        }
        r->n_parts++;
    }
    if (size && !buf_append(&r->parts[r->n_parts - 1], data, size, r->srv->cfg.max_body_bytes)) {
        r->body_too_large = true;
        return MHD_NO;
    }
    return MHD_YES;
}

/* The media type of the request, lower-cased, without parameters. */
static void media_type(struct MHD_Connection *c, char *out, size_t n)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t i = 0;
    for (; ct && ct[i] && ct[i] != ';' && ct[i] != ' ' && i + 1 < n; i++)
        out[i] = (char)(ct[i] >= 'A' && ct[i] <= 'Z' ? ct[i] + 32 : ct[i]);
    out[i] = 0;
}

/* Checks that can answer before the body is read. */
static enum MHD_Result start_post(request *r)
{
    server *s = r->srv;
    const char *cl =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || n > s->cfg.max_body_bytes)
            return http_respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                                      "the body is larger than the limit of %zu bytes",
                                      s->cfg.max_body_bytes);
    }
    char type[128];
    media_type(r->conn, type, sizeof type);
    if (r->route == ROUTE_CLASSIFY) {
        if (strcmp(type, "multipart/form-data") == 0) {
            r->pp = MHD_create_post_processor(r->conn, POST_BUFFER, on_post_part, r);
            if (!r->pp)
                return http_respond_error(r, MHD_HTTP_BAD_REQUEST,
                                          "multipart/form-data without a boundary");
        } else if (type[0] && strcmp(type, "image/jpeg") != 0 && strcmp(type, "image/png") != 0 &&
                   strcmp(type, "application/octet-stream") != 0) {
            return http_respond_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                      "unsupported content type '%s': send image/jpeg, image/png, "
                                      "application/octet-stream or multipart/form-data",
                                      type);
        }
        if (!r->model->image_input)
            return http_respond_error(r, MHD_HTTP_BAD_REQUEST,
                                      "model '%s' does not take images; use "
                                      "/v2/models/%s/infer",
                                      r->model->name, r->model->name);
        const char *k = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "top_k");
        r->top_k = 5;
        if (k) {
            char *end;
            long v = strtol(k, &end, 10);
            if (!*k || *end || v < 1 || v > 1000000)
                return http_respond_error(r, MHD_HTTP_BAD_REQUEST,
                                          "top_k must be a positive integer");
            r->top_k = (int)v;
        }
    } else if (type[0] && strcmp(type, "application/json") != 0) {
        return http_respond_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                  "unsupported content type '%s': send application/json", type);
    }
    batcher_arriving(r->model->batcher, +1);
    r->arriving = true;
    return MHD_YES;
}

static enum MHD_Result first_call(request *r, const char *url, const char *method)
{
    server *s = r->srv;
    char name[80];
    r->route = route_of(url, name, sizeof name);
    r->endpoint = endpoint_label(r->route);
    if (r->route == ROUTE_NONE)
        return http_respond_error(r, MHD_HTTP_NOT_FOUND, "no such endpoint: %s", url);
    bool post = is_post_route(r->route);
    bool head = strcmp(method, "HEAD") == 0;
    if (post ? strcmp(method, "POST") != 0 : (strcmp(method, "GET") != 0 && !head))
        return http_respond_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %s",
                                  method, url);
    if (name[0]) {
        served_model *m = model_name_valid(name) ? model_repo_find(&s->repo, name) : NULL;
        if (!m)
            return http_respond_error(r, MHD_HTTP_NOT_FOUND, "unknown model '%.64s'", name);
        r->model = m;
        if (post && atomic_load(&m->state) != MODEL_READY)
            return http_respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "model '%s' is %s%s%s",
                                      m->name, model_state_name(atomic_load(&m->state)),
                                      m->error[0] ? ": " : "", m->error);
    }
    if (post) {
        if (atomic_load(&s->stopping))
            return http_respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
        return start_post(r);
    }
    switch (r->route) {
    case ROUTE_METRICS: return api_metrics(r);
    case ROUTE_V1_MODELS: return api_v1_models(r);
    case ROUTE_V1_ALGORITHMS: return api_v1_algorithms(r);
    case ROUTE_V2_SERVER: return api_v2_server(r);
    case ROUTE_V2_MODEL: return api_v2_model(r);
    case ROUTE_V2_MODEL_READY: return api_v2_model_ready(r);
    case ROUTE_V2_LIVE:
    case ROUTE_HEALTHZ:
        return http_respond_json(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "alive"));
    case ROUTE_V2_READY: return api_v2_ready(r, true);
    case ROUTE_READYZ: return api_v2_ready(r, false);
    default: return http_respond_error(r, MHD_HTTP_NOT_FOUND, "no such endpoint: %s", url);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    request *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = cls;
        r->conn = conn;
        r->t0_ns = http_now_ns();
        *con_cls = r;
        return first_call(r, url, method);
    }
    if (r->state == REQ_ANSWERED) { /* refused early: discard what the client still sends */
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->state == REQ_READING && *upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        r->body_total += n;
        if (r->body_total > r->srv->cfg.max_body_bytes) {
            /* MHD can only answer once the body is in: discard it (up to a
             * few times the limit, then drop the connection) and answer 413 */
            r->body_too_large = true;
            return r->body_total > 4 * r->srv->cfg.max_body_bytes ? MHD_NO : MHD_YES;
        }
        if (r->pp) {
            if (MHD_post_process(r->pp, upload_data, n) != MHD_YES)
                r->bad_multipart = true;
        } else if (!buf_append(&r->body, upload_data, n, r->srv->cfg.max_body_bytes)) {
            r->body_too_large = true;
        }
        return MHD_YES;
    }
    if (r->state == REQ_READING && r->body_too_large)
        return http_respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                                  "the body is larger than the limit of %zu bytes",
                                  r->srv->cfg.max_body_bytes);
    if (r->state == REQ_READING && r->too_many_parts)
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "more than %d files in one request",
                                  MAX_IMAGES_PER_REQUEST);
    if (r->state == REQ_READING && r->bad_multipart)
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "malformed multipart body");
    if (r->state == REQ_READING)
        return r->route == ROUTE_CLASSIFY ? api_classify_start(r) : api_v2_infer_start(r);
    if (r->state == REQ_RESUMED) {
        if (r->job.status == JOB_SHUTDOWN)
            return http_respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", r->job.error);
        if (r->job.status == JOB_TIMEOUT) {
            metric_add(server_metrics_get()->timeouts, 1, r->model->name);
            return http_respond_error(r, MHD_HTTP_GATEWAY_TIMEOUT,
                                      "no answer within %lld ms (%s)",
                                      (long long)r->model->cfg.timeout_ms, r->job.error);
        }
        if (r->job.status == JOB_FAILED) {
            metric_add(server_metrics_get()->inference_failures, 1, r->model->name);
            return http_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "inference failed: %s",
                                      r->job.error);
        }
        const server_metrics *m = server_metrics_get();
        metric_observe(m->queue_seconds, r->job.queue_ms / 1e3, r->model->name);
        metric_observe(m->inference_seconds, r->job.inference_ms / 1e3, r->model->name);
        return r->route == ROUTE_CLASSIFY ? api_classify_finish(r) : api_v2_infer_finish(r);
    }
    return MHD_YES; /* suspended: MHD does not call us then */
}

/* --- jobs --- */

int request_alloc_job(request *r, int n_items, bool u8)
{
    batcher *b = r->model->batcher;
    engine *e = r->model->engine;
    int ni = engine_input_count(e), no = engine_output_count(e);
    if (ni > 8 || no > 8)
        return -1;
    size_t in_total = 0, out_total = 0;
    size_t in_size[8];
    for (int k = 0; k < ni; k++) {
        in_size[k] = k == 0 && u8 ? 1 : sizeof(float);
        in_total += (size_t)batcher_input_elems(b, k) * in_size[k] * (size_t)n_items;
    }
    for (int k = 0; k < no; k++)
        out_total += (size_t)batcher_output_elems(b, k) * batcher_output_elem_size(b, k) *
                     (size_t)n_items;
    r->input_mem = malloc(in_total + 64 * (size_t)(ni + 1));
    r->output_mem = malloc(out_total + 64);
    if (!r->input_mem || !r->output_mem)
        return -1;
    char *ip = r->input_mem, *op = r->output_mem;
    for (int k = 0; k < ni; k++) {
        r->input_ptrs[k] = ip;
        ip += ((size_t)batcher_input_elems(b, k) * in_size[k] * (size_t)n_items + 63) & ~(size_t)63;
    }
    for (int k = 0; k < no; k++) {
        r->output_ptrs[k] = op;
        op += (size_t)batcher_output_elems(b, k) * batcher_output_elem_size(b, k) * (size_t)n_items;
    }
    r->job.n_items = n_items;
    r->job.u8 = u8;
    r->job.inputs = r->input_ptrs;
    r->job.outputs = r->output_ptrs;
    return 0;
}

static void on_job_done(batch_job *job)
{
    request *r = job->user;
    r->state = REQ_RESUMED;
    MHD_resume_connection(r->conn);
}

enum MHD_Result http_submit(request *r)
{
    server *s = r->srv;
    r->job.on_done = on_job_done;
    r->job.user = r;
    r->state = REQ_SUSPENDED;
    atomic_fetch_add(&s->inflight, 1);
    /* suspend first: the job may finish before this function returns */
    MHD_suspend_connection(r->conn);
    batcher_result br = atomic_load(&s->stopping) ? BATCHER_STOPPED
                                                  : batcher_submit(r->model->batcher, &r->job);
    if (r->arriving) {
        batcher_arriving(r->model->batcher, -1);
        r->arriving = false;
    }
    if (br != BATCHER_OK) {
        r->job.status = JOB_SHUTDOWN;
        if (br == BATCHER_FULL) {
            metric_add(server_metrics_get()->rejected, 1, r->model->name, "queue_full");
            snprintf(r->job.error, sizeof r->job.error,
                     "the queue of model '%s' is full (%d items); retry later", r->model->name,
                     r->model->cfg.max_queue_size);
        } else {
            snprintf(r->job.error, sizeof r->job.error, "shutting down");
        }
        r->state = REQ_RESUMED;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    request *r = *con_cls;
    if (!r)
        return;
    if (r->arriving)
        batcher_arriving(r->model->batcher, -1);
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    free(r->body.data);
    for (int i = 0; i < r->n_parts; i++)
        free(r->parts[i].data);
    free(r->input_mem);
    free(r->output_mem);
    json_decref(r->v2_outputs);
    json_decref(r->v2_id);
    free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = 0;
    log_msg(LOG_WARN, "http: %s", msg);
}

static int open_listener(server *s, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    int rc = getaddrinfo(s->cfg.host, port, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve %s: %s", s->cfg.host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    char last[256] = "no address";
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            snprintf(last, sizeof last, "%s", strerror(errno));
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        snprintf(last, sizeof last, "%s", strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", s->cfg.listen, last);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    s->listen_fd = fd;
    return 0;
}

int http_start(server *s, char *err, size_t errlen)
{
    if (open_listener(s, err, errlen))
        return -1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = (unsigned)(s->cfg.http_threads ? s->cfg.http_threads
                                                      : (cores > 2 ? cores : 2));
    s->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_LISTEN_SOCKET,
        s->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096, MHD_OPTION_END);
    if (!s->daemon) {
        close(s->listen_fd);
        snprintf(err, errlen, "libmicrohttpd failed to start on %s", s->cfg.listen);
        return -1;
    }
    return 0;
}

void http_stop(server *s)
{
    if (!s->daemon)
        return;
    int fd = MHD_quiesce_daemon(s->daemon);
    if (fd >= 0)
        close(fd);
    /* Requests already queued still get their answer: each is bounded by
     * its model's timeout_ms, after which the batcher answers 504. */
    for (int i = 1; atomic_load(&s->inflight) > 0; i++) {
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
        if (i % 500 == 0)
            log_msg(LOG_INFO, "waiting for %d requests to finish", atomic_load(&s->inflight));
    }
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
