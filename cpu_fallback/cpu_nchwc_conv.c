/* Direct convolution on blocked tensors: every output tile (a run of
 * consecutive output pixels x up to four blocks of 16 output channels) is
 * one call of the micro-kernel, which reads the input in place through one
 * pointer per pixel and one offset per kernel tap. No im2col matrix is
 * built; the only copy is the zero border the window needs (and, for an
 * NCHW input such as the network's image, the reorder into blocks, done in
 * the same pass).
 *
 * Weights are packed once per layer in the order the micro-kernel reads
 * them: per group of output blocks, per input block, tap and channel, the
 * group's 16-wide output vectors side by side.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_nchwc.h"

/* The reduction runs in chunks of about CHUNK_STEPS input channels x taps,
 * so the chunk's weights (CHUNK_STEPS x 64 floats for four output blocks,
 * 64 KiB) stay in L2 while a task's TILE_BLOCK tiles pass over them, and a
 * tile's partial sums make one round trip through memory per chunk. 64,
 * 128, 256 and no chunking measured within noise of each other on 1x1
 * layers with 256-1024 inputs; 256 was never the slowest. */
#define CHUNK_STEPS 256
#define TILE_BLOCK 8

static void *alloc_floats(size_t n)
{
    return tensor_alloc((n ? n : 1) * sizeof(float));
}

void nchwc_weights_free(nchwc_weights *pw)
{
    if (!pw)
        return;
    tensor_free(pw->w);
    tensor_free(pw->bias);
    free(pw);
}

/* Packs `taps`-tap weights laid out w[oc][ic][tap] (element stride
 * `tap_stride` between taps, `oc_stride`/`ic_stride` between channels). */
static nchwc_weights *pack_strided(const float *w, const float *bias, int64_t m, int64_t c,
                                   int64_t taps, int64_t oc_stride, int64_t ic_stride,
                                   int64_t tap_stride)
{
    nchwc_weights *pw = calloc(1, sizeof *pw);
    if (!pw)
        return NULL;
    pw->isa = nchwc_isa_get();
    int64_t mb = cpu_blocks(m), cb_count = cpu_blocks(c);
    pw->ob = pw->isa->max_ob;
    pw->groups = (int)((mb + pw->ob - 1) / pw->ob);
    pw->group_floats = c * taps * pw->ob * CPU_BLOCK;
    pw->w = alloc_floats((size_t)(c * taps * mb * CPU_BLOCK));
    pw->bias = alloc_floats((size_t)(mb * CPU_BLOCK));
    pw->bytes = sizeof(float) * (size_t)((c * taps + 1) * mb * CPU_BLOCK);
    if (!pw->w || !pw->bias) {
        nchwc_weights_free(pw);
        return NULL;
    }
    for (int64_t i = 0; i < mb * CPU_BLOCK; i++)
        pw->bias[i] = bias && i < m ? bias[i] : 0.0f;
#pragma omp parallel for schedule(static)
    for (int g = 0; g < pw->groups; g++) {
        int64_t first = (int64_t)g * pw->ob, gb = mb - first < pw->ob ? mb - first : pw->ob;
        float *dst = pw->w + g * pw->group_floats;
        for (int64_t cb = 0; cb < cb_count; cb++) {
            int64_t lanes = c - cb * CPU_BLOCK < CPU_BLOCK ? c - cb * CPU_BLOCK : CPU_BLOCK;
            for (int64_t t = 0; t < taps; t++)
                for (int64_t l = 0; l < lanes; l++)
                    for (int64_t o = 0; o < gb * CPU_BLOCK; o++) {
                        int64_t oc = first * CPU_BLOCK + o, ic = cb * CPU_BLOCK + l;
                        *dst++ = oc < m ? w[oc * oc_stride + ic * ic_stride + t * tap_stride]
                                        : 0.0f;
                    }
        }
    }
    return pw;
}

nchwc_weights *nchwc_pack(const float *w, const float *bias, int64_t m, int64_t c, int64_t taps)
{
    return pack_strided(w, bias, m, c, taps, c * taps, taps, 1);
}

/* Used by the Winograd packing: U[point][oc][ic] for one point. */
nchwc_weights *nchwc_pack_matrix(const float *u, const float *bias, int64_t m, int64_t c)
{
    return pack_strided(u, bias, m, c, 1, c, 1, 0);
}

bool nchwc_direct_applies(const conv_shape *s)
{
    return s->group == 1;
}

/* The padded extent a window reads: rows (and columns) 0 .. extent-1 of the
 * input shifted by the leading pad. */
static int64_t extent(int64_t out, int64_t stride, int64_t k, int64_t dil)
{
    return (out - 1) * stride + (k - 1) * dil + 1;
}

static bool needs_copy(const conv_shape *s)
{
    return !s->x_blocked || s->ph || s->pw || extent(s->oh, s->sh, s->kh, s->dh) > s->h ||
           extent(s->ow, s->sw, s->kw, s->dw) > s->w;
}

size_t nchwc_padded_floats(const conv_shape *s, int64_t hp, int64_t wp)
{
    return (size_t)(s->n * cpu_blocks(s->c) * hp * wp * CPU_BLOCK);
}

/* An NCHW input (the network's image: 3 channels) is reduced over
 * (channel, ky, kx) as one list of taps of a single channel each: blocks
 * of 16 would leave 13 of 16 lanes idle and cost a strided load per lane.
 * nchwc_pack_for() packs the weights to match. */
static int64_t reduction_taps(const conv_shape *s)
{
    return s->x_blocked ? s->kh * s->kw : s->c * s->kh * s->kw;
}

nchwc_weights *nchwc_pack_for(const conv_shape *s, const float *w, const float *bias)
{
    return s->x_blocked ? nchwc_pack(w, bias, s->m, s->c, s->kh * s->kw)
                        : nchwc_pack(w, bias, s->m, 1, s->c * s->kh * s->kw);
}

/* Floats of the workspace the tap offsets take, kept a multiple of 16 so
 * what follows stays 64-byte aligned. */
static int64_t taps_floats(const conv_shape *s)
{
    return (reduction_taps(s) * (int64_t)(sizeof(int64_t) / sizeof(float)) + 15) / 16 * 16;
}

size_t nchwc_direct_workspace(const conv_shape *s)
{
    size_t taps = (size_t)taps_floats(s);
    if (!needs_copy(s))
        return taps;
    int64_t hp = extent(s->oh, s->sh, s->kh, s->dh), wp = extent(s->ow, s->sw, s->kw, s->dw);
    size_t nchw = (size_t)(s->n * s->c * hp * wp);
    size_t blocked = nchwc_padded_floats(s, hp, wp);
    return taps + (nchw > blocked ? nchw : blocked);
}

CPU_MULTIVERSION
static void copy_row(float *dst, const float *x, const conv_shape *s, int64_t cb, int64_t iy,
                     int64_t wp)
{
    /* dst: wp pixels x 16 lanes of padded row; x: the image */
    int64_t lanes = s->c - cb * CPU_BLOCK < CPU_BLOCK ? s->c - cb * CPU_BLOCK : CPU_BLOCK;
    memset(dst, 0, (size_t)(wp * CPU_BLOCK) * sizeof *dst);
    if (iy < 0 || iy >= s->h)
        return;
    int64_t x0 = s->pw, x1 = s->pw + s->w < wp ? s->pw + s->w : wp;
    if (s->x_blocked) {
        const float *src = x + (cb * s->h + iy) * s->w * CPU_BLOCK;
        memcpy(dst + x0 * CPU_BLOCK, src, (size_t)((x1 - x0) * CPU_BLOCK) * sizeof *dst);
        return;
    }
    for (int64_t l = 0; l < lanes; l++) {
        const float *src = x + ((cb * CPU_BLOCK + l) * s->h + iy) * s->w;
        for (int64_t ix = x0; ix < x1; ix++)
            dst[ix * CPU_BLOCK + l] = src[ix - x0];
    }
}

/* One padded row of an NCHW plane. */
static void copy_row_nchw(float *dst, const float *src, const conv_shape *s, int64_t iy, int64_t wp)
{
    memset(dst, 0, (size_t)wp * sizeof *dst);
    if (iy < 0 || iy >= s->h)
        return;
    int64_t x1 = s->pw + s->w < wp ? s->pw + s->w : wp;
    if (x1 > s->pw)
        memcpy(dst + s->pw, src + iy * s->w, (size_t)(x1 - s->pw) * sizeof *dst);
}

void nchwc_prepare_input(const conv_shape *s, const float *x, int64_t hp, int64_t wp,
                         bool keep_nchw, float *work, nchwc_input *out)
{
    int64_t cbs = cpu_blocks(s->c);
    bool unpadded = !s->ph && !s->pw && hp <= s->h && wp <= s->w;
    if (!s->x_blocked && keep_nchw) {
        int64_t h = unpadded ? s->h : hp, w = unpadded ? s->w : wp;
        *out = (nchwc_input){unpadded ? x : work, h, w, s->c * h * w, 1, h * w, CPU_BLOCK * h * w};
        if (unpadded)
            return;
        int64_t rows = s->n * s->c * hp;
#pragma omp parallel for schedule(static) if (rows * wp > 4096)
        for (int64_t r = 0; r < rows; r++)
            copy_row_nchw(work + r * wp, x + (r / hp) * s->h * s->w, s, r % hp - s->ph, wp);
        return;
    }
    if (s->x_blocked && unpadded) {
        *out = (nchwc_input){x, s->h, s->w, cbs * s->h * s->w * CPU_BLOCK, CPU_BLOCK, 1,
                             s->h * s->w * CPU_BLOCK};
        return;
    }
    *out = (nchwc_input){work, hp, wp, cbs * hp * wp * CPU_BLOCK, CPU_BLOCK, 1,
                         hp * wp * CPU_BLOCK};
    int64_t in_image = s->x_blocked ? cbs * s->h * s->w * CPU_BLOCK : s->c * s->h * s->w;
    int64_t rows = s->n * cbs * hp;
#pragma omp parallel for schedule(static) if (rows * wp > 4096)
    for (int64_t r = 0; r < rows; r++) {
        int64_t img = r / (cbs * hp), cb = (r / hp) % cbs, y = r % hp;
        copy_row(work + r * wp * CPU_BLOCK, x + img * in_image, s, cb, y - s->ph, wp);
    }
}

/* Stores a tile computed into `tmp` (bias added) to an NCHW output,
 * adding the residual and applying the activation on the way. */
static void store_plain(const float *tmp, int64_t tmp_ob_stride, float *y, const float *res,
                        const conv_shape *s, int64_t first_block, int ob, int64_t q0, int p)
{
    int64_t npix = s->oh * s->ow;
    for (int o = 0; o < ob; o++)
        for (int j = 0; j < CPU_BLOCK; j++) {
            int64_t oc = (first_block + o) * CPU_BLOCK + j;
            if (oc >= s->m)
                return;
            for (int i = 0; i < p; i++) {
                float v = tmp[o * tmp_ob_stride + i * CPU_BLOCK + j];
                if (res)
                    v += res[oc * npix + q0 + i];
                y[oc * npix + q0 + i] = cpu_act(&s->act, v);
            }
        }
}

void nchwc_direct_run(const conv_shape *s, const conv_buffers *b, const nchwc_weights *pw)
{
    int64_t hp = extent(s->oh, s->sh, s->kh, s->dh), wp = extent(s->ow, s->sw, s->kw, s->dw);
    int64_t taps = reduction_taps(s);
    int64_t *tap_off = (int64_t *)b->work;
    float *pad_work = b->work + taps_floats(s);
    nchwc_input in;
    nchwc_prepare_input(s, b->x, hp, wp, true, pad_work, &in);
    for (int64_t t = 0; t < taps; t++) {
        int64_t ky = t / s->kw % s->kh, kx = t % s->kw, ch = t / (s->kh * s->kw);
        tap_off[t] = (ky * s->dh * in.wp + kx * s->dw) * in.pixel + ch * in.lane_stride;
    }
    /* blocked: blocks of 16 lanes; NCHW: one block of one lane, channels in the taps */
    int64_t cb_count = s->x_blocked ? cpu_blocks(s->c) : 1;
    int last_lanes = s->x_blocked ? (int)(s->c - (cb_count - 1) * CPU_BLOCK) : 1;

    const nchwc_isa *isa = pw->isa;
    int64_t npix = s->oh * s->ow, mb = cpu_blocks(s->m);
    /* a 1x1 stride-1 layer over an unpadded blocked input: consecutive
     * output pixels read consecutive input pixels, 16 floats apart */
    bool contiguous = s->x_blocked && s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 &&
                      in.wp == s->ow && in.pixel == CPU_BLOCK;
    int step = contiguous ? isa->contig_p[pw->ob] : isa->max_p[pw->ob];
    /* output pixels per task: about TILE_BLOCK tiles, balanced so that no
     * task is a sliver (a 7x7 map is one task of 49, not 48 + 1, each of
     * which would stream the group's weights) */
    int64_t target = (int64_t)TILE_BLOCK * step;
    int64_t blocks = (npix + target / 2) / target;
    blocks = blocks < 1 ? 1 : blocks;
    /* but enough tasks to keep every thread busy: a 7x7 layer with 160
     * outputs is three groups of one task each, two threads for three tasks */
    int64_t want = 4 * (int64_t)omp_get_max_threads(), tiles = (npix + step - 1) / step;
    if (s->n * pw->groups * blocks < want) {
        blocks = (want + s->n * pw->groups - 1) / (s->n * pw->groups);
        blocks = blocks < tiles ? blocks : tiles;
    }
    int64_t span = ((npix + blocks - 1) / blocks + step - 1) / step * step;
    blocks = (npix + span - 1) / span;
    int64_t per_image = pw->groups * blocks, tasks = s->n * per_image;
    int64_t y_image = s->y_blocked ? mb * npix * CPU_BLOCK : s->m * npix;
    /* chunks of input blocks; an NCHW output is written once, from registers */
    int64_t per_chunk = CHUNK_STEPS / (taps * CPU_BLOCK);
    if (per_chunk < 1 || !s->y_blocked)
        per_chunk = s->y_blocked ? 1 : cb_count;
    int64_t chunks = (cb_count + per_chunk - 1) / per_chunk;
    const act_params *act = s->act.kind == ACT_NONE ? NULL : &s->act;
    /* the output in its residual's buffer: the sums start from it */
    bool sums_from_y = s->y_blocked && s->y_holds_residual && b->residual;
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < tasks; task++) {
        int64_t img = task / per_image, g = (task % per_image) / blocks, blk = task % blocks;
        int64_t first = g * pw->ob;
        int ob = (int)(mb - first < pw->ob ? mb - first : pw->ob);
        int64_t qa = blk * span, qb = qa + span < npix ? qa + span : npix;
        const float *xi = in.x + img * in.image_stride;
        const float *px[2 * TILE_BLOCK * NCHWC_MAX_CONTIG_P]; /* span < 1.5 target */
        /* each pixel's input, walking (oy, ox) without a division per pixel */
        int64_t oy = qa / s->ow, ox = qa % s->ow;
        for (int64_t q = qa; q < qb; q++) {
            px[q - qa] = xi + (oy * s->sh * in.wp + ox * s->sw) * in.pixel;
            if (++ox == s->ow)
                ox = 0, oy++;
        }
        float *y = b->y + img * (b->y_image_stride ? b->y_image_stride : y_image);
        const float *res = b->residual && !sums_from_y ? b->residual + img * y_image : NULL;
        for (int64_t c = 0; c < chunks; c++) {
            int64_t cb0 = c * per_chunk, cb1 = cb0 + per_chunk < cb_count ? cb0 + per_chunk : cb_count;
            const float *pxc[NCHWC_MAX_P];
            int p;
            for (int64_t q0 = qa; q0 < qb; q0 += p) {
                bool whole = contiguous && qb - q0 >= isa->contig_p[ob];
                p = whole ? isa->contig_p[ob]
                          : (int)(qb - q0 < isa->max_p[ob] ? qb - q0 : isa->max_p[ob]);
                for (int i = 0; i < (whole ? 1 : p); i++)
                    pxc[i] = px[q0 - qa + i] + cb0 * in.cb_stride;
                nchwc_tile t = {
                    .px = pxc, .tap_off = tap_off, .taps = (int)taps, .cblocks = (int)(cb1 - cb0),
                    .cb_stride = in.cb_stride, .lane_stride = in.lane_stride,
                    .lanes_last = cb1 == cb_count ? last_lanes : CPU_BLOCK,
                    .w = pw->w + g * pw->group_floats + cb0 * taps * CPU_BLOCK * ob * CPU_BLOCK,
                    .bias = pw->bias + first * CPU_BLOCK,
                    .accumulate = c > 0 || sums_from_y, .partial = c + 1 < chunks, .contiguous = whole,
                };
                if (s->y_blocked) {
                    t.y = y + (first * npix + q0) * CPU_BLOCK;
                    t.y_ob_stride = npix * CPU_BLOCK;
                    t.res = res ? res + (first * npix + q0) * CPU_BLOCK : NULL;
                    t.act = act;
                    isa->run(&t, ob, p);
                } else {
                    float tmp[4 * NCHWC_MAX_CONTIG_P * CPU_BLOCK];
                    t.y = tmp;
                    t.y_ob_stride = NCHWC_MAX_CONTIG_P * CPU_BLOCK;
                    isa->run(&t, ob, p);
                    store_plain(tmp, NCHWC_MAX_CONTIG_P * CPU_BLOCK, y, res, s, first, ob, q0, p);
                }
            }
        }
    }
}
