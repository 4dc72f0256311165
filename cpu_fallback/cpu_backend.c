/* The CPU backend: the backend seam (engine/backend.h) over CBLAS and the
 * kernels in this folder.
 *
 * One context owns one activation arena, sized by the largest plan it was
 * prepared for, and one im2col workspace, sized by the largest convolution
 * of any prepared plan; both are allocated in prepare(), so run() allocates
 * nothing. A run walks the plan's steps in order.
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_kernels.h"

typedef struct {
    int threads;
    char description[256];
    char *arena;
    size_t arena_bytes;
    float *work;
    size_t work_floats;
} cpu_ctx;

typedef struct {
    int n_steps;
    cpu_conv_algo *algo; /* per step; meaningful for Conv steps */
} cpu_prepared;

static engine_status cpu_create(const backend_config *cfg, void **out, engine_error *err)
{
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    c->threads = cfg && cfg->threads > 0 ? cfg->threads : omp_get_num_procs();
#ifdef OPENBLAS_VERSION
    /* openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..." */
    char version[32] = "?";
    sscanf(openblas_get_config(), "OpenBLAS %31s", version);
    snprintf(c->description, sizeof c->description, "cpu: OpenBLAS %s (%s kernel), %d threads",
             version, openblas_get_corename(), c->threads);
#else
    snprintf(c->description, sizeof c->description, "cpu: CBLAS, %d threads", c->threads);
#endif
    *out = c;
    return ENGINE_OK;
}

static void cpu_destroy(void *ctx)
{
    cpu_ctx *c = ctx;
    if (!c)
        return;
    tensor_free(c->arena);
    tensor_free(c->work);
    free(c);
}

static const char *cpu_describe(void *ctx)
{
    return ((cpu_ctx *)ctx)->description;
}

static unsigned cpu_capabilities(void *ctx)
{
    (void)ctx;
    return 0;
}

static engine_status cpu_load_weights(void *ctx, const graph *g, engine_error *err)
{
    (void)ctx, (void)g, (void)err; /* weights are used in place from the graph */
    return ENGINE_OK;
}

static void conv_shape_of(const plan *p, const plan_step *st, conv_shape *s)
{
    const graph_node *n = &p->g->nodes[st->node];
    const shape_t *x = &p->values[n->inputs[0]].shape, *w = &p->values[n->inputs[1]].shape;
    const shape_t *y = &p->values[n->outputs[0]].shape;
    bool one_d = x->rank == 3;
    *s = (conv_shape){
        .n = x->dim[0], .c = x->dim[1], .h = one_d ? 1 : x->dim[2], .w = x->dim[x->rank - 1],
        .m = y->dim[1], .oh = one_d ? 1 : y->dim[2], .ow = y->dim[y->rank - 1],
        .kh = one_d ? 1 : w->dim[2], .kw = w->dim[w->rank - 1],
        .sh = n->p.win.stride[0], .sw = n->p.win.stride[1],
        .dh = n->p.win.dilation[0], .dw = n->p.win.dilation[1],
        .ph = st->r.win.pad_begin[0], .pw = st->r.win.pad_begin[1],
        .group = n->p.win.group, .act = n->act,
    };
}

static engine_status cpu_prepare(void *ctx, const plan *p, void **out, engine_error *err)
{
    cpu_ctx *c = ctx;
    cpu_prepared *pr = calloc(1, sizeof *pr);
    if (!pr || !(pr->algo = calloc((size_t)p->n_steps + 1, sizeof *pr->algo))) {
        free(pr);
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    }
    pr->n_steps = p->n_steps;
    size_t work = 0;
    for (int i = 0; i < p->n_steps; i++) {
        if (p->g->nodes[p->steps[i].node].op != OP_CONV)
            continue;
        conv_shape s;
        conv_shape_of(p, &p->steps[i], &s);
        pr->algo[i] = cpu_conv_choose(&s);
        size_t need = cpu_conv_workspace(pr->algo[i], &s);
        work = need > work ? need : work;
    }
    if (work > c->work_floats) {
        float *w = tensor_alloc(work * sizeof(float));
        if (!w)
            goto nomem;
        tensor_free(c->work);
        c->work = w;
        c->work_floats = work;
    }
    if (!c->arena || p->arena_bytes > c->arena_bytes) {
        char *a = tensor_alloc(p->arena_bytes); /* never NULL for 0 bytes */
        if (!a)
            goto nomem;
        tensor_free(c->arena);
        c->arena = a;
        c->arena_bytes = p->arena_bytes;
    }
    *out = pr;
    return ENGINE_OK;
nomem:
    free(pr->algo);
    free(pr);
    return engine_fail(err, ENGINE_E_NOMEM, "out of memory preparing batch %d (%zu bytes)",
                       p->batch, p->arena_bytes);
}

static void cpu_release(void *ctx, void *prepared)
{
    (void)ctx;
    cpu_prepared *pr = prepared;
    if (pr)
        free(pr->algo);
    free(pr);
}

static void *value_ptr(const cpu_ctx *c, const plan *p, int v, const float *const *inputs)
{
    if (v < 0)
        return NULL;
    const plan_value *pv = &p->values[v];
    switch (pv->storage) {
    case STORE_INPUT: return (void *)inputs[pv->input_index];
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

static engine_status run_step(const cpu_ctx *c, const cpu_prepared *pr, const plan *p, int i,
                              const float *const *inputs, engine_error *err)
{
    const plan_step *st = &p->steps[i];
    const graph_node *n = &p->g->nodes[st->node];
    const shape_t *xs = SHAPE(n->inputs[0]);
    switch (n->op) {
    case OP_CONV: {
        conv_shape s;
        conv_shape_of(p, st, &s);
        conv_buffers b = {IN(0), IN(1), n->n_inputs > 2 ? IN(2) : NULL, OUT(0), c->work};
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
        cpu_binary(n->op, IN(0), xs, IN(1), SHAPE(n->inputs[1]), OUT(0), SHAPE(n->outputs[0]));
        break;
    case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID: case OP_HARD_SIGMOID:
    case OP_HARD_SWISH: case OP_EXP:
        cpu_activation(IN(0), OUT(0), shape_numel(xs), &n->act);
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
        if (n->op == OP_MAXPOOL)
            cpu_maxpool(IN(0), OUT(0), &s);
        else
            cpu_avgpool(IN(0), OUT(0), &s);
        break;
    }
    case OP_GLOBAL_AVGPOOL: case OP_GLOBAL_MAXPOOL:
        cpu_global_pool(IN(0), OUT(0), xs->dim[0] * xs->dim[1], prod(xs, 2, xs->rank),
                        n->op == OP_GLOBAL_MAXPOOL);
        break;
    case OP_BATCHNORM:
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
        nd_concat(OUT(0), srcs, shapes, n->n_inputs, st->r.axis, sizeof(float));
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
        nd_split(dsts, shapes, n->n_outputs, IN(0), st->r.axis, sizeof(float));
        break;
    }
    case OP_SLICE:
        nd_slice(OUT(0), IN(0), xs, SHAPE(n->outputs[0]), st->r.slice.start, st->r.slice.step,
                 sizeof(float));
        break;
    case OP_TRANSPOSE:
        nd_transpose(OUT(0), IN(0), xs, st->r.transpose.perm, sizeof(float));
        break;
    case OP_PAD:
        nd_pad(OUT(0), IN(0), xs, SHAPE(n->outputs[0]), st->r.pad.begin, n->p.pad,
               &st->r.pad.value, sizeof(float));
        break;
    case OP_GATHER: {
        const shape_t *is = SHAPE(n->inputs[1]);
        nd_gather(OUT(0), IN(0), xs, st->r.axis, (const int64_t *)IN(1), shape_numel(is),
                  sizeof(float));
        break;
    }
    case OP_REDUCE_MEAN:
        cpu_reduce_mean(IN(0), xs, OUT(0), st->r.reduce.axes_mask);
        break;
    case OP_CAST:
        memcpy(OUT(0), IN(0), (size_t)shape_numel(xs) * sizeof(float));
        break;
    default:
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

static engine_status cpu_run(void *ctx, void *prepared, const plan *p, const float *const *inputs,
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

/* The CPU picks its convolution algorithm by rule (cpu_conv_choose); the
 * report lists every algorithm with whether it applies. */
static bool cpu_algo_report(void *ctx, void *prepared, const plan *p, int step,
                            engine_algo_report *out)
{
    (void)ctx;
    const cpu_prepared *pr = prepared;
    if (p->g->nodes[p->steps[step].node].op != OP_CONV)
        return false;
    conv_shape s;
    conv_shape_of(p, &p->steps[step], &s);
    snprintf(out->mode, sizeof out->mode, "rule");
    out->n = 0;
    out->chosen = -1;
    for (int a = 0; a < CPU_CONV_ALGO_COUNT; a++) {
        engine_algo_candidate *c = &out->cand[out->n];
        snprintf(c->name, sizeof c->name, "%s", cpu_conv_algo_name((cpu_conv_algo)a));
        c->ms = -1;
        c->workspace = cpu_conv_workspace((cpu_conv_algo)a, &s) * sizeof(float);
        snprintf(c->status, sizeof c->status, "%s",
                 cpu_conv_supports((cpu_conv_algo)a, &s) ? "ok" : "not applicable");
        if (a == (int)pr->algo[step])
            out->chosen = out->n;
        out->n++;
    }
    return true;
}

const backend_ops cpu_backend_ops = {
    .name = "cpu",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .describe = cpu_describe,
    .capabilities = cpu_capabilities,
    .load_weights = cpu_load_weights,
    .prepare = cpu_prepare,
    .release = cpu_release,
    .run = cpu_run,
    .algo_report = cpu_algo_report,
};
