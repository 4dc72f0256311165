/* Host memory for tensors: weights, activation arenas, workspaces.
 *
 * Buffers of HUGE_PAGE bytes or more start on a 2 MiB boundary and ask the
 * kernel for transparent huge pages (madvise; THP's default "madvise" mode
 * gives them to no one who does not ask). The blocked convolution kernels
 * walk an activation 16 channels at a time through planes hundreds of KiB
 * apart, so a tile touches a new 4 KiB page every few steps on each of its
 * streams; under a hypervisor every TLB miss is a two-level page walk.
 * Measured on the 2-core bench VM, interleaved A/B over 7 rounds: resnet50
 * batch 8 0.97x the time, mobilenet_v2 batch 8 0.97x, squeezenet1_1 batch 8
 * 0.98x. Only whole 2 MiB pages inside the buffer are advised, so nothing
 * is rounded up; where THP is off or madvise fails, the buffer keeps 4 KiB
 * pages and works the same.
 */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include <stdlib.h>
#include <sys/mman.h>

#include "graph.h"

#define HUGE_PAGE ((size_t)2 << 20)

void *tensor_alloc(size_t bytes)
{
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded == 0)
        rounded = 64;
    if (rounded < HUGE_PAGE)
        return aligned_alloc(64, rounded);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, rounded) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, rounded & ~(HUGE_PAGE - 1), MADV_HUGEPAGE);
#endif
    return p;
}

void tensor_free(void *p)
{
    free(p);
}
