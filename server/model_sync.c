/* Making the served versions follow the folder, on the manager thread.
 *
 * For each model: which versions the folder holds (integer folders with a
 * model.onnx, or a flat model.onnx as version 1), which of them its
 * version_policy serves, and which of those changed since they were
 * loaded (model_files: the identity and times of model.onnx, model.json and
 * labels.txt). Every model's plan is made before anything loads, so each
 * new version shows as LOADING at once; then the plans are carried out:
 * changed and new versions load beside what serves and take over when
 * ready, and only then do versions the policy no longer serves go. A load
 * that fails leaves what served before serving, and is not retried until
 * its files change or someone asks (the load endpoint).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/clock.h"
#include "log.h"
#include "model_repo_internal.h"
#include "model_task.h"

#define MAX_FOUND 1024 /* version folders looked at per model */

typedef struct {
    int64_t version;
    model_files files;
} plan_item;

typedef struct {
    model_entry *e;
    bool flat;              /* model.onnx directly in the model's folder */
    plan_item load[MAX_VERSIONS];
    int n_load;
    int64_t drop[MAX_VERSIONS];
    bool drop_on_disk[MAX_VERSIONS]; /* still in the folder, only the policy drops it */
    int n_drop;
    int64_t wanted[MAX_VERSIONS];     /* what the policy serves */
    int n_wanted;
    bool config_failed;     /* model.json unreadable: nothing changed */
} model_plan;

static int by_value(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

static bool regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The versions in a model's folder, ascending; a flat model.onnx is
 * version 1 when there is no version folder. */
static int versions_on_disk(const char *dir, int64_t *out, int max, bool *flat)
{
    char path[1300];
    int n = 0;
    *flat = false;
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d)) && n < max;) {
        int64_t v = model_version_parse(de->d_name);
        snprintf(path, sizeof path, "%s/%s/model.onnx", dir, de->d_name);
        if (v > 0 && regular_file(path))
            out[n++] = v;
    }
    if (d)
        closedir(d);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    if (n == 0 && regular_file(path)) {
        out[n++] = 1;
        *flat = true;
    }
    qsort(out, (size_t)n, sizeof *out, by_value);
    return n;
}

static void version_dir(const model_entry *e, bool flat, int64_t v, char *out, size_t len)
{
    if (flat)
        snprintf(out, len, "%s", e->dir);
    else
        snprintf(out, len, "%s/%lld", e->dir, (long long)v);
}

/* What to load and what to drop for one model; new versions are marked
 * LOADING. force: reload every version served, changed or not. */
static void plan_model(model_repo *r, model_entry *e, bool force, model_plan *p)
{
    *p = (model_plan){.e = e};
    int64_t *found = malloc(MAX_FOUND * sizeof *found);
    if (!found) {
        log_msg(LOG_ERROR, "model %s: out of memory reading its folder", e->name);
        p->config_failed = true;
        return;
    }
    int n = versions_on_disk(e->dir, found, MAX_FOUND, &p->flat);
    char path[1200], err[600];
    snprintf(path, sizeof path, "%s/model.json", e->dir);
    model_config c;
    model_config_defaults(&c);
    bool has_json;
    if (model_config_load(path, &c, &has_json, err, sizeof err)) {
        pthread_mutex_lock(&r->lock);
        bool again = strcmp(e->error, err) == 0, serving = false;
        snprintf(e->error, sizeof e->error, "%s", err);
        for (int i = 0; i < e->n_slots; i++)
            serving |= e->slots[i].live != NULL;
        pthread_mutex_unlock(&r->lock);
        if (!again)
            log_msg(LOG_ERROR, "model %s failed to load: %s%s", e->name, err,
                    serving ? " (the versions loaded before keep serving)" : "");
        p->config_failed = true;
        free(found);
        return;
    }
    pthread_mutex_lock(&r->lock);
    e->error[0] = '\0';
    if (n == 0)
        snprintf(e->error, sizeof e->error, "no model.onnx in %s or in a version folder",
                 e->dir);
    for (int i = 0; i < n; i++) {
        if (!version_policy_wants(&c.versions, found[i], found, n))
            continue;
        if (p->n_wanted < MAX_VERSIONS)
            p->wanted[p->n_wanted++] = found[i];
        char dir[1200];
        version_dir(e, p->flat, found[i], dir, sizeof dir);
        model_files f;
        model_files_of(dir, e->dir, &f);
        version_slot *s = repo_slot(e, found[i]);
        if (!s && !(s = repo_add_slot(e, found[i]))) {
            log_msg(LOG_WARN, "model %s: more than %d versions served; version %lld skipped",
                    e->name, MAX_VERSIONS, (long long)found[i]);
            continue;
        }
        if (!force && s->live && model_files_equal(&s->live->files, &f)) {
            s->reason[0] = '\0'; /* unchanged, and the policy names it again */
            continue;
        }
        if (!force && s->failed_once && model_files_equal(&s->failed_files, &f))
            continue; /* its last load failed, and nothing changed since */
        if (!s->live)
            s->state = MODEL_LOADING;
        p->load[p->n_load++] = (plan_item){.version = found[i], .files = f};
    }
    if (n > 0 && p->n_wanted == 0) /* e.g. specific versions none of which is there */
        snprintf(e->error, sizeof e->error,
                 "its version_policy names none of the %d version%s in %s", n,
                 n == 1 ? "" : "s", e->dir);
    for (int k = 0; k < e->n_slots; k++) {
        int64_t v = e->slots[k].version;
        bool wanted = false, on_disk = false;
        for (int i = 0; i < n && !wanted; i++) {
            on_disk |= found[i] == v;
            wanted = found[i] == v && version_policy_wants(&c.versions, v, found, n);
        }
        if (!wanted) {
            p->drop_on_disk[p->n_drop] = on_disk;
            p->drop[p->n_drop++] = v;
        }
    }
    pthread_mutex_unlock(&r->lock);
    free(found);
}

/* Loads what the plan says, then drops what it says; returns the failed
 * loads, described in msg. */
static int carry_out(model_repo *r, model_plan *p, char *msg, size_t msglen)
{
    model_entry *e = p->e;
    int failures = 0;
    for (int i = 0; i < p->n_load; i++) {
        int64_t v = p->load[i].version;
        char dir[1200], err[600] = "";
        version_dir(e, p->flat, v, dir, sizeof dir);
        served_model *m = NULL;
        int64_t t0 = clock_monotonic_ns();
        if (r->opts.cancel && atomic_load(r->opts.cancel))
            snprintf(err, sizeof err, "not loaded: stopping");
        else
            m = model_instance_load(e->name, v, dir, e->dir, &r->opts, err, sizeof err);
        double seconds = (double)(clock_monotonic_ns() - t0) / 1e9;
        if (r->opts.observe_load)
            r->opts.observe_load(e->name, v, seconds, m == NULL);
        pthread_mutex_lock(&r->lock);
        version_slot *s = repo_slot(e, v);
        served_model *old = NULL;
        if (m && s) {
            m->repo = r; /* before anyone can take it */
            old = s->live;
            s->live = m;
            s->state = MODEL_READY;
            s->reason[0] = '\0';
            s->failed_once = false;
        } else if (s) {
            snprintf(s->reason, sizeof s->reason, "%s", err);
            s->state = s->live ? MODEL_READY : MODEL_FAILED;
            s->failed_once = true;
            s->failed_files = p->load[i].files;
        }
        bool still_serving = s && s->live && !m;
        pthread_mutex_unlock(&r->lock);
        if (m) {
            if (r->opts.observe_version)
                r->opts.observe_version(e->name, v, true);
            log_msg(LOG_INFO, "model %s version %lld ready%s in %.2f s: %s, %s, batches up to %d, %s",
                    e->name, (long long)v, old ? " (replacing the previous load)" : "", seconds,
                    !m->image_input ? "tensors" : "images", model_task_name(m->cfg.task),
                    batcher_max_batch(m->batcher), m->backend);
            pthread_mutex_lock(&r->lock);
            repo_retire(r, old);
            pthread_mutex_unlock(&r->lock);
        } else {
            log_msg(LOG_ERROR, "model %s version %lld failed to load: %s%s", e->name,
                    (long long)v, err,
                    still_serving ? " (the version loaded before keeps serving)" : "");
            size_t used = strlen(msg);
            snprintf(msg + used, msglen - used, "%sfailed to load model '%s' version %lld: %s",
                     failures ? "; " : "", e->name, (long long)v, err);
            failures++;
        }
    }
    /* a version the policy no longer names goes once every version it
     * names serves; until then it keeps serving in their place (a removed
     * folder goes at once) */
    pthread_mutex_lock(&r->lock);
    bool all_serve = p->n_wanted > 0; /* a policy naming nothing there drops nothing */
    for (int k = 0; k < p->n_wanted; k++) {
        version_slot *s = repo_slot(e, p->wanted[k]);
        all_serve &= s && s->live;
    }
    for (int k = 0; k < p->n_drop; k++) {
        version_slot *s = repo_slot(e, p->drop[k]);
        if (all_serve || !p->drop_on_disk[k] || !s || !s->live) {
            repo_remove_slot(r, e, p->drop[k]);
        } else if (!s->reason[0]) {
            snprintf(s->reason, sizeof s->reason,
                     "kept serving: a version the policy names failed to load");
            log_msg(LOG_WARN, "model %s version %lld keeps serving: a version its policy "
                              "names failed to load",
                    e->name, (long long)p->drop[k]);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return failures;
}

static bool holds_a_model(const char *dir)
{
    int64_t v[1];
    bool flat;
    return versions_on_disk(dir, v, 1, &flat) > 0;
}

/* The entry for a model folder, made if new (the lock held). */
static model_entry *entry_for(model_repo *r, const char *name)
{
    model_entry *e = repo_entry(r, name);
    if (e || r->n_entries == MAX_MODELS)
        return e;
    e = &r->entries[r->n_entries++];
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->dir, sizeof e->dir, "%s/%s", r->dir, name);
    return e;
}

/* Marks e absent and takes all its versions out of service (locked). */
static void drop_all(model_repo *r, model_entry *e)
{
    while (e->n_slots)
        repo_remove_slot(r, e, e->slots[0].version);
}

void repo_sync_all(model_repo *r)
{
    DIR *d = opendir(r->dir);
    if (!d)
        log_msg(LOG_ERROR, "cannot read the model repository %s: what serves keeps serving",
                r->dir);
    pthread_mutex_lock(&r->lock);
    bool first = !r->first_scan_done;
    pthread_mutex_unlock(&r->lock);
    /* the models in the folder, then every entry's presence in one step, so
     * a request never sees a model missing in the middle of a read */
    char (*names)[72] = calloc(MAX_MODELS, sizeof *names);
    int n_names = 0;
    for (struct dirent *de; d && names && (de = readdir(d));) {
        char dir[1300];
        snprintf(dir, sizeof dir, "%s/%s", r->dir, de->d_name);
        if (de->d_name[0] == '.' || !holds_a_model(dir))
            continue;
        if (!model_name_valid(de->d_name)) {
            log_msg(first ? LOG_WARN : LOG_DEBUG,
                    "model directory '%s' skipped: names are 1-64 of A-Z a-z 0-9 _ - .",
                    de->d_name);
        } else if (n_names == MAX_MODELS) {
            log_msg(first ? LOG_WARN : LOG_DEBUG, "more than %d models in %s: '%s' is skipped",
                    MAX_MODELS, r->dir, de->d_name);
        } else {
            snprintf(names[n_names++], sizeof names[0], "%s", de->d_name);
        }
    }
    if (d)
        closedir(d);
    if (names) /* models load in the order of their names */
        qsort(names, (size_t)n_names, sizeof names[0], by_name);
    if (d && names) {
        pthread_mutex_lock(&r->lock);
        for (int i = 0; i < r->n_entries; i++)
            r->entries[i].present = false;
        for (int i = 0; i < n_names; i++) {
            model_entry *e = entry_for(r, names[i]);
            if (e)
                e->present = true;
        }
        pthread_mutex_unlock(&r->lock);
    }
    free(names);
    if (first && n_names == 0)
        log_msg(LOG_WARN, "no models in %s (expected %s/<name>/model.onnx or "
                          "%s/<name>/<version>/model.onnx)",
                r->dir, r->dir, r->dir);
    /* every plan first, so every new version shows as loading at once */
    pthread_mutex_lock(&r->lock);
    int n = r->n_entries;
    for (int i = 0; i < n; i++)
        if (!r->entries[i].present) {
            if (r->entries[i].n_slots)
                log_msg(LOG_INFO, "model %s is no longer in %s", r->entries[i].name, r->dir);
            drop_all(r, &r->entries[i]);
        }
    pthread_mutex_unlock(&r->lock);
    model_plan *plans = calloc((size_t)n + 1, sizeof *plans);
    int n_plans = 0;
    for (int i = 0; plans && i < n; i++) {
        model_entry *e = &r->entries[i]; /* only this thread changes present and unloaded */
        if (e->present && !e->unloaded)
            plan_model(r, e, false, &plans[n_plans++]);
    }
    char msg[1024];
    for (int i = 0; i < n_plans; i++) {
        msg[0] = '\0';
        if (!plans[i].config_failed)
            carry_out(r, &plans[i], msg, sizeof msg);
    }
    free(plans);
    pthread_mutex_lock(&r->lock);
    r->first_scan_done = true;
    pthread_mutex_unlock(&r->lock);
}

unsigned repo_load_model(model_repo *r, const char *name, char *msg, size_t msglen)
{
    char dir[1300];
    snprintf(dir, sizeof dir, "%s/%s", r->dir, name);
    pthread_mutex_lock(&r->lock);
    model_entry *e = holds_a_model(dir) ? entry_for(r, name) : repo_entry(r, name);
    bool there = e && holds_a_model(dir);
    if (e && !there) {
        e->present = false;
        drop_all(r, e);
    }
    if (there) {
        e->present = true;
        e->unloaded = false;
    }
    pthread_mutex_unlock(&r->lock);
    if (!there) {
        snprintf(msg, msglen, "no model '%s' in the repository %s%s", name, r->dir,
                 e || holds_a_model(dir) ? "" : " (or too many models)");
        return 400;
    }
    model_plan *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(msg, msglen, "out of memory");
        return 503;
    }
    plan_model(r, e, true, p);
    int failures = p->config_failed ? 0 : carry_out(r, p, msg, msglen);
    bool planned = p->n_load > 0;
    free(p);
    pthread_mutex_lock(&r->lock);
    if (e->error[0] && !failures)
        snprintf(msg, msglen, "model '%s': %s", name, e->error);
    else if (!failures && !planned)
        snprintf(msg, msglen, "model '%s': its version_policy serves none of its versions",
                 name);
    bool ok = !failures && !e->error[0] && planned;
    pthread_mutex_unlock(&r->lock);
    return ok ? 0 : 400;
}

unsigned repo_unload_model(model_repo *r, const char *name, char *msg, size_t msglen)
{
    pthread_mutex_lock(&r->lock);
    model_entry *e = repo_entry(r, name);
    if (e && e->present) {
        e->unloaded = true;
        drop_all(r, e);
    }
    pthread_mutex_unlock(&r->lock);
    if (!e || !e->present) {
        snprintf(msg, msglen, "unknown model '%s'", name);
        return 400;
    }
    log_msg(LOG_INFO, "model %s unloaded on request", name);
    return 0;
}
