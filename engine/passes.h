/* Load-time graph passes: the rewrites that hold for every batch size.
 *
 *  1. Identity and inference-mode Dropout disappear; their readers read the
 *     input instead.
 *  2. Constant subgraphs are folded (weights transposed or reshaped by the
 *     exporter, Clip bounds built from Constant nodes, ...).
 *  3. Pads of all zeros disappear.
 *  4. A BatchNormalization right after a Conv is folded into the Conv's
 *     weights and bias; any other one becomes a per-channel scale and shift.
 *  5. An Add of a per-channel constant after Conv/Gemm becomes its bias.
 *  6. Activations exporters spell as several nodes become one: Gelu from
 *     Div/Erf/Add/Mul/Mul, SiLU from Sigmoid and Mul.
 *  7. An activation right after Conv/Gemm becomes the Conv/Gemm epilogue.
 *
 * Every rewrite keeps graph output names, and creates new constants rather
 * than editing initializers that another node may share.
 */
#ifndef VISIOND_PASSES_H
#define VISIOND_PASSES_H

#include "graph.h"
#include "plan.h"

typedef struct {
    int identities_removed, constants_folded, pads_removed;
    int batchnorms_folded, batchnorms_standalone, biases_fused, activations_fused;
    int residuals_fused, patterns_fused;
} pass_stats;

engine_status passes_run(graph *g, pass_stats *stats, engine_error *err);

/* 8. Once a first plan has told every shape: an Add of a Conv's output and
 *    a tensor of exactly its shape becomes the Conv's residual input (input
 *    3, added before the activation), and a Relu after it the Conv's
 *    activation, so a ResNet block's Conv, Add and Relu run as one pass
 *    over the output. A dilated Conv whose outer taps only ever read
 *    padding loses them (smaller kernel, smaller pads, same output).
 *    Shapes decide, hence the probe plan. */
engine_status passes_fuse_residuals(graph *g, const plan *probe, pass_stats *stats,
                                    engine_error *err);

#endif
