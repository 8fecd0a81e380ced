/*
 * lazy_crypto.c - libcrypto (OpenSSL), for digests, MACs, DKIM keys and signatures,
 * SASL, VERP and the spool's SHA-256, loaded by the first of them (pg_lazy_crypto, or
 * pg_lazy_ssl for TLS). A `sendmail` over plaintext SMTP never maps it: at 4.7 MB, its
 * relocations and RELRO were half of every exec's time in the dynamic loader.
 */
#include "lazy/lazy.h"

/* Not with PIGEON_STATIC_DEPS (the build gives no SONAME): the archives are linked. */
#if defined(PIGEON_LAZY_LIBS) && defined(PIGEON_SONAME_CRYPTO)
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <string.h>

#include "lazy/lazy_stub.h"

/* What the code calls (the names `nm -u` lists for the command), then calls a change is
 * likely to add: a stub resolved but never called costs one dlsym(). OPENSSL_cleanse is
 * below (it needs no library) and EVP_PKEY_Q_keygen, variadic, is forwarded by hand. */
#define CRYPTO_FUNCTIONS(F, V)                                                                     \
    F(const unsigned char *, ASN1_STRING_get0_data, (const ASN1_STRING *x), (x))                   \
    F(int, ASN1_STRING_length, (const ASN1_STRING *x), (x))                                        \
    F(int, ASN1_TIME_to_tm, (const ASN1_TIME *s, struct tm *tm), (s, tm))                          \
    V(BIO_clear_flags, (BIO * b, int flags), (b, flags))                                           \
    F(long, BIO_ctrl, (BIO * bp, int cmd, long larg, void *parg), (bp, cmd, larg, parg))           \
    F(int, BIO_free, (BIO * a), (a))                                                               \
    F(void *, BIO_get_data, (BIO * a), (a))                                                        \
    F(int, BIO_get_new_index, (void), ())                                                          \
    V(BIO_meth_free, (BIO_METHOD * biom), (biom))                                                  \
    F(BIO_METHOD *, BIO_meth_new, (int type, const char *name), (type, name))                      \
    F(int, BIO_meth_set_create, (BIO_METHOD * biom, int (*create)(BIO *)), (biom, create))         \
    F(int, BIO_meth_set_ctrl, (BIO_METHOD * biom, long (*ctrl)(BIO *, int, long, void *)),         \
      (biom, ctrl))                                                                                \
    F(int, BIO_meth_set_read, (BIO_METHOD * biom, int (*read)(BIO *, char *, int)), (biom, read))  \
    F(int, BIO_meth_set_write, (BIO_METHOD * biom, int (*write)(BIO *, const char *, int)),        \
      (biom, write))                                                                               \
    F(BIO *, BIO_new, (const BIO_METHOD *type), (type))                                            \
    F(BIO *, BIO_new_mem_buf, (const void *buf, int len), (buf, len))                              \
    F(int, BIO_read, (BIO * b, void *data, int dlen), (b, data, dlen))                             \
    F(const BIO_METHOD *, BIO_s_mem, (void), ())                                                   \
    F(const BIO_METHOD *, BIO_s_secmem, (void), ())                                                \
    V(BIO_set_data, (BIO * a, void *ptr), (a, ptr))                                                \
    V(BIO_set_flags, (BIO * b, int flags), (b, flags))                                             \
    V(BIO_set_init, (BIO * a, int init), (a, init))                                                \
    V(CRYPTO_clear_free, (void *ptr, size_t num, const char *file, int line),                      \
      (ptr, num, file, line))                                                                      \
    V(CRYPTO_free, (void *ptr, const char *file, int line), (ptr, file, line))                     \
    F(int, CRYPTO_memcmp, (const void *in_a, const void *in_b, size_t len), (in_a, in_b, len))     \
    F(void *, CRYPTO_zalloc, (size_t num, const char *file, int line), (num, file, line))          \
    V(ERR_clear_error, (void), ())                                                                 \
    V(ERR_error_string_n, (unsigned long e, char *buf, size_t len), (e, buf, len))                 \
    F(unsigned long, ERR_get_error, (void), ())                                                    \
    F(unsigned long, ERR_peek_last_error, (void), ())                                              \
    F(const char *, ERR_reason_error_string, (unsigned long e), (e))                               \
    F(int, EVP_DecodeBlock, (unsigned char *t, const unsigned char *f, int n), (t, f, n))          \
    F(int, EVP_Digest,                                                                             \
      (const void *data, size_t count, unsigned char *md, unsigned int *size, const EVP_MD *type,  \
       ENGINE *impl),                                                                              \
      (data, count, md, size, type, impl))                                                         \
    F(int, EVP_DigestFinal_ex, (EVP_MD_CTX * ctx, unsigned char *md, unsigned int *s),             \
      (ctx, md, s))                                                                                \
    F(int, EVP_DigestInit_ex, (EVP_MD_CTX * ctx, const EVP_MD *type, ENGINE *impl),                \
      (ctx, type, impl))                                                                           \
    F(int, EVP_DigestSign,                                                                         \
      (EVP_MD_CTX * ctx, unsigned char *sigret, size_t *siglen, const unsigned char *tbs,          \
       size_t tbslen),                                                                             \
      (ctx, sigret, siglen, tbs, tbslen))                                                          \
    F(int, EVP_DigestSignInit_ex,                                                                  \
      (EVP_MD_CTX * ctx, EVP_PKEY_CTX * *pctx, const char *mdname, OSSL_LIB_CTX *libctx,           \
       const char *props, EVP_PKEY *pkey, const OSSL_PARAM *params),                               \
      (ctx, pctx, mdname, libctx, props, pkey, params))                                            \
    F(int, EVP_DigestUpdate, (EVP_MD_CTX * ctx, const void *d, size_t cnt), (ctx, d, cnt))         \
    V(EVP_MAC_CTX_free, (EVP_MAC_CTX * ctx), (ctx))                                                \
    F(EVP_MAC_CTX *, EVP_MAC_CTX_new, (EVP_MAC * mac), (mac))                                      \
    F(EVP_MAC *, EVP_MAC_fetch,                                                                    \
      (OSSL_LIB_CTX * libctx, const char *algorithm, const char *properties),                      \
      (libctx, algorithm, properties))                                                             \
    F(int, EVP_MAC_final, (EVP_MAC_CTX * ctx, unsigned char *out, size_t *outl, size_t outsize),   \
      (ctx, out, outl, outsize))                                                                   \
    V(EVP_MAC_free, (EVP_MAC * mac), (mac))                                                        \
    F(int, EVP_MAC_init,                                                                           \
      (EVP_MAC_CTX * ctx, const unsigned char *key, size_t keylen, const OSSL_PARAM *params),      \
      (ctx, key, keylen, params))                                                                  \
    F(int, EVP_MAC_update, (EVP_MAC_CTX * ctx, const unsigned char *data, size_t datalen),         \
      (ctx, data, datalen))                                                                        \
    V(EVP_MD_CTX_free, (EVP_MD_CTX * ctx), (ctx))                                                  \
    F(EVP_MD_CTX *, EVP_MD_CTX_new, (void), ())                                                    \
    F(EVP_MD *, EVP_MD_fetch, (OSSL_LIB_CTX * ctx, const char *algorithm, const char *properties), \
      (ctx, algorithm, properties))                                                                \
    V(EVP_MD_free, (EVP_MD * md), (md))                                                            \
    V(EVP_PKEY_CTX_free, (EVP_PKEY_CTX * ctx), (ctx))                                              \
    F(EVP_PKEY_CTX *, EVP_PKEY_CTX_new_from_pkey,                                                  \
      (OSSL_LIB_CTX * libctx, EVP_PKEY * pkey, const char *propquery), (libctx, pkey, propquery))  \
    F(int, EVP_PKEY_CTX_set_signature_md, (EVP_PKEY_CTX * ctx, const EVP_MD *md), (ctx, md))       \
    F(int, EVP_PKEY_eq, (const EVP_PKEY *a, const EVP_PKEY *b), (a, b))                            \
    V(EVP_PKEY_free, (EVP_PKEY * pkey), (pkey))                                                    \
    F(int, EVP_PKEY_get_bits, (const EVP_PKEY *pkey), (pkey))                                      \
    F(int, EVP_PKEY_get_raw_private_key, (const EVP_PKEY *pkey, unsigned char *priv, size_t *len), \
      (pkey, priv, len))                                                                           \
    F(int, EVP_PKEY_get_raw_public_key, (const EVP_PKEY *pkey, unsigned char *pub, size_t *len),   \
      (pkey, pub, len))                                                                            \
    F(int, EVP_PKEY_is_a, (const EVP_PKEY *pkey, const char *name), (pkey, name))                  \
    F(EVP_PKEY *, EVP_PKEY_new_raw_private_key,                                                    \
      (int type, ENGINE *e, const unsigned char *priv, size_t len), (type, e, priv, len))          \
    F(EVP_PKEY *, EVP_PKEY_new_raw_public_key,                                                     \
      (int type, ENGINE *e, const unsigned char *pub, size_t len), (type, e, pub, len))            \
    F(int, EVP_PKEY_sign,                                                                          \
      (EVP_PKEY_CTX * ctx, unsigned char *sig, size_t *siglen, const unsigned char *tbs,           \
       size_t tbslen),                                                                             \
      (ctx, sig, siglen, tbs, tbslen))                                                             \
    F(int, EVP_PKEY_sign_init, (EVP_PKEY_CTX * ctx), (ctx))                                        \
    F(int, EVP_PKEY_up_ref, (EVP_PKEY * pkey), (pkey))                                             \
    F(unsigned char *, EVP_Q_mac,                                                                  \
      (OSSL_LIB_CTX * libctx, const char *name, const char *propq, const char *subalg,             \
       const OSSL_PARAM *params, const void *key, size_t keylen, const unsigned char *data,        \
       size_t datalen, unsigned char *out, size_t outsize, size_t *outlen),                        \
      (libctx, name, propq, subalg, params, key, keylen, data, datalen, out, outsize, outlen))     \
    F(const EVP_MD *, EVP_sha256, (void), ())                                                      \
    V(GENERAL_NAMES_free, (GENERAL_NAMES * a), (a))                                                \
    F(void *, GENERAL_NAME_get0_value, (const GENERAL_NAME *a, int *ptype), (a, ptype))            \
    F(int, OPENSSL_sk_num, (const OPENSSL_STACK *a0), (a0))                                        \
    F(void *, OPENSSL_sk_value, (const OPENSSL_STACK *a0, int a1), (a0, a1))                       \
    F(OSSL_PARAM, OSSL_PARAM_construct_end, (void), ())                                            \
    F(OSSL_PARAM, OSSL_PARAM_construct_utf8_string, (const char *key, char *buf, size_t bsize),    \
      (key, buf, bsize))                                                                           \
    F(EVP_PKEY *, PEM_read_PrivateKey, (FILE * out, EVP_PKEY * *x, pem_password_cb * cb, void *u), \
      (out, x, cb, u))                                                                             \
    F(EVP_PKEY *, PEM_read_bio_PrivateKey,                                                         \
      (BIO * out, EVP_PKEY * *x, pem_password_cb * cb, void *u), (out, x, cb, u))                  \
    F(int, PEM_write_bio_PrivateKey,                                                               \
      (BIO * out, const EVP_PKEY *x, const EVP_CIPHER *enc, const unsigned char *kstr, int klen,   \
       pem_password_cb *cb, void *u),                                                              \
      (out, x, enc, kstr, klen, cb, u))                                                            \
    F(int, RAND_bytes, (unsigned char *buf, int num), (buf, num))                                  \
    F(int, X509_NAME_print_ex, (BIO * out, const X509_NAME *nm, int indent, unsigned long flags),  \
      (out, nm, indent, flags))                                                                    \
    F(int, X509_VERIFY_PARAM_set1_ip_asc, (X509_VERIFY_PARAM * param, const char *ipasc),          \
      (param, ipasc))                                                                              \
    F(int, X509_digest,                                                                            \
      (const X509 *data, const EVP_MD *type, unsigned char *md, unsigned int *len),                \
      (data, type, md, len))                                                                       \
    F(const ASN1_TIME *, X509_get0_notAfter, (const X509 *x), (x))                                 \
    F(const char *, X509_get_default_cert_dir, (void), ())                                         \
    F(const char *, X509_get_default_cert_dir_env, (void), ())                                     \
    F(const char *, X509_get_default_cert_file_env, (void), ())                                    \
    F(void *, X509_get_ext_d2i, (const X509 *x, int nid, int *crit, int *idx),                     \
      (x, nid, crit, idx))                                                                         \
    F(X509_NAME *, X509_get_issuer_name, (const X509 *a), (a))                                     \
    F(X509_NAME *, X509_get_subject_name, (const X509 *a), (a))                                    \
    F(const char *, X509_verify_cert_error_string, (long n), (n))                                  \
    F(EVP_PKEY *, d2i_PUBKEY, (EVP_PKEY * *a, const unsigned char **in, long len), (a, in, len))   \
    F(int, i2d_PUBKEY, (const EVP_PKEY *a, unsigned char **out), (a, out))                         \
    F(int, EVP_MD_CTX_reset, (EVP_MD_CTX * ctx), (ctx))                                            \
    F(int, EVP_DigestVerifyInit,                                                                   \
      (EVP_MD_CTX * ctx, EVP_PKEY_CTX * *pctx, const EVP_MD *type, ENGINE *e, EVP_PKEY *pkey),     \
      (ctx, pctx, type, e, pkey))                                                                  \
    F(int, EVP_DigestVerify,                                                                       \
      (EVP_MD_CTX * ctx, const unsigned char *sigret, size_t siglen, const unsigned char *tbs,     \
       size_t tbslen),                                                                             \
      (ctx, sigret, siglen, tbs, tbslen))                                                          \
    F(int, EVP_DigestSignUpdate, (EVP_MD_CTX * ctx, const void *data, size_t dsize),               \
      (ctx, data, dsize))                                                                          \
    F(int, EVP_DigestSignFinal, (EVP_MD_CTX * ctx, unsigned char *sigret, size_t *siglen),         \
      (ctx, sigret, siglen))                                                                       \
    F(int, EVP_DigestSignInit,                                                                     \
      (EVP_MD_CTX * ctx, EVP_PKEY_CTX * *pctx, const EVP_MD *type, ENGINE *e, EVP_PKEY *pkey),     \
      (ctx, pctx, type, e, pkey))                                                                  \
    F(int, EVP_PKEY_get_base_id, (const EVP_PKEY *pkey), (pkey))                                   \
    F(int, EVP_PKEY_get_id, (const EVP_PKEY *pkey), (pkey))                                        \
    F(int, EVP_EncodeBlock, (unsigned char *t, const unsigned char *f, int n), (t, f, n))          \
    V(ERR_print_errors_fp, (FILE * fp), (fp))                                                      \
    F(char *, ERR_error_string, (unsigned long e, char *buf), (e, buf))                            \
    V(X509_free, (X509 * a), (a))                                                                  \
    F(EVP_PKEY *, X509_get_pubkey, (X509 * x), (x))                                                \
    F(EVP_PKEY *, PEM_read_bio_PUBKEY, (BIO * out, EVP_PKEY * *x, pem_password_cb * cb, void *u),  \
      (out, x, cb, u))                                                                             \
    F(X509 *, PEM_read_bio_X509, (BIO * out, X509 * *x, pem_password_cb * cb, void *u),            \
      (out, x, cb, u))                                                                             \
    F(void *, CRYPTO_malloc, (size_t num, const char *file, int line), (num, file, line))          \
    F(char *, CRYPTO_strdup, (const char *str, const char *file, int line), (str, file, line))     \
    F(int, RAND_priv_bytes, (unsigned char *buf, int num), (buf, num))                             \
    F(int, EVP_MD_get_size, (const EVP_MD *md), (md))                                              \
    F(size_t, EVP_MAC_CTX_get_mac_size, (EVP_MAC_CTX * ctx), (ctx))

PG_LAZY_DEFINE(CRYPTO_FUNCTIONS, PIGEON_SONAME_CRYPTO, PIGEON_PACKAGE_CRYPTO,
               "cryptography (OpenSSL)")

/* Variadic functions, which a stub cannot forward as such: each is resolved from the same
 * library (dlopen of a loaded SONAME returns its handle) into a table of its own, and
 * called with the arguments its documented forms take. */
static const char *const variadic_names[] = {"EVP_PKEY_Q_keygen"};
static void *variadic_syms[1];
static pg_lazy_lib variadic = {PIGEON_SONAME_CRYPTO,
                               PIGEON_PACKAGE_CRYPTO,
                               "cryptography (OpenSSL)",
                               variadic_names,
                               variadic_syms,
                               1,
                               0,
                               ""};

#ifdef PIGEON_LAZY_PROBE
__attribute__((used)) static void (*const probe_variadic[])(void) = {
    (void (*)(void))EVP_PKEY_Q_keygen};
#else
/* OpenSSL's OPENSSL_cleanse is a memset the compiler may not remove: explicit_bzero is
 * that, without loading 4.7 MB to wipe a password buffer (the SMTP client and the
 * configuration reader wipe theirs in every run). */
PG_LAZY_HIDDEN void OPENSSL_cleanse(void *ptr, size_t len)
{
    explicit_bzero(ptr, len);
}

/* EVP_PKEY_Q_keygen(3): "RSA" takes a size_t (the bits), "EC" a const char * (the curve),
 * the others (ED25519, X25519, ...) nothing more. */
PG_LAZY_HIDDEN EVP_PKEY *EVP_PKEY_Q_keygen(OSSL_LIB_CTX *libctx, const char *propq,
                                           const char *type, ...)
{
    EVP_PKEY *(*real)(OSSL_LIB_CTX *, const char *, const char *, ...) =
        (EVP_PKEY * (*)(OSSL_LIB_CTX *, const char *, const char *, ...)) pg_lazy_sym(&variadic, 0);
    va_list ap;
    va_start(ap, type);
    EVP_PKEY *key;
    if (strcmp(type, "RSA") == 0)
        key = real(libctx, propq, type, va_arg(ap, size_t));
    else if (strcmp(type, "EC") == 0)
        key = real(libctx, propq, type, va_arg(ap, const char *));
    else
        key = real(libctx, propq, type);
    va_end(ap);
    return key;
}
#endif

pigeon_err pg_lazy_crypto(char *err, size_t errlen)
{
    pigeon_err e = pg_lazy_open(&lib, err, errlen);
    return e == PIGEON_OK ? pg_lazy_open(&variadic, err, errlen) : e;
}
#else
pigeon_err pg_lazy_crypto(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return PIGEON_OK;
}
#endif
