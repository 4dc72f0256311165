/* model.json parsing and validation; the contract is in model_config.h. */
#include "model_config.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/file_read.h"

/* model.json is a page of settings: anything larger is not one */
#define MODEL_CONFIG_MAX_BYTES (1u << 20)

void model_config_defaults(model_config *c)
{
    memset(c, 0, sizeof *c);
    c->pre.color = PREPROC_RGB;
    c->pre.resize = PREPROC_SHORTER_SIDE_CROP;
    c->pre.scale = 1.0f / 255.0f;
    c->pre.jpeg_dct_scaling = PREPROC_DCT_AUTO;
    for (int i = 0; i < 3; i++)
        c->pre.std[i] = 1.0f;
    c->softmax = true;
    c->max_batch_size = 16;
    c->max_queue_delay_us = 2000;
    c->max_queue_size = 256;
    c->timeout_ms = 10000;
}

typedef struct {
    char *err;
    size_t len;
} errbuf;

static int __attribute__((format(printf, 2, 3))) fail(errbuf *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->len, fmt, ap);
    va_end(ap);
    return -1;
}

static int int_value(json_t *v, const char *sect, const char *key, long long lo, long long hi,
                     long long *out, errbuf *e)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(e->err, e->len, "%s.%s must be an integer from %lld to %lld", sect, key, lo, hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int float_values(json_t *v, const char *key, float *out, bool positive, errbuf *e)
{
    if (json_is_number(v)) {
        out[0] = out[1] = out[2] = (float)json_number_value(v);
    } else if (json_is_array(v) && (json_array_size(v) == 3 || json_array_size(v) == 1)) {
        for (size_t i = 0; i < 3; i++) {
            json_t *x = json_array_get(v, json_array_size(v) == 1 ? 0 : i);
            if (!json_is_number(x))
                return fail(e, "input.%s must hold numbers", key);
            out[i] = (float)json_number_value(x);
        }
    } else {
        return fail(e, "input.%s must be a number or an array of 1 or 3 numbers", key);
    }
    for (int i = 0; i < 3; i++)
        if (!isfinite(out[i]) || (positive && !(out[i] > 0)))
            return fail(e, "input.%s must be finite%s", key, positive ? " and positive" : "");
    return 0;
}

static int parse_input(json_t *o, model_config *c, errbuf *e)
{
    const char *key;
    json_t *v;
    long long n;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "width") == 0 || strcmp(key, "height") == 0) {
            if (int_value(v, "input", key, 1, 8192, &n, e))
                return -1;
            *(key[0] == 'w' ? &c->pre.width : &c->pre.height) = (int)n;
        } else if (strcmp(key, "resize_shorter_side") == 0) {
            if (int_value(v, "input", key, 1, 16384, &n, e))
                return -1;
            c->pre.resize_shorter_side = (int)n;
        } else if (strcmp(key, "color") == 0) {
            const char *s = json_string_value(v);
            if (s && strcmp(s, "rgb") == 0)
                c->pre.color = PREPROC_RGB;
            else if (s && strcmp(s, "bgr") == 0)
                c->pre.color = PREPROC_BGR;
            else if (s && strcmp(s, "gray") == 0)
                c->pre.color = PREPROC_GRAY;
            else
                return fail(e, "input.color must be \"rgb\", \"bgr\" or \"gray\"");
        } else if (strcmp(key, "resize") == 0) {
            const char *s = json_string_value(v);
            if (s && strcmp(s, "shorter_side_crop") == 0)
                c->pre.resize = PREPROC_SHORTER_SIDE_CROP;
            else if (s && strcmp(s, "stretch") == 0)
                c->pre.resize = PREPROC_STRETCH;
            else
                return fail(e, "input.resize must be \"shorter_side_crop\" or \"stretch\"");
        } else if (strcmp(key, "scale") == 0) {
            if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
                !(json_number_value(v) > 0))
                return fail(e, "input.scale must be a positive number");
            c->pre.scale = (float)json_number_value(v);
        } else if (strcmp(key, "jpeg_dct_scaling") == 0) {
            const char *s = json_string_value(v);
            if (json_is_boolean(v))
                c->pre.jpeg_dct_scaling = json_is_true(v) ? PREPROC_DCT_ON : PREPROC_DCT_OFF;
            else if (s && strcmp(s, "auto") == 0)
                c->pre.jpeg_dct_scaling = PREPROC_DCT_AUTO;
            else
                return fail(e, "input.jpeg_dct_scaling must be true, false or \"auto\"");
        } else if (strcmp(key, "mean") == 0) {
            if (float_values(v, key, c->pre.mean, false, e))
                return -1;
        } else if (strcmp(key, "std") == 0) {
            if (float_values(v, key, c->pre.std, true, e))
                return -1;
        } else {
            return fail(e, "unknown key '%s' in input", key);
        }
    }
    return 0;
}

static int parse_output(json_t *o, model_config *c, errbuf *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "softmax") == 0) {
            if (!json_is_boolean(v))
                return fail(e, "output.softmax must be true or false");
            c->softmax = json_is_true(v);
        } else {
            return fail(e, "unknown key '%s' in output", key);
        }
    }
    return 0;
}

static int parse_batching(json_t *o, model_config *c, errbuf *e)
{
    const char *key;
    json_t *v;
    long long n;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "max_batch_size") == 0) {
            if (int_value(v, "batching", key, 1, 1024, &n, e))
                return -1;
            c->max_batch_size = (int)n;
        } else if (strcmp(key, "max_queue_delay_us") == 0) {
            if (int_value(v, "batching", key, 0, 10000000, &n, e))
                return -1;
            c->max_queue_delay_us = n;
        } else if (strcmp(key, "max_queue_size") == 0) {
            if (int_value(v, "batching", key, 1, 1000000, &n, e))
                return -1;
            c->max_queue_size = (int)n;
        } else if (strcmp(key, "timeout_ms") == 0) {
            if (int_value(v, "batching", key, 1, 3600000, &n, e))
                return -1;
            c->timeout_ms = n;
        } else {
            return fail(e, "unknown key '%s' in batching", key);
        }
    }
    return 0;
}

int model_config_load(const char *path, model_config *c, bool *found, char *err, size_t errlen)
{
    errbuf e = {err, errlen};
    char *text;
    size_t len;
    bool missing;
    engine_error fe;
    *found = false;
    if (file_read_regular(path, MODEL_CONFIG_MAX_BYTES, &text, &len, &missing, &fe))
        return missing ? 0 : fail(&e, "%s", fe.message);
    *found = true;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root) {
        snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    int rc = 0;
    const char *key;
    json_t *v;
    if (!json_is_object(root))
        rc = fail(&e, "the top level must be an object");
    else
        json_object_foreach(root, key, v) {
            if (!json_is_object(v)) {
                rc = fail(&e, "'%s' must be an object", key);
            } else if (strcmp(key, "input") == 0) {
                rc = parse_input(v, c, &e);
            } else if (strcmp(key, "output") == 0) {
                rc = parse_output(v, c, &e);
            } else if (strcmp(key, "batching") == 0) {
                rc = parse_batching(v, c, &e);
            } else {
                rc = fail(&e, "unknown key '%s'", key);
            }
            if (rc)
                break;
        }
    json_decref(root);
    if (rc) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", err);
        snprintf(err, errlen, "%s: %s", path, detail);
    }
    return rc;
}

int model_config_resolve(model_config *c, int64_t channels, int64_t height, int64_t width,
                         char *err, size_t errlen)
{
    int want_c = preproc_channels(&c->pre);
    if (channels != want_c) {
        snprintf(err, errlen, "the model takes %lld channels but input.color is %s",
                 (long long)channels, want_c == 1 ? "gray" : "rgb/bgr");
        return -1;
    }
    int64_t dims[2] = {height, width};
    int *set[2] = {&c->pre.height, &c->pre.width};
    const char *names[2] = {"height", "width"};
    for (int i = 0; i < 2; i++) {
        if (dims[i] > 0 && *set[i] && *set[i] != dims[i]) {
            snprintf(err, errlen, "input.%s is %d but the model's input has %lld", names[i],
                     *set[i], (long long)dims[i]);
            return -1;
        }
        if (!*set[i]) {
            if (dims[i] <= 0 || dims[i] > 8192) {
                snprintf(err, errlen, "the model's input has no fixed %s: set input.%s",
                         names[i], names[i]);
                return -1;
            }
            *set[i] = (int)dims[i];
        }
    }
    int longer = c->pre.width > c->pre.height ? c->pre.width : c->pre.height;
    if (c->pre.resize == PREPROC_SHORTER_SIDE_CROP) {
        if (!c->pre.resize_shorter_side)
            c->pre.resize_shorter_side = (longer * 8 + 6) / 7;
        if (c->pre.resize_shorter_side < longer) {
            snprintf(err, errlen, "input.resize_shorter_side (%d) is smaller than the crop (%d)",
                     c->pre.resize_shorter_side, longer);
            return -1;
        }
    }
    return 0;
}
