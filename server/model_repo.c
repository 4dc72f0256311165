/* Scanning and loading the model repository; see model_repo.h. */
#include "model_repo.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/file_read.h"
#include "log.h"
#include "model_task.h"

#define MAX_MODELS 256
#define MAX_LABELS 100000
#define MAX_LABEL_BYTES 4096
#define MAX_LABELS_FILE (8u << 20)

bool model_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

const char *model_state_name(model_state s)
{
    switch (s) {
    case MODEL_LOADING: return "loading";
    case MODEL_READY: return "ready";
    case MODEL_FAILED: return "failed";
    }
    return "?";
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const served_model *)a)->name, ((const served_model *)b)->name);
}

int model_repo_scan(model_repo *r, const char *dir, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot read the model repository %s: %s", dir, strerror(errno));
        return -1;
    }
    r->models = calloc(MAX_MODELS, sizeof *r->models);
    if (!r->models) {
        closedir(d);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[1200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s/model.onnx", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (!model_name_valid(e->d_name)) {
            log_msg(LOG_WARN, "model directory '%s' skipped: names are 1-64 of A-Z a-z 0-9 _ - .",
                    e->d_name);
            continue;
        }
        if (r->n == MAX_MODELS) {
            log_msg(LOG_WARN, "more than %d models in %s: the rest are skipped", MAX_MODELS, dir);
            break;
        }
        served_model *m = &r->models[r->n++];
        snprintf(m->name, sizeof m->name, "%s", e->d_name);
        snprintf(m->dir, sizeof m->dir, "%s/%s", dir, e->d_name);
        atomic_init(&m->state, MODEL_LOADING);
    }
    closedir(d);
    qsort(r->models, (size_t)r->n, sizeof *r->models, by_name);
    return 0;
}

static int load_labels(served_model *m, char *err, size_t errlen)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/labels.txt", m->dir);
    char *text;
    size_t len;
    bool missing;
    engine_error fe;
    if (file_read_regular(path, MAX_LABELS_FILE, &text, &len, &missing, &fe)) {
        if (missing)
            return 0;
        snprintf(err, errlen, "%s", fe.message);
        return -1;
    }
    m->labels = calloc(MAX_LABELS, sizeof *m->labels);
    int rc = 0;
    if (!m->labels) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (char *line = text; !rc && line < text + len;) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        size_t n = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
        if (n > MAX_LABEL_BYTES || m->n_labels == MAX_LABELS) {
            snprintf(err, errlen, "%s: too large (at most %d lines of %d bytes)", path,
                     MAX_LABELS, MAX_LABEL_BYTES);
            rc = -1;
            break;
        }
        while (n && (line[n - 1] == '\r' || line[n - 1] == '\n'))
            n--;
        if (!(m->labels[m->n_labels++] = strndup(line, n))) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
        line = nl ? nl + 1 : text + len;
    }
    free(text);
    return rc;
}

static int load_model(served_model *m, const model_load_options *o, char *err,
                      size_t errlen)
{
    char path[1200];
    bool found;
    model_config_defaults(&m->cfg);
    snprintf(path, sizeof path, "%s/model.json", m->dir);
    if (model_config_load(path, &m->cfg, &found, err, errlen))
        return -1;
    snprintf(path, sizeof path, "%s/model.onnx", m->dir);
    engine_options eo = {.device = o->device, .max_batch = m->cfg.max_batch_size,
                         .threads = o->threads, .conv_algo = o->conv_algo,
                         .algo_cache = o->algo_cache && o->algo_cache[0] ? o->algo_cache : NULL,
                         .workspace_limit = o->workspace_limit,
                         .inject_faults = o->inject_faults,
                         .cancel = o->cancel};
    engine_error e = {0};
    if (engine_open(path, &eo, &m->engine, &e)) {
        snprintf(err, errlen, "%s", e.message);
        return -1;
    }
    engine_tensor_info in;
    engine_input_info(m->engine, 0, &in);
    m->image_input = engine_input_count(m->engine) == 1 && in.rank == 4 &&
                     (in.dims[1] == 1 || in.dims[1] == 3);
    if (m->image_input) {
        if (model_config_resolve(&m->cfg, in.dims[1], in.dims[2], in.dims[3], err, errlen)) {
            char detail[600];
            snprintf(detail, sizeof detail, "%s", err);
            snprintf(err, errlen, "%s/model.json: %s", m->dir, detail);
            return -1;
        }
        /* images enter the model as bytes; the graph normalises them */
        if (engine_set_image_input(m->engine, &m->cfg.pre, &e)) {
            snprintf(err, errlen, "%s", e.message);
            return -1;
        }
    } else if (found) {
        log_msg(LOG_INFO, "model %s: its input is not an image (N, C, H, W); only "
                          "/v2/models/%s/infer serves it",
                m->name, m->name);
    }
    if (engine_start(m->engine, &e)) {
        snprintf(err, errlen, "%s", e.message);
        return -1;
    }
    snprintf(m->backend, sizeof m->backend, "%s", engine_backend_description(m->engine));
    if (load_labels(m, err, errlen))
        return -1;
    batcher_config bc = {.max_batch_size = m->cfg.max_batch_size,
                         .image_jobs = m->image_input,
                         .max_queue_delay_us = m->cfg.max_queue_delay_us,
                         .max_queue_size = m->cfg.max_queue_size,
                         .timeout_ms = m->cfg.timeout_ms,
                         .observe_batch = o->observe_batch,
                         .user = m};
    if (batcher_create(m->engine, &bc, &m->batcher, &e)) {
        snprintf(err, errlen, "%s", e.message);
        return -1;
    }
    m->classes = batcher_output_elems(m->batcher, 0);
    if (model_task_resolve(m, err, errlen))
        return -1;
    int64_t classes = m->cfg.task == TASK_CLASSIFY ? m->classes
                      : m->cfg.task == TASK_DETECT ? m->task_dims[1]
                                                   : m->task_dims[0];
    if (m->n_labels && m->n_labels != classes)
        log_msg(LOG_WARN, "model %s: labels.txt has %d lines but the model has %lld classes",
                m->name, m->n_labels, (long long)classes);
    return 0;
}

void model_repo_load_all(model_repo *r, const model_load_options *o)
{
    for (int i = 0; i < r->n; i++) {
        served_model *m = &r->models[i];
        char err[600] = "";
        if (o->cancel && atomic_load(o->cancel)) {
            snprintf(m->error, sizeof m->error, "not loaded: stopping");
            atomic_store(&m->state, MODEL_FAILED);
            continue;
        }
        if (load_model(m, o, err, sizeof err)) {
            snprintf(m->error, sizeof m->error, "%s", err);
            log_msg(LOG_ERROR, "model %s failed to load: %s", m->name, err);
            atomic_store(&m->state, MODEL_FAILED);
            continue;
        }
        log_msg(LOG_INFO, "model %s ready: %s, %s, batches up to %d, %s", m->name,
                !m->image_input ? "tensors" : "images", model_task_name(m->cfg.task),
                batcher_max_batch(m->batcher), m->backend);
        atomic_store(&m->state, MODEL_READY);
    }
}

served_model *model_repo_find(model_repo *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->models[i].name, name) == 0)
            return &r->models[i];
    return NULL;
}

bool model_repo_ready(model_repo *r)
{
    int ready = 0;
    for (int i = 0; i < r->n; i++) {
        int s = atomic_load(&r->models[i].state);
        if (s == MODEL_LOADING)
            return false;
        ready += s == MODEL_READY;
    }
    return ready > 0;
}

void model_repo_free(model_repo *r)
{
    for (int i = 0; i < r->n; i++) {
        served_model *m = &r->models[i];
        batcher_destroy(m->batcher);
        engine_free(m->engine);
        for (int k = 0; k < m->n_labels; k++)
            free(m->labels[k]);
        free(m->labels);
    }
    free(r->models);
    memset(r, 0, sizeof *r);
}
