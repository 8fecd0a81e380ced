/*
 * fuzz_http_request.c - libFuzzer target for the HTTP/1.1 request parser
 * (lib/http/http_parse.c): heads, and chunked bodies decoded both at once and in place.
 *
 * Invariants: no out-of-bounds access (ASan); a parsed head lies within the input, its
 * method and path inside it, its fields within the head; a prefix of an accepted head is
 * never an error (need more or the same); the chunked decoder never writes more than it
 * reads and agrees with itself when fed one octet at a time.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pg_http_request req, req2;

static void check_head(const char *buf, long used)
{
    const char *end = buf + used;
    if (req.method < buf || req.method + req.method_len > end || req.path_len == 0)
        abort();
    if (req.nheaders > PG_HTTP_MAX_HEADERS_CAP)
        abort();
    for (size_t i = 0; i < req.nheaders; i++) {
        const pg_http_header *h = &req.headers[i];
        if (h->name < buf || h->value + h->value_len > end || memchr(h->value, '\r', h->value_len))
            abort();
    }
    if (req.has_length && req.chunked)
        abort();
}

static void chunks(const char *buf, size_t size)
{
    char *out = malloc(size + 1), *copy = malloc(size + 1);
    pg_http_chunked a, b;
    size_t n = 0, total = 0, pos = 0;
    pg_http_chunked_init(&a, 1 << 16, 256);
    long r = pg_http_chunked_feed(&a, buf, size, out, &n);
    if (r > (long)size || n > size)
        abort();
    /* One octet at a time, keeping what was not consumed. */
    pg_http_chunked_init(&b, 1 << 16, 256);
    size_t have = 0;
    long r2 = 0;
    while (pos < size && b.state != PG_CHUNK_DONE) {
        copy[have++] = buf[pos++];
        size_t got = 0;
        r2 = pg_http_chunked_feed(&b, copy, have, copy, &got);
        if (r2 < 0)
            break;
        total += got;
        memmove(copy, copy + r2, have - (size_t)r2);
        have -= (size_t)r2;
    }
    if (r >= 0 && a.state == PG_CHUNK_DONE && (r2 < 0 || b.state != PG_CHUNK_DONE || total != n))
        abort();
    free(out);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    pg_http_limits lim = {.max_line = 512, .max_head = 2048, .max_headers = 16, .max_body = 4096};
    long used = pg_http_parse_request(buf, size, &lim, &req);
    if (used > (long)size)
        abort();
    if (used > 0) {
        check_head(buf, used);
        /* Every prefix of an accepted head needs more, never fails. */
        for (size_t cut = 0; cut < (size_t)used; cut += 1 + (size_t)used / 16) {
            if (pg_http_parse_request(buf, cut, &lim, &req2) != 0)
                abort();
        }
        if (req.chunked)
            chunks(buf + used, size - (size_t)used);
    } else if (size > 0 && data[0] <= '9') {
        chunks(buf, size);
    }
    return 0;
}
