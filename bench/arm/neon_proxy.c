/* A driver for the NEON instruction-count proxy (neon_proxy.sh): runs one
 * blocked CPU kernel `reps` times on one thread, so that qemu's count of
 * executed guest instructions for reps=3 minus reps=1, halved, is one run
 * of the kernel without the set-up around it. It prints the work one run
 * does (multiply-adds, or taps for a pool) for the script to divide by.
 *
 *   neon_proxy direct3x3|direct1x1|winograd|depthwise|maxpool REPS
 * The kernel set is the process's (VISIOND_CPU_ISA=generic: portable C).
 * Values are arbitrary: the kernels' instruction streams do not depend on
 * them (no data-dependent branches but max-pool's compares). Prints the
 * work, then the kernel set that ran.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cpu_fallback/cpu_nchwc.h"

static float *filled(size_t n)
{
    float *p = tensor_alloc(n * sizeof *p + 64);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

static conv_shape layer(int64_t c, int64_t m, int64_t hw, int64_t k, int64_t group)
{
    conv_shape s = {.n = 1, .c = c, .h = hw, .w = hw, .m = m, .kh = k, .kw = k, .sh = 1,
                    .sw = 1, .dh = 1, .dw = 1, .ph = k / 2, .pw = k / 2, .group = group,
                    .act = {ACT_RELU, 0, 0}, .x_blocked = true, .y_blocked = true};
    s.oh = s.h, s.ow = s.w;
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s direct3x3|direct1x1|winograd|depthwise|maxpool REPS\n", argv[0]);
        return 2;
    }
    const char *kernel = argv[1];
    int reps = atoi(argv[2]);
    omp_set_num_threads(1);
    double work = 0;
    if (strcmp(kernel, "maxpool") == 0) {
        pool_shape s = {.nc = 64, .h = 16, .w = 16, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
                        .dw = 1, .ph = 1, .pw = 1, .pe_h = 1, .pe_w = 1, .oh = 8, .ow = 8};
        float *x = filled((size_t)nchwc_floats(1, 64, 256)), *y = filled((size_t)nchwc_floats(1, 64, 64));
        for (int r = 0; r < reps; r++)
            nchwc_pool(x, y, 1, 64, &s, true);
        work = 64.0 * 64 * 9;
    } else {
        bool dw = strcmp(kernel, "depthwise") == 0, wino = strcmp(kernel, "winograd") == 0;
        conv_shape s = strcmp(kernel, "direct1x1") == 0 ? layer(64, 64, 12, 1, 1)
                       : dw                            ? layer(64, 64, 12, 3, 64)
                                                       : layer(32, 32, 12, 3, 1);
        int64_t cg = s.c / s.group;
        float *x = filled((size_t)nchwc_floats(1, s.c, s.h * s.w));
        float *w = filled((size_t)(s.m * cg * s.kh * s.kw)), *bias = filled((size_t)s.m);
        float *y = filled((size_t)nchwc_floats(1, s.m, s.oh * s.ow));
        nchwc_weights *pw = dw     ? nchwc_depthwise_pack(w, bias, s.c, s.kh * s.kw)
                            : wino ? nchwc_winograd_pack(w, bias, s.m, s.c)
                                   : nchwc_pack_for(&s, w, bias);
        size_t ws = dw ? 0 : wino ? nchwc_winograd_workspace(&s, 1) : nchwc_direct_workspace(&s);
        float *work_buf = filled(ws + 16);
        conv_buffers b = {.x = x, .weights = w, .bias = bias, .y = y, .work = work_buf,
                          .packed = pw};
        for (int r = 0; r < reps; r++) {
            if (dw)
                nchwc_depthwise_run(&s, &b);
            else if (wino)
                nchwc_winograd_run(&s, &b, pw);
            else
                nchwc_direct_run(&s, &b, pw);
        }
        work = (double)s.m * s.oh * s.ow * cg * s.kh * s.kw;
    }
    printf("%.0f %s\n", work, nchwc_isa_get()->name);
    return 0;
}
