/* Daemon configuration: config/visiond.json, then command-line flags.
 *
 *   {"listen": "127.0.0.1:8080", "models": "./models", "device": "auto",
 *    "threads": 0, "http_threads": 0, "max_body_bytes": 16777216,
 *    "max_image_pixels": 50000000, "log_level": "info"}
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
} server_config;

void server_config_defaults(server_config *c);
/* Reads a JSON config file over the defaults. */
int server_config_load(const char *path, server_config *c, char *err, size_t errlen);
/* Splits "HOST:PORT" or "[v6]:PORT" into c->host and c->port. */
int server_config_set_listen(server_config *c, const char *listen, char *err, size_t errlen);

#endif
