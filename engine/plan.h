/* A plan: the graph made concrete for one batch size.
 *
 * plan_create infers every shape for the batch, folds whatever is constant
 * for that batch (the Shape -> Gather -> Concat chains exporters put around
 * Reshape become constants here), turns Reshape/Flatten/Squeeze/Unsqueeze
 * into views of their input, resolves per-step parameters (auto_pad, axes,
 * slice bounds), and assigns every activation a byte offset in one arena so
 * that buffers whose lifetimes do not overlap share memory. Backends only
 * read plans; all their per-batch state hangs off backend_prepare().
 */
#ifndef VISIOND_PLAN_H
#define VISIOND_PLAN_H

#include "graph.h"

typedef enum {
    STORE_NONE = 0, /* not computed (an output nobody reads) */
    STORE_INPUT,    /* a caller's input buffer */
    STORE_CONST,    /* constant data: graph-owned or folded by this plan */
    STORE_ARENA,    /* an activation at `offset` bytes into the arena */
} storage_kind;

typedef struct {
    dtype_t dtype;
    shape_t shape;
    storage_kind storage;
    int input_index;   /* STORE_INPUT: index into the graph's inputs */
    const void *data;  /* STORE_CONST */
    size_t offset;     /* STORE_ARENA, shared by views of the same buffer */
    int view_of;       /* -1, or the value whose buffer this one reinterprets */
    /* -1, or (PLAN_CONCAT_IN_PLACE) the output of the channel Concat that
     * is this value's only reader: that output's buffer is kept live from
     * this value's producer on, so a backend may write this value straight
     * into its slice of the Concat instead of copying it there afterwards */
    int concat_into;
    bool defined;
} plan_value;

/* Parameters a step needs that depend on shapes, resolved once per plan. */
typedef union {
    struct {
        int64_t pad_begin[2], pad_end[2];
    } win;          /* Conv, pools */
    int axis;       /* Concat, Softmax, Gather, Split, Flatten (normalised) */
    struct {
        int64_t start[ENGINE_MAX_RANK], step[ENGINE_MAX_RANK];
    } slice;        /* Slice: per axis of the input */
    struct {
        int64_t begin[ENGINE_MAX_RANK];
        float value;
    } pad;          /* Pad: leading pad per axis (may be negative) and fill */
    struct {
        int perm[ENGINE_MAX_RANK];
    } transpose;    /* Transpose */
    struct {
        uint32_t axes_mask;
    } reduce;       /* Reduce*: bit i set when axis i is reduced */
    struct {
        float scale[2]; /* output / input along the last two axes */
    } resize;       /* Resize */
    struct {
        int axis;   /* first, so that .axis reads it as for the other operators */
        int64_t k;
    } topk;         /* TopK */
} step_params;

typedef struct {
    int node;       /* graph node id */
    int64_t flops;  /* multiply-add counted as 2 */
    step_params r;
} plan_step;

typedef struct plan {
    const graph *g;
    int batch;
    plan_value *values; /* indexed like g->values */
    plan_step *steps;
    int n_steps;
    size_t arena_bytes; /* peak activation memory */
    int64_t flops;
    void **owned;       /* payloads of constants this plan folded */
    int n_owned, cap_owned;
    /* the backend's room for a value (plan_create_for), or NULL: its bytes */
    size_t (*room)(const struct plan *p, int v);
} plan;

/* Flags of plan_create. PLAN_RESIDUAL_IN_PLACE: a convolution with a fused
 * residual whose residual is read by nothing after it writes its output
 * into the residual's buffer (the sum then reads and writes the same
 * memory, saving the output's write-allocate traffic). Only for backends
 * whose every convolution reads each residual element before writing it. */
#define PLAN_RESIDUAL_IN_PLACE 1u
/* PLAN_CONCAT_IN_PLACE: values whose only reader is a channel Concat get
 * concat_into set, and the Concat's buffer lives from their producers on,
 * so the backend may write them into their slices of it. Without the flag
 * no value is marked and no lifetime grows. */
#define PLAN_CONCAT_IN_PLACE 2u

/* Makes the plan for `batch`. With `layout`, a plan of a larger batch of the
 * same graph, the arena offsets are taken from it, so one arena serves every
 * batch size up to the largest. */
engine_status plan_create(const graph *g, int batch, const plan *layout, unsigned flags,
                          plan **out, engine_error *err);
/* The same for a backend that asks for more room than a value's bytes for
 * some values (backend_ops.value_room: the CPU keeps 4-D activations in
 * 16-channel blocks); `layout` must have been made with the same `room`. */
engine_status plan_create_for(const graph *g, int batch, const plan *layout, unsigned flags,
                              size_t (*room)(const plan *p, int v), plan **out,
                              engine_error *err);
void plan_free(plan *p);

/* Bytes a value occupies for this plan. */
size_t plan_value_bytes(const plan *p, int v);

/* Bytes the arena reserves for a value: what the plan's backend asked for
 * (plan_create_for), else its bytes. */
size_t plan_value_room(const plan *p, int v);

#endif
