/* Winograd F(4x4, 3x3) convolution for 3x3, stride-1, undilated,
 * ungrouped layers (Lavin and Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2016): each 6x6 input tile and each 3x3 filter are
 * transformed so that the 16 outputs of a 4x4 tile cost 36 multiplies per
 * channel pair instead of 144. The 36 element-wise products of a block of
 * tiles over all channels are 36 independent GEMMs (K x C times C x tiles),
 * which run in parallel on single-threaded SGEMMs, one thread per GEMM.
 *
 * Layout per block of T tiles (across the batch, so small images still make
 * long GEMMs): V[36][C][T] (transformed input), M[36][K][T] (products).
 * Filters are transformed once (cpu_winograd_filters) into U[36][K][C].
 * Transforms use the standard matrices for the points 0, 1, -1, 2, -2.
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cpu_kernels.h"

#define TILE 4
#define PATCH 6
#define POINTS 36

/* Where each tile of a block sits: its image and top-left output pixel,
 * worked out once per block (64-bit divisions are slow enough to dominate
 * the transforms if done per tile and channel). */
typedef struct {
    int64_t img, oy, ox;
} tile_pos;

/* G g over three values, six out. */
static inline void filter_1d(const float *g, int sg, float *y, int sy)
{
    float g0 = g[0], g1 = g[sg], g2 = g[2 * sg];
    y[0] = 0.25f * g0;
    y[sy] = -(g0 + g1 + g2) / 6.0f;
    y[2 * sy] = -(g0 - g1 + g2) / 6.0f;
    y[3 * sy] = g0 / 24.0f + g1 / 12.0f + g2 / 6.0f;
    y[4 * sy] = g0 / 24.0f - g1 / 12.0f + g2 / 6.0f;
    y[5 * sy] = g2;
}

bool cpu_winograd_applies(const conv_shape *s)
{
    return s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->dh == 1 && s->dw == 1 &&
           s->group == 1;
}

void cpu_winograd_filters(const float *w, int64_t k, int64_t c, float *u)
{
#pragma omp parallel for schedule(static) if (k * c > 4096)
    for (int64_t kc = 0; kc < k * c; kc++) {
        const float *g = w + kc * 9;
        float tmp[PATCH * 3], out[POINTS];
        for (int j = 0; j < 3; j++) /* columns of g -> 6x3 */
            filter_1d(g + j, 3, tmp + j, 3);
        for (int i = 0; i < PATCH; i++) /* rows of tmp -> 6x6 */
            filter_1d(tmp + i * 3, 1, out + i * PATCH, 1);
        int64_t ko = kc / c, co = kc % c;
        for (int p = 0; p < POINTS; p++)
            u[(p * k + ko) * c + co] = out[p];
    }
}

/* Two schedules, by the size of the transformed filters U (36 K C floats):
 *  - U small enough to stay in cache: each thread runs whole blocks alone
 *    (transform, 36 GEMMs, transform back) with a block small enough that
 *    its V and M stay in the thread's L2; nothing goes back to memory but the
 *    output, which is what makes Winograd pay on large feature maps;
 *  - U large (many channels, small maps): all threads share each block and
 *    one block spans as many tiles as possible, so U is read once. */
#define PRIVATE_U_BYTES ((size_t)2 << 20)
#define PRIVATE_BLOCK_BYTES ((size_t)512 << 10)
#define SHARED_BLOCK_BYTES ((size_t)8 << 20)

static bool private_schedule(const conv_shape *s)
{
    return (size_t)(POINTS * s->m * s->c) * sizeof(float) <= PRIVATE_U_BYTES;
}

static int64_t block_tiles(const conv_shape *s, int64_t total)
{
    size_t budget = private_schedule(s) ? PRIVATE_BLOCK_BYTES : SHARED_BLOCK_BYTES;
    int64_t t = (int64_t)(budget / (POINTS * (size_t)(s->c + s->m) * sizeof(float)));
    t = (t / 16) * 16;
    t = t < 16 ? 16 : t > 2048 ? 2048 : t;
    return t < total ? t : total;
}

static void tile_grid(const conv_shape *s, int64_t *th, int64_t *tw)
{
    *th = (s->oh + TILE - 1) / TILE;
    *tw = (s->ow + TILE - 1) / TILE;
}

/* Floats of one block's V, M and tile positions. */
static size_t block_floats(const conv_shape *s, int64_t t)
{
    return (size_t)(POINTS * (s->c + s->m) * t) + (size_t)t * sizeof(tile_pos) / sizeof(float) + 16;
}

size_t cpu_winograd_workspace(const conv_shape *s, int threads)
{
    int64_t th, tw;
    tile_grid(s, &th, &tw);
    size_t one = block_floats(s, block_tiles(s, s->n * th * tw));
    return private_schedule(s) ? one * (size_t)(threads > 0 ? threads : 1) : one;
}

/* Transforms work on LANES tiles at once, structure-of-arrays: element
 * [i][l] is point i of tile l, so every step is a vector operation across
 * tiles and every store to V or load from M is contiguous. */
#define LANES 16

/* B^T x down six rows of LANES, into six rows. */
static inline void input_soa(const float (*restrict x)[LANES], int sx, float (*restrict y)[LANES], int sy)
{
    for (int l = 0; l < LANES; l++) {
        float x0 = x[0][l], x1 = x[sx][l], x2 = x[2 * sx][l], x3 = x[3 * sx][l],
              x4 = x[4 * sx][l], x5 = x[5 * sx][l];
        y[0][l] = 4.0f * x0 - 5.0f * x2 + x4;
        y[sy][l] = -4.0f * x1 - 4.0f * x2 + x3 + x4;
        y[2 * sy][l] = 4.0f * x1 - 4.0f * x2 - x3 + x4;
        y[3 * sy][l] = -2.0f * x1 - x2 + 2.0f * x3 + x4;
        y[4 * sy][l] = 2.0f * x1 - x2 - 2.0f * x3 + x4;
        y[5 * sy][l] = 4.0f * x1 - 5.0f * x3 + x5;
    }
}

static inline void output_soa(const float (*restrict m)[LANES], int sm, float (*restrict y)[LANES], int sy)
{
    for (int l = 0; l < LANES; l++) {
        float m0 = m[0][l], m1 = m[sm][l], m2 = m[2 * sm][l], m3 = m[3 * sm][l],
              m4 = m[4 * sm][l], m5 = m[5 * sm][l];
        float a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
        y[0][l] = m0 + a + c;
        y[sy][l] = b + 2.0f * d;
        y[2 * sy][l] = a + 4.0f * c;
        y[3 * sy][l] = b + 8.0f * d + m5;
    }
}

/* One channel's 6x6 patches for the block's tiles -> V[p][ci][.]. */
CPU_MULTIVERSION
static void transform_input(const float *x, const conv_shape *s, int64_t ci, const tile_pos *tp,
                            int64_t n, float *v, int64_t stride_c, int64_t stride_p)
{
    float d[POINTS][LANES], tmp[POINTS][LANES], out[POINTS][LANES];
    for (int64_t tg = 0; tg < n; tg += LANES) {
        int lanes = n - tg < LANES ? (int)(n - tg) : LANES;
        for (int l = 0; l < LANES; l++) {
            if (l >= lanes) {
                for (int i = 0; i < POINTS; i++)
                    d[i][l] = 0.0f;
                continue;
            }
            const tile_pos *t = &tp[tg + l];
            int64_t y0 = t->oy - s->ph, x0 = t->ox - s->pw;
            const float *plane = x + (t->img * s->c + ci) * s->h * s->w;
            if (y0 >= 0 && x0 >= 0 && y0 + PATCH <= s->h && x0 + PATCH <= s->w) {
                for (int i = 0; i < PATCH; i++)
                    for (int j = 0; j < PATCH; j++)
                        d[i * PATCH + j][l] = plane[(y0 + i) * s->w + x0 + j];
            } else {
                for (int i = 0; i < PATCH; i++)
                    for (int j = 0; j < PATCH; j++) {
                        int64_t yy = y0 + i, xx = x0 + j;
                        d[i * PATCH + j][l] = yy >= 0 && yy < s->h && xx >= 0 && xx < s->w
                                                  ? plane[yy * s->w + xx]
                                                  : 0.0f;
                    }
            }
        }
        for (int j = 0; j < PATCH; j++) /* columns */
            input_soa(d + j, PATCH, tmp + j, PATCH);
        for (int i = 0; i < PATCH; i++) /* rows */
            input_soa(tmp + i * PATCH, 1, out + i * PATCH, 1);
        float *dst = v + ci * stride_c + tg;
        if (lanes == LANES) /* fixed-length copies: vector stores, no memcpy calls */
            for (int p = 0; p < POINTS; p++)
                for (int l = 0; l < LANES; l++)
                    dst[p * stride_p + l] = out[p][l];
        else
            for (int p = 0; p < POINTS; p++)
                for (int l = 0; l < lanes; l++)
                    dst[p * stride_p + l] = out[p][l];
    }
}

/* One output channel's tiles of the block from M[p][ko][.], with bias and
 * the fused activation. */
CPU_MULTIVERSION
static void transform_output(const float *mm, const conv_shape *s, int64_t ko,
                             const tile_pos *tp, int64_t n, float bias, const float *res,
                             float *y, int64_t stride_k, int64_t stride_p)
{
    float m[POINTS][LANES], tmp[PATCH * TILE][LANES], out[TILE * TILE][LANES];
    for (int64_t tg = 0; tg < n; tg += LANES) {
        int lanes = n - tg < LANES ? (int)(n - tg) : LANES;
        const float *src = mm + ko * stride_k + tg;
        if (lanes == LANES)
            for (int p = 0; p < POINTS; p++)
                for (int l = 0; l < LANES; l++)
                    m[p][l] = src[p * stride_p + l];
        else
            for (int p = 0; p < POINTS; p++)
                for (int l = 0; l < LANES; l++)
                    m[p][l] = l < lanes ? src[p * stride_p + l] : 0.0f;
        for (int j = 0; j < PATCH; j++) /* columns: 6x6 -> 4x6 */
            output_soa(m + j, PATCH, tmp + j, PATCH);
        for (int i = 0; i < TILE; i++) /* rows: 4x6 -> 4x4 */
            output_soa(tmp + i * PATCH, 1, out + i * TILE, 1);
        for (int l = 0; l < lanes; l++) {
            const tile_pos *t = &tp[tg + l];
            int64_t oy = t->oy, ox = t->ox;
            int64_t at = (t->img * s->m + ko) * s->oh * s->ow;
            float *plane = y + at;
            const float *rplane = res ? res + at : NULL;
            int64_t rows = s->oh - oy < TILE ? s->oh - oy : TILE;
            int64_t cols = s->ow - ox < TILE ? s->ow - ox : TILE;
            for (int64_t i = 0; i < rows; i++) {
                float *dst = plane + (oy + i) * s->ow + ox;
                const float *r = rplane ? rplane + (oy + i) * s->ow + ox : NULL;
                for (int64_t j = 0; j < cols; j++)
                    dst[j] = cpu_act(&s->act, out[i * TILE + j][l] + bias + (r ? r[j] : 0.0f));
            }
        }
    }
}

static void tile_positions(int64_t t0, int64_t n, int64_t th, int64_t tw, tile_pos *tp)
{
    for (int64_t t = 0; t < n; t++) {
        int64_t g = t0 + t, r = g % (th * tw);
        tp[t] = (tile_pos){g / (th * tw), (r / tw) * TILE, (r % tw) * TILE};
    }
}

static void gemms(const conv_shape *s, const float *u, const float *v, float *mm, int64_t n,
                  int64_t block, int p)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->m, (int)n, (int)s->c, 1.0f,
                u + (int64_t)p * s->m * s->c, (int)s->c, v + (int64_t)p * s->c * block,
                (int)block, 0.0f, mm + (int64_t)p * s->m * block, (int)block);
}

void cpu_winograd_run(const conv_shape *s, const conv_buffers *b, const float *u)
{
    int64_t th, tw;
    tile_grid(s, &th, &tw);
    int64_t total = s->n * th * tw, block = block_tiles(s, total);
    int64_t blocks = (total + block - 1) / block;
    size_t per = block_floats(s, block);
    if (private_schedule(s)) {
#pragma omp parallel
        {
            float *v = b->work + (size_t)omp_get_thread_num() * per;
            float *mm = v + POINTS * s->c * block;
            tile_pos *tp = (tile_pos *)(mm + POINTS * s->m * block);
#pragma omp for schedule(dynamic, 1)
            for (int64_t bi = 0; bi < blocks; bi++) {
                int64_t t0 = bi * block, n = total - t0 < block ? total - t0 : block;
                tile_positions(t0, n, th, tw, tp);
                for (int64_t ci = 0; ci < s->c; ci++)
                    transform_input(b->x, s, ci, tp, n, v, block, s->c * block);
                for (int p = 0; p < POINTS; p++) /* single-threaded inside a parallel region */
                    gemms(s, u, v, mm, n, block, p);
                for (int64_t ko = 0; ko < s->m; ko++)
                    transform_output(mm, s, ko, tp, n, b->bias ? b->bias[ko] : 0.0f,
                                     b->residual, b->y, block, s->m * block);
            }
        }
        return;
    }
    float *v = b->work, *mm = b->work + POINTS * s->c * block;
    tile_pos *tp = (tile_pos *)(mm + POINTS * s->m * block);
    for (int64_t bi = 0; bi < blocks; bi++) {
        int64_t t0 = bi * block, n = total - t0 < block ? total - t0 : block;
        tile_positions(t0, n, th, tw, tp);
#pragma omp parallel for schedule(static)
        for (int64_t ci = 0; ci < s->c; ci++)
            transform_input(b->x, s, ci, tp, n, v, block, s->c * block);
        /* one GEMM per thread at a time: inside a parallel region OpenBLAS
         * runs each on the calling thread, with no fork and join per call */
#pragma omp parallel for schedule(dynamic, 1)
        for (int p = 0; p < POINTS; p++)
            gemms(s, u, v, mm, n, block, p);
#pragma omp parallel for schedule(static)
        for (int64_t ko = 0; ko < s->m; ko++)
            transform_output(mm, s, ko, tp, n, b->bias ? b->bias[ko] : 0.0f, b->residual, b->y,
                             block, s->m * block);
    }
}
