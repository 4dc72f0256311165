/* Reading config/visiond.json; see config.h. */
#include "config.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/file_read.h"
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
    c->max_jpeg_scans = 64;
    c->decode_timeout_ms = 5000;
    c->max_decode_bytes = (int64_t)256 << 20;
    c->decode_queue_size = 256;
    c->max_buffered_bytes = (size_t)256 << 20;
    c->max_connections = 2048;
    c->max_connections_per_ip = 256;
    c->head_timeout_ms = 10000;
    c->body_timeout_ms = 60000;
    c->idle_timeout_s = 60;
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

/* The integer settings: key, bounds, where the value goes. */
typedef struct {
    const char *key;
    long long lo, hi;
    size_t offset;
    enum { AS_INT, AS_I64, AS_SIZE } type;
} numeric_setting;

#define SETTING(k, lo, hi, type) {#k, lo, hi, offsetof(server_config, k), type}
static const numeric_setting numeric_settings[] = {
    SETTING(workspace_mb, 1, 1 << 20, AS_INT),
    SETTING(inject_faults, 0, 1 << 30, AS_INT),
    SETTING(threads, 0, 1024, AS_INT),
    SETTING(http_threads, 0, 256, AS_INT),
    SETTING(max_body_bytes, 1024, 1LL << 31, AS_SIZE),
    SETTING(max_image_pixels, 1, 1LL << 31, AS_I64),
    SETTING(max_jpeg_scans, 1, 100000, AS_INT),
    SETTING(decode_timeout_ms, 1, 3600000, AS_I64),
    SETTING(max_decode_bytes, 1 << 20, 1LL << 40, AS_I64),
    SETTING(decode_threads, 0, 256, AS_INT),
    SETTING(decode_queue_size, 1, 1 << 20, AS_INT),
    SETTING(max_buffered_bytes, 1 << 20, 1LL << 40, AS_SIZE),
    SETTING(max_connections, 16, 1 << 20, AS_INT),
    SETTING(max_connections_per_ip, 1, 1 << 20, AS_INT),
    SETTING(head_timeout_ms, 100, 3600000, AS_I64),
    SETTING(body_timeout_ms, 100, 3600000, AS_I64),
    SETTING(idle_timeout_s, 1, 86400, AS_INT),
    SETTING(repository_poll_s, 0, 86400, AS_INT),
};

static const numeric_setting *numeric_key(const char *key)
{
    for (size_t i = 0; i < sizeof numeric_settings / sizeof *numeric_settings; i++)
        if (strcmp(numeric_settings[i].key, key) == 0)
            return &numeric_settings[i];
    return NULL;
}

/* A size never goes past what a size_t holds (half of it: 2 GiB on 32-bit ARM). */
static long long setting_max(const numeric_setting *s)
{
    if (s->type == AS_SIZE && (unsigned long long)s->hi > SIZE_MAX / 2)
        return (long long)(SIZE_MAX / 2);
    return s->hi;
}

static void set_number(server_config *c, const numeric_setting *s, long long v)
{
    char *at = (char *)c + s->offset;
    if (s->type == AS_INT)
        *(int *)at = (int)v;
    else if (s->type == AS_I64)
        *(int64_t *)at = v;
    else
        *(size_t *)at = (size_t)v;
}

int server_config_load(const char *path, server_config *c, char *err, size_t errlen)
{
    char *text;
    size_t len;
    engine_error fe;
    if (file_read_regular(path, 1u << 20, &text, &len, NULL, &fe)) {
        snprintf(err, errlen, "%s", fe.message);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
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
        const numeric_setting *num;
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
        } else if (strcmp(key, "api_keys") == 0 || strcmp(key, "tls_cert") == 0 ||
                   strcmp(key, "tls_key") == 0) {
            char *dst = key[0] == 'a' ? c->api_keys : key[4] == 'c' ? c->tls_cert : c->tls_key;
            if (!json_is_string(v) || json_string_length(v) >= sizeof c->api_keys) {
                snprintf(sub, sizeof sub, "'%s' must be a path (\"\" for none)", key);
                goto out;
            }
            snprintf(dst, sizeof c->api_keys, "%s", json_string_value(v));
        } else if (strcmp(key, "metrics_public") == 0 || strcmp(key, "require_auth") == 0) {
            if (!json_is_boolean(v)) {
                snprintf(sub, sizeof sub, "'%s' must be true or false", key);
                goto out;
            }
            *(key[0] == 'm' ? &c->metrics_public : &c->require_auth) = json_is_true(v);
        } else if (strcmp(key, "model_control") == 0) {
            if (json_is_boolean(v)) {
                c->model_control = json_is_true(v) ? MODEL_CONTROL_ON : MODEL_CONTROL_OFF;
            } else if (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0) {
                c->model_control = MODEL_CONTROL_AUTO;
            } else {
                snprintf(sub, sizeof sub, "'model_control' must be true, false or \"auto\"");
                goto out;
            }
        } else if ((num = numeric_key(key))) {
            if (get_int(v, key, num->lo, setting_max(num), &n, sub, sizeof sub))
                goto out;
            set_number(c, num, n);
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
