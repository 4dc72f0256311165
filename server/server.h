/* The HTTP daemon's shared types: the server, one request in flight, and
 * the handlers each API module provides.
 *
 * Life of a POST (see http.c): the first callback routes it and checks
 * method, model, headers and the memory budget; the next ones collect the
 * body (bounded); the last checks admission (room in the model's queue,
 * held for it) and hands the request to the decode pool (work_pool.h),
 * suspending the connection. A pool worker decodes and preprocesses into
 * the job's buffers and submits the job to the model's batcher; the
 * batcher's callback resumes the connection, and the handler, called once
 * more, writes the JSON answer. A request the queue or the pool cannot
 * take is answered 503 before any pixel is decoded. Every request gets
 * exactly one answer, unless its client leaves first; a waiting request
 * holds no thread. Answers are given once the body has been read, so
 * kept-alive connections stay open (an answer before the body is read
 * closes the connection, and is kept for what must not be read).
 */
#ifndef VISIOND_SERVER_H
#define VISIOND_SERVER_H

#include <jansson.h>
#include "mhd_compat.h"
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../engine/image.h"
#include "../engine/preproc.h"
#include "auth.h"
#include "body_budget.h"
#include "config.h"
#include "conn_guard.h"
#include "metrics.h"
#include "model_repo.h"
#include "work_pool.h"

#define VISIOND_VERSION "0.3.0"
#define MAX_IMAGES_PER_REQUEST 256

typedef struct {
    metric *requests, *request_seconds, *queue_seconds, *preprocess_seconds, *inference_seconds;
    metric *batch_size, *queue_depth, *rejected, *timeouts, *model_ready, *backend_info;
    metric *build_info, *inference_failures, *fallbacks, *input_copies;
    metric *abandoned, *decode_queue_depth, *buffered_bytes, *buffered_limit, *conn_closed,
        *connections, *memory_budget, *detections;
    metric *load_seconds, *load_failures, *versions_loaded, *version_ready;
    metric *model_resident, *model_memory;
} server_metrics;

typedef struct server {
    server_config cfg;
    model_repo repo;
    struct MHD_Daemon *daemon;
    int listen_fd;
    int port;           /* the bound port (cfg.port may be 0) */
    atomic_bool stopping;
    atomic_int inflight; /* requests suspended: decoding, queued or running */
    bool loopback;       /* the listener is on a loopback address */
    bool model_control;  /* the repository endpoints answer (config model_control) */
    auth_keys auth;      /* API keys; none: no key asked for */
    bool tls;            /* the listener speaks HTTPS */
    bool insecure;       /* beyond loopback without both TLS and keys */
    work_pool *pool;     /* the decode pool */
    conn_guard *guard;
    body_budget bodies;
} server;

typedef struct request request;

/* What a POST endpoint does at each step of its request (http.c calls
 * them in this order; see the top of this file). */
typedef struct {
    enum MHD_Result (*start)(request *r);  /* the head is in: media type, query */
    enum MHD_Result (*admit)(request *r);  /* the body is in: to the decode pool */
    enum MHD_Result (*finish)(request *r); /* the job is done: the answer */
} post_api;

/* Route flags: ROUTE_CONTROL, the model repository's endpoints (the model
 * is not looked up; they may be turned off); ROUTE_ANY_STATE, the handler
 * also answers for a model that is not serving (r->model NULL). */
enum { ROUTE_CONTROL = 1, ROUTE_ANY_STATE = 2, ROUTE_PUBLIC = 4, ROUTE_METRICS = 8 };

/* One endpoint (routes.c holds them all). */
typedef struct {
    const char *method;   /* "GET" (HEAD as well) or "POST" */
    const char *pattern;  /* "/v1/models/{model}/classify" */
    const char *endpoint; /* the metrics label */
    enum MHD_Result (*get)(request *r);
    const post_api *post;
    int flags;
} route;

typedef struct {
    char model[80], version[32]; /* the captures */
    const char *allow; /* when only the method is wrong: the methods the path takes */
} route_match;

/* http_status.c: the HTTP status for an engine status, and for 503s the
 * reason counted in visiond_rejected_total. */
typedef struct {
    unsigned status;
    const char *reason;
} http_answer;
http_answer http_answer_of(engine_status st);

/* routes.c: the route for method and url, or NULL (m->allow says whether
 * the path exists with other methods). */
const route *route_find(const char *method, const char *url, route_match *m);

typedef struct {
    char *data;
    size_t len, cap;
} byte_buf;

/* Appends within `limit` (false past it, or out of memory); hint: the size
 * expected in all, allocated at once when known (http.c). */
bool byte_buf_append(byte_buf *b, const void *data, size_t len, size_t limit, size_t hint);

typedef enum {
    REQ_READING = 0, /* head and body arriving (connection thread) */
    REQ_PREPARING,   /* suspended, in the decode pool */
    REQ_QUEUED,      /* suspended, with the batcher */
    REQ_RESUMED,     /* back on the connection thread, not answered yet */
    REQ_ANSWERED,
} request_state;

#define MAX_QUERY_ARGS 32

struct request {
    server *srv;
    struct MHD_Connection *conn;
    const route *route;     /* NULL until routed, and for unknown paths */
    const char *allow;      /* for a 405: the methods the path takes */
    const char *endpoint;   /* metrics label */
    served_model *model;    /* held (model_repo_acquire) until the request is freed */
    char model_name[80];    /* as the path named it */
    int64_t t0_ns;
    int64_t due_ns;         /* t0 + the model's timeout_ms: 504 after it */
    request_state state;
    bool started;           /* the access handler has seen it */
    bool too_many_args;     /* the query had more than MAX_QUERY_ARGS parameters */
    bool arriving;          /* counted in the batcher's arrivals */
    bool inflight;          /* counted in srv->inflight */
    int reserved_items;     /* room held in the model's queue (batcher_reserve) */
    size_t budget_held;     /* bytes of srv->bodies held for the body */
    /* an answer decided before the body was read, given after it */
    unsigned deferred_status;
    char deferred_error[512];
    /* a failure in the decode pool, answered once resumed */
    unsigned failed_status;
    const char *failed_reason; /* for 503s: visiond_rejected_total's reason */
    char failed_error[512];
    int (*prepare)(struct request *r); /* the decode pool's work for this request */
    /* body */
    byte_buf body;
    size_t body_total;
    bool body_too_large;
    struct MHD_PostProcessor *pp;
    byte_buf parts[MAX_IMAGES_PER_REQUEST];
    int n_parts;
    bool too_many_parts;
    bool bad_multipart;
    /* the job */
    batch_job job;
    void *input_mem;
    void *output_mem;
    void *input_ptrs[8];
    void *output_ptrs[8];
    double preprocess_ms;
    int top_k;
    /* detect and segment (api_tasks.c) */
    preproc_geometry *geometry; /* per image: where its pixels went in the input */
    bool render;                /* ?render=jpeg: answer the image with results drawn */
    int mask;                   /* segment: MASK_NONE, MASK_PNG (the body), MASK_BASE64 */
    image_u8 kept_image;        /* render: the decoded image, RGB */
    size_t kept_budget;         /* its bytes, held in srv->bodies until it is freed */
    /* work done in the decode pool once the job is back (post-processing,
     * encoding); finish() runs it itself if the pool could not */
    int (*after_job)(struct request *r);
    bool after_done;
    json_t *answer;             /* what after_job made: JSON, or bytes of answer_type */
    uint8_t *answer_bytes;
    size_t answer_len;
    const char *answer_type;
    char server_timing[160];    /* the Server-Timing header, when set */
    int repo_status;        /* the repository's answer to a load or unload */
    char repo_message[1024];
    json_t *v2_outputs;     /* requested outputs, or NULL for all */
    long long v2_header_len; /* Inference-Header-Content-Length, -1 if absent */
    bool v2_binary_all;     /* outputs binary unless one says otherwise */
    long long answer_json_len; /* > 0: the answer is JSON then binary (that header) */
    json_t *v2_id;
};

/* http.c: response helpers (each records the request in the metrics) */
/* 503 with Retry-After, counted in visiond_rejected_total under `reason`. */
enum MHD_Result http_respond_busy(request *r, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum MHD_Result http_respond_json(request *r, unsigned status, json_t *body);
enum MHD_Result http_respond_error(request *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum MHD_Result http_respond_text(request *r, unsigned status, const char *content_type,
                                  char *text, size_t len);
/* Suspends the connection and hands r to the decode pool, where
 * prepare(r) fills and submits r->job (http_submit_job) or fails
 * (http_fail); answers 503 itself when the pool's queue is full. */
enum MHD_Result http_prepare(request *r, int (*prepare)(request *r));
/* Suspends r's connection for work done elsewhere (the model repository's
 * manager); that work calls http_resume once r's answer is decided. */
void http_suspend(request *r);
void http_resume(request *r);
/* From prepare: submits r->job (its items reserved); 0, or -1 with the
 * failure recorded. */
int http_submit_job(request *r);
/* From prepare: records the answer to give once resumed; returns -1. */
int http_fail(request *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int http_fail_busy(request *r, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* From prepare: a failure of the engine's kind (http_status.c maps it). */
int http_fail_status(request *r, engine_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* From prepare: the body is no longer needed; its memory goes now. */
void http_drop_body(request *r);
/* Reads the API keys and TLS files, binds, starts libmicrohttpd. */
int http_start(server *s, char *err, size_t errlen);
/* What http_start read for keys and TLS, wiped and freed (after http_stop). */
void http_free_security(server *s);
/* SIGHUP: tls_cert and tls_key read again for the next handshakes; on
 * failure the pair in use stays. 0 without TLS. */
int http_reload_tls(server *s, char *err, size_t errlen);
/* Stops accepting, cancels what waits for a decoder, waits up to wait_ms
 * for every request in flight to be answered, stops. false: some were
 * not, and libmicrohttpd was left running (the process is exiting). */
bool http_stop(server *s, int64_t wait_ms);
int64_t http_now_ns(void);

/* Records an answer decided before the body is read, given after it. */
enum MHD_Result http_defer(request *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The request's media type, lower-cased, without parameters. */
void http_media_type(request *r, char *out, size_t n);
/* The body is multipart/form-data: its files become r->parts. */
bool http_accept_multipart(request *r);

enum { MASK_NONE = 0, MASK_PNG, MASK_BASE64 };

/* api_v1.c: the image endpoints share start, admit and prepare */
enum MHD_Result api_image_start(request *r);
enum MHD_Result api_image_admit(request *r);
int api_image_prepare(request *r);
enum MHD_Result api_classify_finish(request *r);
/* The Server-Timing header and the "timing_ms" object of an answer. */
json_t *api_timing(request *r);
/* Class `index`'s name from labels.txt, or null. */
json_t *api_label(const served_model *m, int index);
/* api_tasks.c: detect and segment */
int api_detect_after(request *r);
int api_segment_after(request *r);
enum MHD_Result api_task_finish(request *r);
enum MHD_Result api_v1_models(request *r);
enum MHD_Result api_v1_algorithms(request *r);
/* api_v2.c */
enum MHD_Result api_v2_server(request *r);
enum MHD_Result api_v2_model(request *r);
enum MHD_Result api_v2_model_ready(request *r);
enum MHD_Result api_v2_ready(request *r, bool v2);
enum MHD_Result api_v2_infer_start(request *r);
enum MHD_Result api_v2_infer_admit(request *r);
int api_v2_infer_prepare(request *r);
enum MHD_Result api_v2_infer_finish(request *r);
/* api_repo.c: the model repository extension */
enum MHD_Result api_repo_start(request *r);
enum MHD_Result api_repo_admit(request *r);
enum MHD_Result api_repo_finish(request *r);
/* page.c: GET / */
enum MHD_Result api_page(request *r);
/* api_ops.c: the metric families live with the registry (metrics.h) */
enum MHD_Result api_metrics(request *r);
void server_metrics_init(void);
const server_metrics *server_metrics_get(void);
void server_observe_batch(void *model, int batch_size, double inference_ms);
/* The model repository's observers (model_load_options). */
void server_observe_load(const char *name, int64_t version, double seconds, bool failed);
void server_observe_version(const char *name, int64_t version, bool serving);

/* Allocates the job's input and output buffers for n items; with u8, input
 * 0 holds images as bytes (they enter at the model's image input). */
int request_alloc_job(request *r, int n_items, bool u8);
/* JSON helpers */
json_t *json_float(double v); /* null for NaN and infinities */

#endif
