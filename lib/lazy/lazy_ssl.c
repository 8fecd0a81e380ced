/*
 * lazy_ssl.c - libssl (OpenSSL), for TLS: STARTTLS and implicit TLS of the SMTP, IMAP and
 * POP3 clients (lib/net/tls_openssl.c) and the HTTPS servers (lib/http/http_tls.c),
 * loaded by the first handshake or server context, after libcrypto (pg_lazy_ssl).
 */
#include "lazy/lazy.h"

/* Not with PIGEON_STATIC_DEPS (the build gives no SONAME): the archives are linked. */
#if defined(PIGEON_LAZY_LIBS) && defined(PIGEON_SONAME_SSL)
#include <openssl/ssl.h>

#include "lazy/lazy_stub.h"

/* What the code calls (SSL_CTX_set_min_proto_version and the other macros are calls of
 * SSL_CTX_ctrl or SSL_ctrl), then calls a change is likely to add. */
#define SSL_FUNCTIONS(F, V)                                                                        \
    F(const char *, SSL_CIPHER_get_name, (const SSL_CIPHER *c), (c))                               \
    F(int, SSL_CTX_check_private_key, (const SSL_CTX *ctx), (ctx))                                 \
    F(long, SSL_CTX_ctrl, (SSL_CTX * ctx, int cmd, long larg, void *parg), (ctx, cmd, larg, parg)) \
    V(SSL_CTX_free, (SSL_CTX * a0), (a0))                                                          \
    F(int, SSL_CTX_load_verify_dir, (SSL_CTX * ctx, const char *CApath), (ctx, CApath))            \
    F(int, SSL_CTX_load_verify_locations, (SSL_CTX * ctx, const char *CAfile, const char *CApath), \
      (ctx, CAfile, CApath))                                                                       \
    F(SSL_CTX *, SSL_CTX_new, (const SSL_METHOD *meth), (meth))                                    \
    F(int, SSL_CTX_set_cipher_list, (SSL_CTX * a0, const char *str), (a0, str))                    \
    F(int, SSL_CTX_set_default_verify_paths, (SSL_CTX * ctx), (ctx))                               \
    F(uint64_t, SSL_CTX_set_options, (SSL_CTX * ctx, uint64_t op), (ctx, op))                      \
    V(SSL_CTX_set_security_level, (SSL_CTX * ctx, int level), (ctx, level))                        \
    V(SSL_CTX_set_verify, (SSL_CTX * ctx, int mode, SSL_verify_cb callback),                       \
      (ctx, mode, callback))                                                                       \
    F(int, SSL_CTX_use_PrivateKey_file, (SSL_CTX * ctx, const char *file, int type),               \
      (ctx, file, type))                                                                           \
    F(int, SSL_CTX_use_certificate_chain_file, (SSL_CTX * ctx, const char *file), (ctx, file))     \
    F(const char *, SSL_alert_desc_string_long, (int value), (value))                              \
    F(int, SSL_connect, (SSL * ssl), (ssl))                                                        \
    F(long, SSL_ctrl, (SSL * ssl, int cmd, long larg, void *parg), (ssl, cmd, larg, parg))         \
    V(SSL_free, (SSL * ssl), (ssl))                                                                \
    F(X509_VERIFY_PARAM *, SSL_get0_param, (SSL * ssl), (ssl))                                     \
    F(X509 *, SSL_get0_peer_certificate, (const SSL *s), (s))                                      \
    F(const SSL_CIPHER *, SSL_get_current_cipher, (const SSL *s), (s))                             \
    F(int, SSL_get_error, (const SSL *s, int ret_code), (s, ret_code))                             \
    F(struct stack_st_X509 *, SSL_get_peer_cert_chain, (const SSL *s), (s))                        \
    F(long, SSL_get_verify_result, (const SSL *ssl), (ssl))                                        \
    F(const char *, SSL_get_version, (const SSL *s), (s))                                          \
    F(int, SSL_is_init_finished, (const SSL *s), (s))                                              \
    F(SSL *, SSL_new, (SSL_CTX * ctx), (ctx))                                                      \
    F(int, SSL_pending, (const SSL *s), (s))                                                       \
    F(int, SSL_read_ex, (SSL * ssl, void *buf, size_t num, size_t *readbytes),                     \
      (ssl, buf, num, readbytes))                                                                  \
    F(int, SSL_set1_host, (SSL * s, const char *hostname), (s, hostname))                          \
    V(SSL_set_accept_state, (SSL * s), (s))                                                        \
    V(SSL_set_bio, (SSL * s, BIO * rbio, BIO * wbio), (s, rbio, wbio))                             \
    F(int, SSL_set_fd, (SSL * s, int fd), (s, fd))                                                 \
    V(SSL_set_hostflags, (SSL * s, unsigned int flags), (s, flags))                                \
    V(SSL_set_msg_callback,                                                                        \
      (SSL * ssl, void (*cb)(int, int, int, const void *, size_t, SSL *, void *)), (ssl, cb))      \
    F(int, SSL_shutdown, (SSL * s), (s))                                                           \
    F(int, SSL_version, (const SSL *ssl), (ssl))                                                   \
    F(int, SSL_write_ex, (SSL * s, const void *buf, size_t num, size_t *written),                  \
      (s, buf, num, written))                                                                      \
    F(const SSL_METHOD *, TLS_client_method, (void), ())                                           \
    F(const SSL_METHOD *, TLS_server_method, (void), ())                                           \
    F(int, SSL_read, (SSL * ssl, void *buf, int num), (ssl, buf, num))                             \
    F(int, SSL_write, (SSL * ssl, const void *buf, int num), (ssl, buf, num))                      \
    F(int, SSL_get_shutdown, (const SSL *ssl), (ssl))                                              \
    F(int, SSL_CTX_use_certificate_file, (SSL_CTX * ctx, const char *file, int type),              \
      (ctx, file, type))                                                                           \
    F(const char *, SSL_get_servername, (const SSL *s, const int type), (s, type))                 \
    F(int, SSL_CTX_set_alpn_protos,                                                                \
      (SSL_CTX * ctx, const unsigned char *protos, unsigned int protos_len),                       \
      (ctx, protos, protos_len))                                                                   \
    V(SSL_get0_alpn_selected, (const SSL *ssl, const unsigned char **data, unsigned int *len),     \
      (ssl, data, len))                                                                            \
    V(SSL_set_connect_state, (SSL * s), (s))                                                       \
    F(int, SSL_accept, (SSL * ssl), (ssl))                                                         \
    F(int, SSL_do_handshake, (SSL * s), (s))                                                       \
    F(SSL_CTX *, SSL_get_SSL_CTX, (const SSL *ssl), (ssl))                                         \
    F(int, SSL_CTX_set_ciphersuites, (SSL_CTX * ctx, const char *str), (ctx, str))                 \
    F(X509 *, SSL_get1_peer_certificate, (const SSL *s), (s))                                      \
    F(int, SSL_session_reused, (const SSL *s), (s))

PG_LAZY_DEFINE(SSL_FUNCTIONS, PIGEON_SONAME_SSL, PIGEON_PACKAGE_SSL, "TLS (OpenSSL)")

pigeon_err pg_lazy_ssl(char *err, size_t errlen)
{
    pigeon_err e = pg_lazy_crypto(err, errlen);
    return e == PIGEON_OK ? pg_lazy_open(&lib, err, errlen) : e;
}
#else
pigeon_err pg_lazy_ssl(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return PIGEON_OK;
}
#endif
