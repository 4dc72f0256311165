/* API keys: who may use the daemon (auth.c).
 *
 * Keys come from a file ("api_keys": "/etc/visiond/keys") or an environment
 * variable ("api_keys": "env:VISIOND_API_KEYS"): one key per line (or per
 * comma in the variable), optionally followed by the word "admin"; '#'
 * starts a comment. A key is 16 to 256 visible ASCII characters. Requests
 * present one as `Authorization: Bearer KEY` or `X-API-Key: KEY`; it is
 * compared with every key in constant time (no early exit, no length
 * shortcut), and never logged. Admin keys may also use the model
 * repository endpoints.
 */
#ifndef VISIOND_AUTH_H
#define VISIOND_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_MAX_KEYS 1024
#define AUTH_MAX_KEY_LEN 256

typedef struct {
    char key[AUTH_MAX_KEY_LEN];
    size_t len;
    bool admin;
} api_key;

typedef struct {
    api_key *keys;
    int n;
    int n_admin;
} auth_keys;

typedef enum { AUTH_NONE = 0, AUTH_USER, AUTH_ADMIN } auth_role;

/* Loads the keys `spec` names (a path, or env:NAME); 0, or -1 with a message
 * that never contains a key. */
int auth_load(const char *spec, auth_keys *out, char *err, size_t errlen);
/* The role of the key presented (NULL: none presented). */
auth_role auth_check(const auth_keys *a, const char *presented);
void auth_free(auth_keys *a);

#endif
