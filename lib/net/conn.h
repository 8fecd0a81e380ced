/*
 * conn.h - a network connection to an SMTP server, plaintext or TLS (internal).
 *
 * The one narrow interface between the SMTP engine and sockets/OpenSSL (see STYLE.md:
 * "Sockets and TLS sit behind one narrow internal interface"). Implemented by
 * lib/net/conn.c (resolution, connect with timeout, buffered I/O with deadlines) on top of
 * lib/net/tls_openssl.c (OpenSSL 3: verification, SNI, TLS >= 1.2, pinning) and
 * lib/net/wait.c (deadlines).
 *
 * Every call takes a deadline: an absolute CLOCK_MONOTONIC time in milliseconds
 * (pg_now_ms() + timeout, net/wait.h); 0 means no deadline. A passed deadline is PIGEON_ERR_TIMEOUT
 * (data already buffered is still returned). Errors fill the connection's error text
 * (pg_conn_error()) with one line of our own diagnosis.
 *
 * Thread safety: a pg_conn is used by one thread at a time; distinct connections are
 * independent. The library never touches signal dispositions: writes use MSG_NOSIGNAL
 * (SO_NOSIGPIPE where that is the mechanism), and TLS goes through a BIO that does too.
 * Name resolution (getaddrinfo) blocks and is not bounded by the deadline.
 */
#ifndef PG_CONN_H
#define PG_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "net/tls.h"
#include "net/wait.h"
#include "pigeon/error.h"

typedef struct pg_conn pg_conn;

/*
 * Resolves host (getaddrinfo, IPv6 and IPv4) and connects to each address in turn until one
 * answers, each attempt bounded by connect_timeout_ms and all by deadline. On success
 * *out is a plaintext connection. Failure is PIGEON_ERR_NETWORK (resolution, refused,
 * unreachable) or PIGEON_ERR_TIMEOUT (the deadline passed, or every address timed out),
 * with the reason in errmsg (errmsg may be NULL); PIGEON_ERR_INVALID for a NULL or empty
 * host or port 0, PIGEON_ERR_NOMEM. host may be a name, an IPv4 or an IPv6 literal (with or
 * without brackets). connect_timeout_ms <= 0 means only the deadline bounds each attempt.
 * The optional trace callback is told of each address tried and its outcome.
 */
typedef void (*pg_conn_trace_fn)(void *ctx, const char *line);
pigeon_err pg_conn_open(pg_conn **out, const char *host, uint16_t port, int connect_timeout_ms,
                        int64_t deadline, pg_conn_trace_fn trace, void *trace_ctx, char *errmsg,
                        size_t errlen);

/*
 * Starts TLS on the connection (implicit TLS right after open, or after STARTTLS's 220).
 * TLS 1.2 is the minimum (opts->min_version may only raise it); the chain is verified
 * against ca_file or the system store and the name against server_name (an IP literal is
 * matched against iPAddress subjectAltNames only, never a DNS name or wildcard; SNI is sent
 * for DNS names only, RFC 6066 3). No application data is sent when this fails.
 * Errors (reason in pg_conn_error()):
 *   PIGEON_ERR_INVALID  NULL argument or empty server_name
 *   PIGEON_ERR_CONFIG   unreadable ca_file or malformed fingerprint
 *   PIGEON_ERR_STATE    TLS already active
 *   PIGEON_ERR_PROTOCOL plaintext bytes were already buffered (sent after STARTTLS's 220,
 *                       RFC 3207 5 / CVE-2011-0411), unless they are an SMTP greeting (below)
 *   PIGEON_ERR_TIMEOUT  the deadline passed during the handshake
 *   PIGEON_ERR_TLS      handshake or verification failed. The reason names the cause:
 *                       the X509 verification error and host; "server does not speak TLS on
 *                       this port: it sent an SMTP greeting ("220 ...") ..." when the peer's
 *                       first bytes were a greeting instead of a TLS record; "server only
 *                       offers TLS 1.0; TLS 1.2 or later is required" (to learn the version
 *                       after a protocol_version refusal on an implicit-TLS connection, one
 *                       short diagnostic handshake is made on a second connection to the
 *                       same address; after STARTTLS the message says the version is older
 *                       without naming it); certificate fingerprint mismatch.
 * After a failed handshake in which the server presented a certificate, pg_conn_tls_info()
 * returns its details (for diagnostics) although pg_conn_is_tls() stays 0. A connection
 * whose handshake failed is of no further use: close it.
 */
pigeon_err pg_conn_starttls(pg_conn *c, const pg_tls_opts *opts, int64_t deadline);

/* Nonzero once TLS is up. */
int pg_conn_is_tls(const pg_conn *c);
/* The handshake's details; NULL before any handshake, and after a failed one in which no
 * certificate was received. Owned by the connection, valid until pg_conn_close(). */
const pg_tls_info *pg_conn_tls_info(const pg_conn *c);

/* Reads one line (up to and including LF) into line (NUL-terminated, CRLF kept). A line
 * longer than cap-1 bytes (or than the 16 KiB read buffer) is PIGEON_ERR_PROTOCOL ("reply
 * line too long"); EOF before LF is PIGEON_ERR_NETWORK ("connection closed by server").
 * *len gets the line length (0 on error). PIGEON_ERR_INVALID if cap < 2. A line may contain
 * NUL bytes: use *len, not strlen. */
pigeon_err pg_conn_read_line(pg_conn *c, char *line, size_t cap, size_t *len, int64_t deadline);

/* Reads up to cap bytes (at least one: the buffered ones first, else waits for more),
 * for protocols that frame data by counts (IMAP literals, RFC 9051 4.3; HTTP bodies) or
 * need lines longer than the read buffer. *got gets the count. EOF is PIGEON_ERR_NETWORK
 * ("connection closed by server"); the deadline PIGEON_ERR_TIMEOUT; PIGEON_ERR_INVALID for
 * cap 0. */
pigeon_err pg_conn_read(pg_conn *c, void *buf, size_t cap, size_t *got, int64_t deadline);

/* Number of bytes received but not yet consumed by read_line: buffered here, decrypted
 * by TLS, and (plaintext only) waiting in the kernel. Used to detect data sent after the
 * STARTTLS 220 (RFC 3207 5; CVE-2011-0411) and replies sent before their command. */
size_t pg_conn_pending(const pg_conn *c);

/* Peeks at the first bytes the server sends without consuming them (for wrong-mode
 * detection on implicit-TLS ports). Waits until at least 1 byte or the deadline; copies up
 * to cap of the bytes buffered. EOF is PIGEON_ERR_NETWORK, the deadline PIGEON_ERR_TIMEOUT. */
pigeon_err pg_conn_peek(pg_conn *c, void *buf, size_t cap, size_t *n, int64_t deadline);

/*
 * Tells whether the first bytes received on a plaintext connection are a TLS record
 * (content type 0x15 alert or 0x16 handshake, then version major 0x03) instead of an SMTP
 * greeting, without consuming them: *is_tls is 1 if so (and pg_conn_error() then says
 * "this port speaks implicit TLS; use --tls implicit"), else 0 and a following read_line
 * gets the greeting. Waits like pg_conn_peek and returns its errors.
 * Note: an implicit-TLS server normally sends nothing until it gets a ClientHello, so the
 * usual symptom of the wrong mode is a greeting timeout; this catches servers that do
 * speak first (an alert, for instance) and lets the caller turn a timeout into a hint.
 */
pigeon_err pg_conn_detect_tls_record(pg_conn *c, int64_t deadline, int *is_tls);

/* Writes all n bytes (through TLS when on). Never raises SIGPIPE: a closed peer is
 * PIGEON_ERR_NETWORK; the deadline passing first is PIGEON_ERR_TIMEOUT (part of the data
 * may have been sent). */
pigeon_err pg_conn_write(pg_conn *c, const void *data, size_t n, int64_t deadline);

/* Closes (TLS close_notify best effort, without waiting) and frees. NULL is a no-op. */
void pg_conn_close(pg_conn *c);

/* The last error's one-line reason (ours). Owned by the connection. */
const char *pg_conn_error(const pg_conn *c);

/* The numeric address of the peer actually connected ("127.0.0.1", "::1"). Never NULL. */
const char *pg_conn_peer(const pg_conn *c);

#endif
