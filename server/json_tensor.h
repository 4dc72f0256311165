/* KServe v2 JSON requests without a JSON value per number.
 *
 * jansson builds a node of 40-odd bytes for every number it parses, so a
 * 16 MiB request of tensor data cost 330 MB of memory (4 at once: 805 MB).
 * jansson has no streaming interface, so the request is split here: a
 * small scanner finds the "data" array of each element of "inputs", checks
 * it is (nested) arrays of JSON numbers and counts them, and the rest of
 * the request (names, shapes, parameters: a few hundred bytes) goes to
 * jansson with each data array replaced by 0. The numbers are then parsed
 * straight into the job's float buffers. Memory: the body, the skeleton,
 * the floats.
 */
#ifndef VISIOND_JSON_TENSOR_H
#define VISIOND_JSON_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define JSON_TENSOR_MAX_INPUTS 8
#define JSON_MAX_DEPTH 64

typedef struct {
    size_t start, end; /* the data array's text, brackets included */
    int64_t count;     /* numbers in it */
} json_tensor_span;

typedef struct {
    char *skeleton;    /* the request with every data array replaced by 0 (malloc'ed) */
    size_t skeleton_len;
    int n_inputs;      /* elements of "inputs" seen (their data, when present, below) */
    json_tensor_span data[JSON_TENSOR_MAX_INPUTS];
    int has_data[JSON_TENSOR_MAX_INPUTS];
} json_tensor_split;

/* Splits `text`. max_count bounds the numbers of any one data array (the
 * largest input the model can queue); 0 on success, -1 with a message for
 * malformed JSON, an array over the bound, or nesting past JSON_MAX_DEPTH. */
int json_tensor_split_request(const char *text, size_t len, int64_t max_count,
                              json_tensor_split *out, char *err, size_t errlen);
void json_tensor_split_free(json_tensor_split *s);

/* Parses a span's numbers into dst (span->count of them), as float32. */
void json_tensor_parse(const char *text, const json_tensor_span *span, float *dst);

#endif
