/*
 * canon.h - DKIM canonicalization (RFC 6376 3.4): pure cores on (buf, len).
 *
 * The body canonicalizer is a streaming state machine: feed chunks of any size (a CRLF may
 * be split across two), and it hands the canonical bytes to an output callback, holding back
 * only a count of empty lines and one pending white-space run, so a 200 MB body needs no
 * more memory than a 2 KB one.
 */
#ifndef PIGEON_DKIM_CANON_H
#define PIGEON_DKIM_CANON_H

#include <stddef.h>

#include "pigeon/dkim.h"
#include "util/buf.h"

/* Receives canonical body bytes. */
typedef void (*pg_dkim_sink)(void *ctx, const void *buf, size_t len);

/* The body canonicalizer's state. */
typedef struct pg_dkim_body {
    pigeon_dkim_canon canon; /* simple or relaxed */
    pg_dkim_sink sink;       /* where canonical bytes go */
    void *sink_ctx;          /* for sink */
    size_t empty_lines;      /* line breaks seen but not yet written (maybe trailing) */
    int pending_wsp;         /* relaxed: a white-space run not yet written (maybe trailing) */
    int saw_cr;              /* the last byte was a CR: an LF right after it is the same break */
    int line_open;           /* the current line has content (simple: any byte; relaxed: non-WSP
                                or a pending run) */
    int wrote;               /* any content has been written */
    unsigned char out[4096]; /* bytes on their way to sink */
    size_t out_len;          /* used bytes of out */
} pg_dkim_body;

void pg_dkim_body_init(pg_dkim_body *b, pigeon_dkim_canon canon, pg_dkim_sink sink, void *ctx);
/* Consumes len bytes. */
void pg_dkim_body_feed(pg_dkim_body *b, const void *buf, size_t len);
/* Ends the body (3.4.3: at least one CRLF for simple; 3.4.4: nothing for an empty body with
 * relaxed, and a final CRLF otherwise) and flushes. */
void pg_dkim_body_finish(pg_dkim_body *b);

/* One header field of a block: where it is and its name. */
typedef struct pg_dkim_field {
    const char *raw; /* the field from its name to its last line, without the final CRLF */
    size_t raw_len;  /* its length */
    size_t name_len; /* length of the name (before ':' and any white space) */
    int used;        /* already selected for h= (a name listed twice takes the next one up) */
} pg_dkim_field;

/* Splits a CRLF header block (no empty line) into at most max fields, in order; a line
 * that starts with white space continues the previous field; a line without ':' counts as
 * a field with no name that no h= entry selects. Returns the number found, or max + 1 when
 * there are more. */
size_t pg_dkim_fields_split(const char *block, size_t len, pg_dkim_field *out, size_t max);

/* Appends field (name ':' value, unfolded raw bytes) canonicalized: simple as is; relaxed
 * (3.4.2) lower-case name, unfolded, white-space runs as one SP, none around ':' or at the
 * end. crlf: append CRLF (every field but the DKIM-Signature being made). */
void pg_dkim_header_canon(pg_buf *out, pigeon_dkim_canon canon, const char *raw, size_t len,
                          int crlf);

#endif
