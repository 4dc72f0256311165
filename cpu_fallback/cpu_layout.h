/* Which activations the CPU backend keeps channel-blocked (NCHW16c).
 *
 * In NCHW16c a 4-D tensor [N, C, H, W] is stored as [N][C/16][H][W][16]:
 * sixteen channels of one pixel sit side by side, so a convolution kernel
 * loads them as one AVX-512 register (two AVX2 ones), a depthwise or
 * pooling window works on whole vectors, and no im2col copy is needed.
 * Channels past C (up to a multiple of 16) are padding: they hold finite
 * values that nothing reads into a result; the plan reserves room for them
 * because the backend asks it to (cpu_backend.c, value_room).
 *
 * The decision is one pass over a plan: values that must share a layout
 * (the input and output of a pool, an element-wise op, a depthwise
 * convolution, a Concat over channels; a convolution's output and its fused
 * residual) are joined into groups, and a group is blocked unless one of
 * its values cannot be: graph inputs and outputs, views (Reshape, Flatten),
 * tensors that are not 4-D, and anything read by an operator without a
 * blocked kernel (Gemm, Softmax, Slice, ...). A plain convolution (group 1)
 * reads and writes either layout, so it is where the layout changes:
 * typically the first one reads the NCHW image and writes blocked, and the
 * global pool at the end reads blocked and writes NCHW.
 */
#ifndef VISIOND_CPU_LAYOUT_H
#define VISIOND_CPU_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "../engine/plan.h"

#define CPU_BLOCK 16 /* channels per block */

/* Fills blocked[v] for every value of the plan's graph (false for
 * constants, inputs and anything kept NCHW). Returns false on out of memory. */
bool cpu_layout_decide(const plan *p, bool *blocked);

/* Channel blocks of c channels. */
static inline int64_t cpu_blocks(int64_t c)
{
    return (c + CPU_BLOCK - 1) / CPU_BLOCK;
}

/* An Add/Sub/Mul/Div of a 4-D tensor and a per-channel [N or 1, C, 1, 1]
 * operand (squeeze-and-excitation): which input is which. */
bool cpu_layout_channel_operand(const graph_node *n, const plan *p, int *full, int *chan);

/* The depthwise case the blocked kernels run: one input and one output
 * channel per group. */
bool cpu_layout_is_depthwise(const graph_node *n, const plan *p);

#endif
