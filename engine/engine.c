/* The engine's public API (engine.h): load = import + passes + the plan of
 * the largest batch + a backend; run = the plan of the batch (made once,
 * then cached) handed to the backend. */
#include "engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "graph.h"
#include "onnx_import.h"
#include "passes.h"
#include "plan.h"
#include "preproc.h"

#define ENGINE_MAX_BATCH 4096
#define ENGINE_MAX_INPUTS 64

struct engine {
    graph *g;
    const backend_ops *be;
    void *be_ctx;
    algo_cache algo_choices; /* measured convolution choices (engine_options.algo_cache) */
    int max_batch;
    bool dynamic_batch;
    plan **plans;      /* [max_batch + 1], made on first use */
    void **prepared;   /* backend state per plan */
    pthread_mutex_t lock;
    char note[256];
    /* CPU fallback for batches the primary backend fails, made on first need */
    const backend_ops *fb;
    void *fb_ctx;
    plan **fb_plans;   /* the host's own plans, when the primary's do not suit it */
    void **fb_prepared;
    long fallbacks;
    char fallback_why[256]; /* the device's error for the latest fallback */
    int inject_every;
    engine_status inject_status;
    long runs;
    const atomic_bool *cancel;
    int model_inputs;  /* the model's own inputs; the image entry comes after them */
    int image_input;   /* graph input index of the images as bytes, or -1 */
    size_t image_bytes;/* bytes of one image */
    bool started;      /* engine_start done: a backend holds the graph */
    /* engine_memory's snapshot of the backends' memory, refreshed under
     * lock whenever a plan is prepared: a metrics scrape must not wait for
     * a batch to finish */
    atomic_size_t mem_weights, mem_arena, mem_workspace;
    /* engine_options, kept from engine_open for engine_start */
    engine_options opt;
    char device[32], conv_algo[48], algo_cache_path[1024];
};

/* "cuda:1" -> name "cuda", index 1; "cpu" -> "cpu", 0. */
static engine_status parse_device(const char *dev, char *name, size_t n, int *index,
                                  engine_error *err)
{
    const char *colon = strchr(dev, ':');
    size_t len = colon ? (size_t)(colon - dev) : strlen(dev);
    *index = 0;
    if (len == 0 || len >= n)
        return engine_fail(err, ENGINE_E_ARG, "bad device '%s' (use auto, cpu, cuda or cuda:N)",
                           dev);
    memcpy(name, dev, len);
    name[len] = '\0';
    if (colon) {
        char *end;
        long idx = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || idx < 0 || idx > 1024)
            return engine_fail(err, ENGINE_E_ARG, "bad device '%s' (use %s or %s:N)", dev, name,
                               name);
        *index = (int)idx;
    }
    return ENGINE_OK;
}

/* Why backend `name` cannot be used here: its module did not load, or it
 * has no device. Fills why; false when it can be used. */
static bool unusable(const backend_ops *be, const char *name, char *why, size_t n)
{
    const char *problem = backend_module_problem(name);
    if (!be && problem)
        snprintf(why, n, "the %s backend module did not load (%s)", name, problem);
    else if (!be)
        snprintf(why, n, "this visiond has no %s backend (none built in, and no module "
                 "libvisiond_%s.so next to it)", name, name);
    else {
        char reason[200] = "";
        if (be->device_count(reason, sizeof reason) > 0)
            return false;
        snprintf(why, n, "no %s device is usable here (%s)", name, reason);
    }
    return true;
}

/* device "auto": the backend with the highest priority that has a device;
 * note says why a better one was passed over. */
static const backend_ops *pick_auto(char *note, size_t n)
{
    const backend_ops *best = NULL;
    for (int i = 0; i < backend_count(); i++) {
        const backend_ops *b = backend_at(i);
        char reason[200] = "";
        if ((!best || b->priority > best->priority) && b->device_count(reason, sizeof reason) > 0)
            best = b;
    }
    note[0] = '\0';
    for (int i = 0; i < backend_count(); i++) {
        const backend_ops *b = backend_at(i);
        char why[256];
        if (best && b->priority > best->priority && unusable(b, b->name, why, sizeof why)) {
            snprintf(note, n, "%s: running on the %s", why, best->name);
            return best;
        }
    }
    const char *why;
    const char *failed = backend_failed_module(0, &why);
    if (best && failed)
        snprintf(note, n, "the %s backend module did not load (%s): running on the %s", failed,
                 why, best->name);
    return best;
}

/* Makes `be` the engine's backend, configured from the engine's options. */
static engine_status create_backend(engine *e, const backend_ops *be, int device_index,
                                    engine_error *err)
{
    backend_config cfg = {.device_index = device_index,
                          .threads = e->opt.threads,
                          .cache = e->opt.algo_cache ? &e->algo_choices : NULL,
                          .workspace_limit = e->opt.workspace_limit};
    e->be = be;
    engine_status st = algo_policy_parse(e->opt.conv_algo, be->conv_algorithms, be->name,
                                         &cfg.policy, err);
    return st ? st : be->create(&cfg, &e->be_ctx, err);
}

static engine_status pick_backend(engine *e, engine_error *err)
{
    const char *dev = e->opt.device;
    if (strcmp(dev, "auto") == 0) {
        const backend_ops *best = pick_auto(e->note, sizeof e->note);
        return best ? create_backend(e, best, 0, err)
                    : engine_fail(err, ENGINE_E_ARG, "no backend has a usable device");
    }
    char name[32], why[512];
    int index;
    engine_status st = parse_device(dev, name, sizeof name, &index, err);
    if (st)
        return st;
    const backend_ops *be = backend_find(name);
    if (unusable(be, name, why, sizeof why))
        return engine_fail(err, ENGINE_E_ARG, "device '%s' asked for, but %s", dev, why);
    int devices = be->device_count(why, sizeof why);
    if (index >= devices)
        return engine_fail(err, ENGINE_E_ARG, "device '%s' asked for, but there are %d", dev,
                           devices);
    return create_backend(e, be, index, err);
}

static engine_status cancelled(const engine *e, engine_error *err)
{
    return e->cancel && atomic_load(e->cancel)
               ? engine_fail(err, ENGINE_E_ARG, "loading cancelled: the program is stopping")
               : ENGINE_OK;
}

/* A plan as backend `be` wants it: its room per value, its in-place
 * residuals. */
static engine_status plan_for(const backend_ops *be, void *ctx, const graph *g, int batch,
                              const plan *layout, plan **out, engine_error *err)
{
    unsigned caps = be->capabilities(ctx);
    unsigned flags = (caps & BACKEND_CAP_RESIDUAL_IN_PLACE ? PLAN_RESIDUAL_IN_PLACE : 0) |
                     (caps & BACKEND_CAP_CONCAT_IN_PLACE ? PLAN_CONCAT_IN_PLACE : 0);
    return plan_create_for(g, batch, layout, flags, be->value_room, out, err);
}

/* Caller holds e->lock (or is engine_load): the primary backend's memory,
 * plus the host fallback's once it exists. */
static void memory_refresh(engine *e)
{
    backend_memory total = {0}, m;
    if (e->be && e->be->memory) {
        e->be->memory(e->be_ctx, &m);
        total = m;
    }
    if (e->fb_ctx && e->fb->memory) {
        e->fb->memory(e->fb_ctx, &m);
        total.weights += m.weights, total.arena += m.arena, total.workspace += m.workspace;
    }
    atomic_store(&e->mem_weights, total.weights);
    atomic_store(&e->mem_arena, total.arena);
    atomic_store(&e->mem_workspace, total.workspace);
}

/* Caller holds e->lock (or is engine_load). */
static engine_status get_plan(engine *e, int batch, plan **out, void **prepared,
                              engine_error *err)
{
    if (batch < 1 || batch > e->max_batch)
        return engine_fail(err, ENGINE_E_ARG, "batch %d outside 1..%d", batch, e->max_batch);
    if (!e->dynamic_batch && batch != e->max_batch)
        return engine_fail(err, ENGINE_E_ARG,
                           "this model has a fixed batch of %d (its input declares it)",
                           e->max_batch);
    if (!e->plans[batch]) {
        engine_status cst = cancelled(e, err);
        if (cst)
            return cst;
        const plan *layout = batch == e->max_batch ? NULL : e->plans[e->max_batch];
        plan *p;
        engine_status st = plan_for(e->be, e->be_ctx, e->g, batch, layout, &p, err);
        if (st)
            return st;
        void *pr = NULL;
        if ((st = e->be->prepare(e->be_ctx, p, &pr, err))) {
            plan_free(p);
            return st;
        }
        e->plans[batch] = p;
        e->prepared[batch] = pr;
        memory_refresh(e);
    }
    *out = e->plans[batch];
    if (prepared)
        *prepared = e->prepared[batch];
    return ENGINE_OK;
}

/* Takes ownership of g. */
/* Keeps the options engine_start needs, strings copied. */
static void keep_options(engine *e, const engine_options *opt)
{
    if (opt)
        e->opt = *opt;
    snprintf(e->device, sizeof e->device, "%s", opt && opt->device ? opt->device : "auto");
    snprintf(e->conv_algo, sizeof e->conv_algo, "%s", opt && opt->conv_algo ? opt->conv_algo : "");
    snprintf(e->algo_cache_path, sizeof e->algo_cache_path, "%s",
             opt && opt->algo_cache ? opt->algo_cache : "");
    e->opt.device = e->device;
    e->opt.conv_algo = e->conv_algo[0] ? e->conv_algo : NULL;
    e->opt.algo_cache = e->algo_cache_path[0] ? e->algo_cache_path : NULL;
}

/* Takes ownership of g: passes, batch sizes; no backend yet. */
static engine_status engine_open_graph(graph *g, const char *path, const engine_options *opt,
                                       engine **out, engine_error *err)
{
    engine *e = calloc(1, sizeof *e);
    if (!e) {
        graph_free(g);
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    }
    pthread_mutex_init(&e->lock, NULL);
    e->g = g;
    e->cancel = opt ? opt->cancel : NULL;
    e->model_inputs = g->n_inputs;
    e->image_input = -1;
    keep_options(e, opt);
    engine_status st = cancelled(e, err);
    if (st)
        goto fail;
    if ((st = passes_run(e->g, NULL, err)))
        goto fail;
    {   /* shapes for the fusions that need them: a throw-away plan */
        const shape_t *s0 = &e->g->values[e->g->inputs[0]].shape;
        int probe_batch = s0->rank > 0 && s0->dim[0] > 0 ? (int)s0->dim[0] : 1;
        plan *probe;
        if ((st = plan_create(e->g, probe_batch, NULL, 0, &probe, err)))
            goto fail;
        st = passes_fuse_residuals(e->g, probe, NULL, err);
        plan_free(probe);
        if (st)
            goto fail;
    }
    int fixed = 0;
    for (int i = 0; i < e->g->n_inputs; i++) {
        const shape_t *s = &e->g->values[e->g->inputs[i]].shape;
        if (s->rank > 0 && s->dim[0] < 0)
            e->dynamic_batch = true;
        else if (i == 0)
            fixed = s->rank > 0 ? (int)s->dim[0] : 1;
    }
    int want = opt && opt->max_batch > 0 ? opt->max_batch : 1;
    if (want > ENGINE_MAX_BATCH) {
        st = engine_fail(err, ENGINE_E_ARG, "max batch %d (at most %d)", want, ENGINE_MAX_BATCH);
        goto fail;
    }
    e->max_batch = e->dynamic_batch ? want : (fixed > 0 ? fixed : 1);
    if (!e->dynamic_batch && e->max_batch > ENGINE_MAX_BATCH) {
        st = engine_fail(err, ENGINE_E_INVALID, "%s: fixed batch %d is too large", path,
                         e->max_batch);
        goto fail;
    }
    e->plans = calloc((size_t)e->max_batch + 1, sizeof *e->plans);
    e->prepared = calloc((size_t)e->max_batch + 1, sizeof *e->prepared);
    e->fb_prepared = calloc((size_t)e->max_batch + 1, sizeof *e->fb_prepared);
    e->fb_plans = calloc((size_t)e->max_batch + 1, sizeof *e->fb_plans);
    e->inject_every = opt && opt->inject_faults > 0 ? opt->inject_faults : 0;
    e->inject_status = opt && opt->inject_status ? opt->inject_status : ENGINE_E_BACKEND;
    if (!e->plans || !e->prepared || !e->fb_prepared || !e->fb_plans) {
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        goto fail;
    }
    *out = e;
    return ENGINE_OK;
fail:
    engine_free(e);
    return st;
}

/* The steps the chosen backend cannot run, named in `list`; 0 when it runs
 * them all. */
static int unsupported_steps(engine *e, char *list, size_t n, engine_error *err)
{
    list[0] = '\0';
    if (!e->be->supports_step)
        return 0;
    plan *p;
    if (plan_for(e->be, e->be_ctx, e->g, e->max_batch, NULL, &p, err))
        return -1;
    int count = 0;
    for (int i = 0; i < p->n_steps; i++) {
        char why[128] = "";
        if (e->be->supports_step(e->be_ctx, p, i, why, sizeof why))
            continue;
        const graph_node *node = &e->g->nodes[p->steps[i].node];
        size_t used = strlen(list);
        if (count < 4)
            snprintf(list + used, n - used, "%s'%s' (%s)", count ? ", " : "", node->name, why);
        else if (count == 4)
            snprintf(list + used, n - used, ", ...");
        count++;
    }
    plan_free(p);
    return count;
}

/* A model goes where every step can run: on the chosen backend, else (for
 * device "auto") on the host, with one note naming the steps that stopped
 * it; a device asked for by name fails naming them. */
static engine_status place(engine *e, engine_error *err)
{
    char list[400];
    int bad = unsupported_steps(e, list, sizeof list, err);
    if (bad < 0)
        return err->status ? err->status : ENGINE_E_NOMEM;
    if (bad == 0)
        return ENGINE_OK;
    if (strcmp(e->device, "auto") != 0)
        return engine_fail(err, ENGINE_E_UNSUPPORTED,
                           "device '%s' cannot run %d step%s of this model: %s", e->device, bad,
                           bad == 1 ? "" : "s", list);
    const backend_ops *host = backend_host();
    snprintf(e->note, sizeof e->note, "the %s backend cannot run %d step%s of this model (%s): "
             "running it on the %s", e->be->name, bad, bad == 1 ? "" : "s", list,
             host ? host->name : "host");
    e->be->destroy(e->be_ctx);
    e->be_ctx = NULL;
    return host ? create_backend(e, host, 0, err)
                : engine_fail(err, ENGINE_E_BACKEND, "no host backend");
}

engine_status engine_start(engine *e, engine_error *err)
{
    if (e->started)
        return ENGINE_OK;
    engine_status st;
    if (e->opt.algo_cache)
        algo_cache_open(&e->algo_choices, e->opt.algo_cache);
    if ((st = pick_backend(e, err)) || (st = place(e, err)) || (st = cancelled(e, err)))
        return st;
    if ((st = e->be->load_weights(e->be_ctx, e->g, err)))
        return st;
    plan *p;
    if ((st = get_plan(e, e->max_batch, &p, NULL, err)))
        return st;
    e->started = true;
    return ENGINE_OK;
}

engine_status engine_open(const char *path, const engine_options *opt, engine **out,
                          engine_error *err)
{
    *out = NULL;
    graph *g;
    engine_status st = onnx_import_file(path, &g, err);
    return st ? st : engine_open_graph(g, path, opt, out, err);
}

/* engine_open + engine_start. */
static engine_status opened_and_started(engine_status st, engine **out, engine_error *err)
{
    if (!st && (st = engine_start(*out, err))) {
        engine_free(*out);
        *out = NULL;
    }
    return st;
}

engine_status engine_load(const char *path, const engine_options *opt, engine **out,
                          engine_error *err)
{
    return opened_and_started(engine_open(path, opt, out, err), out, err);
}

engine_status engine_load_buffer(const void *data, size_t size, const char *label,
                                 const engine_options *opt, engine **out, engine_error *err)
{
    *out = NULL;
    graph *g;
    engine_status st = onnx_import_buffer(data, size, label, &g, err);
    if (!st)
        st = engine_open_graph(g, label, opt, out, err);
    return opened_and_started(st, out, err);
}

/* The image entry: images as bytes (batch x H x W x C) become graph input
 * `model_inputs`, and one NormalizeImage node in front of input 0 turns
 * them into what the model reads; every node that read input 0 reads the
 * node's output instead. Tensors still enter at input 0: the node then
 * passes them through. */
engine_status engine_set_image_input(engine *e, const struct preproc_params *norm,
                                     engine_error *err)
{
    graph *g = e->g;
    if (e->started || e->image_input >= 0)
        return engine_fail(err, ENGINE_E_ARG, "the image input is set once, before engine_start");
    int channels = preproc_channels(norm);
    const graph_value *x = &g->values[g->inputs[0]];
    if (e->model_inputs != 1 || x->shape.rank != 4 || x->dtype != DTYPE_FLOAT32 ||
        x->shape.dim[1] != channels || x->shape.dim[2] != norm->height ||
        x->shape.dim[3] != norm->width)
        return engine_fail(err, ENGINE_E_ARG,
                           "%dx%d images with %d channels do not match the model's input",
                           norm->width, norm->height, channels);
    if (g->n_inputs + 1 > ENGINE_MAX_INPUTS)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "more than %d inputs", ENGINE_MAX_INPUTS);
    int xv = g->inputs[0];
    int bytes = graph_add_value_unique(g, "image_bytes", err);
    int normalised = bytes < 0 ? -1 : graph_add_value_unique(g, "image_normalised", err);
    int *inputs = normalised < 0 ? NULL
                                 : realloc(g->inputs, sizeof *g->inputs * (size_t)(g->n_inputs + 1));
    if (!inputs)
        return normalised < 0 ? ENGINE_E_NOMEM : engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    g->inputs = inputs;
    graph_value *b = &g->values[bytes];
    b->dtype = DTYPE_UINT8;
    b->shape = (shape_t){4, {g->values[xv].shape.dim[0], norm->height, norm->width, channels}};
    graph_replace_uses(g, xv, normalised);
    graph_node *n = graph_add_node(g, OP_NORMALIZE_IMAGE, "image_entry", 2, 1, err);
    if (!n)
        return ENGINE_E_NOMEM;
    n->inputs[0] = xv;
    n->inputs[1] = bytes;
    n->outputs[0] = normalised;
    for (int c = 0; c < channels; c++) { /* (v * scale - mean) / std */
        n->p.norm.mul[c] = norm->scale / norm->std[c];
        n->p.norm.add[c] = -norm->mean[c] / norm->std[c];
    }
    n->p.norm.bgr = norm->color == PREPROC_BGR;
    g->values[normalised].producer = g->n_nodes - 1;
    e->image_input = g->n_inputs;
    g->inputs[g->n_inputs++] = bytes;
    e->image_bytes = (size_t)norm->width * (size_t)norm->height * (size_t)channels;
    return graph_sort(g, err);
}

void engine_free(engine *e)
{
    if (!e)
        return;
    if (e->plans) {
        for (int b = 0; b <= e->max_batch; b++) {
            if (e->prepared && e->prepared[b])
                e->be->release(e->be_ctx, e->prepared[b]);
            if (e->fb_prepared && e->fb_prepared[b])
                e->fb->release(e->fb_ctx, e->fb_prepared[b]);
            if (e->fb_plans)
                plan_free(e->fb_plans[b]);
            plan_free(e->plans[b]);
        }
    }
    if (e->be && e->be_ctx)
        e->be->destroy(e->be_ctx);
    if (e->fb_ctx)
        e->fb->destroy(e->fb_ctx);
    free(e->plans);
    free(e->prepared);
    free(e->fb_prepared);
    free(e->fb_plans);
    algo_cache_close(&e->algo_choices);
    graph_free(e->g);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

int engine_input_count(const engine *e)
{
    return e->model_inputs;
}

int engine_output_count(const engine *e)
{
    return e->g->n_outputs;
}

engine_status engine_input_info(const engine *e, int i, engine_tensor_info *info)
{
    if (i < 0 || i >= e->model_inputs)
        return ENGINE_E_ARG;
    const graph_value *v = &e->g->values[e->g->inputs[i]];
    info->name = v->name;
    info->dtype = v->dtype;
    info->rank = v->shape.rank;
    memcpy(info->dims, v->shape.dim, sizeof info->dims);
    return ENGINE_OK;
}

engine_status engine_output_info(engine *e, int i, int batch, engine_tensor_info *info,
                                 engine_error *err)
{
    if (i < 0 || i >= e->g->n_outputs)
        return engine_fail(err, ENGINE_E_ARG, "no output %d", i);
    pthread_mutex_lock(&e->lock);
    plan *p;
    engine_status st = get_plan(e, batch, &p, NULL, err);
    pthread_mutex_unlock(&e->lock);
    if (st)
        return st;
    const plan_value *pv = &p->values[e->g->outputs[i]];
    info->name = e->g->output_names[i];
    info->dtype = pv->dtype;
    info->rank = pv->shape.rank;
    memcpy(info->dims, pv->shape.dim, sizeof info->dims);
    return ENGINE_OK;
}

bool engine_batch_is_dynamic(const engine *e)
{
    return e->dynamic_batch;
}

int engine_max_batch(const engine *e)
{
    return e->max_batch;
}

engine_status engine_prepare(engine *e, int batch, engine_error *err)
{
    pthread_mutex_lock(&e->lock);
    plan *p;
    engine_status st = get_plan(e, batch, &p, NULL, err);
    pthread_mutex_unlock(&e->lock);
    return st;
}

/* Runs a batch the primary backend failed on the host backend instead,
 * creating that backend (and its plan and state for this batch) on first
 * need. The primary's plan serves when the host would plan it the same
 * way; else the host gets its own (a GPU's plan has no room for the CPU's
 * channel blocks). */
static engine_status run_fallback(engine *e, plan *p, const void *const *inputs,
                                  void *const *outputs, double *layer_ms, engine_error *err)
{
    engine_error fe = {0};
    engine_status st = ENGINE_OK;
    int b = p->batch;
    if (!e->fb_ctx) {
        backend_config cfg = {0};
        if (!(e->fb = backend_host()))
            st = engine_fail(&fe, ENGINE_E_BACKEND, "no host backend");
        else if ((st = e->fb->create(&cfg, &e->fb_ctx, &fe)) ||
                 (st = e->fb->load_weights(e->fb_ctx, e->g, &fe))) {
            if (e->fb_ctx)
                e->fb->destroy(e->fb_ctx);
            e->fb_ctx = NULL;
        }
    }
    const unsigned plan_caps = BACKEND_CAP_RESIDUAL_IN_PLACE | BACKEND_CAP_CONCAT_IN_PLACE;
    bool same_plan = !st && e->fb->value_room == e->be->value_room &&
                     (e->fb->capabilities(e->fb_ctx) & plan_caps) ==
                         (e->be->capabilities(e->be_ctx) & plan_caps);
    if (!st && !same_plan && !e->fb_plans[b])
        st = plan_for(e->fb, e->fb_ctx, e->g, b, NULL, &e->fb_plans[b], &fe);
    plan *fp = same_plan ? p : e->fb_plans[b];
    if (!st && !e->fb_prepared[b] &&
        !(st = e->fb->prepare(e->fb_ctx, fp, &e->fb_prepared[b], &fe)))
        memory_refresh(e); /* only when something was prepared: not per batch */
    if (!st)
        st = e->fb->run(e->fb_ctx, e->fb_prepared[b], fp, inputs, outputs, layer_ms, &fe);
    if (st)
        return engine_fail(err, st, "%s; the fallback on the host failed too: %s", err->message,
                           fe.message);
    snprintf(e->fallback_why, sizeof e->fallback_why, "%s", err->message);
    __atomic_add_fetch(&e->fallbacks, 1, __ATOMIC_RELAXED);
    return ENGINE_OK;
}

/* Caller holds e->lock. `inputs` holds one pointer per graph input, the
 * image entry's included (NULL where not given). */
static engine_status run_locked(engine *e, int batch, const void *const *inputs,
                                void *const *outputs, double *layer_ms, engine_error *err)
{
    plan *p;
    void *pr;
    engine_status st = get_plan(e, batch, &p, &pr, err);
    if (st)
        return st;
    bool inject = e->inject_every && ++e->runs % e->inject_every == 0;
    if (inject)
        st = engine_fail(err, e->inject_status, "injected %s (testing aid)",
                         e->inject_status == ENGINE_E_BACKEND ? "device fault"
                                                              : engine_status_name(e->inject_status));
    else
        st = e->be->run(e->be_ctx, pr, p, inputs, outputs, layer_ms, err);
    if (st != ENGINE_E_BACKEND || e->opt.strict_device)
        return st;
    return run_fallback(e, p, inputs, outputs, layer_ms, err);
}

/* The model's inputs, with the image entry (if any) not given. */
static engine_status run_tensors(engine *e, int batch, const float *const *inputs,
                                 void *const *outputs, double *layer_ms, engine_error *err)
{
    const void *all[ENGINE_MAX_INPUTS + 1] = {0};
    if (e->g->n_inputs > ENGINE_MAX_INPUTS)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "more than %d inputs", ENGINE_MAX_INPUTS);
    for (int i = 0; i < e->model_inputs; i++)
        all[i] = inputs[i];
    pthread_mutex_lock(&e->lock);
    engine_status st = run_locked(e, batch, all, outputs, layer_ms, err);
    pthread_mutex_unlock(&e->lock);
    return st;
}

engine_status engine_run_profiled(engine *e, int batch, const float *const *inputs,
                                  void *const *outputs, double *layer_ms, engine_error *err)
{
    return run_tensors(e, batch, inputs, outputs, layer_ms, err);
}

engine_status engine_run(engine *e, int batch, const float *const *inputs, void *const *outputs,
                         engine_error *err)
{
    return run_tensors(e, batch, inputs, outputs, NULL, err);
}

engine_status engine_run_images(engine *e, int batch, const uint8_t *images, void *const *outputs,
                                engine_error *err)
{
    if (e->image_input < 0)
        return engine_fail(err, ENGINE_E_ARG, "this engine has no image input "
                                              "(engine_set_image_input)");
    const void *all[ENGINE_MAX_INPUTS + 1] = {0};
    all[e->image_input] = images;
    pthread_mutex_lock(&e->lock);
    engine_status st = run_locked(e, batch, all, outputs, NULL, err);
    pthread_mutex_unlock(&e->lock);
    return st;
}

size_t engine_image_bytes(const engine *e)
{
    return e->image_input >= 0 ? e->image_bytes : 0;
}

void *engine_host_alloc(engine *e, size_t bytes)
{
    return e->be->host_alloc ? e->be->host_alloc(e->be_ctx, bytes) : tensor_alloc(bytes);
}

void engine_host_free(engine *e, void *p)
{
    if (e->be->host_alloc)
        e->be->host_free(e->be_ctx, p);
    else
        tensor_free(p);
}

long engine_input_copies(const engine *e)
{
    return e->be->input_copies ? e->be->input_copies(e->be_ctx) : 0;
}

long engine_fallback_info(engine *e, char *why, size_t n)
{
    pthread_mutex_lock(&e->lock);
    long count = e->fallbacks;
    snprintf(why, n, "%s", e->fallback_why);
    pthread_mutex_unlock(&e->lock);
    return count;
}

long engine_fallback_count(const engine *e)
{
    return __atomic_load_n(&e->fallbacks, __ATOMIC_RELAXED);
}

engine_status engine_layer_algos(engine *e, int batch, int layer, engine_algo_report *out,
                                 engine_error *err)
{
    pthread_mutex_lock(&e->lock);
    plan *p;
    void *pr;
    engine_status st = get_plan(e, batch, &p, &pr, err);
    if (!st && (layer < 0 || layer >= p->n_steps))
        st = engine_fail(err, ENGINE_E_ARG, "no layer %d", layer);
    memset(out, 0, sizeof *out);
    out->chosen = -1;
    if (!st && !(e->be->algo_report && e->be->algo_report(e->be_ctx, pr, p, layer, out)))
        st = ENGINE_E_ARG;
    pthread_mutex_unlock(&e->lock);
    return st;
}

int engine_layer_count(engine *e)
{
    return e->plans[e->max_batch]->n_steps;
}

static void describe_op(const graph_node *n, char *buf, size_t len)
{
    static const char *const act_names[] = {
        [ACT_NONE] = "", [ACT_RELU] = "Relu", [ACT_LEAKY_RELU] = "LeakyRelu",
        [ACT_CLIP] = "Clip", [ACT_SIGMOID] = "Sigmoid", [ACT_HARD_SIGMOID] = "HardSigmoid",
        [ACT_HARD_SWISH] = "HardSwish", [ACT_EXP] = "Exp", [ACT_ERF] = "Erf",
        [ACT_GELU] = "Gelu", [ACT_SQRT] = "Sqrt", [ACT_RECIPROCAL] = "Reciprocal",
        [ACT_NEG] = "Neg", [ACT_ABS] = "Abs", [ACT_TANH] = "Tanh", [ACT_SOFTPLUS] = "Softplus",
        [ACT_MISH] = "Mish", [ACT_LOG] = "Log", [ACT_SILU] = "SiLU"};
    _Static_assert(sizeof act_names / sizeof act_names[0] == ACT_SILU + 1,
                   "a name for every activation");
    bool fused = (n->op == OP_CONV || n->op == OP_GEMM) && n->act.kind != ACT_NONE;
    bool residual = n->op == OP_CONV && n->n_inputs > 3 && n->inputs[3] >= 0;
    snprintf(buf, len, "%s%s%s%s", op_name(n->op), residual ? "+Add" : "", fused ? "+" : "",
             fused ? act_names[n->act.kind] : "");
}

engine_status engine_layer_info(engine *e, int batch, int i, engine_layer_summary *info,
                                engine_error *err)
{
    pthread_mutex_lock(&e->lock);
    plan *p;
    engine_status st = get_plan(e, batch, &p, NULL, err);
    pthread_mutex_unlock(&e->lock);
    if (st)
        return st;
    if (i < 0 || i >= p->n_steps)
        return engine_fail(err, ENGINE_E_ARG, "no layer %d", i);
    const graph_node *n = &e->g->nodes[p->steps[i].node];
    info->name = n->name;
    describe_op(n, info->op_buf, sizeof info->op_buf);
    info->op = info->op_buf;
    info->output = p->values[n->outputs[0]].shape;
    info->flops = p->steps[i].flops;
    return ENGINE_OK;
}

int engine_operator_usage(engine *e, int batch, engine_op_usage *out, int max, engine_error *err)
{
    pthread_mutex_lock(&e->lock);
    plan *p;
    engine_status st = get_plan(e, batch, &p, NULL, err);
    pthread_mutex_unlock(&e->lock);
    if (st)
        return -1;
    int n = 0;
    for (int i = 0; i < p->n_steps; i++) {
        const char *op = op_name(e->g->nodes[p->steps[i].node].op);
        int k = 0;
        while (k < n && k < max && strcmp(out[k].op, op) != 0)
            k++;
        if (k == n) {
            if (n < max)
                out[n] = (engine_op_usage){.op = op, .backend = e->be->name};
            n++;
        }
        if (k < max) {
            out[k].steps++;
            out[k].flops += p->steps[i].flops;
        }
    }
    return n;
}

engine_status engine_model_info(engine *e, int batch, engine_model_summary *info, engine_error *err)
{
    pthread_mutex_lock(&e->lock);
    plan *p;
    engine_status st = get_plan(e, batch, &p, NULL, err);
    pthread_mutex_unlock(&e->lock);
    if (st)
        return st;
    info->parameters = e->g->n_params;
    info->flops = p->flops;
    info->peak_activation_bytes = p->arena_bytes;
    info->layers = p->n_steps;
    info->nodes_in_file = e->g->nodes_in_file;
    info->opset = (int)e->g->opset;
    return ENGINE_OK;
}

void engine_memory(engine *e, engine_memory_info *m)
{
    m->weights = (size_t)e->g->n_params * sizeof(float);
    m->backend_weights = atomic_load(&e->mem_weights);
    m->arena = atomic_load(&e->mem_arena);
    m->workspace = atomic_load(&e->mem_workspace);
    m->resident = m->weights + m->backend_weights + m->arena + m->workspace;
}

const char *engine_backend_name(const engine *e)
{
    return e->be->name;
}

const char *engine_backend_description(const engine *e)
{
    return e->be->describe(e->be_ctx);
}

const char *engine_backend_note(const engine *e)
{
    return e->note[0] ? e->note : NULL;
}
