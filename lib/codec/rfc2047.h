/*
 * rfc2047.h - encoded-word helpers shared by rfc2047.c and param.c (internal).
 */
#ifndef PG_RFC2047_H
#define PG_RFC2047_H

#include <stddef.h>

#include "codec/encode.h"

/*
 * Appends the whole UTF-8 text (already validated) as one run of RFC 2047 encoded-words
 * at column *col, white space included inside the words: the first word goes on the
 * current line (never after a fold, so that the run can sit inside a quoted-string), the
 * others on folded lines of at most 78 characters, keeping room for
 * tail more characters after the last word (a closing quote, a ';'). *col is updated.
 */
pigeon_err pg_ew_encode_run(pg_buf *out, size_t *col, const char *utf8, size_t n, pg_ew_context ctx,
                            size_t tail);

#endif
