/*
 * test_http_parse.c - the HTTP/1.1 request parser (lib/http/http_parse.c): RFC 9112
 * request lines, fields, keep-alive, body framing and the chunked coding, and every
 * ambiguity that could smuggle a request (RFC 9112 11.2) refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_parse.h"

static pg_http_request req;

static long parse(const char *wire)
{
    return pg_http_parse_request(wire, strlen(wire), NULL, &req);
}

static void simple_get(void **state)
{
    (void)state;
    const char *w = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent:  curl/8 \r\n\r\nNEXT";
    assert_int_equal(parse(w), (long)strlen(w) - 4);
    assert_int_equal(req.method_len, 3);
    assert_memory_equal(req.method, "GET", 3);
    assert_int_equal(req.path_len, 8);
    assert_memory_equal(req.path, "/metrics", 8);
    assert_int_equal(req.query_len, 3);
    assert_memory_equal(req.query, "x=1", 3);
    assert_int_equal(req.minor, 1);
    assert_true(req.keep_alive);
    assert_int_equal(req.nheaders, 2);
    size_t n = 0;
    const char *ua = pg_http_request_header(&req, "user-agent", &n);
    assert_non_null(ua);
    assert_int_equal(n, 6); /* OWS on both sides trimmed */
    assert_memory_equal(ua, "curl/8", 6);
    assert_false(req.has_length);
    assert_false(req.chunked);
}

static void need_more_at_every_prefix(void **state)
{
    (void)state;
    const char *w = "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
    size_t len = strlen(w);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(pg_http_parse_request(w, i, NULL, &req), 0);
    assert_int_equal(pg_http_parse_request(w, len, NULL, &req), (long)len);
    assert_true(req.has_length);
    assert_int_equal(req.content_length, 5);
}

static void keep_alive_rules(void **state)
{
    (void)state;
    assert_true(parse("GET / HTTP/1.0\r\n\r\n") > 0);
    assert_false(req.keep_alive);
    assert_true(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
    assert_true(req.keep_alive);
    assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n") > 0);
    assert_false(req.keep_alive);
    assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n") > 0);
    assert_true(req.expect_continue);
}

static void target_forms(void **state)
{
    (void)state;
    assert_true(parse("GET http://h:1/a/b?q HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    assert_int_equal(req.path_len, 4);
    assert_memory_equal(req.path, "/a/b", 4);
    assert_memory_equal(req.query, "q", 1);
    assert_true(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    assert_true(parse("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    assert_int_equal(req.path_len, 1);
    assert_int_equal(parse("GET a/b HTTP/1.1\r\nHost: h\r\n\r\n"), -400);
    /* RFC 9112 2.2: empty lines before the request line are skipped. */
    assert_true(parse("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
}

/* Every one of these is refused, with the status given. */
static const struct {
    const char *wire;
    long want;
} bad[] = {
    {"GET / HTTP/1.1\nHost: a\r\n\r\n", -400},         /* bare LF */
    {"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", -400}, /* bare CR */
    {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", -400},      /* two spaces */
    {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", -505},
    {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", -400},
    {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", -400}, /* not a token */
    {"GET / HTTP/1.1\r\n\r\n", -400},            /* 1.1 without Host */
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400},
    {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400},              /* space before colon */
    {"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", -400}, /* obs-fold */
    {"GET / HTTP/1.1\r\nHost: a\r\nX: y\x01z\r\n\r\n", -400},  /* control character */
    {"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", -400},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", -413},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -501},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
     "chunked\r\n\r\n",
     -400},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
};

static void refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long got = parse(bad[i].wire);
        if (got != bad[i].want)
            fail_msg("case %zu: got %ld, want %ld", i, got, bad[i].want);
    }
}

static void limits(void **state)
{
    (void)state;
    pg_http_limits lim = {.max_line = 64, .max_head = 256, .max_headers = 3, .max_body = 10};
    char w[1024];
    memset(w, 'a', sizeof w);
    memcpy(w, "GET /", 5);
    assert_int_equal(pg_http_parse_request(w, sizeof w, &lim, &req), -414);
    const char *many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_int_equal(pg_http_parse_request(many, strlen(many), &lim, &req), -431);
    char line[200];
    int n = snprintf(line, sizeof line, "GET / HTTP/1.1\r\nHost: a\r\nX: %0100d\r\n\r\n", 0);
    assert_int_equal(pg_http_parse_request(line, (size_t)n, &lim, &req), -431);
    /* A head that never ends is refused once over max_head, not waited on. */
    char trickle[400];
    n = snprintf(trickle, sizeof trickle, "GET / HTTP/1.1\r\nHost: a\r\n");
    while ((size_t)n + 8 < sizeof trickle)
        n += snprintf(trickle + n, sizeof trickle - (size_t)n, "X: 1\r\n");
    assert_int_equal(pg_http_parse_request(trickle, (size_t)n, &lim, &req), -431);
    const char *big = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
    assert_int_equal(pg_http_parse_request(big, strlen(big), &lim, &req), -413);
}

static long decode(const char *wire, char *out, size_t *out_len, pg_http_chunked *dec)
{
    pg_http_chunked_init(dec, 100, 64);
    return pg_http_chunked_feed(dec, wire, strlen(wire), out, out_len);
}

static void chunked(void **state)
{
    (void)state;
    char out[256];
    size_t n = 0;
    pg_http_chunked dec;
    const char *w = "5\r\nhello\r\n1;ext=\"v\"\r\n \r\nA\r\n0123456789\r\n0\r\nTrail: x\r\n\r\nGET";
    long used = decode(w, out, &n, &dec);
    assert_int_equal(used, (long)strlen(w) - 3);
    assert_int_equal(dec.state, PG_CHUNK_DONE);
    assert_int_equal(n, 16);
    assert_memory_equal(out, "hello 0123456789", 16);
    /* Byte by byte gives the same. */
    pg_http_chunked_init(&dec, 100, 64);
    size_t total = 0, pos = 0, end = strlen(w) - 3;
    char buf[256];
    size_t have = 0;
    while (pos < end && dec.state != PG_CHUNK_DONE) {
        buf[have++] = w[pos++];
        size_t got = 0;
        long r = pg_http_chunked_feed(&dec, buf, have, out + total, &got);
        assert_true(r >= 0);
        total += got;
        memmove(buf, buf + r, have - (size_t)r);
        have -= (size_t)r;
    }
    assert_int_equal(dec.state, PG_CHUNK_DONE);
    assert_int_equal(total, 16);
    /* In place: the output may alias the input. */
    char inplace[64];
    strcpy(inplace, "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    pg_http_chunked_init(&dec, 100, 64);
    assert_int_equal(pg_http_chunked_feed(&dec, inplace, strlen(inplace), inplace, &n),
                     (long)strlen("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
    assert_int_equal(n, 5);
    assert_memory_equal(inplace, "abcde", 5);
}

static void chunked_refusals(void **state)
{
    (void)state;
    char out[256];
    size_t n;
    pg_http_chunked dec;
    assert_int_equal(decode("g\r\n", out, &n, &dec), -400);
    assert_int_equal(decode("\r\n", out, &n, &dec), -400);
    assert_int_equal(decode("-1\r\n", out, &n, &dec), -400);
    assert_int_equal(decode("5\nhello\r\n", out, &n, &dec), -400);
    assert_int_equal(decode("3\r\nhello\r\n", out, &n, &dec), -400); /* longer than its size */
    assert_int_equal(decode("ffffffffffffffffffff\r\n", out, &n, &dec), -400); /* overflow */
    assert_int_equal(decode("65\r\n", out, &n, &dec), -413);                   /* 101 > 100 */
    assert_int_equal(decode("40\r\n", out, &n, &dec), 4);
    assert_int_equal(decode("5 x\r\n", out, &n, &dec), -400);
    assert_int_equal(decode("0\r\nbad trailer\r\n\r\n", out, &n, &dec), -400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(simple_get),       cmocka_unit_test(need_more_at_every_prefix),
        cmocka_unit_test(keep_alive_rules), cmocka_unit_test(target_forms),
        cmocka_unit_test(refusals),         cmocka_unit_test(limits),
        cmocka_unit_test(chunked),          cmocka_unit_test(chunked_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
