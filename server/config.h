/* Daemon configuration: config/visiond.json, then command-line flags.
 *
 *   {"listen": "127.0.0.1:8080", "models": "./models", "device": "auto",
 *    "threads": 0, "http_threads": 0, "max_body_bytes": 16777216,
 *    "max_image_pixels": 50000000, "log_level": "info",
 *    "conv_algo": "auto", "algo_cache": "", "workspace_mb": 256,
 *    "image_transfer": "auto", "inject_faults": 0}
 *
 * conv_algo: "auto" (on a GPU: "exhaustive", time every convolution
 * algorithm per layer and batch size), "heuristic", or one algorithm's name
 * (IMPLICIT_GEMM, WINOGRAD, im2col_gemm, ...). algo_cache: a file keeping
 * measured choices across restarts. workspace_mb: what one convolution may
 * use. image_transfer: "auto" sends images to a GPU as bytes (normalised
 * there) and to the CPU as floats; "bytes" or "floats" force one.
 * inject_faults: a testing aid, every Nth batch fails as a device fault
 * would, to exercise the CPU fallback.
 *
 * Every key is optional (the values above are the defaults); an unknown
 * key or a bad value is an error naming the key, so a typo never silently
 * falls back to a default.
 */
#ifndef VISIOND_CONFIG_H
#define VISIOND_CONFIG_H

#include <stddef.h>
#include <stdint.h>

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
    char image_transfer[16]; /* auto, bytes, floats */
    int inject_faults;
} server_config;

void server_config_defaults(server_config *c);
/* Reads a JSON config file over the defaults. */
int server_config_load(const char *path, server_config *c, char *err, size_t errlen);
/* Splits "HOST:PORT" or "[v6]:PORT" into c->host and c->port. */
int server_config_set_listen(server_config *c, const char *listen, char *err, size_t errlen);

#endif
