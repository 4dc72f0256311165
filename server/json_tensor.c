/* Splitting KServe v2 JSON requests; see json_tensor.h.
 *
 * A recursive scanner over the JSON grammar that knows one path: the
 * top-level object's "inputs" array, its elements' "data". Everything it
 * does not split it only checks for balance (strings, brackets, depth);
 * jansson checks the skeleton fully afterwards.
 */
#include "json_tensor.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { AT_TOP, AT_INPUTS, AT_INPUT, AT_OTHER } place;

typedef struct {
    const char *s;
    size_t len, pos;
    int depth;
    int64_t max_count;
    json_tensor_split *out;
    char *err;
    size_t errlen;
} scanner;

static int __attribute__((format(printf, 2, 3))) fail(scanner *sc, const char *fmt, ...)
{
    if (sc->err[0])
        return -1; /* the first error says it */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sc->err, sc->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void skip_ws(scanner *sc)
{
    while (sc->pos < sc->len && (sc->s[sc->pos] == ' ' || sc->s[sc->pos] == '\t' ||
                                 sc->s[sc->pos] == '\n' || sc->s[sc->pos] == '\r'))
        sc->pos++;
}

static int peek(scanner *sc)
{
    skip_ws(sc);
    return sc->pos < sc->len ? (unsigned char)sc->s[sc->pos] : -1;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Scans a string; its first bytes, unescaped (ASCII escapes only), go to
 * key (for comparing object keys), which holds "" when it does not fit. */
static int scan_string(scanner *sc, char *key, size_t keylen)
{
    if (peek(sc) != '"')
        return fail(sc, "invalid JSON: a string was expected at byte %zu", sc->pos);
    sc->pos++;
    size_t k = 0;
    bool fits = true;
    while (sc->pos < sc->len) {
        char c = sc->s[sc->pos++];
        if (c == '"') {
            if (key)
                key[fits ? k : 0] = 0;
            return 0;
        }
        if ((unsigned char)c < 0x20)
            return fail(sc, "invalid JSON: a control character in a string at byte %zu",
                        sc->pos - 1);
        if (c == '\\') {
            if (sc->pos >= sc->len)
                break;
            char e = sc->s[sc->pos++];
            if (e == 'u') {
                int v = sc->pos + 4 <= sc->len ? hex4(sc->s + sc->pos) : -1;
                if (v < 0)
                    return fail(sc, "invalid JSON: a bad \\u escape at byte %zu", sc->pos);
                sc->pos += 4;
                c = v < 0x80 ? (char)v : '?';
            } else if (strchr("\"\\/bfnrt", e)) {
                c = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r'
                    : e == 't' ? '\t' : e;
            } else {
                return fail(sc, "invalid JSON: a bad escape at byte %zu", sc->pos - 1);
            }
        }
        if (key && k + 1 < keylen)
            key[k++] = c;
        else
            fits = false;
    }
    return fail(sc, "invalid JSON: a string does not end");
}

static bool number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* A JSON number: checked by strtod consuming exactly its characters. */
static int scan_number(scanner *sc, double *v)
{
    size_t start = sc->pos, end = start;
    while (end < sc->len && number_char(sc->s[end]))
        end++;
    char c = start < sc->len ? sc->s[start] : 0;
    if (end == start || !(c == '-' || (c >= '0' && c <= '9')) || end - start > 64)
        return fail(sc, "invalid JSON: a value was expected at byte %zu", start);
    char buf[72];
    memcpy(buf, sc->s + start, end - start);
    buf[end - start] = 0;
    char *stop;
    double d = strtod(buf, &stop);
    if (*stop)
        return fail(sc, "invalid JSON: a malformed number at byte %zu", start);
    if (v)
        *v = d;
    sc->pos = end;
    return 0;
}

/* A data array: nested arrays of numbers, counted (and bounded). */
static int scan_numbers(scanner *sc, int64_t *count)
{
    if (++sc->depth > JSON_MAX_DEPTH)
        return fail(sc, "the request nests deeper than %d levels", JSON_MAX_DEPTH);
    sc->pos++; /* '[' */
    if (peek(sc) == ']') {
        sc->pos++;
        sc->depth--;
        return 0;
    }
    for (;;) {
        int c = peek(sc);
        if (c == '[') {
            if (scan_numbers(sc, count))
                return -1;
        } else {
            if (c == '"' || c == '{' || c == 't' || c == 'f' || c == 'n')
                return fail(sc, "\"data\" must hold numbers only (flat or nested arrays)");
            if (scan_number(sc, NULL))
                return -1;
            if (++*count > sc->max_count)
                return fail(sc, "\"data\" holds more than %lld numbers, more than the model can "
                                "queue",
                            (long long)sc->max_count);
        }
        c = peek(sc);
        sc->pos++;
        if (c == ']')
            break;
        if (c != ',')
            return fail(sc, "invalid JSON: ',' or ']' was expected at byte %zu", sc->pos - 1);
    }
    sc->depth--;
    return 0;
}

static int scan_value(scanner *sc, place at, int index);

static int scan_object(scanner *sc, place at, int index)
{
    sc->pos++; /* '{' */
    if (peek(sc) == '}') {
        sc->pos++;
        return 0;
    }
    for (;;) {
        char key[16];
        if (scan_string(sc, key, sizeof key))
            return -1;
        if (peek(sc) != ':')
            return fail(sc, "invalid JSON: ':' was expected at byte %zu", sc->pos);
        sc->pos++;
        if (at == AT_TOP && strcmp(key, "inputs") == 0) {
            if (scan_value(sc, AT_INPUTS, 0))
                return -1;
        } else if (at == AT_INPUT && strcmp(key, "data") == 0 && peek(sc) == '[' &&
                   index < JSON_TENSOR_MAX_INPUTS) {
            json_tensor_span *sp = &sc->out->data[index];
            *sp = (json_tensor_span){.start = sc->pos};
            if (scan_numbers(sc, &sp->count))
                return -1;
            sp->end = sc->pos;
            sc->out->has_data[index] = 1;
        } else if (scan_value(sc, AT_OTHER, 0)) {
            return -1;
        }
        int c = peek(sc);
        sc->pos++;
        if (c == '}')
            return 0;
        if (c != ',')
            return fail(sc, "invalid JSON: ',' or '}' was expected at byte %zu", sc->pos - 1);
    }
}

static int scan_array(scanner *sc, place at)
{
    sc->pos++; /* '[' */
    if (peek(sc) == ']') {
        sc->pos++;
        return 0;
    }
    for (int i = 0;; i++) {
        if (scan_value(sc, at == AT_INPUTS ? AT_INPUT : AT_OTHER, i))
            return -1;
        if (at == AT_INPUTS)
            sc->out->n_inputs = i + 1;
        int c = peek(sc);
        sc->pos++;
        if (c == ']')
            return 0;
        if (c != ',')
            return fail(sc, "invalid JSON: ',' or ']' was expected at byte %zu", sc->pos - 1);
    }
}

static int scan_value(scanner *sc, place at, int index)
{
    if (++sc->depth > JSON_MAX_DEPTH)
        return fail(sc, "the request nests deeper than %d levels", JSON_MAX_DEPTH);
    int c = peek(sc), rc;
    if (c == '{')
        rc = scan_object(sc, at == AT_INPUT ? AT_INPUT : at == AT_TOP ? AT_TOP : AT_OTHER,
                         index);
    else if (c == '[')
        rc = scan_array(sc, at == AT_INPUTS ? AT_INPUTS : AT_OTHER);
    else if (c == '"')
        rc = scan_string(sc, NULL, 0);
    else if (c == 't' || c == 'f' || c == 'n') {
        const char *word = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t n = strlen(word);
        rc = sc->pos + n <= sc->len && memcmp(sc->s + sc->pos, word, n) == 0
                 ? (sc->pos += n, 0)
                 : fail(sc, "invalid JSON: a value was expected at byte %zu", sc->pos);
    } else
        rc = scan_number(sc, NULL);
    sc->depth--;
    return rc;
}

int json_tensor_split_request(const char *text, size_t len, int64_t max_count,
                              json_tensor_split *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    err[0] = 0;
    scanner sc = {.s = text, .len = len, .max_count = max_count, .out = out, .err = err,
                  .errlen = errlen};
    if (scan_value(&sc, AT_TOP, 0))
        return -1;
    if (peek(&sc) != -1)
        return fail(&sc, "invalid JSON: text after the JSON value at byte %zu", sc.pos);
    /* the skeleton: the text with each data array replaced by 0 */
    size_t removed = 0;
    for (int i = 0; i < JSON_TENSOR_MAX_INPUTS; i++)
        if (out->has_data[i])
            removed += out->data[i].end - out->data[i].start - 1;
    out->skeleton = malloc(len - removed + 1);
    if (!out->skeleton)
        return fail(&sc, "out of memory");
    size_t at = 0, w = 0;
    for (;;) { /* spans in text order */
        const json_tensor_span *next = NULL;
        for (int i = 0; i < JSON_TENSOR_MAX_INPUTS; i++)
            if (out->has_data[i] && out->data[i].start >= at &&
                (!next || out->data[i].start < next->start))
                next = &out->data[i];
        size_t upto = next ? next->start : len;
        memcpy(out->skeleton + w, text + at, upto - at);
        w += upto - at;
        if (!next)
            break;
        out->skeleton[w++] = '0';
        at = next->end;
    }
    out->skeleton[w] = 0;
    out->skeleton_len = w;
    return 0;
}

void json_tensor_split_free(json_tensor_split *s)
{
    free(s->skeleton);
    s->skeleton = NULL;
}

void json_tensor_parse(const char *text, const json_tensor_span *span, float *dst)
{
    int64_t n = 0;
    for (size_t p = span->start; p < span->end && n < span->count;) {
        char c = text[p];
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t e = p;
            while (e < span->end && number_char(text[e]))
                e++;
            char buf[72];
            size_t k = e - p < 64 ? e - p : 64; /* checked by the scan: at most 64 */
            memcpy(buf, text + p, k);
            buf[k] = 0;
            dst[n++] = (float)strtod(buf, NULL);
            p = e;
        } else {
            p++;
        }
    }
}
