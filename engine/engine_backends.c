/* What the process's backends are, for programs that have no engine yet:
 * settings to apply before libraries load, a line each for the logs, and
 * the GEMM measure of `visiond bench --sgemm`. The engine asks the
 * registry; it names no backend. */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "engine.h"

bool engine_startup_environment(char *why, size_t n)
{
    bool again = false;
    snprintf(why, n, "%s", "");
    /* only built-in backends: loading modules (and their libraries) in a
     * process about to replace itself would be wasted */
    for (const backend_ops *const *b = backend_builtin; *b; b++) {
        char one[200] = "";
        if ((*b)->startup_environment && (*b)->startup_environment(one, sizeof one)) {
            again = true;
            size_t used = strlen(why);
            snprintf(why + used, n - used, "%s%s", used ? "; " : "", one);
        }
    }
    return again;
}

const char *engine_backend_line(int i, char *buf, size_t n)
{
    if (i < backend_count()) {
        const backend_ops *b = backend_at(i);
        char what[256] = "", why[200] = "";
        int devices = b->device_count(why, sizeof why);
        if (devices <= 0)
            snprintf(buf, n, "%s: not used: %s", b->name, why);
        else if (b->library_description)
            snprintf(buf, n, "%s: %s", b->name, b->library_description(what, sizeof what));
        else
            snprintf(buf, n, "%s: %d device%s", b->name, devices, devices == 1 ? "" : "s");
        return buf;
    }
    const char *why;
    const char *name = backend_failed_module(i - backend_count(), &why);
    if (!name)
        return NULL;
    snprintf(buf, n, "%s: not used: its module did not load (%s)", name, why);
    return buf;
}

double engine_gemm_gflops(const char *name, int n, int threads, int reps, char *desc,
                          size_t desc_len)
{
    const backend_ops *b = backend_find(name);
    snprintf(desc, desc_len, "%s", "");
    if (!b || !b->gemm_gflops)
        return -1.0;
    if (b->library_description)
        b->library_description(desc, desc_len);
    return b->gemm_gflops(n, threads, reps);
}
