/* API keys; see auth.h. Written here: no Debian library does "a list of
 * bearer keys compared in constant time", and it is a few lines. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/file_read.h"

static bool visible(char c)
{
    return c > ' ' && c < 127;
}

/* One entry "KEY [admin]" (already cut at its end). */
static int add_entry(auth_keys *a, const char *s, size_t n, int where, char *err, size_t errlen)
{
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    if (n == 0 || *s == '#')
        return 0;
    size_t k = 0;
    while (k < n && visible(s[k]))
        k++;
    const char *rest = s + k;
    size_t rn = n - k;
    while (rn && (*rest == ' ' || *rest == '\t')) {
        rest++;
        rn--;
    }
    bool admin = rn == 5 && memcmp(rest, "admin", 5) == 0;
    if (k < 16 || k >= AUTH_MAX_KEY_LEN || (rn && !admin)) {
        snprintf(err, errlen,
                 "API key entry %d: a key is 16 to %d visible characters, optionally followed "
                 "by \"admin\"",
                 where, AUTH_MAX_KEY_LEN - 1);
        return -1;
    }
    if (a->n == AUTH_MAX_KEYS) {
        snprintf(err, errlen, "more than %d API keys", AUTH_MAX_KEYS);
        return -1;
    }
    api_key *key = &a->keys[a->n++];
    memcpy(key->key, s, k);
    key->len = k;
    key->admin = admin;
    a->n_admin += admin;
    return 0;
}

int auth_load(const char *spec, auth_keys *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    bool from_env = strncmp(spec, "env:", 4) == 0;
    if (from_env) {
        const char *v = getenv(spec + 4);
        if (!v || !*v) {
            snprintf(err, errlen, "api_keys: the environment variable %s is not set", spec + 4);
            return -1;
        }
        len = strlen(v);
        if (len > (1u << 20) || !(text = strdup(v))) {
            snprintf(err, errlen, "api_keys: %s is too large", spec + 4);
            return -1;
        }
    } else {
        engine_error fe;
        if (file_read_regular(spec, 1u << 20, &text, &len, NULL, &fe)) {
            snprintf(err, errlen, "api_keys: %s", fe.message);
            return -1;
        }
    }
    out->keys = calloc(AUTH_MAX_KEYS, sizeof *out->keys);
    int rc = out->keys ? 0 : -1;
    if (rc)
        snprintf(err, errlen, "out of memory");
    int entry = 0;
    for (size_t i = 0; !rc && i < len;) {
        size_t j = i;
        while (j < len && text[j] != '\n' && !(from_env && text[j] == ','))
            j++;
        rc = add_entry(out, text + i, j - i, ++entry, err, errlen);
        i = j + 1;
    }
    if (!rc && out->n == 0) {
        snprintf(err, errlen, "api_keys: %s holds no key", from_env ? spec + 4 : spec);
        rc = -1;
    }
    memset(text, 0, len); /* no copy of a key left behind in freed memory */
    free(text);
    if (rc)
        auth_free(out);
    return rc;
}

auth_role auth_check(const auth_keys *a, const char *presented)
{
    if (!presented)
        return AUTH_NONE;
    size_t plen = strnlen(presented, AUTH_MAX_KEY_LEN);
    int role = AUTH_NONE;
    for (int k = 0; k < a->n; k++) {
        const api_key *key = &a->keys[k];
        unsigned diff = plen != key->len;
        for (size_t i = 0; i < AUTH_MAX_KEY_LEN; i++) /* every byte, whatever matched */
            diff |= (unsigned)(unsigned char)(i < plen ? presented[i] : 0) ^
                    (unsigned)(unsigned char)key->key[i];
        int r = (key->admin ? AUTH_ADMIN : AUTH_USER) * (diff == 0); /* no branch on a key */
        role = role > r ? role : r;
    }
    return (auth_role)role;
}

void auth_free(auth_keys *a)
{
    if (a->keys)
        memset(a->keys, 0, AUTH_MAX_KEYS * sizeof *a->keys);
    free(a->keys);
    memset(a, 0, sizeof *a);
}
