/* The HTTP daemon's shared types: the server, one request in flight, and
 * the handlers each API module provides.
 *
 * Life of a POST (see http.c): the first callback routes it and checks
 * method, model, Content-Length and Content-Type; the next ones collect
 * the body (bounded); the last decodes and preprocesses in this connection
 * thread, suspends the connection and submits a job to the model's batcher.
 * The batcher's callback resumes the connection, and the handler, called
 * once more, writes the JSON answer. Every accepted request gets exactly
 * one response, and a waiting request holds no thread.
 */
#ifndef VISIOND_SERVER_H
#define VISIOND_SERVER_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"
#include "model_repo.h"

#define VISIOND_VERSION "0.3.0"
#define MAX_IMAGES_PER_REQUEST 256

typedef struct {
    metric *requests, *request_seconds, *queue_seconds, *preprocess_seconds, *inference_seconds;
    metric *batch_size, *queue_depth, *rejected, *timeouts, *model_ready, *backend_info;
    metric *build_info, *inference_failures, *fallbacks;
} server_metrics;

typedef struct server {
    server_config cfg;
    model_repo repo;
    struct MHD_Daemon *daemon;
    int listen_fd;
    int port;           /* the bound port (cfg.port may be 0) */
    atomic_bool stopping;
    atomic_int inflight; /* requests suspended on a batcher */
} server;

typedef enum {
    ROUTE_NONE = 0,
    ROUTE_CLASSIFY,
    ROUTE_V1_MODELS,
    ROUTE_V1_ALGORITHMS,
    ROUTE_V2_SERVER,
    ROUTE_V2_LIVE,
    ROUTE_V2_READY,
    ROUTE_V2_MODEL,
    ROUTE_V2_MODEL_READY,
    ROUTE_V2_INFER,
    ROUTE_METRICS,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
} route_id;

typedef struct {
    char *data;
    size_t len, cap;
} byte_buf;

typedef enum { REQ_READING = 0, REQ_SUSPENDED, REQ_RESUMED, REQ_ANSWERED } request_state;

typedef struct request {
    server *srv;
    struct MHD_Connection *conn;
    route_id route;
    const char *endpoint;   /* metrics label */
    served_model *model;
    int64_t t0_ns;
    request_state state;
    bool arriving;          /* counted in the batcher's arrivals */
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
    json_t *v2_outputs;     /* requested outputs, or NULL for all */
    json_t *v2_id;
} request;

/* http.c: response helpers (each records the request in the metrics) */
enum MHD_Result http_respond_json(request *r, unsigned status, json_t *body);
enum MHD_Result http_respond_error(request *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum MHD_Result http_respond_text(request *r, unsigned status, const char *content_type,
                                  char *text, size_t len);
/* Suspends the connection and submits r->job; answers 503 itself when the
 * queue is full or the server is stopping. */
enum MHD_Result http_submit(request *r);
int http_start(server *s, char *err, size_t errlen);
void http_stop(server *s);
int64_t http_now_ns(void);

/* api_v1.c */
enum MHD_Result api_classify_start(request *r);
enum MHD_Result api_classify_finish(request *r);
enum MHD_Result api_v1_models(request *r);
enum MHD_Result api_v1_algorithms(request *r);
/* api_v2.c */
enum MHD_Result api_v2_server(request *r);
enum MHD_Result api_v2_model(request *r);
enum MHD_Result api_v2_model_ready(request *r);
enum MHD_Result api_v2_ready(request *r, bool v2);
enum MHD_Result api_v2_infer_start(request *r);
enum MHD_Result api_v2_infer_finish(request *r);
/* api_ops.c: the metric families live with the registry (metrics.h) */
enum MHD_Result api_metrics(request *r);
void server_metrics_init(void);
const server_metrics *server_metrics_get(void);
void server_observe_batch(void *model, int batch_size, double inference_ms);

/* Allocates the job's input and output buffers for n items; with u8, input
 * 0 holds 8-bit images (the model's u8_images path). */
int request_alloc_job(request *r, int n_items, bool u8);
/* JSON helpers */
json_t *json_float(double v); /* null for NaN and infinities */

#endif
