/* The certificate the HTTPS listener presents, replaceable while it runs
 * (tls_certs.c): SIGHUP reads tls_cert and tls_key again, and the next
 * handshake uses the new pair; a pair that does not load leaves the old
 * one in place. */
#ifndef VISIOND_TLS_CERTS_H
#define VISIOND_TLS_CERTS_H

#include <stddef.h>

/* Reads the PEM certificate chain and key; installs them for the next
 * handshakes. 0, or -1 with a message (never key material). */
int tls_certs_load(const char *cert_path, const char *key_path, char *err, size_t errlen);
/* The function libmicrohttpd calls for each handshake
 * (MHD_OPTION_HTTPS_CERT_CALLBACK), as a pointer of GnuTLS's type. */
void *tls_certs_callback(void);
/* Frees every pair loaded (once libmicrohttpd has stopped). */
void tls_certs_free(void);

#endif
