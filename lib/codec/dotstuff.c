/*
 * dotstuff.c - SMTP DATA transparency (RFC 5321 4.5.2) with line-ending normalization.
 *
 * RFC 5321 2.3.8 allows only CRLF as a line ending on the wire, and 4.5.2 requires a
 * line starting with '.' to get one more '.' so that the receiver cannot mistake it for
 * the end of data. This filter does both in one pass, over any chunking of the input,
 * copying runs of ordinary bytes with memcpy into space reserved up front.
 */
#include "codec/encode.h"

#include <stdint.h>
#include <string.h>

/* Input is processed in slices so that the reserved space stays bounded. */
#define SLICE (64 * 1024)

static char *filter_slice(pg_dotstuff *st, const char *in, size_t n, char *dst);

void pg_dotstuff_init(pg_dotstuff *st)
{
    memset(st, 0, sizeof *st);
    st->at_line_start = 1;
}

/* Length of the run of bytes from in[i] to in[n] that are neither CR nor LF. *cr is the
 * first CR at or after where it was last searched from (n if none, SIZE_MAX before the
 * first search; searched again only once passed): a message with CRLF lines is scanned twice with
 * memchr (vectorized) rather than byte by byte, and input without CR costs one search per slice,
 * not one per line. */
static size_t plain_run(const char *in, size_t i, size_t n, size_t *cr)
{
    if (*cr == SIZE_MAX || *cr < i) {
        const char *p = memchr(in + i, '\r', n - i);
        *cr = p != NULL ? (size_t)(p - in) : n;
    }
    const char *lf = memchr(in + i, '\n', *cr - i);
    return lf != NULL ? (size_t)(lf - (in + i)) : *cr - i;
}

static char *filter_slice(pg_dotstuff *st, const char *in, size_t n, char *dst)
{
    size_t i = 0;
    size_t cr = SIZE_MAX; /* the next CR for plain_run: not searched yet */
    while (i < n) {
        char c = in[i];
        if (st->pending_cr) {
            st->pending_cr = 0;
            if (c == '\n') { /* the LF of a CRLF already written */
                i++;
                continue;
            }
        }
        if (c == '\r' || c == '\n') {
            /* RFC 5321 2.3.8: CRLF is the only line ending; lone CR or LF become one. */
            memcpy(dst, "\r\n", 2);
            dst += 2;
            st->pending_cr = c == '\r';
            st->at_line_start = 1;
            i++;
            continue;
        }
        if (st->at_line_start && c == '.')
            *dst++ = '.'; /* RFC 5321 4.5.2: a leading dot is doubled. */
        st->at_line_start = 0;
        size_t run = plain_run(in, i, n, &cr);
        memcpy(dst, in + i, run);
        dst += run;
        i += run;
    }
    return dst;
}

pigeon_err pg_dotstuff_update(pg_dotstuff *st, pg_buf *out, const void *in, size_t n)
{
    const char *p = in;
    while (n > 0 && out->err == PIGEON_OK) {
        size_t take = n < SLICE ? n : SLICE;
        /* Each input byte yields at most two output bytes (LF -> CRLF, '.' -> ".."). */
        if (pg_buf_reserve(out, 2 * take) != PIGEON_OK)
            break;
        char *start = out->data + out->len;
        char *end = filter_slice(st, p, take, start);
        out->len += (size_t)(end - start);
        out->data[out->len] = '\0';
        st->out_len += (uint64_t)(end - start);
        p += take;
        n -= take;
    }
    return out->err;
}

pigeon_err pg_dotstuff_final(pg_dotstuff *st, pg_buf *out)
{
    if (out->err != PIGEON_OK)
        return out->err;
    /* RFC 5321 4.1.1.4: the data ends with CRLF "." CRLF; the CRLF before the dot is the
     * last line's own ending when it has one. */
    const char *tail = st->at_line_start ? ".\r\n" : "\r\n.\r\n";
    size_t len = strlen(tail);
    if (pg_buf_append(out, tail, len) == PIGEON_OK)
        st->out_len += len;
    st->at_line_start = 1;
    st->pending_cr = 0;
    return out->err;
}
