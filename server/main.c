/* visiond: one binary, several subcommands.
 *
 *   visiond serve   the HTTP daemon
 *   visiond run     one batch from .npy files
 *   visiond bench   time a model, per layer
 *   visiond info    what a model is and costs
 *   visiond preprocess  an image as the daemon would feed it to a model
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: visiond <command> [options]\n"
               "  serve   [--config F] [--listen H:P] [--models DIR]    the HTTP daemon\n"
               "  run     --model M.onnx --input X.npy --output Y.npy   run one batch\n"
               "  bench   --model M.onnx --batch N --iters K [--json]    time a model per layer\n"
               "  info    --model M.onnx [--batch N] [--layers]          describe a model\n"
               "  preprocess --model-dir D --image I --output X.npy     the daemon's input tensor\n"
               "Each command takes --help.\n");
}

int main(int argc, char **argv)
{
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
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "visiond: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
