/*
 * fuzz_dkim_canon.c - libFuzzer target for the streaming body canonicalizer (canon.c):
 * its output, fed in chunks whose sizes come from the input, must equal a plain
 * line-by-line reading of RFC 6376 3.4.3 (simple) and 3.4.4 (relaxed), with canon.c's
 * convention that CRLF, a lone LF and a lone CR each end a line.
 *
 * The canonicalizer has fast paths (whole clean lines found 64 bytes at a time, runs of
 * text 8 bytes at a time) beside its byte-by-byte state machine; this reference has none.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim/canon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct sink {
    unsigned char *buf;
    size_t len;
} sink;

static void collect(void *ctx, const void *p, size_t n)
{
    sink *s = ctx;
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

/* The reference: out must hold 2 * size + 2 bytes. Returns the canonical length. */
static size_t reference(int relaxed, const uint8_t *in, size_t size, unsigned char *out)
{
    size_t len = 0, kept = 0; /* kept: out's length up to the last non-empty line */
    size_t i = 0;
    while (i < size) {
        /* One line: its content, then its break (or the end of the input). */
        size_t start = len;
        int wsp = 0;
        while (i < size && in[i] != '\r' && in[i] != '\n') {
            unsigned char c = in[i++];
            if (relaxed && (c == ' ' || c == '\t')) {
                wsp = 1;
                continue;
            }
            if (wsp)
                out[len++] = ' ';
            wsp = 0;
            out[len++] = c;
        }
        /* 3.4.4: a run of white space at the end of the line was never written. */
        if (i < size)
            i += in[i] == '\r' && i + 1 < size && in[i + 1] == '\n' ? 2 : 1;
        int empty = len == start;
        out[len++] = '\r';
        out[len++] = '\n';
        if (!empty)
            kept = len;
    }
    /* Trailing empty lines go; simple makes an empty body one CRLF, relaxed leaves it. */
    if (kept == 0 && !relaxed) {
        memcpy(out, "\r\n", 2);
        return 2;
    }
    return kept;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int relaxed = data[0] & 1;
    unsigned step_seed = data[1];
    data += 2, size -= 2;
    unsigned char *want = malloc(2 * size + 2);
    sink got = {malloc(2 * size + 2), 0};
    if (want == NULL || got.buf == NULL)
        abort();
    size_t wl = reference(relaxed, data, size, want);
    pg_dkim_body b;
    pg_dkim_body_init(&b, relaxed ? PIGEON_DKIM_RELAXED : PIGEON_DKIM_SIMPLE, collect, &got);
    /* Chunks of 1 to 256 bytes, or all at once, varied by the seed. */
    for (size_t at = 0; at < size;) {
        size_t n = step_seed == 0 ? size : 1 + (step_seed * (at + 7)) % 256;
        if (n > size - at)
            n = size - at;
        pg_dkim_body_feed(&b, data + at, n);
        at += n;
    }
    pg_dkim_body_finish(&b);
    if (got.len != wl || memcmp(got.buf, want, wl) != 0)
        abort();
    free(want);
    free(got.buf);
    return 0;
}
