/* The HTTPS certificate, swapped on SIGHUP; see tls_certs.h.
 *
 * libmicrohttpd fixes a certificate given as memory for the daemon's life;
 * to replace it without a restart, the daemon asks for the certificate at
 * each handshake through GnuTLS's retrieve callback. That callback carries
 * no user pointer, so the pair in use is the one piece of global state
 * here (beside the metrics registry and the signal flag that DESIGN.md
 * allows): an atomic pointer, swapped by the main thread, read by the
 * handshakes. A pair replaced is kept, not freed, until tls_certs_free: a
 * handshake may still be using it, and a few kilobytes per reload is the
 * price of never freeing under one.
 */
#include "tls_certs.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/file_read.h"

#define MAX_CHAIN 16

typedef struct cert_pair {
    gnutls_pcert_st chain[MAX_CHAIN];
    unsigned n;
    gnutls_privkey_t key;
    struct cert_pair *replaced; /* the pair before this one */
} cert_pair;

static _Atomic(cert_pair *) in_use; /* see the top of the file */

static int retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                    gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)session, (void)req_ca_dn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    cert_pair *p = atomic_load(&in_use);
    if (!p)
        return -1;
    *pcert = p->chain;
    *pcert_length = p->n;
    *pkey = p->key;
    return 0;
}

void *tls_certs_callback(void)
{
    static gnutls_certificate_retrieve_function2 *const fn = retrieve;
    return (void *)fn;
}

static void pair_free(cert_pair *p)
{
    for (unsigned i = 0; i < p->n; i++)
        gnutls_pcert_deinit(&p->chain[i]);
    if (p->key)
        gnutls_privkey_deinit(p->key);
    free(p);
}

int tls_certs_load(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    char *pem[2] = {NULL, NULL};
    size_t len[2];
    const char *paths[2] = {cert_path, key_path};
    cert_pair *p = calloc(1, sizeof *p);
    int rc = p ? 0 : -1;
    if (!p)
        snprintf(err, errlen, "out of memory");
    for (int i = 0; !rc && i < 2; i++) {
        engine_error fe;
        if (file_read_regular(paths[i], 1u << 20, &pem[i], &len[i], NULL, &fe)) {
            snprintf(err, errlen, "%s: %s", i ? "tls_key" : "tls_cert", fe.message);
            rc = -1;
        }
    }
    if (!rc) {
        gnutls_datum_t cert = {(unsigned char *)pem[0], (unsigned)len[0]};
        p->n = MAX_CHAIN;
        int g = gnutls_pcert_list_import_x509_raw(p->chain, &p->n, &cert, GNUTLS_X509_FMT_PEM,
                                                  0);
        if (g < 0 || p->n == 0) {
            p->n = 0;
            snprintf(err, errlen, "tls_cert %s: %s", cert_path,
                     g < 0 ? gnutls_strerror(g) : "no certificate");
            rc = -1;
        }
    }
    if (!rc) {
        gnutls_datum_t key = {(unsigned char *)pem[1], (unsigned)len[1]};
        int g = gnutls_privkey_init(&p->key);
        if (g >= 0)
            g = gnutls_privkey_import_x509_raw(p->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
        if (g < 0) {
            snprintf(err, errlen, "tls_key %s: %s", key_path, gnutls_strerror(g));
            rc = -1;
        }
    }
    if (!rc) { /* the key must be the certificate's: sign, and verify with its public key */
        unsigned char text[] = "visiond";
        gnutls_datum_t data = {text, sizeof text}, sig = {NULL, 0};
        int algo = gnutls_privkey_get_pk_algorithm(p->key, NULL);
        int g = gnutls_privkey_sign_data(p->key, GNUTLS_DIG_SHA256, 0, &data, &sig);
        if (g >= 0)
            g = gnutls_pubkey_verify_data2(p->chain[0].pubkey,
                                           gnutls_pk_to_sign((gnutls_pk_algorithm_t)algo,
                                                             GNUTLS_DIG_SHA256),
                                           0, &data, &sig);
        gnutls_free(sig.data);
        if (g < 0) {
            snprintf(err, errlen, "tls_key %s is not the key of tls_cert %s", key_path,
                     cert_path);
            rc = -1;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (pem[i]) /* the private key does not linger in freed memory */
            memset(pem[i], 0, len[i]);
        free(pem[i]);
    }
    if (rc) {
        if (p)
            pair_free(p);
        return -1;
    }
    p->replaced = atomic_load(&in_use);
    atomic_store(&in_use, p);
    return 0;
}

void tls_certs_free(void)
{
    cert_pair *p = atomic_exchange(&in_use, NULL);
    while (p) {
        cert_pair *older = p->replaced;
        pair_free(p);
        p = older;
    }
}
