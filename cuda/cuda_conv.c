/* Convolutions on the GPU, with the algorithm chosen per layer and batch.
 *
 * Candidates: the eight cuDNN forward algorithms (IMPLICIT_GEMM,
 * IMPLICIT_PRECOMP_GEMM, GEMM, DIRECT, FFT, FFT_TILING, WINOGRAD,
 * WINOGRAD_NONFUSED) through cuDNN's legacy convolution API, which spans
 * the Jetson TK1's cuDNN to today's 9.x, and our own im2col + cuBLAS SGEMM
 * path (1x1 convolutions skip the im2col). The engine's policy chooses
 * among them (engine/algo_select.h); this file lists the candidates in
 * cuDNN's ranking (cudnnGetConvolutionForwardAlgorithm_v7) with their
 * workspace, and times them when asked (cudnnFindConvolutionForwardAlgorithmEx,
 * CUDA events for ours). A cuDNN call that fails while choosing leaves the
 * layer on the im2col path instead of failing the model.
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

const char *const cuda_conv_algorithms[] = {
    "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM",     "DIRECT",            "FFT",
    "FFT_TILING",    "WINOGRAD",              "WINOGRAD_NONFUSED", IM2COL_NAME, NULL};

k_act cuda_act(const act_params *a)
{
    k_act k = {(int)a->kind, a->alpha, a->beta};
    return k;
}

static size_t im2col_workspace(const conv_geometry *g, bool one_by_one)
{
    return one_by_one ? 0
                      : (size_t)(g->c / g->group * g->kh * g->kw * g->oh * g->ow) * sizeof(float);
}

/* Descriptors for cuDNN; false (with the reason) when cuDNN cannot express
 * this convolution, which then runs on the im2col path. */
static bool cudnn_describe(cuda_conv_step *cs, const conv_geometry *g, char *why, size_t n)
{
    if (g->pt != g->pb || g->pl != g->pr) {
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
    ok = ok && cudnnSetConvolution2dDescriptor(cs->conv_desc, (int)g->pt, (int)g->pl, (int)g->sh,
                                               (int)g->sw, (int)g->dh, (int)g->dw,
                                               CUDNN_CROSS_CORRELATION,
                                               CUDNN_DATA_FLOAT) == CUDNN_STATUS_SUCCESS;
#else
    ok = ok && cudnnSetConvolution2dDescriptor(cs->conv_desc, (int)g->pt, (int)g->pl, (int)g->sh,
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

/* A testing aid for a GPU run: VISIOND_TEST_CUDNN_SEARCH_FAILS=1 makes
 * every cuDNN algorithm query and search fail, as a broken cuDNN would, so
 * that the per-layer fallback to im2col + cuBLAS can be shown working. */
static bool search_fails_on_purpose(void)
{
    const char *v = getenv("VISIOND_TEST_CUDNN_SEARCH_FAILS");
    return v && strcmp(v, "1") == 0;
}

/* The cuDNN candidates in cuDNN's ranking, each with its workspace and
 * whether it can run within the limit. A failing cuDNN call is noted in
 * the candidates, not returned: the layer still has the im2col path. */
static void cudnn_candidates(cuda_ctx *c, cuda_conv_step *cs, algo_layer *l)
{
    bool listed[N_CUDNN_ALGOS] = {false};
#if CUDNN_MAJOR >= 7
    cudnnConvolutionFwdAlgoPerf_t perf[N_CUDNN_ALGOS];
    int got = 0;
    cudnnStatus_t rs = search_fails_on_purpose()
                           ? CUDNN_STATUS_INTERNAL_ERROR
                           : cudnnGetConvolutionForwardAlgorithm_v7(c->cudnn, cs->x_desc,
                                                                    cs->w_desc, cs->conv_desc,
                                                                    cs->y_desc, N_CUDNN_ALGOS,
                                                                    &got, perf);
    if (rs != CUDNN_STATUS_SUCCESS) { /* no ranking to trust: this layer takes im2col */
        char why[64];
        snprintf(why, sizeof why, "query failed: %s", cudnnGetErrorString(rs));
        algo_layer_add(l, "cuDNN", 0, false, why);
        return;
    }
    for (int i = 0; i < got; i++) { /* ranked best first */
        int a = (int)perf[i].algo;
        if (a < 0 || a >= N_CUDNN_ALGOS || listed[a])
            continue;
        listed[a] = true;
        bool fits = perf[i].memory <= c->ws_limit;
        char status[64];
        snprintf(status, sizeof status, "%s, rank %d%s", status_text(perf[i].status), i + 1,
                 fits ? "" : ", workspace over the limit");
        algo_layer_add(l, cudnn_algo_names[a], perf[i].memory,
                       perf[i].status == CUDNN_STATUS_SUCCESS && fits, status);
    }
#else /* before cuDNN 7: one pick within the workspace limit, ranked first */
    cudnnConvolutionFwdAlgo_t pick;
    size_t ws = 0;
    if (cudnnGetConvolutionForwardAlgorithm(c->cudnn, cs->x_desc, cs->w_desc, cs->conv_desc,
                                            cs->y_desc,
                                            CUDNN_CONVOLUTION_FWD_SPECIFY_WORKSPACE_LIMIT,
                                            c->ws_limit, &pick) == CUDNN_STATUS_SUCCESS &&
        cudnnGetConvolutionForwardWorkspaceSize(c->cudnn, cs->x_desc, cs->w_desc, cs->conv_desc,
                                                cs->y_desc, pick, &ws) == CUDNN_STATUS_SUCCESS) {
        listed[pick] = true;
        algo_layer_add(l, cudnn_algo_names[pick], ws, true, "ok, rank 1");
    }
#endif
    for (int a = 0; a < N_CUDNN_ALGOS; a++) { /* those the ranking left out */
        if (listed[a])
            continue;
        size_t ws = 0;
        cudnnStatus_t s = cudnnGetConvolutionForwardWorkspaceSize(
            c->cudnn, cs->x_desc, cs->w_desc, cs->conv_desc, cs->y_desc,
            (cudnnConvolutionFwdAlgo_t)a, &ws);
        bool ok = s == CUDNN_STATUS_SUCCESS && ws <= c->ws_limit;
        algo_layer_add(l, cudnn_algo_names[a], ws, ok,
                       s != CUDNN_STATUS_SUCCESS ? status_text(s)
                       : ok                      ? "ok, unranked"
                                                 : "workspace over the limit");
    }
}

typedef struct {
    cuda_ctx *c;
    cuda_prepared *pr;
    const plan *p;
    int step;
    cuda_conv_step *cs;
} cuda_timing;

/* time_all for algo_select: cuDNN times its own algorithms in one call,
 * CUDA events time ours. A cuDNN failure marks its candidates untimed. */
static engine_status time_candidates(void *user, algo_candidate *cand, int n, engine_error *err)
{
    cuda_timing *t = user;
    cuda_ctx *c = t->c;
    bool any_cudnn = false;
    int im2col = -1;
    for (int i = 0; i < n; i++) {
        if (!cand[i].can_run)
            continue;
        if (algo_by_name(cand[i].name) == N_CUDNN_ALGOS)
            im2col = i;
        else
            any_cudnn = true;
    }
#if CUDNN_MAJOR >= 5
    engine_error werr = {0};
    if (any_cudnn && cuda_reserve_workspace(c, c->ws_limit, &werr) != ENGINE_OK) {
        /* no room to search in: cuDNN's candidates go untimed, im2col still runs */
        for (int i = 0; i < n; i++)
            if (cand[i].can_run && i != im2col)
                snprintf(cand[i].status, sizeof cand[i].status, "timing failed: %s",
                         werr.message);
        any_cudnn = false;
    }
    if (any_cudnn) {
        /* timing needs real buffers: the arena stands in for x and y */
        const graph_node *node = &t->p->g->nodes[t->p->steps[t->step].node];
        cudnnConvolutionFwdAlgoPerf_t perf[N_CUDNN_ALGOS];
        int got = 0;
        cudnnStatus_t fs = search_fails_on_purpose() ? CUDNN_STATUS_INTERNAL_ERROR
                                                     : cudnnFindConvolutionForwardAlgorithmEx(
            c->cudnn, t->cs->x_desc, cuda_value_ptr(c, t->pr, t->p, node->inputs[0]),
            t->cs->w_desc, cuda_value_ptr(c, t->pr, t->p, node->inputs[1]), t->cs->conv_desc,
            t->cs->y_desc, cuda_value_ptr(c, t->pr, t->p, node->outputs[0]), N_CUDNN_ALGOS, &got,
            perf, c->workspace, c->ws_limit);
        for (int k = 0; fs == CUDNN_STATUS_SUCCESS && k < got; k++)
            for (int i = 0; i < n; i++)
                if (cand[i].can_run && algo_by_name(cand[i].name) == (int)perf[k].algo) {
                    bool ok = perf[k].status == CUDNN_STATUS_SUCCESS && perf[k].time >= 0;
                    cand[i].ms = ok ? perf[k].time : -1;
                    if (!ok)
                        snprintf(cand[i].status, sizeof cand[i].status, "%s",
                                 status_text(perf[k].status));
                }
        if (fs != CUDNN_STATUS_SUCCESS)
            for (int i = 0; i < n; i++)
                if (cand[i].can_run && i != im2col)
                    snprintf(cand[i].status, sizeof cand[i].status, "timing failed: %s",
                             cudnnGetErrorString(fs));
    }
#endif
    if (im2col >= 0) {
        engine_status st = cuda_reserve_workspace(c, cand[im2col].workspace, err);
        if (st)
            return st;
        t->cs->use_cudnn = false;
        if ((st = time_im2col(c, t->pr, t->p, t->step, &cand[im2col].ms, err)))
            return st;
    }
    return ENGINE_OK;
}

engine_status cuda_conv_prepare(cuda_ctx *c, cuda_prepared *pr, const plan *p, int step,
                                engine_error *err)
{
    cuda_conv_step *cs = &pr->conv[step];
    conv_geometry g;
    conv_geometry_of(p, &p->steps[step], &g);
    memset(cs, 0, sizeof *cs);
    cs->is_conv = true;
    cs->one_by_one = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 &&
                     g.pl == 0 && g.pb == 0 && g.pr == 0 && g.group == 1;
    char why[96] = "";
    cuda_timing timing = {c, pr, p, step, cs};
    algo_layer layer = {.auto_times = true, .time_all = time_candidates, .user = &timing,
                        .fallback = IM2COL_NAME};
    if (cudnn_describe(cs, &g, why, sizeof why))
        cudnn_candidates(c, cs, &layer);
    else
        algo_layer_add(&layer, "cuDNN", 0, false, why);
    size_t im2col_ws = im2col_workspace(&g, cs->one_by_one);
    algo_layer_add(&layer, IM2COL_NAME, im2col_ws, im2col_ws <= c->ws_limit,
                   im2col_ws <= c->ws_limit ? "ok" : "workspace over the limit");
    char key[320];
    algo_key(key, sizeof key, c->device_key, &g, "fp32");
    int pick;
    engine_status st = algo_select(&c->policy, c->cache, key, &layer, &cs->report, &pick, err);
    if (st) {
        char why_not[sizeof err->message];
        snprintf(why_not, sizeof why_not, "%s", err->message);
        return engine_fail(err, st, "%s (workspace limit %zu bytes)", why_not, c->ws_limit);
    }
    int algo = algo_by_name(layer.cand[pick].name);
    cs->use_cudnn = algo < N_CUDNN_ALGOS;
    cs->algo = (cudnnConvolutionFwdAlgo_t)(cs->use_cudnn ? algo : 0);
    cs->workspace = layer.cand[pick].workspace;
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
    conv_geometry g;
    conv_geometry_of(p, &p->steps[step], &g);
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
                                   g.sh, g.sw, g.dh, g.dw, g.pt, g.pl};
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
