/* The backend registry: which backends this process has.
 *
 * Built-in backends come from a list the build generates (no backend's
 * symbol is named in engine/ or server/). Others are shared modules,
 * libvisiond_<name>.so, looked for next to the executable and in the
 * folder they are installed to: a module is dlopen'ed on first need, and
 * when it or the libraries it links (cuDNN, cuBLAS, the CUDA runtime) do
 * not load, the reason is kept for the one log line that says why that
 * backend is not used. So one binary runs on a machine with no CUDA at all.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

#ifndef VISIOND_MODULE_DIR
#define VISIOND_MODULE_DIR "/usr/local/lib/visiond"
#endif

#define MAX_BACKENDS 16
#define MODULE_PREFIX "libvisiond_"
#define MODULE_SUFFIX ".so"

typedef struct {
    char name[32];
    char why[256];
} failed_module;

static struct {
    pthread_once_t once;
    const backend_ops *all[MAX_BACKENDS];
    int n;
    failed_module failed[MAX_BACKENDS];
    int n_failed;
} reg = {.once = PTHREAD_ONCE_INIT};

static void add(const backend_ops *ops)
{
    for (int i = 0; i < reg.n; i++)
        if (strcmp(reg.all[i]->name, ops->name) == 0)
            return; /* the same backend found twice (build folder and install) */
    if (reg.n < MAX_BACKENDS)
        reg.all[reg.n++] = ops;
}

static void note_failure(const char *name, const char *why)
{
    for (int i = 0; i < reg.n_failed; i++)
        if (strcmp(reg.failed[i].name, name) == 0)
            return;
    if (reg.n_failed == MAX_BACKENDS)
        return;
    failed_module *f = &reg.failed[reg.n_failed++];
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->why, sizeof f->why, "%s", why);
}

/* "libvisiond_cuda.so" -> "cuda"; false for other files. */
static bool module_name(const char *file, char *name, size_t n)
{
    size_t len = strlen(file), pre = strlen(MODULE_PREFIX), suf = strlen(MODULE_SUFFIX);
    if (len <= pre + suf || strncmp(file, MODULE_PREFIX, pre) != 0 ||
        strcmp(file + len - suf, MODULE_SUFFIX) != 0 || len - pre - suf >= n)
        return false;
    memcpy(name, file + pre, len - pre - suf);
    name[len - pre - suf] = '\0';
    return true;
}

static void load_module(const char *dir, const char *file, const char *name)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
        return;
    for (int i = 0; i < reg.n; i++)
        if (strcmp(reg.all[i]->name, name) == 0)
            return;
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        note_failure(name, e ? e : "dlopen failed");
        return;
    }
    backend_module_entry entry = (backend_module_entry)(uintptr_t)dlsym(lib, BACKEND_MODULE_ENTRY);
    const backend_ops *ops = entry ? entry(BACKEND_ABI) : NULL;
    if (!ops || strcmp(ops->name, name) != 0) {
        char why[PATH_MAX + 64];
        snprintf(why, sizeof why, "%s: %s", path,
                 entry ? "built for another version of visiond" : "not a visiond backend module");
        note_failure(name, why);
        dlclose(lib);
        return;
    }
    add(ops); /* modules stay loaded for the life of the process */
}

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void scan(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char names[MAX_BACKENDS][NAME_MAX + 1];
    int n = 0;
    for (struct dirent *ent; (ent = readdir(d)) && n < MAX_BACKENDS;) {
        char name[32];
        if (module_name(ent->d_name, name, sizeof name))
            snprintf(names[n++], sizeof names[0], "%s", ent->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], by_name);
    for (int i = 0; i < n; i++) {
        char name[32];
        module_name(names[i], name, sizeof name);
        load_module(dir, names[i], name);
    }
}

static void init(void)
{
    for (const backend_ops *const *b = backend_builtin; *b; b++)
        add(*b);
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            scan(exe);
        }
    }
    scan(VISIOND_MODULE_DIR);
}

int backend_count(void)
{
    pthread_once(&reg.once, init);
    return reg.n;
}

const backend_ops *backend_at(int i)
{
    return i >= 0 && i < backend_count() ? reg.all[i] : NULL;
}

const backend_ops *backend_find(const char *name)
{
    for (int i = 0; i < backend_count(); i++)
        if (strcmp(reg.all[i]->name, name) == 0)
            return reg.all[i];
    return NULL;
}

const backend_ops *backend_host(void)
{
    for (int i = 0; i < backend_count(); i++)
        if (reg.all[i]->kind & BACKEND_CAP_HOST)
            return reg.all[i];
    return NULL;
}

const char *backend_module_problem(const char *name)
{
    backend_count();
    for (int i = 0; i < reg.n_failed; i++)
        if (strcmp(reg.failed[i].name, name) == 0)
            return reg.failed[i].why;
    return NULL;
}

const char *backend_failed_module(int i, const char **why)
{
    backend_count();
    if (i < 0 || i >= reg.n_failed)
        return NULL;
    *why = reg.failed[i].why;
    return reg.failed[i].name;
}
