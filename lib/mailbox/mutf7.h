/*
 * mutf7.h - IMAP mailbox names in modified UTF-7 (RFC 3501 5.1.3; RFC 9051 5.1.3 keeps it
 * for servers without UTF8=ACCEPT) (internal, pure).
 *
 * Printable US-ASCII stands for itself except '&', written "&-"; any other run of
 * characters is "&" + modified BASE64 (',' for '/', no padding) of its UTF-16BE + "-".
 */
#ifndef PG_MUTF7_H
#define PG_MUTF7_H

#include <stddef.h>

#include "util/buf.h"

/* Appends the modified UTF-7 form of the UTF-8 name utf8[0..n). PIGEON_ERR_CHARSET for
 * invalid UTF-8; PIGEON_ERR_HEADER for a control character (CR, LF, NUL, ...), which no
 * mailbox name may hold; PIGEON_ERR_NOMEM. */
pigeon_err pg_mutf7_encode(pg_buf *out, const char *utf8, size_t n);

/* Appends the UTF-8 form of the modified UTF-7 name in[0..n). PIGEON_ERR_CHARSET for
 * anything RFC 3501 5.1.3 forbids: a non-printable octet, a '&' run not closed by '-',
 * bad base64, padding bits, an encoded printable ASCII character, an unpaired surrogate,
 * two encoded runs back to back. */
pigeon_err pg_mutf7_decode(pg_buf *out, const char *in, size_t n);

#endif
