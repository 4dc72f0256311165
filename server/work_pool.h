/* The decode pool: worker threads that turn request bodies into input
 * tensors (image decoding and resizing, JSON tensor parsing), so that
 * libmicrohttpd's connection threads only move bytes and never wait behind
 * a client's expensive image. /healthz, /readyz and /metrics are answered
 * by those threads and stay fast whatever the pool is doing.
 *
 * A bounded FIFO of tasks; submitting to a full queue fails at once (the
 * caller answers 503). Each task runs exactly once: either `run` on a
 * worker, or `cancel` (from the thread calling work_pool_stop) when the
 * pool stops before a worker took it.
 */
#ifndef VISIOND_WORK_POOL_H
#define VISIOND_WORK_POOL_H

#include <stdbool.h>

typedef struct {
    void (*run)(void *arg);
    void (*cancel)(void *arg);
    void *arg;
} work_task;

typedef struct work_pool work_pool;

/* threads >= 1 workers, at most queue_cap tasks waiting. NULL on failure. */
work_pool *work_pool_create(int threads, int queue_cap);
/* false when the queue is full or the pool is stopping (nothing was taken) */
bool work_pool_submit(work_pool *p, work_task t);
/* Tasks waiting for a worker. */
int work_pool_depth(work_pool *p);
/* Cancels what waits, lets running tasks finish, joins the workers. */
void work_pool_stop(work_pool *p);
void work_pool_free(work_pool *p);

#endif
