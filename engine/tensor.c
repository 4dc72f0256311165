/* Shape arithmetic shared by shape inference, planning and the backends. */
#include "tensor.h"

#include <stdio.h>

size_t dtype_size(dtype_t t)
{
    switch (t) {
    case DTYPE_FLOAT32: return 4;
    case DTYPE_UINT8: return 1;
    case DTYPE_INT64: return 8;
    default: return 0;
    }
}

const char *dtype_name(dtype_t t)
{
    switch (t) {
    case DTYPE_FLOAT32: return "float32";
    case DTYPE_UINT8: return "uint8";
    case DTYPE_INT64: return "int64";
    default: return "undefined";
    }
}

int64_t shape_numel(const shape_t *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= s->dim[i];
    return n;
}

bool shape_equal(const shape_t *a, const shape_t *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i])
            return false;
    return true;
}

engine_status shape_check(const shape_t *s, const char *what, engine_error *err)
{
    if (s->rank < 0 || s->rank > ENGINE_MAX_RANK)
        return engine_fail(err, ENGINE_E_UNSUPPORTED, "%s has rank %d (at most %d supported)", what,
                           s->rank, ENGINE_MAX_RANK);
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        int64_t d = s->dim[i];
        if (d < 0)
            return engine_fail(err, ENGINE_E_INVALID, "%s has negative dimension %lld at axis %d",
                               what, (long long)d, i);
        if (d > ENGINE_MAX_ELEMENTS || (d > 0 && n > ENGINE_MAX_ELEMENTS / d)) {
            char buf[160];
            return engine_fail(err, ENGINE_E_INVALID,
                               "%s has absurd dimensions %s (more than %lld elements)", what,
                               shape_format(s, buf, sizeof buf), (long long)ENGINE_MAX_ELEMENTS);
        }
        n *= d;
    }
    if (n > ENGINE_MAX_ELEMENTS)
        return engine_fail(err, ENGINE_E_INVALID, "%s has more than %lld elements", what,
                           (long long)ENGINE_MAX_ELEMENTS);
    return ENGINE_OK;
}

engine_status shape_broadcast(const shape_t *a, const shape_t *b, shape_t *out, engine_error *err)
{
    int r = a->rank > b->rank ? a->rank : b->rank;
    shape_t o = {.rank = r};
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t da = ia >= 0 ? a->dim[ia] : 1;
        int64_t db = ib >= 0 ? b->dim[ib] : 1;
        if (da == db || db == 1)
            o.dim[i] = da;
        else if (da == 1)
            o.dim[i] = db;
        else {
            char sa[128], sb[128];
            return engine_fail(err, ENGINE_E_INVALID, "shapes %s and %s do not broadcast",
                               shape_format(a, sa, sizeof sa), shape_format(b, sb, sizeof sb));
        }
    }
    *out = o;
    return ENGINE_OK;
}

char *shape_format(const shape_t *s, char *buf, size_t n)
{
    if (n == 0)
        return buf;
    if (s->rank == 0) {
        snprintf(buf, n, "scalar");
        return buf;
    }
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < s->rank && used < n; i++) {
        int w = snprintf(buf + used, n - used, i ? "x%lld" : "%lld", (long long)s->dim[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

int axis_normalize(int64_t axis, int rank)
{
    if (axis < -rank || axis >= rank)
        return -1;
    return (int)(axis < 0 ? axis + rank : axis);
}
