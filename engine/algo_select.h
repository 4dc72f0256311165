/* Choosing a convolution's algorithm: one policy and one cache for every
 * backend (algo_select.c).
 *
 * The backend answers: which algorithms could run a layer (its candidates,
 * best-ranked first where it has a ranking, with each one's workspace and
 * whether it can run), and how long each takes (time_all). The engine
 * decides, the same way everywhere:
 *
 *   forced NAME  that candidate where it can run, else as "heuristic";
 *   heuristic    the first candidate that can run, nothing timed;
 *   exhaustive   the cache's choice for this key, else time every candidate
 *                that can run, keep the fastest and remember it;
 *   auto         the cache's choice for this key, else as "exhaustive" on a
 *                backend whose timing is cheap next to a load (a GPU:
 *                auto_times) and as "heuristic" on one where it is not (the
 *                CPU, whose ranking rule was measured per shape).
 *
 * The cache key has one format: the backend's device string (what the
 * choice depends on besides the shape: CPU model and threads, GPU model and
 * cuDNN version), the layer's geometry, and a layout tag.
 */
#ifndef VISIOND_ALGO_SELECT_H
#define VISIOND_ALGO_SELECT_H

#include <stdbool.h>
#include <stddef.h>

#include "algo_cache.h"
#include "engine.h"
#include "plan.h"
#include "status.h"

typedef enum { ALGO_AUTO = 0, ALGO_HEURISTIC, ALGO_EXHAUSTIVE, ALGO_FORCED } algo_mode;

typedef struct {
    algo_mode mode;
    char forced[40]; /* ALGO_FORCED: the algorithm's name */
} algo_policy;

/* "auto" (or NULL or ""), "heuristic", "exhaustive", or an algorithm's name
 * (checked against `names`, a NULL-terminated list; ENGINE_E_ARG naming
 * them when it is not there). */
engine_status algo_policy_parse(const char *text, const char *const *names, const char *backend,
                                algo_policy *out, engine_error *err);

#define ALGO_MAX_CANDIDATES 16

typedef struct {
    char name[40];
    size_t workspace;  /* bytes */
    bool can_run;      /* supported here, within the workspace limit */
    char status[64];   /* "ok", or why it cannot run */
    double ms;         /* filled by time_all; < 0 when not timed or failed */
} algo_candidate;

typedef struct {
    algo_candidate cand[ALGO_MAX_CANDIDATES];
    int n;
    bool auto_times;
    /* Times every candidate that can run (setting ms; a failure marks that
     * candidate's status and ms < 0, it does not fail the layer). */
    engine_status (*time_all)(void *user, algo_candidate *cand, int n, engine_error *err);
    void *user;
    /* The candidate to use when timing fails or times nothing (a GPU's own
     * im2col + GEMM path, when cuDNN's search breaks): its name, or "" for
     * the first that can run. A failed timing is a line in the report
     * ("timing failed: ..."), never a failed load. */
    char fallback[40];
} algo_layer;

/* Adds a candidate (ignored past ALGO_MAX_CANDIDATES). */
void algo_layer_add(algo_layer *l, const char *name, size_t workspace, bool can_run,
                    const char *status);

/* Chooses a candidate of `layer` by `pol`, using and filling `cache` (may
 * be NULL) under `key`; fills `rep` (the report `bench --algos` and
 * /v1/models/{name}/algorithms show) and *chosen. ENGINE_E_BACKEND when no
 * candidate can run; a timing that fails falls back (layer->fallback) and
 * says so in the report's mode and the candidates' status. */
engine_status algo_select(const algo_policy *pol, algo_cache *cache, const char *key,
                          algo_layer *layer, engine_algo_report *rep, int *chosen,
                          engine_error *err);

/* A convolution step's geometry, as the plan has it. */
typedef struct {
    int64_t n, c, h, w, m, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, group;
} conv_geometry;
void conv_geometry_of(const plan *p, const plan_step *st, conv_geometry *g);

/* The one key format: "DEVICE|n.. c.. h.. w..|m.. k..x..|s..|d..|p..|g..|TAG". */
void algo_key(char *key, size_t n, const char *device, const conv_geometry *g, const char *tag);

#endif
