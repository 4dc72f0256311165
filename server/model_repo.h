/* The model repository: DIR/<name>/ holds one model, either flat
 * (model.onnx, version 1) or in integer version folders
 * (<name>/<version>/model.onnx, Triton's and TF Serving's layout), with
 * labels.txt and model.json beside it (a version folder's own files take
 * precedence over the model's). model.json's version_policy picks the
 * versions served (latest N, all, specific).
 *
 * Models change while the daemon runs. One thread of the repository's own
 * (the manager) does every load and unload, in order: the first read of
 * the folder, SIGHUP and the poll (model_repo_request(REPO_SCAN)), and the
 * HTTP repository API's load and unload. A changed version is loaded and
 * planned beside the one serving; once it is ready, requests switch to it
 * (one pointer, under the repository's lock); the old one keeps what it
 * already holds, drains, and is freed by the manager once the last request
 * holding it lets go. A load that fails leaves the previous load serving and
 * records why.
 *
 * A loaded version is a served_model. Requests hold it by reference
 * (model_repo_acquire / model_repo_release), so it never goes away under
 * them; everything else reads the repository through a snapshot
 * (model_repo_list), which holds references the same way.
 */
#ifndef VISIOND_MODEL_REPO_H
#define VISIOND_MODEL_REPO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../engine/batcher.h"
#include "../engine/engine.h"
#include "model_config.h"

typedef enum {
    MODEL_LOADING = 0, /* not serving yet */
    MODEL_READY,       /* serving */
    MODEL_FAILED,      /* its load failed, nothing serves */
    MODEL_UNLOADING,   /* retired, draining what it holds */
    MODEL_UNAVAILABLE, /* unloaded on request, or no version to serve */
} model_state;

/* What a version was loaded from: a file's identity and its last change.
 * Any difference means the version changed on disk. */
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns, ctime_ns;
} file_stamp;

typedef struct {
    file_stamp onnx, json, labels; /* zero where the file is absent */
} model_files;

typedef struct served_model {
    char name[72];
    int64_t version;
    char dir[1100]; /* the folder its model.onnx is in */
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
    /* the repository's: one reference is the repository's own while it
     * serves; each request holding it has another */
    atomic_int refs;
    model_files files;
    double load_seconds;
    struct model_repo *repo;
    struct served_model *next_retired;
} served_model;

typedef enum { REPO_SCAN, REPO_LOAD, REPO_UNLOAD } repo_task_kind;

typedef struct {
    const char *device;
    int threads;
    const char *conv_algo, *algo_cache;
    size_t workspace_limit;
    int inject_faults;
    int poll_s; /* read the folder again every poll_s seconds; 0: only when asked */
    void (*observe_batch)(void *model, int batch_size, double inference_ms);
    /* after each version's load: its duration, and whether it failed */
    void (*observe_load)(const char *name, int64_t version, double seconds, bool failed);
    /* a version starts or stops serving */
    void (*observe_version)(const char *name, int64_t version, bool serving);
    const atomic_bool *cancel; /* set: stop loading (the daemon is stopping) */
} model_load_options;

/* One version as a snapshot shows it. */
typedef struct {
    int64_t version;
    model_state state; /* READY, LOADING, FAILED, UNLOADING */
    char reason[600];  /* why it failed; for READY, a reload that failed */
    served_model *live; /* held by the snapshot: serving or draining, else NULL */
} version_view;

/* One model as a snapshot shows it. */
typedef struct {
    char name[72];
    model_state state; /* READY if a version serves, else LOADING, FAILED, UNAVAILABLE */
    char error[600];   /* the model's own problem (its model.json, no model file) */
    served_model *latest; /* the highest version serving (held), or NULL */
    version_view *versions; /* by version, ascending; draining ones too */
    int n_versions;
} model_view;

typedef struct task_node task_node;
typedef struct model_entry model_entry;

typedef struct model_repo {
    char dir[1024];
    model_load_options opts;
    pthread_mutex_t lock; /* guards everything below but the counters */
    pthread_cond_t wake;  /* the manager: a task, a drained version, stop */
    pthread_cond_t done;  /* a task finished */
    model_entry *entries; /* never move: up to MAX_MODELS, in the order found */
    int n_entries;
    served_model *retired;        /* draining, freed by the manager */
    task_node *tasks, *tasks_tail; /* waiting for the manager */
    uint64_t tickets, finished;   /* tasks queued and done, in order */
    bool first_scan_done, stop, thread_started;
    pthread_t thread;
    atomic_bool thread_exited;
} model_repo;

/* Opens DIR (fails only if it cannot be read); nothing loads yet. */
int model_repo_open(model_repo *r, const char *dir, const model_load_options *o, char *err,
                    size_t errlen);
/* Starts the manager thread; its first task reads the folder and loads
 * every model. Returns that task's ticket (see model_repo_wait), 0 if no
 * thread could start. */
uint64_t model_repo_start(model_repo *r);

/* Queues a task for the manager: SCAN (re-read the whole folder; waiting
 * scans merge), LOAD or UNLOAD one model by name. done(arg, status,
 * message) runs on the manager thread once the task is over: status 0,
 * 400 (no such model, or its load failed; message says why) or 503 (the
 * repository is stopping). Returns the task's ticket; 0 if stopping (done
 * is not called then). */
uint64_t model_repo_request(model_repo *r, repo_task_kind kind, const char *name,
                            void (*done)(void *arg, unsigned status, const char *message),
                            void *arg);
/* Tasks finished so far: ticket t is done once this reaches t. */
uint64_t model_repo_finished(model_repo *r);
/* Waits until ticket t is done (or the repository stopped). */
void model_repo_wait(model_repo *r, uint64_t ticket);

/* The version a request will use, with a reference held: `version` 0 is
 * the highest serving. NULL: *status and msg say why (404: no such model
 * or version; 503: the model is loading, failed or unloaded). */
served_model *model_repo_acquire(model_repo *r, const char *name, int64_t version,
                                 unsigned *status, char *msg, size_t msglen);
void model_repo_release(served_model *m);

/* Every model in the folder (and those draining), by name; references
 * held until model_repo_list_free. Returns the count, -1 out of memory. */
int model_repo_list(model_repo *r, model_view **out);
void model_repo_list_free(model_view *v, int n);

/* The first read of the folder is done and at least one version serves. */
bool model_repo_ready(model_repo *r);

/* Stops the manager: tasks waiting are answered 503, a load under way
 * stops at its next step (o->cancel). Waits up to wait_ms for the thread;
 * false if it is still busy (then nothing may be freed). */
bool model_repo_stop(model_repo *r, int64_t wait_ms);
/* Stops batchers (running what they hold), frees engines. */
void model_repo_free(model_repo *r);

const char *model_state_name(model_state s);
/* The Triton repository index's name for a state: READY, LOADING, UNLOADING, UNAVAILABLE. */
const char *model_state_index_name(model_state s);
/* Validated model names: 1-64 of [A-Za-z0-9_.-], not starting with '.'. */
bool model_name_valid(const char *name);
/* A version as a path or URL segment: decimal 1 to 2^53, no sign or
 * leading zero. -1 if not. */
int64_t model_version_parse(const char *s);

/* model_load.c: one version, loaded from dir (model.onnx, and model.json and
 * labels.txt from dir or else model_dir); freed by model_instance_free. */
served_model *model_instance_load(const char *name, int64_t version, const char *dir,
                                  const char *model_dir, const model_load_options *o,
                                  char *err, size_t errlen);
void model_instance_free(served_model *m);
/* dir/file, or for a version folder (its name an integer) without that
 * file, the model folder's: what the daemon reads, for the command line. */
void model_version_file(const char *dir, const char *file, char *path, size_t len);
/* The files a version in dir would load; false if model.onnx is missing. */
bool model_files_of(const char *dir, const char *model_dir, model_files *f);
bool model_files_equal(const model_files *a, const model_files *b);

#endif
