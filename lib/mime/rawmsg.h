/*
 * rawmsg.h - an existing RFC 5322 message as sendmail mode receives it (internal, pure).
 *
 * Three pieces, all working on memory and never doing I/O:
 *
 *   reader   splits a byte stream (fed in any chunking) into the header block, kept in
 *            memory, and the body, handed back chunk by chunk for the caller to store;
 *            every line ending (CRLF, LF, lone CR) becomes CRLF; optionally a line holding
 *            only "." ends the message (traditional sendmail without -i / -oi).
 *   parser   the header block (RFC 5322 2.2, 3.6): fields, unfolding (2.2.3), access by
 *            name, the recipients of To/Cc/Bcc (3.6.3) and the From mailbox (3.6.2).
 *   writer   the outgoing header block: the fields as they came minus every Bcc and
 *            Resent-Bcc field (continuation lines included), plus From, Date (3.3) and
 *            Message-ID (3.6.4) when missing, CRLF line endings, and the empty line
 *            before the body.
 *
 * Bounds: the header block is at most PG_RAWMSG_HEADER_MAX octets and
 * PG_RAWMSG_FIELDS_MAX fields; a header line longer than RFC 5322 2.1.1's 998 octets is
 * counted (long_lines) and folded by the writer at white space (2.2.3), or reported by
 * pg_rawmsg_unfoldable() when it has none. The body has no bound here: it never passes
 * through these functions' memory whole; the reader notes its first line over 998 octets
 * and its first NUL (nul_line, long_line) for the caller to refuse.
 *
 * Recipients (sendmail -t) come from To, Cc and Bcc only. Resent-To/Cc/Bcc are not used:
 * MTAs differ on them (Sendmail 8 ignores them for -t, Postfix prefers them when present),
 * and the clients sendmail mode serves (cron, git send-email, mutt, PHP mail()) never
 * write them.
 */
#ifndef PG_RAWMSG_H
#define PG_RAWMSG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"
#include "pigeon/address.h"
#include "pigeon/error.h"

/* Largest header block accepted (octets, CRLF line endings, without the empty line). */
#define PG_RAWMSG_HEADER_MAX ((size_t)1024 * 1024)
/* Most header fields accepted. */
#define PG_RAWMSG_FIELDS_MAX 1000
/* RFC 5322 2.1.1: a line is at most 998 octets without its CRLF. */
#define PG_RAWMSG_LINE_MAX 998

/* ---- reader: stream -> header block + body ---- */

typedef struct pg_rawmsg_reader {
    pg_buf header;     /* the header block so far, CRLF line endings, without the empty line */
    int in_body;       /* the header block ended: at the empty line, or at the first line
                          that is not a header line (as Postfix does: `echo hi | sendmail x`
                          sends a message whose body is "hi") */
    size_t line_start; /* where the current line starts in header */
    int dot_ends;      /* a line of "." alone ends the message (sendmail without -i) */
    int done;          /* that line was seen: the rest of the input is ignored */
    int pending_cr;    /* the last byte was a CR (already a line break): skip one LF */
    int dot_held;      /* the current line so far is "." alone and has not been passed on */
    size_t line_len;   /* octets on the current line so far (0: at the start of a line) */
    int has_8bit;      /* an octet >= 0x80 was read (the message needs BODY=8BITMIME) */
    int line_nul;      /* the current line holds a NUL */
    size_t lineno;     /* lines of the input ended so far */
    size_t nul_line;   /* the first body line (1-based, counted from the message's first
                          line) holding a NUL (RFC 5322 2.3 forbids it), or 0 */
    size_t long_line;  /* the first body line over PG_RAWMSG_LINE_MAX octets, or 0 */
} pg_rawmsg_reader;

/* Starts a reader. dot_ends: nonzero for traditional sendmail input (no -i). */
void pg_rawmsg_reader_init(pg_rawmsg_reader *r, int dot_ends);
/* Frees the header block. NULL is a no-op. */
void pg_rawmsg_reader_cleanup(pg_rawmsg_reader *r);
/*
 * Consumes n bytes. Header bytes go to r->header; body bytes (CRLF line endings) are
 * appended to body, which the caller drains (stores and pg_buf_reset()s) as it likes.
 * After r->done, input is ignored. Returns PIGEON_ERR_TOO_LARGE when the header block
 * passes PG_RAWMSG_HEADER_MAX, PIGEON_ERR_NOMEM.
 */
pigeon_err pg_rawmsg_reader_feed(pg_rawmsg_reader *r, const void *in, size_t n, pg_buf *body);
/* Ends the input: terminates an unterminated last line with CRLF (a "." alone on the
 * last line ends the message as if followed by a line break). Same errors. */
pigeon_err pg_rawmsg_reader_finish(pg_rawmsg_reader *r, pg_buf *body);

/* ---- parser: the header block ---- */

typedef struct pg_rawmsg_field {
    char *name;    /* the field name as written (without trailing white space), owned */
    char *value;   /* the unfolded value: line breaks removed, leading and trailing white
                      space trimmed, NUL-terminated, owned */
    size_t offset; /* where the field starts in the parsed block */
    size_t length; /* octets of the field there, continuation lines and line ends included */
    int long_line; /* one of its lines is over PG_RAWMSG_LINE_MAX octets */
} pg_rawmsg_field;

typedef struct pg_rawmsg {
    const char *base;        /* the parsed block (borrowed: must outlive the pg_rawmsg) */
    pg_rawmsg_field *fields; /* count fields in order, owned */
    size_t count;            /* number of fields */
    size_t cap;              /* fields allocated */
    size_t header_len;       /* octets of the fields (a skipped "From " line included) */
    size_t body_offset;      /* where the body starts in base (after the empty line), or the
                                block's length when it has no empty line */
    int has_separator;       /* the empty line between header and body was present */
    int mbox_from_line;      /* a leading mbox "From " line was skipped (Sendmail and
                                Postfix drop it too; git format-patch writes one) */
    size_t long_lines;       /* lines over PG_RAWMSG_LINE_MAX octets */
} pg_rawmsg;

/*
 * Parses the header block at the start of in[0..len): fields up to the first empty line,
 * or the whole input when there is none (a message of headers only is valid). LF or CRLF
 * line endings. On success *m must be released with pg_rawmsg_cleanup(). err/errlen
 * (may be NULL/0) receive a one-line reason naming the line. Errors:
 * PIGEON_ERR_HEADER (NUL or a lone CR in the header block, a line that is neither a field
 * "Name: value" nor a continuation, a continuation line before any field, an invalid
 * field name), PIGEON_ERR_TOO_LARGE (block over PG_RAWMSG_HEADER_MAX or more than
 * PG_RAWMSG_FIELDS_MAX fields), PIGEON_ERR_NOMEM.
 */
pigeon_err pg_rawmsg_parse(pg_rawmsg *m, const char *in, size_t len, char *err, size_t errlen);
/* Frees what m owns and zeroes it. NULL is a no-op. */
void pg_rawmsg_cleanup(pg_rawmsg *m);

/* Number of fields called name (case-insensitive, RFC 5322 1.2.2). */
size_t pg_rawmsg_count(const pg_rawmsg *m, const char *name);
/* The nth (from 0) field called name, or NULL. Borrowed from m. */
const pg_rawmsg_field *pg_rawmsg_find(const pg_rawmsg *m, const char *name, size_t nth);

/*
 * Appends to out the mailboxes of every To, Cc and Bcc field, in order (groups are
 * expanded, empty groups kept as such; empty fields skipped). Values are read with
 * pigeon_address_list_parse() after unfolding (tabs read as spaces), which decodes RFC 2047
 * encoded-words in display names only after the list is split, so an encoded comma cannot
 * split a name. out must be initialized (zeroed). Returns PIGEON_ERR_ADDRESS with
 * "Field: reason" in err, PIGEON_ERR_NOMEM.
 */
pigeon_err pg_rawmsg_recipients(const pg_rawmsg *m, pigeon_address_list *out, char *err,
                                size_t errlen);

/*
 * The first mailbox of the first From field. Returns PIGEON_ERR_NOTFOUND when there is
 * no From field, PIGEON_ERR_ADDRESS when it does not parse (reason in err),
 * PIGEON_ERR_NOMEM. On success *out is released with pigeon_mailbox_cleanup().
 */
pigeon_err pg_rawmsg_from(const pg_rawmsg *m, pigeon_mailbox *out, char *err, size_t errlen);

/* ---- writer: the outgoing header block ---- */

typedef struct pg_rawmsg_out_opts {
    const pigeon_mailbox *from; /* written as From when the message has none; NULL: none */
    time_t date;                /* written as Date when the message has none */
    int utc_offset;             /* minutes east of UTC for that Date (-1439..1439): the
                                   caller's local zone, as the library does not read TZ */
    const char *msgid_domain;   /* right side of a Message-ID added when missing; NULL: the
                                   domain of the message's From, else of from */
} pg_rawmsg_out_opts;

/* The first field (Bcc and Resent-Bcc aside) with a line over PG_RAWMSG_LINE_MAX octets
 * that has no white space to fold it at, or NULL when the writer can fold them all. */
const pg_rawmsg_field *pg_rawmsg_unfoldable(const pg_rawmsg *m);

/*
 * Appends the outgoing header block and the empty line: every field of m but Bcc and
 * Resent-Bcc, byte for byte except line endings (CRLF) and the folding of lines over
 * PG_RAWMSG_LINE_MAX octets at white space, then "From:" (o->from), "Date:" and
 * "Message-ID: <random@domain>" (128+ bits from the CSPRNG) for those that are missing.
 * The body (from m->body_offset, or the reader's body) follows unchanged.
 * Returns PIGEON_ERR_HEADER when a long line cannot be folded, when From is missing and o->from is
 * NULL or when no domain is known for a Message-ID, errors of pg_mailbox_format() for o->from,
 * PIGEON_ERR_INVALID for a bad utc_offset or date, PIGEON_ERR_IO if the CSPRNG fails,
 * PIGEON_ERR_NOMEM.
 */
pigeon_err pg_rawmsg_write_header(const pg_rawmsg *m, const pg_rawmsg_out_opts *o, pg_buf *out);

#endif
