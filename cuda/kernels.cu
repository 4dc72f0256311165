// CUDA kernels of the GPU backend; declarations and conventions in kernels.h.
//
// Plain grid-stride loops over output elements: these operators are
// memory-bound and small next to the convolutions and GEMMs that cuDNN and
// cuBLAS run, so clarity wins over cleverness here. Written for every CUDA
// from 6.5 (Jetson TK1) on: no features newer than that are used.
#include "kernels.h"

#define THREADS 256

static unsigned blocks_for(int64_t n)
{
    int64_t b = (n + THREADS - 1) / THREADS;
    if (b < 1)
        b = 1;
    return (unsigned)(b > 65535 ? 65535 : b);
}

#define GRID_LOOP(i, n)                                                                      \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);               \
         i += (int64_t)blockDim.x * gridDim.x)

__device__ __forceinline__ float act_apply(k_act a, float x)
{
    switch (a.kind) {
    case 1: return x > 0.f ? x : 0.f;                       // Relu
    case 2: return x >= 0.f ? x : a.alpha * x;              // LeakyRelu
    case 3: return fminf(fmaxf(x, a.alpha), a.beta);        // Clip
    case 4: return 1.f / (1.f + expf(-x));                  // Sigmoid
    case 5: return fminf(fmaxf(a.alpha * x + a.beta, 0.f), 1.f);       // HardSigmoid
    case 6: return x * fminf(fmaxf(x * (1.f / 6.f) + 0.5f, 0.f), 1.f); // HardSwish
    case 7: return expf(x);                                 // Exp
    default: return x;
    }
}

// Offsets of element i of the output in the two sources.
__device__ __forceinline__ void offsets(const k_strides &st, int64_t i, int64_t *oa, int64_t *ob)
{
    int64_t a = st.base_a, b = 0;
    for (int d = st.rank - 1; d >= 0; d--) {
        int64_t q = i / st.dim[d], r = i - q * st.dim[d];
        a += r * st.sa[d];
        b += r * st.sb[d];
        i = q;
    }
    *oa = a;
    *ob = b;
}

__global__ void binary_kernel(int op, const float *a, const float *b, float *y, k_strides st,
                              int64_t n)
{
    GRID_LOOP(i, n) {
        int64_t oa, ob;
        offsets(st, i, &oa, &ob);
        float u = a[oa], v = b[ob];
        y[i] = op == 1 ? u + v : op == 2 ? u - v : op == 3 ? u * v : u / v;
    }
}

extern "C" cudaError_t k_binary(cudaStream_t s, int op, const float *a, const float *b,
                                float *y, const k_strides *st, int64_t n)
{
    binary_kernel<<<blocks_for(n), THREADS, 0, s>>>(op, a, b, y, *st, n);
    return cudaGetLastError();
}

__global__ void activation_kernel(const float *x, float *y, int64_t n, k_act act)
{
    GRID_LOOP(i, n) y[i] = act_apply(act, x[i]);
}

extern "C" cudaError_t k_activation(cudaStream_t s, const float *x, float *y, int64_t n,
                                    k_act act)
{
    activation_kernel<<<blocks_for(n), THREADS, 0, s>>>(x, y, n, act);
    return cudaGetLastError();
}

__global__ void bias_act_kernel(float *y, const float *bias, const float *residual,
                                int64_t channels, int64_t spatial, int64_t n, k_act act)
{
    GRID_LOOP(i, n) {
        float v = y[i];
        if (bias)
            v += bias[(i / spatial) % channels];
        if (residual)
            v += residual[i];
        y[i] = act_apply(act, v);
    }
}

extern "C" cudaError_t k_bias_act(cudaStream_t s, float *y, const float *bias,
                                  const float *residual, int64_t images, int64_t channels,
                                  int64_t spatial, k_act act)
{
    int64_t n = images * channels * spatial;
    bias_act_kernel<<<blocks_for(n), THREADS, 0, s>>>(y, bias, residual, channels, spatial, n,
                                                      act);
    return cudaGetLastError();
}

__global__ void affine_kernel(const float *x, float *y, const float *scale, const float *shift,
                              int64_t channels, int64_t spatial, int64_t n)
{
    GRID_LOOP(i, n) {
        int64_t c = (i / spatial) % channels;
        y[i] = x[i] * scale[c] + shift[c];
    }
}

extern "C" cudaError_t k_channel_affine(cudaStream_t s, const float *x, float *y,
                                        const float *scale, const float *shift, int64_t images,
                                        int64_t channels, int64_t spatial)
{
    int64_t n = images * channels * spatial;
    affine_kernel<<<blocks_for(n), THREADS, 0, s>>>(x, y, scale, shift, channels, spatial, n);
    return cudaGetLastError();
}

__global__ void pool_kernel(const float *x, float *y, k_pool_desc p, int64_t n)
{
    GRID_LOOP(i, n) {
        int64_t ox = i % p.ow, oy = (i / p.ow) % p.oh, plane = i / (p.ow * p.oh);
        const float *xp = x + plane * p.h * p.w;
        int64_t y0 = oy * p.sh - p.ph, x0 = ox * p.sw - p.pw;
        float best = -3.402823466e38f, sum = 0.f;
        int64_t count = 0;
        bool any = false;
        for (int64_t ky = 0; ky < p.kh; ky++) {
            int64_t iy = y0 + ky * p.dh;
            if (iy < 0 || iy >= p.h)
                continue;
            for (int64_t kx = 0; kx < p.kw; kx++) {
                int64_t ix = x0 + kx * p.dw;
                if (ix < 0 || ix >= p.w)
                    continue;
                float v = xp[iy * p.w + ix];
                if (!any || v > best || v != v)
                    best = v;
                any = true;
                sum += v;
                count++;
            }
        }
        if (p.is_max) {
            y[i] = any ? best : 0.f;
            continue;
        }
        if (p.count_include_pad) { // the window clipped to the padded input
            int64_t y1 = y0 + (p.kh - 1) * p.dh + 1, x1 = x0 + (p.kw - 1) * p.dw + 1;
            if (y1 > p.h + p.pe_h)
                y1 = p.h + p.pe_h;
            if (x1 > p.w + p.pe_w)
                x1 = p.w + p.pe_w;
            int64_t ny = y1 > y0 ? (y1 - y0 + p.dh - 1) / p.dh : 0;
            int64_t nx = x1 > x0 ? (x1 - x0 + p.dw - 1) / p.dw : 0;
            count = ny * nx;
        }
        y[i] = count ? sum / (float)count : 0.f;
    }
}

extern "C" cudaError_t k_pool2d(cudaStream_t s, const float *x, float *y, const k_pool_desc *p)
{
    int64_t n = p->nc * p->oh * p->ow;
    pool_kernel<<<blocks_for(n), THREADS, 0, s>>>(x, y, *p, n);
    return cudaGetLastError();
}

// One block per plane: a shared-memory reduction.
__global__ void global_pool_kernel(const float *x, float *y, int64_t nc, int64_t spatial,
                                   int is_max)
{
    __shared__ float part[THREADS];
    for (int64_t plane = blockIdx.x; plane < nc; plane += gridDim.x) {
        const float *xp = x + plane * spatial;
        float acc = is_max ? -3.402823466e38f : 0.f;
        for (int64_t i = threadIdx.x; i < spatial; i += blockDim.x)
            acc = is_max ? fmaxf(acc, xp[i]) : acc + xp[i];
        part[threadIdx.x] = acc;
        __syncthreads();
        for (int half = THREADS / 2; half > 0; half /= 2) {
            if (threadIdx.x < half)
                part[threadIdx.x] = is_max ? fmaxf(part[threadIdx.x], part[threadIdx.x + half])
                                           : part[threadIdx.x] + part[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0)
            y[plane] = is_max ? part[0] : part[0] / (float)spatial;
        __syncthreads();
    }
}

extern "C" cudaError_t k_global_pool(cudaStream_t s, const float *x, float *y, int64_t nc,
                                     int64_t spatial, int is_max)
{
    unsigned blocks = (unsigned)(nc > 65535 ? 65535 : (nc < 1 ? 1 : nc));
    global_pool_kernel<<<blocks, THREADS, 0, s>>>(x, y, nc, spatial, is_max);
    return cudaGetLastError();
}

// One block per softmax row.
__global__ void softmax_kernel(const float *x, float *y, int64_t outer, int64_t len,
                               int64_t inner)
{
    __shared__ float part[THREADS];
    for (int64_t row = blockIdx.x; row < outer * inner; row += gridDim.x) {
        int64_t o = row / inner, j = row % inner;
        const float *xp = x + o * len * inner + j;
        float *yp = y + o * len * inner + j;
        float mx = -3.402823466e38f;
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x)
            mx = fmaxf(mx, xp[i * inner]);
        part[threadIdx.x] = mx;
        __syncthreads();
        for (int half = THREADS / 2; half > 0; half /= 2) {
            if (threadIdx.x < half)
                part[threadIdx.x] = fmaxf(part[threadIdx.x], part[threadIdx.x + half]);
            __syncthreads();
        }
        mx = part[0];
        __syncthreads();
        float sum = 0.f;
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
            float e = expf(xp[i * inner] - mx);
            yp[i * inner] = e;
            sum += e;
        }
        part[threadIdx.x] = sum;
        __syncthreads();
        for (int half = THREADS / 2; half > 0; half /= 2) {
            if (threadIdx.x < half)
                part[threadIdx.x] += part[threadIdx.x + half];
            __syncthreads();
        }
        float inv = 1.f / part[0];
        for (int64_t i = threadIdx.x; i < len; i += blockDim.x)
            yp[i * inner] *= inv;
        __syncthreads();
    }
}

extern "C" cudaError_t k_softmax(cudaStream_t s, const float *x, float *y, int64_t outer,
                                 int64_t len, int64_t inner)
{
    int64_t rows = outer * inner;
    unsigned blocks = (unsigned)(rows > 65535 ? 65535 : (rows < 1 ? 1 : rows));
    softmax_kernel<<<blocks, THREADS, 0, s>>>(x, y, outer, len, inner);
    return cudaGetLastError();
}

__global__ void lrn_kernel(const float *x, float *y, int64_t channels, int64_t spatial,
                           int64_t size, float alpha, float beta, float bias, int64_t n)
{
    int64_t before = (size - 1) / 2, after = size - 1 - before;
    GRID_LOOP(i, n) {
        int64_t sp = i % spatial, c = (i / spatial) % channels, img = i / (spatial * channels);
        int64_t lo = c - before < 0 ? 0 : c - before;
        int64_t hi = c + after >= channels ? channels - 1 : c + after;
        const float *base = x + img * channels * spatial + sp;
        float sq = 0.f;
        for (int64_t k = lo; k <= hi; k++) {
            float v = base[k * spatial];
            sq += v * v;
        }
        y[i] = x[i] / powf(bias + alpha / (float)size * sq, beta);
    }
}

extern "C" cudaError_t k_lrn(cudaStream_t s, const float *x, float *y, int64_t images,
                             int64_t channels, int64_t spatial, int64_t size, float alpha,
                             float beta, float bias)
{
    int64_t n = images * channels * spatial;
    lrn_kernel<<<blocks_for(n), THREADS, 0, s>>>(x, y, channels, spatial, size, alpha, beta,
                                                 bias, n);
    return cudaGetLastError();
}

template <typename T>
__global__ void strided_copy_kernel(T *dst, const T *src, k_strides st, int64_t n)
{
    GRID_LOOP(i, n) {
        int64_t oa, ob;
        offsets(st, i, &oa, &ob);
        dst[i] = src[oa];
    }
}

extern "C" cudaError_t k_strided_copy(cudaStream_t s, void *dst, const void *src,
                                      const k_strides *st, int64_t n, int elem)
{
    if (elem == 8)
        strided_copy_kernel<long long><<<blocks_for(n), THREADS, 0, s>>>(
            (long long *)dst, (const long long *)src, *st, n);
    else
        strided_copy_kernel<float><<<blocks_for(n), THREADS, 0, s>>>((float *)dst,
                                                                      (const float *)src, *st, n);
    return cudaGetLastError();
}

struct pad_geometry {
    int64_t in_dim[K_MAX_RANK], begin[K_MAX_RANK];
};

__global__ void pad_kernel(float *dst, const float *src, k_strides st, pad_geometry g, int mode,
                           float value, int64_t n)
{
    GRID_LOOP(i, n) {
        int64_t rem = i, off = 0;
        bool inside = true;
        for (int d = st.rank - 1; d >= 0; d--) {
            int64_t q = rem / st.dim[d], r = rem - q * st.dim[d];
            rem = q;
            int64_t k = r - g.begin[d], len = g.in_dim[d];
            if (k < 0 || k >= len) {
                if (mode == 0 || len == 0) {
                    inside = false;
                    break;
                }
                if (mode == 2) {
                    k = k < 0 ? 0 : len - 1;
                } else if (len == 1) {
                    k = 0;
                } else {
                    int64_t period = 2 * (len - 1);
                    k = ((k % period) + period) % period;
                    if (k >= len)
                        k = period - k;
                }
            }
            off += k * st.sa[d];
        }
        dst[i] = inside ? src[off] : value;
    }
}

extern "C" cudaError_t k_pad(cudaStream_t s, float *dst, const float *src, const k_strides *st,
                             const int64_t *in_dim, const int64_t *begin, int mode, float value,
                             int64_t n)
{
    pad_geometry g;
    for (int d = 0; d < K_MAX_RANK; d++) {
        g.in_dim[d] = d < st->rank ? in_dim[d] : 1;
        g.begin[d] = d < st->rank ? begin[d] : 0;
    }
    pad_kernel<<<blocks_for(n), THREADS, 0, s>>>(dst, src, *st, g, mode, value, n);
    return cudaGetLastError();
}

__global__ void gather_kernel(float *dst, const float *src, const int64_t *idx, int64_t n_idx,
                              int64_t axis_len, int64_t inner, int64_t n)
{
    GRID_LOOP(i, n) {
        int64_t in = i % inner, j = (i / inner) % n_idx, o = i / (inner * n_idx);
        int64_t k = idx[j] < 0 ? idx[j] + axis_len : idx[j];
        dst[i] = src[(o * axis_len + k) * inner + in];
    }
}

extern "C" cudaError_t k_gather(cudaStream_t s, float *dst, const float *src,
                                const int64_t *indices, int64_t n_indices, int64_t outer,
                                int64_t axis_len, int64_t inner)
{
    int64_t n = outer * n_indices * inner;
    gather_kernel<<<blocks_for(n), THREADS, 0, s>>>(dst, src, indices, n_indices, axis_len,
                                                    inner, n);
    return cudaGetLastError();
}

__global__ void reduce_mean_kernel(const float *x, float *y, k_strides st, int64_t n,
                                   float inv)
{
    GRID_LOOP(i, n) {
        int64_t oa, ob;
        offsets(st, i, &oa, &ob);
        atomicAdd(&y[oa - st.base_a], x[i] * inv);
    }
}

extern "C" cudaError_t k_reduce_mean(cudaStream_t s, const float *x, float *y,
                                     const k_strides *st, int64_t n_in, int64_t n_out,
                                     float inv_count)
{
    cudaError_t e = cudaMemsetAsync(y, 0, (size_t)n_out * sizeof(float), s);
    if (e != cudaSuccess)
        return e;
    reduce_mean_kernel<<<blocks_for(n_in), THREADS, 0, s>>>(x, y, *st, n_in, inv_count);
    return cudaGetLastError();
}

__global__ void im2col_kernel(const float *x, float *col, k_im2col_desc p, int64_t n)
{
    int64_t cols = p.oh * p.ow;
    GRID_LOOP(i, n) {
        int64_t cidx = i % cols, r = i / cols;
        int64_t ox = cidx % p.ow, oy = cidx / p.ow;
        int64_t kx = r % p.kw, ky = (r / p.kw) % p.kh, c = r / (p.kw * p.kh);
        int64_t iy = oy * p.sh - p.ph + ky * p.dh, ix = ox * p.sw - p.pw + kx * p.dw;
        col[i] = (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) ? x[(c * p.h + iy) * p.w + ix] : 0.f;
    }
}

extern "C" cudaError_t k_im2col(cudaStream_t s, const float *x, float *col, const k_im2col_desc *p)
{
    int64_t n = p->c * p->kh * p->kw * p->oh * p->ow;
    im2col_kernel<<<blocks_for(n), THREADS, 0, s>>>(x, col, *p, n);
    return cudaGetLastError();
}

struct norm3 {
    float mul[3], add[3];
};

__global__ void normalize_u8_kernel(const uint8_t *hwc, float *chw, int64_t h, int64_t w,
                                    int channels, norm3 k, int bgr, int64_t n)
{
    int64_t plane = h * w;
    GRID_LOOP(i, n) {
        int64_t px = i % plane, c = (i / plane) % channels, img = i / (plane * channels);
        int64_t src_c = bgr ? channels - 1 - c : c;
        float v = (float)hwc[(img * plane + px) * channels + src_c];
        chw[i] = v * k.mul[c] + k.add[c];
    }
}

extern "C" cudaError_t k_normalize_u8(cudaStream_t s, const uint8_t *hwc, float *chw,
                                      int64_t images, int64_t h, int64_t w, int channels,
                                      const float *mul, const float *add, int bgr)
{
    norm3 k;
    for (int c = 0; c < 3; c++) {
        k.mul[c] = c < channels ? mul[c] : 0.f;
        k.add[c] = c < channels ? add[c] : 0.f;
    }
    int64_t n = images * h * w * channels;
    normalize_u8_kernel<<<blocks_for(n), THREADS, 0, s>>>(hwc, chw, h, w, channels, k, bgr, n);
    return cudaGetLastError();
}
