/*
 * http_tls.c - server-side TLS sessions for the HTTP server, on OpenSSL 3 (see http_tls.h).
 *
 * TLS 1.2 is the floor (RFC 9325 3.1.1); renegotiation is off (a client-initiated
 * renegotiation is a cheap way to burn server CPU). Errors are read from OpenSSL's queue
 * and cleared, so that one failed session never leaks its error into the next.
 */
#include "http/http_tls.h"
#include "lazy/lazy.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pg_http_tls_ctx {
    SSL_CTX *ssl_ctx; /* the OpenSSL context with certificate and key */
};

struct pg_http_tls {
    SSL *ssl; /* the session, on a socket it does not own */
};

static void reason(char *errmsg, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char detail[256] = "";
    if (e != 0)
        ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    if (errmsg != NULL && errlen > 0)
        snprintf(errmsg, errlen, "%s %s%s%s", what, file, detail[0] ? ": " : "", detail);
}

pg_http_tls_ctx *pg_http_tls_ctx_new(const char *cert_file, const char *key_file, char *errmsg,
                                     size_t errlen)
{
    /* libssl is loaded now, by the first HTTPS server (lib/lazy/lazy.h). */
    if (pg_lazy_ssl(errmsg, errlen) != PIGEON_OK)
        return NULL;
    pg_http_tls_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return NULL;
    ctx->ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (ctx->ssl_ctx == NULL) {
        reason(errmsg, errlen, "cannot make a TLS context", "");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                       SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                       SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx->ssl_ctx, cert_file) != 1) {
        reason(errmsg, errlen, "cannot load the TLS certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx->ssl_ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        reason(errmsg, errlen, "cannot load the TLS key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx->ssl_ctx) != 1) {
        reason(errmsg, errlen, "the TLS key does not match the certificate", cert_file);
        goto fail;
    }
    return ctx;
fail:
    pg_http_tls_ctx_free(ctx);
    return NULL;
}

void pg_http_tls_ctx_free(pg_http_tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

pg_http_tls *pg_http_tls_new(pg_http_tls_ctx *ctx, int fd)
{
    pg_http_tls *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(ctx->ssl_ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, fd) != 1) {
        ERR_clear_error();
        pg_http_tls_free(t);
        return NULL;
    }
    SSL_set_accept_state(t->ssl);
    return t;
}

/* Maps an SSL_read/SSL_write result that is not positive. */
static ssize_t result(pg_http_tls *t, int r, int *want_write)
{
    int e = SSL_get_error(t->ssl, r);
    *want_write = 0;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return PG_HTTP_TLS_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want_write = 1;
        return PG_HTTP_TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        return PG_HTTP_TLS_ERROR;
    }
}

ssize_t pg_http_tls_read(pg_http_tls *t, void *buf, size_t cap, int *want_write)
{
    size_t got = 0;
    int r = SSL_read_ex(t->ssl, buf, cap, &got);
    if (r == 1)
        return (ssize_t)got;
    /* A peer that closes TCP without close_notify has closed too; the HTTP framing
     * (Content-Length, chunks) tells a complete request from a truncated one. */
    if (SSL_get_error(t->ssl, r) == SSL_ERROR_SYSCALL) {
        ERR_clear_error();
        return 0;
    }
    return result(t, r, want_write);
}

ssize_t pg_http_tls_write(pg_http_tls *t, const void *buf, size_t len, int *want_write)
{
    size_t put = 0;
    int r = SSL_write_ex(t->ssl, buf, len, &put);
    if (r == 1)
        return (ssize_t)put;
    ssize_t res = result(t, r, want_write);
    return res == 0 ? PG_HTTP_TLS_ERROR : res;
}

int pg_http_tls_ready(const pg_http_tls *t)
{
    return SSL_is_init_finished(t->ssl);
}

size_t pg_http_tls_pending(const pg_http_tls *t)
{
    return (size_t)SSL_pending(t->ssl);
}

void pg_http_tls_describe(const pg_http_tls *t, char *out, size_t size)
{
    snprintf(out, size, "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
}

void pg_http_tls_free(pg_http_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    free(t);
}
