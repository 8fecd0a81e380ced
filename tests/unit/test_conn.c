/*
 * test_conn.c - pg_conn against servers run by the test itself on 127.0.0.1: plaintext
 * line reading, bounds, deadlines, EOF, refused connects, full writes without SIGPIPE, and
 * TLS with an in-memory PKI (a test CA, a good leaf, an expired one, one from an unknown
 * CA, a wildcard one for the IP rule), version floors, pinning and the wrong-mode messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net/conn.h"

#define SHORT_MS 150       /* a deadline meant to pass: the server stays silent */
#define LONG_MS  20000     /* a deadline meant not to pass */
#define RX_CAP   (4 << 20) /* bytes a test server keeps of what it receives */

/* ---- an in-memory PKI ---- */

struct pki {
    EVP_PKEY *ca_key;     /* the test CA's key */
    X509 *ca;             /* the test CA, written to ca_path */
    EVP_PKEY *other_key;  /* a CA the client does not trust */
    X509 *other;          /* written to other_path */
    EVP_PKEY *leaf_key;   /* the key of every leaf */
    X509 *good;           /* CN=localhost, DNS:localhost, IP:127.0.0.1, by ca */
    X509 *expired;        /* same names, expired yesterday */
    X509 *unknown;        /* same names, signed by other */
    X509 *wildcard;       /* CN=127.0.0.1, DNS:*.0.0.1, no IP SAN, by ca */
    char dir[64];         /* temporary directory for the PEM files */
    char ca_path[128];    /* the test CA in PEM */
    char other_path[128]; /* the untrusted CA in PEM */
};

static struct pki pki;

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key, valid from/until the given day offsets, signed by issuer (NULL:
 * self-signed). san may be NULL. */
static X509 *make_cert(const char *cn, const char *san, long from_days, long until_days,
                       EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    static long serial = 1;
    X509 *c = X509_new();
    assert_non_null(c);
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c), from_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(c), until_days * 86400);
    X509_NAME *name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(c, key);
    X509 *signer = issuer != NULL ? issuer : c;
    if (issuer == NULL) {
        add_ext(c, signer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(c, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(c, signer, NID_basic_constraints, "CA:FALSE");
        add_ext(c, signer, NID_ext_key_usage, "serverAuth");
    }
    add_ext(c, signer, NID_subject_key_identifier, "hash");
    add_ext(c, signer, NID_authority_key_identifier, "keyid");
    if (san != NULL)
        add_ext(c, signer, NID_subject_alt_name, san);
    assert_true(X509_sign(c, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    return c;
}

static void write_pem(const char *path, X509 *cert)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, cert), 1);
    fclose(f);
}

static int pki_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE from the library must kill the test, visibly */
    snprintf(pki.dir, sizeof pki.dir, "/tmp/pigeon-conn-XXXXXX");
    if (mkdtemp(pki.dir) == NULL)
        return -1;
    snprintf(pki.ca_path, sizeof pki.ca_path, "%s/ca.pem", pki.dir);
    snprintf(pki.other_path, sizeof pki.other_path, "%s/other.pem", pki.dir);
    pki.ca_key = new_key();
    pki.other_key = new_key();
    pki.leaf_key = new_key();
    pki.ca = make_cert("Pigeon Test CA", NULL, -1, 30, pki.ca_key, NULL, NULL);
    pki.other = make_cert("Unknown CA", NULL, -1, 30, pki.other_key, NULL, NULL);
    const char *names = "DNS:localhost,IP:127.0.0.1";
    pki.good = make_cert("localhost", names, -1, 30, pki.leaf_key, pki.ca, pki.ca_key);
    pki.expired = make_cert("localhost", names, -10, -1, pki.leaf_key, pki.ca, pki.ca_key);
    pki.unknown = make_cert("localhost", names, -1, 30, pki.leaf_key, pki.other, pki.other_key);
    pki.wildcard = make_cert("127.0.0.1", "DNS:*.0.0.1", -1, 30, pki.leaf_key, pki.ca, pki.ca_key);
    write_pem(pki.ca_path, pki.ca);
    write_pem(pki.other_path, pki.other);
    return 0;
}

static int pki_teardown(void **state)
{
    (void)state;
    X509 *certs[] = {pki.ca, pki.other, pki.good, pki.expired, pki.unknown, pki.wildcard};
    for (size_t i = 0; i < sizeof certs / sizeof certs[0]; i++)
        X509_free(certs[i]);
    EVP_PKEY_free(pki.ca_key);
    EVP_PKEY_free(pki.other_key);
    EVP_PKEY_free(pki.leaf_key);
    unlink(pki.ca_path);
    unlink(pki.other_path);
    rmdir(pki.dir);
    return 0;
}

/* The fingerprint as the header promises it, computed here independently. */
static void cert_fingerprint(X509 *cert, char *out, size_t len, int colons, int upper)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    assert_int_equal(X509_digest(cert, EVP_sha256(), md, &n), 1);
    size_t o = 0;
    for (unsigned int i = 0; i < n; i++) {
        int w = snprintf(out + o, len - o, upper ? "%s%02X" : "%s%02x",
                         (colons && i > 0) ? ":" : "", md[i]);
        o += (size_t)w;
    }
}

/* ---- a scripted server on 127.0.0.1 ---- */

enum after_send {
    AFTER_READ,  /* read until EOF; "QUIT\r\n" at the end is answered with the byte count */
    AFTER_CLOSE, /* close right after sending */
    AFTER_IDLE,  /* neither read nor close until stopped */
};

struct server {
    int lfd;               /* listening socket */
    uint16_t port;         /* its port */
    pthread_t thread;      /* the server thread */
    int stop[2];           /* a pipe: written to stop the server */
    const char *send;      /* bytes sent right after accept (or the handshake), or NULL */
    size_t send_len;       /* their length */
    int split;             /* nonzero: send them in two writes, 20 ms apart */
    enum after_send after; /* what to do next */
    SSL_CTX *tls;          /* non-NULL: a TLS server with this context */
    int starttls;          /* nonzero: answer "STARTTLS\r\n" with a 220 before TLS */
    int accepted;          /* connections accepted (result) */
    int conns;             /* connections to accept before exiting */
    int handshakes;        /* TLS handshakes completed (result) */
    char sni[256];         /* the SNI host name received, "" if none (result) */
    unsigned char *rx;     /* application bytes received (result) */
    size_t rx_len;         /* their count */
};

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    struct server *s = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(s->sni, sizeof s->sni, "%s", name != NULL ? name : "");
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *server_ctx(X509 *cert, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pki.leaf_key), 1);
    if (max_version != 0) {
        SSL_CTX_set_security_level(ctx, 0);
        assert_int_equal(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
        SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
        SSL_CTX_set_max_proto_version(ctx, max_version);
    }
    return ctx;
}

/* Waits for fd to be readable; 0 if the test asked the server to stop first. */
static int wait_readable(struct server *s, int fd)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = s->stop[0], .events = POLLIN}};
    if (poll(p, 2, 30000) <= 0 || (p[1].revents & POLLIN))
        return 0;
    return 1;
}

static void keep(struct server *s, const void *data, size_t n)
{
    if (n > RX_CAP - s->rx_len)
        n = RX_CAP - s->rx_len;
    memcpy(s->rx + s->rx_len, data, n);
    s->rx_len += n;
}

static int ends_with_quit(const struct server *s)
{
    return s->rx_len >= 6 && memcmp(s->rx + s->rx_len - 6, "QUIT\r\n", 6) == 0;
}

/* Sends through TLS when ssl is set. */
static void server_send(int fd, SSL *ssl, const void *p, size_t n)
{
    if (ssl != NULL)
        SSL_write(ssl, p, (int)n);
    else
        (void)!send(fd, p, n, MSG_NOSIGNAL);
}

static void serve_reads(struct server *s, int fd, SSL *ssl)
{
    unsigned char buf[16384];
    while (wait_readable(s, fd) || (ssl != NULL && SSL_pending(ssl) > 0)) {
        int n = ssl != NULL ? SSL_read(ssl, buf, sizeof buf) : (int)recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return;
        keep(s, buf, (size_t)n);
        if (ends_with_quit(s)) {
            char reply[64];
            int len = snprintf(reply, sizeof reply, "221 %zu\r\n", s->rx_len);
            server_send(fd, ssl, reply, (size_t)len);
            return;
        }
    }
}

/* RFC 3207 4: the client says STARTTLS, the server answers 220, then the handshake. */
static int plain_starttls(struct server *s, int fd)
{
    char cmd[16];
    size_t got = 0;
    while (got < 10 && wait_readable(s, fd)) {
        ssize_t n = recv(fd, cmd + got, 10 - got, 0);
        if (n <= 0)
            return 0;
        got += (size_t)n;
    }
    if (got != 10 || memcmp(cmd, "STARTTLS\r\n", 10) != 0)
        return 0;
    return send(fd, "220 2.0.0 go ahead\r\n", 20, MSG_NOSIGNAL) == 20;
}

static void serve_one(struct server *s, int fd)
{
    SSL *ssl = NULL;
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (s->starttls && !plain_starttls(s, fd))
        goto done;
    if (s->tls != NULL) {
        ssl = SSL_new(s->tls);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1)
            goto done;
        s->handshakes++;
    }
    if (s->send != NULL) {
        size_t first = s->split ? s->send_len / 2 : s->send_len;
        server_send(fd, ssl, s->send, first);
        if (first < s->send_len) {
            usleep(20000);
            server_send(fd, ssl, s->send + first, s->send_len - first);
        }
    }
    if (s->after == AFTER_READ)
        serve_reads(s, fd, ssl);
    else if (s->after == AFTER_IDLE)
        wait_readable(s, s->stop[0]);
done:
    if (ssl != NULL)
        SSL_shutdown(ssl);
    SSL_free(ssl);
    ERR_clear_error();
    close(fd);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    /* The server side uses OpenSSL's plain socket BIO, which may raise SIGPIPE; keep that
     * signal away from this thread so only the library under test could trigger it. */
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
    for (int i = 0; i < s->conns && wait_readable(s, s->lfd); i++) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            break;
        s->accepted++;
        serve_one(s, fd);
    }
    return NULL;
}

static int listen_on(int family, uint16_t *port)
{
    int fd = socket(family, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_loopback;
        len = sizeof *sin6;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 8) != 0) {
        close(fd);
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static void server_start(struct server *s)
{
    if (s->conns == 0)
        s->conns = 1;
    s->rx = malloc(RX_CAP);
    assert_non_null(s->rx);
    if (s->lfd <= 0)
        s->lfd = listen_on(AF_INET, &s->port);
    assert_true(s->lfd >= 0);
    assert_int_equal(pipe(s->stop), 0);
    if (s->tls != NULL) {
        SSL_CTX_set_tlsext_servername_callback(s->tls, sni_cb);
        SSL_CTX_set_tlsext_servername_arg(s->tls, s);
    }
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

/* Stops the server and waits for it; its results may be read afterwards. */
static void server_stop(struct server *s)
{
    (void)!write(s->stop[1], "x", 1);
    pthread_join(s->thread, NULL);
    close(s->stop[0]);
    close(s->stop[1]);
    close(s->lfd);
}

static void server_free(struct server *s)
{
    SSL_CTX_free(s->tls);
    free(s->rx);
}

static pg_conn *open_local(const struct server *s)
{
    pg_conn *c = NULL;
    char err[256];
    pigeon_err rc = pg_conn_open(&c, "127.0.0.1", s->port, 5000, pg_now_ms() + LONG_MS, NULL, NULL,
                                 err, sizeof err);
    assert_int_equal(rc, PIGEON_OK);
    assert_non_null(c);
    return c;
}

static int64_t in_ms(int ms)
{
    return pg_now_ms() + ms;
}

/* ---- plaintext ---- */

static void test_read_lines(void **state)
{
    (void)state;
    static const char script[] = "220 mx ESMTP\r\n250-first\r\n250 last\n";
    struct server s = {.send = script, .send_len = sizeof script - 1, .split = 1};
    server_start(&s);
    pg_conn *c = open_local(&s);
    char line[64];
    size_t len = 0;
    assert_string_equal(pg_conn_peer(c), "127.0.0.1");
    assert_int_equal(pg_conn_is_tls(c), 0);
    assert_null(pg_conn_tls_info(c));
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)), PIGEON_OK);
    assert_string_equal(line, "220 mx ESMTP\r\n");
    assert_int_equal(len, 14);
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)), PIGEON_OK);
    assert_string_equal(line, "250-first\r\n");
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)), PIGEON_OK);
    assert_string_equal(line, "250 last\n"); /* a bare LF ends a line too */
    assert_int_equal(pg_conn_pending(c), 0);
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_stall_times_out(void **state)
{
    (void)state;
    static const char script[] = "220-partial";
    struct server s = {.send = script, .send_len = sizeof script - 1, .after = AFTER_IDLE};
    server_start(&s);
    pg_conn *c = open_local(&s);
    char line[64];
    size_t len = 1;
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(SHORT_MS)),
                     PIGEON_ERR_TIMEOUT);
    assert_int_equal(len, 0);
    assert_non_null(strstr(pg_conn_error(c), "timed out"));
    /* The partial line is still buffered, not lost. */
    assert_int_equal(pg_conn_pending(c), strlen(script));
    /* A deadline already passed is a timeout, not a wait. */
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, pg_now_ms() - 1),
                     PIGEON_ERR_TIMEOUT);
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_line_bounds(void **state)
{
    (void)state;
    /* With cap 513 a line may have 512 bytes with its CRLF (RFC 5321 4.5.3.1.5). */
    static char script[2048];
    memset(script, 'a', sizeof script);
    memcpy(script + 510, "\r\n", 2);       /* line 1: 512 bytes, fits exactly */
    memcpy(script + 512 + 511, "\r\n", 2); /* line 2: 513 bytes, one too many */
    struct server s = {.send = script, .send_len = sizeof script, .after = AFTER_IDLE};
    server_start(&s);
    pg_conn *c = open_local(&s);
    char line[513];
    size_t len = 0;
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)), PIGEON_OK);
    assert_int_equal(len, 512);
    assert_int_equal(strlen(line), 512);
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)),
                     PIGEON_ERR_PROTOCOL);
    assert_non_null(strstr(pg_conn_error(c), "too long"));
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_line_without_end_too_long(void **state)
{
    (void)state;
    static char script[40000]; /* more than any buffer, and no LF at all */
    memset(script, 'x', sizeof script);
    struct server s = {.send = script, .send_len = sizeof script, .after = AFTER_IDLE};
    server_start(&s);
    pg_conn *c = open_local(&s);
    static char line[65536];
    size_t len = 0;
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)),
                     PIGEON_ERR_PROTOCOL);
    assert_non_null(strstr(pg_conn_error(c), "too long"));
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_eof(void **state)
{
    (void)state;
    static const char script[] = "220 hello\r\n421 partial";
    struct server s = {.send = script, .send_len = sizeof script - 1, .after = AFTER_CLOSE};
    server_start(&s);
    pg_conn *c = open_local(&s);
    char line[64];
    size_t len = 0;
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)), PIGEON_OK);
    assert_string_equal(line, "220 hello\r\n");
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)),
                     PIGEON_ERR_NETWORK);
    assert_non_null(strstr(pg_conn_error(c), "closed"));
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_refused(void **state)
{
    (void)state;
    uint16_t port = 0;
    int fd = listen_on(AF_INET, &port);
    assert_true(fd >= 0);
    close(fd); /* nothing listens on port now */
    pg_conn *c = (pg_conn *)&port;
    char err[256];
    assert_int_equal(
        pg_conn_open(&c, "127.0.0.1", port, 2000, in_ms(LONG_MS), NULL, NULL, err, sizeof err),
        PIGEON_ERR_NETWORK);
    assert_null(c);
    assert_non_null(strstr(err, "127.0.0.1"));
    assert_non_null(strstr(err, strerror(ECONNREFUSED)));
}

static void test_bad_arguments_and_resolution(void **state)
{
    (void)state;
    pg_conn *c = NULL;
    char err[256];
    assert_int_equal(pg_conn_open(&c, "", 25, 1000, 0, NULL, NULL, err, sizeof err),
                     PIGEON_ERR_INVALID);
    assert_int_equal(pg_conn_open(&c, "127.0.0.1", 0, 1000, 0, NULL, NULL, err, sizeof err),
                     PIGEON_ERR_INVALID);
    /* RFC 6761 6.4: .invalid never resolves. */
    assert_int_equal(pg_conn_open(&c, "no-such-host.invalid", 25, 1000, in_ms(LONG_MS), NULL, NULL,
                                  err, sizeof err),
                     PIGEON_ERR_NETWORK);
    assert_non_null(strstr(err, "cannot resolve no-such-host.invalid"));
    pg_conn_close(NULL); /* a no-op */
}

struct trace_log {
    char text[1024]; /* every trace line, separated by '\n' */
};

static void collect_trace(void *ctx, const char *line)
{
    struct trace_log *t = ctx;
    size_t used = strlen(t->text);
    snprintf(t->text + used, sizeof t->text - used, "%s\n", line);
}

/* A name with an IPv6 and an IPv4 loopback address, the server only on the second family:
 * the first attempt is refused and the second connects. */
static void test_second_address(void **state)
{
    (void)state;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo("localhost", "25", &hints, &res) != 0)
        skip();
    int first = res->ai_family, families = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        families |= ai->ai_family == AF_INET ? 1 : ai->ai_family == AF_INET6 ? 2 : 0;
    freeaddrinfo(res);
    if (families != 3)
        skip(); /* localhost has a single address here */
    struct server s = {.send = "220 ok\r\n", .send_len = 8};
    s.lfd = listen_on(first == AF_INET ? AF_INET6 : AF_INET, &s.port);
    if (s.lfd < 0)
        skip();
    server_start(&s);
    struct trace_log log = {{0}};
    pg_conn *c = NULL;
    char err[256];
    assert_int_equal(pg_conn_open(&c, "localhost", s.port, 2000, in_ms(LONG_MS), collect_trace,
                                  &log, err, sizeof err),
                     PIGEON_OK);
    assert_string_equal(pg_conn_peer(c), first == AF_INET ? "::1" : "127.0.0.1");
    assert_non_null(strstr(log.text, "trying"));
    assert_non_null(strstr(log.text, strerror(ECONNREFUSED)));
    assert_non_null(strstr(log.text, "connected to"));
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_trace_and_bracketed_literal(void **state)
{
    (void)state;
    struct server s = {.send = "220 ok\r\n", .send_len = 8};
    server_start(&s);
    struct trace_log log = {{0}};
    pg_conn *c = NULL;
    char err[256];
    assert_int_equal(pg_conn_open(&c, "[127.0.0.1]", s.port, 2000, in_ms(LONG_MS), collect_trace,
                                  &log, err, sizeof err),
                     PIGEON_OK);
    char want[128];
    snprintf(want, sizeof want, "trying 127.0.0.1 port %u\nconnected to 127.0.0.1 port %u\n",
             s.port, s.port);
    assert_string_equal(log.text, want);
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static unsigned char *pattern(size_t n)
{
    unsigned char *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + i / 251);
    return p;
}

/* Writes data then "QUIT\r\n"; the server answers with the byte count it got. */
static void write_and_check(pg_conn *c, struct server *s, size_t n)
{
    unsigned char *data = pattern(n);
    char line[64], want[64];
    size_t len = 0;
    assert_int_equal(pg_conn_write(c, data, n, in_ms(LONG_MS)), PIGEON_OK);
    assert_int_equal(pg_conn_write(c, "QUIT\r\n", 6, in_ms(LONG_MS)), PIGEON_OK);
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)), PIGEON_OK);
    snprintf(want, sizeof want, "221 %zu\r\n", n + 6);
    assert_string_equal(line, want);
    pg_conn_close(c);
    server_stop(s);
    assert_int_equal(s->rx_len, n + 6);
    assert_memory_equal(s->rx, data, n);
    free(data);
}

static void test_write_all(void **state)
{
    (void)state;
    struct server s = {.after = AFTER_READ};
    server_start(&s);
    write_and_check(open_local(&s), &s, 3 << 20);
    server_free(&s);
}

static void test_write_times_out(void **state)
{
    (void)state;
    struct server s = {.after = AFTER_IDLE}; /* never reads */
    server_start(&s);
    pg_conn *c = open_local(&s);
    unsigned char *chunk = pattern(1 << 20);
    pigeon_err rc = PIGEON_OK;
    int64_t deadline = in_ms(300);
    for (int i = 0; i < 512 && rc == PIGEON_OK; i++)
        rc = pg_conn_write(c, chunk, 1 << 20, deadline);
    assert_int_equal(rc, PIGEON_ERR_TIMEOUT);
    assert_non_null(strstr(pg_conn_error(c), "timed out"));
    free(chunk);
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

/* Writing to a peer that has gone must be an error, never SIGPIPE (left at SIG_DFL here). */
static void test_write_to_closed_peer(void **state)
{
    (void)state;
    struct server s = {.after = AFTER_CLOSE};
    server_start(&s);
    pg_conn *c = open_local(&s);
    char line[64];
    size_t len = 0;
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)),
                     PIGEON_ERR_NETWORK);
    unsigned char *chunk = pattern(65536);
    pigeon_err rc = PIGEON_OK;
    for (int i = 0; i < 200 && rc == PIGEON_OK; i++)
        rc = pg_conn_write(c, chunk, 65536, in_ms(LONG_MS));
    assert_int_equal(rc, PIGEON_ERR_NETWORK);
    assert_non_null(strstr(pg_conn_error(c), "write to server failed"));
    free(chunk);
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_peek_and_detect_greeting(void **state)
{
    (void)state;
    static const char script[] = "220 mx.example ESMTP\r\n";
    struct server s = {.send = script, .send_len = sizeof script - 1, .after = AFTER_IDLE};
    server_start(&s);
    pg_conn *c = open_local(&s);
    char head[4];
    size_t n = 0;
    int is_tls = -1;
    assert_int_equal(pg_conn_detect_tls_record(c, in_ms(LONG_MS), &is_tls), PIGEON_OK);
    assert_int_equal(is_tls, 0);
    assert_int_equal(pg_conn_peek(c, head, sizeof head, &n, in_ms(LONG_MS)), PIGEON_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(head, "220 ", 4);
    char line[64];
    size_t len = 0;
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)), PIGEON_OK);
    assert_string_equal(line, script); /* nothing was consumed by peeking */
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_detect_tls_record(void **state)
{
    (void)state;
    /* A TLS alert record (RFC 8446 5.1, 6): type 21, version 3.1, length 2, fatal, 70. */
    static const char record[] = "\x15\x03\x01\x00\x02\x02\x46";
    struct server s = {.send = record, .send_len = sizeof record - 1, .after = AFTER_IDLE};
    server_start(&s);
    pg_conn *c = open_local(&s);
    int is_tls = 0;
    assert_int_equal(pg_conn_detect_tls_record(c, in_ms(LONG_MS), &is_tls), PIGEON_OK);
    assert_int_equal(is_tls, 1);
    assert_non_null(strstr(pg_conn_error(c), "--tls implicit"));
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_detect_times_out(void **state)
{
    (void)state;
    /* The usual implicit-TLS server: silent until it gets a ClientHello. */
    struct server s = {.after = AFTER_IDLE};
    server_start(&s);
    pg_conn *c = open_local(&s);
    int is_tls = -1;
    assert_int_equal(pg_conn_detect_tls_record(c, in_ms(SHORT_MS), &is_tls), PIGEON_ERR_TIMEOUT);
    assert_int_equal(is_tls, 0);
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

/* ---- TLS ---- */

static pg_tls_opts opts_for(const char *name)
{
    pg_tls_opts o = {.server_name = name, .ca_file = pki.ca_path};
    return o;
}

/* Runs a handshake against a fresh TLS server with cert; returns the result and leaves the
 * connection in *out (or closes it when out is NULL). */
static pigeon_err tls_attempt(struct server *s, const pg_tls_opts *o, pg_conn **out, char *err,
                              size_t errlen)
{
    server_start(s);
    pg_conn *c = open_local(s);
    pigeon_err rc = pg_conn_starttls(c, o, in_ms(LONG_MS));
    snprintf(err, errlen, "%s", pg_conn_error(c));
    if (rc != PIGEON_OK)
        assert_int_equal(pg_conn_is_tls(c), 0);
    if (out != NULL) {
        *out = c;
    } else {
        pg_conn_close(c);
        server_stop(s);
        assert_int_equal(s->rx_len, 0); /* no application data reached the server */
    }
    return rc;
}

static void test_tls_good(void **state)
{
    (void)state;
    struct server s = {.tls = server_ctx(pki.good, 0), .send = "220 tls ok\r\n", .send_len = 12};
    pg_tls_opts o = opts_for("localhost");
    pg_conn *c = NULL;
    char err[512];
    assert_int_equal(tls_attempt(&s, &o, &c, err, sizeof err), PIGEON_OK);
    assert_int_equal(pg_conn_is_tls(c), 1);
    const pg_tls_info *info = pg_conn_tls_info(c);
    assert_non_null(info);
    assert_string_equal(info->version, "TLSv1.3");
    assert_true(strlen(info->cipher) > 0);
    assert_string_equal(info->subject, "CN=localhost");
    assert_string_equal(info->issuer, "CN=Pigeon Test CA");
    assert_string_equal(info->sans, "DNS:localhost, IP:127.0.0.1");
    char fp[128];
    cert_fingerprint(pki.good, fp, sizeof fp, 1, 1);
    assert_string_equal(info->fingerprint, fp);
    assert_int_equal(info->verify_result, X509_V_OK);
    assert_string_equal(info->verify_text, "ok");
    /* notAfter is 30 days from now, in ISO 8601 UTC. */
    char want[32];
    time_t later = time(NULL) + 30 * 86400;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(want, sizeof want, "%Y-%m-%dT", &tm);
    assert_int_equal(strlen(info->not_after), 20);
    assert_memory_equal(info->not_after, want, 11);
    assert_int_equal(info->not_after[19], 'Z');
    char line[64];
    size_t len = 0;
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)), PIGEON_OK);
    assert_string_equal(line, "220 tls ok\r\n");
    write_and_check(c, &s, 1 << 20);
    assert_string_equal(s.sni, "localhost");
    assert_int_equal(s.handshakes, 1);
    server_free(&s);
}

static void test_tls_ip_literal(void **state)
{
    (void)state;
    /* An IP name matches the iPAddress SAN and is not sent as SNI (RFC 6066 3). */
    struct server s = {.tls = server_ctx(pki.good, 0)};
    pg_tls_opts o = opts_for("127.0.0.1");
    pg_conn *c = NULL;
    char err[512];
    assert_int_equal(tls_attempt(&s, &o, &c, err, sizeof err), PIGEON_OK);
    write_and_check(c, &s, 100);
    assert_string_equal(s.sni, "");
    server_free(&s);
}

static void test_tls_wrong_host(void **state)
{
    (void)state;
    struct server s = {.tls = server_ctx(pki.good, 0)};
    pg_tls_opts o = opts_for("mail.other.test");
    pg_conn *c = NULL;
    char err[512];
    assert_int_equal(tls_attempt(&s, &o, &c, err, sizeof err), PIGEON_ERR_TLS);
    assert_non_null(strstr(err, "certificate verification failed for mail.other.test"));
    assert_non_null(strstr(err, X509_verify_cert_error_string(X509_V_ERR_HOSTNAME_MISMATCH)));
    assert_non_null(strstr(err, "DNS:localhost"));
    /* The certificate seen stays available for diagnosis. */
    const pg_tls_info *info = pg_conn_tls_info(c);
    assert_non_null(info);
    assert_string_equal(info->subject, "CN=localhost");
    assert_int_equal(info->verify_result, X509_V_ERR_HOSTNAME_MISMATCH);
    pg_conn_close(c);
    server_stop(&s);
    assert_int_equal(s.handshakes, 0);
    assert_int_equal(s.rx_len, 0);
    server_free(&s);
}

static void expect_verify_failure(X509 *cert, const char *ca, long code)
{
    struct server s = {.tls = server_ctx(cert, 0)};
    pg_tls_opts o = opts_for("localhost");
    o.ca_file = ca;
    pg_conn *c = NULL;
    char err[512];
    assert_int_equal(tls_attempt(&s, &o, &c, err, sizeof err), PIGEON_ERR_TLS);
    assert_non_null(strstr(err, "certificate verification failed for localhost"));
    assert_non_null(strstr(err, X509_verify_cert_error_string(code)));
    assert_int_equal(pg_conn_tls_info(c)->verify_result, code);
    if (code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY) /* names what is missing */
        assert_non_null(strstr(err, ca));
    pg_conn_close(c);
    server_stop(&s);
    assert_int_equal(s.handshakes, 0);
    server_free(&s);
}

static void test_tls_unknown_ca(void **state)
{
    (void)state;
    expect_verify_failure(pki.unknown, pki.ca_path, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    /* Trusting only another CA refuses the good certificate too. */
    expect_verify_failure(pki.good, pki.other_path, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

static void test_tls_expired(void **state)
{
    (void)state;
    expect_verify_failure(pki.expired, pki.ca_path, X509_V_ERR_CERT_HAS_EXPIRED);
}

static void test_tls_wildcard_never_matches_ip(void **state)
{
    (void)state;
    struct server s = {.tls = server_ctx(pki.wildcard, 0)};
    pg_tls_opts o = opts_for("127.0.0.1");
    char err[512];
    assert_int_equal(tls_attempt(&s, &o, NULL, err, sizeof err), PIGEON_ERR_TLS);
    assert_non_null(strstr(err, X509_verify_cert_error_string(X509_V_ERR_IP_ADDRESS_MISMATCH)));
    server_free(&s);
    /* Control: the same certificate is valid for a DNS name under the wildcard. */
    struct server s2 = {.tls = server_ctx(pki.wildcard, 0)};
    o = opts_for("mx.0.0.1");
    pg_conn *c = NULL;
    assert_int_equal(tls_attempt(&s2, &o, &c, err, sizeof err), PIGEON_OK);
    write_and_check(c, &s2, 10);
    server_free(&s2);
}

static void test_tls_old_server(void **state)
{
    (void)state;
    /* A TLS 1.0-only server; the diagnostic probe needs a second connection. */
    struct server s = {.tls = server_ctx(pki.good, TLS1_VERSION), .conns = 2};
    pg_tls_opts o = opts_for("localhost");
    char err[512];
    assert_int_equal(tls_attempt(&s, &o, NULL, err, sizeof err), PIGEON_ERR_TLS);
    assert_string_equal(err, "server only offers TLS 1.0; TLS 1.2 or later is required");
    server_free(&s);
}

static void test_tls_min_version_13(void **state)
{
    (void)state;
    struct server s = {.tls = server_ctx(pki.good, TLS1_2_VERSION), .conns = 2};
    pg_tls_opts o = opts_for("localhost");
    o.min_version = TLS1_3_VERSION;
    char err[512];
    assert_int_equal(tls_attempt(&s, &o, NULL, err, sizeof err), PIGEON_ERR_TLS);
    assert_string_equal(err, "server only offers TLS 1.2; TLS 1.3 or later is required");
    server_free(&s);
    /* And a 1.2 server is fine with the default floor. */
    struct server s2 = {.tls = server_ctx(pki.good, TLS1_2_VERSION)};
    o.min_version = 0;
    pg_conn *c = NULL;
    assert_int_equal(tls_attempt(&s2, &o, &c, err, sizeof err), PIGEON_OK);
    assert_string_equal(pg_conn_tls_info(c)->version, "TLSv1.2");
    write_and_check(c, &s2, 10);
    server_free(&s2);
}

static void test_tls_fingerprint(void **state)
{
    (void)state;
    char fp[128];
    char err[512];
    pg_conn *c = NULL;
    cert_fingerprint(pki.good, fp, sizeof fp, 0, 0); /* lower case, no colons */
    struct server s = {.tls = server_ctx(pki.good, 0)};
    pg_tls_opts o = opts_for("localhost");
    o.fingerprint = fp;
    assert_int_equal(tls_attempt(&s, &o, &c, err, sizeof err), PIGEON_OK);
    write_and_check(c, &s, 10);
    server_free(&s);

    fp[0] = fp[0] == '0' ? '1' : '0';
    struct server s2 = {.tls = server_ctx(pki.good, 0)};
    assert_int_equal(tls_attempt(&s2, &o, NULL, err, sizeof err), PIGEON_ERR_TLS);
    assert_non_null(strstr(err, "fingerprint mismatch"));
    server_free(&s2);

    o.fingerprint = "AB:CD";
    struct server s3 = {.tls = server_ctx(pki.good, 0)};
    assert_int_equal(tls_attempt(&s3, &o, NULL, err, sizeof err), PIGEON_ERR_CONFIG);
    server_free(&s3);
}

static void test_tls_insecure(void **state)
{
    (void)state;
    char err[512];
    pg_conn *c = NULL;
    struct server s = {.tls = server_ctx(pki.unknown, 0)};
    pg_tls_opts o = opts_for("wrong.name.test");
    o.insecure = 1;
    assert_int_equal(tls_attempt(&s, &o, &c, err, sizeof err), PIGEON_OK);
    /* The chain was still evaluated, so the user can be told what was skipped. */
    assert_int_equal(pg_conn_tls_info(c)->verify_result,
                     X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    write_and_check(c, &s, 10);
    server_free(&s);

    /* Insecure still honours a pinned fingerprint. */
    char fp[128];
    cert_fingerprint(pki.good, fp, sizeof fp, 1, 0); /* the wrong certificate's */
    o.fingerprint = fp;
    struct server s2 = {.tls = server_ctx(pki.unknown, 0)};
    assert_int_equal(tls_attempt(&s2, &o, NULL, err, sizeof err), PIGEON_ERR_TLS);
    assert_non_null(strstr(err, "fingerprint mismatch"));
    server_free(&s2);
}

static void test_tls_against_plaintext_greeting(void **state)
{
    (void)state;
    struct server s = {.send = "220 hi\r\n", .send_len = 8, .after = AFTER_IDLE};
    pg_tls_opts o = opts_for("localhost");
    char err[512];
    server_start(&s);
    pg_conn *c = open_local(&s);
    assert_int_equal(pg_conn_starttls(c, &o, in_ms(LONG_MS)), PIGEON_ERR_TLS);
    snprintf(err, sizeof err, "%s", pg_conn_error(c));
    assert_non_null(strstr(err, "server does not speak TLS on this port: it sent an SMTP "
                                "greeting (\"220 hi\")"));
    assert_non_null(strstr(err, "use --tls starttls (or port 465 for implicit TLS)"));
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_tls_after_buffered_greeting(void **state)
{
    (void)state;
    /* The greeting already read into our buffer (a peek) gives the same diagnosis. */
    struct server s = {.send = "220 hi\r\n", .send_len = 8, .after = AFTER_IDLE};
    pg_tls_opts o = opts_for("localhost");
    server_start(&s);
    pg_conn *c = open_local(&s);
    int is_tls = 1;
    assert_int_equal(pg_conn_detect_tls_record(c, in_ms(LONG_MS), &is_tls), PIGEON_OK);
    assert_int_equal(pg_conn_starttls(c, &o, in_ms(LONG_MS)), PIGEON_ERR_TLS);
    assert_non_null(strstr(pg_conn_error(c), "SMTP greeting (\"220 hi\")"));
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_starttls_refuses_injected_plaintext(void **state)
{
    (void)state;
    /* RFC 3207 5 / CVE-2011-0411: bytes after the 220 go-ahead must not survive into TLS. */
    static const char script[] = "220 go ahead\r\n250 injected\r\n";
    struct server s = {.send = script, .send_len = sizeof script - 1, .after = AFTER_IDLE};
    pg_tls_opts o = opts_for("localhost");
    server_start(&s);
    pg_conn *c = open_local(&s);
    char line[64];
    size_t len = 0;
    assert_int_equal(pg_conn_write(c, "STARTTLS\r\n", 10, in_ms(LONG_MS)), PIGEON_OK);
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)), PIGEON_OK);
    /* Wait until the injected line is buffered too. */
    char peek[4];
    size_t n = 0;
    assert_int_equal(pg_conn_peek(c, peek, sizeof peek, &n, in_ms(LONG_MS)), PIGEON_OK);
    assert_true(pg_conn_pending(c) > 0);
    assert_int_equal(pg_conn_starttls(c, &o, in_ms(LONG_MS)), PIGEON_ERR_PROTOCOL);
    assert_non_null(strstr(pg_conn_error(c), "RFC 3207"));
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_tls_bad_options(void **state)
{
    (void)state;
    struct server s = {.after = AFTER_IDLE};
    server_start(&s);
    pg_conn *c = open_local(&s);
    pg_tls_opts o = opts_for("");
    assert_int_equal(pg_conn_starttls(c, &o, in_ms(LONG_MS)), PIGEON_ERR_INVALID);
    o.server_name = NULL;
    assert_int_equal(pg_conn_starttls(c, &o, in_ms(LONG_MS)), PIGEON_ERR_INVALID);
    o = opts_for("localhost");
    o.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(pg_conn_starttls(c, &o, in_ms(LONG_MS)), PIGEON_ERR_CONFIG);
    assert_non_null(strstr(pg_conn_error(c), "/nonexistent/ca.pem"));
    assert_int_equal(ERR_peek_error(), 0); /* nothing left in OpenSSL's error queue */
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_tls_handshake_timeout(void **state)
{
    (void)state;
    /* A plaintext server that never answers the ClientHello. */
    struct server s = {.after = AFTER_IDLE};
    pg_tls_opts o = opts_for("localhost");
    server_start(&s);
    pg_conn *c = open_local(&s);
    assert_int_equal(pg_conn_starttls(c, &o, in_ms(SHORT_MS)), PIGEON_ERR_TIMEOUT);
    assert_non_null(strstr(pg_conn_error(c), "timed out"));
    assert_int_equal(ERR_peek_error(), 0);
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

static void test_tls_read_timeout_and_eof(void **state)
{
    (void)state;
    struct server s = {.tls = server_ctx(pki.good, 0), .after = AFTER_READ};
    pg_tls_opts o = opts_for("localhost");
    pg_conn *c = NULL;
    char err[512], line[64];
    size_t len = 0;
    assert_int_equal(tls_attempt(&s, &o, &c, err, sizeof err), PIGEON_OK);
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(SHORT_MS)),
                     PIGEON_ERR_TIMEOUT);
    assert_int_equal(pg_conn_write(c, "QUIT\r\n", 6, in_ms(LONG_MS)), PIGEON_OK);
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)), PIGEON_OK);
    assert_string_equal(line, "221 6\r\n");
    /* The server then closes (close_notify): EOF is a network error for a reader. */
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)),
                     PIGEON_ERR_NETWORK);
    assert_non_null(strstr(pg_conn_error(c), "closed"));
    /* And writing to it fails without SIGPIPE. */
    unsigned char *chunk = pattern(65536);
    pigeon_err rc = PIGEON_OK;
    for (int i = 0; i < 200 && rc == PIGEON_OK; i++)
        rc = pg_conn_write(c, chunk, 65536, in_ms(LONG_MS));
    assert_int_equal(rc, PIGEON_ERR_NETWORK);
    free(chunk);
    pg_conn_close(c);
    server_stop(&s);
    server_free(&s);
}

/* STARTTLS on the same connection: plaintext first, then TLS (RFC 3207 4). */
static pigeon_err starttls_attempt(struct server *s, const pg_tls_opts *o, pg_conn **out)
{
    char line[64];
    size_t len = 0;
    s->starttls = 1;
    server_start(s);
    pg_conn *c = open_local(s);
    assert_int_equal(pg_conn_write(c, "STARTTLS\r\n", 10, in_ms(LONG_MS)), PIGEON_OK);
    assert_int_equal(pg_conn_read_line(c, line, sizeof line, &len, in_ms(LONG_MS)), PIGEON_OK);
    assert_string_equal(line, "220 2.0.0 go ahead\r\n");
    assert_int_equal(pg_conn_pending(c), 0);
    *out = c;
    return pg_conn_starttls(c, o, in_ms(LONG_MS));
}

static void test_starttls_upgrade(void **state)
{
    (void)state;
    struct server s = {.tls = server_ctx(pki.good, 0)};
    pg_tls_opts o = opts_for("localhost");
    pg_conn *c = NULL;
    assert_int_equal(starttls_attempt(&s, &o, &c), PIGEON_OK);
    assert_int_equal(pg_conn_is_tls(c), 1);
    assert_int_equal(pg_conn_starttls(c, &o, in_ms(LONG_MS)), PIGEON_ERR_STATE);
    write_and_check(c, &s, 5000);
    assert_string_equal(s.sni, "localhost");
    server_free(&s);
}

static void test_starttls_old_server(void **state)
{
    (void)state;
    /* After STARTTLS no probe is possible: the message says "older" without naming it. */
    struct server s = {.tls = server_ctx(pki.good, TLS1_VERSION), .conns = 2};
    pg_tls_opts o = opts_for("localhost");
    pg_conn *c = NULL;
    assert_int_equal(starttls_attempt(&s, &o, &c), PIGEON_ERR_TLS);
    assert_non_null(strstr(pg_conn_error(c), "protocol_version"));
    assert_non_null(strstr(pg_conn_error(c), "TLS 1.2 or later is required"));
    pg_conn_close(c);
    server_stop(&s);
    assert_int_equal(s.accepted, 1);
    server_free(&s);
}

/* A listener with a full backlog leaves a connect pending (SYNs dropped), if the TCP stack
 * behaves that way; the test is skipped where it does not. */
static void test_connect_timeout(void **state)
{
    (void)state;
    uint16_t port = 0;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sin;
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sl), 0);
    assert_int_equal(listen(lfd, 0), 0);
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    port = ntohs(sin.sin_port);
    int fillers[4], pending = 0;
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&sin, sl);
        struct pollfd p = {.fd = fillers[i], .events = POLLOUT};
        if (poll(&p, 1, 100) == 0)
            pending = 1;
    }
    if (pending) {
        pg_conn *c = NULL;
        char err[256];
        assert_int_equal(pg_conn_open(&c, "127.0.0.1", port, SHORT_MS, in_ms(LONG_MS), NULL, NULL,
                                      err, sizeof err),
                         PIGEON_ERR_TIMEOUT);
        assert_non_null(strstr(err, "127.0.0.1: timed out"));
        /* No per-attempt timeout: the overall deadline bounds it. */
        assert_int_equal(
            pg_conn_open(&c, "127.0.0.1", port, 0, in_ms(SHORT_MS), NULL, NULL, err, sizeof err),
            PIGEON_ERR_TIMEOUT);
        assert_null(c);
    }
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(lfd);
    if (!pending)
        skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_lines),
        cmocka_unit_test(test_stall_times_out),
        cmocka_unit_test(test_line_bounds),
        cmocka_unit_test(test_line_without_end_too_long),
        cmocka_unit_test(test_eof),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_bad_arguments_and_resolution),
        cmocka_unit_test(test_second_address),
        cmocka_unit_test(test_trace_and_bracketed_literal),
        cmocka_unit_test(test_write_all),
        cmocka_unit_test(test_write_times_out),
        cmocka_unit_test(test_write_to_closed_peer),
        cmocka_unit_test(test_peek_and_detect_greeting),
        cmocka_unit_test(test_detect_tls_record),
        cmocka_unit_test(test_detect_times_out),
        cmocka_unit_test(test_tls_good),
        cmocka_unit_test(test_tls_ip_literal),
        cmocka_unit_test(test_tls_wrong_host),
        cmocka_unit_test(test_tls_unknown_ca),
        cmocka_unit_test(test_tls_expired),
        cmocka_unit_test(test_tls_wildcard_never_matches_ip),
        cmocka_unit_test(test_tls_old_server),
        cmocka_unit_test(test_tls_min_version_13),
        cmocka_unit_test(test_tls_fingerprint),
        cmocka_unit_test(test_tls_insecure),
        cmocka_unit_test(test_tls_against_plaintext_greeting),
        cmocka_unit_test(test_tls_after_buffered_greeting),
        cmocka_unit_test(test_starttls_refuses_injected_plaintext),
        cmocka_unit_test(test_tls_bad_options),
        cmocka_unit_test(test_tls_handshake_timeout),
        cmocka_unit_test(test_tls_read_timeout_and_eof),
        cmocka_unit_test(test_starttls_upgrade),
        cmocka_unit_test(test_starttls_old_server),
        cmocka_unit_test(test_connect_timeout),
    };
    return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
