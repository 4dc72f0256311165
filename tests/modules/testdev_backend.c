/* A backend module for the tests (tests/daemon/test_backend_modules.py),
 * built as libvisiond_testdev.so: it is what a second device looks like to
 * the engine without the device. It says it has one device and the highest
 * priority, plans with exact sizes (no room for the CPU's channel blocks),
 * refuses the operators named in VISIOND_TESTDEV_REFUSE (comma-separated),
 * and fails every batch as a faulty device would, so that every batch is
 * answered by the host backend through its own plans. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engine/backend.h"

static int dummy;

static int device_count(char *why, size_t n)
{
    (void)why, (void)n;
    return 1;
}

static engine_status create(const backend_config *cfg, void **ctx, engine_error *err)
{
    (void)cfg, (void)err;
    *ctx = &dummy;
    return ENGINE_OK;
}

static void destroy(void *ctx)
{
    (void)ctx;
}

static const char *describe(void *ctx)
{
    (void)ctx;
    return "testdev: a test device that fails every batch";
}

static unsigned capabilities(void *ctx)
{
    (void)ctx;
    return 0;
}

static bool supports_step(void *ctx, const plan *p, int step, char *why, size_t n)
{
    (void)ctx;
    const char *refuse = getenv("VISIOND_TESTDEV_REFUSE");
    const char *op = op_name(p->g->nodes[p->steps[step].node].op);
    char list[256];
    snprintf(list, sizeof list, ",%s,", refuse ? refuse : "");
    char key[64];
    snprintf(key, sizeof key, ",%s,", op);
    if (!strstr(list, key))
        return true;
    snprintf(why, n, "%s refused by the test", op);
    return false;
}

static engine_status load_weights(void *ctx, const graph *g, engine_error *err)
{
    (void)ctx, (void)g, (void)err;
    return ENGINE_OK;
}

static engine_status prepare(void *ctx, const plan *p, void **prepared, engine_error *err)
{
    (void)ctx, (void)p, (void)err;
    *prepared = &dummy;
    return ENGINE_OK;
}

static void release(void *ctx, void *prepared)
{
    (void)ctx, (void)prepared;
}

static engine_status run(void *ctx, void *prepared, const plan *p, const void *const *inputs,
                         void *const *outputs, double *step_ms, engine_error *err)
{
    (void)ctx, (void)prepared, (void)p, (void)inputs, (void)outputs, (void)step_ms;
    return engine_fail(err, ENGINE_E_BACKEND, "testdev: a device fault");
}

static const char *const no_algorithms[] = {NULL};

static const backend_ops testdev_ops = {
    .name = "testdev",
    .priority = 20,
    .kind = 0,
    .device_count = device_count,
    .conv_algorithms = no_algorithms,
    .create = create,
    .destroy = destroy,
    .describe = describe,
    .capabilities = capabilities,
    .supports_step = supports_step,
    .load_weights = load_weights,
    .prepare = prepare,
    .release = release,
    .run = run,
};

const backend_ops *visiond_backend_module(int abi);
const backend_ops *visiond_backend_module(int abi)
{
    return abi == BACKEND_ABI ? &testdev_ops : NULL;
}
