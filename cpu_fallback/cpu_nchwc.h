/* Kernels over channel-blocked (NCHW16c) activations; see cpu_layout.h for
 * the layout and for which tensors use it.
 *
 *   cpu_nchwc_tile.c      the register-blocked micro-kernel every blocked
 *                         convolution and Winograd GEMM ends in (AVX-512,
 *                         AVX2+FMA, portable C; picked at run time)
 *   cpu_nchwc_conv.c      direct convolution: weight packing, padding, tiling
 *   cpu_nchwc_winograd.c  Winograd F(4x4, 3x3) on blocked tensors
 *   cpu_nchwc_ops.c       depthwise convolution, pools, global pools,
 *                         batch-norm affine, Concat
 */
#ifndef VISIOND_CPU_NCHWC_H
#define VISIOND_CPU_NCHWC_H

#include "cpu_kernels.h"
#include "cpu_layout.h"

/* --- the micro-kernel ---
 *
 * One tile: `p` output pixels x `ob` blocks of 16 output channels, summed
 * over every input channel block, kernel tap and channel of a block:
 *   y[o][p] = act(bias[o] + res[o][p] + sum_cb,tap,lane x(p, cb, tap, lane) w[...][o])
 * where x(p, cb, tap, lane) = px[p][cb * cb_stride + tap_off[tap] + lane * lane_stride].
 * The sums stay in registers for the whole reduction; the output is
 * written once. */
typedef struct {
    const float *const *px;
    const int64_t *tap_off;
    int taps;
    int cblocks;
    int64_t cb_stride;
    int lanes_last;         /* input channels in the last block, 1..16 */
    int64_t lane_stride;    /* floats between the channels of a block: 1 when the
                             * input is blocked, the plane size when it is NCHW */
    const float *w;         /* [cb][tap][lane][ob][16], lanes of the last block only */
    const float *bias;      /* ob x 16, or NULL */
    float *y;               /* block o, pixel p at y + o * y_ob_stride + p * 16 */
    int64_t y_ob_stride;
    const float *res;       /* a residual addressed like y, or NULL */
    const act_params *act;  /* NULL: none */
    /* A reduction split into chunks (to keep a chunk of weights in L1):
     * every chunk but the first adds to the sums already in y, and only the
     * last applies bias, residual and activation. */
    bool accumulate;        /* start from y instead of zero */
    bool partial;           /* store the raw sums: no bias, residual or activation */
    /* The p pixels sit 16 floats apart from px[0] (a 1x1, stride-1 layer):
     * the kernel addresses them from one register, which leaves room for
     * the longer tiles of nchwc_isa.contig_p; px[1..] are not read. */
    bool contiguous;
} nchwc_tile;

/* Vector kernels of cpu_simd_kernels.inc for one instruction set. */
typedef struct {
    const char *name;
    /* one output row of a depthwise convolution, one channel block;
     * [lo, hi) are the columns whose taps all lie inside the input */
    void (*dw_row)(const conv_shape *s, const float *x, const float *w, const float *bias,
                   float *y, const float *res, int64_t oy, int64_t lo, int64_t hi);
    void (*pool_row)(const float *x, float *y, const pool_shape *s, int64_t oy, bool is_max);
    /* sum or max of `spatial` consecutive vectors into out[16] */
    void (*reduce_block)(const float *x, int64_t spatial, bool is_max, float *out);
    void (*affine_plane)(const float *x, float *y, const float *scale, const float *shift,
                         int64_t spatial);
    /* Winograd: a 6x6 patch (rows `row` floats apart) -> 36 vectors `stride`
     * apart; and 36 vectors -> a rows x cols output tile with the epilogue */
    void (*wino_in)(const float *d, int64_t row, float *v, int64_t stride);
    void (*wino_out)(const float *m, int64_t stride, const float *bias, float *y,
                     const float *res, int64_t row, int rows, int cols, const act_params *act);
    /* classifier at small batch (m <= 8 rows), see cpu_gemm.c */
    void (*dot_rows)(const float *w0, const float *w1, const float *a, int64_t lda, int m,
                     int64_t k, float alpha, float *out, int64_t ldo);
    void (*axpy_rows)(const float *w, int64_t ldw, const float *a, int64_t lda, int m, int64_t k,
                      float alpha, float *y, int64_t ldy);
} cpu_simd_kernels;

extern const cpu_simd_kernels cpu_simd_generic;
#if defined(__x86_64__) && defined(__GNUC__)
extern const cpu_simd_kernels cpu_simd_avx512, cpu_simd_avx2;
#endif
#if defined(__aarch64__) || defined(__arm__)
extern const cpu_simd_kernels cpu_simd_neon; /* cpu_simd_neon.c */
#endif

#define NCHWC_MAX_P 14 /* pixels a tile may have on any ISA, given by pointers */
#define NCHWC_MAX_CONTIG_P 24 /* pixels of a contiguous tile */

typedef struct {
    const char *name;
    const cpu_simd_kernels *simd;
    int max_ob;             /* output blocks per tile */
    int max_p[5];           /* pixels per tile, by blocks (index 1..max_ob) */
    int contig_p[5];        /* pixels per contiguous tile (exactly these) */
    void (*run)(const nchwc_tile *t, int ob, int p);
} nchwc_isa;

/* The best micro-kernel this CPU runs (VISIOND_CPU_ISA=avx2|generic
 * forces one, for tests and comparisons; avx512 and neon are the default
 * where the CPU has them). */
const nchwc_isa *nchwc_isa_get(void);
#if defined(__aarch64__) || defined(__arm__)
extern const nchwc_isa nchwc_isa_neon; /* cpu_nchwc_neon.c */
#endif

/* What the micro-kernels share (cpu_nchwc_tile.c): a contiguous tile
 * turned into one addressing its p pixels by pointers (into px), and the
 * scalar pass of an activation without a vector form over a stored tile. */
const nchwc_tile *nchwc_tile_with_pointers(const nchwc_tile *t, int p, nchwc_tile *copy,
                                           const float **px);
void nchwc_tile_scalar_act(const nchwc_tile *t, int ob, int p);

/* --- direct convolution (group 1; either layout in and out) --- */

typedef struct nchwc_weights {
    const nchwc_isa *isa;   /* the micro-kernel the packing is for */
    int groups;             /* output-channel groups of up to max_ob blocks */
    int ob;                 /* blocks per group (the last may have fewer) */
    int64_t group_floats;   /* packed floats of a full group */
    float *w;
    float *bias;            /* blocks x 16, zero past the last channel */
    size_t bytes;           /* what w and bias hold */
} nchwc_weights;

/* Packs K x C x kh x kw weights for the current micro-kernel (taps = kh kw). */
nchwc_weights *nchwc_pack(const float *w, const float *bias, int64_t m, int64_t c, int64_t taps);
/* The packing nchwc_direct_run() wants for this layer and input layout. */
nchwc_weights *nchwc_pack_for(const conv_shape *s, const float *w, const float *bias);
/* Packs an m x c matrix (row-major) as one-tap weights. */
nchwc_weights *nchwc_pack_matrix(const float *a, const float *bias, int64_t m, int64_t c);
void nchwc_weights_free(nchwc_weights *pw);

bool nchwc_direct_applies(const conv_shape *s);
size_t nchwc_direct_workspace(const conv_shape *s);
void nchwc_direct_run(const conv_shape *s, const conv_buffers *b, const nchwc_weights *pw);

/* The input as the blocked kernels read it, with the zero border the
 * window needs: copied into `work` (nchwc_padded_floats) unless it has no
 * padding. A blocked input stays blocked; an NCHW one (the network's image)
 * stays NCHW when `keep_nchw` (the direct kernel reads it with a lane
 * stride: for 3 channels, 16-wide blocks would copy 5x the bytes). */
typedef struct {
    const float *x;
    int64_t hp, wp;         /* padded height and width */
    int64_t image_stride;   /* floats per image */
    int64_t pixel;          /* floats from one pixel to the next: 16 blocked, 1 NCHW */
    int64_t lane_stride;    /* floats from one channel to the next: 1 blocked, hp wp NCHW */
    int64_t cb_stride;      /* floats from one block of 16 channels to the next */
} nchwc_input;

size_t nchwc_padded_floats(const conv_shape *s, int64_t hp, int64_t wp);
void nchwc_prepare_input(const conv_shape *s, const float *x, int64_t hp, int64_t wp,
                         bool keep_nchw, float *work, nchwc_input *out);

/* --- Winograd F(4x4, 3x3), blocked in and out --- */

bool nchwc_winograd_applies(const conv_shape *s);
/* U for each of the 36 points, packed like nchwc_pack with one tap. */
nchwc_weights *nchwc_winograd_pack(const float *w, const float *bias, int64_t m, int64_t c);
size_t nchwc_winograd_workspace(const conv_shape *s, int threads);
void nchwc_winograd_run(const conv_shape *s, const conv_buffers *b, const nchwc_weights *u);

/* --- depthwise convolution, blocked in and out --- */

bool nchwc_depthwise_applies(const conv_shape *s);
/* K x 1 x kh x kw weights as [block][tap][16], the bias as [block][16]. */
nchwc_weights *nchwc_depthwise_pack(const float *w, const float *bias, int64_t c, int64_t taps);
void nchwc_depthwise_run(const conv_shape *s, const conv_buffers *b);

/* --- other operators on blocked tensors --- */

void nchwc_pool(const float *x, float *y, int64_t n, int64_t c, const pool_shape *s, bool is_max);
/* blocked [n, c, spatial] in, NCHW [n, c] out */
void nchwc_global_pool(const float *x, float *y, int64_t n, int64_t c, int64_t spatial,
                       bool is_max);
/* y = x (op) v per channel, or v (op) x when chan_first (not for Div), v
 * read from chan as [N, C] (per_image) or [C], NCHW: the squeeze-and-
 * excitation scale of MobileNetV3 and EfficientNet. */
void nchwc_channel_binary(const float *x, float *y, const float *chan, bool per_image,
                          bool chan_first, op_t op, int64_t n, int64_t c, int64_t spatial);
void nchwc_channel_affine(const float *x, float *y, const float *scale, const float *shift,
                          int64_t n, int64_t c, int64_t spatial);
/* Concat over channels; every input but the last has a multiple of 16. A
 * NULL input is skipped (its producer wrote it into y itself). */
void nchwc_concat(float *y, const float *const *xs, const int64_t *channels, int count,
                  int64_t n, int64_t spatial);

/* Floats of a blocked [n, c, h, w] tensor. */
static inline int64_t nchwc_floats(int64_t n, int64_t c, int64_t spatial)
{
    return n * cpu_blocks(c) * CPU_BLOCK * spatial;
}

#endif
