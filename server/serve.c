/* `visiond serve`: the daemon.
 *
 *   visiond serve [--config FILE] [--listen HOST:PORT] [--models DIR]
 *                 [--device auto|cpu|cuda[:N]] [--threads N] [--log-level L]
 *
 * Settings come from --config, else config/visiond.json when it exists,
 * else built-in defaults; flags override them. The HTTP server starts
 * first (so /healthz answers while models load), then models load in a
 * thread of their own; then systemd hears READY=1. SIGTERM or SIGINT: stop
 * accepting, answer 503 to what waits for a decoder, answer every request
 * already queued (each within its model's timeout_ms), stop; during
 * loading, the model being loaded stops at its next step. Signals are blocked in every thread and
 * taken synchronously by the main thread (sigtimedwait), so no handler and
 * no global flag are needed.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "server.h"

#define DEFAULT_CONFIG "config/visiond.json"

static void usage(void)
{
    fprintf(stderr, "usage: visiond serve [--config FILE] [--listen HOST:PORT] [--models DIR]\n"
                    "                     [--device auto|cpu|cuda[:N]] [--threads N] "
                    "[--conv-algo A]\n"
                    "                     [--log-level error|warn|info|debug]\n");
}

static int parse_flags(int argc, char **argv, server_config *c)
{
    const char *config = NULL;
    bool bad = false;
    /* the config file first, so that flags override it wherever they appear */
    for (int i = 0; i < argc && !bad; i++) {
        const char *v = cli_opt(argc, argv, &i, "--config", &bad);
        if (v)
            config = v;
    }
    if (bad)
        return -1;
    char err[1400];
    if (config || access(DEFAULT_CONFIG, R_OK) == 0) {
        if (server_config_load(config ? config : DEFAULT_CONFIG, c, err, sizeof err)) {
            fprintf(stderr, "visiond serve: %s\n", err);
            return -1;
        }
    }
    for (int i = 0; i < argc && !bad; i++) {
        const char *v;
        if (cli_opt(argc, argv, &i, "--config", &bad))
            continue;
        if ((v = cli_opt(argc, argv, &i, "--listen", &bad))) {
            if (server_config_set_listen(c, v, err, sizeof err)) {
                fprintf(stderr, "visiond serve: %s\n", err);
                return -1;
            }
        } else if ((v = cli_opt(argc, argv, &i, "--models", &bad))) {
            snprintf(c->models_dir, sizeof c->models_dir, "%s", v);
        } else if ((v = cli_opt(argc, argv, &i, "--device", &bad))) {
            snprintf(c->device, sizeof c->device, "%s", v);
        } else if ((v = cli_opt(argc, argv, &i, "--threads", &bad))) {
            bad = !cli_parse_int(v, 0, 1024, &c->threads);
        } else if ((v = cli_opt(argc, argv, &i, "--conv-algo", &bad))) {
            snprintf(c->conv_algo, sizeof c->conv_algo, "%s", v);
        } else if ((v = cli_opt(argc, argv, &i, "--log-level", &bad))) {
            bad = log_level_parse(v) < 0;
            snprintf(c->log_level, sizeof c->log_level, "%s", v);
        } else if (!bad) {
            fprintf(stderr, "visiond serve: unknown argument '%s'\n", argv[i]);
            bad = true;
        }
    }
    return bad ? -1 : 0;
}

/* Models load in their own thread, so that signals (SIGTERM while a
 * model loads, the watchdog) are answered meanwhile. */
typedef struct {
    server *s;
    model_load_options opts;
    atomic_bool done;
} loader;

static void *load_models(void *arg)
{
    loader *ld = arg;
    model_repo_load_all(&ld->s->repo, &ld->opts);
    atomic_store(&ld->done, true);
    return NULL;
}

/* How long stopping may wait for requests in flight: the longest a request
 * can take to be answered (its model's timeout_ms, decoding included), and
 * a margin for a batch that is running. */
static int64_t longest_wait_ms(const server *s)
{
    int64_t longest = 0;
    for (int i = 0; i < s->repo.n; i++)
        if (atomic_load(&s->repo.models[i].state) == MODEL_READY &&
            s->repo.models[i].cfg.timeout_ms > longest)
            longest = s->repo.models[i].cfg.timeout_ms;
    return longest + s->cfg.decode_timeout_ms + 2000;
}

int cli_serve(int argc, char **argv)
{
    server *s = calloc(1, sizeof *s);
    if (!s)
        return EXIT_SERVER;
    server_config_defaults(&s->cfg);
    if (parse_flags(argc, argv, &s->cfg)) {
        usage();
        free(s);
        return EXIT_USAGE;
    }
    log_init((log_level)log_level_parse(s->cfg.log_level));

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* every thread created later inherits it */
    signal(SIGPIPE, SIG_IGN);

    server_metrics_init();
    char err[1400];
    if (model_repo_scan(&s->repo, s->cfg.models_dir, err, sizeof err)) {
        log_msg(LOG_ERROR, "%s", err);
        free(s);
        return EXIT_SERVER;
    }
    if (s->repo.n == 0)
        log_msg(LOG_WARN, "no models in %s (expected %s/<name>/model.onnx)", s->cfg.models_dir,
                s->cfg.models_dir);
    if (http_start(s, err, sizeof err)) {
        log_msg(LOG_ERROR, "%s", err);
        model_repo_free(&s->repo);
        free(s);
        return EXIT_SERVER;
    }
    char line[512];
    for (int i = 0; engine_backend_line(i, line, sizeof line); i++)
        log_msg(LOG_INFO, "backend %s", line);
    log_msg(LOG_INFO, "visiond %s listening on http://%s:%d (models from %s)", VISIOND_VERSION,
            s->cfg.host, s->port, s->cfg.models_dir);
    log_msg(LOG_INFO, "limits: %zu bytes of request bodies in memory, %d decoders with %d "
                      "waiting, %d connections (%d per address)",
            s->cfg.max_buffered_bytes,
            s->cfg.decode_threads ? s->cfg.decode_threads : (int)sysconf(_SC_NPROCESSORS_ONLN),
            s->cfg.decode_queue_size,
            s->cfg.max_connections, s->cfg.max_connections_per_ip);
    loader ld = {.s = s,
                 .opts = {.device = s->cfg.device, .threads = s->cfg.threads,
                          .conv_algo = s->cfg.conv_algo, .algo_cache = s->cfg.algo_cache,
                          .workspace_limit = (size_t)s->cfg.workspace_mb << 20,
                          .inject_faults = s->cfg.inject_faults,
                          .observe_batch = server_observe_batch, .cancel = &s->stopping}};
    atomic_init(&ld.done, false);
    if (s->cfg.inject_faults)
        log_msg(LOG_WARN, "inject_faults: every %d-th batch fails on purpose (a testing aid)",
                s->cfg.inject_faults);
    pthread_t loader_thread;
    if (pthread_create(&loader_thread, NULL, load_models, &ld) != 0) {
        load_models(&ld); /* no thread: load here, signals wait */
        loader_thread = pthread_self();
    }

    uint64_t watchdog_us = 0;
    bool watchdog = sd_watchdog_enabled(0, &watchdog_us) > 0, notified = false;
    struct timespec tick = {.tv_nsec = 100000000}; /* loading is watched at this pace */
    if (watchdog && watchdog_us / 2 < 100000)
        tick.tv_nsec = (long)(watchdog_us / 2 * 1000);
    for (;;) {
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (watchdog)
            sd_notify(0, "WATCHDOG=1");
        if (!notified && atomic_load(&ld.done)) {
            int ready = 0;
            for (int i = 0; i < s->repo.n; i++)
                ready += atomic_load(&s->repo.models[i].state) == MODEL_READY;
            log_msg(LOG_INFO, "serving %d of %d models", ready, s->repo.n);
            sd_notifyf(0, "READY=1\nSTATUS=serving %d of %d models on port %d", ready,
                       s->repo.n, s->port);
            notified = true;
            tick = (struct timespec){.tv_sec = 1};
            if (watchdog && watchdog_us / 2 < 1000000)
                tick = (struct timespec){.tv_nsec = (long)(watchdog_us / 2 * 1000)};
        }
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGHUP)
            log_msg(LOG_INFO, "SIGHUP: nothing to reload (restart to pick up model changes)");
        if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            log_msg(LOG_ERROR, "sigtimedwait: %s", strerror(errno));
            break;
        }
    }
    log_msg(LOG_INFO, "stopping: answering queued requests");
    sd_notify(0, "STOPPING=1");
    atomic_store(&s->stopping, true); /* also tells the loader to stop */
    /* A model being loaded stops at its next step; one step (planning one
     * batch size, timing one layer's algorithms) is given a few seconds. */
    for (int i = 0; !atomic_load(&ld.done) && i < 500; i++)
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    bool loaded = atomic_load(&ld.done);
    if (!loaded)
        log_msg(LOG_WARN, "a model is still loading: exiting without waiting for it");
    else if (!pthread_equal(loader_thread, pthread_self()))
        pthread_join(loader_thread, NULL);
    bool stopped = http_stop(s, longest_wait_ms(s));
    if (!loaded || !stopped) {
        /* threads still hold the models: leave without freeing under them */
        log_msg(LOG_INFO, "stopped");
        fflush(stderr);
        _exit(0);
    }
    model_repo_free(&s->repo);
    log_msg(LOG_INFO, "stopped");
    free(s);
    return 0;
}
