/*
 * tls.h - the TLS backend behind pg_conn (internal; only lib/net/conn.c uses it).
 *
 * One backend, lib/net/tls_openssl.c (OpenSSL 3). The backend drives a session over a
 * connected non-blocking socket it does not own; conn.c keeps the socket, the read buffer
 * and the error text. Every call waits with pg_fd_wait() (net/wait.h) so that deadlines mean the
 * same thing with and without TLS.
 */
#ifndef PG_TLS_H
#define PG_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "net/wait.h"
#include "pigeon/error.h"

typedef struct pg_tls pg_tls;

/* TLS settings for a connection (borrowed strings). */
typedef struct pg_tls_opts {
    const char *server_name; /* host name to verify and send as SNI; required (non-empty) */
    const char *ca_file;     /* PEM bundle to trust instead of the system store, or NULL */
    const char *fingerprint; /* SHA-256 of the leaf certificate (DER), hex with or without
                                colons, case-insensitive; NULL for none. When set, it must
                                match in addition to normal verification (unless insecure) */
    int insecure;            /* nonzero: skip chain and host checks (fingerprint still
                                checked if given); the caller must warn loudly */
    int min_version;         /* 0 for TLS 1.2, or TLS1_3_VERSION to demand 1.3 */
} pg_tls_opts;

/* What the TLS handshake established (for pigeon check and transcripts). */
typedef struct pg_tls_info {
    char version[16];      /* "TLSv1.3" */
    char cipher[64];       /* "TLS_AES_256_GCM_SHA384" */
    char subject[256];     /* leaf certificate subject, one line (RFC 2253) */
    char issuer[256];      /* leaf certificate issuer */
    char sans[512];        /* subjectAltNames, comma-separated ("DNS:a, IP:1.2.3.4") */
    char not_after[32];    /* expiry, "2027-01-31T12:00:00Z" */
    char fingerprint[96];  /* SHA-256 of the leaf DER, colon-separated upper-case hex */
    long verify_result;    /* X509_V_OK (0) or the X509_V_ERR_* code */
    char verify_text[128]; /* X509_verify_cert_error_string or our pinning/host message */
} pg_tls_info;

/* What a handshake reports besides its error code (all fields are outputs). */
typedef struct pg_tls_result {
    pg_tls_info *info;   /* filled with what the handshake established or saw (caller's) */
    int info_valid;      /* nonzero when info holds the server certificate's details */
    int version_refused; /* nonzero when the server refused every protocol version offered */
    char *errmsg;        /* our one-line reason on failure (caller's buffer) */
    size_t errlen;       /* size of errmsg */
} pg_tls_result;

/* Runs the client handshake on fd and verifies the server (see pg_conn_starttls for the
 * rules and errors). On success *out is the session (free with pg_tls_close). */
pigeon_err pg_tls_handshake(pg_tls **out, int fd, const pg_tls_opts *opts, int64_t deadline,
                            pg_tls_result *res);

/* Reads up to cap decrypted bytes, waiting until at least one arrives. *got = 0 means the
 * peer closed (close_notify or a bare TCP close). PIGEON_ERR_TIMEOUT, PIGEON_ERR_NETWORK
 * (socket error) or PIGEON_ERR_TLS (a TLS-level failure) with the reason in errmsg. */
pigeon_err pg_tls_read(pg_tls *t, void *buf, size_t cap, size_t *got, int64_t deadline,
                       char *errmsg, size_t errlen);

/* Writes all n bytes; errors as for pg_tls_read. */
pigeon_err pg_tls_write(pg_tls *t, const void *data, size_t n, int64_t deadline, char *errmsg,
                        size_t errlen);

/* Decrypted bytes held inside the session, not yet returned by pg_tls_read. */
size_t pg_tls_pending(const pg_tls *t);

/* Sends close_notify if the socket takes it at once (no waiting) and frees the session.
 * The socket stays open. NULL is a no-op. */
void pg_tls_close(pg_tls *t);

/* Diagnosis after a refused protocol version: runs a handshake on fd (a fresh connection to
 * the same server) that accepts anything down to TLS 1.0, learns the version the server
 * picks and, if it is below the required one, rewrites errmsg as "server only offers
 * TLS 1.0; TLS 1.2 or later is required". Leaves errmsg alone if it learns nothing. */
void pg_tls_probe_version(int fd, const pg_tls_opts *opts, int64_t deadline, char *errmsg,
                          size_t errlen);

/* Writes the wrong-mode diagnosis for a peer whose first bytes p[0..n) are not a TLS record:
 * for an SMTP greeting, "server does not speak TLS on this port: it sent an SMTP greeting
 * ("220 ...") — this port expects STARTTLS, use --tls starttls (or port 465 for implicit
 * TLS)"; otherwise what it sent, made printable. */
void pg_tls_describe_plaintext(const unsigned char *p, size_t n, char *errmsg, size_t errlen);

/* Nonzero when dir holds at least one certificate under a c_rehash name (8 hex digits, a
 * dot, a digit) that is a regular file (links followed): the system store can then be looked
 * up lazily by hash instead of parsing the whole bundle. */
int pg_tls_dir_is_hashed(const char *dir);

#endif
