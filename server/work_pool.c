/* The decode pool; see work_pool.h. One mutex, one condition variable,
 * a ring of tasks. */
#include "work_pool.h"

#include <pthread.h>
#include <stdlib.h>

struct work_pool {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    work_task *ring;
    int cap, head, count;
    bool stopping;
    int n_threads;
    pthread_t *threads;
};

static void *worker_main(void *arg)
{
    work_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->count == 0 && !p->stopping)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->count == 0) /* stopping, nothing left */
            break;
        work_task t = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        pthread_mutex_unlock(&p->mu);
        t.run(t.arg);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

work_pool *work_pool_create(int threads, int queue_cap)
{
    if (threads < 1 || queue_cap < 1)
        return NULL;
    work_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cap = queue_cap;
    p->ring = calloc((size_t)queue_cap, sizeof *p->ring);
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    if (!p->ring || !p->threads) {
        free(p->ring);
        free(p->threads);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0)
            break;
        p->n_threads++;
    }
    if (p->n_threads == 0) {
        work_pool_free(p);
        return NULL;
    }
    return p;
}

bool work_pool_submit(work_pool *p, work_task t)
{
    pthread_mutex_lock(&p->mu);
    bool ok = !p->stopping && p->count < p->cap;
    if (ok) {
        p->ring[(p->head + p->count) % p->cap] = t;
        p->count++;
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

int work_pool_depth(work_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->count;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void work_pool_stop(work_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    p->stopping = true;
    /* take what waits, so that cancelling runs without the lock */
    int n = p->count;
    work_task *waiting = malloc(sizeof *waiting * (size_t)(n ? n : 1));
    for (int i = 0; i < n && waiting; i++)
        waiting[i] = p->ring[(p->head + i) % p->cap];
    if (waiting) {
        p->head = (p->head + n) % p->cap;
        p->count = 0;
    }
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n && waiting; i++)
        waiting[i].cancel(waiting[i].arg);
    free(waiting);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    p->n_threads = 0;
}

void work_pool_free(work_pool *p)
{
    if (!p)
        return;
    work_pool_stop(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->ring);
    free(p->threads);
    free(p);
}
