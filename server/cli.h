/* Subcommands of the visiond binary and what they share.
 *
 * Exit statuses (scripts and tests rely on them): 0 success, 1 usage,
 * 2 the model failed to load, 3 bad input data, 4 the run failed,
 * 5 an output could not be written, 6 the server failed.
 */
#ifndef VISIOND_CLI_H
#define VISIOND_CLI_H

#include <stdbool.h>

#include "../engine/engine.h"

enum { EXIT_USAGE = 1, EXIT_MODEL = 2, EXIT_INPUT = 3, EXIT_RUN = 4, EXIT_OUTPUT = 5,
       EXIT_SERVER = 6 };

int cli_run(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_preprocess(int argc, char **argv);
int cli_nms(int argc, char **argv);

/* Option scanning: `--name value` or `--name=value`. Returns the value when
 * argv[*i] is option `name` (advancing *i past a separate value), else NULL.
 * A missing value prints an error and sets *bad. */
const char *cli_opt(int argc, char **argv, int *i, const char *name, bool *bad);
bool cli_flag(char **argv, int i, const char *name);
bool cli_parse_int(const char *s, int lo, int hi, int *out);

/* Loads a model, printing the error and any backend note to stderr. */
engine *cli_load(const char *model, const char *device, int threads, int max_batch,
                 const char *conv_algo);
engine *cli_load_options(const char *model, const engine_options *opt);

/* A device named by the user (anything but "auto"): strict, no fallback. */
bool cli_strict_device(const char *device);
/* "N batches fell back to the CPU[: the device's error]"; returns N. */
long cli_fallbacks(engine *e, char *text, size_t n);
/* The summary line on stderr: backend, batch, time, and cli_fallbacks. */
void cli_summary(const char *cmd, engine *e, int batch, double ms);

double cli_now_ms(void);
/* Median of n values (sorts them). */
double cli_median(double *v, int n);

#endif
