/* Dynamic batching; the policy is described in batcher.h.
 *
 * One mutex guards the queue and the hand-off between the dispatcher and
 * the runner; callbacks always run with it released. Items of a job sit
 * next to each other in the FIFO ring, and all share the job's deadline.
 * Deadlines count from each request's arrival (due_ns), so they are
 * nearly, not strictly, in queue order: expiry is checked at the head,
 * and a job that expired behind a younger one is dropped when it gets
 * there (or, if a batch takes it first, answered late rather than never).
 */
#include "batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

typedef struct {
    batch_job *job;
    int index;
} item;

struct batcher {
    engine *e;
    batcher_config cfg;
    int n_in, n_out;
    int64_t *in_elems, *out_elems;
    size_t *out_size;
    size_t image_bytes;  /* per item, for jobs of images as bytes (cfg.image_jobs) */
    int max_batch;   /* items per batch */
    int fixed_batch; /* > 0: the engine only runs this batch; short batches are padded */

    pthread_mutex_t mu;
    pthread_cond_t wake_dispatcher, wake_runner;
    item *ring;
    int cap, head, count;
    int arriving;
    int reserved;    /* items admitted by batcher_reserve, not yet submitted */
    bool stopping, dispatcher_done, runner_busy, batch_ready;
    item *batch;
    int batch_n;
    uint64_t batch_gen;

    void **batch_in;
    void **batch_out;
    pthread_t dispatcher, runner;
    bool threads_started;
};

/* Waits on cond until the monotonic time `until_ns` (or forever if < 0).
 * The conditions use CLOCK_MONOTONIC (see batcher_create). */
static void wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t until_ns)
{
    if (until_ns < 0) {
        pthread_cond_wait(cond, mu);
        return;
    }
    struct timespec ts = {.tv_sec = until_ns / 1000000000, .tv_nsec = until_ns % 1000000000};
    pthread_cond_timedwait(cond, mu, &ts);
}

/* Jobs finished under the lock, to be called back after it is released. */
typedef struct {
    batch_job **jobs;
    int n;
} done_list;

static void run_callbacks(batcher *b, done_list *d)
{
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < d->n; i++)
        d->jobs[i]->on_done(d->jobs[i]);
    d->n = 0;
    pthread_mutex_lock(&b->mu);
}

static void finish_if_done(batch_job *job, done_list *d)
{
    if (job->queued == 0 && job->running == 0)
        d->jobs[d->n++] = job;
}

/* Drops the head job's queued items: it timed out, or we are shutting down
 * without an engine to run it. */
static void drop_head_job(batcher *b, engine_status why, done_list *d)
{
    batch_job *job = b->ring[b->head].job;
    while (b->count > 0 && b->ring[b->head].job == job) {
        b->head = (b->head + 1) % b->cap;
        b->count--;
        job->queued--;
    }
    if (job->status == ENGINE_OK) {
        job->status = why;
        snprintf(job->error, sizeof job->error, "%s",
                 why == ENGINE_E_TIMEOUT ? "timed out waiting in the queue" : "shutting down");
    }
    finish_if_done(job, d);
}

static void *dispatcher_main(void *arg)
{
    batcher *b = arg;
    batch_job *done_storage[64];
    done_list done = {done_storage, 0};
    int64_t delay_ns = b->cfg.max_queue_delay_us * 1000;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        int64_t now = clock_monotonic_ns();
        while (b->count > 0 && b->ring[b->head].job->deadline_ns <= now && done.n < 64)
            drop_head_job(b, ENGINE_E_TIMEOUT, &done);
        if (done.n) {
            run_callbacks(b, &done);
            continue;
        }
        if (b->stopping && b->count == 0 && !b->runner_busy && !b->batch_ready)
            break;
        int64_t wake = -1;
        if (b->count > 0 && !b->runner_busy && !b->batch_ready) {
            int64_t oldest = b->ring[b->head].job->enqueued_ns;
            if (b->count >= b->max_batch || now - oldest >= delay_ns || b->arriving <= 0 ||
                b->stopping) {
                int n = b->count < b->max_batch ? b->count : b->max_batch;
                bool u8 = b->ring[b->head].job->u8;
                for (int i = 0; i < n; i++) {
                    item it = b->ring[b->head];
                    if (it.job->u8 != u8) { /* byte and float jobs never share a batch */
                        n = i;
                        break;
                    }
                    b->head = (b->head + 1) % b->cap;
                    b->count--;
                    it.job->queued--;
                    it.job->running++;
                    b->batch[i] = it;
                }
                b->batch_n = n;
                b->batch_ready = true;
                pthread_cond_signal(&b->wake_runner);
                continue;
            }
            wake = oldest + delay_ns;
        }
        if (b->count > 0) {
            int64_t deadline = b->ring[b->head].job->deadline_ns;
            if (wake < 0 || deadline < wake)
                wake = deadline;
        }
        wait_until(&b->wake_dispatcher, &b->mu, wake);
    }
    b->dispatcher_done = true;
    pthread_cond_broadcast(&b->wake_runner);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void *runner_main(void *arg)
{
    batcher *b = arg;
    batch_job **done_storage = malloc(sizeof *done_storage * (size_t)b->max_batch);
    done_list done = {done_storage, 0};
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->batch_ready && !b->dispatcher_done)
            pthread_cond_wait(&b->wake_runner, &b->mu);
        if (!b->batch_ready)
            break;
        int n = b->batch_n;
        b->batch_ready = false;
        b->runner_busy = true;
        uint64_t gen = ++b->batch_gen;
        pthread_mutex_unlock(&b->mu);

        int run_n = b->fixed_batch ? b->fixed_batch : n;
        bool u8 = b->batch[0].job->u8;
        for (int k = 0; k < b->n_in; k++) {
            size_t per = k == 0 && u8 ? b->image_bytes : (size_t)b->in_elems[k] * sizeof(float);
            char *dst = b->batch_in[k];
            for (int i = 0; i < n; i++)
                memcpy(dst + (size_t)i * per,
                       (const char *)b->batch[i].job->inputs[k] + (size_t)b->batch[i].index * per,
                       per);
            if (run_n > n)
                memset(dst + (size_t)n * per, 0, (size_t)(run_n - n) * per);
        }
        engine_error err = {0};
        int64_t t0 = clock_monotonic_ns();
        engine_status st =
            u8 ? engine_run_images(b->e, run_n, b->batch_in[0], b->batch_out, &err)
               : engine_run(b->e, run_n, (const float *const *)b->batch_in, b->batch_out, &err);
        int64_t t1 = clock_monotonic_ns();
        double ms = (double)(t1 - t0) / 1e6;
        if (!st)
            for (int k = 0; k < b->n_out; k++) {
                size_t per = (size_t)b->out_elems[k] * b->out_size[k];
                for (int i = 0; i < n; i++)
                    memcpy((char *)b->batch[i].job->outputs[k] + (size_t)b->batch[i].index * per,
                           (char *)b->batch_out[k] + (size_t)i * per, per);
            }
        if (b->cfg.observe_batch)
            b->cfg.observe_batch(b->cfg.user, n, ms);

        pthread_mutex_lock(&b->mu);
        for (int i = 0; i < n; i++) {
            batch_job *job = b->batch[i].job;
            double waited = (double)(t0 - job->enqueued_ns) / 1e6;
            if (waited > job->queue_ms)
                job->queue_ms = waited;
            if (n > job->batch_size)
                job->batch_size = n;
            if (job->last_batch != gen) { /* this batch's time counts once per job */
                job->last_batch = gen;
                job->inference_ms += ms;
            }
            if (st && job->status == ENGINE_OK) {
                job->status = st;
                snprintf(job->error, sizeof job->error, "%s", err.message);
            }
            job->running--;
            finish_if_done(job, &done);
        }
        b->runner_busy = false;
        pthread_cond_signal(&b->wake_dispatcher);
        run_callbacks(b, &done);
    }
    pthread_mutex_unlock(&b->mu);
    free(done_storage);
    return NULL;
}

static int64_t elems_per_item(const engine_tensor_info *t)
{
    int64_t n = 1;
    for (int d = 1; d < t->rank; d++)
        n *= t->dims[d];
    return n;
}

engine_status batcher_create(engine *e, const batcher_config *cfg, batcher **out,
                             engine_error *err)
{
    *out = NULL;
    if (cfg->max_batch_size < 1 || cfg->max_queue_size < 1 || cfg->max_queue_delay_us < 0 ||
        cfg->timeout_ms < 1)
        return engine_fail(err, ENGINE_E_ARG, "bad batching settings");
    batcher *b = calloc(1, sizeof *b);
    if (!b)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    b->e = e;
    b->cfg = *cfg;
    b->n_in = engine_input_count(e);
    b->n_out = engine_output_count(e);
    b->fixed_batch = engine_batch_is_dynamic(e) ? 0 : engine_max_batch(e);
    b->max_batch = b->fixed_batch ? b->fixed_batch : cfg->max_batch_size;
    if (!b->fixed_batch && engine_max_batch(e) < b->max_batch) {
        int want = b->max_batch;
        free(b);
        return engine_fail(err, ENGINE_E_ARG, "the engine was loaded for batches up to %d, not %d",
                           engine_max_batch(e), want);
    }
    if (cfg->image_jobs && !(b->image_bytes = engine_image_bytes(e))) {
        free(b);
        return engine_fail(err, ENGINE_E_ARG, "image jobs need an engine with an image input");
    }
    b->cap = cfg->max_queue_size;
    b->ring = calloc((size_t)b->cap, sizeof *b->ring);
    b->batch = calloc((size_t)b->max_batch, sizeof *b->batch);
    b->in_elems = calloc((size_t)b->n_in + 1, sizeof *b->in_elems);
    b->out_elems = calloc((size_t)b->n_out + 1, sizeof *b->out_elems);
    b->out_size = calloc((size_t)b->n_out + 1, sizeof *b->out_size);
    b->batch_in = calloc((size_t)b->n_in + 1, sizeof *b->batch_in);
    b->batch_out = calloc((size_t)b->n_out + 1, sizeof *b->batch_out);
    engine_status st = ENGINE_OK;
    if (!b->ring || !b->batch || !b->in_elems || !b->out_elems || !b->out_size || !b->batch_in ||
        !b->batch_out) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        goto fail;
    }
    int run_batch = b->max_batch;
    for (int k = 0; k < b->n_in; k++) {
        engine_tensor_info t;
        engine_input_info(e, k, &t);
        if (t.rank < 1) {
            st = engine_fail(err, ENGINE_E_INVALID, "input '%s' has no batch axis", t.name);
            goto fail;
        }
        b->in_elems[k] = elems_per_item(&t);
        /* where the backend reads inputs without staging them (pinned on a GPU) */
        b->batch_in[k] =
            engine_host_alloc(e, (size_t)run_batch * (size_t)b->in_elems[k] * sizeof(float) + 64);
        if (!b->batch_in[k]) {
            st = engine_fail(err, ENGINE_E_NOMEM, "out of memory");
            goto fail;
        }
    }
    for (int k = 0; k < b->n_out; k++) {
        engine_tensor_info t;
        if ((st = engine_output_info(e, k, run_batch, &t, err)))
            goto fail;
        if (t.rank < 1 || t.dims[0] != run_batch) {
            st = engine_fail(err, ENGINE_E_INVALID,
                             "output '%s' does not have the batch on axis 0, so requests "
                             "cannot be batched",
                             t.name);
            goto fail;
        }
        b->out_elems[k] = elems_per_item(&t);
        b->out_size[k] = dtype_size(t.dtype);
        b->batch_out[k] =
            malloc((size_t)run_batch * (size_t)b->out_elems[k] * b->out_size[k] + 64);
        if (!b->batch_out[k]) {
            st = engine_fail(err, ENGINE_E_NOMEM, "out of memory");
            goto fail;
        }
    }
    /* Plan every batch size now: nothing is planned on the request path. */
    for (int n = 1; n <= b->max_batch; n++)
        if ((b->fixed_batch ? n == b->fixed_batch : true) && (st = engine_prepare(e, n, err)))
            goto fail;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->wake_dispatcher, &ca);
    pthread_cond_init(&b->wake_runner, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&b->runner, NULL, runner_main, b) != 0) {
        st = engine_fail(err, ENGINE_E_NOMEM, "cannot start the batch runner thread");
        goto fail_sync;
    }
    if (pthread_create(&b->dispatcher, NULL, dispatcher_main, b) != 0) {
        pthread_mutex_lock(&b->mu);
        b->dispatcher_done = true;
        pthread_cond_broadcast(&b->wake_runner);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->runner, NULL);
        st = engine_fail(err, ENGINE_E_NOMEM, "cannot start the batch dispatcher thread");
        goto fail_sync;
    }
    b->threads_started = true;
    *out = b;
    return ENGINE_OK;
fail_sync:
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->wake_dispatcher);
    pthread_cond_destroy(&b->wake_runner);
fail:
    batcher_destroy(b);
    return st;
}

void batcher_destroy(batcher *b)
{
    if (!b)
        return;
    if (b->threads_started) {
        pthread_mutex_lock(&b->mu);
        b->stopping = true;
        pthread_cond_broadcast(&b->wake_dispatcher);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->dispatcher, NULL);
        pthread_join(b->runner, NULL);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->wake_dispatcher);
        pthread_cond_destroy(&b->wake_runner);
    }
    for (int k = 0; b->batch_in && k < b->n_in; k++)
        if (b->batch_in[k])
            engine_host_free(b->e, b->batch_in[k]);
    for (int k = 0; b->batch_out && k < b->n_out; k++)
        free(b->batch_out[k]);
    free(b->batch_in);
    free(b->batch_out);
    free(b->in_elems);
    free(b->out_elems);
    free(b->out_size);
    free(b->ring);
    free(b->batch);
    free(b);
}

batcher_result batcher_submit(batcher *b, batch_job *job)
{
    if (job->n_items < 1 || !job->on_done || (job->u8 && !b->cfg.image_jobs))
        return BATCHER_BAD_JOB;
    pthread_mutex_lock(&b->mu);
    batcher_result r = BATCHER_OK;
    if (job->reserved) /* its room is either used now or given back */
        b->reserved -= job->n_items;
    if (b->stopping)
        r = BATCHER_STOPPED;
    else if (job->n_items > b->cap - b->count - b->reserved)
        r = BATCHER_FULL;
    if (r == BATCHER_OK) {
        job->enqueued_ns = clock_monotonic_ns();
        job->deadline_ns = job->due_ns > 0 ? job->due_ns
                                           : job->enqueued_ns + b->cfg.timeout_ms * 1000000;
        job->status = ENGINE_OK;
        job->error[0] = 0;
        job->queue_ms = job->inference_ms = 0;
        job->batch_size = 0;
        job->queued = job->n_items;
        job->running = 0;
        job->last_batch = 0;
        for (int i = 0; i < job->n_items; i++) {
            b->ring[(b->head + b->count) % b->cap] = (item){job, i};
            b->count++;
        }
        pthread_cond_signal(&b->wake_dispatcher);
    }
    pthread_mutex_unlock(&b->mu);
    return r;
}

bool batcher_reserve(batcher *b, int n)
{
    pthread_mutex_lock(&b->mu);
    bool ok = !b->stopping && n >= 1 && n <= b->cap - b->count - b->reserved;
    if (ok)
        b->reserved += n;
    pthread_mutex_unlock(&b->mu);
    return ok;
}

int batcher_room(batcher *b)
{
    pthread_mutex_lock(&b->mu);
    int n = b->stopping ? 0 : b->cap - b->count - b->reserved;
    pthread_mutex_unlock(&b->mu);
    return n;
}

void batcher_unreserve(batcher *b, int n)
{
    pthread_mutex_lock(&b->mu);
    b->reserved -= n;
    pthread_mutex_unlock(&b->mu);
}

void batcher_arriving(batcher *b, int delta)
{
    pthread_mutex_lock(&b->mu);
    b->arriving += delta;
    if (b->arriving <= 0)
        pthread_cond_signal(&b->wake_dispatcher);
    pthread_mutex_unlock(&b->mu);
}

int batcher_queue_depth(batcher *b)
{
    pthread_mutex_lock(&b->mu);
    int n = b->count;
    pthread_mutex_unlock(&b->mu);
    return n;
}

int batcher_max_batch(const batcher *b)
{
    return b->max_batch;
}

int64_t batcher_input_elems(const batcher *b, int i)
{
    return b->in_elems[i];
}

int64_t batcher_output_elems(const batcher *b, int i)
{
    return b->out_elems[i];
}

size_t batcher_output_elem_size(const batcher *b, int i)
{
    return b->out_size[i];
}
