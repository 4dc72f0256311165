/* Connection deadlines and departed peers; see conn_guard.h.
 *
 * The records live in one list under one mutex. libmicrohttpd reports a
 * connection closed (conn_guard_notify) before it closes the socket, and
 * the record leaves the list under the mutex, so the checking thread never
 * shuts down a descriptor that already belongs to someone else.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include "conn_guard.h"

#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../engine/clock.h"

#define CHECK_EVERY_MS_DEFAULT 100
#define TRIM_AFTER_QUIET_MS 1000

typedef enum { PHASE_HEAD = 0, PHASE_BODY, PHASE_BUSY } conn_phase;

typedef struct guarded {
    struct guarded *prev, *next;
    conn_guard *guard;
    int fd;
    conn_phase phase;
    int64_t deadline_ns; /* 0: none */
    int departed_checks; /* consecutive checks that saw the peer gone */
    bool shut;
} guarded;

struct conn_guard {
    conn_guard_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    guarded *head;
    int open;
    long head_timeouts, body_timeouts, peer_closed;
    bool stopping;
    int64_t last_activity_ns, last_trim_ns;
    pthread_t thread;
};

/* Caller holds g->mu. */
static void enter(guarded *c, conn_phase phase, int64_t now)
{
    conn_guard *g = c->guard;
    c->phase = phase;
    c->departed_checks = 0;
    c->deadline_ns = phase == PHASE_HEAD   ? now + g->cfg.head_timeout_ms * 1000000
                     : phase == PHASE_BODY ? now + g->cfg.body_timeout_ms * 1000000
                                           : 0;
    g->last_activity_ns = now;
}

static void shut(guarded *c)
{
    if (!c->shut)
        shutdown(c->fd, SHUT_RDWR); /* libmicrohttpd sees the socket end and closes it */
    c->shut = true;
}

/* Whether the peer has closed its side with nothing left unread: then an
 * incomplete request can never complete. */
static bool departed(const struct pollfd *p)
{
    if (!(p->revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return false;
    int unread = 0;
    return ioctl(p->fd, FIONREAD, &unread) == 0 && unread == 0;
}

static void check(conn_guard *g, struct pollfd **fds, int *cap)
{
    if (g->open > *cap) {
        struct pollfd *n = realloc(*fds, sizeof *n * (size_t)g->open);
        if (!n)
            return;
        *fds = n;
        *cap = g->open;
    }
    int n = 0;
    for (guarded *c = g->head; c; c = c->next)
        (*fds)[n++] = (struct pollfd){.fd = c->fd, .events = POLLRDHUP};
    poll(*fds, (nfds_t)n, 0);
    int64_t now = clock_monotonic_ns();
    int i = 0;
    for (guarded *c = g->head; c; c = c->next, i++) {
        if (c->shut || c->phase == PHASE_BUSY)
            continue;
        if (c->deadline_ns && now > c->deadline_ns) {
            if (c->phase == PHASE_HEAD)
                g->head_timeouts++;
            else
                g->body_timeouts++;
            shut(c);
        } else if (departed(&(*fds)[i]) && ++c->departed_checks >= 2) {
            /* seen twice, a check apart: libmicrohttpd had time to take a
             * complete request it had already buffered */
            g->peer_closed++;
            shut(c);
        }
    }
}

static void *guard_main(void *arg)
{
    conn_guard *g = arg;
    struct pollfd *fds = NULL;
    int cap = 0;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        check(g, &fds, &cap);
        int64_t now = clock_monotonic_ns();
        bool quiet = now - g->last_activity_ns > (int64_t)TRIM_AFTER_QUIET_MS * 1000000;
        bool trim = quiet && g->last_trim_ns < g->last_activity_ns &&
                    !(g->cfg.busy && g->cfg.busy(g->cfg.user));
        if (trim)
            g->last_trim_ns = now;
        pthread_mutex_unlock(&g->mu);
        if (trim)
            malloc_trim(0); /* hand the freed pages of a burst back to the system */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += g->cfg.check_every_ms * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&g->mu);
        if (!g->stopping)
            pthread_cond_timedwait(&g->wake, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    free(fds);
    return NULL;
}

conn_guard *conn_guard_create(const conn_guard_config *cfg)
{
    conn_guard *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->cfg = *cfg;
    if (g->cfg.check_every_ms <= 0 || g->cfg.check_every_ms > 1000)
        g->cfg.check_every_ms = CHECK_EVERY_MS_DEFAULT;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->wake, &ca);
    pthread_condattr_destroy(&ca);
    g->last_activity_ns = clock_monotonic_ns();
    if (pthread_create(&g->thread, NULL, guard_main, g) != 0) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->wake);
        free(g);
        return NULL;
    }
    return g;
}

void conn_guard_free(conn_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    while (g->head) { /* libmicrohttpd is stopped: what is left is ours */
        guarded *c = g->head;
        g->head = c->next;
        free(c);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->wake);
    free(g);
}

void conn_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode code)
{
    conn_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        guarded *c = ci ? calloc(1, sizeof *c) : NULL;
        *socket_context = c;
        if (!c)
            return; /* unguarded: libmicrohttpd's idle timeout still applies */
        c->guard = g;
        c->fd = ci->connect_fd;
        pthread_mutex_lock(&g->mu);
        enter(c, PHASE_HEAD, clock_monotonic_ns());
        c->next = g->head;
        if (g->head)
            g->head->prev = c;
        g->head = c;
        g->open++;
        pthread_mutex_unlock(&g->mu);
        return;
    }
    guarded *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    g->open--;
    g->last_activity_ns = clock_monotonic_ns();
    pthread_mutex_unlock(&g->mu);
    free(c);
    *socket_context = NULL;
}

static void set_phase(struct MHD_Connection *conn, conn_phase phase)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    guarded *c = ci ? ci->socket_context : NULL;
    if (!c)
        return;
    pthread_mutex_lock(&c->guard->mu);
    enter(c, phase, clock_monotonic_ns());
    pthread_mutex_unlock(&c->guard->mu);
}

void conn_guard_body_started(struct MHD_Connection *c)
{
    set_phase(c, PHASE_BODY);
}

void conn_guard_body_done(struct MHD_Connection *c)
{
    set_phase(c, PHASE_BUSY);
}

void conn_guard_answered(struct MHD_Connection *c)
{
    set_phase(c, PHASE_HEAD);
}

void conn_guard_get_stats(conn_guard *g, conn_guard_stats *out)
{
    pthread_mutex_lock(&g->mu);
    *out = (conn_guard_stats){g->head_timeouts, g->body_timeouts, g->peer_closed, g->open};
    pthread_mutex_unlock(&g->mu);
}
