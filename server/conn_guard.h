/* Connection deadlines that bytes do not reset, and peers that left.
 *
 * libmicrohttpd's own connection timeout is an idle timeout: every byte
 * restarts it, so a client sending one byte every few seconds (slowloris)
 * holds its connection for ever, and thousands of them hold every slot.
 * And libmicrohttpd 0.9.75 sometimes misses the FIN of a client that sent
 * part of a request and closed: the connection sits in CLOSE-WAIT until
 * that timeout, holding its slot though its client is gone.
 *
 * The guard tracks every connection (libmicrohttpd's connection-notify
 * callback) through its phases: waiting for a request head, reading a
 * body, busy (queued, running, or writing the answer). A thread checks
 * them every 100 ms: a head not complete within head_timeout of the
 * connection's start (or of its previous answer, on a kept-alive
 * connection), or a body not complete within body_timeout of its head,
 * gets the socket shut down, which libmicrohttpd notices at once and
 * closes. So does a connection whose peer closed while a request was still
 * incomplete and nothing more is left to read. Busy connections are left
 * alone: their request is bounded by the model's timeout_ms, and a client
 * that half-closes after a complete request still gets its answer.
 *
 * The same thread gives freed memory back to the system once the server
 * has been quiet for a second (malloc_trim), so RSS falls after a burst.
 */
#ifndef VISIOND_CONN_GUARD_H
#define VISIOND_CONN_GUARD_H

#include "mhd_compat.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct conn_guard conn_guard;

typedef struct {
    int64_t head_timeout_ms;
    int64_t body_timeout_ms;
    int check_every_ms;  /* 0: 100 */
    /* true while buffered request memory is in use: no trim then */
    bool (*busy)(void *user);
    void *user;
} conn_guard_config;

conn_guard *conn_guard_create(const conn_guard_config *cfg);
void conn_guard_free(conn_guard *g);

/* MHD_OPTION_NOTIFY_CONNECTION, with the guard as its argument. */
void conn_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);

/* Phase changes, from the access handler (head complete; body complete)
 * and the completion callback (answer sent: the next head's wait starts). */
void conn_guard_body_started(struct MHD_Connection *c);
void conn_guard_body_done(struct MHD_Connection *c);
void conn_guard_answered(struct MHD_Connection *c);

/* Connections closed by the guard, by reason, since it started. */
typedef struct {
    long head_timeouts, body_timeouts, peer_closed;
    int open;
} conn_guard_stats;
void conn_guard_get_stats(conn_guard *g, conn_guard_stats *out);

#endif
