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
    c->pre.pad_value = 114;
    detect_params_defaults(&c->detect);
    c->max_batch_size = 16;
    c->max_queue_delay_us = 2000;
    c->max_queue_size = 256;
    c->timeout_ms = 10000;
    c->versions = (version_policy){.kind = VERSIONS_LATEST, .latest = 1};
}

const char *model_task_name(model_task t)
{
    return t == TASK_DETECT ? "detect" : t == TASK_SEGMENT ? "segment" : "classify";
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
            else if (s && strcmp(s, "letterbox") == 0)
                c->pre.resize = PREPROC_LETTERBOX;
            else
                return fail(e, "input.resize must be \"shorter_side_crop\", \"stretch\" or "
                               "\"letterbox\"");
        } else if (strcmp(key, "pad_value") == 0) {
            if (int_value(v, "input", key, 0, 255, &n, e))
                return -1;
            c->pre.pad_value = (int)n;
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

/* One of `names` (NULL-terminated): its index, or -1 after the error. */
static int choice(json_t *v, const char *key, const char *const *names, errbuf *e)
{
    const char *s = json_string_value(v);
    char list[256] = "";
    for (int i = 0; names[i]; i++) {
        if (s && strcmp(s, names[i]) == 0)
            return i;
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s\"%s\"", i ? names[i + 1] ? ", " : " or " : "",
                 names[i]);
    }
    fail(e, "output.%s must be %s", key, list);
    return -1;
}

static int number_value(json_t *v, const char *key, double lo, double hi, double *out, errbuf *e)
{
    if (!json_is_number(v) || !(json_number_value(v) >= lo) || !(json_number_value(v) <= hi))
        return fail(e, "output.%s must be a number from %g to %g", key, lo, hi);
    *out = json_number_value(v);
    return 0;
}

static int name_value(json_t *v, const char *key, char *out, size_t len, errbuf *e)
{
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) >= len)
        return fail(e, "output.%s must name one of the model's outputs", key);
    snprintf(out, len, "%s", s);
    return 0;
}

static int parse_detect_key(const char *key, json_t *v, model_config *c, errbuf *e)
{
    static const char *const layouts[] = {"boxes_scores", "yolo", NULL};
    static const char *const coords[] = {"normalized", "pixels", NULL};
    static const char *const acts[] = {"none", "sigmoid", "softmax", NULL};
    static const char *const nms[] = {"per_class", "class_agnostic", NULL};
    detect_params *d = &c->detect;
    double x;
    long long n;
    int i;
    if (strcmp(key, "layout") == 0) {
        if ((i = choice(v, key, layouts, e)) < 0)
            return -1;
        d->layout = (detect_layout)i;
    } else if (strcmp(key, "coordinates") == 0) {
        if ((i = choice(v, key, coords, e)) < 0)
            return -1;
        d->normalized = i == 0;
    } else if (strcmp(key, "score_activation") == 0) {
        if ((i = choice(v, key, acts, e)) < 0)
            return -1;
        d->activation = (detect_activation)i;
    } else if (strcmp(key, "nms") == 0) {
        if ((i = choice(v, key, nms, e)) < 0)
            return -1;
        d->class_agnostic = i == 1;
    } else if (strcmp(key, "score_threshold") == 0) {
        if (number_value(v, key, 0, 1, &x, e))
            return -1;
        d->score_threshold = (float)x;
    } else if (strcmp(key, "iou_threshold") == 0) {
        if (number_value(v, key, 0, 1, &x, e))
            return -1;
        d->iou_threshold = x;
    } else if (strcmp(key, "max_detections") == 0) {
        if (int_value(v, "output", key, 1, 100000, &n, e))
            return -1;
        d->max_detections = (int)n;
    } else if (strcmp(key, "max_candidates") == 0) {
        if (int_value(v, "output", key, 1, 1000000, &n, e))
            return -1;
        d->max_candidates = (int)n;
    } else if (strcmp(key, "background_class") == 0) {
        if (json_is_null(v))
            d->background_class = -1;
        else if (int_value(v, "output", key, 0, 1000000, &n, e))
            return -1;
        else
            d->background_class = (int)n;
    } else if (strcmp(key, "boxes") == 0) {
        return name_value(v, key, c->boxes_name, sizeof c->boxes_name, e);
    } else if (strcmp(key, "scores") == 0) {
        return name_value(v, key, c->scores_name, sizeof c->scores_name, e);
    } else if (strcmp(key, "predictions") == 0) {
        return name_value(v, key, c->predictions_name, sizeof c->predictions_name, e);
    } else {
        return fail(e, "unknown key '%s' in output (task detect)", key);
    }
    return 0;
}

static int parse_output(json_t *o, model_config *c, errbuf *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (c->task == TASK_DETECT) {
            if (parse_detect_key(key, v, c, e))
                return -1;
        } else if (c->task == TASK_SEGMENT && strcmp(key, "logits") == 0) {
            if (name_value(v, key, c->logits_name, sizeof c->logits_name, e))
                return -1;
        } else if (c->task == TASK_CLASSIFY && strcmp(key, "softmax") == 0) {
            if (!json_is_boolean(v))
                return fail(e, "output.softmax must be true or false");
            c->softmax = json_is_true(v);
        } else {
            return fail(e, "unknown key '%s' in output (task %s)", key, model_task_name(c->task));
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

/* {"latest": {"num_versions": N}} | {"all": {}} | {"specific": {"versions": [...]}} */
static int parse_version_policy(json_t *o, model_config *c, errbuf *e)
{
    version_policy *p = &c->versions;
    json_t *latest = json_object_get(o, "latest"), *all = json_object_get(o, "all"),
           *specific = json_object_get(o, "specific");
    if (json_object_size(o) != 1 || !(latest || all || specific))
        return fail(e, "version_policy must have one of latest, all or specific");
    json_t *v = latest ? latest : all ? all : specific;
    if (!json_is_object(v))
        return fail(e, "version_policy.%s must be an object", latest ? "latest" : all ? "all" : "specific");
    c->has_version_policy = true;
    if (all) {
        if (json_object_size(all))
            return fail(e, "version_policy.all takes no keys");
        p->kind = VERSIONS_ALL;
        return 0;
    }
    if (latest) {
        long long n;
        json_t *num = json_object_get(latest, "num_versions");
        if (json_object_size(latest) != 1 || !num)
            return fail(e, "version_policy.latest takes num_versions");
        if (int_value(num, "version_policy.latest", "num_versions", 1, 1000, &n, e))
            return -1;
        *p = (version_policy){.kind = VERSIONS_LATEST, .latest = (int)n};
        return 0;
    }
    json_t *list = json_object_get(specific, "versions");
    if (json_object_size(specific) != 1 || !json_is_array(list) || json_array_size(list) == 0 ||
        json_array_size(list) > MAX_POLICY_VERSIONS)
        return fail(e, "version_policy.specific takes versions: a list of 1 to %d versions",
                    MAX_POLICY_VERSIONS);
    *p = (version_policy){.kind = VERSIONS_SPECIFIC};
    size_t i;
    for (i = 0; i < json_array_size(list); i++) {
        long long n;
        if (int_value(json_array_get(list, i), "version_policy.specific", "versions", 1,
                      (1LL << 53), &n, e))
            return -1;
        p->specific[p->n_specific++] = n;
    }
    return 0;
}

bool version_policy_wants(const version_policy *p, int64_t version, const int64_t *all, int n)
{
    if (p->kind == VERSIONS_ALL)
        return true;
    if (p->kind == VERSIONS_SPECIFIC) {
        for (int i = 0; i < p->n_specific; i++)
            if (p->specific[i] == version)
                return true;
        return false;
    }
    int higher = 0; /* latest N: fewer than N versions above it */
    for (int i = 0; i < n; i++)
        higher += all[i] > version;
    return higher < p->latest;
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
    static const char *const tasks[] = {"classify", "detect", "segment", NULL};
    json_t *task = json_is_object(root) ? json_object_get(root, "task") : NULL;
    if (!json_is_object(root)) {
        rc = fail(&e, "the top level must be an object");
    } else if (task) { /* first: the output section depends on it */
        const char *t = json_string_value(task);
        rc = -1;
        for (int i = 0; tasks[i]; i++)
            if (t && strcmp(t, tasks[i]) == 0) {
                c->task = (model_task)i;
                rc = 0;
            }
        if (rc)
            fail(&e, "task must be \"classify\", \"detect\" or \"segment\"");
    }
    if (!rc)
        json_object_foreach(root, key, v) {
            if (strcmp(key, "task") == 0) {
                continue;
            } else if (!json_is_object(v)) {
                rc = fail(&e, "'%s' must be an object", key);
            } else if (strcmp(key, "input") == 0) {
                rc = parse_input(v, c, &e);
            } else if (strcmp(key, "output") == 0) {
                rc = parse_output(v, c, &e);
            } else if (strcmp(key, "batching") == 0) {
                rc = parse_batching(v, c, &e);
            } else if (strcmp(key, "version_policy") == 0) {
                rc = parse_version_policy(v, c, &e);
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
