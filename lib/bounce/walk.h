/*
 * walk.h - a lenient, bounded MIME walker for bounces (internal, pure).
 *
 * RFC 2046 5.1 multiparts are split at their boundary delimiter lines; each leaf part is
 * handed to a callback with its media type, charset and raw body, and decoded on request
 * (RFC 2045 6.7 quoted-printable, 6.8 base64, leniently: bad input is decoded as far as it
 * goes) and transcoded to UTF-8 with iconv (GB2312 and GBK read as GB18030, their
 * superset). A multipart without a boundary, or whose boundary never appears, is a leaf of
 * type text/plain. message/rfc822 parts are leaves: a bounce's interest in them is their
 * header. Nesting deeper than max_depth and parts beyond max_parts are skipped and
 * reported as truncation.
 */
#ifndef PG_BOUNCE_WALK_H
#define PG_BOUNCE_WALK_H

#include <stddef.h>

#include "util/buf.h"

/* Content-Transfer-Encoding of a part. */
typedef enum pg_bwalk_cte {
    PG_BWALK_IDENTITY = 0, /* 7bit, 8bit, binary or unknown */
    PG_BWALK_BASE64 = 1,   /* RFC 2045 6.8 */
    PG_BWALK_QP = 2,       /* RFC 2045 6.7 */
} pg_bwalk_cte;

typedef struct pg_bwalk_part {
    char type[80];      /* the media type, lower case ("message/delivery-status") */
    char charset[40];   /* the charset parameter, lower case, or "" */
    char report[40];    /* the report-type parameter of the enclosing multipart/report */
    const char *header; /* the part's header block (borrowed) */
    size_t header_len;  /* its length */
    const char *body;   /* the part's raw body (borrowed) */
    size_t body_len;    /* its length */
    pg_bwalk_cte cte;   /* how the body is encoded */
    unsigned depth;     /* nesting level: 0 for the message itself */
    size_t index;       /* the part's number in walk order, from 0 */
} pg_bwalk_part;

/* Called for every leaf part in order; ctx is the walker's caller's. */
typedef void (*pg_bwalk_fn)(void *ctx, const pg_bwalk_part *part);

/* Walks the message in[0..len). Returns 1 when a bound was hit (part of the message was
 * skipped), else 0. */
int pg_bwalk(const char *in, size_t len, unsigned max_depth, size_t max_parts, pg_bwalk_fn fn,
             void *ctx);

/* Appends the part's body, transfer-decoded, and with utf8 nonzero transcoded from its
 * charset to UTF-8 (bytes the charset cannot read are dropped), at most max octets (the
 * rest is dropped). Returns out->err. */
pigeon_err pg_bwalk_decode(const pg_bwalk_part *part, pg_buf *out, size_t max, int utf8);

/* Keeps the iconv converters of the common mail charsets loaded for the life of the
 * process (glibc would load and unload one per conversion). Thread-safe, idempotent. */
void pg_bwalk_pin_converters(void);

/* Appends in[0..n) transcoded from charset (any iconv name; "" or unknown: copied as it
 * is) to UTF-8, at most max octets. */
pigeon_err pg_bwalk_to_utf8(pg_buf *out, const char *charset, const char *in, size_t n, size_t max);

/* Appends the text of an HTML body: tags removed (a line break for those that end a block:
 * br, p, div, tr, li, h1-h6, table), the common entities and numeric references decoded,
 * at most max octets. */
void pg_bwalk_html_text(pg_buf *out, const char *html, size_t n, size_t max);

#endif
