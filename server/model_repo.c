/* The model repository's state, its references and its manager thread;
 * see model_repo.h. What the folder says is read in model_sync.c, one
 * version is loaded in model_load.c.
 *
 * Locking: one mutex guards the entries, their version slots, the retired
 * list and the task queue. It is never held while a model loads or is
 * freed (seconds), only while pointers are read or swapped, so a request's
 * lookup never waits for a load.
 */
#include "model_repo_internal.h"

#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engine/clock.h"
#include "log.h"

bool model_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

int64_t model_version_parse(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 16 || s[0] == '0')
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= (1LL << 53) ? v : -1;
}

const char *model_state_name(model_state s)
{
    switch (s) {
    case MODEL_LOADING: return "loading";
    case MODEL_READY: return "ready";
    case MODEL_FAILED: return "failed";
    case MODEL_UNLOADING: return "unloading";
    case MODEL_UNAVAILABLE: return "unavailable";
    }
    return "?";
}

const char *model_state_index_name(model_state s)
{
    switch (s) {
    case MODEL_LOADING: return "LOADING";
    case MODEL_READY: return "READY";
    case MODEL_UNLOADING: return "UNLOADING";
    default: return "UNAVAILABLE";
    }
}

/* --- entries and slots (the lock held) --- */

model_entry *repo_entry(model_repo *r, const char *name)
{
    for (int i = 0; i < r->n_entries; i++)
        if (strcmp(r->entries[i].name, name) == 0)
            return &r->entries[i];
    return NULL;
}

version_slot *repo_slot(model_entry *e, int64_t version)
{
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].version == version)
            return &e->slots[i];
    return NULL;
}

version_slot *repo_add_slot(model_entry *e, int64_t version)
{
    if (e->n_slots == MAX_VERSIONS)
        return NULL;
    int at = e->n_slots;
    while (at > 0 && e->slots[at - 1].version > version)
        at--;
    memmove(&e->slots[at + 1], &e->slots[at], (size_t)(e->n_slots - at) * sizeof e->slots[0]);
    e->n_slots++;
    e->slots[at] = (version_slot){.version = version, .state = MODEL_LOADING};
    return &e->slots[at];
}

/* Takes m out of service: it drains and the manager frees it. */
void repo_retire(model_repo *r, served_model *m)
{
    if (!m)
        return;
    m->next_retired = r->retired;
    r->retired = m;
    log_msg(LOG_INFO, "model %s version %lld unloaded: it finishes what it holds, then is freed",
            m->name, (long long)m->version);
    atomic_fetch_sub(&m->refs, 1); /* the repository's own reference */
}

void repo_remove_slot(model_repo *r, model_entry *e, int64_t version)
{
    version_slot *s = repo_slot(e, version);
    if (!s)
        return;
    if (s->live && r->opts.observe_version)
        r->opts.observe_version(e->name, version, false);
    repo_retire(r, s->live);
    int at = (int)(s - e->slots);
    memmove(&e->slots[at], &e->slots[at + 1], (size_t)(e->n_slots - at - 1) * sizeof e->slots[0]);
    e->n_slots--;
}

static served_model *latest_live(const model_entry *e)
{
    for (int i = e->n_slots - 1; i >= 0; i--)
        if (e->slots[i].live)
            return e->slots[i].live;
    return NULL;
}

/* --- references --- */

served_model *model_repo_acquire(model_repo *r, const char *name, int64_t version,
                                 unsigned *status, char *msg, size_t msglen)
{
    pthread_mutex_lock(&r->lock);
    model_entry *e = repo_entry(r, name);
    served_model *m = NULL;
    *status = 404;
    if (!e || !e->present) {
        snprintf(msg, msglen, "unknown model '%.64s'", name);
    } else if (version) {
        version_slot *s = repo_slot(e, version);
        m = s ? s->live : NULL;
        if (!s)
            snprintf(msg, msglen, "model '%s' has no version %lld", name, (long long)version);
        else if (!m) {
            *status = 503;
            snprintf(msg, msglen, "model '%s' version %lld is %s%s%.500s", name,
                     (long long)version, model_state_name(s->state), s->reason[0] ? ": " : "",
                     s->reason);
        }
    } else if (!(m = latest_live(e))) {
        *status = 503;
        const version_slot *failed = NULL;
        bool loading = !r->first_scan_done;
        for (int i = 0; i < e->n_slots; i++) {
            loading |= e->slots[i].state == MODEL_LOADING;
            if (e->slots[i].state == MODEL_FAILED)
                failed = &e->slots[i];
        }
        if (e->unloaded)
            snprintf(msg, msglen, "model '%s' is unloaded (load it again to serve it)", name);
        else if (loading)
            snprintf(msg, msglen, "model '%s' is loading", name);
        else
            snprintf(msg, msglen, "model '%s' is failed: %.500s", name,
                     failed ? failed->reason : e->error);
    }
    if (m)
        atomic_fetch_add(&m->refs, 1);
    pthread_mutex_unlock(&r->lock);
    return m;
}

void model_repo_release(served_model *m)
{
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    /* the last reference to a retired version: the manager frees it */
    model_repo *r = m->repo;
    pthread_mutex_lock(&r->lock);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

/* --- snapshots --- */

static int by_version(const void *a, const void *b)
{
    int64_t x = ((const version_view *)a)->version, y = ((const version_view *)b)->version;
    return x < y ? -1 : x > y;
}

static int by_view_name(const void *a, const void *b)
{
    return strcmp(((const model_view *)a)->name, ((const model_view *)b)->name);
}

static int draining_count(const model_repo *r, const char *name)
{
    int n = 0;
    for (const served_model *m = r->retired; m; m = m->next_retired)
        n += strcmp(m->name, name) == 0;
    return n;
}

static void fill_view(model_repo *r, const model_entry *e, model_view *v)
{
    snprintf(v->name, sizeof v->name, "%s", e->name);
    snprintf(v->error, sizeof v->error, "%s", e->error);
    int k = 0;
    bool loading = !r->first_scan_done && !e->unloaded, failed = e->error[0] != 0;
    for (int i = 0; i < e->n_slots; i++) {
        const version_slot *s = &e->slots[i];
        version_view *vv = &v->versions[k++];
        *vv = (version_view){.version = s->version, .state = s->state, .live = s->live};
        snprintf(vv->reason, sizeof vv->reason, "%s", s->reason);
        if (s->live)
            atomic_fetch_add(&s->live->refs, 1);
        loading |= s->state == MODEL_LOADING;
        failed |= s->state == MODEL_FAILED;
    }
    for (served_model *m = r->retired; m; m = m->next_retired)
        if (strcmp(m->name, e->name) == 0) {
            atomic_fetch_add(&m->refs, 1);
            v->versions[k++] = (version_view){.version = m->version, .state = MODEL_UNLOADING,
                                              .live = m};
        }
    v->n_versions = k;
    qsort(v->versions, (size_t)k, sizeof *v->versions, by_version);
    v->latest = latest_live(e);
    v->state = v->latest ? MODEL_READY
               : loading ? MODEL_LOADING
               : failed && !e->unloaded ? MODEL_FAILED
                                        : MODEL_UNAVAILABLE;
    if (v->latest)
        atomic_fetch_add(&v->latest->refs, 1);
}

int model_repo_list(model_repo *r, model_view **out)
{
    pthread_mutex_lock(&r->lock);
    model_view *v = calloc((size_t)r->n_entries + 1, sizeof *v);
    int n = 0;
    for (int i = 0; v && i < r->n_entries; i++) {
        model_entry *e = &r->entries[i];
        int draining = draining_count(r, e->name);
        if (!e->present && !draining)
            continue;
        v[n].versions = calloc((size_t)(e->n_slots + draining) + 1, sizeof *v[n].versions);
        if (!v[n].versions) {
            pthread_mutex_unlock(&r->lock);
            model_repo_list_free(v, n);
            return -1;
        }
        fill_view(r, e, &v[n++]);
    }
    pthread_mutex_unlock(&r->lock);
    if (!v)
        return -1;
    qsort(v, (size_t)n, sizeof *v, by_view_name);
    *out = v;
    return n;
}

void model_repo_list_free(model_view *v, int n)
{
    for (int i = 0; v && i < n; i++) {
        for (int k = 0; k < v[i].n_versions; k++)
            model_repo_release(v[i].versions[k].live);
        model_repo_release(v[i].latest);
        free(v[i].versions);
    }
    free(v);
}

bool model_repo_ready(model_repo *r)
{
    pthread_mutex_lock(&r->lock);
    bool ready = false;
    for (int i = 0; r->first_scan_done && !ready && i < r->n_entries; i++)
        ready = latest_live(&r->entries[i]) != NULL;
    pthread_mutex_unlock(&r->lock);
    return ready;
}

/* --- the manager --- */

/* Frees retired versions no request holds any more (called locked; the
 * lock is let go while freeing). */
static void reap(model_repo *r)
{
    served_model *free_list = NULL, **p = &r->retired;
    while (*p) {
        served_model *m = *p;
        if (atomic_load(&m->refs) == 0) {
            *p = m->next_retired;
            m->next_retired = free_list;
            free_list = m;
        } else {
            p = &m->next_retired;
        }
    }
    if (!free_list)
        return;
    pthread_mutex_unlock(&r->lock);
    while (free_list) {
        served_model *m = free_list;
        free_list = m->next_retired;
        log_msg(LOG_INFO, "model %s version %lld drained and freed", m->name,
                (long long)m->version);
        model_instance_free(m);
    }
    /* give the freed arenas back to the system, so an unload shows in RSS */
    malloc_trim(0);
    pthread_mutex_lock(&r->lock);
}

static void finish_task(model_repo *r, task_node *t, unsigned status, const char *msg)
{
    if (t->done)
        t->done(t->arg, status, msg);
    pthread_mutex_lock(&r->lock);
    r->finished = t->ticket;
    pthread_cond_broadcast(&r->done);
    pthread_mutex_unlock(&r->lock);
    free(t);
}

static void run_task(model_repo *r, task_node *t)
{
    char msg[1024] = "";
    unsigned status = 0;
    if (t->kind == REPO_SCAN)
        repo_sync_all(r);
    else if (t->kind == REPO_LOAD)
        status = repo_load_model(r, t->name, msg, sizeof msg);
    else
        status = repo_unload_model(r, t->name, msg, sizeof msg);
    finish_task(r, t, status, msg);
}

static void *manager(void *arg)
{
    model_repo *r = arg;
    int64_t poll_ns = (int64_t)r->opts.poll_s * 1000000000;
    int64_t next_poll = clock_monotonic_ns() + poll_ns;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        reap(r);
        if (r->stop)
            break;
        task_node *t = r->tasks;
        if (t) {
            r->tasks = t->next;
            if (!r->tasks)
                r->tasks_tail = NULL;
            pthread_mutex_unlock(&r->lock);
            run_task(r, t);
            pthread_mutex_lock(&r->lock);
            continue;
        }
        int64_t now = clock_monotonic_ns();
        if (poll_ns && now >= next_poll) {
            pthread_mutex_unlock(&r->lock);
            model_repo_request(r, REPO_SCAN, "", NULL, NULL);
            pthread_mutex_lock(&r->lock);
            next_poll = now + poll_ns;
            continue;
        }
        if (poll_ns) { /* wake is on the monotonic clock (model_repo_open) */
            struct timespec until = {.tv_sec = next_poll / 1000000000,
                                     .tv_nsec = next_poll % 1000000000};
            pthread_cond_timedwait(&r->wake, &r->lock, &until);
        } else {
            pthread_cond_wait(&r->wake, &r->lock);
        }
    }
    /* stopping: what still waits is answered */
    while (r->tasks) {
        task_node *t = r->tasks;
        r->tasks = t->next;
        pthread_mutex_unlock(&r->lock);
        finish_task(r, t, 503, "the server is stopping");
        pthread_mutex_lock(&r->lock);
    }
    r->tasks_tail = NULL;
    pthread_mutex_unlock(&r->lock);
    atomic_store(&r->thread_exited, true);
    return NULL;
}

uint64_t model_repo_request(model_repo *r, repo_task_kind kind, const char *name,
                            void (*done)(void *arg, unsigned status, const char *message),
                            void *arg)
{
    pthread_mutex_lock(&r->lock);
    uint64_t ticket = 0;
    if (r->stop)
        goto out;
    /* a scan nobody waits on merges with one already waiting */
    for (task_node *t = r->tasks; t && kind == REPO_SCAN && !done; t = t->next)
        if (t->kind == REPO_SCAN && !t->done) {
            ticket = t->ticket;
            goto out;
        }
    task_node *t = calloc(1, sizeof *t);
    if (!t)
        goto out;
    *t = (task_node){.kind = kind, .done = done, .arg = arg, .ticket = ++r->tickets};
    snprintf(t->name, sizeof t->name, "%s", name);
    if (r->tasks_tail)
        r->tasks_tail->next = t;
    else
        r->tasks = t;
    r->tasks_tail = t;
    ticket = t->ticket;
    pthread_cond_signal(&r->wake);
out:
    pthread_mutex_unlock(&r->lock);
    return ticket;
}

uint64_t model_repo_finished(model_repo *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t f = r->finished;
    pthread_mutex_unlock(&r->lock);
    return f;
}

void model_repo_wait(model_repo *r, uint64_t ticket)
{
    pthread_mutex_lock(&r->lock);
    while (r->finished < ticket && !atomic_load(&r->thread_exited))
        pthread_cond_wait(&r->done, &r->lock);
    pthread_mutex_unlock(&r->lock);
}

int model_repo_open(model_repo *r, const char *dir, const model_load_options *o, char *err,
                    size_t errlen)
{
    memset(r, 0, sizeof *r);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot read the model repository %s: %s", dir, strerror(errno));
        return -1;
    }
    closedir(d);
    r->entries = calloc(MAX_MODELS, sizeof *r->entries);
    if (!r->entries) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    r->opts = *o;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&r->wake, &monotonic);
    pthread_condattr_destroy(&monotonic);
    pthread_cond_init(&r->done, NULL);
    atomic_init(&r->thread_exited, false);
    return 0;
}

uint64_t model_repo_start(model_repo *r)
{
    uint64_t ticket = model_repo_request(r, REPO_SCAN, "", NULL, NULL);
    if (pthread_create(&r->thread, NULL, manager, r) != 0)
        return 0;
    r->thread_started = true;
    return ticket;
}

bool model_repo_stop(model_repo *r, int64_t wait_ms)
{
    if (!r->entries)
        return true;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    if (!r->thread_started)
        return true;
    for (int64_t waited = 0; !atomic_load(&r->thread_exited) && waited < wait_ms; waited += 10)
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    if (!atomic_load(&r->thread_exited))
        return false;
    pthread_join(r->thread, NULL);
    r->thread_started = false;
    return true;
}

void model_repo_free(model_repo *r)
{
    if (!r->entries)
        return;
    for (int i = 0; i < r->n_entries; i++) {
        model_entry *e = &r->entries[i];
        for (int k = 0; k < e->n_slots; k++)
            model_instance_free(e->slots[k].live);
    }
    while (r->retired) {
        served_model *m = r->retired;
        r->retired = m->next_retired;
        model_instance_free(m);
    }
    while (r->tasks) {
        task_node *t = r->tasks;
        r->tasks = t->next;
        free(t);
    }
    free(r->entries);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    pthread_cond_destroy(&r->done);
    memset(r, 0, sizeof *r);
}
