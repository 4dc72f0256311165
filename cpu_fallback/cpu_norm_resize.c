/* LayerNormalization, InstanceNormalization and Resize for the CPU backend.
 *
 * LayerNorm is where transformers spend their time outside matrix
 * products: one pass for the mean, one for the variance and one to scale,
 * each a unit-stride loop the compiler vectorises, rows spread over the
 * threads. Resize interpolates the last two axes through per-row and
 * per-column source tables made once per call, so the inner loop is two
 * loads and a blend.
 */
#include <math.h>
#include <stdlib.h>

#include "cpu_kernels.h"

#define PAR_THRESHOLD 32768

void cpu_layer_norm(const float *x, float *y, int64_t rows, int64_t len, const float *scale,
                    int64_t scale_n, const float *bias, int64_t bias_n, float epsilon,
                    float *mean_out, float *inv_std_out)
{
#pragma omp parallel for schedule(static) if (rows * len > PAR_THRESHOLD)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * len;
        float *yr = y + r * len;
        float sum = 0.0f;
        for (int64_t i = 0; i < len; i++)
            sum += xr[i];
        float mean = sum / (float)len, sq = 0.0f;
        for (int64_t i = 0; i < len; i++) {
            float d = xr[i] - mean;
            sq += d * d;
        }
        float inv = 1.0f / sqrtf(sq / (float)len + epsilon);
        if (mean_out)
            mean_out[r] = mean;
        if (inv_std_out)
            inv_std_out[r] = inv;
        if (scale_n == len && bias && bias_n == len) {
            for (int64_t i = 0; i < len; i++)
                yr[i] = (xr[i] - mean) * inv * scale[i] + bias[i];
            continue;
        }
        for (int64_t i = 0; i < len; i++) {
            float s = scale[scale_n == len ? i : 0], b = bias ? bias[bias_n == len ? i : 0] : 0;
            yr[i] = (xr[i] - mean) * inv * s + b;
        }
    }
}

void cpu_instance_norm(const float *x, float *y, int64_t n, int64_t c, int64_t spatial,
                       const float *scale, const float *bias, float epsilon)
{
#pragma omp parallel for schedule(static) if (n * c * spatial > PAR_THRESHOLD)
    for (int64_t q = 0; q < n * c; q++) {
        const float *xr = x + q * spatial;
        float *yr = y + q * spatial;
        int64_t ch = q % c;
        double sum = 0.0, sq = 0.0;
        for (int64_t i = 0; i < spatial; i++)
            sum += xr[i];
        double mean = spatial ? sum / (double)spatial : 0.0;
        for (int64_t i = 0; i < spatial; i++)
            sq += (xr[i] - mean) * (xr[i] - mean);
        float inv = (float)(1.0 / sqrt((spatial ? sq / (double)spatial : 0.0) + epsilon));
        float a = scale[ch] * inv, b = bias[ch] - (float)mean * a;
        for (int64_t i = 0; i < spatial; i++)
            yr[i] = xr[i] * a + b;
    }
}

/* Where output coordinate i reads from, in input coordinates. The resized
 * length is the scale times the input's, not rounded (the ONNX reference). */
static double source_coord(int64_t i, float scale, int64_t in, coord_mode m)
{
    double out = (double)scale * (double)in;
    switch (m) {
    case COORD_ALIGN_CORNERS:
        return out > 1 ? (double)i * (double)(in - 1) / (out - 1) : 0.0;
    case COORD_ASYMMETRIC:
        return (double)i / scale;
    case COORD_TF_HALF_PIXEL_FOR_NN:
        return ((double)i + 0.5) / scale;
    case COORD_PYTORCH_HALF_PIXEL:
        return out > 1 ? ((double)i + 0.5) / scale - 0.5 : 0.0;
    case COORD_HALF_PIXEL_SYMMETRIC: {
        double adjust = floor(out) / out;
        double offset = (double)in / 2.0 * (1.0 - adjust);
        return offset + ((double)i + 0.5) / scale - 0.5;
    }
    case COORD_HALF_PIXEL:
    default:
        return ((double)i + 0.5) / scale - 0.5;
    }
}

static int64_t nearest_index(double x, nearest_mode m, int64_t in)
{
    double f = floor(x);
    int64_t k;
    switch (m) {
    case NEAREST_FLOOR: k = (int64_t)f; break;
    case NEAREST_CEIL: k = (int64_t)ceil(x); break;
    case NEAREST_ROUND_PREFER_CEIL: k = x - f == 0.5 ? (int64_t)f + 1 : (int64_t)floor(x + 0.5); break;
    case NEAREST_ROUND_PREFER_FLOOR:
    default: k = x - f == 0.5 ? (int64_t)f : (int64_t)floor(x + 0.5); break;
    }
    return k < 0 ? 0 : k >= in ? in - 1 : k;
}

/* For each output position along one axis: the two source indices and the
 * weight of the second (nearest: one index, weight 0). */
static void axis_table(int64_t in, int64_t out, float scale, const resize_params *p, int64_t *i0,
                       int64_t *i1, float *w)
{
    for (int64_t i = 0; i < out; i++) {
        double x = source_coord(i, scale, in, p->coord);
        if (p->mode == RESIZE_NEAREST) {
            i0[i] = i1[i] = nearest_index(x, p->nearest, in);
            w[i] = 0.0f;
            continue;
        }
        x = x < 0 ? 0 : x > (double)(in - 1) ? (double)(in - 1) : x;
        int64_t a = (int64_t)floor(x);
        i0[i] = a;
        i1[i] = a + 1 < in ? a + 1 : a;
        w[i] = (float)(x - (double)a);
    }
}

bool cpu_resize(const float *x, float *y, int64_t planes, int64_t h, int64_t w, int64_t oh,
                int64_t ow, const float scale[2], const resize_params *p)
{
    int64_t *t = malloc(sizeof(int64_t) * 2 * (size_t)(oh + ow) + 1);
    float *wt = malloc(sizeof(float) * (size_t)(oh + ow) + 1);
    if (!t || !wt) {
        free(t);
        free(wt);
        return false;
    }
    int64_t *y0 = t, *y1 = t + oh, *x0 = t + 2 * oh, *x1 = t + 2 * oh + ow;
    float *wy = wt, *wx = wt + oh;
    axis_table(h, oh, scale[0], p, y0, y1, wy);
    axis_table(w, ow, scale[1], p, x0, x1, wx);
    bool nearest = p->mode == RESIZE_NEAREST;
#pragma omp parallel for collapse(2) schedule(static) if (planes * oh * ow > PAR_THRESHOLD)
    for (int64_t q = 0; q < planes; q++)
        for (int64_t i = 0; i < oh; i++) {
            const float *r0 = x + (q * h + y0[i]) * w, *r1 = x + (q * h + y1[i]) * w;
            float *yr = y + (q * oh + i) * ow;
            if (nearest) {
                for (int64_t j = 0; j < ow; j++)
                    yr[j] = r0[x0[j]];
                continue;
            }
            float b = wy[i], a = 1.0f - b;
            for (int64_t j = 0; j < ow; j++) {
                float top = r0[x0[j]] + wx[j] * (r0[x1[j]] - r0[x0[j]]);
                float bot = r1[x0[j]] + wx[j] * (r1[x1[j]] - r1[x0[j]]);
                yr[j] = a * top + b * bot;
            }
        }
    free(t);
    free(wt);
    return true;
}
