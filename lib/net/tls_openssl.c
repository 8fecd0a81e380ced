/*
 * tls_openssl.c - the OpenSSL 3 TLS backend behind pg_conn (see tls.h).
 *
 * Client side only: TLS 1.2 or later (RFC 8996 deprecates 1.0 and 1.1), the chain verified
 * against the system store or a CA file, the server identity checked as RFC 6125 6 and
 * RFC 8314 3.1 require (DNS names through SSL_set1_host without partial wildcards; an IP
 * literal only against iPAddress subjectAltNames), SNI for DNS names only (RFC 6066 3),
 * optional SHA-256 pinning of the leaf certificate. Sockets are non-blocking and every wait
 * goes through pg_fd_wait() with the caller's deadline. I/O runs through our own BIO that
 * sends with MSG_NOSIGNAL, so a closed peer never raises SIGPIPE in the host program, and
 * that keeps the first bytes received so that a plaintext greeting can be recognised.
 * Every OpenSSL error queue entry is consumed before returning.
 */
#include "net/tls.h"
#include "lazy/lazy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* the socket has SO_NOSIGPIPE instead (conn.c) */
#endif

#define FIRST_BYTES 16 /* raw bytes kept from the start of the peer's stream */
#define SHA256_LEN  32 /* bytes in a SHA-256 digest */

/* State of our socket BIO (BIO_get_data). */
struct sock_state {
    int fd;                           /* the socket, owned by conn.c */
    unsigned char first[FIRST_BYTES]; /* the first raw bytes received */
    size_t first_len;                 /* how many of them */
    int saw_eof;                      /* the peer closed the TCP stream */
    int last_errno;                   /* errno of the last hard socket error, 0 for none */
};

struct pg_tls {
    SSL_CTX *ctx;                  /* per-connection context (CA store, versions) */
    SSL *ssl;                      /* the session */
    struct sock_state sock;        /* our BIO's state */
    int server_hello_version;      /* legacy_version of the ServerHello seen, 0 if none */
    int alert_received;            /* description of a fatal alert from the server, -1 if none */
    int min_version;               /* the lowest protocol version we accept */
    unsigned char pin[SHA256_LEN]; /* expected SHA-256 of the leaf DER */
    int has_pin;                   /* nonzero when pin is set */
    const char *ca_file;           /* the CA file trusted, NULL for the system store (borrowed,
                                      for messages only) */
};

static int bio_write(BIO *b, const char *data, int len);
static int bio_read(BIO *b, char *buf, int len);
static long bio_ctrl(BIO *b, int cmd, long num, void *ptr);
static int bio_create(BIO *b);
static void make_bio_method(void);
static BIO *new_sock_bio(struct sock_state *st);
static void append(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *version_name(int v);
static int parse_fingerprint(const char *text, unsigned char out[SHA256_LEN]);
static int normalize_name(const char *in, char *out, size_t len, int *is_ip);
static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg);
static int load_system_store(SSL_CTX *ctx);
static pigeon_err make_ctx(pg_tls *t, const pg_tls_opts *opts, pg_tls_result *res);
static pigeon_err make_ssl(pg_tls *t, const pg_tls_opts *opts, const char *name, int is_ip,
                           pg_tls_result *res);
static pigeon_err run_handshake(pg_tls *t, int64_t deadline);
static void name_line(const X509_NAME *name, char *out, size_t len);
static void san_list(X509 *cert, char *out, size_t len);
static void fingerprint_text(const unsigned char *md, char *out, size_t len);
static void fill_cert_info(X509 *cert, pg_tls_info *info);
static X509 *peer_leaf(SSL *ssl);
static void fill_info(pg_tls *t, pg_tls_result *res);
static void describe_plaintext_peer(pg_tls *t, pg_tls_result *res);
static void describe_version(pg_tls *t, pg_tls_result *res);
static void describe_verify(pg_tls *t, const char *name, long vr, pg_tls_result *res);
static void describe_failure(pg_tls *t, const char *name, pigeon_err err, pg_tls_result *res);
static pigeon_err check_pin(pg_tls *t, pg_tls_result *res);
static pigeon_err io_error(pg_tls *t, const char *what, char *errmsg, size_t errlen);

/* ---- a socket BIO that never raises SIGPIPE ---- */

static BIO_METHOD *sock_method;
static pthread_once_t sock_method_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, int len)
{
    struct sock_state *st = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = send(st->fd, data, (size_t)len, MSG_NOSIGNAL);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_write(b);
    else
        st->last_errno = errno;
    return -1;
}

static int bio_read(BIO *b, char *buf, int len)
{
    struct sock_state *st = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = recv(st->fd, buf, (size_t)len, 0);
    if (n > 0) {
        size_t keep = FIRST_BYTES - st->first_len;
        if (keep > (size_t)n)
            keep = (size_t)n;
        memcpy(st->first + st->first_len, buf, keep);
        st->first_len += keep;
        return (int)n;
    }
    if (n == 0) {
        st->saw_eof = 1;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_read(b);
    else
        st->last_errno = errno;
    return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct sock_state *st = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* send() does not buffer */
    case BIO_C_GET_FD:
        if (ptr != NULL)
            *(int *)ptr = st->fd;
        return st->fd;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "pigeon socket");
    if (m == NULL)
        return;
    if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
        BIO_meth_free(m);
        return;
    }
    sock_method = m; /* lives as long as the process */
}

static BIO *new_sock_bio(struct sock_state *st)
{
    if (pthread_once(&sock_method_once, make_bio_method) != 0 || sock_method == NULL)
        return NULL;
    BIO *b = BIO_new(sock_method);
    if (b != NULL)
        BIO_set_data(b, st);
    return b;
}

/* ---- small helpers ---- */

/* Appends formatted text to the NUL-terminated dst, truncating with "..." when full. */
static void append(char *dst, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(dst);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst + used, cap - used, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= cap - used && cap >= 4)
        memcpy(dst + cap - 4, "...", 4);
}

static const char *version_name(int v)
{
    switch (v) {
    case SSL3_VERSION:
        return "SSL 3.0";
    case TLS1_VERSION:
        return "TLS 1.0";
    case TLS1_1_VERSION:
        return "TLS 1.1";
    case TLS1_2_VERSION:
        return "TLS 1.2";
    case TLS1_3_VERSION:
        return "TLS 1.3";
    default:
        return "an unknown TLS version";
    }
}

/* Hex digits, optionally separated by colons, case-insensitive; exactly 32 bytes. */
static int parse_fingerprint(const char *text, unsigned char out[SHA256_LEN])
{
    size_t nibbles = 0;
    for (const char *p = text; *p != '\0'; p++) {
        int v;
        if (*p == ':')
            continue;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f')
            v = (*p | 0x20) - 'a' + 10;
        else
            return -1;
        if (nibbles >= 2 * SHA256_LEN)
            return -1;
        if (nibbles % 2 == 0)
            out[nibbles / 2] = (unsigned char)(v << 4);
        else
            out[nibbles / 2] |= (unsigned char)v;
        nibbles++;
    }
    return nibbles == 2 * SHA256_LEN ? 0 : -1;
}

/* Strips IPv6 brackets and one trailing dot of a DNS name; tells whether it is an IP. */
static int normalize_name(const char *in, char *out, size_t len, int *is_ip)
{
    size_t n = strlen(in);
    if (n >= 2 && in[0] == '[' && in[n - 1] == ']') {
        in++;
        n -= 2;
    } else if (n > 1 && in[n - 1] == '.') {
        n--;
    }
    if (n == 0 || n >= len)
        return -1;
    memcpy(out, in, n);
    out[n] = '\0';
    unsigned char addr[16];
    *is_ip = inet_pton(AF_INET, out, addr) == 1 || inet_pton(AF_INET6, out, addr) == 1;
    return 0;
}

/* Records the ServerHello version and any alert the server sends (for diagnosis). */
static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    pg_tls *t = arg;
    const unsigned char *p = buf;
    if (write_p)
        return;
    if (content_type == SSL3_RT_HANDSHAKE && len >= 6 && p[0] == SSL3_MT_SERVER_HELLO)
        t->server_hello_version = (p[4] << 8) | p[5];
    else if (content_type == SSL3_RT_ALERT && len == 2 && p[0] == SSL3_AL_FATAL)
        t->alert_received = p[1];
}

/* ---- setting up ---- */

int pg_tls_dir_is_hashed(const char *dir)
{
    DIR *d = dir != NULL ? opendir(dir) : NULL;
    if (d == NULL)
        return 0;
    int hashed = 0;
    struct dirent *e;
    while (!hashed && (e = readdir(d)) != NULL) {
        /* c_rehash / openssl rehash names: eight hex digits, a dot, a sequence number. */
        const char *n = e->d_name;
        size_t i = 0;
        while (i < 8 && isxdigit((unsigned char)n[i]))
            i++;
        if (i != 8 || n[8] != '.' || !isdigit((unsigned char)n[9]))
            continue;
        struct stat st;
        hashed = fstatat(dirfd(d), n, &st, 0) == 0 && S_ISREG(st.st_mode);
    }
    closedir(d);
    return hashed;
}

/*
 * The system trust store. OpenSSL's default (SSL_CTX_set_default_verify_paths) parses the
 * whole CA bundle file, some 140 certificates, for every context: on a one-message process
 * that is most of the TLS set-up cost (3x the CPU and 230 more page faults than the lookup
 * below). The default directory, when c_rehash'ed as Debian's update-ca-certificates keeps
 * it, holds the same certificates and is read lazily, by subject hash, only for the chain
 * being verified. So we trust the directory alone when it is hashed and no SSL_CERT_FILE or
 * SSL_CERT_DIR override is set; otherwise OpenSSL's default, overrides included, as before.
 */
static int load_system_store(SSL_CTX *ctx)
{
    if (getenv(X509_get_default_cert_file_env()) != NULL ||
        getenv(X509_get_default_cert_dir_env()) != NULL)
        return SSL_CTX_set_default_verify_paths(ctx);
    const char *dir = X509_get_default_cert_dir();
    if (pg_tls_dir_is_hashed(dir))
        return SSL_CTX_load_verify_dir(ctx, dir);
    return SSL_CTX_set_default_verify_paths(ctx);
}

static pigeon_err make_ctx(pg_tls *t, const pg_tls_opts *opts, pg_tls_result *res)
{
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL) {
        snprintf(res->errmsg, res->errlen, "cannot create a TLS context");
        return PIGEON_ERR_NOMEM;
    }
    t->min_version = opts->min_version > TLS1_2_VERSION ? opts->min_version : TLS1_2_VERSION;
    if (!SSL_CTX_set_min_proto_version(t->ctx, t->min_version)) {
        snprintf(res->errmsg, res->errlen, "unsupported minimum TLS version 0x%x",
                 (unsigned)opts->min_version);
        return PIGEON_ERR_CONFIG;
    }
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(t->ctx, opts->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    int ok = opts->ca_file != NULL ? SSL_CTX_load_verify_locations(t->ctx, opts->ca_file, NULL)
                                   : load_system_store(t->ctx);
    if (!ok) {
        const char *why = ERR_reason_error_string(ERR_peek_last_error());
        snprintf(res->errmsg, res->errlen, "cannot load CA certificates from %s: %s",
                 opts->ca_file != NULL ? opts->ca_file : "the system store",
                 why != NULL ? why : "unknown error");
        return PIGEON_ERR_CONFIG;
    }
    return PIGEON_OK;
}

static pigeon_err make_ssl(pg_tls *t, const pg_tls_opts *opts, const char *name, int is_ip,
                           pg_tls_result *res)
{
    BIO *bio = NULL;
    t->ssl = SSL_new(t->ctx);
    if (t->ssl == NULL || (bio = new_sock_bio(&t->sock)) == NULL)
        goto nomem;
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_msg_callback(t->ssl, msg_cb);
    SSL_set_msg_callback_arg(t->ssl, t);
    /* RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted in HostName". */
    if (!is_ip && !SSL_set_tlsext_host_name(t->ssl, name))
        goto nomem;
    if (opts->insecure)
        return PIGEON_OK;
    if (is_ip) {
        /* Only iPAddress SANs match; a DNS SAN or wildcard never does (RFC 6125 1.7.2). */
        if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name))
            goto nomem;
    } else {
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (!SSL_set1_host(t->ssl, name))
            goto nomem;
    }
    return PIGEON_OK;
nomem:
    snprintf(res->errmsg, res->errlen, "cannot set up the TLS session for %s", name);
    return PIGEON_ERR_NOMEM;
}

static pigeon_err run_handshake(pg_tls *t, int64_t deadline)
{
    for (;;) {
        ERR_clear_error();
        int ret = SSL_connect(t->ssl);
        if (ret == 1)
            return PIGEON_OK;
        int e = SSL_get_error(t->ssl, ret);
        short events;
        if (e == SSL_ERROR_WANT_READ)
            events = POLLIN;
        else if (e == SSL_ERROR_WANT_WRITE)
            events = POLLOUT;
        else
            return PIGEON_ERR_TLS; /* the error queue stays for describe_failure() */
        pigeon_err err = pg_fd_wait(t->sock.fd, events, deadline);
        if (err != PIGEON_OK)
            return err;
    }
}

/* ---- what the handshake established ---- */

static void name_line(const X509_NAME *name, char *out, size_t len)
{
    out[0] = '\0';
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem == NULL)
        return;
    if (X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(mem, out, (int)len - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(mem);
}

static void san_list(X509 *cert, char *out, size_t len)
{
    out[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const char *sep = out[0] != '\0' ? ", " : "";
        int type;
        const ASN1_STRING *s = GENERAL_NAME_get0_value(gn, &type);
        const unsigned char *d = ASN1_STRING_get0_data(s);
        int n = ASN1_STRING_length(s);
        char ip[INET6_ADDRSTRLEN];
        if (type == GEN_DNS || type == GEN_EMAIL || type == GEN_URI) {
            const char *tag = type == GEN_DNS ? "DNS" : type == GEN_EMAIL ? "email" : "URI";
            append(out, len, "%s%s:%.*s", sep, tag, n, (const char *)d);
        } else if (type == GEN_IPADD && (n == 4 || n == 16) &&
                   inet_ntop(n == 4 ? AF_INET : AF_INET6, d, ip, sizeof ip) != NULL) {
            append(out, len, "%sIP:%s", sep, ip);
        }
    }
    GENERAL_NAMES_free(names);
    for (char *p = out; *p != '\0'; p++) /* names from the network are shown, not trusted */
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
}

static void fingerprint_text(const unsigned char *md, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    out[0] = '\0';
    if (len < 3 * SHA256_LEN) /* "AB:" per byte, the last ':' replaced by the NUL */
        return;
    for (size_t i = 0; i < SHA256_LEN; i++) {
        if (i > 0)
            out[o++] = ':';
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 15];
    }
    out[o] = '\0';
}

static void fill_cert_info(X509 *cert, pg_tls_info *info)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    struct tm tm;
    name_line(X509_get_subject_name(cert), info->subject, sizeof info->subject);
    name_line(X509_get_issuer_name(cert), info->issuer, sizeof info->issuer);
    san_list(cert, info->sans, sizeof info->sans);
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm))
        strftime(info->not_after, sizeof info->not_after, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) && mdlen == SHA256_LEN)
        fingerprint_text(md, info->fingerprint, sizeof info->fingerprint);
}

/* The server's leaf certificate, also after a failed verification (not owned). */
static X509 *peer_leaf(SSL *ssl)
{
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    if (leaf == NULL) {
        STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
        if (sk_X509_num(chain) > 0)
            leaf = sk_X509_value(chain, 0);
    }
    return leaf;
}

static void fill_info(pg_tls *t, pg_tls_result *res)
{
    pg_tls_info *info = res->info;
    const SSL_CIPHER *cipher = SSL_get_current_cipher(t->ssl);
    snprintf(info->version, sizeof info->version, "%s", SSL_get_version(t->ssl));
    snprintf(info->cipher, sizeof info->cipher, "%s",
             cipher != NULL ? SSL_CIPHER_get_name(cipher) : "");
    info->verify_result = SSL_get_verify_result(t->ssl);
    snprintf(info->verify_text, sizeof info->verify_text, "%s",
             X509_verify_cert_error_string(info->verify_result));
    X509 *leaf = peer_leaf(t->ssl);
    if (leaf != NULL) {
        fill_cert_info(leaf, info);
        res->info_valid = 1;
    }
}

/* ---- diagnosis ---- */

void pg_tls_describe_plaintext(const unsigned char *p, size_t n, char *errmsg, size_t errlen)
{
    char shown[81];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof shown - 1 && p[i] != '\r' && p[i] != '\n'; i++)
        shown[k++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    shown[k] = '\0';
    if (n >= 3 && memcmp(p, "220", 3) == 0)
        snprintf(errmsg, errlen,
                 "server does not speak TLS on this port: it sent an SMTP greeting (\"%s\") "
                 "\xe2\x80\x94 this port expects STARTTLS, use --tls starttls (or port 465 "
                 "for implicit TLS)",
                 shown);
    else
        snprintf(errmsg, errlen,
                 "server does not speak TLS on this port: it sent \"%s\" instead of a TLS "
                 "record",
                 shown);
}

/* The first raw bytes were not a TLS record: show them, plus the rest of the line if it
 * already arrived (peeked, so nothing more is consumed). */
static void describe_plaintext_peer(pg_tls *t, pg_tls_result *res)
{
    unsigned char line[96];
    size_t n = t->sock.first_len;
    memcpy(line, t->sock.first, n);
    ssize_t more = recv(t->sock.fd, line + n, sizeof line - n, MSG_PEEK | MSG_DONTWAIT);
    if (more > 0)
        n += (size_t)more;
    pg_tls_describe_plaintext(line, n, res->errmsg, res->errlen);
}

static void describe_version(pg_tls *t, pg_tls_result *res)
{
    int v = t->server_hello_version;
    res->version_refused = 1;
    if (v != 0 && v < t->min_version) /* a pre-1.3 server answered with its own version */
        snprintf(res->errmsg, res->errlen, "server only offers %s; %s or later is required",
                 version_name(v), version_name(t->min_version));
    else
        snprintf(res->errmsg, res->errlen,
                 "server refused every TLS version we offer (it sent a protocol_version "
                 "alert): it only offers a version older than %s; %s or later is required",
                 version_name(t->min_version), version_name(t->min_version));
}

/* "certificate verification failed for HOST: REASON", plus what the user needs to act. */
static void describe_verify(pg_tls *t, const char *name, long vr, pg_tls_result *res)
{
    const pg_tls_info *info = res->info;
    snprintf(res->errmsg, res->errlen, "certificate verification failed for %s: %s", name,
             X509_verify_cert_error_string(vr));
    if (!res->info_valid)
        return;
    switch (vr) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        append(res->errmsg, res->errlen, " (certificate is for %s)",
               info->sans[0] != '\0' ? info->sans : info->subject);
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        append(res->errmsg, res->errlen, " (issuer \"%s\" is not trusted by %s)", info->issuer,
               t->ca_file != NULL ? t->ca_file : "the system store");
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        append(res->errmsg, res->errlen, " (expired %s)", info->not_after);
        break;
    default:
        break;
    }
}

static void describe_failure(pg_tls *t, const char *name, pigeon_err err, pg_tls_result *res)
{
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
    long vr = SSL_get_verify_result(t->ssl);
    if (err == PIGEON_ERR_TIMEOUT) {
        snprintf(res->errmsg, res->errlen, "TLS handshake with %s timed out", name);
    } else if (t->sock.first_len > 0 && (t->sock.first[0] < 20 || t->sock.first[0] > 23)) {
        describe_plaintext_peer(t, res); /* RFC 8446 5.1: content types 20..23 */
    } else if (vr != X509_V_OK && reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        describe_verify(t, name, vr, res);
    } else if (t->alert_received == SSL_AD_PROTOCOL_VERSION ||
               reason == SSL_R_UNSUPPORTED_PROTOCOL ||
               reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION) {
        describe_version(t, res);
    } else if (t->alert_received >= 0) {
        snprintf(res->errmsg, res->errlen,
                 "TLS handshake with %s failed: server sent alert "
                 "\"%s\"",
                 name, SSL_alert_desc_string_long(t->alert_received));
    } else if (t->sock.saw_eof) {
        snprintf(res->errmsg, res->errlen,
                 "server %s closed the connection during the TLS handshake", name);
    } else if (t->sock.last_errno != 0) {
        char why[128];
        if (strerror_r(t->sock.last_errno, why, sizeof why) != 0)
            snprintf(why, sizeof why, "error %d", t->sock.last_errno);
        snprintf(res->errmsg, res->errlen, "TLS handshake with %s failed: %s", name, why);
    } else {
        const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
        snprintf(res->errmsg, res->errlen, "TLS handshake with %s failed: %s", name,
                 why != NULL ? why : "unknown error");
    }
}

static pigeon_err check_pin(pg_tls *t, pg_tls_result *res)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    X509 *leaf = SSL_get0_peer_certificate(t->ssl);
    if (leaf == NULL || !X509_digest(leaf, EVP_sha256(), md, &mdlen) || mdlen != SHA256_LEN) {
        snprintf(res->errmsg, res->errlen,
                 "server presented no certificate to check the "
                 "fingerprint against");
        return PIGEON_ERR_TLS;
    }
    if (CRYPTO_memcmp(md, t->pin, SHA256_LEN) == 0)
        return PIGEON_OK;
    char want[3 * SHA256_LEN];
    fingerprint_text(t->pin, want, sizeof want);
    snprintf(res->errmsg, res->errlen,
             "certificate fingerprint mismatch: expected SHA-256 %s, server has %s", want,
             res->info->fingerprint);
    snprintf(res->info->verify_text, sizeof res->info->verify_text,
             "certificate fingerprint mismatch");
    return PIGEON_ERR_TLS;
}

/* ---- the interface ---- */

pigeon_err pg_tls_handshake(pg_tls **out, int fd, const pg_tls_opts *opts, int64_t deadline,
                            pg_tls_result *res)
{
    char name[256];
    int is_ip = 0;
    pg_tls *t = NULL;
    pigeon_err err;

    *out = NULL;
    res->errmsg[0] = '\0';
    if (opts->server_name == NULL ||
        normalize_name(opts->server_name, name, sizeof name, &is_ip) != 0) {
        snprintf(res->errmsg, res->errlen, "TLS needs the server's name to verify it");
        return PIGEON_ERR_INVALID;
    }
    /* libssl is loaded now, by the first handshake (lib/lazy/lazy.h). */
    if (pg_lazy_ssl(res->errmsg, res->errlen) != PIGEON_OK)
        return PIGEON_ERR_UNSUPPORTED;
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(res->errmsg, res->errlen, "out of memory");
        return PIGEON_ERR_NOMEM;
    }
    t->sock.fd = fd;
    t->alert_received = -1;
    t->ca_file = opts->ca_file;
    err = PIGEON_ERR_CONFIG;
    if (opts->fingerprint != NULL) {
        if (parse_fingerprint(opts->fingerprint, t->pin) != 0) {
            snprintf(res->errmsg, res->errlen,
                     "invalid certificate fingerprint \"%.100s\": "
                     "expected 64 hex digits of SHA-256",
                     opts->fingerprint);
            goto fail;
        }
        t->has_pin = 1;
    }
    if ((err = make_ctx(t, opts, res)) != PIGEON_OK ||
        (err = make_ssl(t, opts, name, is_ip, res)) != PIGEON_OK)
        goto fail;
    err = run_handshake(t, deadline);
    fill_info(t, res);
    if (err != PIGEON_OK) {
        describe_failure(t, name, err, res);
        goto fail;
    }
    if (t->has_pin && (err = check_pin(t, res)) != PIGEON_OK)
        goto fail;
    ERR_clear_error();
    *out = t;
    return PIGEON_OK;
fail:
    ERR_clear_error();
    pg_tls_close(t);
    return err;
}

/* Describes a failed SSL_read/SSL_write that is not a retry: a socket error is
 * PIGEON_ERR_NETWORK, anything OpenSSL found wrong is PIGEON_ERR_TLS. */
static pigeon_err io_error(pg_tls *t, const char *what, char *errmsg, size_t errlen)
{
    unsigned long e = ERR_peek_last_error();
    if (t->sock.last_errno != 0) {
        char why[128];
        if (strerror_r(t->sock.last_errno, why, sizeof why) != 0)
            snprintf(why, sizeof why, "error %d", t->sock.last_errno);
        snprintf(errmsg, errlen, "%s failed: %s", what, why);
        ERR_clear_error();
        return PIGEON_ERR_NETWORK;
    }
    const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
    snprintf(errmsg, errlen, "TLS %s failed: %s", what, why != NULL ? why : "unknown error");
    ERR_clear_error();
    return PIGEON_ERR_TLS;
}

pigeon_err pg_tls_read(pg_tls *t, void *buf, size_t cap, size_t *got, int64_t deadline,
                       char *errmsg, size_t errlen)
{
    *got = 0;
    for (;;) {
        size_t n = 0;
        ERR_clear_error();
        int ret = SSL_read_ex(t->ssl, buf, cap, &n);
        if (ret == 1) {
            *got = n;
            return PIGEON_OK;
        }
        int e = SSL_get_error(t->ssl, ret);
        short events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        if (e == SSL_ERROR_ZERO_RETURN || (t->sock.saw_eof && t->sock.last_errno == 0)) {
            ERR_clear_error();
            return PIGEON_OK; /* close_notify, or a TCP close without it: EOF either way */
        }
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return io_error(t, "read from server", errmsg, errlen);
        pigeon_err err = pg_fd_wait(t->sock.fd, events, deadline);
        if (err != PIGEON_OK) {
            snprintf(errmsg, errlen, "%s",
                     err == PIGEON_ERR_TIMEOUT ? "timed out waiting for the server"
                                               : "poll() failed");
            return err;
        }
    }
}

pigeon_err pg_tls_write(pg_tls *t, const void *data, size_t n, int64_t deadline, char *errmsg,
                        size_t errlen)
{
    const unsigned char *p = data;
    while (n > 0) {
        size_t w = 0;
        ERR_clear_error();
        /* Without partial writes, a retried SSL_write_ex must get the same arguments. */
        int ret = SSL_write_ex(t->ssl, p, n, &w);
        if (ret == 1) {
            p += w;
            n -= w;
            continue;
        }
        int e = SSL_get_error(t->ssl, ret);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return io_error(t, "write to server", errmsg, errlen);
        pigeon_err err =
            pg_fd_wait(t->sock.fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
        if (err != PIGEON_OK) {
            snprintf(errmsg, errlen, "%s",
                     err == PIGEON_ERR_TIMEOUT ? "timed out sending to the server"
                                               : "poll() failed");
            return err;
        }
    }
    return PIGEON_OK;
}

size_t pg_tls_pending(const pg_tls *t)
{
    int n = t != NULL ? SSL_pending(t->ssl) : 0;
    return n > 0 ? (size_t)n : 0;
}

void pg_tls_close(pg_tls *t)
{
    if (t == NULL)
        return;
    if (t->ssl != NULL && SSL_is_init_finished(t->ssl) && t->sock.last_errno == 0)
        SSL_shutdown(t->ssl); /* one attempt at close_notify; we do not wait for the reply */
    ERR_clear_error();
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    OPENSSL_cleanse(t->pin, sizeof t->pin);
    free(t);
}

void pg_tls_probe_version(int fd, const pg_tls_opts *opts, int64_t deadline, char *errmsg,
                          size_t errlen)
{
    char name[256];
    int is_ip = 0;
    if (pg_lazy_ssl(errmsg, errlen) != PIGEON_OK)
        return;
    pg_tls *t = calloc(1, sizeof *t);
    if (t == NULL || normalize_name(opts->server_name, name, sizeof name, &is_ip) != 0)
        goto done;
    t->sock.fd = fd;
    t->alert_received = -1;
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL)
        goto done;
    /* A diagnosis only: accept anything, never send application data, then drop it. */
    SSL_CTX_set_security_level(t->ctx, 0);
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_VERSION);
    SSL_CTX_set_cipher_list(t->ctx, "ALL:@SECLEVEL=0");
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    pg_tls_opts loose = {.server_name = name, .insecure = 1};
    char scratch[8];
    pg_tls_result res = {.errmsg = scratch, .errlen = sizeof scratch};
    if (make_ssl(t, &loose, name, is_ip, &res) != PIGEON_OK)
        goto done;
    pigeon_err err = run_handshake(t, deadline);
    int v = err == PIGEON_OK ? SSL_version(t->ssl) : t->server_hello_version;
    int need = opts->min_version > TLS1_2_VERSION ? opts->min_version : TLS1_2_VERSION;
    if (v >= SSL3_VERSION && v < need)
        snprintf(errmsg, errlen, "server only offers %s; %s or later is required", version_name(v),
                 version_name(need));
done:
    ERR_clear_error();
    if (t != NULL) {
        SSL_free(t->ssl);
        SSL_CTX_free(t->ctx);
        free(t);
    }
}
