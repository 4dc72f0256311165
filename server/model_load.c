/* Loading one version of a model: its model.json, the ONNX file into an
 * engine (planned and started), labels.txt, a batcher; and freeing it.
 * model_repo.c decides when; this file only knows how.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../engine/clock.h"
#include "../engine/file_read.h"
#include "log.h"
#include "model_repo.h"
#include "model_task.h"

#define MAX_LABELS 100000
#define MAX_LABEL_BYTES 4096
#define MAX_LABELS_FILE (8u << 20)

/* dir/file if it exists, else model_dir/file (a version's own file first). */
static void find_file(const char *dir, const char *model_dir, const char *file, char *path,
                      size_t len)
{
    struct stat st;
    snprintf(path, len, "%s/%s", dir, file);
    if (stat(path, &st) != 0 && strcmp(dir, model_dir) != 0)
        snprintf(path, len, "%s/%s", model_dir, file);
}

void model_version_file(const char *dir, const char *file, char *path, size_t len)
{
    const char *slash = strrchr(dir, '/');
    char model_dir[1100];
    snprintf(model_dir, sizeof model_dir, "%.*s", slash ? (int)(slash - dir) : 0, dir);
    /* a version folder's model is its parent; any other folder is its own */
    find_file(dir, slash && model_version_parse(slash + 1) > 0 ? model_dir : dir, file, path,
              len);
}

static void stamp(const char *path, file_stamp *s)
{
    struct stat st;
    memset(s, 0, sizeof *s);
    if (stat(path, &st) != 0)
        return;
    *s = (file_stamp){.dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
                      .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
                      .ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec};
}

bool model_files_of(const char *dir, const char *model_dir, model_files *f)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    stamp(path, &f->onnx);
    find_file(dir, model_dir, "model.json", path, sizeof path);
    stamp(path, &f->json);
    find_file(dir, model_dir, "labels.txt", path, sizeof path);
    stamp(path, &f->labels);
    return f->onnx.ino != 0;
}

static bool stamp_equal(const file_stamp *a, const file_stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

bool model_files_equal(const model_files *a, const model_files *b)
{
    return stamp_equal(&a->onnx, &b->onnx) && stamp_equal(&a->json, &b->json) &&
           stamp_equal(&a->labels, &b->labels);
}

static int load_labels(served_model *m, const char *path, char *err, size_t errlen)
{
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
    /* the list is sized for the most a file may hold: keep what it holds */
    if (!rc && m->n_labels) {
        char **fit = realloc(m->labels, (size_t)m->n_labels * sizeof *fit);
        if (fit)
            m->labels = fit;
    }
    return rc;
}

static int load(served_model *m, const char *model_dir, const model_load_options *o, char *err,
                size_t errlen)
{
    char path[1200];
    bool found;
    model_config_defaults(&m->cfg);
    find_file(m->dir, model_dir, "model.json", path, sizeof path);
    if (model_config_load(path, &m->cfg, &found, err, errlen))
        return -1;
    if (found && m->cfg.has_version_policy && strcmp(m->dir, model_dir) != 0 &&
        strncmp(path, m->dir, strlen(m->dir)) == 0) {
        snprintf(err, errlen, "%s: version_policy belongs in %s/model.json, not a version's",
                 path, model_dir);
        return -1;
    }
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
            snprintf(err, errlen, "%s/model.json: %s", model_dir, detail);
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
    find_file(m->dir, model_dir, "labels.txt", path, sizeof path);
    if (load_labels(m, path, err, errlen))
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

served_model *model_instance_load(const char *name, int64_t version, const char *dir,
                                  const char *model_dir, const model_load_options *o,
                                  char *err, size_t errlen)
{
    served_model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int64_t t0 = clock_monotonic_ns();
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    m->version = version;
    atomic_init(&m->refs, 1);
    /* the files are stamped before they are read: a change while loading
     * shows as a difference at the next read of the folder */
    model_files_of(dir, model_dir, &m->files);
    if (load(m, model_dir, o, err, errlen)) {
        model_instance_free(m);
        return NULL;
    }
    m->load_seconds = (double)(clock_monotonic_ns() - t0) / 1e9;
    return m;
}

void model_instance_free(served_model *m)
{
    if (!m)
        return;
    batcher_destroy(m->batcher);
    engine_free(m->engine);
    for (int k = 0; k < m->n_labels; k++)
        free(m->labels[k]);
    free(m->labels);
    free(m);
}
