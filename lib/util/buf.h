/*
 * buf.h - a growable byte buffer with a sticky error (internal).
 *
 * Appends after a failed allocation are no-ops; check b->err once at the end.
 * The data is always NUL-terminated (not counted in len) so text can be used as a C string.
 */
#ifndef PG_BUF_H
#define PG_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "pigeon/error.h"

typedef struct pg_buf {
    char *data;     /* the bytes, NUL-terminated; NULL until the first append */
    size_t len;     /* bytes used, not counting the terminating NUL */
    size_t cap;     /* bytes allocated */
    size_t max;     /* hard bound on len, 0 for none; exceeding it is PIGEON_ERR_TOO_LARGE */
    pigeon_err err; /* first error (sticky) */
} pg_buf;

void pg_buf_init(pg_buf *b);
/* Frees the storage (wiping it first if wipe is nonzero) and re-initializes. */
void pg_buf_cleanup(pg_buf *b);
void pg_buf_wipe_cleanup(pg_buf *b);
/* Empties the buffer, keeping its storage and clearing the error. */
void pg_buf_reset(pg_buf *b);
/* Makes room for extra more bytes. */
pigeon_err pg_buf_reserve(pg_buf *b, size_t extra);
pigeon_err pg_buf_append(pg_buf *b, const void *data, size_t n);
pigeon_err pg_buf_puts(pg_buf *b, const char *s);
pigeon_err pg_buf_putc(pg_buf *b, char c);
pigeon_err pg_buf_printf(pg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
pigeon_err pg_buf_vprintf(pg_buf *b, const char *fmt, va_list ap);
/* Removes the first n bytes. */
void pg_buf_consume(pg_buf *b, size_t n);
/* Takes the storage: returns the data (never NULL on success, "" when empty) and resets
 * the buffer. Returns NULL if the buffer is in error (and resets it). */
char *pg_buf_detach(pg_buf *b, size_t *len);

#endif
