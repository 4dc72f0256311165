/* visiond: one binary, several subcommands.
 *
 *   visiond serve   the HTTP daemon
 *   visiond run     one batch from .npy files
 *   visiond bench   time a model, per layer
 *   visiond info    what a model is and costs
 *   visiond preprocess  an image as the daemon would feed it to a model
 *   visiond nms     the daemon's non-maximum suppression on .npy boxes
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "engine.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: visiond <command> [options]\n"
               "  serve   [--config F] [--listen H:P] [--models DIR]    the HTTP daemon\n"
               "  run     --model M.onnx --input X.npy --output Y.npy   run one batch\n"
               "  bench   --model M.onnx --batch N --iters K [--json]    time a model per layer\n"
               "  info    --model M.onnx [--batch N] [--layers]          describe a model\n"
               "  preprocess --model-dir D --image I --output X.npy     the daemon's input tensor\n"
               "  nms --boxes B.npy --scores S.npy --iou T --output K.npy  the daemon's NMS\n"
               "Each command takes --help.\n");
}

/* Some libraries fix their settings when they load, before main. A
 * backend may want one set (the CPU backend: a better OpenBLAS kernel than
 * OpenBLAS picks on cores it does not know; engine_startup_environment).
 *
 * libgomp is one: its workers spin between parallel regions, by default
 * for some 300000 iterations unless there are more of them than cores:
 * right for `visiond bench`, which has the cores to itself, wrong for the
 * daemon, whose HTTP threads and decoders need the cores between batches
 * (a spinning worker took 35% of the CPU and half the requests per second
 * of a small model). The daemon runs with GOMP_SPINCOUNT=1000, libgomp's
 * own value for a busy machine, unless the environment says otherwise
 * (OMP_WAIT_POLICY or GOMP_SPINCOUNT).
 *
 * Either needs the process to start again; it does so once, for both. If
 * the exec fails, it goes on as it is. */
static void choose_runtime_settings(int argc, char **argv)
{
    char why[400];
    bool backends = engine_startup_environment(why, sizeof why);
    bool spin = argc > 1 && strcmp(argv[1], "serve") == 0 && !getenv("GOMP_SPINCOUNT") &&
                !getenv("OMP_WAIT_POLICY");
    if (!backends && !spin)
        return;
    if (spin)
        setenv("GOMP_SPINCOUNT", "1000", 1);
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
    choose_runtime_settings(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cli_run(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0)
        return cli_bench(argc - 2, argv + 2);
    if (strcmp(cmd, "info") == 0)
        return cli_info(argc - 2, argv + 2);
    if (strcmp(cmd, "serve") == 0)
        return cli_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "preprocess") == 0)
        return cli_preprocess(argc - 2, argv + 2);
    if (strcmp(cmd, "nms") == 0)
        return cli_nms(argc - 2, argv + 2);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "visiond: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
