/* Operator endpoints: GET /metrics (Prometheus text 0.0.4), and the metric
 * families the daemon records into. Health and readiness answers are in
 * http.c and api_v2.c. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../engine/clock.h"
#include "log.h"
#include "server.h"

/* Part of the registry (metrics.h): created once before the server starts. */
static server_metrics families;

static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static const double detection_buckets[] = {0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000};

void server_metrics_init(void)
{
    server_metrics *m = &families;
    const double *lat = metrics_latency_buckets;
    int nl = metrics_latency_buckets_n;
    m->requests = metric_counter("visiond_requests_total",
                                 "HTTP requests answered, by model, endpoint and status code.",
                                 "model,endpoint,code");
    m->request_seconds = metric_histogram("visiond_request_duration_seconds",
                                          "Time from the request's arrival to its answer.",
                                          "model,endpoint", lat, nl);
    m->queue_seconds = metric_histogram("visiond_queue_duration_seconds",
                                        "Time a request waited in the batch queue.", "model", lat,
                                        nl);
    m->preprocess_seconds = metric_histogram("visiond_preprocess_duration_seconds",
                                             "Image decoding and preprocessing time per request.",
                                             "model", lat, nl);
    m->inference_seconds = metric_histogram("visiond_inference_duration_seconds",
                                            "Engine time of the batches a request rode in.",
                                            "model", lat, nl);
    m->batch_size = metric_histogram("visiond_batch_size", "Items per engine batch.", "model",
                                     batch_buckets, (int)(sizeof batch_buckets / sizeof(double)));
    m->queue_depth = metric_gauge("visiond_queue_depth", "Items waiting in the batch queue.",
                                  "model");
    m->rejected = metric_counter("visiond_rejected_total",
                                 "Requests refused before queueing, by reason.", "model,reason");
    m->timeouts = metric_counter("visiond_timeouts_total",
                                 "Requests answered 504 after waiting longer than timeout_ms.",
                                 "model");
    m->inference_failures = metric_counter("visiond_inference_failures_total",
                                           "Batches the engine failed to run.", "model");
    m->fallbacks = metric_counter("visiond_inference_fallbacks_total",
                                  "Batches that failed on the GPU and ran on the CPU instead.",
                                  "model");
    m->input_copies = metric_counter(
        "visiond_input_host_copies_total",
        "Batch inputs the backend copied on the host before using them (staging what was not "
        "in its own host memory; 0 when the batcher gathers into it).",
        "model");
    m->model_ready = metric_gauge("visiond_model_ready",
                                  "1 when the model serves, 0 while loading or after a failure.",
                                  "model");
    m->backend_info = metric_gauge("visiond_backend_info",
                                   "The backend each model runs on (value always 1).",
                                   "model,backend,description");
    m->build_info = metric_gauge("visiond_build_info", "visiond version (value always 1).",
                                 "version");
    m->abandoned = metric_counter("visiond_requests_abandoned_total",
                                  "Requests whose client left before their answer was sent.",
                                  "model,endpoint");
    m->decode_queue_depth = metric_gauge("visiond_decode_queue_depth",
                                         "Requests waiting for a decoder.", "");
    m->buffered_bytes = metric_gauge("visiond_request_buffer_bytes",
                                     "Request body bytes held in memory now.", "");
    m->buffered_limit = metric_gauge("visiond_request_buffer_limit_bytes",
                                     "The budget for request bodies in memory "
                                     "(max_buffered_bytes); over it, requests get 503.",
                                     "");
    m->conn_closed = metric_counter("visiond_connections_closed_total",
                                    "Connections closed by the server before their request was "
                                    "complete, by reason.",
                                    "reason");
    m->connections = metric_gauge("visiond_connections", "Open client connections.", "");
    m->memory_budget = metric_gauge("visiond_memory_budget_bytes",
                                    "The most memory requests can hold above the loaded models, "
                                    "by part: request bodies, decoding, queued tensors, "
                                    "connection buffers (README, Limits).",
                                    "part");
    m->detections = metric_histogram("visiond_detections_per_image",
                                     "Objects found per image by /detect, after NMS.", "model",
                                     detection_buckets,
                                     (int)(sizeof detection_buckets / sizeof(double)));
    static const double load_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
    m->load_seconds = metric_histogram("visiond_model_load_duration_seconds",
                                       "Time to load one model version (read, plan, start), "
                                       "failed loads included.",
                                       "model", load_buckets,
                                       (int)(sizeof load_buckets / sizeof(double)));
    m->load_failures = metric_counter("visiond_model_load_failures_total",
                                      "Model version loads that failed (what served before "
                                      "keeps serving).",
                                      "model");
    m->versions_loaded = metric_gauge("visiond_model_versions_loaded",
                                      "Versions of the model serving now.", "model");
    m->version_ready = metric_gauge("visiond_model_version_ready",
                                    "1 while this version of the model serves, 0 once it has "
                                    "failed or been unloaded.",
                                    "model,version");
    m->model_resident = metric_gauge("visiond_model_resident_bytes",
                                     "Memory this model version holds: its weights, the "
                                     "backend's copies of them, activation arena and "
                                     "workspace (0 once unloaded).",
                                     "model,version");
    m->model_memory = metric_gauge("visiond_model_memory_bytes",
                                   "visiond_model_resident_bytes by part: weights (as loaded), "
                                   "backend_weights (packed for the CPU kernels, or on the "
                                   "GPU), arena (activations), workspace.",
                                   "model,version,part");
    metric_set(m->build_info, 1, VISIOND_VERSION);
}

/* The memory gauges of one version (zeros: it no longer holds any). */
static void set_model_memory(const char *name, int64_t version, const engine_memory_info *mem)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)version);
    metric_set(families.model_resident, (double)mem->resident, name, v);
    metric_set(families.model_memory, (double)mem->weights, name, v, "weights");
    metric_set(families.model_memory, (double)mem->backend_weights, name, v, "backend_weights");
    metric_set(families.model_memory, (double)mem->arena, name, v, "arena");
    metric_set(families.model_memory, (double)mem->workspace, name, v, "workspace");
}

void server_observe_load(const char *name, int64_t version, double seconds, bool failed)
{
    (void)version;
    metric_observe(families.load_seconds, seconds, name);
    if (failed)
        metric_add(families.load_failures, 1, name);
    else
        metric_add(families.load_failures, 0, name); /* the series exists from the first load */
}

void server_observe_version(const char *name, int64_t version, bool serving)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)version);
    metric_set(families.version_ready, serving, name, v);
    if (!serving) {
        engine_memory_info none = {0};
        set_model_memory(name, version, &none);
    }
}

const server_metrics *server_metrics_get(void)
{
    return &families;
}

void server_observe_batch(void *model, int batch_size, double inference_ms)
{
    served_model *m = model;
    (void)inference_ms; /* per request in visiond_inference_duration_seconds */
    metric_observe(families.batch_size, batch_size, m->name);
    /* a batch the device failed ran on the CPU: say so, the first time and
     * then at most every 10 s, with the device's error */
    char why[256];
    long fell = engine_fallback_info(m->engine, why, sizeof why);
    int64_t now = clock_monotonic_ns();
    if (fell > m->fallbacks_logged &&
        (m->fallbacks_logged == 0 || now - m->fallback_logged_ns > 10 * (int64_t)1000000000)) {
        log_msg(LOG_WARN, "model %s: %ld batch%s failed on %s and ran on the CPU instead (%s)",
                m->name, fell, fell == 1 ? "" : "es", engine_backend_name(m->engine), why);
        m->fallbacks_logged = fell;
        m->fallback_logged_ns = now;
    }
}

/* What the limits allow requests to hold, part by part (README, Limits). */
static void set_memory_budget(server *s)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double decoders = s->cfg.decode_threads ? s->cfg.decode_threads : (cores > 0 ? cores : 1);
    double queued = 0;
    model_view *v;
    int n = model_repo_list(&s->repo, &v);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < v[i].n_versions; k++) {
            const served_model *m = v[i].versions[k].live;
            if (!m || v[i].versions[k].state != MODEL_READY)
                continue;
            double item = 0; /* one queued item's tensors, in and out */
            for (int q = 0; q < engine_input_count(m->engine); q++)
                item += (double)batcher_input_elems(m->batcher, q) * sizeof(float);
            for (int q = 0; q < engine_output_count(m->engine); q++)
                item += (double)batcher_output_elems(m->batcher, q) *
                        (double)batcher_output_elem_size(m->batcher, q);
            queued += item * m->cfg.max_queue_size;
        }
    model_repo_list_free(v, n > 0 ? n : 0);
    metric_set(families.memory_budget, (double)s->cfg.max_buffered_bytes, "request_bodies");
    metric_set(families.memory_budget, decoders * 2 * (double)s->cfg.max_decode_bytes, "decoding");
    metric_set(families.memory_budget, queued, "queued_tensors");
    metric_set(families.memory_budget, (double)s->cfg.max_connections * 32 * 1024, "connections");
}

enum MHD_Result api_metrics(request *r)
{
    model_view *v;
    int n = model_repo_list(&r->srv->repo, &v);
    for (int i = 0; i < n; i++) {
        const char *name = v[i].name;
        int serving = 0, depth = 0;
        for (int k = 0; k < v[i].n_versions; k++) {
            const served_model *m = v[i].versions[k].live;
            serving += v[i].versions[k].state == MODEL_READY;
            if (m) { /* draining versions still hold queued requests, and memory */
                depth += batcher_queue_depth(m->batcher);
                engine_memory_info mem;
                engine_memory(m->engine, &mem);
                set_model_memory(name, v[i].versions[k].version, &mem);
            }
        }
        metric_set(families.model_ready, v[i].state == MODEL_READY, name);
        metric_set(families.versions_loaded, serving, name);
        metric_set(families.queue_depth, depth, name);
        const served_model *m = v[i].latest;
        if (m) {
            metric_set(families.fallbacks, (double)engine_fallback_count(m->engine), name);
            metric_set(families.input_copies, (double)engine_input_copies(m->engine), name);
            metric_set(families.backend_info, 1, name, engine_backend_name(m->engine),
                       m->backend);
        }
    }
    model_repo_list_free(v, n > 0 ? n : 0);
    server *s = r->srv;
    set_memory_budget(s);
    metric_set(families.decode_queue_depth, s->pool ? work_pool_depth(s->pool) : 0);
    metric_set(families.buffered_bytes, (double)body_budget_used(&s->bodies));
    metric_set(families.buffered_limit, (double)s->bodies.limit);
    if (s->guard) {
        conn_guard_stats gs;
        conn_guard_get_stats(s->guard, &gs);
        metric_set(families.connections, gs.open);
        /* counters kept by the guard: set to its running totals */
        metric_set(families.conn_closed, (double)gs.head_timeouts, "head_timeout");
        metric_set(families.conn_closed, (double)gs.body_timeouts, "body_timeout");
        metric_set(families.conn_closed, (double)gs.peer_closed, "peer_closed");
    }
    size_t len = 0;
    char *text = metrics_render(&len);
    if (!text)
        return http_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return http_respond_text(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
