/* Dynamic batching: one queue and one engine per model.
 *
 * Requests (jobs) of one or more items (images, or rows of a v2 tensor)
 * queue up; a dispatcher thread closes a batch when it holds
 * max_batch_size items, when its oldest item has waited max_queue_delay_us,
 * or at once when the engine is idle and no further request is on its way
 * (the server reports arrivals still being read and decoded through
 * batcher_arriving), so a lone client never waits for company. A runner
 * thread executes one batch at a time; while it runs, items keep queueing
 * and the dispatcher keeps failing items older than timeout_ms. A job of
 * more items than max_batch_size spans several batches.
 *
 * Every submitted job completes exactly once, through its callback, from a
 * batcher thread: done, timed out, failed, or refused at shutdown.
 * Nothing busy-waits: both threads sleep on condition variables.
 */
#ifndef VISIOND_BATCHER_H
#define VISIOND_BATCHER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

typedef struct {
    int max_batch_size;
    int64_t max_queue_delay_us;
    int max_queue_size;  /* items */
    int64_t timeout_ms;
    /* When set, jobs may give images as bytes (job->u8) that enter the
     * model at its image input (engine_set_image_input, engine_run_images);
     * a batch never mixes image and tensor jobs. */
    bool image_jobs;
    /* called by the runner after each batch (metrics); may be NULL */
    void (*observe_batch)(void *user, int batch_size, double inference_ms);
    void *user;
} batcher_config;

typedef struct batch_job batch_job;
struct batch_job {
    /* filled by the submitter */
    int n_items;
    void **inputs;    /* per model input: n_items consecutive items */
    bool u8;          /* input 0 holds images as bytes (see image_jobs) */
    void **outputs;   /* per model output: room for n_items items */
    void (*on_done)(batch_job *job);
    void *user;
    int64_t due_ns;   /* CLOCK_MONOTONIC time after which it times out; 0: timeout_ms from submit */
    bool reserved;    /* its n_items were reserved with batcher_reserve */
    /* filled by the batcher before on_done */
    /* ENGINE_OK, ENGINE_E_TIMEOUT (its deadline passed in the queue), or
     * the engine's own status for a batch that failed, with its message */
    engine_status status;
    char error[256];
    double queue_ms;      /* longest wait of an item before its batch started */
    double inference_ms;  /* engine time of the batches that ran its items */
    int batch_size;       /* largest batch its items rode in */
    /* private to the batcher */
    int64_t enqueued_ns, deadline_ns;
    int queued, running;
    uint64_t last_batch;
};

typedef enum { BATCHER_OK = 0, BATCHER_FULL, BATCHER_STOPPED, BATCHER_BAD_JOB } batcher_result;

typedef struct batcher batcher;

/* Per-item element counts come from the engine's inputs and outputs; all
 * must have the batch on axis 0. */
engine_status batcher_create(engine *e, const batcher_config *cfg, batcher **out,
                             engine_error *err);
/* Stops taking jobs, runs what is queued, joins the threads. */
void batcher_destroy(batcher *b);

batcher_result batcher_submit(batcher *b, batch_job *job);
/* Admission before the work of making a job: holds room for n items in the
 * queue (false, nothing held, when it has none). A job submitted with
 * `reserved` set uses its held room, so it cannot find the queue full; on
 * any other outcome the room is given back by batcher_unreserve. */
bool batcher_reserve(batcher *b, int n);
void batcher_unreserve(batcher *b, int n);
/* Items the queue could still take (neither queued nor reserved). */
int batcher_room(batcher *b);
/* +1 when a request for this model starts arriving, -1 when it was
 * submitted or abandoned. */
void batcher_arriving(batcher *b, int delta);

int batcher_queue_depth(batcher *b);
int batcher_max_batch(const batcher *b);
/* Elements per item of input/output i. */
int64_t batcher_input_elems(const batcher *b, int i);
int64_t batcher_output_elems(const batcher *b, int i);
size_t batcher_output_elem_size(const batcher *b, int i);

#endif
