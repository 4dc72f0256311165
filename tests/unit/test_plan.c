/* Unit test of the memory plan: on a synthetic residual network, buffers
 * whose lifetimes overlap never share bytes, buffers that do not overlap
 * are reused (the arena is smaller than the sum of activations), and the
 * plan of a smaller batch fits the layout of the largest one. On an
 * inception-like block, the inputs of a channel Concat are marked for
 * writing in place and the Concat's buffer is live from their producers on
 * (so writing there clobbers nothing). With PLAN_RESIDUAL_IN_PLACE, a
 * convolution with a fused residual writes into the residual's buffer
 * when nothing reads the residual afterwards, and the arena shrinks. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "passes.h"
#include "plan.h"

#include "check.h"

static int add_conv(graph *g, int x, int channels, int idx, engine_error *err)
{
    char name[64];
    shape_t ws = {.rank = 4, .dim = {channels, channels, 3, 3}};
    float *w = calloc((size_t)channels * channels * 9, sizeof *w);
    snprintf(name, sizeof name, "w%d", idx);
    int wv = graph_add_const(g, name, DTYPE_FLOAT32, &ws, w, err);
    free(w);
    snprintf(name, sizeof name, "conv%d", idx);
    graph_node *n = graph_add_node(g, OP_CONV, name, 2, 1, err);
    CHECK(n && wv >= 0);
    n->inputs[0] = x;
    n->inputs[1] = wv;
    n->p.win = (window_params){.spatial = 2, .kernel = {3, 3}, .stride = {1, 1},
                               .dilation = {1, 1}, .pad_begin = {1, 1}, .pad_end = {1, 1},
                               .group = 1};
    snprintf(name, sizeof name, "c%d", idx);
    int out = graph_add_value(g, name, err);
    g->nodes[g->n_nodes - 1].outputs[0] = out;
    g->values[out].producer = g->n_nodes - 1;
    return out;
}

static int add_binary(graph *g, op_t op, int a, int b, int idx, engine_error *err)
{
    char name[64];
    snprintf(name, sizeof name, "add%d", idx);
    graph_node *n = graph_add_node(g, op, name, 2, 1, err);
    n->inputs[0] = a;
    n->inputs[1] = b;
    snprintf(name, sizeof name, "s%d", idx);
    int out = graph_add_value(g, name, err);
    g->nodes[g->n_nodes - 1].outputs[0] = out;
    g->values[out].producer = g->n_nodes - 1;
    return out;
}

/* b is the output of a convolution that takes a as its residual and
 * writes into a's buffer (PLAN_RESIDUAL_IN_PLACE): they meet at that step */
static bool in_place_pair(const plan *p, int a, int b)
{
    int node = p->g->values[b].producer;
    const graph_node *n = node >= 0 ? &p->g->nodes[node] : NULL;
    return n && n->op == OP_CONV && n->n_inputs > 3 && n->inputs[3] == a &&
           p->values[a].offset == p->values[b].offset;
}

static void check_no_overlap(const plan *p)
{
    const graph *g = p->g;
    int nv = g->n_values;
    int *first = malloc(sizeof(int) * (size_t)nv), *last = malloc(sizeof(int) * (size_t)nv);
    for (int v = 0; v < nv; v++)
        first[v] = last[v] = -1;
    for (int s = 0; s < p->n_steps; s++) {
        const graph_node *n = &g->nodes[p->steps[s].node];
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && p->values[n->outputs[k]].storage == STORE_ARENA)
                first[n->outputs[k]] = last[n->outputs[k]] = s;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && p->values[n->inputs[k]].storage == STORE_ARENA)
                last[n->inputs[k]] = s;
    }
    for (int i = 0; i < g->n_outputs; i++)
        last[g->outputs[i]] = p->n_steps;
    for (int v = 0; v < nv; v++) /* written in place from the producer on */
        if (p->values[v].concat_into >= 0 && first[v] < first[p->values[v].concat_into])
            first[p->values[v].concat_into] = first[v];
    size_t total = 0;
    for (int a = 0; a < nv; a++) {
        if (first[a] < 0)
            continue;
        total += plan_value_bytes(p, a);
        CHECK(p->values[a].offset + plan_value_bytes(p, a) <= p->arena_bytes);
        for (int b = a + 1; b < nv; b++) {
            if (first[b] < 0 || first[a] > last[b] || first[b] > last[a])
                continue;
            if ((in_place_pair(p, a, b) && last[a] == first[b]) ||
                (in_place_pair(p, b, a) && last[b] == first[a]))
                continue;
            size_t a0 = p->values[a].offset, a1 = a0 + plan_value_bytes(p, a);
            size_t b0 = p->values[b].offset, b1 = b0 + plan_value_bytes(p, b);
            CHECK(a1 <= b0 || b1 <= a0);
        }
    }
    CHECK(p->arena_bytes < total); /* something was reused */
    free(first);
    free(last);
}

static graph *inception(engine_error *err)
{
    graph *g = graph_create("inception");
    int x = graph_add_value(g, "x", err);
    g->values[x].dtype = DTYPE_FLOAT32;
    g->values[x].shape = (shape_t){.rank = 4, .dim = {-1, 16, 8, 8}};
    g->inputs = malloc(sizeof(int));
    g->inputs[g->n_inputs++] = x;
    int a = add_conv(g, x, 16, 0, err), b0 = add_conv(g, x, 16, 1, err);
    int b = add_conv(g, b0, 16, 2, err);
    graph_node *n = graph_add_node(g, OP_CONCAT, "cat", 2, 1, err);
    n->inputs[0] = a;
    n->inputs[1] = b;
    n->p.axis = 1;
    int cat = graph_add_value(g, "cat_out", err);
    g->nodes[g->n_nodes - 1].outputs[0] = cat;
    g->values[cat].producer = g->n_nodes - 1;
    shape_t ws = {.rank = 4, .dim = {16, 32, 1, 1}};
    float *w = calloc(16 * 32, sizeof *w);
    int wv = graph_add_const(g, "wy", DTYPE_FLOAT32, &ws, w, err);
    free(w);
    n = graph_add_node(g, OP_CONV, "convy", 2, 1, err);
    n->inputs[0] = cat;
    n->inputs[1] = wv;
    n->p.win = (window_params){.spatial = 2, .kernel = {1, 1}, .stride = {1, 1},
                               .dilation = {1, 1}, .group = 1};
    int y = graph_add_value(g, "y", err);
    g->nodes[g->n_nodes - 1].outputs[0] = y;
    g->values[y].producer = g->n_nodes - 1;
    g->outputs = malloc(sizeof(int));
    g->output_names = malloc(sizeof(char *));
    g->output_names[0] = strdup("y");
    g->outputs[g->n_outputs++] = y;
    return g;
}

static void test_concat_in_place(void)
{
    engine_error err = {0};
    graph *g = inception(&err);
    pass_stats stats;
    CHECK(passes_run(g, &stats, &err) == ENGINE_OK);
    plan *p = NULL;
    CHECK(plan_create(g, 2, NULL, PLAN_CONCAT_IN_PLACE, &p, &err) == ENGINE_OK);
    int a = graph_find_value(g, "c0"), b0 = graph_find_value(g, "c1"),
        b = graph_find_value(g, "c2"), cat = graph_find_value(g, "cat_out");
    CHECK(p->values[a].concat_into == cat && p->values[b].concat_into == cat);
    CHECK(p->values[b0].concat_into < 0 && p->values[cat].concat_into < 0);
    /* the Concat's buffer may not share bytes with b0, which is live while
     * a and b are written into it */
    size_t c0 = p->values[cat].offset, c1 = c0 + plan_value_bytes(p, cat);
    size_t x0 = p->values[b0].offset, x1 = x0 + plan_value_bytes(p, b0);
    CHECK(c1 <= x0 || x1 <= c0);
    check_no_overlap(p);
    plan_free(p);
    graph_free(g);
}

/* Six residual blocks of two 3x3 convolutions over 16x32x32 maps. */
static graph *residual_net(engine_error *err)
{
    graph *g = graph_create("synthetic");
    int x = graph_add_value(g, "x", err);
    g->values[x].dtype = DTYPE_FLOAT32;
    g->values[x].shape = (shape_t){.rank = 4, .dim = {-1, 16, 32, 32}};
    g->inputs = malloc(sizeof(int));
    g->inputs[g->n_inputs++] = x;
    int cur = x;
    for (int i = 0; i < 6; i++) {
        int a = add_conv(g, cur, 16, 2 * i, err);
        int b = add_conv(g, a, 16, 2 * i + 1, err);
        cur = add_binary(g, OP_ADD, b, cur, i, err);
    }
    g->outputs = malloc(sizeof(int));
    g->output_names = malloc(sizeof(char *));
    g->output_names[0] = strdup("y");
    g->outputs[g->n_outputs++] = cur;
    return g;
}

static void test_residual_in_place(void)
{
    engine_error err = {0};
    graph *g = residual_net(&err);
    pass_stats stats = {0};
    plan *probe = NULL, *plain = NULL, *in_place = NULL;
    CHECK(passes_run(g, &stats, &err) == ENGINE_OK);
    CHECK(plan_create(g, 8, NULL, 0, &probe, &err) == ENGINE_OK);
    CHECK(passes_fuse_residuals(g, probe, &stats, &err) == ENGINE_OK);
    CHECK(stats.residuals_fused == 6);
    CHECK(plan_create(g, 8, NULL, 0, &plain, &err) == ENGINE_OK);
    CHECK(plan_create(g, 8, NULL, PLAN_RESIDUAL_IN_PLACE, &in_place, &err) == ENGINE_OK);
    int shared = 0;
    for (int s = 0; s < in_place->n_steps; s++) {
        const graph_node *n = &g->nodes[in_place->steps[s].node];
        if (n->op != OP_CONV || n->n_inputs < 4 || n->inputs[3] < 0)
            continue;
        int r = n->inputs[3], y = n->outputs[0];
        if (in_place->values[r].storage == STORE_INPUT)
            continue; /* the first block's residual: the caller's input, never written */
        CHECK(in_place->values[y].offset == in_place->values[r].offset);
        CHECK(plain->values[y].offset != plain->values[r].offset);
        shared++;
    }
    CHECK(shared == 5);
    check_no_overlap(plain);
    check_no_overlap(in_place);
    CHECK(in_place->arena_bytes < plain->arena_bytes);
    printf("residual in place: arena %zu bytes, %zu without\n", in_place->arena_bytes,
           plain->arena_bytes);
    plan_free(probe);
    plan_free(plain);
    plan_free(in_place);
    graph_free(g);
}

int main(void)
{
    engine_error err = {0};
    test_concat_in_place();
    test_residual_in_place();
    graph *g = residual_net(&err);
    pass_stats stats;
    CHECK(passes_run(g, &stats, &err) == ENGINE_OK);

    plan *big = NULL, *small = NULL;
    CHECK(plan_create(g, 8, NULL, 0, &big, &err) == ENGINE_OK);
    CHECK(big->n_steps == 18);
    check_no_overlap(big);
    /* a residual block needs at most three live 16x32x32 maps per image */
    size_t map = (size_t)8 * 16 * 32 * 32 * sizeof(float);
    CHECK(big->arena_bytes <= 3 * map);
    printf("arena %zu bytes for 18 steps (%zu per feature map)\n", big->arena_bytes, map);

    CHECK(plan_create(g, 3, big, 0, &small, &err) == ENGINE_OK);
    CHECK(small->arena_bytes == big->arena_bytes);
    for (int v = 0; v < g->n_values; v++)
        if (small->values[v].storage == STORE_ARENA)
            CHECK(small->values[v].offset == big->values[v].offset &&
                  plan_value_bytes(small, v) * 8 == plan_value_bytes(big, v) * 3);
    CHECK(big->flops == 8 * 12 * (2LL * 16 * 32 * 32 * 16 * 9) + 8 * 6 * 16 * 32 * 32);

    plan_free(small);
    plan_free(big);
    graph_free(g);
    printf("test_plan: ok\n");
    return 0;
}
