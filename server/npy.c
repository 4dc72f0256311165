/* .npy reader and writer (see npy.h). NumPy's format is a magic string, a
 * Python-literal header dict and raw data; no library in Debian reads it
 * from C, and the subset here is small. */
#include "npy.h"

#include "../engine/file_read.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_HEADER 65536
/* 4 GiB, or half the address space on 32-bit ARM */
#define NPY_MAX_FILE ((size_t)((uint64_t)4 << 30 < SIZE_MAX / 2 ? (uint64_t)4 << 30 : SIZE_MAX / 2))

static int __attribute__((format(printf, 3, 4))) fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Finds 'key': in the header dict and returns the text after the colon. */
static const char *dict_value(const char *h, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p)
        return NULL;
    p = strchr(p + strlen(pat), ':');
    if (!p)
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

int npy_parse(const void *data, size_t size, const char *label, npy_array *out, char *err,
              size_t errlen)
{
    memset(out, 0, sizeof *out);
    const unsigned char *pre = data;
    if (size < 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return fail(err, errlen, "%s: not a .npy file", label);
    size_t hlen, start;
    if (pre[6] == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
        start = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (size < 12)
            return fail(err, errlen, "%s: truncated header", label);
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        start = 12;
    } else {
        return fail(err, errlen, "%s: unknown .npy version", label);
    }
    if (hlen > NPY_MAX_HEADER)
        return fail(err, errlen, "%s: header too large", label);
    if (hlen > size - start)
        return fail(err, errlen, "%s: truncated header", label);
    char header[NPY_MAX_HEADER + 1];
    memcpy(header, pre + start, hlen);
    header[hlen] = 0;
    const char *descr = dict_value(header, "descr");
    const char *order = dict_value(header, "fortran_order");
    const char *shp = dict_value(header, "shape");
    if (!descr || !order || !shp)
        return fail(err, errlen, "%s: malformed header", label);
    size_t file_elem;
    if (strncmp(descr, "'<f4'", 5) == 0) {
        out->dtype = DTYPE_FLOAT32;
        file_elem = 4;
    } else if (strncmp(descr, "'<f8'", 5) == 0) {
        out->dtype = DTYPE_FLOAT32; /* narrowed on read */
        file_elem = 8;
    } else if (strncmp(descr, "'<i8'", 5) == 0) {
        out->dtype = DTYPE_INT64;
        file_elem = 8;
    } else {
        return fail(err, errlen, "%s: dtype %.8s not supported (float32, float64 or int64)", label,
                    descr);
    }
    if (strncmp(order, "False", 5) != 0)
        return fail(err, errlen, "%s: Fortran-order arrays are not supported", label);
    if (*shp != '(')
        return fail(err, errlen, "%s: malformed shape", label);
    shp++;
    out->shape.rank = 0;
    while (*shp && *shp != ')') {
        while (*shp == ' ' || *shp == ',')
            shp++;
        if (*shp == ')')
            break;
        char *end;
        errno = 0;
        long long d = strtoll(shp, &end, 10);
        if (end == shp || errno || d < 0 || out->shape.rank >= ENGINE_MAX_RANK)
            return fail(err, errlen, "%s: bad shape (rank at most 8, dimensions >= 0)", label);
        out->shape.dim[out->shape.rank++] = d;
        shp = end;
    }
    engine_error e;
    if (shape_check(&out->shape, label, &e))
        return fail(err, errlen, "%s", e.message);
    /* the data the shape promises must be what the file holds, before any allocation */
    int64_t n = shape_numel(&out->shape);
    size_t have = size - start - hlen;
    if ((uint64_t)n > have / file_elem || (size_t)n * file_elem < have)
        return fail(err, errlen, "%s: data %s than its shape says (%zu bytes for %lld elements)",
                    label, (uint64_t)n > have / file_elem ? "shorter" : "longer", have,
                    (long long)n);
    const unsigned char *raw = pre + start + hlen;
    out->data = malloc((size_t)n * dtype_size(out->dtype) + 1);
    if (!out->data)
        return fail(err, errlen, "%s: out of memory", label);
    if (file_elem == 8 && out->dtype == DTYPE_FLOAT32) {
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, raw + (size_t)i * 8, 8);
            ((float *)out->data)[i] = (float)v;
        }
    } else {
        memcpy(out->data, raw, (size_t)n * file_elem);
    }
    return 0;
}

int npy_read(const char *path, npy_array *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *buf;
    size_t len;
    engine_error e;
    if (file_read_regular(path, NPY_MAX_FILE, &buf, &len, NULL, &e))
        return fail(err, errlen, "%s", e.message);
    int rc = npy_parse(buf, len, path, out, err, errlen);
    free(buf);
    return rc;
}

int npy_write(const char *path, dtype_t dtype, const shape_t *shape, const void *data, char *err,
              size_t errlen)
{
    char dict[512];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       dtype == DTYPE_INT64 ? "<i8" : "<f4");
    for (int i = 0; i < shape->rank; i++)
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%lld%s", (long long)shape->dim[i],
                        shape->rank == 1 || i + 1 < shape->rank ? ", " : "");
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    /* pad with spaces so that magic + length + header is a multiple of 64, ending in \n */
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    char header[640];
    memcpy(header, dict, (size_t)len);
    memset(header + len, ' ', (size_t)pad);
    header[len + pad] = '\n';
    int hlen = len + pad + 1;
    FILE *f = fopen(path, "wb");
    if (!f)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    size_t bytes = (size_t)shape_numel(shape) * dtype_size(dtype);
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)hlen, f) == (size_t)hlen &&
              fwrite(data, 1, bytes, f) == bytes;
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        return fail(err, errlen, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

void npy_free(npy_array *a)
{
    free(a->data);
    a->data = NULL;
}
