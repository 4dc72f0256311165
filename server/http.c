/* HTTP plumbing over libmicrohttpd: the listening socket, routing, bounded
 * request bodies (raw, JSON or multipart/form-data through MHD's post
 * processor), the hand-off to the decode pool and the batcher with the
 * connection suspended, and JSON responses that also feed the request
 * metrics. The life of a request is described in server.h; the endpoints
 * themselves live in api_*.c; deadlines and departed peers in conn_guard.c.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../engine/clock.h"
#include "../engine/file_read.h"
#include "log.h"
#include "server.h"
#include "tls_certs.h"

#define POST_BUFFER 65536
#define BUDGET_STEP ((size_t)65536) /* chunked bodies take budget this much at a time */

int64_t http_now_ns(void)
{
    return clock_monotonic_ns();
}

json_t *json_float(double v)
{
    return v == v && v - v == 0 ? json_real(v) : json_null(); /* NaN, inf: null */
}

/* --- what a request holds, given back once --- */

static void give_back_body(request *r)
{
    free(r->body.data);
    r->body = (byte_buf){0};
    for (int i = 0; i < r->n_parts; i++) {
        free(r->parts[i].data);
        r->parts[i] = (byte_buf){0};
    }
    r->n_parts = 0;
    if (r->budget_held) {
        body_budget_give(&r->srv->bodies, r->budget_held);
        r->budget_held = 0;
    }
}

/* Room in the queue, arrival count, body memory: everything but the
 * request itself. Called once it is answered, or its client has gone. */
static void release(request *r)
{
    if (r->reserved_items) {
        batcher_unreserve(r->model->batcher, r->reserved_items);
        r->reserved_items = 0;
    }
    if (r->arriving) { /* no longer on its way to the batcher */
        batcher_arriving(r->model->batcher, -1);
        r->arriving = false;
    }
    if (r->inflight) {
        atomic_fetch_sub(&r->srv->inflight, 1);
        r->inflight = false;
    }
    give_back_body(r);
}

void http_drop_body(request *r)
{
    give_back_body(r);
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
    if (r->server_timing[0] && status == MHD_HTTP_OK)
        MHD_add_response_header(resp, "Server-Timing", r->server_timing);
    if (r->answer_json_len > 0 && status == MHD_HTTP_OK) {
        char n[24];
        snprintf(n, sizeof n, "%lld", r->answer_json_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", n);
    }
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"visiond\"");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    record(r, status);
    release(r);
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

static enum MHD_Result respond_message(request *r, unsigned status, const char *msg)
{
    if (status >= 500)
        log_msg(LOG_WARN, "%u %s", status, msg);
    else
        log_msg(LOG_DEBUG, "%u %s", status, msg);
    return http_respond_json(r, status, json_pack("{s:s}", "error", msg));
}

enum MHD_Result http_respond_error(request *r, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return respond_message(r, status, msg);
}

/* The one place a request is refused for want of capacity: what the
 * client sees and visiond_rejected_total always agree. */
static enum MHD_Result respond_busy(request *r, const char *reason, const char *msg)
{
    enum MHD_Result ret = respond_message(r, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
    metric_add(server_metrics_get()->rejected, 1, r->model ? r->model->name : "", reason);
    return ret;
}

enum MHD_Result http_respond_busy(request *r, const char *reason, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return respond_busy(r, reason, msg);
}

/* An error found before the body is read is answered after it, so the
 * connection can stay open: answering earlier makes libmicrohttpd close
 * it, as it cannot know where the next request would start. A client that
 * waits for "100 Continue" before sending its body is answered at once. */
enum MHD_Result http_defer(request *r, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->deferred_error, sizeof r->deferred_error, fmt, ap);
    va_end(ap);
    r->deferred_status = status;
    const char *expect = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0)
        return respond_message(r, status, r->deferred_error);
    give_back_body(r); /* nothing more is kept */
    return MHD_YES;
}

/* --- what libmicrohttpd does with the URL before we see it --- */

/* Called with the raw URL as soon as the request line is in, before
 * libmicrohttpd splits the query: a query of hundreds of parameters
 * exhausts the connection's memory pool in that split, and 0.9.75 then
 * leaves the connection without an answer until its timeout. Past
 * MAX_QUERY_ARGS, the separators are blanked out (the line is ours to
 * read, not to keep) so the split makes one parameter, and the request
 * is answered 400. The request record starts here. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = cls;
    r->conn = conn;
    r->t0_ns = http_now_ns();
    char *q = strchr(uri, '?');
    int args = q && q[1] ? 1 : 0;
    for (char *p = q; p && *p; p++)
        args += *p == '&';
    if (args > MAX_QUERY_ARGS) {
        r->too_many_args = true;
        for (char *p = q + 1; *p; p++)
            if (*p == '&')
                *p = '_';
    }
    return r;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* %HH decoding as libmicrohttpd's own, except %00, which stays as it is:
 * a NUL in the middle would end the string early, so that
 * /v2/models/mnist%00x served model "mnist". Kept, the name is invalid. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls, (void)conn;
    char *w = s;
    for (const char *p = s; *p;) {
        int hi = p[0] == '%' ? hex_digit(p[1]) : -1, lo = hi >= 0 ? hex_digit(p[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            p += 3;
        } else {
            *w++ = *p++;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

/* --- bodies --- */

/* Appends within `limit`; buffers of a declared length are allocated once. */
bool byte_buf_append(byte_buf *b, const void *data, size_t len, size_t limit, size_t hint)
{
    if (b->len + len > limit)
        return false;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : (hint > b->len + len ? hint : 65536);
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
    if (size && !byte_buf_append(&r->parts[r->n_parts - 1], data, size,
                                 r->srv->cfg.max_body_bytes, 0)) {
        r->body_too_large = true;
        return MHD_NO;
    }
    return MHD_YES;
}

void http_media_type(request *r, char *out, size_t n)
{
    const char *ct =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t i = 0;
    for (; ct && ct[i] && ct[i] != ';' && ct[i] != ' ' && i + 1 < n; i++)
        out[i] = (char)(ct[i] >= 'A' && ct[i] <= 'Z' ? ct[i] + 32 : ct[i]);
    out[i] = 0;
}

typedef struct {
    int content_lengths;
    bool chunked;
} framing;

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind, (void)value;
    framing *f = cls;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        f->content_lengths++;
    if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
        f->chunked = true;
    return MHD_YES;
}

/* Checks that can answer before the body is read. */
static enum MHD_Result start_post(request *r)
{
    server *s = r->srv;
    served_model *m = r->model;
    if (atomic_load(&s->stopping))
        return http_respond_busy(r, "shutting_down", "shutting down");
    const char *cl =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long declared = 0;
    if (cl) {
        char *end;
        errno = 0;
        declared = strtoull(cl, &end, 10);
        if (errno || *end || declared > s->cfg.max_body_bytes)
            return http_respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                                      "the body is larger than the limit of %zu bytes",
                                      s->cfg.max_body_bytes);
    }
    /* nothing is read that the queue could not take or memory could not hold */
    if (batcher_room(m->batcher) < 1)
        return http_respond_busy(r, "queue_full",
                                 "the queue of model '%s' is full (%d items); retry later",
                                 m->name, m->cfg.max_queue_size);
    if (cl && !body_budget_take(&s->bodies, (size_t)declared))
        return http_respond_busy(r, "memory_budget",
                                 "request bodies in memory are at the server's limit of %zu "
                                 "bytes; retry later",
                                 s->bodies.limit);
    r->budget_held = (size_t)declared;
    batcher_arriving(m->batcher, +1);
    r->arriving = true;

    return r->route->post->start(r);
}

bool http_accept_multipart(request *r)
{
    r->pp = MHD_create_post_processor(r->conn, POST_BUFFER, on_post_part, r);
    return r->pp != NULL;
}

/* The API key a request presents: Authorization: Bearer KEY, or X-API-Key. */
static const char *presented_key(request *r)
{
    const char *a =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (a && strncasecmp(a, "Bearer ", 7) == 0) {
        a += 7;
        while (*a == ' ')
            a++;
        return a;
    }
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-API-Key");
}

static enum MHD_Result first_call(request *r, const char *url, const char *method)
{
    server *s = r->srv;
    route_match match;
    conn_guard_body_started(r->conn);
    r->route = route_find(method, url, &match);
    r->allow = match.allow;
    r->endpoint = r->route ? r->route->endpoint : "other";
    framing f = {0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_framing, &f);
    /* where the body ends must be beyond doubt: no second guess for the next request */
    if (f.content_lengths > 1 || (f.content_lengths && f.chunked))
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST,
                                  "%s: the request's length is ambiguous",
                                  f.chunked ? "Content-Length with Transfer-Encoding"
                                            : "more than one Content-Length");
    /* keys first: a client without one learns nothing, not even which paths exist */
    int flags = r->route ? r->route->flags : 0;
    if (s->auth.n && !(flags & ROUTE_PUBLIC) &&
        !((flags & ROUTE_METRICS) && s->cfg.metrics_public)) {
        auth_role role = auth_check(&s->auth, presented_key(r));
        if (role == AUTH_NONE)
            return http_respond_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized");
        if ((flags & ROUTE_CONTROL) && role != AUTH_ADMIN)
            return http_respond_error(r, MHD_HTTP_FORBIDDEN,
                                      "the model repository endpoints need an admin key");
    }
    if (r->too_many_args)
        return http_defer(r, MHD_HTTP_BAD_REQUEST, "more than %d query parameters",
                          MAX_QUERY_ARGS);
    if (!r->route && r->allow)
        return http_defer(r, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %s", method, url);
    if (!r->route)
        return http_defer(r, MHD_HTTP_NOT_FOUND, "no such endpoint: %s", url);
    snprintf(r->model_name, sizeof r->model_name, "%s", match.model);
    if (r->route->flags & ROUTE_CONTROL) /* the repository's own: no model looked up */
        return r->route->post ? r->route->post->start(r) : MHD_YES;
    if (match.model[0]) {
        int64_t version = match.version[0] ? model_version_parse(match.version) : 0;
        unsigned status = MHD_HTTP_NOT_FOUND;
        char why[700];
        served_model *m = NULL;
        if (!model_name_valid(match.model))
            snprintf(why, sizeof why, "unknown model '%.64s'", match.model);
        else if (version < 0)
            snprintf(why, sizeof why, "model '%.64s' has no version '%.30s'", match.model,
                     match.version);
        else
            m = model_repo_acquire(&s->repo, match.model, version, &status, why, sizeof why);
        if (!m && (r->route->flags & ROUTE_ANY_STATE) &&
            (status == MHD_HTTP_SERVICE_UNAVAILABLE || version > 0))
            return MHD_YES; /* the handler answers for a model or version not serving */
        if (!m && status == MHD_HTTP_SERVICE_UNAVAILABLE)
            r->failed_reason = "model_unavailable";
        if (!m)
            return http_defer(r, status, "%s", why);
        r->model = m;
        r->due_ns = r->t0_ns + m->cfg.timeout_ms * 1000000;
    }
    return r->route->post ? start_post(r) : MHD_YES;
}

static enum MHD_Result take_body(request *r, const char *data, size_t n)
{
    server *s = r->srv;
    r->body_total += n;
    if (r->deferred_status || !r->route->post)
        return r->body_total > 4 * s->cfg.max_body_bytes ? MHD_NO : MHD_YES; /* discarded */
    if (r->body_total > s->cfg.max_body_bytes) {
        /* MHD can only answer once the body is in: discard it (up to a
         * few times the limit, then drop the connection) and answer 413 */
        r->body_too_large = true;
        give_back_body(r);
        return r->body_total > 4 * s->cfg.max_body_bytes ? MHD_NO : MHD_YES;
    }
    if (r->body_too_large)
        return MHD_YES;
    /* no declared length (chunked): memory is taken as the bytes come */
    while (r->body_total > r->budget_held) {
        if (!body_budget_take(&s->bodies, BUDGET_STEP)) {
            r->failed_reason = "memory_budget";
            return http_defer(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                         "request bodies in memory are at the server's limit of %zu bytes; "
                         "retry later",
                         s->bodies.limit);
        }
        r->budget_held += BUDGET_STEP;
    }
    if (r->pp) {
        if (MHD_post_process(r->pp, data, n) != MHD_YES)
            r->bad_multipart = true;
    } else if (!byte_buf_append(&r->body, data, n, s->cfg.max_body_bytes, r->budget_held)) {
        r->body_too_large = true;
    }
    return MHD_YES;
}

/* The body is in: answer what was decided, or admit the request. */
static enum MHD_Result last_call(request *r)
{
    conn_guard_body_done(r->conn);
    if (r->deferred_status) {
        if (r->deferred_status == MHD_HTTP_SERVICE_UNAVAILABLE)
            return respond_busy(r, r->failed_reason ? r->failed_reason : "busy",
                                r->deferred_error);
        return respond_message(r, r->deferred_status, r->deferred_error);
    }
    if (!r->route->post)
        return r->route->get(r);
    if (r->body_too_large)
        return http_respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                                  "the body is larger than the limit of %zu bytes",
                                  r->srv->cfg.max_body_bytes);
    if (r->too_many_parts)
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "more than %d files in one request",
                                  MAX_IMAGES_PER_REQUEST);
    if (r->bad_multipart)
        return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "malformed multipart body");
    return r->route->post->admit(r);
}

/* Resumed: the decode pool failed it, or the batcher is done with it. */
static enum MHD_Result finish(request *r)
{
    const server_metrics *m = server_metrics_get();
    if (r->failed_status == MHD_HTTP_SERVICE_UNAVAILABLE)
        return respond_busy(r, r->failed_reason ? r->failed_reason : "busy", r->failed_error);
    if (r->failed_status == MHD_HTTP_GATEWAY_TIMEOUT)
        metric_add(m->timeouts, 1, r->model->name);
    if (r->failed_status)
        return respond_message(r, r->failed_status, r->failed_error);
    if (!r->model) /* not a batch: the repository's work (api_repo.c) */
        return r->route->post->finish(r);
    if (r->job.status) {
        http_answer a = http_answer_of(r->job.status);
        if (a.status == MHD_HTTP_SERVICE_UNAVAILABLE)
            return respond_busy(r, a.reason, r->job.error);
        if (a.status == MHD_HTTP_GATEWAY_TIMEOUT) {
            metric_add(m->timeouts, 1, r->model->name);
            return http_respond_error(r, a.status, "no answer within %lld ms (%s)",
                                      (long long)r->model->cfg.timeout_ms, r->job.error);
        }
        metric_add(m->inference_failures, 1, r->model->name);
        return http_respond_error(r, a.status, "inference failed: %s", r->job.error);
    }
    metric_observe(m->queue_seconds, r->job.queue_ms / 1e3, r->model->name);
    metric_observe(m->inference_seconds, r->job.inference_ms / 1e3, r->model->name);
    return r->route->post->finish(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    request *r = *con_cls;
    if (!r) { /* on_uri could not allocate: one more try */
        if (!(r = on_uri(cls, "", conn)))
            return MHD_NO;
        *con_cls = r;
    }
    if (!r->started) {
        r->started = true;
        return first_call(r, url, method);
    }
    if (r->state == REQ_ANSWERED) { /* answered early: discard what the client still sends */
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->state == REQ_READING && *upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return take_body(r, upload_data, n);
    }
    if (r->state == REQ_READING)
        return last_call(r);
    if (r->state == REQ_RESUMED)
        return finish(r);
    return MHD_YES; /* suspended: MHD does not call us then */
}

/* --- the decode pool and the batcher --- */

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

static void vfail(request *r, unsigned status, const char *reason, const char *fmt, va_list ap)
{
    vsnprintf(r->failed_error, sizeof r->failed_error, fmt, ap);
    r->failed_status = status;
    r->failed_reason = reason;
}

int http_fail(request *r, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, status, NULL, fmt, ap);
    va_end(ap);
    return -1;
}

int http_fail_status(request *r, engine_status st, const char *fmt, ...)
{
    http_answer a = http_answer_of(st);
    va_list ap;
    va_start(ap, fmt);
    vfail(r, a.status, a.reason, fmt, ap);
    va_end(ap);
    return -1;
}

int http_fail_busy(request *r, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, MHD_HTTP_SERVICE_UNAVAILABLE, reason, fmt, ap);
    va_end(ap);
    return -1;
}

static void resume(request *r)
{
    r->state = REQ_RESUMED;
    MHD_resume_connection(r->conn);
}

static void cancel_task(void *arg);

/* The endpoint's work once its batch is back (api_tasks.c), in the pool. */
static void after_task(void *arg)
{
    request *r = arg;
    r->after_done = true;
    r->after_job(r);
    resume(r);
}

static void on_job_done(batch_job *job)
{
    request *r = job->user;
    if (r->after_job && job->status == ENGINE_OK &&
        work_pool_submit(r->srv->pool, (work_task){after_task, cancel_task, r}))
        return;
    resume(r); /* finish() runs after_job itself when the pool was full */
}

int http_submit_job(request *r)
{
    served_model *m = r->model;
    r->job.on_done = on_job_done;
    r->job.user = r;
    r->job.due_ns = r->due_ns;
    r->job.reserved = r->reserved_items == r->job.n_items;
    if (r->job.reserved)
        r->reserved_items = 0; /* the batcher uses it or gives it back */
    bool arriving = r->arriving;
    r->arriving = false;
    r->state = REQ_QUEUED; /* before: on_done may run before batcher_submit returns */
    batcher_result br = atomic_load(&r->srv->stopping) && !r->job.reserved
                            ? BATCHER_STOPPED
                            : batcher_submit(m->batcher, &r->job);
    if (arriving)
        batcher_arriving(m->batcher, -1);
    if (br == BATCHER_OK)
        return 0;
    r->state = REQ_PREPARING;
    if (br == BATCHER_FULL)
        return http_fail_busy(r, "queue_full",
                              "the queue of model '%s' is full (%d items); retry later", m->name,
                              m->cfg.max_queue_size);
    if (br == BATCHER_STOPPED)
        return http_fail_busy(r, "shutting_down", "shutting down");
    return http_fail(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the job could not be queued");
}

static void prepare_task(void *arg)
{
    request *r = arg;
    if (r->due_ns && http_now_ns() > r->due_ns)
        http_fail(r, MHD_HTTP_GATEWAY_TIMEOUT,
                  "no answer within %lld ms (timed out waiting for a decoder)",
                  (long long)r->model->cfg.timeout_ms);
    else if (r->prepare(r) == 0)
        return; /* with the batcher now: its callback resumes the connection */
    resume(r);
}

static void cancel_task(void *arg)
{
    request *r = arg;
    http_fail_busy(r, "shutting_down", "shutting down");
    resume(r);
}

void http_suspend(request *r)
{
    r->state = REQ_PREPARING;
    r->inflight = true;
    atomic_fetch_add(&r->srv->inflight, 1);
    MHD_suspend_connection(r->conn);
}

void http_resume(request *r)
{
    resume(r);
}

enum MHD_Result http_prepare(request *r, int (*prepare)(request *r))
{
    server *s = r->srv;
    r->prepare = prepare;
    r->state = REQ_PREPARING;
    r->inflight = true;
    atomic_fetch_add(&s->inflight, 1);
    /* suspend first: the pool may finish before this function returns */
    MHD_suspend_connection(r->conn);
    if (!work_pool_submit(s->pool, (work_task){prepare_task, cancel_task, r})) {
        if (atomic_load(&s->stopping))
            http_fail_busy(r, "shutting_down", "shutting down");
        else
            http_fail_busy(r, "decode_queue_full",
                           "every decoder is busy and %d requests wait for one; retry later",
                           s->cfg.decode_queue_size);
        resume(r);
    }
    return MHD_YES;
}

/* --- connections --- */

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    request *r = *con_cls;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        conn_guard_answered(conn); /* a kept-alive connection waits for its next head */
    if (!r)
        return;
    *con_cls = NULL;
    if (r->state == REQ_PREPARING || r->state == REQ_QUEUED) {
        /* still referenced by the pool or the batcher: libmicrohttpd only
         * does this when stopped with suspended connections, which
         * http_stop avoids; keeping the record is the safe failure */
        log_msg(LOG_ERROR, "a request completed while suspended (%s)",
                r->endpoint ? r->endpoint : "?");
        return;
    }
    if (r->state == REQ_RESUMED && r->model) /* its client left before the answer */
        metric_add(server_metrics_get()->abandoned, 1, r->model->name, r->endpoint);
    release(r);
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    free(r->input_mem);
    free(r->output_mem);
    json_decref(r->v2_outputs);
    json_decref(r->v2_id);
    json_decref(r->answer);
    free(r->answer_bytes);
    free(r->geometry);
    image_free(&r->kept_image);
    if (r->kept_budget)
        body_budget_give(&r->srv->bodies, r->kept_budget);
    model_repo_release(r->model); /* a retired version drains with its last request */
    free(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = 0;
    log_msg(LOG_DEBUG, "http: %s", msg);
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
        /* non-blocking: every pool thread polls it, and only one wins each accept */
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
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
    s->loopback = ss.ss_family == AF_INET6
                      ? IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr)
                      : (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    /* auto: on where only this machine reaches it, or where admin keys guard it */
    s->model_control = s->cfg.model_control == MODEL_CONTROL_ON ||
                       (s->cfg.model_control == MODEL_CONTROL_AUTO &&
                        (s->loopback || s->auth.n_admin > 0));
    s->listen_fd = fd;
    return 0;
}

/* Connections need descriptors: the soft limit is raised toward the hard
 * one, and the connection limit kept below what remains. */
static unsigned connection_limit(const server *s)
{
    struct rlimit rl;
    unsigned want = (unsigned)s->cfg.max_connections;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return want;
    rlim_t need = (rlim_t)want + 256;
    if (rl.rlim_cur < need && rl.rlim_cur != RLIM_INFINITY) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        unsigned fit = rl.rlim_cur > 512 ? (unsigned)(rl.rlim_cur - 256) : 256;
        log_msg(LOG_WARN, "only %llu file descriptors: at most %u connections, not %u",
                (unsigned long long)rl.rlim_cur, fit, want);
        return fit;
    }
    return want;
}

static bool bodies_held(void *user)
{
    return body_budget_used(&((server *)user)->bodies) > 0;
}

/* API keys and the TLS certificate, read before anything listens. */
static int load_security(server *s, char *err, size_t errlen)
{
    if (s->cfg.api_keys[0] && auth_load(s->cfg.api_keys, &s->auth, err, errlen))
        return -1;
    if (!s->cfg.tls_cert[0] && !s->cfg.tls_key[0])
        return 0;
    if (!s->cfg.tls_cert[0] || !s->cfg.tls_key[0]) {
        snprintf(err, errlen, "TLS needs both tls_cert and tls_key");
        return -1;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "this libmicrohttpd was built without TLS");
        return -1;
    }
    if (tls_certs_load(s->cfg.tls_cert, s->cfg.tls_key, err, errlen))
        return -1;
    s->tls = true;
    return 0;
}

void http_free_security(server *s)
{
    auth_free(&s->auth);
    if (s->tls)
        tls_certs_free();
    s->tls = false;
}

int http_reload_tls(server *s, char *err, size_t errlen)
{
    return s->tls ? tls_certs_load(s->cfg.tls_cert, s->cfg.tls_key, err, errlen) : 0;
}

int http_start(server *s, char *err, size_t errlen)
{
    if (load_security(s, err, errlen)) {
        http_free_security(s);
        return -1;
    }
    body_budget_init(&s->bodies, s->cfg.max_buffered_bytes);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int decoders = s->cfg.decode_threads ? s->cfg.decode_threads : (int)(cores > 0 ? cores : 1);
    s->pool = work_pool_create(decoders, s->cfg.decode_queue_size);
    conn_guard_config gc = {.head_timeout_ms = s->cfg.head_timeout_ms,
                            .body_timeout_ms = s->cfg.body_timeout_ms,
                            .check_every_ms = s->cfg.guard_check_ms,
                            .busy = bodies_held, .user = s};
    s->guard = conn_guard_create(&gc);
    if (!s->pool || !s->guard || open_listener(s, err, errlen)) {
        if (!s->pool || !s->guard)
            snprintf(err, errlen, "cannot start the decode pool or the connection guard");
        work_pool_free(s->pool);
        conn_guard_free(s->guard);
        s->pool = NULL;
        s->guard = NULL;
        return -1;
    }
    s->insecure = !s->loopback && !(s->tls && s->auth.n > 0);
    if (s->insecure && s->cfg.require_auth) {
        snprintf(err, errlen, "require_auth: %s is not a loopback address, and %s", s->cfg.listen,
                 !s->tls && !s->auth.n ? "there is neither TLS nor an API key"
                 : !s->tls             ? "there is no TLS (tls_cert, tls_key)"
                                       : "there is no API key (api_keys)");
        close(s->listen_fd);
        work_pool_free(s->pool);
        conn_guard_free(s->guard);
        s->pool = NULL;
        s->guard = NULL;
        return -1;
    }
    unsigned threads = (unsigned)(s->cfg.http_threads ? s->cfg.http_threads
                                                      : (cores > 2 ? cores : 2));
    /* HTTPS: libmicrohttpd's own TLS (GnuTLS), 1.2 and later only */
    struct MHD_OptionItem tls[] = {
        /* asked for at each handshake, so SIGHUP can replace it (tls_certs.h) */
        {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, tls_certs_callback()},
        {MHD_OPTION_HTTPS_PRIORITIES, 0,
         (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL}};
    if (!s->tls)
        tls[0].option = MHD_OPTION_END;
    s->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
            (s->tls ? MHD_USE_TLS : 0),
        0, NULL,
        NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_LISTEN_SOCKET,
        s->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, conn_guard_notify, s->guard,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_UNESCAPE_CALLBACK, unescape, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.idle_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit(s), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)s->cfg.max_connections_per_ip, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!s->daemon) {
        close(s->listen_fd);
        work_pool_free(s->pool);
        conn_guard_free(s->guard);
        s->pool = NULL;
        s->guard = NULL;
        snprintf(err, errlen, "libmicrohttpd failed to start on %s", s->cfg.listen);
        return -1;
    }
    return 0;
}

bool http_stop(server *s, int64_t wait_ms)
{
    if (!s->daemon)
        return true;
    int fd = MHD_quiesce_daemon(s->daemon);
    if (fd >= 0)
        close(fd);
    /* Requests waiting for a decoder are answered 503 now; those decoding
     * finish. Queued ones still get their answer: each is bounded by its
     * model's timeout_ms, after which the batcher answers 504. */
    work_pool_stop(s->pool);
    int64_t deadline = http_now_ns() + wait_ms * 1000000;
    for (int i = 1; atomic_load(&s->inflight) > 0; i++) {
        if (http_now_ns() > deadline) {
            log_msg(LOG_ERROR, "%d requests still unanswered after %lld ms: exiting without them",
                    atomic_load(&s->inflight), (long long)wait_ms);
            return false; /* their connections are suspended: libmicrohttpd cannot stop */
        }
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
        if (i % 100 == 0)
            log_msg(LOG_INFO, "waiting for %d requests to finish", atomic_load(&s->inflight));
    }
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    work_pool_free(s->pool);
    s->pool = NULL;
    conn_guard_free(s->guard);
    s->guard = NULL;
    return true;
}
