/* What model_repo.c and model_sync.c share and nobody else sees: a model's
 * entry, its version slots and the manager's task queue. Every field is
 * read and written with the repository's lock held, except by the manager
 * thread where a comment says so.
 */
#ifndef VISIOND_MODEL_REPO_INTERNAL_H
#define VISIOND_MODEL_REPO_INTERNAL_H

#include "model_repo.h"

#define MAX_MODELS 256
#define MAX_VERSIONS 64 /* version folders served per model */

/* One version of a model: what serves it, and how its last load went. */
typedef struct {
    int64_t version;
    model_state state; /* LOADING (never served yet), READY, FAILED */
    char reason[600];  /* the last failure; for READY a reload that failed */
    served_model *live;
    model_files failed_files; /* what the failed load read: not retried unchanged */
    bool failed_once;
} version_slot;

struct model_entry {
    char name[72];
    char dir[1100];
    version_slot slots[MAX_VERSIONS]; /* by version, ascending */
    int n_slots;
    char error[600]; /* the model's own: its model.json, no model file */
    bool present;    /* in the folder at the last read */
    bool unloaded;   /* unloaded on request: the folder's reads leave it be */
};

struct task_node {
    repo_task_kind kind;
    char name[72];
    void (*done)(void *arg, unsigned status, const char *message);
    void *arg;
    uint64_t ticket;
    task_node *next;
};

model_entry *repo_entry(model_repo *r, const char *name);
version_slot *repo_slot(model_entry *e, int64_t version);
version_slot *repo_add_slot(model_entry *e, int64_t version);
void repo_retire(model_repo *r, served_model *m);
void repo_remove_slot(model_repo *r, model_entry *e, int64_t version);

/* model_sync.c, on the manager thread: the folder read again, one model
 * loaded (0 or 400) or unloaded. */
void repo_sync_all(model_repo *r);
unsigned repo_load_model(model_repo *r, const char *name, char *msg, size_t msglen);
unsigned repo_unload_model(model_repo *r, const char *name, char *msg, size_t msglen);

#endif
