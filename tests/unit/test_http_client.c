/*
 * test_http_client.c - the HTTP client's pure parts: URLs (what a webhook may be given)
 * and response heads (RFC 9112: status line, fields, body length, the shapes that let two
 * parsers disagree refused).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_client.h"

static void test_urls(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int ok, tls;
        const char *host;
        unsigned port;
        const char *path, *authority;
    } cases[] = {
        {"https://hooks.example.com/pigeon?x=1", 1, 1, "hooks.example.com", 443, "/pigeon?x=1",
         "hooks.example.com"},
        {"http://127.0.0.1:8080", 1, 0, "127.0.0.1", 8080, "/", "127.0.0.1:8080"},
        {"http://[::1]:9/h", 1, 0, "::1", 9, "/h", "[::1]:9"},
        {"http://h.example?q", 1, 0, "h.example", 80, "/?q", "h.example"},
        {"ftp://h.example/", 0, 0, NULL, 0, NULL, NULL},
        {"http://user:pw@h.example/", 0, 0, NULL, 0, NULL, NULL},
        {"http://h.example/a b", 0, 0, NULL, 0, NULL, NULL},
        {"http://h.example/a\r\nX: y", 0, 0, NULL, 0, NULL, NULL},
        {"http://h.example:0/", 0, 0, NULL, 0, NULL, NULL},
        {"http://h.example:65536/", 0, 0, NULL, 0, NULL, NULL},
        {"http://h.example:8x/", 0, 0, NULL, 0, NULL, NULL},
        {"http:///path", 0, 0, NULL, 0, NULL, NULL},
        {"http://[::1/", 0, 0, NULL, 0, NULL, NULL},
        {"http://h.example/#frag", 0, 0, NULL, 0, NULL, NULL},
        {"http://h\xc3\xa9.example/", 0, 0, NULL, 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pg_http_url u;
        char why[200] = "";
        int rc = pg_http_url_parse(cases[i].url, &u, why, sizeof why);
        if ((rc == 0) != cases[i].ok)
            fail_msg("%s: %d (%s)", cases[i].url, rc, why);
        if (!cases[i].ok) {
            assert_true(why[0] != '\0');
            continue;
        }
        assert_int_equal(u.tls, cases[i].tls);
        assert_string_equal(u.host, cases[i].host);
        assert_int_equal(u.port, cases[i].port);
        assert_string_equal(u.path, cases[i].path);
        assert_string_equal(u.authority, cases[i].authority);
    }
}

static long parse(const char *s, pg_http_response_head *h)
{
    return pg_http_parse_response(s, strlen(s), 0, h);
}

static void test_heads(void **state)
{
    (void)state;
    pg_http_response_head h;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello";
    assert_int_equal(parse(ok, &h), (long)strlen(ok) - 5);
    assert_int_equal(h.status, 200);
    assert_true(h.has_length && h.content_length == 5 && h.keep_alive && !h.chunked);
    assert_int_equal(h.reason_len, 2);
    /* Every prefix needs more. */
    for (size_t n = 0; n < strlen(ok) - 5; n++)
        assert_int_equal(pg_http_parse_response(ok, n, 0, &h), 0);
    assert_int_equal(parse("HTTP/1.1 204 \r\n\r\n", &h), 17);
    assert_int_equal(h.status, 204);
    assert_int_equal(parse("HTTP/1.1 204\r\n\r\n", &h), 16);
    assert_true(parse("HTTP/1.0 200 OK\r\n\r\n", &h) > 0 && !h.keep_alive);
    assert_true(parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", &h) > 0 && h.keep_alive);
    assert_true(parse("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", &h) > 0 && !h.keep_alive);
    assert_true(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", &h) > 0 &&
                h.chunked);
    assert_true(parse("HTTP/1.1 308 Moved\r\nLocation: https://x/\r\n\r\n", &h) > 0);
    assert_int_equal(h.location_len, 10);
    assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", &h) > 0);
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n",                        /* bare LF */
        "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",                                /* bare CR */
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", /* two lengths */
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", /* obsolete folding */
        "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",      /* space before the colon */
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "SMTP 220 hi\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (parse(bad[i], &h) != -1)
            fail_msg("accepted: %s", bad[i]);
    /* Over the head limit. */
    char big[200];
    memset(big, 'a', sizeof big);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    assert_int_equal(pg_http_parse_response(big, sizeof big, 100, &h), -2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
