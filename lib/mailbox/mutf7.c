/*
 * mutf7.c - modified UTF-7 for IMAP mailbox names (RFC 3501 5.1.3).
 */
#include "mailbox/mutf7.h"

#include <stdint.h>
#include <string.h>

#include "util/utf8.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(char c)
{
    const char *p = c != '\0' ? strchr(b64, c) : NULL;
    return p != NULL ? (int)(p - b64) : -1;
}

/* The encoder's state inside a "&...-" run. */
struct run {
    int open;     /* a run has been started with '&' */
    uint32_t acc; /* bits not yet written */
    int bits;     /* how many */
};

static void run_unit(pg_buf *out, struct run *r, uint16_t unit)
{
    if (!r->open) {
        pg_buf_putc(out, '&');
        r->open = 1;
    }
    r->acc = (r->acc << 16) | unit;
    r->bits += 16;
    while (r->bits >= 6) {
        r->bits -= 6;
        pg_buf_putc(out, b64[(r->acc >> r->bits) & 0x3f]);
    }
    r->acc &= (1u << r->bits) - 1;
}

/* Ends the run: the last bits padded with zeros, then '-'. */
static void run_close(pg_buf *out, struct run *r)
{
    if (!r->open)
        return;
    if (r->bits > 0)
        pg_buf_putc(out, b64[(r->acc << (6 - r->bits)) & 0x3f]);
    pg_buf_putc(out, '-');
    memset(r, 0, sizeof *r);
}

pigeon_err pg_mutf7_encode(pg_buf *out, const char *utf8, size_t n)
{
    if (!pg_utf8_valid(utf8, n))
        return PIGEON_ERR_CHARSET;
    struct run r = {0};
    size_t i = 0;
    while (i < n) {
        uint32_t cp = 0;
        i += pg_utf8_decode((const unsigned char *)utf8 + i, n - i, &cp);
        if (cp < 0x20 || cp == 0x7f)
            return PIGEON_ERR_HEADER;
        if (cp < 0x7f) {
            run_close(out, &r);
            if (cp == '&')
                pg_buf_puts(out, "&-");
            else
                pg_buf_putc(out, (char)cp);
        } else if (cp >= 0x10000) {
            cp -= 0x10000;
            run_unit(out, &r, (uint16_t)(0xd800 | (cp >> 10)));
            run_unit(out, &r, (uint16_t)(0xdc00 | (cp & 0x3ff)));
        } else {
            run_unit(out, &r, (uint16_t)cp);
        }
    }
    run_close(out, &r);
    return out->err;
}

/* Appends code point cp as UTF-8. */
static void put_utf8(pg_buf *out, uint32_t cp)
{
    char s[4];
    size_t n;
    if (cp < 0x80) {
        s[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        s[0] = (char)(0xc0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        s[0] = (char)(0xe0 | (cp >> 12));
        s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        s[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        s[0] = (char)(0xf0 | (cp >> 18));
        s[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        s[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    pg_buf_append(out, s, n);
}

/* Decodes one "&...-" run starting after the '&'; *pos ends after the '-'. */
static pigeon_err decode_run(pg_buf *out, const char *in, size_t n, size_t *pos)
{
    uint32_t acc = 0;
    int bits = 0;
    uint32_t high = 0; /* a pending high surrogate */
    size_t units = 0;
    size_t i = *pos;
    for (; i < n && in[i] != '-'; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return PIGEON_ERR_CHARSET;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits < 16)
            continue;
        bits -= 16;
        uint32_t u = (acc >> bits) & 0xffff;
        units++;
        if (u >= 0xd800 && u <= 0xdbff) {
            if (high != 0)
                return PIGEON_ERR_CHARSET;
            high = u;
        } else if (u >= 0xdc00 && u <= 0xdfff) {
            if (high == 0)
                return PIGEON_ERR_CHARSET;
            put_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00));
            high = 0;
        } else {
            /* RFC 3501 5.1.3: printable US-ASCII must stand for itself. */
            if (high != 0 || (u >= 0x20 && u <= 0x7e))
                return PIGEON_ERR_CHARSET;
            put_utf8(out, u);
        }
    }
    /* Not closed, empty ("&-" is handled by the caller), a dangling surrogate, or
     * leftover bits that are not zero padding. */
    if (i >= n || units == 0 || high != 0 || bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
        return PIGEON_ERR_CHARSET;
    *pos = i + 1;
    return PIGEON_OK;
}

pigeon_err pg_mutf7_decode(pg_buf *out, const char *in, size_t n)
{
    size_t i = 0;
    int after_run = 0;
    while (i < n) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c > 0x7e)
            return PIGEON_ERR_CHARSET;
        if (c != '&') {
            pg_buf_putc(out, (char)c);
            i++;
            after_run = 0;
            continue;
        }
        if (i + 1 < n && in[i + 1] == '-') {
            pg_buf_putc(out, '&');
            i += 2;
            after_run = 0;
            continue;
        }
        if (after_run)
            return PIGEON_ERR_CHARSET; /* "&AGE-&AGE-" must be one run */
        i++;
        pigeon_err err = decode_run(out, in, n, &i);
        if (err != PIGEON_OK)
            return err;
        after_run = 1;
    }
    return out->err;
}
