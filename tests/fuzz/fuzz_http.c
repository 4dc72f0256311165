/* libFuzzer harness: the HTTP request path, in process.
 *
 * The daemon's server code (routing, bodies, multipart, the v2 JSON
 * splitter, the decode pool, the batcher, the answers) runs in this
 * process, serving the default model (mnist) from models/ or
 * $VISIOND_FUZZ_MODELS. Each input is the bytes a client sends on one
 * connection: one or more requests, raw images, multipart forms, v2 JSON,
 * or anything else. They go through a socket pair handed to
 * libmicrohttpd, the sending side is closed, and the answer is read until
 * the server closes; an answer that never comes fails the run (timeout).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

static server *srv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    srv = calloc(1, sizeof *srv);
    server_config_defaults(&srv->cfg);
    const char *models = getenv("VISIOND_FUZZ_MODELS");
    snprintf(srv->cfg.models_dir, sizeof srv->cfg.models_dir, "%s", models ? models : "models");
    server_config_set_listen(&srv->cfg, "127.0.0.1:0", (char[64]){0}, 64);
    srv->cfg.threads = 1;
    srv->cfg.max_body_bytes = 1 << 20;
    srv->cfg.max_buffered_bytes = 64 << 20;
    srv->cfg.max_image_pixels = 4000000;
    srv->cfg.max_decode_bytes = 64 << 20;
    srv->cfg.decode_timeout_ms = 1000;
    srv->cfg.head_timeout_ms = 2000;
    srv->cfg.body_timeout_ms = 2000;
    /* libmicrohttpd 0.9.75 often misses the end of a socket pair after an
     * answer; the guard closes such connections after two checks */
    srv->cfg.guard_check_ms = 5;
    /* the repository endpoints stay off: an input that unloads the model
     * would leave every later input a 503 */
    srv->cfg.model_control = MODEL_CONTROL_OFF;
    log_init(getenv("VISIOND_FUZZ_DEBUG") ? LOG_DEBUG : LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    server_metrics_init();
    char err[1400];
    model_load_options lo = {.device = "cpu", .threads = 1, .conv_algo = "auto",
                             .observe_batch = server_observe_batch};
    if (model_repo_open(&srv->repo, srv->cfg.models_dir, &lo, err, sizeof err) ||
        http_start(srv, err, sizeof err)) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    model_repo_wait(&srv->repo, model_repo_start(&srv->repo));
    if (!model_repo_ready(&srv->repo)) {
        fprintf(stderr, "fuzz_http: no model loaded from %s\n", srv->cfg.models_dir);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return 0;
    struct sockaddr_storage peer = {.ss_family = AF_UNIX};
    if (MHD_add_connection(srv->daemon, sv[1], (struct sockaddr *)&peer,
                           sizeof(sa_family_t)) != MHD_YES) {
        close(sv[0]);
        return 0;
    }
    /* the server reads while we write: a poll loop, so that neither side
     * waits on a full socket buffer */
    size_t sent = 0;
    char buf[65536];
    if (size == 0)
        shutdown(sv[0], SHUT_WR);
    int64_t quiet_since = http_now_ns();
    for (;;) {
        struct pollfd p = {sv[0], POLLIN | (sent < size ? POLLOUT : 0), 0};
        int ready = poll(&p, 1, 1000);
        if (ready < 0 && errno == EINTR) /* libFuzzer's -timeout ticks with SIGALRM */
            continue;
        if (ready <= 0) {
            /* the model's timeout_ms (10 s) bounds every answer */
            if (http_now_ns() - quiet_since < 30 * 1000000000LL)
                continue;
            fprintf(stderr, "fuzz_http: no answer within 30 s\n");
            abort();
        }
        quiet_since = http_now_ns();
        if ((p.revents & POLLOUT) && sent < size) {
            ssize_t n = send(sv[0], data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                sent = size; /* the server closed: read what it said */
            if (sent == size)
                shutdown(sv[0], SHUT_WR);
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(sv[0], buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN))
                break;
        }
    }
    close(sv[0]);
    return 0;
}
