/* Helpers shared by the subcommands (see cli.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

const char *cli_opt(int argc, char **argv, int *i, const char *name, bool *bad)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != 0)
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "visiond: %s needs a value\n", name);
        *bad = true;
        return NULL;
    }
    return argv[++*i];
}

bool cli_flag(char **argv, int i, const char *name)
{
    return strcmp(argv[i], name) == 0;
}

bool cli_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

engine *cli_load(const char *model, const char *device, int threads, int max_batch,
                 const char *conv_algo)
{
    engine_options opt = {.device = device, .max_batch = max_batch, .threads = threads,
                          .conv_algo = conv_algo, .strict_device = cli_strict_device(device)};
    return cli_load_options(model, &opt);
}

bool cli_strict_device(const char *device)
{
    return device && strcmp(device, "auto") != 0;
}

long cli_fallbacks(engine *e, char *text, size_t n)
{
    char why[256];
    long fell = engine_fallback_info(e, why, sizeof why);
    snprintf(text, n, "%ld batch%s fell back to the CPU%s%s", fell, fell == 1 ? "" : "es",
             fell ? ": " : "", fell ? why : "");
    return fell;
}

void cli_summary(const char *cmd, engine *e, int batch, double ms)
{
    char fell[400];
    cli_fallbacks(e, fell, sizeof fell);
    fprintf(stderr, "visiond %s: batch %d on %s in %.3f ms; %s\n", cmd, batch,
            engine_backend_name(e), ms, fell);
}

engine *cli_load_options(const char *model, const engine_options *opt)
{
    engine_error err = {0};
    engine *e = NULL;
    if (engine_load(model, opt, &e, &err) != ENGINE_OK) {
        fprintf(stderr, "visiond: %s\n", err.message);
        return NULL;
    }
    const char *note = engine_backend_note(e);
    if (note)
        fprintf(stderr, "visiond: %s\n", note);
    return e;
}

double cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double cli_median(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
