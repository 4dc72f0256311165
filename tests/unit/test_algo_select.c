/* Algorithm selection when timing breaks: a layer whose search fails (a
 * GPU's cuDNN query or search, here a time_all that fails) takes the
 * layer's fallback candidate and says so in the report, instead of failing
 * the model's load; nothing of a failed search is cached. */
#include <stdio.h>
#include <string.h>

#include "algo_cache.h"
#include "algo_select.h"
#include "check.h"

typedef struct {
    int mode; /* 0: time all, 1: fail outright, 2: time only the last candidate */
} timing;

static engine_status time_all(void *user, algo_candidate *cand, int n, engine_error *err)
{
    timing *t = user;
    if (t->mode == 1)
        return engine_fail(err, ENGINE_E_BACKEND, "CUDNN_STATUS_INTERNAL_ERROR");
    for (int i = 0; i < n; i++) {
        if (!cand[i].can_run)
            continue;
        if (t->mode == 2 && i != n - 1) {
            snprintf(cand[i].status, sizeof cand[i].status, "timing failed: search broke");
            continue;
        }
        cand[i].ms = 10.0 - i; /* the later, the faster */
    }
    return ENGINE_OK;
}

static void layer_of(algo_layer *l, timing *t, const char *fallback)
{
    memset(l, 0, sizeof *l);
    l->auto_times = true;
    l->time_all = time_all;
    l->user = t;
    snprintf(l->fallback, sizeof l->fallback, "%s", fallback);
    algo_layer_add(l, "IMPLICIT_GEMM", 0, true, "ok, rank 1");
    algo_layer_add(l, "WINOGRAD", 1 << 20, true, "ok, rank 2");
    algo_layer_add(l, "FFT", 1 << 30, false, "workspace over the limit");
    algo_layer_add(l, "im2col_gemm", 1 << 22, true, "ok");
    for (int i = 0; i < l->n; i++)
        l->cand[i].ms = -1;
}

int main(void)
{
    algo_policy exhaustive = {.mode = ALGO_EXHAUSTIVE};
    char path[] = "/tmp/visiond_algo_cacheXXXXXX";
    CHECK(mkstemp(path) >= 0);
    algo_cache cache;
    algo_cache_open(&cache, path);
    engine_algo_report rep;
    engine_error err = {0};
    algo_layer l;
    int pick;

    /* timing works: the fastest wins and is cached */
    timing ok = {0};
    layer_of(&l, &ok, "im2col_gemm");
    CHECK(algo_select(&exhaustive, &cache, "k1", &l, &rep, &pick, &err) == ENGINE_OK);
    CHECK(strcmp(l.cand[pick].name, "im2col_gemm") == 0 && strcmp(rep.mode, "exhaustive") == 0);
    CHECK(algo_cache_find(&cache, "k1") != NULL);

    /* the search fails outright: the fallback, the error in the report, nothing cached */
    timing broken = {1};
    layer_of(&l, &broken, "im2col_gemm");
    CHECK(algo_select(&exhaustive, &cache, "k2", &l, &rep, &pick, &err) == ENGINE_OK);
    CHECK(strcmp(l.cand[pick].name, "im2col_gemm") == 0);
    CHECK(strcmp(rep.mode, "exhaustive, failed") == 0);
    CHECK(rep.chosen == pick && rep.n == 4);
    CHECK(strstr(rep.cand[0].status, "timing failed: CUDNN_STATUS_INTERNAL_ERROR") != NULL);
    CHECK(strcmp(rep.cand[2].status, "workspace over the limit") == 0); /* left as it was */
    CHECK(algo_cache_find(&cache, "k2") == NULL);

    /* no fallback named: the first candidate that can run */
    layer_of(&l, &broken, "");
    CHECK(algo_select(&exhaustive, NULL, "k3", &l, &rep, &pick, &err) == ENGINE_OK);
    CHECK(strcmp(l.cand[pick].name, "IMPLICIT_GEMM") == 0);

    /* cuDNN's candidates fail to time, ours does: ours, a plain exhaustive choice */
    timing partial = {2};
    layer_of(&l, &partial, "im2col_gemm");
    CHECK(algo_select(&exhaustive, &cache, "k4", &l, &rep, &pick, &err) == ENGINE_OK);
    CHECK(strcmp(l.cand[pick].name, "im2col_gemm") == 0 && strcmp(rep.mode, "exhaustive") == 0);
    CHECK(strstr(rep.cand[1].status, "timing failed") != NULL);

    /* nothing can run at all: that is still an error */
    layer_of(&l, &broken, "im2col_gemm");
    for (int i = 0; i < l.n; i++)
        l.cand[i].can_run = false;
    CHECK(algo_select(&exhaustive, NULL, "k5", &l, &rep, &pick, &err) == ENGINE_E_BACKEND);

    algo_cache_close(&cache);
    remove(path);
    printf("test_algo_select: ok\n");
    return 0;
}
