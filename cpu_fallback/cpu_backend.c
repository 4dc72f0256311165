/* The CPU backend: the backend seam (engine/backend.h) over CBLAS and the
 * kernels in this folder.
 *
 * One context owns one activation arena, sized by the largest plan it was
 * prepared for, and one im2col workspace, sized by the largest convolution
 * of any prepared plan; both are allocated in prepare(), so run() allocates
 * nothing. A run walks the plan's steps in order.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engine/algo_cache.h"
#include "../engine/host_ops.h"
#include "../engine/preproc.h"
#include "cpu_kernels.h"
#include "cpu_layout.h"
#include "cpu_nchwc.h"

typedef struct {
    int threads;
    char description[256];
    algo_policy policy;  /* how convolution algorithms are chosen (algo_select.h) */
    algo_cache *cache;   /* the engine's, or NULL */
    char cpu_model[96];
    char device_key[128]; /* the algorithm cache's device part: CPU model, threads */
    char *arena;
    size_t arena_bytes;
    float *work;
    size_t work_floats;
    const graph *g;
    /* per node, made when an algorithm is first chosen or timed: */
    float **winograd_u;          /* NCHW Winograd's transformed filters */
    nchwc_weights **packed[3];   /* the blocked algorithms' packed weights */
    /* What prepared plans chose (plans live as long as the context): per
     * node, a bit per algorithm; and the largest workspace a chosen
     * algorithm needs. Timing packs weights and grows the workspace for
     * every candidate; what no plan chose is freed after each prepare
     * (resnet18 at batch 16 held 186 MB of packed weights, 69 MB chosen). */
    uint32_t *chosen;
    size_t work_needed;
} cpu_ctx;

typedef struct {
    int n_steps;
    cpu_conv_algo *algo;        /* per step; meaningful for Conv steps */
    engine_algo_report *report; /* per step: how the choice was made */
    bool *blocked;              /* per value: NCHW16c (cpu_layout.h) */
    /* per value: -1, or the Concat output its producing convolution writes
     * it into directly (at into_offset floats of each image), so the Concat
     * copies nothing for it */
    int *into;
    int64_t *into_offset;
} cpu_prepared;

/* Which of cpu_ctx.packed an algorithm uses, or -1. */
static int pack_slot(cpu_conv_algo a)
{
    switch (a) {
    case CPU_CONV_DIRECT_NCHWC: return 0;
    case CPU_CONV_WINOGRAD_NCHWC: return 1;
    case CPU_CONV_DEPTHWISE_NCHWC: return 2;
    default: return -1;
    }
}

static engine_status cpu_create(const backend_config *cfg, void **out, engine_error *err)
{
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    c->threads = cfg && cfg->threads > 0 ? cfg->threads : omp_get_num_procs();
    if (cfg) {
        c->policy = cfg->policy;
        c->cache = cfg->cache;
    }
    snprintf(c->cpu_model, sizeof c->cpu_model, "cpu");
    FILE *ci = fopen("/proc/cpuinfo", "r");
    if (ci) { /* the cache key names the CPU the timings were taken on */
        char line[256];
        while (fgets(line, sizeof line, ci))
            if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
                snprintf(c->cpu_model, sizeof c->cpu_model, "%s", strchr(line, ':') + 2);
                c->cpu_model[strcspn(c->cpu_model, "\n")] = 0;
                break;
            }
        fclose(ci);
    }
    snprintf(c->device_key, sizeof c->device_key, "cpu:%s|threads%d", c->cpu_model, c->threads);
    char blas[160];
    snprintf(c->description, sizeof c->description, "cpu: %s; convolutions: %s kernels; %d threads",
             cpu_blas_description(blas, sizeof blas), nchwc_isa_get()->name, c->threads);
    *out = c;
    return ENGINE_OK;
}

static void cpu_destroy(void *ctx)
{
    cpu_ctx *c = ctx;
    if (!c)
        return;
    for (int i = 0; c->winograd_u && i < c->g->n_nodes; i++)
        tensor_free(c->winograd_u[i]);
    free(c->winograd_u);
    for (int k = 0; k < 3; k++) {
        for (int i = 0; c->packed[k] && i < c->g->n_nodes; i++)
            nchwc_weights_free(c->packed[k][i]);
        free(c->packed[k]);
    }
    tensor_free(c->arena);
    tensor_free(c->work);
    free(c->chosen);
    free(c);
}

/* Bytes of NCHW Winograd's transformed filters: 36 points per filter pair. */
static size_t winograd_u_bytes(int64_t m, int64_t c)
{
    return sizeof(float) * 36 * (size_t)(m * c);
}

static void cpu_memory(void *ctx, backend_memory *out)
{
    cpu_ctx *c = ctx;
    *out = (backend_memory){.arena = c->arena ? c->arena_bytes : 0,
                            .workspace = c->work ? c->work_floats * sizeof(float) : 0};
    for (int i = 0; c->g && i < c->g->n_nodes; i++) {
        for (int k = 0; k < 3; k++)
            if (c->packed[k][i])
                out->weights += c->packed[k][i]->bytes;
        if (c->winograd_u[i]) { /* weights [m][c][3][3]: group 1 only */
            const shape_t *w = &c->g->values[c->g->nodes[i].inputs[1]].shape;
            out->weights += winograd_u_bytes(w->dim[0], w->dim[1]);
        }
    }
}

static const char *cpu_describe(void *ctx)
{
    return ((cpu_ctx *)ctx)->description;
}

/* A 4-D float activation may be kept in 16-channel blocks (cpu_layout.h):
 * room for its channels rounded up. */
static size_t cpu_value_room(const plan *p, int v)
{
    const plan_value *pv = &p->values[v];
    if (pv->dtype != DTYPE_FLOAT32 || pv->shape.rank != 4)
        return plan_value_bytes(p, v);
    shape_t s = pv->shape;
    s.dim[1] = (s.dim[1] + CPU_BLOCK - 1) / CPU_BLOCK * CPU_BLOCK;
    return (size_t)shape_numel(&s) * sizeof(float);
}

static unsigned cpu_capabilities(void *ctx)
{
    (void)ctx;
    /* see cpu_conv_run and plan_concat_in_place */
    return BACKEND_CAP_RESIDUAL_IN_PLACE | BACKEND_CAP_CONCAT_IN_PLACE;
}

static engine_status cpu_load_weights(void *ctx, const graph *g, engine_error *err)
{
    cpu_ctx *c = ctx; /* weights are used in place; Winograd filters come at prepare */
    c->g = g;
    c->winograd_u = calloc((size_t)g->n_nodes + 1, sizeof *c->winograd_u);
    c->chosen = calloc((size_t)g->n_nodes + 1, sizeof *c->chosen);
    for (int k = 0; k < 3; k++)
        c->packed[k] = calloc((size_t)g->n_nodes + 1, sizeof *c->packed[k]);
    if (!c->winograd_u || !c->chosen || !c->packed[0] || !c->packed[1] || !c->packed[2])
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    return ENGINE_OK;
}

static void conv_shape_of(const plan *p, const cpu_prepared *pr, const plan_step *st,
                          conv_shape *s)
{
    const graph_node *n = &p->g->nodes[st->node];
    conv_geometry g;
    conv_geometry_of(p, st, &g);
    *s = (conv_shape){
        .n = g.n, .c = g.c, .h = g.h, .w = g.w, .m = g.m, .oh = g.oh, .ow = g.ow, .kh = g.kh,
        .kw = g.kw, .sh = g.sh, .sw = g.sw, .dh = g.dh, .dw = g.dw, .ph = g.pt, .pw = g.pl,
        .group = g.group, .act = n->act,
        .x_blocked = pr->blocked[n->inputs[0]], .y_blocked = pr->blocked[n->outputs[0]],
    };
    if (n->n_inputs > 3 && n->inputs[3] >= 0) {
        const plan_value *res = &p->values[n->inputs[3]], *out = &p->values[n->outputs[0]];
        s->y_holds_residual = res->storage == STORE_ARENA && out->storage == STORE_ARENA &&
                              res->offset == out->offset;
    }
}

static void convt_shape_of(const plan *p, const plan_step *st, conv_transpose_shape *s)
{
    const graph_node *n = &p->g->nodes[st->node];
    const shape_t *x = &p->values[n->inputs[0]].shape, *w = &p->values[n->inputs[1]].shape;
    const shape_t *y = &p->values[n->outputs[0]].shape;
    bool one_d = x->rank == 3;
    const window_params *win = &n->p.convt.win;
    *s = (conv_transpose_shape){
        .n = x->dim[0], .c = x->dim[1], .h = one_d ? 1 : x->dim[2], .w = x->dim[x->rank - 1],
        .m = y->dim[1], .oh = one_d ? 1 : y->dim[2], .ow = y->dim[y->rank - 1],
        .kh = one_d ? 1 : w->dim[2], .kw = w->dim[w->rank - 1],
        .sh = win->stride[0], .sw = win->stride[1], .dh = win->dilation[0], .dw = win->dilation[1],
        .ph = st->r.win.pad_begin[0], .pw = st->r.win.pad_begin[1], .group = win->group,
    };
}

static engine_status grow_work(cpu_ctx *c, size_t floats, engine_error *err)
{
    if (floats <= c->work_floats && c->work)
        return ENGINE_OK;
    float *w = tensor_alloc(floats * sizeof(float));
    if (!w)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory for a %zu-byte workspace",
                           floats * sizeof(float));
    tensor_free(c->work);
    c->work = w;
    c->work_floats = floats;
    return ENGINE_OK;
}

/* The Winograd filters of a Conv node, transformed once for every plan. */
static engine_status winograd_filters(cpu_ctx *c, const plan *p, const plan_step *st,
                                      const conv_shape *s, engine_error *err)
{
    if (c->winograd_u[st->node])
        return ENGINE_OK;
    const graph_node *n = &p->g->nodes[st->node];
    float *u = tensor_alloc(winograd_u_bytes(s->m, s->c));
    if (!u)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory for Winograd filters");
    cpu_winograd_filters(p->values[n->inputs[1]].data, s->m, s->c, u);
    c->winograd_u[st->node] = u;
    return ENGINE_OK;
}

/* The packed weights a blocked algorithm needs, made once per node. */
static engine_status pack_weights(cpu_ctx *c, const plan *p, const plan_step *st,
                                  const conv_shape *s, cpu_conv_algo a, engine_error *err)
{
    int slot = pack_slot(a);
    if (slot < 0 || c->packed[slot][st->node])
        return ENGINE_OK;
    const graph_node *n = &p->g->nodes[st->node];
    const float *w = p->values[n->inputs[1]].data;
    const float *bias = n->n_inputs > 2 && n->inputs[2] >= 0 ? p->values[n->inputs[2]].data : NULL;
    nchwc_weights *pw = a == CPU_CONV_DIRECT_NCHWC ? nchwc_pack_for(s, w, bias)
                        : a == CPU_CONV_WINOGRAD_NCHWC ? nchwc_winograd_pack(w, bias, s->m, s->c)
                        : nchwc_depthwise_pack(w, bias, s->c, s->kh * s->kw);
    if (!pw)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory packing the weights of '%s'",
                           n->name);
    c->packed[slot][st->node] = pw;
    return ENGINE_OK;
}

static void *value_ptr(const cpu_ctx *c, const plan *p, int v, const void *const *inputs);

static void conv_buffers_of(const cpu_ctx *c, const plan *p, const plan_step *st,
                            cpu_conv_algo a, const void *const *inputs, conv_buffers *b)
{
    const graph_node *n = &p->g->nodes[st->node];
    int slot = pack_slot(a);
    *b = (conv_buffers){
        .x = value_ptr(c, p, n->inputs[0], inputs), .weights = value_ptr(c, p, n->inputs[1], inputs),
        .bias = n->n_inputs > 2 ? value_ptr(c, p, n->inputs[2], inputs) : NULL,
        .y = value_ptr(c, p, n->outputs[0], inputs), .work = c->work,
        .winograd_u = c->winograd_u[st->node],
        .residual = n->n_inputs > 3 ? value_ptr(c, p, n->inputs[3], inputs) : NULL,
        .packed = slot >= 0 ? c->packed[slot][st->node] : NULL,
    };
}

static double now_ms(void);

/* Times one algorithm on a layer: the median of three runs after one. The
 * arena stands in for the activations (their values do not change the time;
 * graph inputs are read from a zeroed stand-in). */
static engine_status time_algo(cpu_ctx *c, const plan *p, const plan_step *st,
                               const conv_shape *s, cpu_conv_algo a, double *ms,
                               engine_error *err)
{
    engine_status rc;
    if ((rc = grow_work(c, cpu_conv_workspace(a, s, c->threads), err)))
        return rc;
    if (a == CPU_CONV_WINOGRAD && (rc = winograd_filters(c, p, st, s, err)))
        return rc;
    if ((rc = pack_weights(c, p, st, s, a, err)))
        return rc;
    conv_buffers b;
    conv_buffers_of(c, p, st, a, NULL, &b);
    const graph_node *n = &p->g->nodes[st->node];
    float *stand_in = NULL;
    if (p->values[n->inputs[0]].storage == STORE_INPUT) {
        stand_in = calloc((size_t)nchwc_floats(s->n, s->c, s->h * s->w) + 1, sizeof(float));
        if (!stand_in)
            return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        b.x = stand_in;
    }
    double t[3];
    omp_set_num_threads(c->threads);
    for (int i = 0; i < 4; i++) {
        double t0 = now_ms();
        cpu_conv_run(a, s, &b);
        if (i)
            t[i - 1] = now_ms() - t0;
    }
    free(stand_in);
    double lo = fmin(t[0], fmin(t[1], t[2])), hi = fmax(t[0], fmax(t[1], t[2]));
    *ms = t[0] + t[1] + t[2] - lo - hi;
    return ENGINE_OK;
}

/* time_all for algo_select: every candidate that can run, on this layer. */
typedef struct {
    cpu_ctx *c;
    const plan *p;
    const plan_step *st;
    const conv_shape *s;
} cpu_timing;

static engine_status time_candidates(void *user, algo_candidate *cand, int n, engine_error *err)
{
    cpu_timing *t = user;
    for (int i = 0; i < n; i++) {
        if (!cand[i].can_run)
            continue;
        engine_status rc = time_algo(t->c, t->p, t->st, t->s,
                                     (cpu_conv_algo)cpu_conv_algo_by_name(cand[i].name),
                                     &cand[i].ms, err);
        if (rc)
            return rc;
    }
    return ENGINE_OK;
}

/* The layer's candidates for algo_select: the ranking rule's pick first,
 * then the others in their order; the engine's policy chooses. */
static engine_status choose_algo(cpu_ctx *c, cpu_prepared *pr, const plan *p, int i,
                                 engine_error *err)
{
    const plan_step *st = &p->steps[i];
    conv_shape s;
    conv_shape_of(p, pr, st, &s);
    cpu_timing timing = {c, p, st, &s};
    algo_layer layer = {.auto_times = false, .time_all = time_candidates, .user = &timing};
    cpu_conv_algo rule = cpu_conv_choose(&s);
    for (int k = -1; k < CPU_CONV_ALGO_COUNT; k++) {
        cpu_conv_algo a = k < 0 ? rule : (cpu_conv_algo)k;
        if (k >= 0 && a == rule)
            continue;
        bool ok = cpu_conv_supports(a, &s);
        algo_layer_add(&layer, cpu_conv_algo_name(a),
                       cpu_conv_workspace(a, &s, c->threads) * sizeof(float), ok,
                       !ok ? "not applicable" : "ok");
    }
    char key[320];
    conv_geometry g;
    conv_geometry_of(p, st, &g);
    algo_key(key, sizeof key, c->device_key, &g,
             s.x_blocked ? (s.y_blocked ? "nchw16c>nchw16c" : "nchw16c>nchw")
                         : (s.y_blocked ? "nchw>nchw16c" : "nchw>nchw"));
    int pick;
    engine_status rc = algo_select(&c->policy, c->cache, key, &layer, &pr->report[i], &pick, err);
    if (rc)
        return rc;
    cpu_conv_algo chosen = (cpu_conv_algo)cpu_conv_algo_by_name(layer.cand[pick].name);
    pr->algo[i] = chosen;
    rc = grow_work(c, cpu_conv_workspace(chosen, &s, c->threads), err);
    if (!rc && chosen == CPU_CONV_WINOGRAD)
        rc = winograd_filters(c, p, st, &s, err);
    if (!rc)
        rc = pack_weights(c, p, st, &s, chosen, err);
    return rc;
}

/* Blocked convolutions whose output only feeds a channel Concat (the plan
 * keeps the Concat's buffer live for them, plan.h) write into their slice
 * of it; SqueezeNet's and GoogLeNet's Concats then copy nothing. */
static void plan_concat_in_place(const plan *p, cpu_prepared *pr)
{
    const graph *g = p->g;
    for (int v = 0; v < g->n_values; v++)
        pr->into[v] = -1;
    for (int i = 0; i < p->n_steps; i++) {
        const graph_node *n = &g->nodes[p->steps[i].node];
        int v = n->outputs[0], y = v >= 0 ? p->values[v].concat_into : -1;
        cpu_conv_algo a = pr->algo[i];
        if (n->op != OP_CONV || y < 0 || !pr->blocked[v] || !pr->blocked[y] ||
            n->n_inputs > 3 ||
            (a != CPU_CONV_DIRECT_NCHWC && a != CPU_CONV_WINOGRAD_NCHWC &&
             a != CPU_CONV_DEPTHWISE_NCHWC))
            continue;
        const graph_node *cat = &g->nodes[g->values[y].producer];
        const shape_t *ys = &p->values[y].shape;
        int64_t before = 0;
        for (int k = 0; k < cat->n_inputs && cat->inputs[k] != v; k++)
            before += p->values[cat->inputs[k]].shape.dim[1];
        pr->into[v] = y;
        pr->into_offset[v] = before * ys->dim[2] * ys->dim[3];
    }
}

static void cpu_release(void *ctx, void *prepared)
{
    (void)ctx;
    cpu_prepared *pr = prepared;
    if (pr) {
        free(pr->algo);
        free(pr->report);
        free(pr->blocked);
        free(pr->into);
        free(pr->into_offset);
    }
    free(pr);
}

/* Records what plan p chose, then frees the transformed and packed
 * weights no prepared plan uses and shrinks the workspace to what the
 * chosen algorithms need. */
static void keep_only_chosen(cpu_ctx *c, const plan *p, const cpu_prepared *pr)
{
    for (int i = 0; i < p->n_steps; i++) {
        const plan_step *st = &p->steps[i];
        int op = p->g->nodes[st->node].op;
        if (op == OP_CONV_TRANSPOSE) {
            conv_transpose_shape ts;
            convt_shape_of(p, st, &ts);
            size_t need = cpu_conv_transpose_workspace(&ts);
            c->work_needed = need > c->work_needed ? need : c->work_needed;
        }
        if (op != OP_CONV)
            continue;
        conv_shape s;
        conv_shape_of(p, pr, st, &s);
        size_t need = cpu_conv_workspace(pr->algo[i], &s, c->threads);
        c->work_needed = need > c->work_needed ? need : c->work_needed;
        c->chosen[st->node] |= 1u << pr->algo[i];
    }
    for (int n = 0; n < c->g->n_nodes; n++) {
        if (c->winograd_u[n] && !(c->chosen[n] & 1u << CPU_CONV_WINOGRAD)) {
            tensor_free(c->winograd_u[n]);
            c->winograd_u[n] = NULL;
        }
        for (cpu_conv_algo a = 0; a < CPU_CONV_ALGO_COUNT; a++) {
            int slot = pack_slot(a);
            if (slot >= 0 && c->packed[slot][n] && !(c->chosen[n] & 1u << a)) {
                nchwc_weights_free(c->packed[slot][n]);
                c->packed[slot][n] = NULL;
            }
        }
    }
    if (c->work && c->work_floats > c->work_needed) {
        float *w = tensor_alloc((c->work_needed ? c->work_needed : 1) * sizeof(float));
        if (w) { /* else keep the larger one */
            tensor_free(c->work);
            c->work = w;
            c->work_floats = c->work_needed;
        }
    }
}

static engine_status cpu_prepare(void *ctx, const plan *p, void **out, engine_error *err)
{
    cpu_ctx *c = ctx;
    cpu_prepared *pr = calloc(1, sizeof *pr);
    if (!pr || !(pr->algo = calloc((size_t)p->n_steps + 1, sizeof *pr->algo)) ||
        !(pr->report = calloc((size_t)p->n_steps + 1, sizeof *pr->report)) ||
        !(pr->blocked = calloc((size_t)p->g->n_values + 1, sizeof *pr->blocked)) ||
        !(pr->into = calloc((size_t)p->g->n_values + 1, sizeof *pr->into)) ||
        !(pr->into_offset = calloc((size_t)p->g->n_values + 1, sizeof *pr->into_offset)) ||
        !cpu_layout_decide(p, pr->blocked)) {
        cpu_release(c, pr);
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    }
    pr->n_steps = p->n_steps;
    /* the arena first: timing runs layers in it */
    if (!c->arena || p->arena_bytes > c->arena_bytes) {
        char *a = tensor_alloc(p->arena_bytes); /* never NULL for 0 bytes */
        if (!a) {
            cpu_release(c, pr);
            return engine_fail(err, ENGINE_E_NOMEM, "out of memory preparing batch %d (%zu bytes)",
                               p->batch, p->arena_bytes);
        }
        tensor_free(c->arena);
        c->arena = a;
        c->arena_bytes = p->arena_bytes;
    }
    for (int i = 0; i < p->n_steps; i++) {
        if (p->g->nodes[p->steps[i].node].op == OP_CONV_TRANSPOSE) {
            conv_transpose_shape ts;
            convt_shape_of(p, &p->steps[i], &ts);
            engine_status st = grow_work(c, cpu_conv_transpose_workspace(&ts), err);
            if (st) {
                cpu_release(c, pr);
                return st;
            }
        }
        if (p->g->nodes[p->steps[i].node].op != OP_CONV)
            continue;
        engine_status st = choose_algo(c, pr, p, i, err);
        if (st) {
            cpu_release(c, pr);
            return st;
        }
    }
    plan_concat_in_place(p, pr);
    keep_only_chosen(c, p, pr);
    *out = pr;
    return ENGINE_OK;
}

static void *value_ptr(const cpu_ctx *c, const plan *p, int v, const void *const *inputs)
{
    if (v < 0)
        return NULL;
    const plan_value *pv = &p->values[v];
    switch (pv->storage) {
    case STORE_INPUT: return inputs ? (void *)inputs[pv->input_index] : NULL;
    case STORE_CONST: return (void *)pv->data;
    case STORE_ARENA: return c->arena + pv->offset;
    default: return NULL;
    }
}

#define IN(k) ((const float *)value_ptr(c, p, n->inputs[k], inputs))
#define OUT(k) ((float *)value_ptr(c, p, n->outputs[k], inputs))
#define SHAPE(v) (&p->values[v].shape)

static int64_t prod(const shape_t *s, int from, int to)
{
    int64_t r = 1;
    for (int i = from; i < to; i++)
        r *= s->dim[i];
    return r;
}

/* The operators host_ops.c implements once for folding and for here. */
static engine_status run_host_op(const cpu_ctx *c, const plan *p, const graph_node *n,
                                 const step_params *r, const void *const *inputs,
                                 engine_error *err)
{
    tensor_desc in[8] = {{0}}, out[4] = {{0}};
    if (n->n_inputs > 8 || n->n_outputs > 4)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "%s with %d inputs", op_name(n->op),
                           n->n_inputs);
    for (int k = 0; k < n->n_inputs; k++)
        if (n->inputs[k] >= 0)
            in[k] = (tensor_desc){p->values[n->inputs[k]].dtype, p->values[n->inputs[k]].shape,
                                  value_ptr(c, p, n->inputs[k], inputs)};
    for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] >= 0 && p->values[n->outputs[k]].storage != STORE_NONE)
            out[k] = (tensor_desc){p->values[n->outputs[k]].dtype, p->values[n->outputs[k]].shape,
                                   value_ptr(c, p, n->outputs[k], inputs)};
    return host_op_run(n, in, out, r, err);
}

static engine_status run_step(const cpu_ctx *c, const cpu_prepared *pr, const plan *p, int i,
                              const void *const *inputs, engine_error *err)
{
    const plan_step *st = &p->steps[i];
    const graph_node *n = &p->g->nodes[st->node];
    const shape_t *xs = SHAPE(n->inputs[0]);
    bool blocked = n->n_outputs > 0 && n->outputs[0] >= 0 && pr->blocked[n->outputs[0]];
    /* data movement may carry int64 (indices) as well as floats */
    size_t elem = n->n_outputs > 0 && n->outputs[0] >= 0
                      ? dtype_size(p->values[n->outputs[0]].dtype) : sizeof(float);
    switch (n->op) {
    case OP_CONV: {
        conv_shape s;
        conv_shape_of(p, pr, st, &s);
        conv_buffers b;
        conv_buffers_of(c, p, st, pr->algo[i], inputs, &b);
        int into = pr->into[n->outputs[0]];
        if (into >= 0) {
            const shape_t *ys = SHAPE(into);
            b.y = (float *)value_ptr(c, p, into, inputs) + pr->into_offset[n->outputs[0]];
            b.y_image_stride = nchwc_floats(1, ys->dim[1], ys->dim[2] * ys->dim[3]);
        }
        cpu_conv_run(pr->algo[i], &s, &b);
        break;
    }
    case OP_GEMM: {
        bool has_c = n->n_inputs > 2 && n->inputs[2] >= 0;
        cpu_gemm(IN(0), xs, IN(1), SHAPE(n->inputs[1]), has_c ? IN(2) : NULL,
                 has_c ? SHAPE(n->inputs[2]) : NULL, OUT(0), &n->p.gemm, &n->act);
        break;
    }
    case OP_MATMUL:
        cpu_matmul(IN(0), xs, IN(1), SHAPE(n->inputs[1]), OUT(0), SHAPE(n->outputs[0]));
        break;
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV:
        if (p->values[n->outputs[0]].dtype == DTYPE_INT64) { /* index arithmetic */
            nd_binary_i64(n->op, (int64_t *)OUT(0), SHAPE(n->outputs[0]), (const int64_t *)IN(0), xs,
                          (const int64_t *)IN(1), SHAPE(n->inputs[1]));
            break;
        }
        int full, chan;
        if (blocked && !shape_equal(SHAPE(n->inputs[0]), SHAPE(n->inputs[1])) &&
            cpu_layout_channel_operand(n, p, &full, &chan)) {
            const shape_t *fs = SHAPE(full);
            nchwc_channel_binary(value_ptr(c, p, full, inputs), OUT(0),
                                 value_ptr(c, p, chan, inputs), SHAPE(chan)->dim[0] > 1,
                                 chan == n->inputs[0], n->op, fs->dim[0], fs->dim[1],
                                 fs->dim[2] * fs->dim[3]);
            break;
        }
        if (blocked) { /* same shapes: element-wise over the blocked buffers */
            shape_t flat = {1, {nchwc_floats(xs->dim[0], xs->dim[1], xs->dim[2] * xs->dim[3])}};
            cpu_binary(n->op, IN(0), &flat, IN(1), &flat, OUT(0), &flat);
            break;
        }
        cpu_binary(n->op, IN(0), xs, IN(1), SHAPE(n->inputs[1]), OUT(0), SHAPE(n->outputs[0]));
        break;
    case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID: case OP_HARD_SIGMOID:
    case OP_HARD_SWISH: case OP_EXP: case OP_ERF: case OP_GELU: case OP_SQRT: case OP_RECIPROCAL:
    case OP_NEG: case OP_ABS: case OP_TANH: case OP_SOFTPLUS: case OP_MISH: case OP_LOG:
    case OP_SILU:
        cpu_activation(IN(0), OUT(0),
                       blocked ? nchwc_floats(xs->dim[0], xs->dim[1], xs->dim[2] * xs->dim[3])
                               : shape_numel(xs),
                       &n->act);
        break;
    case OP_MAXPOOL: case OP_AVGPOOL: {
        const shape_t *ys = SHAPE(n->outputs[0]);
        bool one_d = xs->rank == 3;
        pool_shape s = {
            .nc = xs->dim[0] * xs->dim[1], .h = one_d ? 1 : xs->dim[2], .w = xs->dim[xs->rank - 1],
            .oh = one_d ? 1 : ys->dim[2], .ow = ys->dim[ys->rank - 1],
            .kh = n->p.win.kernel[0], .kw = n->p.win.kernel[1],
            .sh = n->p.win.stride[0], .sw = n->p.win.stride[1],
            .dh = n->p.win.dilation[0], .dw = n->p.win.dilation[1],
            .ph = st->r.win.pad_begin[0], .pw = st->r.win.pad_begin[1],
            .pe_h = st->r.win.pad_end[0], .pe_w = st->r.win.pad_end[1],
            .count_include_pad = n->p.win.count_include_pad,
        };
        if (blocked)
            nchwc_pool(IN(0), OUT(0), xs->dim[0], xs->dim[1], &s, n->op == OP_MAXPOOL);
        else if (n->op == OP_MAXPOOL)
            cpu_maxpool(IN(0), OUT(0), &s);
        else
            cpu_avgpool(IN(0), OUT(0), &s);
        break;
    }
    case OP_GLOBAL_AVGPOOL: case OP_GLOBAL_MAXPOOL:
        if (pr->blocked[n->inputs[0]]) {
            nchwc_global_pool(IN(0), OUT(0), xs->dim[0], xs->dim[1], prod(xs, 2, xs->rank),
                              n->op == OP_GLOBAL_MAXPOOL);
            break;
        }
        cpu_global_pool(IN(0), OUT(0), xs->dim[0] * xs->dim[1], prod(xs, 2, xs->rank),
                        n->op == OP_GLOBAL_MAXPOOL);
        break;
    case OP_BATCHNORM:
        if (blocked) {
            nchwc_channel_affine(IN(0), OUT(0), IN(1), IN(2), xs->dim[0], xs->dim[1],
                                 prod(xs, 2, xs->rank));
            break;
        }
        cpu_channel_affine(IN(0), OUT(0), IN(1), IN(2), xs->dim[0], xs->dim[1],
                           prod(xs, 2, xs->rank));
        break;
    case OP_LRN:
        cpu_lrn(IN(0), OUT(0), xs->dim[0], xs->dim[1], prod(xs, 2, xs->rank), &n->p.lrn);
        break;
    case OP_SOFTMAX: {
        int a = st->r.axis;
        if (n->p.softmax.legacy_2d)
            cpu_softmax(IN(0), OUT(0), prod(xs, 0, a), prod(xs, a, xs->rank), 1);
        else
            cpu_softmax(IN(0), OUT(0), prod(xs, 0, a), xs->dim[a], prod(xs, a + 1, xs->rank));
        break;
    }
    case OP_CONCAT: {
        const void *srcs[256];
        const shape_t *shapes[256];
        if (n->n_inputs > 256)
            return engine_fail(err, ENGINE_E_UNSUPPORTED, "Concat of %d inputs", n->n_inputs);
        for (int k = 0; k < n->n_inputs; k++) {
            srcs[k] = IN(k);
            shapes[k] = SHAPE(n->inputs[k]);
        }
        if (blocked) {
            int64_t channels[256];
            for (int k = 0; k < n->n_inputs; k++) {
                channels[k] = shapes[k]->dim[1];
                if (pr->into[n->inputs[k]] == n->outputs[0])
                    srcs[k] = NULL; /* already written in place */
            }
            nchwc_concat(OUT(0), (const float *const *)srcs, channels, n->n_inputs, xs->dim[0],
                         xs->dim[2] * xs->dim[3]);
            break;
        }
        nd_concat(OUT(0), srcs, shapes, n->n_inputs, st->r.axis, elem);
        break;
    }
    case OP_SPLIT: {
        void *dsts[256];
        const shape_t *shapes[256];
        if (n->n_outputs > 256)
            return engine_fail(err, ENGINE_E_UNSUPPORTED, "Split into %d", n->n_outputs);
        for (int k = 0; k < n->n_outputs; k++) { /* the importer refuses unnamed outputs */
            dsts[k] = OUT(k);
            shapes[k] = SHAPE(n->outputs[k]);
        }
        nd_split(dsts, shapes, n->n_outputs, IN(0), st->r.axis, elem);
        break;
    }
    case OP_SLICE:
        nd_slice(OUT(0), IN(0), xs, SHAPE(n->outputs[0]), st->r.slice.start, st->r.slice.step,
                 elem);
        break;
    case OP_TRANSPOSE:
        nd_transpose(OUT(0), IN(0), xs, st->r.transpose.perm, elem);
        break;
    case OP_PAD:
        nd_pad(OUT(0), IN(0), xs, SHAPE(n->outputs[0]), st->r.pad.begin, n->p.pad,
               &st->r.pad.value, sizeof(float));
        break;
    case OP_GATHER: {
        const shape_t *is = SHAPE(n->inputs[1]);
        const int64_t *idx = (const int64_t *)IN(1);
        int64_t d = xs->dim[st->r.axis];
        for (int64_t k = 0; p->values[n->inputs[1]].storage != STORE_CONST && k < shape_numel(is);
             k++)
            if (idx[k] < -d || idx[k] >= d)
                return engine_fail(err, ENGINE_E_INVALID, "Gather index %lld out of range for "
                                   "an axis of %lld (node '%s')", (long long)idx[k],
                                   (long long)d, n->name);
        nd_gather(OUT(0), IN(0), xs, st->r.axis, idx, shape_numel(is), elem);
        break;
    }
    case OP_REDUCE_MEAN:
        cpu_reduce_mean(IN(0), xs, OUT(0), st->r.reduce.axes_mask);
        break;
    case OP_LAYER_NORM: {
        int a = st->r.axis;
        bool has_b = n->n_inputs > 2 && n->inputs[2] >= 0;
        cpu_layer_norm(IN(0), OUT(0), prod(xs, 0, a), prod(xs, a, xs->rank), IN(1),
                       shape_numel(SHAPE(n->inputs[1])), has_b ? IN(2) : NULL,
                       has_b ? shape_numel(SHAPE(n->inputs[2])) : 0, n->p.layer_norm.epsilon,
                       n->n_outputs > 1 ? OUT(1) : NULL, n->n_outputs > 2 ? OUT(2) : NULL);
        break;
    }
    case OP_INSTANCE_NORM:
        cpu_instance_norm(IN(0), OUT(0), xs->dim[0], xs->dim[1], prod(xs, 2, xs->rank), IN(1),
                          IN(2), n->p.epsilon);
        break;
    case OP_RESIZE: {
        const shape_t *ys = SHAPE(n->outputs[0]);
        int r = xs->rank;
        if (!cpu_resize(IN(0), OUT(0), prod(xs, 0, r - 2), xs->dim[r - 2], xs->dim[r - 1],
                        ys->dim[r - 2], ys->dim[r - 1], st->r.resize.scale, &n->p.resize))
            return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
        break;
    }
    case OP_CONV_TRANSPOSE: {
        conv_transpose_shape ts;
        convt_shape_of(p, st, &ts);
        bool has_b = n->n_inputs > 2 && n->inputs[2] >= 0;
        cpu_conv_transpose(&ts, IN(0), IN(1), has_b ? IN(2) : NULL, OUT(0), c->work);
        break;
    }
    case OP_NORMALIZE_IMAGE: { /* images as bytes, or the model's input as it is */
        const uint8_t *bytes = value_ptr(c, p, n->inputs[1], inputs);
        if (!bytes) {
            memcpy(OUT(0), IN(0), (size_t)shape_numel(xs) * sizeof(float));
            break;
        }
        int64_t images = xs->dim[0], ch = xs->dim[1];
        size_t plane = (size_t)(xs->dim[2] * xs->dim[3]);
        float *y = OUT(0);
#pragma omp parallel for collapse(2) schedule(static) if (images * ch * (int64_t)plane > 65536)
        for (int64_t b = 0; b < images; b++)
            for (int64_t k = 0; k < ch; k++)
                preproc_normalize_channel(bytes + (size_t)b * plane * (size_t)ch, plane, (int)ch,
                                          (int)k, n->p.norm.mul, n->p.norm.add, n->p.norm.bgr,
                                          y + (size_t)b * plane * (size_t)ch);
        break;
    }
    default:
        if (host_op_supported(n->op))
            return run_host_op(c, p, n, &st->r, inputs, err);
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "the CPU backend cannot run %s (node '%s')",
                           op_name(n->op), n->name);
    }
    return ENGINE_OK;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static engine_status cpu_run(void *ctx, void *prepared, const plan *p, const void *const *inputs,
                             void *const *outputs, double *step_ms, engine_error *err)
{
    cpu_ctx *c = ctx;
    cpu_prepared *pr = prepared;
    omp_set_num_threads(c->threads);
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(c->threads);
#endif
    for (int i = 0; i < p->n_steps; i++) {
        double t0 = step_ms ? now_ms() : 0;
        engine_status st = run_step(c, pr, p, i, inputs, err);
        if (st)
            return st;
        if (step_ms)
            step_ms[i] = now_ms() - t0;
    }
    const graph *g = p->g;
    for (int i = 0; i < g->n_outputs; i++) {
        size_t bytes = plan_value_bytes(p, g->outputs[i]);
        if (bytes)
            memcpy(outputs[i], value_ptr(c, p, g->outputs[i], inputs), bytes);
    }
    return ENGINE_OK;
}

static bool cpu_algo_report(void *ctx, void *prepared, const plan *p, int step,
                            engine_algo_report *out)
{
    (void)ctx;
    const cpu_prepared *pr = prepared;
    if (p->g->nodes[p->steps[step].node].op != OP_CONV)
        return false;
    *out = pr->report[step];
    return true;
}

static int cpu_device_count(char *why, size_t n)
{
    (void)why, (void)n;
    return 1;
}

const backend_ops cpu_backend_ops = {
    .name = "cpu",
    .priority = 0,
    .kind = BACKEND_CAP_HOST,
    .device_count = cpu_device_count,
    .conv_algorithms = cpu_conv_algo_names,
    .startup_environment = cpu_blas_startup_environment,
    .library_description = cpu_blas_description,
    .gemm_gflops = cpu_sgemm_gflops,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .describe = cpu_describe,
    .capabilities = cpu_capabilities,
    .value_room = cpu_value_room,
    .load_weights = cpu_load_weights,
    .prepare = cpu_prepare,
    .release = cpu_release,
    .run = cpu_run,
    .algo_report = cpu_algo_report,
    .memory = cpu_memory,
};
