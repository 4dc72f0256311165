/* `visiond serve`: the daemon.
 *
 *   visiond serve [--config FILE] [--listen HOST:PORT] [--models DIR]
 *                 [--device auto|cpu|cuda[:N]] [--threads N] [--log-level L]
 *
 * Settings come from --config, else config/visiond.json when it exists,
 * else built-in defaults; flags override them. The HTTP server starts
 * first (so /healthz answers while models load), then models load in the
 * model repository's thread (model_repo.h); then systemd hears READY=1.
 * SIGHUP reads the models folder again (RELOADING=1 ... READY=1 around
 * it): changed versions are swapped in without a request dropped, see
 * model_repo.h. SIGTERM or SIGINT: stop
 * accepting, answer 503 to what waits for a decoder, answer every request
 * already queued (each within its model's timeout_ms), stop; during
 * loading, the model being loaded stops at its next step. Signals are blocked in every thread and
 * taken synchronously by the main thread (sigtimedwait), so no handler and
 * no global flag are needed.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
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

/* How long stopping may wait for requests in flight: the longest a request
 * can take to be answered (its model's timeout_ms, decoding included), and
 * a margin for a batch that is running. */
static int64_t longest_wait_ms(server *s)
{
    int64_t longest = 0;
    model_view *v;
    int n = model_repo_list(&s->repo, &v);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < v[i].n_versions; k++)
            if (v[i].versions[k].live && v[i].versions[k].live->cfg.timeout_ms > longest)
                longest = v[i].versions[k].live->cfg.timeout_ms;
    model_repo_list_free(v, n > 0 ? n : 0);
    return longest + s->cfg.decode_timeout_ms + 2000;
}

/* "serving 2 of 3 models" */
static void serving_counts(server *s, int *ready, int *total)
{
    model_view *v;
    int n = model_repo_list(&s->repo, &v);
    *ready = 0;
    *total = n > 0 ? n : 0;
    for (int i = 0; i < n; i++)
        *ready += v[i].state == MODEL_READY;
    model_repo_list_free(v, n > 0 ? n : 0);
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
    /* Large buffers (a model's weights and activations, batch tensors) get
     * pages of their own, given back to the system when freed: without a
     * fixed threshold glibc raises it after the first such free and serves
     * them from heaps that keep the memory after a model is unloaded. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* every thread created later inherits it */
    signal(SIGPIPE, SIG_IGN);

    server_metrics_init();
    char err[1400];
    model_load_options lo = {.device = s->cfg.device, .threads = s->cfg.threads,
                             .conv_algo = s->cfg.conv_algo, .algo_cache = s->cfg.algo_cache,
                             .workspace_limit = (size_t)s->cfg.workspace_mb << 20,
                             .inject_faults = s->cfg.inject_faults,
                             .poll_s = s->cfg.repository_poll_s,
                             .observe_batch = server_observe_batch,
                             .observe_load = server_observe_load,
                             .observe_version = server_observe_version,
                             .cancel = &s->stopping};
    if (model_repo_open(&s->repo, s->cfg.models_dir, &lo, err, sizeof err)) {
        log_msg(LOG_ERROR, "%s", err);
        free(s);
        return EXIT_SERVER;
    }
    if (http_start(s, err, sizeof err)) {
        log_msg(LOG_ERROR, "%s", err);
        model_repo_free(&s->repo);
        free(s);
        return EXIT_SERVER;
    }
    char line[512];
    for (int i = 0; engine_backend_line(i, line, sizeof line); i++)
        log_msg(LOG_INFO, "backend %s", line);
    log_msg(LOG_INFO, "visiond %s listening on http%s://%s:%d (models from %s)", VISIOND_VERSION,
            s->tls ? "s" : "", s->cfg.host, s->port, s->cfg.models_dir);
    if (s->auth.n)
        log_msg(LOG_INFO, "API keys: %d (%d admin); /metrics %s", s->auth.n, s->auth.n_admin,
                s->cfg.metrics_public ? "without a key" : "with a key");
    if (s->insecure)
        log_msg(LOG_WARN, "insecure: %s is reachable beyond this machine %s; set tls_cert, "
                          "tls_key and api_keys (README, Security), or require_auth to refuse this",
                s->cfg.listen,
                !s->tls && !s->auth.n ? "without TLS or API keys"
                : !s->tls             ? "without TLS: keys cross the network in clear"
                                      : "without API keys: anyone may use it");
    log_msg(LOG_INFO, "limits: %zu bytes of request bodies in memory, %d decoders with %d "
                      "waiting, %d connections (%d per address)",
            s->cfg.max_buffered_bytes,
            s->cfg.decode_threads ? s->cfg.decode_threads : (int)sysconf(_SC_NPROCESSORS_ONLN),
            s->cfg.decode_queue_size,
            s->cfg.max_connections, s->cfg.max_connections_per_ip);
    if (s->cfg.inject_faults)
        log_msg(LOG_WARN, "inject_faults: every %d-th batch fails on purpose (a testing aid)",
                s->cfg.inject_faults);
    log_msg(LOG_INFO, "model control endpoints (/v2/repository): %s%s",
            s->model_control ? "on" : "off",
            s->cfg.model_control == MODEL_CONTROL_AUTO
                ? (s->loopback ? " (loopback listener)" : " (not a loopback listener)")
                : "");
    if (s->cfg.repository_poll_s)
        log_msg(LOG_INFO, "reading %s for changes every %d s", s->cfg.models_dir,
                s->cfg.repository_poll_s);
    /* what READY=1 waits for: the first read of the folder, then a reload */
    uint64_t awaited = model_repo_start(&s->repo);
    if (!awaited) {
        log_msg(LOG_ERROR, "cannot start the model repository's thread");
        atomic_store(&s->stopping, true);
        http_stop(s, 0);
        model_repo_free(&s->repo);
        free(s);
        return EXIT_SERVER;
    }
    uint64_t watchdog_us = 0;
    bool watchdog = sd_watchdog_enabled(0, &watchdog_us) > 0, notified = false;
    /* while a load is awaited, the loop looks 10 times a second; else once
     * a second; either way at least twice per watchdog period */
    struct timespec fast = {.tv_nsec = 100000000}, slow = {.tv_sec = 1};
    if (watchdog && watchdog_us / 2 < 100000)
        fast.tv_nsec = (long)(watchdog_us / 2 * 1000);
    if (watchdog && watchdog_us / 2 < 1000000)
        slow = (struct timespec){.tv_nsec = (long)(watchdog_us / 2 * 1000)};
    for (;;) {
        int sig = sigtimedwait(&sigs, NULL, awaited ? &fast : &slow);
        if (watchdog)
            sd_notify(0, "WATCHDOG=1");
        if (awaited && model_repo_finished(&s->repo) >= awaited) {
            int ready, total;
            serving_counts(s, &ready, &total);
            log_msg(LOG_INFO, "%sserving %d of %d models", notified ? "reloaded: " : "", ready,
                    total);
            sd_notifyf(0, "READY=1\nSTATUS=serving %d of %d models on port %d", ready, total,
                       s->port);
            awaited = 0;
            notified = true;
        }
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGHUP) { /* the certificate first: it takes milliseconds */
            char tls_err[600];
            if (http_reload_tls(s, tls_err, sizeof tls_err))
                log_msg(LOG_ERROR, "SIGHUP: the TLS certificate was not replaced: %s", tls_err);
            else if (s->tls)
                log_msg(LOG_INFO, "SIGHUP: TLS certificate read again from %s", s->cfg.tls_cert);
        }
        if (sig == SIGHUP && !awaited) {
            /* systemd's reload protocol: RELOADING=1 with the time, READY=1 after */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reading %s again",
                       (unsigned long long)now.tv_sec * 1000000ULL +
                           (unsigned long long)now.tv_nsec / 1000,
                       s->cfg.models_dir);
            log_msg(LOG_INFO, "SIGHUP: reading %s again", s->cfg.models_dir);
            awaited = model_repo_request(&s->repo, REPO_SCAN, "", NULL, NULL);
        } else if (sig == SIGHUP) {
            /* a read of the folder is under way: one more follows it */
            log_msg(LOG_INFO, "SIGHUP: %s will be read again", s->cfg.models_dir);
            uint64_t t = model_repo_request(&s->repo, REPO_SCAN, "", NULL, NULL);
            awaited = t > awaited ? t : awaited;
        }
        if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            log_msg(LOG_ERROR, "sigtimedwait: %s", strerror(errno));
            break;
        }
    }
    log_msg(LOG_INFO, "stopping: answering queued requests");
    sd_notify(0, "STOPPING=1");
    atomic_store(&s->stopping, true); /* also tells a load under way to stop */
    /* A model being loaded stops at its next step; one step (planning one
     * batch size, timing one layer's algorithms) is given a few seconds.
     * Load and unload requests still waiting are answered 503. */
    bool loaded = model_repo_stop(&s->repo, 5000);
    if (!loaded)
        log_msg(LOG_WARN, "a model is still loading: exiting without waiting for it");
    bool stopped = http_stop(s, longest_wait_ms(s));
    if (!loaded || !stopped) {
        /* threads still hold the models: leave without freeing under them */
        log_msg(LOG_INFO, "stopped");
        fflush(stderr);
        _exit(0);
    }
    model_repo_free(&s->repo);
    http_free_security(s);
    log_msg(LOG_INFO, "stopped");
    free(s);
    return 0;
}
