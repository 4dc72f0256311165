/* `visiond run`: one batch from .npy files through a model, outputs to .npy.
 *
 *   visiond run --model M.onnx --input X.npy [--input NAME=Y.npy ...]
 *               --output Y.npy [--output Z.npy ...] [--device D] [--threads N]
 *               [--inject-faults N]
 *
 * Inputs bind to the model's inputs by NAME= or else in order; the i-th
 * --output receives the model's i-th output. Axis 0 is the batch.
 *
 * A device named (cpu, cuda, cuda:N) is that device or an error: a device
 * fault fails the run (exit 4) naming the device's error. With auto, a
 * faulted batch re-runs on the CPU, and the summary line on stderr says
 * so. --inject-faults N makes every Nth batch fail as a device fault would
 * (a testing aid: no GPU fault can be caused on purpose).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "npy.h"

#define MAX_FILES 64

static void usage(void)
{
    fprintf(stderr, "usage: visiond run --model M.onnx --input X.npy [--input NAME=X2.npy ...]\n"
                    "                   --output Y.npy [--output Y2.npy ...] [--device auto|cpu|"
                    "cuda[:N]] [--threads N]\n"
                    "                   [--conv-algo exhaustive|heuristic|NAME] "
                    "[--inject-faults N]\n");
}

int cli_run(int argc, char **argv)
{
    const char *model = NULL, *device = "cpu", *algo = NULL, *inputs[MAX_FILES],
               *outputs[MAX_FILES];
    int n_in = 0, n_out = 0, threads = 0, inject = 0;
    bool bad = false;
    for (int i = 0; i < argc && !bad; i++) {
        const char *v;
        if ((v = cli_opt(argc, argv, &i, "--model", &bad)))
            model = v;
        else if ((v = cli_opt(argc, argv, &i, "--input", &bad)))
            bad = n_in == MAX_FILES || !(inputs[n_in++] = v);
        else if ((v = cli_opt(argc, argv, &i, "--output", &bad)))
            bad = n_out == MAX_FILES || !(outputs[n_out++] = v);
        else if ((v = cli_opt(argc, argv, &i, "--device", &bad)))
            device = v;
        else if ((v = cli_opt(argc, argv, &i, "--threads", &bad)))
            bad = !cli_parse_int(v, 0, 1024, &threads);
        else if ((v = cli_opt(argc, argv, &i, "--conv-algo", &bad)))
            algo = v;
        else if ((v = cli_opt(argc, argv, &i, "--inject-faults", &bad)))
            bad = !cli_parse_int(v, 0, 1 << 30, &inject);
        else if (!bad) {
            fprintf(stderr, "visiond run: unknown argument '%s'\n", argv[i]);
            bad = true;
        }
    }
    if (bad || !model || n_in == 0 || n_out == 0) {
        usage();
        return EXIT_USAGE;
    }

    npy_array arrays[MAX_FILES];
    const char *names[MAX_FILES];
    char err[1024];
    int rc = 0, loaded = 0;
    engine *e = NULL;
    void *outbuf[MAX_FILES] = {0};
    for (int i = 0; i < n_in; i++, loaded++) {
        const char *path = inputs[i], *eq = strchr(path, '=');
        names[i] = NULL;
        static char name_buf[MAX_FILES][256];
        if (eq && (size_t)(eq - path) < sizeof name_buf[i]) {
            memcpy(name_buf[i], path, (size_t)(eq - path));
            name_buf[i][eq - path] = 0;
            names[i] = name_buf[i];
            path = eq + 1;
        }
        if (npy_read(path, &arrays[i], err, sizeof err)) {
            fprintf(stderr, "visiond run: %s\n", err);
            rc = EXIT_INPUT;
            goto out;
        }
        if (arrays[i].dtype != DTYPE_FLOAT32) {
            fprintf(stderr, "visiond run: %s: inputs must be float32\n", path);
            rc = EXIT_INPUT;
            loaded++;
            goto out;
        }
    }
    int64_t first_dim = arrays[0].shape.rank > 0 ? arrays[0].shape.dim[0] : 1;
    int batch = first_dim > 4096 ? 4096 : first_dim < 1 ? 1 : (int)first_dim;
    engine_options opt = {.device = device, .max_batch = batch, .threads = threads,
                          .conv_algo = algo, .inject_faults = inject,
                          .strict_device = cli_strict_device(device)};
    if (!(e = cli_load_options(model, &opt))) {
        rc = EXIT_MODEL;
        goto out;
    }
    if (!engine_batch_is_dynamic(e)) {
        batch = engine_max_batch(e); /* a fixed-shape model; the shape check below applies */
    } else if (first_dim < 1 || first_dim > 4096) {
        fprintf(stderr, "visiond run: the batch (axis 0 of the input) is %lld; it must be 1..4096\n",
                (long long)first_dim);
        rc = EXIT_INPUT;
        goto out;
    }
    int ni = engine_input_count(e), no = engine_output_count(e);
    if (n_in != ni) {
        fprintf(stderr, "visiond run: the model has %d inputs, %d given\n", ni, n_in);
        rc = EXIT_INPUT;
        goto out;
    }
    if (n_out > no) {
        fprintf(stderr, "visiond run: the model has %d outputs, %d --output given\n", no, n_out);
        rc = EXIT_USAGE;
        goto out;
    }
    const float *bound[MAX_FILES];
    for (int k = 0; k < ni; k++) {
        engine_tensor_info info;
        engine_input_info(e, k, &info);
        int src = k;
        for (int i = 0; i < n_in; i++)
            if (names[i] && strcmp(names[i], info.name) == 0)
                src = i;
        if (names[src] && strcmp(names[src], info.name) != 0) {
            fprintf(stderr, "visiond run: no --input given for model input '%s'\n", info.name);
            rc = EXIT_INPUT;
            goto out;
        }
        const shape_t *s = &arrays[src].shape;
        bool ok = s->rank == info.rank;
        for (int d = 0; ok && d < info.rank; d++)
            ok = s->dim[d] == (info.dims[d] < 0 ? batch : info.dims[d]);
        if (!ok) {
            char have[128];
            fprintf(stderr, "visiond run: input '%s' has shape %s; the model wants", info.name,
                    shape_format(s, have, sizeof have));
            for (int d = 0; d < info.rank; d++)
                fprintf(stderr, d ? "x%lld" : " %lld",
                        (long long)(info.dims[d] < 0 ? batch : info.dims[d]));
            fprintf(stderr, "\n");
            rc = EXIT_INPUT;
            goto out;
        }
        bound[k] = arrays[src].data;
    }
    engine_tensor_info oinfo[MAX_FILES];
    engine_error eerr = {0};
    for (int k = 0; k < no && k < MAX_FILES; k++) {
        if (engine_output_info(e, k, batch, &oinfo[k], &eerr)) {
            fprintf(stderr, "visiond run: %s\n", eerr.message);
            rc = EXIT_RUN;
            goto out;
        }
        shape_t s = {.rank = oinfo[k].rank};
        memcpy(s.dim, oinfo[k].dims, sizeof s.dim);
        outbuf[k] = malloc((size_t)shape_numel(&s) * dtype_size(oinfo[k].dtype) + 1);
        if (!outbuf[k]) {
            fprintf(stderr, "visiond run: out of memory\n");
            rc = EXIT_RUN;
            goto out;
        }
    }
    double t0 = cli_now_ms();
    if (engine_run(e, batch, bound, outbuf, &eerr)) {
        fprintf(stderr, "visiond run: %s\n", eerr.message);
        rc = EXIT_RUN;
        goto out;
    }
    cli_summary("run", e, batch, cli_now_ms() - t0);
    for (int k = 0; k < n_out; k++) {
        shape_t s = {.rank = oinfo[k].rank};
        memcpy(s.dim, oinfo[k].dims, sizeof s.dim);
        if (npy_write(outputs[k], oinfo[k].dtype, &s, outbuf[k], err, sizeof err)) {
            fprintf(stderr, "visiond run: %s\n", err);
            rc = EXIT_OUTPUT;
            goto out;
        }
    }
out:
    for (int i = 0; i < loaded && i < n_in; i++)
        npy_free(&arrays[i]);
    for (int k = 0; k < MAX_FILES; k++)
        free(outbuf[k]);
    engine_free(e);
    return rc;
}
