/*
 * encode.h - the transfer and header encoders (internal, pure: no I/O).
 *
 *   base64            RFC 4648 4, wrapped at 76 columns with CRLF for MIME (RFC 2045 6.8)
 *   quoted-printable  RFC 2045 6.7, text mode (CRLF are hard line breaks)
 *   encoded-words     RFC 2047 (UTF-8, B or Q, whichever is shorter), both ways
 *   parameters        RFC 2231 (extended, continued parameters)
 *   header folding    RFC 5322 2.2.3 (fold at 78, never over 998, no blank folded line)
 *   dot-stuffing      RFC 5321 4.5.2 with line-ending normalization for DATA
 *
 * All encoders append to a pg_buf and return its sticky error.
 */
#ifndef PG_ENCODE_H
#define PG_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/utf8.h" /* pg_utf8_valid, pg_has_ctl_breaks: used with the encoders */

/* ---- base64 (RFC 4648) ---- */

/* Exact encoded length of n input bytes, with a CRLF after every line_len output
 * characters and after the last (partial) line; line_len 0 means no line breaks.
 * line_len must be a multiple of 4. */
uint64_t pg_b64_encoded_len(uint64_t n, unsigned line_len);
/* Encodes n bytes into out (room for 4*ceil(n/3) chars), no line breaks, no NUL.
 * Returns the number of characters written. */
size_t pg_b64_encode_raw(const uint8_t *in, size_t n, char *out);
/* Appends the unwrapped base64 of in. */
pigeon_err pg_b64_encode(pg_buf *out, const void *in, size_t n);
/* Decodes base64 (ignoring CR, LF, space and tab; '=' padding optional at the end).
 * Returns PIGEON_ERR_INVALID for any other character or bad padding. */
pigeon_err pg_b64_decode(pg_buf *out, const char *in, size_t n);

/* Streaming, wrapped encoder for MIME bodies: feed any chunking, get the same bytes as
 * one call. Every output line is line_len characters + CRLF; the final line is
 * terminated by CRLF too (so an empty input gives empty output). */
typedef struct pg_b64_stream {
    uint8_t carry[3];  /* input bytes not yet forming a full group */
    unsigned ncarry;   /* number of bytes in carry */
    unsigned col;      /* characters on the current output line */
    unsigned line_len; /* characters per line (multiple of 4), 76 for MIME */
} pg_b64_stream;
void pg_b64_stream_init(pg_b64_stream *st, unsigned line_len);
pigeon_err pg_b64_stream_update(pg_b64_stream *st, pg_buf *out, const void *in, size_t n);
pigeon_err pg_b64_stream_final(pg_b64_stream *st, pg_buf *out);

/* ---- quoted-printable (RFC 2045 6.7) ---- */

/* Encodes text whose line breaks are already CRLF (a lone CR or LF is encoded as =0D /
 * =0A). Lines are at most 76 characters (soft breaks "=" CRLF); trailing space and tab
 * before a line break are encoded; '=' and non-printables are encoded; a line starting
 * with '.' or "From " is left as is (dot-stuffing is the transport's job).
 * If the text does not end with CRLF, the output ends with a soft line break ("=" CRLF)
 * so that it ends with CRLF yet decodes to exactly the input. */
pigeon_err pg_qp_encode(pg_buf *out, const char *in, size_t n);
/* The same for text whose line breaks may also be a lone CR or LF: every CR, LF or CRLF is
 * a hard line break (written CRLF), so the output is that of pg_qp_encode over the text
 * with its line breaks made CRLF (RFC 2046 4.1.1), without that copy. */
pigeon_err pg_qp_encode_text(pg_buf *out, const char *in, size_t n);
/* Length pg_qp_encode would produce, without producing it. */
size_t pg_qp_encoded_len(const char *in, size_t n);
/* Decodes quoted-printable (soft breaks removed, =XX decoded, CRLF kept). Lenient about
 * lowercase hex; PIGEON_ERR_INVALID for '=' followed by anything else. */
pigeon_err pg_qp_decode(pg_buf *out, const char *in, size_t n);

/* ---- RFC 2047 encoded-words ---- */

/* Where the text goes: it decides which characters Q encoding may leave bare
 * (RFC 2047 5(1) unstructured text vs 5(3) a phrase such as a display name). */
typedef enum pg_ew_context {
    PG_EW_TEXT = 0,   /* unstructured text: Subject, custom fields */
    PG_EW_PHRASE = 1, /* a display name in an address */
} pg_ew_context;

/*
 * Appends the UTF-8 text as it should appear in a header whose current line already has
 * *col characters ("Subject: " is 9), folding with CRLF + one space so that no line exceeds
 * 78 characters where a break is possible. *col is updated to the column after the output.
 *   - pure printable-ASCII words are written as they are (in PG_EW_PHRASE, the whole name is
 *     a quoted-string when it holds specials or non-atext characters);
 *   - runs of words holding non-ASCII (or that look like an encoded-word "=?...?=") are
 *     written as encoded-words "=?UTF-8?B?...?=" or "?Q?", whichever is shorter, each at
 *     most 75 characters, split only between whole UTF-8 characters; adjacent encoded
 *     words are separated by folding white space, and white space between two encoded
 *     words is encoded inside them (RFC 2047 6.2 drops white space between encoded-words).
 * Returns PIGEON_ERR_CHARSET for invalid UTF-8, PIGEON_ERR_HEADER for CR, LF or NUL.
 */
pigeon_err pg_ew_encode(pg_buf *out, size_t *col, const char *utf8, size_t n, pg_ew_context ctx);

/* Decodes a header value: encoded-words (B and Q, any charset iconv knows) become UTF-8,
 * white space between adjacent encoded-words is dropped, unfolding CRLF+WSP is removed.
 * Used by tests and by sendmail mode. PIGEON_ERR_CHARSET for unknown charsets. */
pigeon_err pg_ew_decode(pg_buf *out, const char *in, size_t n);

/* ---- RFC 2231 parameters ---- */

/*
 * Appends "; name=value" to a header line at column *col (folding before the parameter
 * when it would pass 78). ASCII token values are written bare; other printable ASCII as a
 * quoted-string; non-ASCII (or over-long) values as RFC 2231 extended, continued
 * parameters: name*0*=UTF-8''%E4%B8%AD...; name*1*=... each section on its own folded
 * line within 78 columns, split only between whole UTF-8 characters.
 */
pigeon_err pg_param_append(pg_buf *out, size_t *col, const char *name, const char *utf8);

/* Appends "; name=" + the RFC 2047 encoded-word(s) of value in a quoted-string, the
 * non-standard form QQ Mail and Outlook read ("name=\"=?UTF-8?B?...?=\""); ASCII values are
 * written as pg_param_append would. */
pigeon_err pg_param_append_ew(pg_buf *out, size_t *col, const char *name, const char *utf8);

/* ---- header fields ---- */

/* Nonzero if name is a valid field name: 1..76 chars of RFC 5322 ftext (33..126 but ':'). */
int pg_header_name_valid(const char *name);

/*
 * Appends a complete unstructured field "Name: value" CRLF, encoding (pg_ew_encode,
 * PG_EW_TEXT) and folding the value. The value must not contain CR, LF or NUL.
 */
pigeon_err pg_header_unstructured(pg_buf *out, const char *name, const char *utf8);

/* ---- DATA transparency (RFC 5321 4.5.2) ---- */

/*
 * Streaming filter from message bytes to DATA bytes: every line ending (CRLF, lone LF,
 * lone CR) becomes CRLF and a line that starts with '.' gets another '.'. Other bytes,
 * NUL included, pass unchanged (the composer never produces NUL; a raw message from
 * sendmail mode is the sender's own). pg_dotstuff_final appends the end of data:
 * CRLF (if the data did not end with one) then ".\r\n". The result never contains a bare CR
 * or LF and exactly one "\r\n.\r\n" terminator, whatever the input.
 */
typedef struct pg_dotstuff {
    int at_line_start; /* the next byte starts a line */
    int pending_cr;    /* a CR was seen; whether LF follows is not known yet */
    uint64_t out_len;  /* bytes produced so far (for SIZE checks) */
} pg_dotstuff;
void pg_dotstuff_init(pg_dotstuff *st);
pigeon_err pg_dotstuff_update(pg_dotstuff *st, pg_buf *out, const void *in, size_t n);
pigeon_err pg_dotstuff_final(pg_dotstuff *st, pg_buf *out);

#endif
