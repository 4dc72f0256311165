/* One algorithm-selection policy for every backend (algo_select.h). */
#include "algo_select.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "graph.h"

engine_status algo_policy_parse(const char *text, const char *const *names, const char *backend,
                                algo_policy *out, engine_error *err)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text || strcmp(text, "auto") == 0)
        return ENGINE_OK;
    if (strcmp(text, "heuristic") == 0) {
        out->mode = ALGO_HEURISTIC;
        return ENGINE_OK;
    }
    if (strcmp(text, "exhaustive") == 0) {
        out->mode = ALGO_EXHAUSTIVE;
        return ENGINE_OK;
    }
    char known[400] = "";
    for (const char *const *nm = names; nm && *nm; nm++) {
        if (strcasecmp(text, *nm) == 0) {
            out->mode = ALGO_FORCED;
            snprintf(out->forced, sizeof out->forced, "%s", *nm);
            return ENGINE_OK;
        }
        size_t used = strlen(known);
        snprintf(known + used, sizeof known - used, ", %s", *nm);
    }
    return engine_fail(err, ENGINE_E_ARG,
                       "unknown convolution algorithm '%s' for the %s backend (auto, heuristic, "
                       "exhaustive%s)",
                       text, backend, known);
}

void algo_layer_add(algo_layer *l, const char *name, size_t workspace, bool can_run,
                    const char *status)
{
    if (l->n >= ALGO_MAX_CANDIDATES)
        return;
    algo_candidate *c = &l->cand[l->n++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->workspace = workspace;
    c->can_run = can_run;
    snprintf(c->status, sizeof c->status, "%s", status);
    c->ms = -1;
}

static int find(const algo_layer *l, const char *name, bool runnable)
{
    for (int i = 0; i < l->n; i++)
        if (strcasecmp(l->cand[i].name, name) == 0 && (!runnable || l->cand[i].can_run))
            return i;
    return -1;
}

static int first_runnable(const algo_layer *l)
{
    for (int i = 0; i < l->n; i++)
        if (l->cand[i].can_run)
            return i;
    return -1;
}

/* The layer's fallback candidate if it can run, else the first that can. */
static int fallback_of(const algo_layer *l)
{
    int f = l->fallback[0] ? find(l, l->fallback, true) : -1;
    return f >= 0 ? f : first_runnable(l);
}

/* Times the candidates; *failed says the timing broke (its error is in the
 * candidates' status) and the fallback was taken. */
static void timed(algo_layer *l, algo_cache *cache, const char *key, int *chosen, bool *failed)
{
    engine_error terr = {0};
    *failed = l->time_all && l->time_all(l->user, l->cand, l->n, &terr) != ENGINE_OK;
    if (*failed) {
        for (int i = 0; i < l->n; i++)
            if (l->cand[i].can_run && l->cand[i].ms < 0)
                snprintf(l->cand[i].status, sizeof l->cand[i].status, "timing failed: %s",
                         terr.message);
    }
    int best = -1;
    for (int i = 0; i < l->n; i++)
        if (l->cand[i].can_run && l->cand[i].ms >= 0 &&
            (best < 0 || l->cand[i].ms < l->cand[best].ms))
            best = i;
    if (best < 0) { /* nothing could be timed: the fallback */
        best = fallback_of(l);
        *failed = true;
    } else if (cache && !*failed) {
        algo_cache_put(cache, key, l->cand[best].name, l->cand[best].workspace,
                       l->cand[best].ms);
    }
    *chosen = best;
}

engine_status algo_select(const algo_policy *pol, algo_cache *cache, const char *key,
                          algo_layer *layer, engine_algo_report *rep, int *chosen,
                          engine_error *err)
{
    const char *mode = "heuristic";
    int pick = -1;
    const algo_entry *hit = cache && pol->mode != ALGO_HEURISTIC && pol->mode != ALGO_FORCED
                                ? algo_cache_find(cache, key)
                                : NULL;
    int cached = hit ? find(layer, hit->algo, true) : -1;
    if (pol->mode == ALGO_FORCED && (pick = find(layer, pol->forced, true)) >= 0) {
        mode = "forced";
    } else if (pol->mode == ALGO_FORCED) {
        mode = "heuristic (forced n/a)";
        pick = first_runnable(layer);
    } else if (cached >= 0) {
        mode = "cached";
        pick = cached;
        layer->cand[pick].ms = hit->ms;
    } else if (pol->mode == ALGO_EXHAUSTIVE || (pol->mode == ALGO_AUTO && layer->auto_times)) {
        bool failed;
        timed(layer, cache, key, &pick, &failed);
        mode = failed ? "exhaustive, failed" : "exhaustive";
    } else {
        pick = first_runnable(layer);
    }
    memset(rep, 0, sizeof *rep);
    snprintf(rep->mode, sizeof rep->mode, "%s", mode);
    rep->chosen = pick;
    for (int i = 0; i < layer->n && i < (int)(sizeof rep->cand / sizeof rep->cand[0]); i++) {
        engine_algo_candidate *c = &rep->cand[rep->n++];
        snprintf(c->name, sizeof c->name, "%s", layer->cand[i].name);
        c->ms = layer->cand[i].ms;
        c->workspace = layer->cand[i].workspace;
        snprintf(c->status, sizeof c->status, "%s", layer->cand[i].status);
    }
    *chosen = pick;
    if (pick < 0)
        return engine_fail(err, ENGINE_E_BACKEND, "no convolution algorithm can run this layer");
    return ENGINE_OK;
}

void conv_geometry_of(const plan *p, const plan_step *st, conv_geometry *g)
{
    const graph_node *n = &p->g->nodes[st->node];
    const shape_t *x = &p->values[n->inputs[0]].shape, *w = &p->values[n->inputs[1]].shape;
    const shape_t *y = &p->values[n->outputs[0]].shape;
    bool one_d = x->rank == 3;
    *g = (conv_geometry){
        .n = x->dim[0], .c = x->dim[1], .h = one_d ? 1 : x->dim[2], .w = x->dim[x->rank - 1],
        .m = y->dim[1], .oh = one_d ? 1 : y->dim[2], .ow = y->dim[y->rank - 1],
        .kh = one_d ? 1 : w->dim[2], .kw = w->dim[w->rank - 1],
        .sh = n->p.win.stride[0], .sw = n->p.win.stride[1],
        .dh = n->p.win.dilation[0], .dw = n->p.win.dilation[1],
        .pt = st->r.win.pad_begin[0], .pl = st->r.win.pad_begin[1],
        .pb = st->r.win.pad_end[0], .pr = st->r.win.pad_end[1], .group = n->p.win.group,
    };
}

void algo_key(char *key, size_t n, const char *device, const conv_geometry *g, const char *tag)
{
    snprintf(key, n,
             "%s|n%lld c%lld h%lld w%lld|m%lld k%lldx%lld|s%lld,%lld|d%lld,%lld|"
             "p%lld,%lld,%lld,%lld|g%lld|%s",
             device, (long long)g->n, (long long)g->c, (long long)g->h, (long long)g->w,
             (long long)g->m, (long long)g->kh, (long long)g->kw, (long long)g->sh,
             (long long)g->sw, (long long)g->dh, (long long)g->dw, (long long)g->pt,
             (long long)g->pl, (long long)g->pb, (long long)g->pr, (long long)g->group, tag);
}
