/* Reading config/visiond.json; see config.h. */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void server_config_defaults(server_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:8080");
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 8080;
    snprintf(c->models_dir, sizeof c->models_dir, "./models");
    snprintf(c->device, sizeof c->device, "auto");
    c->max_body_bytes = 16u << 20;
    c->max_image_pixels = 50000000;
    snprintf(c->log_level, sizeof c->log_level, "info");
    snprintf(c->conv_algo, sizeof c->conv_algo, "auto");
    c->workspace_mb = 256;
    snprintf(c->image_transfer, sizeof c->image_transfer, "auto");
}

int server_config_set_listen(server_config *c, const char *listen, char *err, size_t errlen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || strlen(listen) >= sizeof c->listen) {
        snprintf(err, errlen, "listen address '%s' is not HOST:PORT", listen);
        return -1;
    }
    const char *h = listen;
    size_t hl = (size_t)(colon - listen);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') { /* [::1]:8080 */
        h++;
        hl -= 2;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == 0 || port < 0 || port > 65535 || hl == 0 || hl >= sizeof c->host) {
        snprintf(err, errlen, "listen address '%s' is not HOST:PORT (port 0-65535)", listen);
        return -1;
    }
    memcpy(c->host, h, hl);
    c->host[hl] = 0;
    c->port = (int)port;
    snprintf(c->listen, sizeof c->listen, "%s", listen);
    return 0;
}

static int get_string(json_t *v, const char *key, char *out, size_t n, char *err, size_t errlen)
{
    if (!json_is_string(v) || json_string_length(v) >= n || json_string_length(v) == 0) {
        snprintf(err, errlen, "'%s' must be a non-empty string shorter than %zu", key, n);
        return -1;
    }
    snprintf(out, n, "%s", json_string_value(v));
    return 0;
}

static int get_int(json_t *v, const char *key, long long lo, long long hi, long long *out,
                   char *err, size_t errlen)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, errlen, "'%s' must be an integer from %lld to %lld", key, lo, hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

int server_config_load(const char *path, server_config *c, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    int rc = -1;
    char sub[256] = "";
    if (!json_is_object(root)) {
        snprintf(sub, sizeof sub, "the top level must be an object");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        long long n;
        if (strcmp(key, "listen") == 0) {
            char listen[300];
            if (get_string(v, key, listen, sizeof listen, sub, sizeof sub) ||
                server_config_set_listen(c, listen, sub, sizeof sub))
                goto out;
        } else if (strcmp(key, "models") == 0) {
            if (get_string(v, key, c->models_dir, sizeof c->models_dir, sub, sizeof sub))
                goto out;
        } else if (strcmp(key, "device") == 0) {
            if (get_string(v, key, c->device, sizeof c->device, sub, sizeof sub))
                goto out;
        } else if (strcmp(key, "log_level") == 0) {
            if (get_string(v, key, c->log_level, sizeof c->log_level, sub, sizeof sub))
                goto out;
            if (log_level_parse(c->log_level) < 0) {
                snprintf(sub, sizeof sub, "'log_level' must be error, warn, info or debug");
                goto out;
            }
        } else if (strcmp(key, "conv_algo") == 0) {
            if (get_string(v, key, c->conv_algo, sizeof c->conv_algo, sub, sizeof sub))
                goto out;
        } else if (strcmp(key, "algo_cache") == 0) {
            if (!json_is_string(v) || json_string_length(v) >= sizeof c->algo_cache) {
                snprintf(sub, sizeof sub, "'algo_cache' must be a path (\"\" for none)");
                goto out;
            }
            snprintf(c->algo_cache, sizeof c->algo_cache, "%s", json_string_value(v));
        } else if (strcmp(key, "image_transfer") == 0) {
            if (get_string(v, key, c->image_transfer, sizeof c->image_transfer, sub, sizeof sub))
                goto out;
            if (strcmp(c->image_transfer, "auto") && strcmp(c->image_transfer, "bytes") &&
                strcmp(c->image_transfer, "floats")) {
                snprintf(sub, sizeof sub, "'image_transfer' must be auto, bytes or floats");
                goto out;
            }
        } else if (strcmp(key, "workspace_mb") == 0) {
            if (get_int(v, key, 1, 1 << 20, &n, sub, sizeof sub))
                goto out;
            c->workspace_mb = (int)n;
        } else if (strcmp(key, "inject_faults") == 0) {
            if (get_int(v, key, 0, 1 << 30, &n, sub, sizeof sub))
                goto out;
            c->inject_faults = (int)n;
        } else if (strcmp(key, "threads") == 0) {
            if (get_int(v, key, 0, 1024, &n, sub, sizeof sub))
                goto out;
            c->threads = (int)n;
        } else if (strcmp(key, "http_threads") == 0) {
            if (get_int(v, key, 0, 256, &n, sub, sizeof sub))
                goto out;
            c->http_threads = (int)n;
        } else if (strcmp(key, "max_body_bytes") == 0) {
            if (get_int(v, key, 1024, 1LL << 31, &n, sub, sizeof sub))
                goto out;
            c->max_body_bytes = (size_t)n;
        } else if (strcmp(key, "max_image_pixels") == 0) {
            if (get_int(v, key, 1, 1LL << 31, &n, sub, sizeof sub))
                goto out;
            c->max_image_pixels = n;
        } else {
            snprintf(sub, sizeof sub, "unknown key '%s'", key);
            goto out;
        }
    }
    rc = 0;
out:
    if (rc)
        snprintf(err, errlen, "%s: %s", path, sub);
    json_decref(root);
    return rc;
}
