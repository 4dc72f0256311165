/* A backend module for the tests (tests/daemon/test_backend_modules.py),
 * built as libvisiond_testdev.so: it is what a second device looks like to
 * the engine without the device. It says it has one device and the highest
 * priority, plans with exact sizes (no room for the CPU's channel blocks),
 * refuses the operators named in VISIOND_TESTDEV_REFUSE (comma-separated),
 * and fails every batch as a faulty device would, so that every batch is
 * answered by the host backend through its own plans. Like the CUDA
 * backend it hands out host memory of its own and counts the inputs it
 * would have to copy because they are not in it; VISIOND_TESTDEV_NO_HOST=1
 * takes its host memory away (the batch then comes from ordinary memory). */
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

/* Host blocks handed out; what the run reads from elsewhere is "copied". */
#define MAX_BLOCKS 32
static struct {
    char *p;
    size_t n;
} blocks[MAX_BLOCKS];
static long copies;

static void *host_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (!blocks[i].p) {
            blocks[i].p = malloc(bytes ? bytes : 1);
            blocks[i].n = bytes;
            return blocks[i].p;
        }
    return malloc(bytes ? bytes : 1);
}

static void host_free(void *ctx, void *p)
{
    (void)ctx;
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].p == p)
            blocks[i].p = NULL;
    free(p);
}

static long input_copies(void *ctx)
{
    (void)ctx;
    return __atomic_load_n(&copies, __ATOMIC_RELAXED);
}

static bool in_blocks(const void *ptr, size_t bytes)
{
    const char *q = ptr;
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].p && q >= blocks[i].p && q + bytes <= blocks[i].p + blocks[i].n)
            return true;
    return false;
}

static engine_status run(void *ctx, void *prepared, const plan *p, const void *const *inputs,
                         void *const *outputs, double *step_ms, engine_error *err)
{
    (void)ctx, (void)prepared, (void)outputs, (void)step_ms;
    for (int i = 0; i < p->g->n_inputs; i++)
        if (inputs[i] && !in_blocks(inputs[i], plan_value_bytes(p, p->g->inputs[i])))
            __atomic_add_fetch(&copies, 1, __ATOMIC_RELAXED);
    return engine_fail(err, ENGINE_E_BACKEND, "testdev: a device fault");
}

static const char *const no_algorithms[] = {NULL};

static backend_ops testdev_ops = {
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
    .host_alloc = host_alloc,
    .host_free = host_free,
    .input_copies = input_copies,
    .load_weights = load_weights,
    .prepare = prepare,
    .release = release,
    .run = run,
};

const backend_ops *visiond_backend_module(int abi);
const backend_ops *visiond_backend_module(int abi)
{
    const char *plain = getenv("VISIOND_TESTDEV_NO_HOST");
    if (plain && strcmp(plain, "1") == 0)
        testdev_ops.host_alloc = NULL, testdev_ops.host_free = NULL;
    return abi == BACKEND_ABI ? &testdev_ops : NULL;
}
