/* `visiond preprocess`: an image turned into a model's input tensor exactly
 * as the daemon does it (same model.json, same decoder and resampler), so
 * that `visiond run` on the result reproduces what /classify computes.
 *
 *   visiond preprocess --model-dir DIR --image A.jpg [--image B.png ...] --output X.npy
 *                      [--geometry G.json]
 *
 * DIR may be a version folder (models/x/2): model.json is read from it, else
 * from the model's folder (models/x), as the daemon reads it.
 *
 * G.json: per image, where its pixels went (preproc_geometry): image_w,
 * image_h, resized_w, resized_h, offset_x, offset_y, scale_x, scale_y.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/file_read.h"
#include "../engine/image.h"
#include "../engine/preproc.h"
#include "cli.h"
#include "config.h"
#include "model_config.h"
#include "model_repo.h"
#include "npy.h"

#define MAX_IMAGES 64

static void usage(void)
{
    fprintf(stderr, "usage: visiond preprocess --model-dir DIR --image FILE [--image FILE ...] "
                    "--output X.npy [--geometry G.json]\n");
}

static unsigned char *read_file(const char *path, size_t *len)
{
    char *buf;
    engine_error e;
    return file_read_regular(path, (size_t)1 << 30, &buf, len, NULL, &e) ? NULL
                                                                          : (unsigned char *)buf;
}

int cli_preprocess(int argc, char **argv)
{
    const char *dir = NULL, *output = NULL, *geometry = NULL, *images[MAX_IMAGES];
    int n = 0;
    bool bad = false;
    for (int i = 0; i < argc && !bad; i++) {
        const char *v;
        if ((v = cli_opt(argc, argv, &i, "--model-dir", &bad)))
            dir = v;
        else if ((v = cli_opt(argc, argv, &i, "--image", &bad)))
            bad = n == MAX_IMAGES || !(images[n++] = v);
        else if ((v = cli_opt(argc, argv, &i, "--output", &bad)))
            output = v;
        else if ((v = cli_opt(argc, argv, &i, "--geometry", &bad)))
            geometry = v;
        else if (!bad) {
            fprintf(stderr, "visiond preprocess: unknown argument '%s'\n", argv[i]);
            bad = true;
        }
    }
    if (bad || !dir || !output || n == 0) {
        usage();
        return EXIT_USAGE;
    }
    char path[1200], err[1400];
    model_config mc;
    bool found;
    model_config_defaults(&mc);
    model_version_file(dir, "model.json", path, sizeof path); /* as the daemon reads it */
    if (model_config_load(path, &mc, &found, err, sizeof err)) {
        fprintf(stderr, "visiond preprocess: %s\n", err);
        return EXIT_MODEL;
    }
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    engine *e = cli_load(path, "cpu", 1, 1, NULL);
    if (!e)
        return EXIT_MODEL;
    engine_tensor_info in;
    engine_input_info(e, 0, &in);
    int rc = 0;
    if (in.rank != 4 || model_config_resolve(&mc, in.dims[1], in.dims[2], in.dims[3], err,
                                             sizeof err)) {
        fprintf(stderr, "visiond preprocess: %s\n",
                in.rank != 4 ? "the model's input is not an image (N, C, H, W)" : err);
        engine_free(e);
        return EXIT_MODEL;
    }
    engine_free(e);
    server_config defaults;
    server_config_defaults(&defaults);
    const preproc_params *pre = &mc.pre;
    int ch = preproc_channels(pre);
    size_t per = (size_t)ch * (size_t)pre->width * (size_t)pre->height;
    float *out = malloc(per * (size_t)n * sizeof(float));
    uint8_t *hwc = malloc(per);
    image_decode_hint hint = preproc_decode_hint(pre);
    json_t *geo = json_array();
    /* the daemon's limits, but time: what it would decode, this decodes */
    image_limits lim = {.max_pixels = defaults.max_image_pixels,
                        .max_bytes = defaults.max_decode_bytes,
                        .max_scans = defaults.max_jpeg_scans};
    for (int i = 0; i < n && out && hwc && !rc; i++) {
        size_t len = 0;
        unsigned char *data = read_file(images[i], &len);
        image_u8 img = {0};
        engine_error ee = {0};
        if (!data) {
            fprintf(stderr, "visiond preprocess: cannot read %s\n", images[i]);
            rc = EXIT_INPUT;
        } else if (image_decode(data, len, ch == 1 ? IMAGE_GRAY : IMAGE_RGB,
                                &lim, &hint, &img, &ee) ||
                   preproc_resample(&img, pre, hwc, &ee)) {
            fprintf(stderr, "visiond preprocess: %s: %s\n", images[i], ee.message);
            rc = EXIT_INPUT;
        } else {
            preproc_normalize(hwc, pre, out + (size_t)i * per);
            preproc_geometry g = preproc_geometry_of_image(pre, &img);
            json_array_append_new(
                geo, json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f}", "image_w", g.image_w,
                               "image_h", g.image_h, "resized_w", g.resized_w, "resized_h",
                               g.resized_h, "offset_x", g.offset_x, "offset_y", g.offset_y,
                               "scale_x", g.scale_x, "scale_y", g.scale_y));
        }
        image_free(&img);
        free(data);
    }
    if (!rc && (!out || !hwc)) {
        fprintf(stderr, "visiond preprocess: out of memory\n");
        rc = EXIT_RUN;
    }
    shape_t s = {.rank = 4, .dim = {n, ch, pre->height, pre->width}};
    if (!rc && npy_write(output, DTYPE_FLOAT32, &s, out, err, sizeof err)) {
        fprintf(stderr, "visiond preprocess: %s\n", err);
        rc = EXIT_OUTPUT;
    }
    if (!rc && geometry && json_dump_file(geo, geometry, JSON_INDENT(1))) {
        fprintf(stderr, "visiond preprocess: cannot write %s\n", geometry);
        rc = EXIT_OUTPUT;
    }
    json_decref(geo);
    free(out);
    free(hwc);
    return rc;
}
