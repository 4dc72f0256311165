/* A file remembering the convolution algorithm measured for each layer
 * shape and batch size on a given device (GPU and cuDNN version, or CPU
 * model and thread count), so that a restart picks the same algorithms
 * without timing them again. Shared by the backends.
 *
 * One line per entry, appended as choices are made:
 *   KEY<TAB>ALGORITHM<TAB>WORKSPACE_BYTES<TAB>MILLISECONDS
 * The key spells out everything the choice depends on. Lines that do not
 * parse are ignored, so a damaged file only costs re-timing.
 */
#ifndef VISIOND_ALGO_CACHE_H
#define VISIOND_ALGO_CACHE_H

#include <stddef.h>

typedef struct {
    char key[320];
    char algo[40];
    size_t workspace;
    double ms;
} algo_entry;

typedef struct {
    char path[1024]; /* "" when there is no cache file */
    algo_entry *entries;
    int n, cap;
} algo_cache;

void algo_cache_open(algo_cache *c, const char *path);
const algo_entry *algo_cache_find(const algo_cache *c, const char *key);
/* Remembers an entry and appends it to the file (best effort). */
void algo_cache_put(algo_cache *c, const char *key, const char *algo, size_t workspace,
                    double ms);
void algo_cache_close(algo_cache *c);

#endif
