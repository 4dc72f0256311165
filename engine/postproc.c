/* Softmax and top-k over one image's class scores. */
#include "postproc.h"

#include <math.h>

void postproc_softmax(float *v, int n)
{
    if (n <= 0)
        return;
    float mx = v[0];
    for (int i = 1; i < n; i++)
        mx = v[i] > mx ? v[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        v[i] = expf(v[i] - mx);
        sum += v[i];
    }
    for (int i = 0; i < n; i++)
        v[i] = (float)(v[i] / sum);
}

/* Insertion into a small sorted list: k is small (a handful), n a few
 * thousand at most, so this beats sorting everything. */
int postproc_top_k(const float *v, int n, int k, postproc_pred *out)
{
    if (k > n)
        k = n;
    int have = 0;
    for (int i = 0; i < n; i++) {
        float s = v[i];
        if (s != s)
            s = -INFINITY; /* NaN ranks last */
        if (have == k && !(s > out[have - 1].score))
            continue;
        int pos = have < k ? have++ : k - 1;
        while (pos > 0 && s > out[pos - 1].score) {
            out[pos] = out[pos - 1];
            pos--;
        }
        out[pos] = (postproc_pred){i, s};
    }
    return have;
}
