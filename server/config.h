/* Daemon configuration: config/visiond.json, then command-line flags.
 *
 *   {"listen": "127.0.0.1:8080", "models": "./models", "device": "auto",
 *    "threads": 0, "http_threads": 0, "max_body_bytes": 16777216,
 *    "max_image_pixels": 50000000, "log_level": "info",
 *    "conv_algo": "auto", "algo_cache": "", "workspace_mb": 256,
 *    "image_transfer": "auto", "inject_faults": 0,
 *    "max_jpeg_scans": 64, "decode_timeout_ms": 5000,
 *    "max_decode_bytes": 268435456, "decode_threads": 0,
 *    "decode_queue_size": 256, "max_buffered_bytes": 268435456,
 *    "max_connections": 2048, "max_connections_per_ip": 256,
 *    "head_timeout_ms": 10000, "body_timeout_ms": 60000, "idle_timeout_s": 60,
 *    "repository_poll_s": 0, "model_control": "auto"}
 *
 * conv_algo: "auto" (the cached choice, else on a GPU time every
 * convolution algorithm per layer and batch size, on the CPU its ranking
 * rule), "heuristic", "exhaustive", or one algorithm's name (IMPLICIT_GEMM,
 * WINOGRAD, im2col_gemm, winograd_nchw16c, ...). algo_cache: a file keeping
 * measured choices across restarts. workspace_mb: what one convolution may
 * use. image_transfer: obsolete, accepted and ignored (images always reach
 * the engine as bytes and the model's graph normalises them).
 * inject_faults: a testing aid, every Nth batch fails as a device fault
 * would, to exercise the CPU fallback.
 *
 * What a client may cost (see README, "Limits"): max_image_pixels,
 * max_jpeg_scans, max_decode_bytes and decode_timeout_ms (CPU time) bound
 * one image's decode; decode_threads workers decode, with decode_queue_size requests
 * waiting at most; max_buffered_bytes bounds the request bodies held in
 * memory at once; max_connections and max_connections_per_ip bound
 * sockets; a request head must arrive within head_timeout_ms of the
 * connection (or of its previous answer) and its body within
 * body_timeout_ms of the head, however slowly the bytes trickle in.
 *
 * The model repository (model_repo.h): repository_poll_s > 0 reads the
 * models folder again that often (0: only on SIGHUP or a load request);
 * model_control turns the repository endpoints (/v2/repository/...: index,
 * load, unload) on (true), off (false), or on only when the listener is a
 * loopback address ("auto"): anyone who can reach them can change what is
 * served.
 *
 * Who may connect: api_keys names a file of keys or "env:NAME" (auth.h);
 * with keys, every endpoint but the health probes needs one (and /metrics
 * too unless metrics_public). tls_cert and tls_key (PEM files) make the
 * listener HTTPS, TLS 1.2 and later. A listener beyond loopback without
 * both TLS and keys is "insecure" (a warning, and said in /v1/models and
 * /v2); require_auth: true refuses to start that way.
 *
 * Every key is optional (the values above are the defaults); an unknown
 * key or a bad value is an error naming the key, so a typo never silently
 * falls back to a default.
 */
#ifndef VISIOND_CONFIG_H
#define VISIOND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { MODEL_CONTROL_AUTO = 0, MODEL_CONTROL_ON, MODEL_CONTROL_OFF } model_control_mode;

typedef struct {
    char listen[300];       /* HOST:PORT as given */
    char host[256];
    int port;
    char models_dir[1024];
    char device[32];
    int threads;            /* engine CPU threads, 0 = all cores */
    int http_threads;       /* connection threads, 0 = one per core (at least 2) */
    size_t max_body_bytes;
    int64_t max_image_pixels;
    char log_level[16];
    char conv_algo[40];
    char algo_cache[1024];
    int workspace_mb;
    char image_transfer[16]; /* obsolete: accepted, ignored */
    int inject_faults;
    /* what one image may cost to decode */
    int max_jpeg_scans;
    int64_t decode_timeout_ms;   /* CPU time of one decode */
    int64_t max_decode_bytes;    /* decoded pixels, and the decoder's buffers, each */
    /* the decode pool */
    int decode_threads;          /* 0: one per core */
    int decode_queue_size;       /* requests waiting for a decoder */
    /* memory and connections */
    size_t max_buffered_bytes;   /* request bodies held at once, all together */
    int max_connections;
    int max_connections_per_ip;
    int64_t head_timeout_ms;     /* a request head within this of the connection or last answer */
    int64_t body_timeout_ms;     /* a body within this of its head */
    int idle_timeout_s;          /* libmicrohttpd's own: no byte for this long */
    int repository_poll_s;       /* read the models folder again this often; 0: never */
    /* who may connect, and how (auth.h, http.c) */
    char api_keys[1024];         /* a file of keys, or env:NAME; "" for none */
    bool metrics_public;         /* /metrics without a key */
    bool require_auth;           /* refuse to serve beyond loopback without TLS and keys */
    char tls_cert[1024], tls_key[1024]; /* PEM files; both or neither */
    model_control_mode model_control;
    int guard_check_ms;          /* how often connections are checked (not in visiond.json) */
} server_config;

void server_config_defaults(server_config *c);
/* Reads a JSON config file over the defaults. */
int server_config_load(const char *path, server_config *c, char *err, size_t errlen);
/* Splits "HOST:PORT" or "[v6]:PORT" into c->host and c->port. */
int server_config_set_listen(server_config *c, const char *listen, char *err, size_t errlen);

#endif
