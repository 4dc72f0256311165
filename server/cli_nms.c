/* `visiond nms`: the daemon's non-maximum suppression (engine/detect.h) on
 * boxes from .npy files, so tests can hold it against
 * torchvision.ops.batched_nms box for box.
 *
 *   visiond nms --boxes B.npy --scores S.npy [--classes C.npy] --iou T
 *               [--class-agnostic] --output KEEP.npy
 *
 * B: float32 [N, 4] corners, S: float32 [N], C: int64 [N] (all 0 when
 * left out). KEEP: int64, the kept boxes' indices, best first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/detect.h"
#include "cli.h"
#include "npy.h"

static int load(const char *path, dtype_t dtype, int rank, npy_array *a, int64_t *n)
{
    char err[512];
    if (npy_read(path, a, err, sizeof err)) {
        fprintf(stderr, "visiond nms: %s\n", err);
        return -1;
    }
    if (a->dtype != dtype || a->shape.rank != rank || (rank == 2 && a->shape.dim[1] != 4) ||
        (*n >= 0 && a->shape.dim[0] != *n)) {
        fprintf(stderr, "visiond nms: %s: expected %s [N%s] with the boxes' N\n", path,
                dtype == DTYPE_INT64 ? "int64" : "float32", rank == 2 ? ", 4" : "");
        npy_free(a);
        return -1;
    }
    *n = a->shape.dim[0];
    return 0;
}

int cli_nms(int argc, char **argv)
{
    const char *boxes = NULL, *scores = NULL, *classes = NULL, *output = NULL, *iou = NULL;
    bool agnostic = false, bad = false;
    for (int i = 0; i < argc && !bad; i++) {
        const char *v;
        if ((v = cli_opt(argc, argv, &i, "--boxes", &bad)))
            boxes = v;
        else if ((v = cli_opt(argc, argv, &i, "--scores", &bad)))
            scores = v;
        else if ((v = cli_opt(argc, argv, &i, "--classes", &bad)))
            classes = v;
        else if ((v = cli_opt(argc, argv, &i, "--iou", &bad)))
            iou = v;
        else if ((v = cli_opt(argc, argv, &i, "--output", &bad)))
            output = v;
        else if (cli_flag(argv, i, "--class-agnostic"))
            agnostic = true;
        else if (!bad) {
            fprintf(stderr, "visiond nms: unknown argument '%s'\n", argv[i]);
            bad = true;
        }
    }
    char *end = NULL;
    double threshold = iou ? strtod(iou, &end) : -1;
    if (bad || !boxes || !scores || !output || !iou || *end || !(threshold >= 0)) {
        fprintf(stderr, "usage: visiond nms --boxes B.npy --scores S.npy [--classes C.npy] "
                        "--iou T [--class-agnostic] --output KEEP.npy\n");
        return EXIT_USAGE;
    }
    npy_array b = {0}, s = {0}, c = {0};
    int64_t n = -1;
    if (load(boxes, DTYPE_FLOAT32, 2, &b, &n) || load(scores, DTYPE_FLOAT32, 1, &s, &n) ||
        (classes && load(classes, DTYPE_INT64, 1, &c, &n))) {
        npy_free(&b);
        npy_free(&s);
        return EXIT_INPUT;
    }
    detection *d = malloc(sizeof *d * (size_t)(n ? n : 1));
    int64_t *keep = malloc(sizeof *keep * (size_t)(n ? n : 1));
    int rc = d && keep && n <= (1 << 24) ? 0 : EXIT_RUN;
    for (int64_t i = 0; !rc && i < n; i++) {
        d[i] = (detection){.score = ((float *)s.data)[i], .anchor = (int)i,
                           .class_index = classes ? (int)((int64_t *)c.data)[i] : 0};
        memcpy(d[i].box, (float *)b.data + i * 4, sizeof d[i].box);
    }
    int kept = rc ? -1 : detect_nms(d, (int)n, -1, threshold, agnostic, -1);
    for (int i = 0; i < kept; i++)
        keep[i] = d[i].anchor;
    char err[512];
    shape_t shape = {.rank = 1, .dim = {kept > 0 ? kept : 0}};
    if (kept < 0) {
        fprintf(stderr, "visiond nms: out of memory\n");
        rc = EXIT_RUN;
    } else if (npy_write(output, DTYPE_INT64, &shape, keep, err, sizeof err)) {
        fprintf(stderr, "visiond nms: %s\n", err);
        rc = EXIT_OUTPUT;
    }
    free(d);
    free(keep);
    npy_free(&b);
    npy_free(&s);
    npy_free(&c);
    return rc;
}
