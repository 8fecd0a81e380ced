/*
 * hdr.h - a lenient header-block reader for bounces (internal, pure).
 *
 * A bounce is outside input that is often broken (headers quoted in a body, bare LF, lines
 * that are not fields), so unlike mime/rawmsg.c this reader never fails: it walks RFC 5322
 * 2.2 fields one at a time without allocating, skips lines that are not fields, and stops
 * at the first empty line. Values are unfolded (2.2.3) into the caller's bounded buffer.
 */
#ifndef PG_BOUNCE_HDR_H
#define PG_BOUNCE_HDR_H

#include <stddef.h>

#include "util/buf.h"

/* Longest unfolded value kept (longer values are cut). */
#define PG_BHDR_VALUE_MAX 2048
/* Most fields read from one header block. */
#define PG_BHDR_FIELDS_MAX 500

typedef struct pg_bhdr_field {
    const char *name;  /* the field name (not NUL-terminated), borrowed */
    size_t nlen;       /* its length */
    const char *value; /* the raw value after the colon, continuation lines included */
    size_t vlen;       /* its length */
} pg_bhdr_field;

typedef struct pg_bhdr_iter {
    const char *in; /* the block (borrowed) */
    size_t len;     /* its length */
    size_t pos;     /* where the next line starts */
    size_t fields;  /* fields returned so far */
    int done;       /* 1: the empty line (or the end) was reached; 2: the field bound */
} pg_bhdr_iter;

/* Starts reading the header block at in[0..len). */
void pg_bhdr_begin(pg_bhdr_iter *it, const char *in, size_t len);
/* The next field: 1, or 0 at the end of the block. After 0, it->pos is where the body
 * starts (after the empty line), or len. */
int pg_bhdr_next(pg_bhdr_iter *it, pg_bhdr_field *f);
/* Skips to the end of the block and returns where the body starts. */
size_t pg_bhdr_body(const char *in, size_t len);
/* Whether the field is called name (ASCII case-insensitive). */
int pg_bhdr_is(const pg_bhdr_field *f, const char *name);
/* Unfolds the value into out (cap >= 1): line breaks removed, runs of white space made one
 * space, trimmed, cut at cap - 1 octets, NUL-terminated. Returns the length. */
size_t pg_bhdr_unfold(const char *v, size_t n, char *out, size_t cap);
/* The value of parameter name in a Content-Type style value (RFC 2045 5.1: token or
 * quoted-string), lower-cased when lower; 1 if found. */
int pg_bhdr_param(const char *value, const char *name, char *out, size_t cap, int lower);
/* Copies the media type ("multipart/report") of a Content-Type value, lower case. */
void pg_bhdr_mediatype(const char *value, char *out, size_t cap);
/* The first addr-spec in text: inside <...> when there are brackets, else the first
 * word holding '@'; trailing punctuation removed. Returns a malloc'd string or NULL. */
char *pg_bhdr_addr(const char *text, size_t n);
/* Appends the RFC 2047-decoded (UTF-8) form of an unfolded value (the value itself when a
 * charset is unknown). */
void pg_bhdr_decode_words(pg_buf *out, const char *value);

#endif
