/* Convolutions on the GPU, with the algorithm chosen per layer and batch.
 *
 * Candidates: the eight cuDNN forward algorithms (IMPLICIT_GEMM,
 * IMPLICIT_PRECOMP_GEMM, GEMM, DIRECT, FFT, FFT_TILING, WINOGRAD,
 * WINOGRAD_NONFUSED) through cuDNN's legacy convolution API, which spans
 * the Jetson TK1's cuDNN to today's 9.x, and our own im2col + cuBLAS SGEMM
 * path (1x1 convolutions skip the im2col). Selection modes:
 *   exhaustive  time every candidate that fits the workspace limit
 *               (cudnnFindConvolutionForwardAlgorithmEx, CUDA events for
 *               ours) and keep the fastest; remembered in the cache file;
 *   heuristic   cuDNN's own ranking, nothing timed;
 *   a name      that algorithm wherever it applies, else the heuristic.
 * FP32 math throughout: tensor-core TF32 is turned off where cuDNN has it.
 * Bias and the fused activation run as one epilogue kernel after the
 * convolution, whatever the algorithm.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cuda_internal.h"

static const char *const cudnn_algo_names[] = {
    "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM",     "DIRECT",
    "FFT",           "FFT_TILING",            "WINOGRAD", "WINOGRAD_NONFUSED",
};
#define N_CUDNN_ALGOS 8
#define IM2COL_NAME "im2col_gemm"

k_act cuda_act(const act_params *a)
{
    k_act k = {(int)a->kind, a->alpha, a->beta};
    return k;
}

typedef struct {
    int64_t n, c, h, w, m, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw, pe_h, pe_w, group;
} conv_geom;

static void geometry(const plan *p, int step, conv_geom *g)
{
    const plan_step *st = &p->steps[step];
    const graph_node *n = &p->g->nodes[st->node];
    const shape_t *x = &p->values[n->inputs[0]].shape, *w = &p->values[n->inputs[1]].shape;
    const shape_t *y = &p->values[n->outputs[0]].shape;
    bool one_d = x->rank == 3;
    *g = (conv_geom){
        .n = x->dim[0], .c = x->dim[1], .h = one_d ? 1 : x->dim[2], .w = x->dim[x->rank - 1],
        .m = y->dim[1], .oh = one_d ? 1 : y->dim[2], .ow = y->dim[y->rank - 1],
        .kh = one_d ? 1 : w->dim[2], .kw = w->dim[w->rank - 1],
        .sh = n->p.win.stride[0], .sw = n->p.win.stride[1],
        .dh = n->p.win.dilation[0], .dw = n->p.win.dilation[1],
        .ph = st->r.win.pad_begin[0], .pw = st->r.win.pad_begin[1],
        .pe_h = st->r.win.pad_end[0], .pe_w = st->r.win.pad_end[1], .group = n->p.win.group,
    };
}

static size_t im2col_workspace(const conv_geom *g, bool one_by_one)
{
    return one_by_one ? 0
                      : (size_t)(g->c / g->group * g->kh * g->kw * g->oh * g->ow) * sizeof(float);
}

static void cache_key(const cuda_ctx *c, const conv_geom *g, char *key, size_t n)
{
    snprintf(key, n,
             "%s|sm%d%d|cudnn%zu|n%lld c%lld h%lld w%lld|m%lld k%lldx%lld|p%lld,%lld,%lld,%lld|"
             "s%lld,%lld|d%lld,%lld|g%lld|fp32",
             c->prop.name, c->prop.major, c->prop.minor, (size_t)cudnnGetVersion(),
             (long long)g->n, (long long)g->c, (long long)g->h, (long long)g->w,
             (long long)g->m, (long long)g->kh, (long long)g->kw, (long long)g->ph,
             (long long)g->pw, (long long)g->pe_h, (long long)g->pe_w, (long long)g->sh,
             (long long)g->sw, (long long)g->dh, (long long)g->dw, (long long)g->group);
}

static void add_candidate(engine_algo_report *r, const char *name, double ms, size_t ws,
                          const char *status)
{
    if (r->n >= (int)(sizeof r->cand / sizeof r->cand[0]))
        return;
    engine_algo_candidate *c = &r->cand[r->n++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->ms = ms;
    c->workspace = ws;
    snprintf(c->status, sizeof c->status, "%s", status);
}

/* Descriptors for cuDNN; false (with the reason) when cuDNN cannot express
 * this convolution, which then runs on the im2col path. */
static bool cudnn_describe(cuda_conv_step *cs, const conv_geom *g, char *why, size_t n)
{
    if (g->ph != g->pe_h || g->pw != g->pe_w) {
        snprintf(why, n, "asymmetric padding");
        return false;
    }
#if CUDNN_MAJOR < 6
    if (g->dh != 1 || g->dw != 1) {
        snprintf(why, n, "dilation needs cuDNN 6");
        return false;
    }
#endif
#if CUDNN_MAJOR < 7
    if (g->group != 1) {
        snprintf(why, n, "groups need cuDNN 7");
        return false;
    }
#endif
    bool ok = cudnnCreateTensorDescriptor(&cs->x_desc) == CUDNN_STATUS_SUCCESS &&
              cudnnCreateTensorDescriptor(&cs->y_desc) == CUDNN_STATUS_SUCCESS &&
              cudnnCreateFilterDescriptor(&cs->w_desc) == CUDNN_STATUS_SUCCESS &&
              cudnnCreateConvolutionDescriptor(&cs->conv_desc) == CUDNN_STATUS_SUCCESS &&
              cudnnSetTensor4dDescriptor(cs->x_desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                         (int)g->n, (int)g->c, (int)g->h,
                                         (int)g->w) == CUDNN_STATUS_SUCCESS &&
              cudnnSetTensor4dDescriptor(cs->y_desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                         (int)g->n, (int)g->m, (int)g->oh,
                                         (int)g->ow) == CUDNN_STATUS_SUCCESS;
#if CUDNN_MAJOR >= 5
    ok = ok && cudnnSetFilter4dDescriptor(cs->w_desc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                          (int)g->m, (int)(g->c / g->group), (int)g->kh,
                                          (int)g->kw) == CUDNN_STATUS_SUCCESS;
#else
    ok = ok && cudnnSetFilter4dDescriptor(cs->w_desc, CUDNN_DATA_FLOAT, (int)g->m,
                                          (int)(g->c / g->group), (int)g->kh,
                                          (int)g->kw) == CUDNN_STATUS_SUCCESS;
#endif
#if CUDNN_MAJOR >= 6
    ok = ok && cudnnSetConvolution2dDescriptor(cs->conv_desc, (int)g->ph, (int)g->pw, (int)g->sh,
                                               (int)g->sw, (int)g->dh, (int)g->dw,
                                               CUDNN_CROSS_CORRELATION,
                                               CUDNN_DATA_FLOAT) == CUDNN_STATUS_SUCCESS;
#else
    ok = ok && cudnnSetConvolution2dDescriptor(cs->conv_desc, (int)g->ph, (int)g->pw, (int)g->sh,
                                               (int)g->sw, 1, 1, CUDNN_CROSS_CORRELATION) ==
                   CUDNN_STATUS_SUCCESS;
#endif
#if CUDNN_MAJOR >= 7
    ok = ok && cudnnSetConvolutionGroupCount(cs->conv_desc, (int)g->group) == CUDNN_STATUS_SUCCESS;
#endif
#if CUDNN_MAJOR >= 8
    /* plain FP32: no TF32 tensor-core math */
    ok = ok && cudnnSetConvolutionMathType(cs->conv_desc, CUDNN_FMA_MATH) == CUDNN_STATUS_SUCCESS;
#endif
    int on, oc, oh, ow;
    if (ok && cudnnGetConvolution2dForwardOutputDim(cs->conv_desc, cs->x_desc, cs->w_desc, &on,
                                                    &oc, &oh, &ow) == CUDNN_STATUS_SUCCESS &&
        (on != g->n || oc != g->m || oh != g->oh || ow != g->ow)) {
        snprintf(why, n, "cuDNN computes a %dx%dx%dx%d output", on, oc, oh, ow);
        return false;
    }
    if (!ok)
        snprintf(why, n, "cuDNN refused the descriptors");
    return ok;
}

/* Times our im2col path with CUDA events (median of 5 after 2 warm-ups). */
static engine_status time_im2col(cuda_ctx *c, const cuda_prepared *pr, const plan *p, int step,
                                 double *ms, engine_error *err)
{
    double t[5];
    for (int i = 0; i < 7; i++) {
        GPU_CHECK(cudaEventRecord(c->ev_start, c->stream));
        engine_status st = cuda_conv_run(c, pr, p, step, err);
        if (st)
            return st;
        GPU_CHECK(cudaEventRecord(c->ev_stop, c->stream));
        GPU_CHECK(cudaEventSynchronize(c->ev_stop));
        float f;
        GPU_CHECK(cudaEventElapsedTime(&f, c->ev_start, c->ev_stop));
        if (i >= 2)
            t[i - 2] = f;
    }
    for (int i = 0; i < 5; i++) /* insertion sort of five */
        for (int k = i; k > 0 && t[k] < t[k - 1]; k--) {
            double tmp = t[k];
            t[k] = t[k - 1];
            t[k - 1] = tmp;
        }
    *ms = t[2];
    return ENGINE_OK;
}

static const char *status_text(cudnnStatus_t s)
{
    return s == CUDNN_STATUS_SUCCESS ? "ok" : s == CUDNN_STATUS_NOT_SUPPORTED ? "not supported"
                                                                             : cudnnGetErrorString(s);
}

static int algo_by_name(const char *name)
{
    for (int a = 0; a < N_CUDNN_ALGOS; a++)
        if (strcasecmp(name, cudnn_algo_names[a]) == 0)
            return a;
    return strcasecmp(name, IM2COL_NAME) == 0 ? N_CUDNN_ALGOS : -1;
}

/* Makes `algo` (a cuDNN index, or N_CUDNN_ALGOS for im2col) the choice. */
static void choose(cuda_conv_step *cs, int algo, size_t ws)
{
    cs->use_cudnn = algo < N_CUDNN_ALGOS;
    cs->algo = (cudnnConvolutionFwdAlgo_t)(algo < N_CUDNN_ALGOS ? algo : 0);
    cs->workspace = ws;
    const char *name = algo < N_CUDNN_ALGOS ? cudnn_algo_names[algo] : IM2COL_NAME;
    cs->report.chosen = -1;
    for (int i = 0; i < cs->report.n; i++)
        if (strcmp(cs->report.cand[i].name, name) == 0)
            cs->report.chosen = i;
}

static engine_status select_heuristic(cuda_ctx *c, cuda_conv_step *cs, const conv_geom *g,
                                      bool cudnn_ok, const char *why, engine_error *err)
{
    engine_algo_report *r = &cs->report;
    int best = -1;
    size_t best_ws = 0;
    if (cudnn_ok) {
#if CUDNN_MAJOR >= 7
        cudnnConvolutionFwdAlgoPerf_t perf[N_CUDNN_ALGOS];
        int got = 0;
        GPU_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(c->cudnn, cs->x_desc, cs->w_desc,
                                                         cs->conv_desc, cs->y_desc,
                                                         N_CUDNN_ALGOS, &got, perf));
        for (int i = 0; i < got; i++) { /* ranked best first */
            char status[64];
            bool fits = perf[i].memory <= c->ws_limit;
            snprintf(status, sizeof status, "%s, rank %d%s", status_text(perf[i].status), i + 1,
                     fits ? "" : ", workspace over the limit");
            add_candidate(r, cudnn_algo_names[perf[i].algo], -1, perf[i].memory, status);
            if (best < 0 && perf[i].status == CUDNN_STATUS_SUCCESS && fits) {
                best = (int)perf[i].algo;
                best_ws = perf[i].memory;
            }
        }
#else
        cudnnConvolutionFwdAlgo_t algo;
        GPU_CHECK(cudnnGetConvolutionForwardAlgorithm(
            c->cudnn, cs->x_desc, cs->w_desc, cs->conv_desc, cs->y_desc,
            CUDNN_CONVOLUTION_FWD_SPECIFY_WORKSPACE_LIMIT, c->ws_limit, &algo));
        size_t ws = 0;
        GPU_CHECK(cudnnGetConvolutionForwardWorkspaceSize(c->cudnn, cs->x_desc, cs->w_desc,
                                                          cs->conv_desc, cs->y_desc, algo, &ws));
        add_candidate(r, cudnn_algo_names[algo], -1, ws, "ok, rank 1");
        best = (int)algo;
        best_ws = ws;
#endif
    } else {
        add_candidate(r, "cuDNN", -1, 0, why);
    }
    size_t im2col_ws = im2col_workspace(g, cs->one_by_one);
    add_candidate(r, IM2COL_NAME, -1, im2col_ws,
                  im2col_ws <= c->ws_limit ? "ok" : "workspace over the limit");
    if (best < 0)
        choose(cs, N_CUDNN_ALGOS, im2col_ws);
    else
        choose(cs, best, best_ws);
    return ENGINE_OK;
}

static engine_status select_exhaustive(cuda_ctx *c, cuda_prepared *pr, const plan *p, int step,
                                       cuda_conv_step *cs, const conv_geom *g, bool cudnn_ok,
                                       const char *why, engine_error *err)
{
    engine_algo_report *r = &cs->report;
    int best = -1;
    double best_ms = 1e30;
    size_t best_ws = 0;
    if (cudnn_ok) {
#if CUDNN_MAJOR >= 5
        /* timing needs real buffers: the arena stands in for x and y */
        engine_status rs = cuda_reserve_workspace(c, c->ws_limit, err);
        if (rs)
            return rs;
        const graph_node *n = &p->g->nodes[p->steps[step].node];
        cudnnConvolutionFwdAlgoPerf_t perf[N_CUDNN_ALGOS];
        int got = 0;
        GPU_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
            c->cudnn, cs->x_desc, cuda_value_ptr(c, pr, p, n->inputs[0]), cs->w_desc,
            cuda_value_ptr(c, pr, p, n->inputs[1]), cs->conv_desc, cs->y_desc,
            cuda_value_ptr(c, pr, p, n->outputs[0]), N_CUDNN_ALGOS, &got, perf, c->workspace,
            c->ws_limit));
        bool seen[N_CUDNN_ALGOS] = {false};
        for (int i = 0; i < got; i++) {
            int a = (int)perf[i].algo;
            if (a < 0 || a >= N_CUDNN_ALGOS)
                continue;
            seen[a] = true;
            bool ok = perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].time >= 0;
            add_candidate(r, cudnn_algo_names[a], ok ? perf[i].time : -1, perf[i].memory,
                          status_text(perf[i].status));
            if (ok && perf[i].time < best_ms) {
                best = a;
                best_ms = perf[i].time;
                best_ws = perf[i].memory;
            }
        }
        for (int a = 0; a < N_CUDNN_ALGOS; a++) /* those cuDNN did not even try */
            if (!seen[a]) {
                size_t ws = 0;
                cudnnStatus_t s = cudnnGetConvolutionForwardWorkspaceSize(
                    c->cudnn, cs->x_desc, cs->w_desc, cs->conv_desc, cs->y_desc,
                    (cudnnConvolutionFwdAlgo_t)a, &ws);
                add_candidate(r, cudnn_algo_names[a], -1, ws,
                              s != CUDNN_STATUS_SUCCESS ? status_text(s)
                              : ws > c->ws_limit        ? "workspace over the limit"
                                                        : "not timed");
            }
#else
        return select_heuristic(c, cs, g, cudnn_ok, why, err);
#endif
    } else {
        add_candidate(r, "cuDNN", -1, 0, why);
    }
    size_t im2col_ws = im2col_workspace(g, cs->one_by_one);
    if (im2col_ws <= c->ws_limit) {
        engine_status st = cuda_reserve_workspace(c, im2col_ws, err);
        if (st)
            return st;
        cs->use_cudnn = false;
        double ms = 0;
        if ((st = time_im2col(c, pr, p, step, &ms, err)))
            return st;
        add_candidate(r, IM2COL_NAME, ms, im2col_ws, "ok");
        if (ms < best_ms) {
            best = N_CUDNN_ALGOS;
            best_ms = ms;
            best_ws = im2col_ws;
        }
    } else {
        add_candidate(r, IM2COL_NAME, -1, im2col_ws, "workspace over the limit");
    }
    if (best < 0)
        return engine_fail(err, ENGINE_E_BACKEND,
                           "no convolution algorithm fits a workspace of %zu bytes",
                           c->ws_limit);
    choose(cs, best, best_ws);
    char key[320];
    cache_key(c, g, key, sizeof key);
    algo_cache_put(&c->cache, key, best < N_CUDNN_ALGOS ? cudnn_algo_names[best] : IM2COL_NAME,
                   best_ws, best_ms);
    return ENGINE_OK;
}

engine_status cuda_conv_prepare(cuda_ctx *c, cuda_prepared *pr, const plan *p, int step,
                                engine_error *err)
{
    cuda_conv_step *cs = &pr->conv[step];
    conv_geom g;
    geometry(p, step, &g);
    memset(cs, 0, sizeof *cs);
    cs->is_conv = true;
    cs->report.chosen = -1;
    cs->one_by_one = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 &&
                     g.pw == 0 && g.pe_h == 0 && g.pe_w == 0 && g.group == 1;
    char why[96] = "";
    bool cudnn_ok = cudnn_describe(cs, &g, why, sizeof why);
    char key[320];
    cache_key(c, &g, key, sizeof key);
    const algo_entry *hit = algo_cache_find(&c->cache, key);
    int forced = strcmp(c->conv_algo, "exhaustive") && strcmp(c->conv_algo, "heuristic")
                     ? algo_by_name(c->conv_algo)
                     : -1;
    engine_status st = ENGINE_OK;
    if (forced >= 0) {
        snprintf(cs->report.mode, sizeof cs->report.mode, "forced");
        size_t ws = 0;
        bool ok;
        if (forced == N_CUDNN_ALGOS) {
            ws = im2col_workspace(&g, cs->one_by_one);
            ok = true;
        } else {
            ok = cudnn_ok && cudnnGetConvolutionForwardWorkspaceSize(
                                 c->cudnn, cs->x_desc, cs->w_desc, cs->conv_desc, cs->y_desc,
                                 (cudnnConvolutionFwdAlgo_t)forced, &ws) == CUDNN_STATUS_SUCCESS;
        }
        if (ok && ws <= c->ws_limit) {
            add_candidate(&cs->report, forced < N_CUDNN_ALGOS ? cudnn_algo_names[forced]
                                                              : IM2COL_NAME,
                          -1, ws, "ok");
            choose(cs, forced, ws);
        } else {
            snprintf(cs->report.mode, sizeof cs->report.mode, "heuristic");
            add_candidate(&cs->report, c->conv_algo, -1, ws,
                          ok ? "forced, but workspace over the limit" : "forced, not supported");
            st = select_heuristic(c, cs, &g, cudnn_ok, why, err);
        }
    } else if (hit && strcmp(c->conv_algo, "exhaustive") == 0 && algo_by_name(hit->algo) >= 0 &&
               (algo_by_name(hit->algo) == N_CUDNN_ALGOS || cudnn_ok)) {
        snprintf(cs->report.mode, sizeof cs->report.mode, "cached");
        add_candidate(&cs->report, hit->algo, hit->ms, hit->workspace, "ok (from the cache)");
        choose(cs, algo_by_name(hit->algo), hit->workspace);
    } else if (strcmp(c->conv_algo, "heuristic") == 0) {
        snprintf(cs->report.mode, sizeof cs->report.mode, "heuristic");
        st = select_heuristic(c, cs, &g, cudnn_ok, why, err);
    } else {
        snprintf(cs->report.mode, sizeof cs->report.mode, "exhaustive");
        st = select_exhaustive(c, pr, p, step, cs, &g, cudnn_ok, why, err);
    }
    if (st)
        return st;
    return cuda_reserve_workspace(c, cs->workspace, err);
}

engine_status cuda_conv_run(cuda_ctx *c, const cuda_prepared *pr, const plan *p, int step,
                            engine_error *err)
{
    const cuda_conv_step *cs = &pr->conv[step];
    const graph_node *n = &p->g->nodes[p->steps[step].node];
    const float *x = cuda_value_ptr(c, pr, p, n->inputs[0]);
    const float *w = cuda_value_ptr(c, pr, p, n->inputs[1]);
    const float *b = n->n_inputs > 2 && n->inputs[2] >= 0 ? cuda_value_ptr(c, pr, p, n->inputs[2])
                                                          : NULL;
    float *y = cuda_value_ptr(c, pr, p, n->outputs[0]);
    conv_geom g;
    geometry(p, step, &g);
    int64_t cols = g.oh * g.ow;
    if (cs->use_cudnn) {
        const float one = 1.0f, zero = 0.0f;
        GPU_CHECK(cudnnConvolutionForward(c->cudnn, &one, cs->x_desc, x, cs->w_desc, w,
                                          cs->conv_desc, cs->algo, c->workspace, cs->workspace,
                                          &zero, cs->y_desc, y));
    } else if (cs->one_by_one) {
        /* row-major Y_n (m x hw) = W (m x c) X_n (c x hw): in cuBLAS's column-major
         * terms Y_n^T = X_n^T W^T, one strided batched GEMM over the images */
        const float one = 1.0f, zero = 0.0f;
#if CUDART_VERSION >= 8000
        GPU_CHECK(cublasSgemmStridedBatched(c->cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)cols,
                                            (int)g.m, (int)g.c, &one, x, (int)cols,
                                            (long long)(g.c * cols), w, (int)g.c, 0, &zero, y,
                                            (int)cols, (long long)(g.m * cols), (int)g.n));
#else
        for (int64_t i = 0; i < g.n; i++)
            GPU_CHECK(cublasSgemm(c->cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)cols, (int)g.m,
                                  (int)g.c, &one, x + i * g.c * cols, (int)cols, w, (int)g.c,
                                  &zero, y + i * g.m * cols, (int)cols));
#endif
    } else {
        const float one = 1.0f, zero = 0.0f;
        int64_t cg = g.c / g.group, mg = g.m / g.group, k = cg * g.kh * g.kw;
        float *col = c->workspace;
        for (int64_t i = 0; i < g.n; i++)
            for (int64_t gi = 0; gi < g.group; gi++) {
                k_im2col_desc d = {cg, g.h, g.w, g.oh, g.ow, g.kh, g.kw,
                                   g.sh, g.sw, g.dh, g.dw, g.ph, g.pw};
                GPU_CHECK(k_im2col(c->stream, x + (i * g.c + gi * cg) * g.h * g.w, col, &d));
                GPU_CHECK(cublasSgemm(c->cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)cols, (int)mg,
                                      (int)k, &one, col, (int)cols, w + gi * mg * k, (int)k,
                                      &zero, y + (i * g.m + gi * mg) * cols, (int)cols));
            }
    }
    const float *res = n->n_inputs > 3 && n->inputs[3] >= 0 ? cuda_value_ptr(c, pr, p, n->inputs[3])
                                                             : NULL;
    if (b || res || n->act.kind != ACT_NONE)
        GPU_CHECK(k_bias_act(c->stream, y, b, res, g.n, g.m, cols, cuda_act(&n->act)));
    return ENGINE_OK;
}

void cuda_conv_release(cuda_conv_step *cs)
{
    if (cs->x_desc)
        cudnnDestroyTensorDescriptor(cs->x_desc);
    if (cs->y_desc)
        cudnnDestroyTensorDescriptor(cs->y_desc);
    if (cs->w_desc)
        cudnnDestroyFilterDescriptor(cs->w_desc);
    if (cs->conv_desc)
        cudnnDestroyConvolutionDescriptor(cs->conv_desc);
    memset(cs, 0, sizeof *cs);
}
