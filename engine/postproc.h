/* Post-processing of classifier outputs: softmax and top-k. */
#ifndef VISIOND_POSTPROC_H
#define VISIOND_POSTPROC_H

#include <stdint.h>

typedef struct {
    int index;
    float score;
} postproc_pred;

/* In place, numerically stable (max subtracted). */
void postproc_softmax(float *v, int n);
/* The k largest of v[0..n), highest first; ties keep the lower index first.
 * Returns how many were written (min(k, n)). */
int postproc_top_k(const float *v, int n, int k, postproc_pred *out);

#endif
