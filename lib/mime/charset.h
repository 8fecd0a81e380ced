/*
 * charset.h - transcoding UTF-8 text parts to the charsets Chinese mail clients expect
 * (internal), with iconv.
 *
 * The library keeps all text as UTF-8; a caller may ask for text parts in GB18030 or GBK
 * (RFC 2046 4.1.2 charset parameter) for old clients that mis-render UTF-8.
 */
#ifndef PG_CHARSET_H
#define PG_CHARSET_H

#include <stddef.h>

#include "util/buf.h"

/* The canonical wire name ("utf-8", "gb18030", "gbk") for a charset name given in any
 * case ("UTF8", "GB18030"...), or NULL if it is not supported. */
const char *pg_charset_canonical(const char *name);

/* Appends utf8[0..n) converted to charset (a canonical name). "utf-8" copies. Returns
 * PIGEON_ERR_CHARSET if the input is not valid UTF-8 or holds a character the charset
 * cannot represent (no transliteration: the recipient must read what was written),
 * PIGEON_ERR_NOMEM. */
pigeon_err pg_charset_from_utf8(pg_buf *out, const char *charset, const char *utf8, size_t n);

#endif
