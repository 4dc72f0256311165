/* The convolution algorithm cache file; see algo_cache.h. */
#include "algo_cache.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_read.h"

#define MAX_ENTRIES 100000

static void remember(algo_cache *c, const char *key, const char *algo, size_t ws, double ms)
{
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 64;
        if (cap > MAX_ENTRIES)
            return;
        algo_entry *ne = realloc(c->entries, sizeof *ne * (size_t)cap);
        if (!ne)
            return;
        c->entries = ne;
        c->cap = cap;
    }
    algo_entry *e = &c->entries[c->n++];
    snprintf(e->key, sizeof e->key, "%s", key);
    snprintf(e->algo, sizeof e->algo, "%s", algo);
    e->workspace = ws;
    e->ms = ms;
}

void algo_cache_open(algo_cache *c, const char *path)
{
    memset(c, 0, sizeof *c);
    if (!path || !path[0])
        return;
    snprintf(c->path, sizeof c->path, "%s", path);
    char *text;
    size_t len;
    engine_error fe;
    /* a missing, unreadable or non-regular cache is an empty one */
    if (file_read_regular(path, (size_t)MAX_ENTRIES * 1024, &text, &len, NULL, &fe))
        return;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && c->n < MAX_ENTRIES;
         line = strtok_r(NULL, "\n", &save)) {
        if (strlen(line) >= 512)
            continue;
        char *tab1 = strchr(line, '\t');
        char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        char *tab3 = tab2 ? strchr(tab2 + 1, '\t') : NULL;
        if (!tab3)
            continue;
        *tab1 = *tab2 = *tab3 = 0;
        char *end;
        unsigned long long ws = strtoull(tab2 + 1, &end, 10);
        double ms = strtod(tab3 + 1, NULL);
        if (*end || !line[0] || !tab1[1])
            continue;
        /* later lines override earlier ones: search from the end */
        remember(c, line, tab1 + 1, (size_t)ws, ms);
    }
    free(text);
}

const algo_entry *algo_cache_find(const algo_cache *c, const char *key)
{
    for (int i = c->n - 1; i >= 0; i--)
        if (strcmp(c->entries[i].key, key) == 0)
            return &c->entries[i];
    return NULL;
}

void algo_cache_put(algo_cache *c, const char *key, const char *algo, size_t workspace,
                    double ms)
{
    remember(c, key, algo, workspace, ms);
    if (!c->path[0])
        return;
    /* non-blocking, and only ever appended to a regular file (see file_read.h) */
    int fd = open(c->path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0)
        return;
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
        dprintf(fd, "%s\t%s\t%zu\t%.6f\n", key, algo, workspace, ms);
    close(fd);
}

void algo_cache_close(algo_cache *c)
{
    free(c->entries);
    memset(c, 0, sizeof *c);
}
