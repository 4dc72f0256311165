/* Unit test of the v2 request splitter: the data arrays found where the
 * protocol puts them and nowhere else, their numbers parsed as jansson
 * would, and malformed or oversized requests refused. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_tensor.h"

#include "check.h"

static int split(const char *text, int64_t max, json_tensor_split *s, char *err)
{
    return json_tensor_split_request(text, strlen(text), max, s, err, 256);
}

int main(void)
{
    char err[256];
    json_tensor_split s;

    /* flat and nested data, keys in any order, "data" elsewhere left alone */
    const char *req =
        "{\"id\": \"x[1]\\\"data\\\"\", \"parameters\": {\"data\": [1, 2]},\n"
        " \"inputs\": [{\"data\": [[1.5, -2e-3], [3, 4E2]], \"name\": \"a\", \"shape\": [2, 2]},\n"
        "            {\"name\": \"b\", \"\\u0064ata\": [7, 8, 9], \"shape\": [3]}],\n"
        " \"outputs\": [{\"name\": \"y\", \"data\": [5]}]}";
    CHECK(split(req, 100, &s, err) == 0);
    CHECK(s.n_inputs == 2 && s.has_data[0] && s.has_data[1]);
    CHECK(s.data[0].count == 4 && s.data[1].count == 3);
    float a[4], b[3];
    json_tensor_parse(req, &s.data[0], a);
    json_tensor_parse(req, &s.data[1], b);
    CHECK(a[0] == 1.5f && a[1] == (float)-2e-3 && a[2] == 3.0f && a[3] == 400.0f);
    CHECK(b[0] == 7.0f && b[2] == 9.0f);
    /* the skeleton is valid JSON with 0 in place of each data array */
    json_error_t jerr;
    json_t *root = json_loadb(s.skeleton, s.skeleton_len, JSON_REJECT_DUPLICATES, &jerr);
    CHECK(root != NULL);
    json_t *in0 = json_array_get(json_object_get(root, "inputs"), 0);
    CHECK(json_integer_value(json_object_get(in0, "data")) == 0 && json_is_integer(
        json_object_get(in0, "data")));
    CHECK(json_array_size(json_object_get(json_object_get(root, "parameters"), "data")) == 2);
    CHECK(strcmp(json_string_value(json_object_get(root, "id")), "x[1]\"data\"") == 0);
    json_decref(root);
    json_tensor_split_free(&s);

    /* numbers as jansson reads them */
    const char *nums = "{\"inputs\": [{\"data\": [0.1, 1e38, -0, 123456789, 3.4028235e38]}]}";
    CHECK(split(nums, 10, &s, err) == 0 && s.data[0].count == 5);
    float v[5];
    json_tensor_parse(nums, &s.data[0], v);
    CHECK(v[0] == (float)0.1 && v[1] == (float)1e38 && v[3] == (float)123456789.0);
    json_tensor_split_free(&s);

    /* refusals, each with its reason */
    struct {
        const char *text, *why;
    } bad[] = {
        {"{\"inputs\": [{\"data\": [1, 2, 3, 4, 5, 6]}]}", "more than 5 numbers"},
        {"{\"inputs\": [{\"data\": [1, \"two\"]}]}", "numbers only"},
        {"{\"inputs\": [{\"data\": [1, 2,]}]}", "invalid JSON"},
        {"{\"inputs\": [{\"data\": [1 2]}]}", "invalid JSON"},
        {"{\"inputs\": [{\"data\": [0x10]}]}", "invalid JSON"},
        {"{\"inputs\": [{\"data\": [nan]}]}", "numbers only"},
        {"{\"inputs\": [{\"data\": [1]}]} trailing", "invalid JSON"},
        {"{\"inputs\": [{\"data\": [1]}]", "invalid JSON"},
        {"{\"inputs\": \"unterminated}", "invalid JSON"},
        {"", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = split(bad[i].text, 5, &s, err);
        json_tensor_split_free(&s);
        if (rc == 0 || !strstr(err, bad[i].why)) {
            fprintf(stderr, "case %zu: rc %d, '%s'\n", i, rc, err);
            CHECK(0);
        }
    }
    /* nesting is bounded before the stack is */
    char deep[4096];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof deep, "{\"inputs\": [{\"data\": ");
    for (int i = 0; i < 1000; i++)
        deep[n++] = '[';
    deep[n] = 0;
    CHECK(split(deep, 5, &s, err) != 0 && strstr(err, "deeper"));
    json_tensor_split_free(&s);
    printf("test_json_tensor: ok\n");
    return 0;
}
