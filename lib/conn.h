/*
 * conn.h - a network connection to an SMTP server, plaintext or TLS (internal).
 *
 * The one narrow interface between the SMTP engine and sockets/OpenSSL (see STYLE.md:
 * "Sockets and TLS sit behind one narrow internal interface"). Implemented by
 * lib/conn.c (resolution, connect with timeout, buffered I/O with deadlines) and
 * lib/tls_openssl.c (OpenSSL 3: verification, SNI, TLS >= 1.2, pinning).
 *
 * Every call takes a deadline: an absolute CLOCK_MONOTONIC time in milliseconds
 * (pg_now_ms() + timeout); 0 means no deadline. A passed deadline is PIGEON_ERR_TIMEOUT.
 * Errors fill conn->errmsg with one line of our own diagnosis.
 */
#ifndef PG_CONN_H
#define PG_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/error.h"

typedef struct pg_conn pg_conn;

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

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t pg_now_ms(void);

/*
 * Resolves host (getaddrinfo, IPv6 and IPv4) and connects to each address in turn until one
 * answers, each attempt bounded by connect_timeout_ms and all by deadline. On success
 * *out is a plaintext connection. Failure is PIGEON_ERR_NETWORK (resolution, refused,
 * unreachable) or PIGEON_ERR_TIMEOUT, with the reason in errmsg (errmsg may be NULL).
 * The optional trace callback is told of each address tried and its outcome.
 */
typedef void (*pg_conn_trace_fn)(void *ctx, const char *line);
pigeon_err pg_conn_open(pg_conn **out, const char *host, uint16_t port, int connect_timeout_ms,
                        int64_t deadline, pg_conn_trace_fn trace, void *trace_ctx,
                        char *errmsg, size_t errlen);

/* Starts TLS on the connection (implicit TLS right after open, or after STARTTLS's 220).
 * Fails with PIGEON_ERR_TLS if the handshake or verification fails, and does not send
 * application data in that case. If the peer's first bytes look like an SMTP greeting
 * ("220 ") instead of a TLS record, the error says so (wrong TLS mode for the port). */
pigeon_err pg_conn_starttls(pg_conn *c, const pg_tls_opts *opts, int64_t deadline);

/* Nonzero once TLS is up. */
int pg_conn_is_tls(const pg_conn *c);
/* The handshake's details; NULL before TLS. Owned by the connection. */
const pg_tls_info *pg_conn_tls_info(const pg_conn *c);

/* Reads one line (up to and including LF) into line (NUL-terminated, CRLF kept). A line
 * longer than cap-1 bytes is PIGEON_ERR_PROTOCOL ("reply line too long"); EOF before LF is
 * PIGEON_ERR_NETWORK ("connection closed by server"). *len gets the line length. */
pigeon_err pg_conn_read_line(pg_conn *c, char *line, size_t cap, size_t *len, int64_t deadline);

/* Number of bytes already received and buffered but not yet consumed by read_line.
 * Used to detect data sent after the STARTTLS 220 (RFC 3207 5; CVE-2011-0411). */
size_t pg_conn_pending(const pg_conn *c);

/* Peeks at the first bytes the server sends without consuming them (for wrong-mode
 * detection on implicit-TLS ports). Waits until at least 1 byte or the deadline. */
pigeon_err pg_conn_peek(pg_conn *c, void *buf, size_t cap, size_t *n, int64_t deadline);

/* Writes all n bytes (buffered through TLS when on). */
pigeon_err pg_conn_write(pg_conn *c, const void *data, size_t n, int64_t deadline);

/* Closes (TLS close_notify best effort) and frees. NULL is a no-op. */
void pg_conn_close(pg_conn *c);

/* The last error's one-line reason (ours). Owned by the connection. */
const char *pg_conn_error(const pg_conn *c);

/* The numeric address of the peer actually connected ("127.0.0.1", "::1"). */
const char *pg_conn_peer(const pg_conn *c);

#endif
