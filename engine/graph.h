/* The graph IR every other part of the engine works on.
 *
 * An ONNX model is imported into this form once (onnx_import.c): values in
 * SSA form (each produced by at most one node) and nodes whose attributes
 * are already parsed into the canonical parameter structs below, so that no
 * pass or backend ever looks at ONNX attributes or opset versions again.
 * Inputs that older opsets gave as attributes (Slice starts, Clip min, ...)
 * become constant input values, the form newer opsets use.
 *
 * The graph does not know where it runs: backends see it only through a plan
 * (plan.h) made for one batch size.
 */
#ifndef VISIOND_GRAPH_H
#define VISIOND_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef enum {
    OP_NONE = 0, /* a node removed by a pass, dropped by graph_compact */
    OP_CONV,
    OP_GEMM,
    OP_MATMUL,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_RELU,
    OP_LEAKY_RELU,
    OP_CLIP,
    OP_SIGMOID,
    OP_HARD_SIGMOID,
    OP_HARD_SWISH,
    OP_EXP,
    OP_MAXPOOL,
    OP_AVGPOOL,
    OP_GLOBAL_AVGPOOL,
    OP_GLOBAL_MAXPOOL,
    OP_BATCHNORM,
    OP_LRN,
    OP_SOFTMAX,
    OP_CONCAT,
    OP_FLATTEN,
    OP_RESHAPE,
    OP_TRANSPOSE,
    OP_SLICE,
    OP_SPLIT,
    OP_PAD,
    OP_SQUEEZE,
    OP_UNSQUEEZE,
    OP_GATHER,
    OP_SHAPE,
    OP_CAST,
    OP_REDUCE_MEAN,
    OP_DROPOUT,
    OP_IDENTITY,
    /* element-wise math (unary ones are activations too, act_kind below) */
    OP_ERF,
    OP_GELU,
    OP_SQRT,
    OP_RECIPROCAL,
    OP_NEG,
    OP_ABS,
    OP_TANH,
    OP_SOFTPLUS,
    OP_MISH,
    OP_LOG,
    OP_POW,
    OP_MOD,
    OP_MIN,
    OP_MAX,
    /* comparisons and logic: booleans are int64 0/1 */
    OP_EQUAL,
    OP_LESS,
    OP_LESS_OR_EQUAL,
    OP_GREATER,
    OP_GREATER_OR_EQUAL,
    OP_AND,
    OP_OR,
    OP_NOT,
    OP_WHERE,
    /* normalisation and reductions */
    OP_LAYER_NORM,
    OP_INSTANCE_NORM,
    OP_LOG_SOFTMAX,
    OP_REDUCE_SUM,
    OP_REDUCE_MAX,
    OP_REDUCE_MIN,
    OP_PRELU,
    /* shape and data movement */
    OP_EXPAND,
    OP_CONSTANT_OF_SHAPE,
    OP_RANGE,
    OP_TILE,
    OP_GATHER_ELEMENTS,
    OP_SCATTER_ND,
    OP_EINSUM,
    OP_RESIZE,
    OP_CONV_TRANSPOSE,
    /* selection: int64 indices computed at run time */
    OP_TOPK,
    OP_ARGMAX,
    OP_ARGMIN,
    OP_NMS,
    /* not from ONNX: x * sigmoid(x), fused from Sigmoid and Mul (passes.c) */
    OP_SILU,
    /* not from ONNX: the engine's image entry (engine_set_image_input).
     * Inputs: 0 the model's float input (N, C, H, W), 1 images as bytes
     * (N, H, W, C); at run time exactly one of them is given. Output: the
     * normalised images, or input 0 as it is. */
    OP_NORMALIZE_IMAGE,
    OP_COUNT
} op_t;

const char *op_name(op_t op);
bool op_is_unary_activation(op_t op);
bool op_is_binary_elementwise(op_t op);
/* Equal, Less, ..., And, Or: int64 0/1 results */
bool op_is_comparison(op_t op);

/* Element-wise activation, either a node of its own (Relu, Clip, ...) or an
 * epilogue fused into Conv/Gemm. */
typedef enum {
    ACT_NONE = 0,
    ACT_RELU,
    ACT_LEAKY_RELU,   /* alpha: negative slope */
    ACT_CLIP,         /* alpha: min, beta: max */
    ACT_SIGMOID,
    ACT_HARD_SIGMOID, /* max(0, min(1, alpha*x + beta)) */
    ACT_HARD_SWISH,
    ACT_EXP,
    ACT_ERF,
    ACT_GELU,         /* alpha 0: erf form; 1: tanh approximation */
    ACT_SQRT,
    ACT_RECIPROCAL,
    ACT_NEG,
    ACT_ABS,
    ACT_TANH,
    ACT_SOFTPLUS,
    ACT_MISH,
    ACT_LOG,
    ACT_SILU,         /* x * sigmoid(x): fused from Mul(x, Sigmoid(x)) */
} act_kind;

typedef struct {
    act_kind kind;
    float alpha, beta;
} act_params;

typedef enum { AUTO_PAD_NOTSET = 0, AUTO_PAD_SAME_UPPER, AUTO_PAD_SAME_LOWER, AUTO_PAD_VALID } auto_pad_t;

/* Sliding-window parameters shared by Conv and the pools. One or two spatial
 * axes; a 1-D window is treated as 2-D with a height of 1. */
typedef struct {
    int spatial; /* 1 or 2; 0 for Conv until the weights tell */
    int64_t kernel[2], stride[2], dilation[2], pad_begin[2], pad_end[2];
    auto_pad_t auto_pad;
    int64_t group;
    bool ceil_mode, count_include_pad;
} window_params;

typedef struct {
    float alpha, beta;
    bool trans_a, trans_b;
} gemm_params;

typedef struct {
    int64_t size;
    float alpha, beta, bias;
} lrn_params;

typedef enum { PAD_CONSTANT = 0, PAD_REFLECT, PAD_EDGE } pad_mode;

/* Resize: how output coordinates map back and how values are read. */
typedef enum { RESIZE_NEAREST = 0, RESIZE_LINEAR } resize_mode;
typedef enum {
    COORD_HALF_PIXEL = 0,
    COORD_PYTORCH_HALF_PIXEL,
    COORD_ALIGN_CORNERS,
    COORD_ASYMMETRIC,
    COORD_TF_HALF_PIXEL_FOR_NN,
    COORD_HALF_PIXEL_SYMMETRIC,
} coord_mode;
typedef enum { NEAREST_ROUND_PREFER_FLOOR = 0, NEAREST_ROUND_PREFER_CEIL, NEAREST_FLOOR,
               NEAREST_CEIL } nearest_mode;
typedef struct {
    resize_mode mode;
    coord_mode coord;
    nearest_mode nearest;
} resize_params;

/* Einsum of one or two operands, parsed: each operand and the output as a
 * list of labels (letters mapped to 0..51). */
typedef struct {
    int n_operands;
    int8_t rank[3];                 /* operands 0, 1, then the output */
    int8_t label[3][ENGINE_MAX_RANK];
} einsum_params;

typedef union {
    window_params win;   /* Conv, MaxPool, AveragePool */
    struct {
        window_params win;
        int64_t output_padding[2];
        int64_t output_shape[2];
        bool has_output_shape;
    } convt;             /* ConvTranspose */
    struct {
        int64_t axis;
        float epsilon;
    } layer_norm;        /* LayerNormalization */
    resize_params resize; /* Resize, Upsample */
    struct {
        int64_t axis;
        bool largest, sorted;
    } topk;              /* TopK */
    struct {
        int64_t axis;
        bool keepdims, select_last;
    } arg;               /* ArgMax, ArgMin */
    struct {
        dtype_t dtype;
        float f;
        int64_t i;
    } fill;              /* ConstantOfShape */
    bool fmod;           /* Mod */
    int scatter_reduction; /* ScatterND: none, add, mul, max, min */
    bool center_point_box; /* NonMaxSuppression */
    einsum_params einsum;
    gemm_params gemm;    /* Gemm */
    lrn_params lrn;      /* LRN */
    float epsilon;       /* BatchNormalization */
    struct {
        int64_t axis;
        bool legacy_2d;  /* Softmax before opset 13 flattens to 2-D around axis */
    } softmax;
    int64_t axis;        /* Concat, Flatten, Gather, GatherElements, Split */
    struct {
        int n;           /* 0: reverse the axes */
        int64_t perm[ENGINE_MAX_RANK];
    } transpose;
    bool allowzero;      /* Reshape */
    struct {
        int64_t start, end;
        bool has_end;
    } shape;             /* Shape */
    struct {
        dtype_t to;
        bool to_bool;    /* to int64 0/1: the engine's booleans */
    } cast;              /* Cast */
    pad_mode pad;        /* Pad */
    struct {
        bool keepdims, noop_with_empty_axes;
    } reduce;            /* ReduceMean, ReduceSum, ReduceMax, ReduceMin */
    struct {
        int64_t axis, num_outputs;
    } split;             /* Split */
    struct {
        float mul[3], add[3]; /* per channel: y = v * mul + add */
        bool bgr;             /* channel c of the output is channel 2 - c of the bytes */
    } norm;              /* NormalizeImage */
} op_params;

typedef struct {
    char *name;
    op_t op;
    int n_inputs, n_outputs;
    int *inputs;  /* value ids; -1 for an absent optional input */
    int *outputs; /* value ids; -1 for an output nobody asked for */
    op_params p;
    act_params act; /* the activation itself for unary nodes; a fused epilogue for Conv/Gemm */
} graph_node;

typedef struct {
    char *name;
    dtype_t dtype;  /* DTYPE_UNDEFINED until a plan infers it */
    shape_t shape;  /* constants and graph inputs only; an input's dim 0 may be -1, the batch */
    void *data;     /* constant payload, 64-byte aligned, owned by the graph; NULL otherwise */
    int producer;   /* node id, or -1 for inputs and constants */
} graph_value;

typedef struct graph {
    char *source;   /* file name, for messages */
    int64_t opset;
    int64_t ir_version;
    graph_value *values;
    int n_values, cap_values;
    graph_node *nodes;
    int n_nodes, cap_nodes;
    int *inputs;    /* runtime inputs (graph inputs that are not initializers) */
    int n_inputs;
    int *outputs;
    char **output_names; /* kept apart from values: a pass may re-point an output */
    int n_outputs;
    int64_t n_params;    /* elements in the model's float initializers */
    int nodes_in_file;
    /* name -> value id, open addressing */
    int *index;
    int index_cap;
} graph;

graph *graph_create(const char *source);
void graph_free(graph *g);

/* Adds a value with a unique name; returns its id, or -1 (err set) when the
 * name is taken or memory runs out. */
int graph_add_value(graph *g, const char *name, engine_error *err);
/* Adds a value named after `hint` with a suffix that makes it unique. */
int graph_add_value_unique(graph *g, const char *hint, engine_error *err);
int graph_find_value(const graph *g, const char *name);

/* Makes value v a constant that owns `data` (allocated with tensor_alloc). */
void graph_set_const(graph *g, int v, dtype_t dt, const shape_t *s, void *data);
/* Adds a fresh constant value; copies `data`. Returns id or -1. */
int graph_add_const(graph *g, const char *hint, dtype_t dt, const shape_t *s, const void *data,
                    engine_error *err);
static inline bool graph_is_const(const graph *g, int v)
{
    return v >= 0 && g->values[v].data != 0;
}

/* Appends a node; its input/output arrays are allocated and filled with -1. */
graph_node *graph_add_node(graph *g, op_t op, const char *name, int n_inputs, int n_outputs,
                           engine_error *err);

/* Puts value v at input slot k, growing the node's input array if needed. */
engine_status graph_node_set_input(graph_node *n, int k, int v, engine_error *err);

/* Every use of value `from` (node inputs, graph outputs) now reads `to`. */
void graph_replace_uses(graph *g, int from, int to);
/* uses[v] = number of node inputs plus graph outputs reading v. */
void graph_count_uses(const graph *g, int *uses);
/* Drops OP_NONE nodes and nodes whose outputs nobody uses, frees the data
 * of constants nobody reads any more, and recomputes producers. */
void graph_compact(graph *g);
bool graph_is_output(const graph *g, int v);
/* Orders nodes so every node comes after the producers of its inputs
 * (Kahn's algorithm with a stable queue: a sorted graph keeps its order);
 * fails on a cycle. */
engine_status graph_sort(graph *g, engine_error *err);

/* 64-byte aligned allocation for tensor payloads (NULL when bytes == 0 is
 * asked for returns a valid minimal block); buffers of 2 MiB or more are
 * 2 MiB aligned and ask for transparent huge pages (host_memory.c). */
void *tensor_alloc(size_t bytes);
void tensor_free(void *p);

#endif
