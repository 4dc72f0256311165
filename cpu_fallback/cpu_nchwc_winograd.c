/* Winograd F(4x4, 3x3) on blocked tensors (Lavin and Gray, 2016; the same
 * transforms as cpu_winograd.c, which serves NCHW tensors).
 *
 * Each 4x4 output tile needs a 6x6 input patch. In NCHW16c a patch of one
 * channel block is 36 vectors of 16 channels, so both transforms are plain
 * vector arithmetic, with no transposes. A chunk of tiles goes through
 *   V[36][cb][tile][16]  = B^T d B            (input transform)
 *   Y[36][mb][tile][16]  = V[point] x U[point] (36 GEMMs: the micro-kernel
 *                          with tiles as pixels and one tap)
 *   y = A^T Y A + bias (+ residual), activation (output transform)
 * Two schedules, as in cpu_winograd.c: when the transformed filters U are
 * small (36 C M floats <= 2 MiB) each thread takes whole chunks, sized so
 * V and Y stay in its L2; otherwise every thread shares each chunk, and
 * chunks are large so U is read from memory as few times as possible.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_nchwc.h"

#define POINTS 36
#define B CPU_BLOCK
#define PRIVATE_U_BYTES ((size_t)2 << 20)
#define PRIVATE_CHUNK_BYTES ((size_t)1 << 20)
#define SHARED_CHUNK_BYTES ((size_t)16 << 20)

bool nchwc_winograd_applies(const conv_shape *s)
{
    return cpu_winograd_applies(s) && s->x_blocked && s->y_blocked;
}

nchwc_weights *nchwc_winograd_pack(const float *w, const float *bias, int64_t m, int64_t c)
{
    float *u = tensor_alloc(sizeof(float) * POINTS * (size_t)(m * c));
    if (!u)
        return NULL;
    cpu_winograd_filters(w, m, c, u); /* U[point][oc][ic] */
    nchwc_weights *all = NULL;
    int64_t point_floats = c * cpu_blocks(m) * B;
    for (int t = 0; t < POINTS; t++) {
        nchwc_weights *one = nchwc_pack_matrix(u + (size_t)t * (size_t)(m * c), bias, m, c);
        if (!one)
            goto fail;
        if (!all) { /* the first point's pack becomes the container */
            all = one;
            float *big = tensor_alloc(sizeof(float) * POINTS * (size_t)point_floats);
            if (!big)
                goto fail;
            memcpy(big, one->w, sizeof(float) * (size_t)point_floats);
            tensor_free(one->w);
            all->w = big;
            all->bytes += sizeof(float) * (size_t)((POINTS - 1) * point_floats);
            continue;
        }
        memcpy(all->w + t * point_floats, one->w, sizeof(float) * (size_t)point_floats);
        nchwc_weights_free(one);
    }
    tensor_free(u);
    return all;
fail:
    tensor_free(u);
    nchwc_weights_free(all);
    return NULL;
}

typedef struct {
    int64_t th, tw, tiles; /* tiles per image: th x tw; in all: tiles */
    int64_t hp, wp;        /* padded input */
    int64_t cb, mb;
    bool private_chunks;
    int64_t chunk;         /* tiles per chunk */
} wino_geom;

static void geometry(const conv_shape *s, int threads, wino_geom *g)
{
    g->th = (s->oh + 3) / 4;
    g->tw = (s->ow + 3) / 4;
    g->tiles = s->n * g->th * g->tw;
    g->hp = 4 * g->th + 2;
    g->wp = 4 * g->tw + 2;
    g->cb = cpu_blocks(s->c);
    g->mb = cpu_blocks(s->m);
    size_t per_tile = sizeof(float) * POINTS * B * (size_t)(g->cb + g->mb);
    g->private_chunks = sizeof(float) * POINTS * (size_t)(s->c * s->m) <= PRIVATE_U_BYTES;
    int64_t chunk = (int64_t)((g->private_chunks ? PRIVATE_CHUNK_BYTES : SHARED_CHUNK_BYTES) /
                              per_tile);
    chunk = chunk < 8 ? 8 : chunk / 8 * 8;
    if (chunk > g->tiles)
        chunk = g->tiles;
    /* private chunks need enough of them to keep every thread busy */
    if (g->private_chunks && threads > 1 && (g->tiles + chunk - 1) / chunk < 2 * threads) {
        int64_t smaller = (g->tiles + 2 * threads - 1) / (2 * threads);
        if (smaller >= 8)
            chunk = smaller;
        else
            g->private_chunks = false;
    }
    g->chunk = chunk;
}

static size_t chunk_floats(const wino_geom *g)
{
    return (size_t)(POINTS * B * g->chunk * (g->cb + g->mb));
}

size_t nchwc_winograd_workspace(const conv_shape *s, int threads)
{
    wino_geom g;
    geometry(s, threads, &g);
    size_t pad = nchwc_padded_floats(s, g.hp, g.wp);
    return pad + chunk_floats(&g) * (size_t)(g.private_chunks ? threads : 1);
}

typedef struct {
    const conv_shape *s;
    const wino_geom *g;
    nchwc_input in;
    const nchwc_weights *u;
    float *y;
    int64_t y_image; /* floats from one output image to the next */
    const float *res;
} wino_job;

/* Tile index (over the batch) -> image and top-left output pixel. */
static void tile_at(const wino_geom *g, int64_t tile, int64_t *img, int64_t *oy, int64_t *ox)
{
    int64_t per = g->th * g->tw;
    *img = tile / per;
    *oy = (tile % per) / g->tw * 4;
    *ox = tile % g->tw * 4;
}

static void transform_in(const wino_job *j, int64_t first, int64_t count, float *v, int64_t item)
{
    int64_t tile = first + item % count, cb = item / count;
    int64_t img, oy, ox;
    tile_at(j->g, tile, &img, &oy, &ox);
    const float *d = j->in.x + img * j->in.image_stride +
                     ((cb * j->in.hp + oy) * j->in.wp + ox) * B;
    j->u->isa->simd->wino_in(d, j->in.wp * B, v + (cb * count + item % count) * B, j->g->cb * count * B);
}

static void gemm_point(const wino_job *j, int64_t count, const float *v, float *ym, int64_t item)
{
    const nchwc_isa *isa = j->u->isa;
    int max_p = isa->max_p[j->u->ob];
    int64_t ptiles = (count + max_p - 1) / max_p;
    int64_t t = item / (j->u->groups * ptiles), g = (item / ptiles) % j->u->groups;
    int64_t q0 = item % ptiles * max_p, first = g * j->u->ob;
    int p = (int)(count - q0 < max_p ? count - q0 : max_p);
    int ob = (int)(j->g->mb - first < j->u->ob ? j->g->mb - first : j->u->ob);
    const float *vt = v + t * j->g->cb * count * B;
    const float *px[NCHWC_MAX_P];
    for (int i = 0; i < p; i++)
        px[i] = vt + (q0 + i) * B;
    static const int64_t zero_tap = 0;
    nchwc_tile tile = {
        .px = px, .tap_off = &zero_tap, .taps = 1, .cblocks = (int)j->g->cb,
        .cb_stride = count * B, .lane_stride = 1, .lanes_last = (int)(j->s->c - (j->g->cb - 1) * B),
        .w = j->u->w + t * j->s->c * j->g->mb * B + g * j->u->group_floats,
        .y = ym + ((t * j->g->mb + first) * count + q0) * B, .y_ob_stride = count * B,
    };
    isa->run(&tile, ob, p);
}

static void transform_out(const wino_job *j, int64_t first, int64_t count, const float *ym,
                          int64_t item)
{
    const conv_shape *s = j->s;
    int64_t tile = first + item % count, mb = item / count;
    int64_t img, oy, ox;
    tile_at(j->g, tile, &img, &oy, &ox);
    int64_t image = j->g->mb * s->oh * s->ow * B, at = ((mb * s->oh + oy) * s->ow + ox) * B;
    int rows = (int)(s->oh - oy < 4 ? s->oh - oy : 4), cols = (int)(s->ow - ox < 4 ? s->ow - ox : 4);
    j->u->isa->simd->wino_out(ym + (mb * count + item % count) * B, j->g->mb * count * B,
                              j->u->bias + mb * B, j->y + img * j->y_image + at,
                              j->res ? j->res + img * image + at : NULL, s->ow * B, rows, cols,
                              &s->act);
}

static int64_t gemm_items(const wino_job *j, int64_t count)
{
    int max_p = j->u->isa->max_p[j->u->ob];
    return POINTS * j->u->groups * ((count + max_p - 1) / max_p);
}

void nchwc_winograd_run(const conv_shape *s, const conv_buffers *b, const nchwc_weights *u)
{
    int threads = omp_get_max_threads();
    wino_geom g;
    geometry(s, threads, &g);
    wino_job j = {.s = s, .g = &g, .u = u, .y = b->y, .res = b->residual,
                  .y_image = b->y_image_stride ? b->y_image_stride
                                               : cpu_blocks(s->m) * s->oh * s->ow * B};
    float *chunks = b->work + nchwc_padded_floats(s, g.hp, g.wp);
    nchwc_prepare_input(s, b->x, g.hp, g.wp, false, b->work, &j.in);
    int64_t n_chunks = (g.tiles + g.chunk - 1) / g.chunk;
    size_t per_chunk = chunk_floats(&g);
    if (g.private_chunks) {
#pragma omp parallel
        {
            float *v = chunks + per_chunk * (size_t)omp_get_thread_num();
            float *ym = v + POINTS * g.cb * g.chunk * B;
#pragma omp for schedule(dynamic, 1)
            for (int64_t c = 0; c < n_chunks; c++) {
                int64_t first = c * g.chunk, count = g.tiles - first < g.chunk ? g.tiles - first : g.chunk;
                for (int64_t i = 0; i < g.cb * count; i++)
                    transform_in(&j, first, count, v, i);
                for (int64_t i = 0, n = gemm_items(&j, count); i < n; i++)
                    gemm_point(&j, count, v, ym, i);
                for (int64_t i = 0; i < g.mb * count; i++)
                    transform_out(&j, first, count, ym, i);
            }
        }
        return;
    }
    float *v = chunks, *ym = chunks + POINTS * g.cb * g.chunk * B;
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t first = c * g.chunk, count = g.tiles - first < g.chunk ? g.tiles - first : g.chunk;
        int64_t n_in = g.cb * count, n_gemm = gemm_items(&j, count), n_out = g.mb * count;
#pragma omp parallel
        {
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n_in; i++)
                transform_in(&j, first, count, v, i);
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n_gemm; i++)
                gemm_point(&j, count, v, ym, i);
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n_out; i++)
                transform_out(&j, first, count, ym, i);
        }
    }
}
