/*
 * http_tls.h - the server side of TLS for the HTTP server (internal), on OpenSSL 3.
 *
 * Non-blocking: every call returns at once and says which readiness it waits for. The
 * handshake runs inside the first reads (SSL_set_accept_state), so the server's loop
 * treats a TLS connection like a plain one with a different read and write.
 */
#ifndef PG_HTTP_TLS_H
#define PG_HTTP_TLS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct pg_http_tls_ctx pg_http_tls_ctx; /* certificate, key and settings */
typedef struct pg_http_tls pg_http_tls;         /* one connection's session */

#define PG_HTTP_TLS_AGAIN (-1) /* would block; *want_write says for which readiness */
#define PG_HTTP_TLS_ERROR (-2) /* the session failed: close the connection */

/* Loads a PEM chain and key (TLS 1.2 minimum, no renegotiation). NULL on failure with a
 * one-line reason in errmsg. */
pg_http_tls_ctx *pg_http_tls_ctx_new(const char *cert_file, const char *key_file, char *errmsg,
                                     size_t errlen);
void pg_http_tls_ctx_free(pg_http_tls_ctx *ctx);

/* A server session on the connected socket fd (not owned). NULL when out of memory. */
pg_http_tls *pg_http_tls_new(pg_http_tls_ctx *ctx, int fd);

/* Octets read (> 0), 0 when the peer closed, or PG_HTTP_TLS_AGAIN / PG_HTTP_TLS_ERROR. */
ssize_t pg_http_tls_read(pg_http_tls *t, void *buf, size_t cap, int *want_write);

/* Octets written (> 0), or PG_HTTP_TLS_AGAIN / PG_HTTP_TLS_ERROR. */
ssize_t pg_http_tls_write(pg_http_tls *t, const void *buf, size_t len, int *want_write);

/* Nonzero once the handshake is done. */
int pg_http_tls_ready(const pg_http_tls *t);

/* Decrypted octets buffered in the session, not yet read. */
size_t pg_http_tls_pending(const pg_http_tls *t);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384": the protocol and cipher once the handshake is done
 * (for a Received field), NUL-terminated in out. */
void pg_http_tls_describe(const pg_http_tls *t, char *out, size_t size);

/* Frees the session (without waiting for close_notify). NULL does nothing. */
void pg_http_tls_free(pg_http_tls *t);

#endif
