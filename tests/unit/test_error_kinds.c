/* Errors keep their kind from the engine to the HTTP answer: a batch that
 * fails with an engine status reaches the job with that status, and the
 * server's one table (server/http_status.c) answers it. Faults are injected
 * with the engine's testing aid, on the shipped MNIST model. */
#include <pthread.h>
#include <string.h>

#include "../../engine/batcher.h"
#include "../../server/server.h"
#include "check.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} waiter;

static void on_done(batch_job *job)
{
    waiter *w = job->user;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* One image through a batcher whose engine fails every run with `inject`
 * (0: it runs). Returns the job's status. */
static engine_status run_one(engine_status inject, char *message, size_t n)
{
    engine_options opt = {.device = "cpu", .max_batch = 2, .inject_faults = inject ? 1 : 0,
                          .inject_status = inject};
    engine *e;
    engine_error err = {0};
    CHECK(engine_load("models/mnist/model.onnx", &opt, &e, &err) == ENGINE_OK);
    batcher_config cfg = {.max_batch_size = 2, .max_queue_delay_us = 100, .max_queue_size = 4,
                          .timeout_ms = 10000};
    batcher *b;
    CHECK(batcher_create(e, &cfg, &b, &err) == ENGINE_OK);
    static float image[28 * 28], logits[10];
    void *in[1] = {image}, *out[1] = {logits};
    waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    batch_job job = {.n_items = 1, .inputs = in, .outputs = out, .on_done = on_done, .user = &w};
    CHECK(batcher_submit(b, &job) == BATCHER_OK);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    snprintf(message, n, "%s", job.error);
    batcher_destroy(b);
    engine_free(e);
    return job.status;
}

int main(void)
{
    char msg[256];
    CHECK(run_one(ENGINE_OK, msg, sizeof msg) == ENGINE_OK);
    /* a device fault is answered by the CPU fallback */
    CHECK(run_one(ENGINE_E_BACKEND, msg, sizeof msg) == ENGINE_OK);
    static const struct {
        engine_status st;
        unsigned http;
        const char *reason;
    } kinds[] = {
        {ENGINE_E_NOMEM, 503, "out_of_memory"}, {ENGINE_E_INVALID, 400, NULL},
        {ENGINE_E_ARG, 400, NULL},              {ENGINE_E_UNSUPPORTED, 400, NULL},
        {ENGINE_E_TIMEOUT, 504, NULL},          {ENGINE_E_BUSY, 503, "busy"},
        {ENGINE_E_IO, 500, NULL},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        CHECK(run_one(kinds[i].st, msg, sizeof msg) == kinds[i].st);
        CHECK(strstr(msg, "injected") != NULL);
        http_answer a = http_answer_of(kinds[i].st);
        CHECK(a.status == kinds[i].http);
        CHECK((a.reason == NULL) == (kinds[i].reason == NULL));
        CHECK(!a.reason || strcmp(a.reason, kinds[i].reason) == 0);
    }
    /* every status has its row: none falls to the default */
    CHECK(http_answer_of(ENGINE_OK).status == 200);
    CHECK(http_answer_of(ENGINE_E_PARSE).status == 400);
    CHECK(http_answer_of(ENGINE_E_BACKEND).status == 500);
    CHECK(http_answer_of((engine_status)999).status == 500);
    printf("test_error_kinds: ok\n");
    return 0;
}
