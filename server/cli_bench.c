/* `visiond bench`: time a model's forward pass, per layer, like `caffe time`.
 *
 *   visiond bench --model M.onnx --batch N --iters K [--warmup W]
 *                 [--device D] [--threads T] [--json]
 *
 * Inputs are seeded pseudo-random values (real data and random data cost
 * the same in a CNN, unlike zeros). K plain runs time the whole forward;
 * K more time each layer. The table shows per-layer medians and the
 * forward's median, which is the number to compare.
 *
 * A device named (cpu, cuda, cuda:N) is that device or an error (exit 4,
 * the device's error named): a time is never the CPU's under a GPU's name.
 * With auto, batches a device fault sent to the CPU are counted in the
 * summary line and the JSON ("fallbacks"). --inject-faults N: every Nth
 * batch fails as a device fault would (a testing aid).
 *
 *   visiond bench --sgemm [--size N] [--iters K] [--threads T] [--json]
 *
 * measures the CPU's BLAS instead: the median GFLOP/s of an N^3 SGEMM
 * (default 1024), the yardstick for a model's effective GFLOP/s.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(void)
{
    fprintf(stderr, "usage: visiond bench --model M.onnx --batch N --iters K [--warmup W]\n"
                    "                     [--device auto|cpu|cuda[:N]] [--threads T] [--json]\n"
                    "                     [--algos] [--conv-algo exhaustive|heuristic|NAME]\n"
                    "                     [--algo-cache FILE] [--workspace-mb MB] "
                    "[--inject-faults N]\n"
                    "       visiond bench --sgemm [--size N] [--iters K] [--threads T] [--json]\n"
                    "                     [--device cpu]\n");
}

/* The GEMM of a backend's library (the CPU's BLAS by default). */
static int bench_sgemm(const char *device, int size, int iters, int threads, bool json)
{
    char blas[200];
    double gf = engine_gemm_gflops(device, size, threads, iters, blas, sizeof blas);
    if (gf < 0) {
        fprintf(stderr, "visiond bench: SGEMM of %d on '%s' failed (no such backend, or out of "
                        "memory?)\n", size, device);
        return EXIT_RUN;
    }
    if (json) {
        json_t *o = json_pack("{s:s,s:i,s:i,s:f}", "blas", blas, "size", size, "threads",
                              threads, "gflops_per_s", gf);
        char *text = json_dumps(o, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        char th[16];
        snprintf(th, sizeof th, "%d", threads);
        printf("SGEMM %dx%dx%d: %.1f GFLOP/s (median of %d), %s, %s threads\n", size, size, size,
               gf, iters, blas, threads ? th : "all");
    }
    return 0;
}

static void fill_random(float *p, int64_t n, uint64_t *state)
{
    for (int64_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((*state >> 40) & 0xffffff) / (float)0x800000 - 1.0f; /* [-1, 1) */
    }
}

static int64_t info_numel(const engine_tensor_info *t, int batch)
{
    int64_t n = 1;
    for (int d = 0; d < t->rank; d++)
        n *= t->dims[d] < 0 ? batch : t->dims[d];
    return n;
}

/* Per convolution: every candidate algorithm's time, workspace and status,
 * and the pick (the table the daemon serves at /v1/models/{name}/algorithms). */
static void print_algos(engine *e, int batch)
{
    engine_error err = {0};
    printf("\nconvolution algorithms at batch %d (* = chosen)\n", batch);
    printf("%-40s %-10s %-24s %10s %12s  %s\n", "layer", "mode", "algorithm", "ms", "workspace",
           "status");
    for (int l = 0; l < engine_layer_count(e); l++) {
        engine_algo_report rep;
        engine_layer_summary li;
        if (engine_layer_algos(e, batch, l, &rep, &err) || engine_layer_info(e, batch, l, &li, &err))
            continue;
        size_t len = strlen(li.name);
        for (int k = 0; k < rep.n; k++) {
            char ms[32] = "-";
            if (rep.cand[k].ms >= 0)
                snprintf(ms, sizeof ms, "%.4f", rep.cand[k].ms);
            printf("%-40s %-10s %c%-23s %10s %12zu  %s\n", k ? "" : (len > 40 ? li.name + len - 40 : li.name),
                   k ? "" : rep.mode, k == rep.chosen ? '*' : ' ', rep.cand[k].name, ms,
                   rep.cand[k].workspace, rep.cand[k].status);
        }
    }
}

static json_t *algos_json(engine *e, int batch)
{
    engine_error err = {0};
    json_t *arr = json_array();
    for (int l = 0; l < engine_layer_count(e); l++) {
        engine_algo_report rep;
        engine_layer_summary li;
        if (engine_layer_algos(e, batch, l, &rep, &err) || engine_layer_info(e, batch, l, &li, &err))
            continue;
        json_t *cands = json_array();
        for (int k = 0; k < rep.n; k++)
            json_array_append_new(cands, json_pack("{s:s,s:f,s:I,s:s}", "name", rep.cand[k].name,
                                                   "ms", rep.cand[k].ms, "workspace",
                                                   (json_int_t)rep.cand[k].workspace, "status",
                                                   rep.cand[k].status));
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s?,s:o}", "layer", li.name, "mode",
                                             rep.mode, "chosen",
                                             rep.chosen >= 0 ? rep.cand[rep.chosen].name : NULL,
                                             "candidates", cands));
    }
    return arr;
}

int cli_bench(int argc, char **argv)
{
    const char *model = NULL, *device = "cpu", *algo = NULL, *cache = NULL;
    int batch = 1, iters = 10, warmup = -1, threads = 0, workspace_mb = 0, size = 1024;
    int inject = 0;
    bool json = false, bad = false, algos = false, sgemm = false;
    for (int i = 0; i < argc && !bad; i++) {
        const char *v;
        if ((v = cli_opt(argc, argv, &i, "--model", &bad)))
            model = v;
        else if ((v = cli_opt(argc, argv, &i, "--batch", &bad)))
            bad = !cli_parse_int(v, 1, 4096, &batch);
        else if ((v = cli_opt(argc, argv, &i, "--iters", &bad)))
            bad = !cli_parse_int(v, 1, 1000000, &iters);
        else if ((v = cli_opt(argc, argv, &i, "--warmup", &bad)))
            bad = !cli_parse_int(v, 0, 1000000, &warmup);
        else if ((v = cli_opt(argc, argv, &i, "--device", &bad)))
            device = v;
        else if ((v = cli_opt(argc, argv, &i, "--threads", &bad)))
            bad = !cli_parse_int(v, 0, 1024, &threads);
        else if ((v = cli_opt(argc, argv, &i, "--conv-algo", &bad)))
            algo = v;
        else if ((v = cli_opt(argc, argv, &i, "--algo-cache", &bad)))
            cache = v;
        else if ((v = cli_opt(argc, argv, &i, "--workspace-mb", &bad)))
            bad = !cli_parse_int(v, 1, 1 << 20, &workspace_mb);
        else if ((v = cli_opt(argc, argv, &i, "--inject-faults", &bad)))
            bad = !cli_parse_int(v, 0, 1 << 30, &inject);
        else if (cli_flag(argv, i, "--json"))
            json = true;
        else if (cli_flag(argv, i, "--algos"))
            algos = true;
        else if (cli_flag(argv, i, "--sgemm"))
            sgemm = true;
        else if ((v = cli_opt(argc, argv, &i, "--size", &bad)))
            bad = !cli_parse_int(v, 16, 8192, &size);
        else if (!bad) {
            fprintf(stderr, "visiond bench: unknown argument '%s'\n", argv[i]);
            bad = true;
        }
    }
    if (!bad && sgemm)
        return bench_sgemm(device, size, iters, threads, json);
    if (bad || !model) {
        usage();
        return EXIT_USAGE;
    }
    if (warmup < 0)
        warmup = iters / 10 > 2 ? iters / 10 : 2;
    engine_options opt = {.device = device, .max_batch = batch, .threads = threads,
                          .conv_algo = algo, .algo_cache = cache,
                          .workspace_limit = (size_t)workspace_mb << 20,
                          .inject_faults = inject, .strict_device = cli_strict_device(device)};
    engine *e = cli_load_options(model, &opt);
    if (!e)
        return EXIT_MODEL;
    if (!engine_batch_is_dynamic(e) && batch != engine_max_batch(e)) {
        fprintf(stderr, "visiond bench: the model has a fixed batch of %d\n", engine_max_batch(e));
        engine_free(e);
        return EXIT_USAGE;
    }
    int rc = 0, ni = engine_input_count(e), no = engine_output_count(e);
    int layers = engine_layer_count(e);
    float **in = calloc((size_t)ni, sizeof *in);
    void **out = calloc((size_t)no, sizeof *out);
    double *layer_ms = calloc((size_t)layers * (size_t)iters + 1, sizeof *layer_ms);
    double *total_ms = calloc((size_t)iters, sizeof *total_ms);
    double *col = calloc((size_t)iters, sizeof *col);
    engine_error err = {0};
    uint64_t seed = 42;
    if (!in || !out || !layer_ms || !total_ms || !col)
        goto nomem;
    for (int k = 0; k < ni; k++) {
        engine_tensor_info t;
        engine_input_info(e, k, &t);
        int64_t n = info_numel(&t, batch);
        if (!(in[k] = malloc((size_t)n * sizeof(float) + 1)))
            goto nomem;
        fill_random(in[k], n, &seed);
    }
    for (int k = 0; k < no; k++) {
        engine_tensor_info t;
        if (engine_output_info(e, k, batch, &t, &err))
            goto fail;
        if (!(out[k] = malloc((size_t)info_numel(&t, batch) * dtype_size(t.dtype) + 1)))
            goto nomem;
    }
    for (int w = 0; w < warmup; w++)
        if (engine_run(e, batch, (const float *const *)in, out, &err))
            goto fail;
    /* The forward's time comes from plain runs: timing each layer means
     * waiting for each one (a device sync per layer), which the layer table's
     * own runs, after these, pay for. */
    for (int it = 0; it < iters; it++) {
        double t0 = cli_now_ms();
        if (engine_run(e, batch, (const float *const *)in, out, &err))
            goto fail;
        total_ms[it] = cli_now_ms() - t0;
    }
    for (int it = 0; it < iters; it++)
        if (engine_run_profiled(e, batch, (const float *const *)in, out,
                                layer_ms + (size_t)it * (size_t)layers, &err))
            goto fail;
    engine_model_summary mi;
    if (engine_model_info(e, batch, &mi, &err))
        goto fail;
    double mean = 0, min = total_ms[0];
    for (int it = 0; it < iters; it++) {
        mean += total_ms[it] / iters;
        min = total_ms[it] < min ? total_ms[it] : min;
    }
    double median = cli_median(total_ms, iters);
    double sum_layer_medians = 0;
    double *lmed = calloc((size_t)layers + 1, sizeof *lmed);
    if (!lmed)
        goto nomem;
    for (int l = 0; l < layers; l++) {
        for (int it = 0; it < iters; it++)
            col[it] = layer_ms[(size_t)it * (size_t)layers + (size_t)l];
        lmed[l] = cli_median(col, iters);
        sum_layer_medians += lmed[l];
    }
    double gflops = median > 0 ? (double)mi.flops / (median * 1e6) : 0;
    char fell_text[400];
    long fell = cli_fallbacks(e, fell_text, sizeof fell_text);
    if (json) {
        json_t *root = json_object(), *arr = json_array();
        json_object_set_new(root, "model", json_string(model));
        json_object_set_new(root, "backend", json_string(engine_backend_description(e)));
        json_object_set_new(root, "batch", json_integer(batch));
        json_object_set_new(root, "iters", json_integer(iters));
        json_object_set_new(root, "median_ms", json_real(median));
        json_object_set_new(root, "mean_ms", json_real(mean));
        json_object_set_new(root, "min_ms", json_real(min));
        json_object_set_new(root, "images_per_s", json_real(median > 0 ? batch * 1e3 / median : 0));
        json_object_set_new(root, "flops", json_integer(mi.flops));
        json_object_set_new(root, "gflops_per_s", json_real(gflops));
        json_object_set_new(root, "device", json_string(engine_backend_name(e)));
        json_object_set_new(root, "fallbacks", json_integer(fell));
        for (int l = 0; l < layers; l++) {
            engine_layer_summary li;
            if (engine_layer_info(e, batch, l, &li, &err))
                goto fail;
            char shape[128];
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(li.name));
            json_object_set_new(o, "op", json_string(li.op));
            json_object_set_new(o, "output", json_string(shape_format(&li.output, shape, sizeof shape)));
            json_object_set_new(o, "median_ms", json_real(lmed[l]));
            json_object_set_new(o, "share", json_real(sum_layer_medians > 0 ? lmed[l] / sum_layer_medians : 0));
            json_object_set_new(o, "flops", json_integer(li.flops));
            json_array_append_new(arr, o);
        }
        json_object_set_new(root, "layers", arr);
        if (algos)
            json_object_set_new(root, "algorithms", algos_json(e, batch));
        char *s = json_dumps(root, JSON_INDENT(1));
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(root);
    } else {
        printf("%s, batch %d, %d iterations (%d warm-up), %s\n", model, batch, iters, warmup,
               engine_backend_description(e));
        printf("%-48s %-16s %-18s %10s %7s\n", "layer", "op", "output", "median ms", "share");
        for (int l = 0; l < layers; l++) {
            engine_layer_summary li;
            if (engine_layer_info(e, batch, l, &li, &err))
                goto fail;
            char shape[128];
            const char *name = li.name;
            size_t len = strlen(name);
            printf("%-48s %-16s %-18s %10.3f %6.1f%%\n", len > 48 ? name + len - 48 : name, li.op,
                   shape_format(&li.output, shape, sizeof shape), lmed[l],
                   sum_layer_medians > 0 ? 100.0 * lmed[l] / sum_layer_medians : 0);
        }
        printf("forward: median %.3f ms, mean %.3f ms, min %.3f ms; %.1f images/s; %.1f GFLOP/s\n",
               median, mean, min, batch * 1e3 / median, gflops);
        printf("on %s; %s%s\n", engine_backend_name(e), fell_text,
               fell ? " (their times are the CPU's)" : "");
        if (algos)
            print_algos(e, batch);
    }
    free(lmed);
    goto out;
nomem:
    fprintf(stderr, "visiond bench: out of memory\n");
    rc = EXIT_RUN;
    goto out;
fail:
    fprintf(stderr, "visiond bench: %s\n", err.message);
    rc = EXIT_RUN;
out:
    for (int k = 0; in && k < ni; k++)
        free(in[k]);
    for (int k = 0; out && k < no; k++)
        free(out[k]);
    free(in);
    free(out);
    free(layer_ms);
    free(total_ms);
    free(col);
    engine_free(e);
    return rc;
}
