/* The model repository: DIR/<name>/model.onnx with optional labels.txt
 * and model.json, each loaded into an engine and a batcher.
 *
 * A model that fails to load (bad model.json, an ONNX file visiond cannot
 * run) is kept in the list as FAILED with its reason, logged once; the
 * others serve. Entries never move once the HTTP server runs, so request
 * threads may hold pointers to them; `state` changes atomically.
 */
#ifndef VISIOND_MODEL_REPO_H
#define VISIOND_MODEL_REPO_H

#include <stdatomic.h>
#include <stdbool.h>

#include "../engine/batcher.h"
#include "../engine/engine.h"
#include "model_config.h"

typedef enum { MODEL_LOADING = 0, MODEL_READY, MODEL_FAILED } model_state;

typedef struct {
    char name[72];
    char dir[1100];
    atomic_int state;
    char error[600];
    model_config cfg;
    engine *engine;
    batcher *batcher;
    char **labels;
    int n_labels;
    int64_t classes;   /* elements per image of the first output */
    bool image_input;  /* one (N, C, H, W) input with C = 1 or 3: /classify works */
    /* the task's outputs (model_task.c): detect: boxes or predictions, then
     * scores; segment: logits. Dims per image: detect K, C; segment C, H, W */
    int task_out[2];
    const char *task_out_name[2]; /* their names (the engine's strings) */
    int64_t task_dims[3];
    char backend[256];
    /* the batcher's thread: fallbacks already logged, and when */
    long fallbacks_logged;
    int64_t fallback_logged_ns;
} served_model;

typedef struct {
    served_model *models;
    int n;
} model_repo;

typedef struct {
    const char *device;
    int threads;
    const char *conv_algo, *algo_cache;
    size_t workspace_limit;
    int inject_faults;
    void (*observe_batch)(void *model, int batch_size, double inference_ms);
    const atomic_bool *cancel; /* set: stop loading (the daemon is stopping) */
} model_load_options;

/* Lists DIR's models (state LOADING); fails only if DIR cannot be read. */
int model_repo_scan(model_repo *r, const char *dir, char *err, size_t errlen);
/* Loads every listed model in turn, logging each outcome; once o->cancel
 * is set, what is left is marked failed ("not loaded: stopping"). */
void model_repo_load_all(model_repo *r, const model_load_options *o);
served_model *model_repo_find(model_repo *r, const char *name);
/* No model still loading, and at least one serving. */
bool model_repo_ready(model_repo *r);
/* Stops batchers (running what they hold), frees engines. */
void model_repo_free(model_repo *r);

const char *model_state_name(model_state s);
/* Validated model names: 1-64 of [A-Za-z0-9_.-], not starting with '.'. */
bool model_name_valid(const char *name);

#endif
