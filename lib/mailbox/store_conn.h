/*
 * store_conn.h - the connection under the IMAP and POP3 clients (internal).
 *
 * Opens the TCP connection (net/conn.h), runs TLS with the options' verification,
 * keeps its own input buffer so that lines may be longer than the net layer's 16 KiB
 * (an IMAP SEARCH answer with thousands of UIDs is one line) and literals can be read by
 * count, and writes the masked transcript. Every read and write is bounded by the
 * deadline armed for the current command.
 */
#ifndef PG_STORE_CONN_H
#define PG_STORE_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "net/conn.h"
#include "pigeon/mailbox.h"
#include "util/buf.h"

#define PG_STORE_INBUF 16384

typedef struct pg_store_conn {
    pg_conn *conn;                    /* the connection, NULL before open */
    pigeon_store_opts o;              /* the options (strings borrowed) */
    int64_t deadline;                 /* the current command's deadline */
    size_t in_start;                  /* first unread byte of in */
    size_t in_end;                    /* end of the received bytes in in */
    char err[600];                    /* the last failure's reason */
    unsigned char in[PG_STORE_INBUF]; /* received bytes not yet consumed */
} pg_store_conn;

/* Connects to o->host:port (port 0: default_port) and, for implicit TLS, runs the
 * handshake. *implicit is set to whether TLS is already up. */
pigeon_err pg_store_open(pg_store_conn *s, const pigeon_store_opts *o, uint16_t default_port,
                         int *implicit);

/* Starts TLS now (after the server's go-ahead to STARTTLS / STLS). Bytes already buffered
 * are refused (RFC 2595 / RFC 3207 5 command injection). */
pigeon_err pg_store_starttls(pg_store_conn *s);

/* Arms the deadline of the next exchange: now + the command timeout (+ extra_ms). */
void pg_store_arm(pg_store_conn *s, int64_t extra_ms);

/* Appends the next line, CRLF included, to out; a line over max bytes is
 * PIGEON_ERR_PROTOCOL. */
pigeon_err pg_store_read_line(pg_store_conn *s, pg_buf *out, size_t max);

/* Reads exactly n bytes, handing them to fn in chunks (fn nonzero: PIGEON_ERR_IO). */
pigeon_err pg_store_read_n(pg_store_conn *s, uint64_t n,
                           int (*fn)(void *ctx, const void *data, size_t len), void *ctx);

/* Writes all n bytes. */
pigeon_err pg_store_write(pg_store_conn *s, const void *data, size_t n);

/* A transcript line (printf-style); control characters shown as '?'. */
void pg_store_trace(pg_store_conn *s, pigeon_transcript_dir dir, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the reason (printf-style) and returns err. */
pigeon_err pg_store_fail(pg_store_conn *s, pigeon_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Nonzero when TLS is up. */
int pg_store_is_tls(const pg_store_conn *s);

/* Closes the connection. */
void pg_store_close(pg_store_conn *s);

#endif
