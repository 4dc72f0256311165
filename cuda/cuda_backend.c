/* The CUDA backend: the backend seam (engine/backend.h) on an NVIDIA GPU.
 *
 * Weights go to device memory once (load_weights). Each planned batch size
 * gets its convolution algorithms (cuda_conv.c) and device copies of the
 * constants its plan folded; one activation arena (sized by the largest
 * plan, as on the CPU), one workspace shared by all layers and pinned host
 * staging buffers serve every batch size, so nothing is allocated on the
 * request path. One stream per engine instance carries every copy, kernel,
 * cuDNN and cuBLAS call. On an integrated GPU (Jetson) the staging buffers
 * are mapped host memory that kernels read and write in place, instead of
 * being copied. Images arrive as bytes at the graph's NormalizeImage node,
 * which a kernel runs, so they cross the bus at a quarter of the size.
 *
 * It is built as a shared module, libvisiond_cuda.so, which the registry
 * loads when it and its libraries are there (engine/backend_registry.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

static int device_count(char *why, size_t len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(why, len, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0)
        snprintf(why, len, "no CUDA device");
    return n;
}

static void destroy(void *ctx);

static engine_status create(const backend_config *cfg, void **out, engine_error *err)
{
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    *out = c;
    c->device = cfg->device_index;
    c->ws_limit = cfg->workspace_limit ? cfg->workspace_limit : CUDA_DEFAULT_WORKSPACE;
    c->policy = cfg->policy;
    c->cache = cfg->cache;
    GPU_CHECK(cudaSetDevice(c->device));
    GPU_CHECK(cudaGetDeviceProperties(&c->prop, c->device));
    c->integrated = c->prop.integrated != 0;
    if (c->integrated)
        GPU_CHECK(cudaSetDeviceFlags(cudaDeviceMapHost));
    GPU_CHECK(cudaStreamCreate(&c->stream));
    GPU_CHECK(cudnnCreate(&c->cudnn));
    GPU_CHECK(cudnnSetStream(c->cudnn, c->stream));
    GPU_CHECK(cublasCreate(&c->cublas));
    GPU_CHECK(cublasSetStream(c->cublas, c->stream));
#if CUDART_VERSION >= 11000
    GPU_CHECK(cublasSetMathMode(c->cublas, CUBLAS_DEFAULT_MATH)); /* FP32, no TF32 */
#endif
    GPU_CHECK(cudaEventCreate(&c->ev_start));
    GPU_CHECK(cudaEventCreate(&c->ev_stop));
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    static const char *const modes[] = {[ALGO_AUTO] = "auto", [ALGO_HEURISTIC] = "heuristic",
                                        [ALGO_EXHAUSTIVE] = "exhaustive"};
    snprintf(c->description, sizeof c->description,
             "cuda:%d %s (sm_%d%d, %.1f GiB%s), CUDA %d.%d, cuDNN %zu, cuBLAS; conv %s",
             c->device, c->prop.name, c->prop.major, c->prop.minor,
             (double)c->prop.totalGlobalMem / (1 << 30), c->integrated ? ", integrated" : "",
             rt / 1000, rt % 1000 / 10, (size_t)cudnnGetVersion(),
             c->policy.mode == ALGO_FORCED ? c->policy.forced : modes[c->policy.mode]);
    snprintf(c->device_key, sizeof c->device_key, "cuda:%s|sm%d%d|cudnn%zu", c->prop.name,
             c->prop.major, c->prop.minor, (size_t)cudnnGetVersion());
    return ENGINE_OK;
}

static void destroy(void *ctx)
{
    cuda_ctx *c = ctx;
    if (!c)
        return;
    cudaSetDevice(c->device);
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    if (c->weights && c->g)
        for (int v = 0; v < c->g->n_values; v++)
            cudaFree(c->weights[v]);
    free(c->weights);
    cudaFree(c->arena);
    cudaFree(c->workspace);
    cudaFreeHost(c->h_in);
    if (!c->integrated)
        cudaFree(c->d_in);
    cudaFreeHost(c->h_out);
    if (c->ev_start)
        cudaEventDestroy(c->ev_start);
    if (c->ev_stop)
        cudaEventDestroy(c->ev_stop);
    if (c->cublas)
        cublasDestroy(c->cublas);
    if (c->cudnn)
        cudnnDestroy(c->cudnn);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    free(c);
}

static const char *describe(void *ctx)
{
    return ((cuda_ctx *)ctx)->description;
}

static unsigned capabilities(void *ctx)
{
    return BACKEND_CAP_GPU | (((cuda_ctx *)ctx)->integrated ? BACKEND_CAP_INTEGRATED : 0);
}

/* Device memory held (backend_ops.memory); the pinned staging buffers
 * count with the workspace. */
static void memory(void *ctx, backend_memory *out)
{
    const cuda_ctx *c = ctx;
    *out = (backend_memory){.weights = c->weight_bytes,
                            .arena = c->arena ? c->arena_bytes : 0,
                            .workspace = (c->workspace ? c->workspace_bytes : 0) + c->in_bytes +
                                         c->out_bytes};
}

static engine_status upload(const void *host, size_t bytes, void **dev, engine_error *err)
{
    GPU_CHECK(cudaMalloc(dev, bytes ? bytes : 4));
    if (bytes)
        GPU_CHECK(cudaMemcpy(*dev, host, bytes, cudaMemcpyHostToDevice));
    return ENGINE_OK;
}

static engine_status load_weights(void *ctx, const graph *g, engine_error *err)
{
    cuda_ctx *c = ctx;
    GPU_CHECK(cudaSetDevice(c->device));
    c->g = g;
    c->weights = calloc((size_t)g->n_values + 1, sizeof *c->weights);
    if (!c->weights)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    for (int v = 0; v < g->n_values; v++) {
        const graph_value *gv = &g->values[v];
        if (!gv->data)
            continue;
        size_t bytes = (size_t)shape_numel(&gv->shape) * dtype_size(gv->dtype);
        engine_status st = upload(gv->data, bytes, &c->weights[v], err);
        if (st)
            return st;
        c->weight_bytes += bytes;
    }
    return ENGINE_OK;
}

engine_status cuda_reserve_workspace(cuda_ctx *c, size_t bytes, engine_error *err)
{
    if (bytes <= c->workspace_bytes && c->workspace)
        return ENGINE_OK;
    cudaFree(c->workspace);
    c->workspace = NULL;
    c->workspace_bytes = 0;
    GPU_CHECK(cudaMalloc(&c->workspace, bytes ? bytes : 4));
    c->workspace_bytes = bytes;
    return ENGINE_OK;
}

void *cuda_value_ptr(const cuda_ctx *c, const cuda_prepared *pr, const plan *p, int v)
{
    const plan_value *pv = &p->values[v];
    switch (pv->storage) {
    case STORE_INPUT: return c->d_in + pr->in_offset[pv->input_index];
    case STORE_CONST:
        return c->weights[v] && p->g->values[v].data == pv->data ? c->weights[v]
                                                                 : pr->folded[v];
    case STORE_ARENA: return c->arena + pv->offset;
    default: return NULL;
    }
}

static void release(void *ctx, void *prepared)
{
    cuda_ctx *c = ctx;
    cuda_prepared *pr = prepared;
    if (!pr)
        return;
    cudaSetDevice(c->device);
    for (int i = 0; pr->conv && i < pr->n_steps; i++)
        cuda_conv_release(&pr->conv[i]);
    if (pr->folded && c->g)
        for (int v = 0; v < c->g->n_values; v++)
            cudaFree(pr->folded[v]);
    free(pr->conv);
    free(pr->folded);
    free(pr);
}

/* Pinned staging (mapped on integrated GPUs) for inputs and outputs, and
 * the device arena; grown only when a plan needs more. */
static engine_status reserve_buffers(cuda_ctx *c, const plan *p, cuda_prepared *pr,
                                     engine_error *err)
{
    const graph *g = p->g;
    if (g->n_inputs > CUDA_MAX_IO || g->n_outputs > CUDA_MAX_IO)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "more than %d inputs or outputs",
                           CUDA_MAX_IO);
    size_t total = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        pr->in_offset[i] = total;
        total += (plan_value_bytes(p, g->inputs[i]) + 255) & ~(size_t)255;
    }
    pr->in_total = total;
    size_t staging = total;
    total = 0;
    for (int i = 0; i < g->n_outputs; i++) {
        pr->out_offset[i] = total;
        total += (plan_value_bytes(p, g->outputs[i]) + 255) & ~(size_t)255;
    }
    pr->out_total = total;
    if (staging > c->in_bytes || !c->h_in) {
        cudaFreeHost(c->h_in);
        if (!c->integrated)
            cudaFree(c->d_in);
        c->h_in = c->d_in = NULL;
        c->in_bytes = 0;
        size_t n = staging ? staging : 256;
        if (c->integrated) {
            GPU_CHECK(cudaHostAlloc((void **)&c->h_in, n, cudaHostAllocMapped));
            GPU_CHECK(cudaHostGetDevicePointer((void **)&c->d_in, c->h_in, 0));
        } else {
            GPU_CHECK(cudaHostAlloc((void **)&c->h_in, n, cudaHostAllocDefault));
            GPU_CHECK(cudaMalloc((void **)&c->d_in, n));
        }
        c->in_bytes = n;
    }
    if (pr->out_total > c->out_bytes || !c->h_out) {
        cudaFreeHost(c->h_out);
        c->h_out = NULL;
        size_t n = pr->out_total ? pr->out_total : 256;
        GPU_CHECK(cudaHostAlloc((void **)&c->h_out, n, cudaHostAllocDefault));
        c->out_bytes = n;
    }
    if (p->arena_bytes > c->arena_bytes || !c->arena) {
        cudaFree(c->arena);
        c->arena = NULL;
        GPU_CHECK(cudaMalloc((void **)&c->arena, p->arena_bytes ? p->arena_bytes : 256));
        c->arena_bytes = p->arena_bytes;
    }
    return ENGINE_OK;
}

static engine_status prepare(void *ctx, const plan *p, void **out, engine_error *err)
{
    cuda_ctx *c = ctx;
    GPU_CHECK(cudaSetDevice(c->device));
    cuda_prepared *pr = calloc(1, sizeof *pr);
    if (!pr)
        return engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    *out = pr;
    pr->n_steps = p->n_steps;
    pr->conv = calloc((size_t)p->n_steps + 1, sizeof *pr->conv);
    pr->folded = calloc((size_t)p->g->n_values + 1, sizeof *pr->folded);
    engine_status st = ENGINE_OK;
    if (!pr->conv || !pr->folded)
        st = engine_fail(err, ENGINE_E_NOMEM, "out of memory");
    if (!st)
        st = reserve_buffers(c, p, pr, err);
    /* constants this plan folded (int64 shapes, Gather indices, ...) that steps read */
    for (int s = 0; !st && s < p->n_steps; s++) {
        const graph_node *n = &p->g->nodes[p->steps[s].node];
        for (int k = 0; !st && k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0 || p->values[v].storage != STORE_CONST || pr->folded[v] ||
                (c->weights[v] && p->g->values[v].data == p->values[v].data))
                continue;
            st = upload(p->values[v].data, plan_value_bytes(p, v), &pr->folded[v], err);
            c->weight_bytes += st ? 0 : plan_value_bytes(p, v);
        }
    }
    for (int s = 0; !st && s < p->n_steps; s++)
        if (p->g->nodes[p->steps[s].node].op == OP_CONV)
            st = cuda_conv_prepare(c, pr, p, s, err);
    if (!st) {
        cudaError_t e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess)
            st = gpu_fail(err, __FILE__, __LINE__, "cudaStreamSynchronize", "CUDA", (int)e,
                          cudaGetErrorString(e));
    }
    if (st) {
        release(c, pr);
        *out = NULL;
    }
    return st;
}

/* --- the operators other than Conv --- */

static int64_t prod(const shape_t *s, int from, int to)
{
    int64_t r = 1;
    for (int i = from; i < to; i++)
        r *= s->dim[i];
    return r;
}

static k_strides strides_for(const shape_t *out, const int64_t *sa, const int64_t *sb,
                             int64_t base)
{
    k_strides st;
    memset(&st, 0, sizeof st);
    st.rank = out->rank;
    for (int i = 0; i < out->rank; i++) {
        st.dim[i] = out->dim[i];
        st.sa[i] = sa ? sa[i] : 0;
        st.sb[i] = sb ? sb[i] : 0;
    }
    st.base_a = base;
    return st;
}

/* Row-major C (m x n) = op(A) op(B) with cuBLAS's column-major calls:
 * C^T = op(B)^T op(A)^T; each leading dimension is its matrix's stored width. */
static engine_status gemm(cuda_ctx *c, bool ta, bool tb, int m, int n, int k, float alpha,
                          const float *a, int lda, const float *b, int ldb, float beta, float *y,
                          engine_error *err)
{
    GPU_CHECK(cublasSgemm(c->cublas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                          n, m, k, &alpha, b, ldb, a, lda, &beta, y, n));
    return ENGINE_OK;
}

static engine_status run_gemm(cuda_ctx *c, const cuda_prepared *pr, const plan *p,
                              const graph_node *n, engine_error *err)
{
    const shape_t *as = &p->values[n->inputs[0]].shape, *bs = &p->values[n->inputs[1]].shape;
    const gemm_params *gp = &n->p.gemm;
    int m = (int)(gp->trans_a ? as->dim[1] : as->dim[0]);
    int k = (int)(gp->trans_a ? as->dim[0] : as->dim[1]);
    int nn = (int)(gp->trans_b ? bs->dim[0] : bs->dim[1]);
    float *y = cuda_value_ptr(c, pr, p, n->outputs[0]);
    shape_t ys = {.rank = 2, .dim = {m, nn}};
    float beta = 0.0f;
    if (n->n_inputs > 2 && n->inputs[2] >= 0 && gp->beta != 0.0f) {
        int64_t sc[ENGINE_MAX_RANK];
        nd_broadcast_strides(&p->values[n->inputs[2]].shape, &ys, sc);
        k_strides st = strides_for(&ys, sc, NULL, 0);
        GPU_CHECK(k_strided_copy(c->stream, y, cuda_value_ptr(c, pr, p, n->inputs[2]), &st,
                                 (int64_t)m * nn, 4));
        beta = gp->beta;
    }
    if (m && nn) {
        if (k > 0) {
            engine_status s = gemm(c, gp->trans_a, gp->trans_b, m, nn, k, gp->alpha,
                                   cuda_value_ptr(c, pr, p, n->inputs[0]), (int)as->dim[1],
                                   cuda_value_ptr(c, pr, p, n->inputs[1]), (int)bs->dim[1], beta,
                                   y, err);
            if (s)
                return s;
        } else if (beta == 0.0f) {
            GPU_CHECK(cudaMemsetAsync(y, 0, (size_t)m * nn * sizeof(float), c->stream));
        }
    }
    if (n->act.kind != ACT_NONE)
        GPU_CHECK(k_activation(c->stream, y, y, (int64_t)m * nn, cuda_act(&n->act)));
    return ENGINE_OK;
}

static engine_status run_matmul(cuda_ctx *c, const cuda_prepared *pr, const plan *p,
                                const graph_node *n, engine_error *err)
{
    shape_t a2 = p->values[n->inputs[0]].shape, b2 = p->values[n->inputs[1]].shape;
    if (a2.rank == 1) {
        a2.rank = 2;
        a2.dim[1] = a2.dim[0];
        a2.dim[0] = 1;
    }
    if (b2.rank == 1) {
        b2.rank = 2;
        b2.dim[1] = 1;
    }
    int64_t m = a2.dim[a2.rank - 2], k = a2.dim[a2.rank - 1], nn = b2.dim[b2.rank - 1];
    shape_t ba = {.rank = a2.rank - 2}, bb = {.rank = b2.rank - 2}, ob;
    for (int i = 0; i < ba.rank; i++)
        ba.dim[i] = a2.dim[i];
    for (int i = 0; i < bb.rank; i++)
        bb.dim[i] = b2.dim[i];
    shape_broadcast(&ba, &bb, &ob, NULL);
    int64_t batches = shape_numel(&ob);
    const float *a = cuda_value_ptr(c, pr, p, n->inputs[0]);
    const float *b = cuda_value_ptr(c, pr, p, n->inputs[1]);
    float *y = cuda_value_ptr(c, pr, p, n->outputs[0]);
    if (!batches || !m || !nn)
        return ENGINE_OK;
    if (!k) {
        GPU_CHECK(cudaMemsetAsync(y, 0, (size_t)(batches * m * nn) * sizeof(float), c->stream));
        return ENGINE_OK;
    }
    if (shape_numel(&bb) == 1 && shape_numel(&ba) == batches) /* rows of a linear layer */
        return gemm(c, false, false, (int)(batches * m), (int)nn, (int)k, 1.0f, a, (int)k, b,
                    (int)nn, 0.0f, y, err);
    int64_t sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK], idx[ENGINE_MAX_RANK] = {0};
    nd_broadcast_strides(&ba, &ob, sa);
    nd_broadcast_strides(&bb, &ob, sb);
    int64_t oa = 0, obb = 0;
    for (int64_t t = 0; t < batches; t++) {
        engine_status s = gemm(c, false, false, (int)m, (int)nn, (int)k, 1.0f, a + oa * m * k,
                               (int)k, b + obb * k * nn, (int)nn, 0.0f, y + t * m * nn, err);
        if (s)
            return s;
        for (int d = ob.rank - 1; d >= 0; d--) {
            idx[d]++;
            oa += sa[d];
            obb += sb[d];
            if (idx[d] < ob.dim[d])
                break;
            oa -= sa[d] * idx[d];
            obb -= sb[d] * idx[d];
            idx[d] = 0;
        }
    }
    return ENGINE_OK;
}

/* Concat and Split: one 2-D copy per part (rows: the outer axes). */
static engine_status copy_parts(cuda_ctx *c, const cuda_prepared *pr, const plan *p,
                                const graph_node *n, int axis, bool concat, engine_error *err)
{
    const shape_t *whole = &p->values[concat ? n->outputs[0] : n->inputs[0]].shape;
    int64_t outer = prod(whole, 0, axis), inner = prod(whole, axis + 1, whole->rank);
    size_t row = (size_t)(whole->dim[axis] * inner) * sizeof(float), col = 0;
    char *big = cuda_value_ptr(c, pr, p, concat ? n->outputs[0] : n->inputs[0]);
    int parts = concat ? n->n_inputs : n->n_outputs;
    for (int i = 0; i < parts; i++) {
        int v = concat ? n->inputs[i] : n->outputs[i];
        size_t chunk = (size_t)(p->values[v].shape.dim[axis] * inner) * sizeof(float);
        char *part = cuda_value_ptr(c, pr, p, v);
        if (chunk && outer) {
            if (concat)
                GPU_CHECK(cudaMemcpy2DAsync(big + col, row, part, chunk, chunk, (size_t)outer,
                                            cudaMemcpyDeviceToDevice, c->stream));
            else
                GPU_CHECK(cudaMemcpy2DAsync(part, chunk, big + col, row, chunk, (size_t)outer,
                                            cudaMemcpyDeviceToDevice, c->stream));
        }
        col += chunk;
    }
    return ENGINE_OK;
}

static engine_status run_step(cuda_ctx *c, const cuda_prepared *pr, const plan *p, int i,
                              engine_error *err)
{
    const plan_step *st = &p->steps[i];
    const graph_node *n = &p->g->nodes[st->node];
    const shape_t *xs = &p->values[n->inputs[0]].shape;
    const float *x = cuda_value_ptr(c, pr, p, n->inputs[0]);
    float *y = n->outputs[0] >= 0 ? cuda_value_ptr(c, pr, p, n->outputs[0]) : NULL;
    const shape_t *ys = n->outputs[0] >= 0 ? &p->values[n->outputs[0]].shape : NULL;
    int64_t numel = shape_numel(xs);
    cudaStream_t s = c->stream;
    switch (n->op) {
    case OP_CONV:
        return cuda_conv_run(c, pr, p, i, err);
    case OP_GEMM:
        return run_gemm(c, pr, p, n, err);
    case OP_MATMUL:
        return run_matmul(c, pr, p, n, err);
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: {
        int64_t sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK];
        nd_broadcast_strides(xs, ys, sa);
        nd_broadcast_strides(&p->values[n->inputs[1]].shape, ys, sb);
        k_strides k = strides_for(ys, sa, sb, 0);
        GPU_CHECK(k_binary(s, (int)(n->op - OP_ADD) + 1, x, cuda_value_ptr(c, pr, p, n->inputs[1]),
                           y, &k, shape_numel(ys)));
        return ENGINE_OK;
    }
    case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID: case OP_HARD_SIGMOID:
    case OP_HARD_SWISH: case OP_EXP:
        GPU_CHECK(k_activation(s, x, y, numel, cuda_act(&n->act)));
        return ENGINE_OK;
    case OP_MAXPOOL: case OP_AVGPOOL: {
        bool one_d = xs->rank == 3;
        k_pool_desc d = {
            .nc = xs->dim[0] * xs->dim[1], .h = one_d ? 1 : xs->dim[2], .w = xs->dim[xs->rank - 1],
            .oh = one_d ? 1 : ys->dim[2], .ow = ys->dim[ys->rank - 1],
            .kh = n->p.win.kernel[0], .kw = n->p.win.kernel[1],
            .sh = n->p.win.stride[0], .sw = n->p.win.stride[1],
            .dh = n->p.win.dilation[0], .dw = n->p.win.dilation[1],
            .ph = st->r.win.pad_begin[0], .pw = st->r.win.pad_begin[1],
            .pe_h = st->r.win.pad_end[0], .pe_w = st->r.win.pad_end[1],
            .is_max = n->op == OP_MAXPOOL, .count_include_pad = n->p.win.count_include_pad};
        GPU_CHECK(k_pool2d(s, x, y, &d));
        return ENGINE_OK;
    }
    case OP_GLOBAL_AVGPOOL: case OP_GLOBAL_MAXPOOL:
        GPU_CHECK(k_global_pool(s, x, y, xs->dim[0] * xs->dim[1], prod(xs, 2, xs->rank),
                                n->op == OP_GLOBAL_MAXPOOL));
        return ENGINE_OK;
    case OP_BATCHNORM:
        GPU_CHECK(k_channel_affine(s, x, y, cuda_value_ptr(c, pr, p, n->inputs[1]),
                                   cuda_value_ptr(c, pr, p, n->inputs[2]), xs->dim[0], xs->dim[1],
                                   prod(xs, 2, xs->rank)));
        return ENGINE_OK;
    case OP_LRN:
        GPU_CHECK(k_lrn(s, x, y, xs->dim[0], xs->dim[1], prod(xs, 2, xs->rank), n->p.lrn.size,
                        n->p.lrn.alpha, n->p.lrn.beta, n->p.lrn.bias));
        return ENGINE_OK;
    case OP_SOFTMAX: {
        int a = st->r.axis;
        if (n->p.softmax.legacy_2d)
            GPU_CHECK(k_softmax(s, x, y, prod(xs, 0, a), prod(xs, a, xs->rank), 1));
        else
            GPU_CHECK(k_softmax(s, x, y, prod(xs, 0, a), xs->dim[a], prod(xs, a + 1, xs->rank)));
        return ENGINE_OK;
    }
    case OP_CONCAT:
        return copy_parts(c, pr, p, n, st->r.axis, true, err);
    case OP_SPLIT:
        return copy_parts(c, pr, p, n, st->r.axis, false, err);
    case OP_SLICE: case OP_TRANSPOSE: {
        int64_t in_st[ENGINE_MAX_RANK], sa[ENGINE_MAX_RANK], base = 0;
        nd_strides(xs, in_st);
        for (int d = 0; d < ys->rank; d++) {
            if (n->op == OP_TRANSPOSE) {
                sa[d] = in_st[st->r.transpose.perm[d]];
            } else {
                sa[d] = st->r.slice.step[d] * in_st[d];
                if (ys->dim[d] > 0)
                    base += st->r.slice.start[d] * in_st[d];
            }
        }
        k_strides k = strides_for(ys, sa, NULL, base);
        GPU_CHECK(k_strided_copy(s, y, x, &k, shape_numel(ys), 4));
        return ENGINE_OK;
    }
    case OP_PAD: {
        int64_t in_st[ENGINE_MAX_RANK];
        nd_strides(xs, in_st);
        k_strides k = strides_for(ys, in_st, NULL, 0);
        GPU_CHECK(k_pad(s, y, x, &k, xs->dim, st->r.pad.begin, (int)n->p.pad, st->r.pad.value,
                        shape_numel(ys)));
        return ENGINE_OK;
    }
    case OP_GATHER: {
        int a = st->r.axis;
        GPU_CHECK(k_gather(s, y, x, cuda_value_ptr(c, pr, p, n->inputs[1]),
                           shape_numel(&p->values[n->inputs[1]].shape), prod(xs, 0, a), xs->dim[a],
                           prod(xs, a + 1, xs->rank)));
        return ENGINE_OK;
    }
    case OP_REDUCE_MEAN: {
        shape_t kept = *xs;
        int64_t count = 1;
        for (int d = 0; d < xs->rank; d++)
            if ((st->r.reduce.axes_mask >> d) & 1) {
                kept.dim[d] = 1;
                count *= xs->dim[d];
            }
        int64_t ostr[ENGINE_MAX_RANK];
        nd_strides(&kept, ostr);
        for (int d = 0; d < xs->rank; d++)
            if ((st->r.reduce.axes_mask >> d) & 1)
                ostr[d] = 0;
        k_strides k = strides_for(xs, ostr, NULL, 0);
        GPU_CHECK(k_reduce_mean(s, x, y, &k, numel, shape_numel(&kept),
                                count ? 1.0f / (float)count : 0.0f));
        return ENGINE_OK;
    }
    case OP_CAST:
        GPU_CHECK(cudaMemcpyAsync(y, x, (size_t)numel * sizeof(float), cudaMemcpyDeviceToDevice, s));
        return ENGINE_OK;
    case OP_NORMALIZE_IMAGE: /* images as bytes, or the model's input as it is */
        if (!c->given[p->values[n->inputs[1]].input_index]) {
            GPU_CHECK(cudaMemcpyAsync(y, x, (size_t)numel * sizeof(float),
                                      cudaMemcpyDeviceToDevice, s));
            return ENGINE_OK;
        }
        GPU_CHECK(k_normalize_u8(s, cuda_value_ptr(c, pr, p, n->inputs[1]), y, xs->dim[0],
                                 xs->dim[2], xs->dim[3], (int)xs->dim[1], n->p.norm.mul,
                                 n->p.norm.add, n->p.norm.bgr));
        return ENGINE_OK;
    default:
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "the CUDA backend cannot run %s (node '%s')",
                           op_name(n->op), n->name);
    }
}

/* Steps, then the outputs back to the host. */
static engine_status run_steps(cuda_ctx *c, const cuda_prepared *pr, const plan *p,
                               void *const *outputs, double *step_ms, engine_error *err)
{
    for (int i = 0; i < p->n_steps; i++) {
        if (step_ms)
            GPU_CHECK(cudaEventRecord(c->ev_start, c->stream));
        engine_status st = run_step(c, pr, p, i, err);
        if (st)
            return st;
        if (step_ms) {
            float ms;
            GPU_CHECK(cudaEventRecord(c->ev_stop, c->stream));
            GPU_CHECK(cudaEventSynchronize(c->ev_stop));
            GPU_CHECK(cudaEventElapsedTime(&ms, c->ev_start, c->ev_stop));
            step_ms[i] = ms;
        }
    }
    const graph *g = p->g;
    for (int i = 0; i < g->n_outputs; i++) {
        size_t bytes = plan_value_bytes(p, g->outputs[i]);
        if (bytes)
            GPU_CHECK(cudaMemcpyAsync(c->h_out + pr->out_offset[i],
                                      cuda_value_ptr(c, pr, p, g->outputs[i]), bytes,
                                      cudaMemcpyDeviceToHost, c->stream));
    }
    GPU_CHECK(cudaStreamSynchronize(c->stream));
    for (int i = 0; i < g->n_outputs; i++) {
        size_t bytes = plan_value_bytes(p, g->outputs[i]);
        if (bytes)
            memcpy(outputs[i], c->h_out + pr->out_offset[i], bytes);
    }
    return ENGINE_OK;
}

/* Whether [ptr, ptr + bytes) lies in a block of host_alloc's. */
static bool in_pinned(const cuda_ctx *c, const void *ptr, size_t bytes)
{
    const char *q = ptr;
    for (int i = 0; i < CUDA_MAX_PINNED; i++)
        if (c->pinned[i].p && q >= c->pinned[i].p && q + bytes <= c->pinned[i].p + c->pinned[i].n)
            return true;
    return false;
}

/* Pinned host memory for the batcher to gather into (plain memory when the
 * table of blocks is full or pinning fails). */
static void *host_alloc(void *ctx, size_t bytes)
{
    cuda_ctx *c = ctx;
    for (int i = 0; i < CUDA_MAX_PINNED; i++) {
        if (c->pinned[i].p)
            continue;
        void *p = NULL;
        if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault) != cudaSuccess)
            break;
        c->pinned[i].p = p;
        c->pinned[i].n = bytes;
        return p;
    }
    return tensor_alloc(bytes);
}

static void host_free(void *ctx, void *p)
{
    cuda_ctx *c = ctx;
    for (int i = 0; i < CUDA_MAX_PINNED; i++)
        if (c->pinned[i].p == p) {
            cudaFreeHost(p);
            c->pinned[i].p = NULL;
            return;
        }
    tensor_free(p);
}

static long input_copies(void *ctx)
{
    return ((const cuda_ctx *)ctx)->input_copies;
}

static engine_status run(void *ctx, void *prepared, const plan *p, const void *const *inputs,
                         void *const *outputs, double *step_ms, engine_error *err)
{
    cuda_ctx *c = ctx;
    cuda_prepared *pr = prepared;
    GPU_CHECK(cudaSetDevice(c->device));
    const graph *g = p->g;
    for (int i = 0; i < g->n_inputs; i++) { /* what is given crosses the bus; images as bytes */
        size_t bytes = plan_value_bytes(p, g->inputs[i]);
        c->given[i] = inputs[i] != NULL;
        if (!bytes || !inputs[i])
            continue;
        if (!c->integrated && in_pinned(c, inputs[i], bytes)) { /* the batcher's pinned batch */
            GPU_CHECK(cudaMemcpyAsync(c->d_in + pr->in_offset[i], inputs[i], bytes,
                                      cudaMemcpyHostToDevice, c->stream));
            continue;
        }
        memcpy(c->h_in + pr->in_offset[i], inputs[i], bytes); /* mapped (Jetson) or pageable */
        c->input_copies++;
        if (!c->integrated)
            GPU_CHECK(cudaMemcpyAsync(c->d_in + pr->in_offset[i], c->h_in + pr->in_offset[i],
                                      bytes, cudaMemcpyHostToDevice, c->stream));
    }
    return run_steps(c, pr, p, outputs, step_ms, err);
}

/* The operators run_step has a case for. */
static bool supports_step(void *ctx, const plan *p, int step, char *why, size_t n)
{
    (void)ctx;
    const graph_node *node = &p->g->nodes[p->steps[step].node];
    /* indices and booleans computed at run time stay on the host */
    for (int k = 0; k < node->n_inputs + node->n_outputs; k++) {
        int v = k < node->n_inputs ? node->inputs[k] : node->outputs[k - node->n_inputs];
        if (v < 0 || p->values[v].storage == STORE_CONST || node->op == OP_NORMALIZE_IMAGE)
            continue;
        if (p->values[v].dtype != DTYPE_FLOAT32) {
            snprintf(why, n, "%s on %s data", op_name(node->op), dtype_name(p->values[v].dtype));
            return false;
        }
    }
    if (node->act.kind > ACT_EXP) { /* the kernels' activations end at Exp */
        snprintf(why, n, "no CUDA kernel for the activation of %s", op_name(node->op));
        return false;
    }
    switch (node->op) {
    case OP_CONV: case OP_GEMM: case OP_MATMUL: case OP_ADD: case OP_SUB: case OP_MUL:
    case OP_DIV: case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID:
    case OP_HARD_SIGMOID: case OP_HARD_SWISH: case OP_EXP: case OP_MAXPOOL: case OP_AVGPOOL:
    case OP_GLOBAL_AVGPOOL: case OP_GLOBAL_MAXPOOL: case OP_BATCHNORM: case OP_LRN:
    case OP_SOFTMAX: case OP_CONCAT: case OP_SPLIT: case OP_SLICE: case OP_TRANSPOSE: case OP_PAD:
    case OP_GATHER: case OP_REDUCE_MEAN: case OP_CAST: case OP_NORMALIZE_IMAGE:
        return true;
    default:
        snprintf(why, n, "no CUDA kernel for %s", op_name(node->op));
        return false;
    }
}

static bool algo_report(void *ctx, void *prepared, const plan *p, int step,
                        engine_algo_report *out)
{
    (void)ctx, (void)p;
    cuda_prepared *pr = prepared;
    if (step < 0 || step >= pr->n_steps || !pr->conv[step].is_conv)
        return false;
    *out = pr->conv[step].report;
    return true;
}

static const backend_ops cuda_backend_ops = {
    .name = "cuda",
    .priority = 10,
    .kind = BACKEND_CAP_GPU,
    .device_count = device_count,
    .conv_algorithms = cuda_conv_algorithms,
    .create = create,
    .destroy = destroy,
    .describe = describe,
    .capabilities = capabilities,
    .supports_step = supports_step,
    .host_alloc = host_alloc,
    .host_free = host_free,
    .input_copies = input_copies,
    .load_weights = load_weights,
    .prepare = prepare,
    .release = release,
    .run = run,
    .algo_report = algo_report,
    .memory = memory,
};

/* The module's entry point (backend.h): the registry dlopens
 * libvisiond_cuda.so and asks for its backend here. */
const backend_ops *visiond_backend_module(int abi);
const backend_ops *visiond_backend_module(int abi)
{
    return abi == BACKEND_ABI ? &cuda_backend_ops : NULL;
}
