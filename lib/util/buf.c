/*
 * buf.c - growable byte buffer with a sticky error.
 */
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void pg_buf_init(pg_buf *b)
{
    memset(b, 0, sizeof *b);
}

void pg_buf_cleanup(pg_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    pg_buf_init(b);
}

void pg_buf_wipe_cleanup(pg_buf *b)
{
    if (b == NULL)
        return;
    if (b->data != NULL)
        OPENSSL_cleanse(b->data, b->cap);
    pg_buf_cleanup(b);
}

void pg_buf_reset(pg_buf *b)
{
    b->len = 0;
    b->err = PIGEON_OK;
    if (b->data != NULL)
        b->data[0] = '\0';
}

pigeon_err pg_buf_reserve(pg_buf *b, size_t extra)
{
    if (b->err != PIGEON_OK)
        return b->err;
    if (extra > ((size_t)-1) / 2 - b->len || (b->max != 0 && b->len + extra > b->max)) {
        b->err = PIGEON_ERR_TOO_LARGE;
        return b->err;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return PIGEON_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->err = PIGEON_ERR_NOMEM;
        return b->err;
    }
    b->data = p;
    b->cap = cap;
    b->data[b->len] = '\0'; /* the data is always a C string, even when empty */
    return PIGEON_OK;
}

pigeon_err pg_buf_append(pg_buf *b, const void *data, size_t n)
{
    /* The common case, room left and no error, without the checks of a reservation:
     * serializers append a few bytes at a time. */
    if (b->err == PIGEON_OK && b->cap > b->len && n < b->cap - b->len &&
        (b->max == 0 || n <= b->max - b->len)) {
        if (n > 0)
            memcpy(b->data + b->len, data, n);
        b->len += n;
        b->data[b->len] = '\0';
        return PIGEON_OK;
    }
    if (pg_buf_reserve(b, n) != PIGEON_OK)
        return b->err;
    if (n > 0)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return PIGEON_OK;
}

pigeon_err pg_buf_puts(pg_buf *b, const char *s)
{
    return pg_buf_append(b, s, strlen(s));
}

pigeon_err pg_buf_putc(pg_buf *b, char c)
{
    if (b->err == PIGEON_OK && b->len + 1 < b->cap && (b->max == 0 || b->len < b->max)) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return PIGEON_OK;
    }
    return pg_buf_append(b, &c, 1);
}

pigeon_err pg_buf_vprintf(pg_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        if (b->err == PIGEON_OK)
            b->err = PIGEON_ERR_INVALID;
        return b->err;
    }
    if (pg_buf_reserve(b, (size_t)n) != PIGEON_OK)
        return b->err;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return PIGEON_OK;
}

pigeon_err pg_buf_printf(pg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pigeon_err err = pg_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return err;
}

void pg_buf_consume(pg_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data != NULL)
        b->data[b->len] = '\0';
}

char *pg_buf_detach(pg_buf *b, size_t *len)
{
    if (b->err != PIGEON_OK) {
        pg_buf_cleanup(b);
        return NULL;
    }
    if (b->data == NULL && pg_buf_reserve(b, 0) != PIGEON_OK) {
        pg_buf_cleanup(b);
        return NULL;
    }
    char *p = b->data;
    if (len != NULL)
        *len = b->len;
    pg_buf_init(b);
    return p;
}
