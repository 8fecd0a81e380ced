/*
 * test_reply.c - the SMTP reply parser: RFC 5321 4.2 single and multi-line replies,
 * RFC 3463 enhanced status codes, and every bound a hostile server could push on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/reply.h"

/* A whole reply as the server sends it, and what the parser must make of it. */
static const struct {
    const char *wire;     /* bytes from the server */
    pg_reply_status want; /* final status */
    int code;             /* expected code (when DONE) */
    const char *enhanced; /* expected enhanced code */
    const char *text;     /* expected text (when DONE) */
} table[] = {
    {"220 mx.example.com ESMTP ready\r\n", PG_REPLY_DONE, 220, "", "mx.example.com ESMTP ready"},
    {"250 2.1.5 Ok\r\n", PG_REPLY_DONE, 250, "2.1.5", "2.1.5 Ok"},
    {"250\r\n", PG_REPLY_DONE, 250, "", ""},
    {"250 \r\n", PG_REPLY_DONE, 250, "", ""},
    {"250 ok\n", PG_REPLY_DONE, 250, "", "ok"}, /* bare LF tolerated */
    {"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n", PG_REPLY_DONE,
     250, "", "mx.example.com\nPIPELINING\nSIZE 10240000\n8BITMIME"},
    {"550-5.1.1 The email account that you tried to reach does not exist.\r\n"
     "550 5.1.1 Please try again.\r\n",
     PG_REPLY_DONE, 550, "5.1.1",
     "5.1.1 The email account that you tried to reach does not exist.\n5.1.1 Please try again."},
    /* RFC 3463: the class must match the reply's first digit. */
    {"550 2.1.5 odd\r\n", PG_REPLY_DONE, 550, "", "2.1.5 odd"},
    {"451 4.7.1 Try again later\r\n", PG_REPLY_DONE, 451, "4.7.1", "4.7.1 Try again later"},
    {"554 5.7.1234 too long detail\r\n", PG_REPLY_DONE, 554, "", "5.7.1234 too long detail"},
    {"535 5.7.8 Error: authentication failed\r\n", PG_REPLY_DONE, 535, "5.7.8",
     "5.7.8 Error: authentication failed"},
    {"554 DT:SPM 163 smtp3\r\n", PG_REPLY_DONE, 554, "", "DT:SPM 163 smtp3"},
    {"250 has\x01"
     "ctl\r\n",
     PG_REPLY_DONE, 250, "", "has?ctl"},
    /* Protocol errors. */
    {"250-OK\r\n550 no\r\n", PG_REPLY_ERROR, 0, NULL, NULL},
    {"250-a\r\n251 b\r\n", PG_REPLY_ERROR, 0, NULL, NULL},
    {"hello\r\n", PG_REPLY_ERROR, 0, NULL, NULL},
    {"25\r\n", PG_REPLY_ERROR, 0, NULL, NULL},
    {"\r\n", PG_REPLY_ERROR, 0, NULL, NULL},
    {"2500 x\r\n", PG_REPLY_ERROR, 0, NULL, NULL},
    {"250_x\r\n", PG_REPLY_ERROR, 0, NULL, NULL},
    {"650 x\r\n", PG_REPLY_ERROR, 0, NULL, NULL},
    {"199 x\r\n", PG_REPLY_ERROR, 0, NULL, NULL},
    {"260 x\r\n", PG_REPLY_ERROR, 0, NULL, NULL},
    {"\x16\x03\x01\x02\xa5\x01\r\n", PG_REPLY_ERROR, 0, NULL, NULL},
    /* Truncated: more is needed. */
    {"250-first\r\n", PG_REPLY_MORE, 0, NULL, NULL},
    {"250 no end of line", PG_REPLY_MORE, 0, NULL, NULL},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        pg_reply r;
        size_t used = 0;
        pg_reply_init(&r);
        pg_reply_status st = pg_reply_parse(&r, table[i].wire, strlen(table[i].wire), &used);
        if (st != table[i].want)
            fail_msg("row %zu (%s): status %d, want %d", i, table[i].wire, st, table[i].want);
        if (st == PG_REPLY_ERROR)
            assert_non_null(r.why);
        if (st != PG_REPLY_DONE)
            continue;
        assert_int_equal(used, strlen(table[i].wire));
        assert_int_equal(r.code, table[i].code);
        assert_string_equal(r.enhanced, table[i].enhanced);
        assert_string_equal(r.text, table[i].text);
        assert_int_equal(r.text_len, strlen(table[i].text));
    }
}

/* The same replies fed one line at a time give the same result. */
static void test_line_by_line(void **state)
{
    (void)state;
    const char *wire = "250-smtp.qq.com\r\n250-PIPELINING\r\n250-AUTH LOGIN PLAIN\r\n"
                       "250-AUTH=LOGIN PLAIN\r\n250 8BITMIME\r\n";
    pg_reply r;
    pg_reply_init(&r);
    const char *p = wire;
    pg_reply_status st = PG_REPLY_MORE;
    int lines = 0;
    while (*p != '\0') {
        const char *lf = strchr(p, '\n');
        st = pg_reply_feed(&r, p, (size_t)(lf - p) + 1);
        lines++;
        p = lf + 1;
        assert_int_equal(st, *p == '\0' ? PG_REPLY_DONE : PG_REPLY_MORE);
    }
    assert_int_equal(r.lines, 5);
    size_t pos = 0, len = 0;
    const char *line = NULL;
    const char *want[] = {"smtp.qq.com", "PIPELINING", "AUTH LOGIN PLAIN", "AUTH=LOGIN PLAIN",
                          "8BITMIME"};
    for (int i = 0; i < 5; i++) {
        assert_true(pg_reply_next_line(&r, &pos, &line, &len));
        assert_int_equal(len, strlen(want[i]));
        assert_memory_equal(line, want[i], len);
    }
    assert_false(pg_reply_next_line(&r, &pos, &line, &len));
    /* A line after the final one is an error. */
    assert_int_equal(pg_reply_feed(&r, "250 again\r\n", 11), PG_REPLY_ERROR);
}

/* Bounds: lines per reply, line length; kept text is capped without error. */
static void test_bounds(void **state)
{
    (void)state;
    pg_reply r;
    pg_reply_init(&r);
    pg_reply_status st = PG_REPLY_MORE;
    int fed = 0;
    for (int i = 0; i < 10000 && st == PG_REPLY_MORE; i++, fed++)
        st = pg_reply_feed(&r, "250-line\r\n", 10);
    assert_int_equal(st, PG_REPLY_ERROR);
    assert_int_equal(fed, PG_REPLY_LINES_MAX + 1);
    assert_int_equal(pg_reply_feed(&r, "250 end\r\n", 9), PG_REPLY_ERROR); /* stays failed */

    size_t n = 1 << 20;
    char *big = malloc(n + 3);
    assert_non_null(big);
    memcpy(big, "250 ", 4);
    memset(big + 4, 'x', n - 4);
    memcpy(big + n, "\r\n", 3);
    pg_reply_init(&r);
    assert_int_equal(pg_reply_feed(&r, big, n + 2), PG_REPLY_ERROR);
    size_t used = 0;
    pg_reply_init(&r);
    assert_int_equal(pg_reply_parse(&r, big, n, &used), PG_REPLY_ERROR); /* no LF at all */
    free(big);

    /* 100 lines of 2000 characters: accepted, text truncated to the bound. */
    char line[2010];
    memcpy(line, "250-", 4);
    memset(line + 4, 'y', 2000);
    memcpy(line + 2004, "\r\n", 2);
    pg_reply_init(&r);
    for (int i = 0; i < 99; i++)
        assert_int_equal(pg_reply_feed(&r, line, 2006), PG_REPLY_MORE);
    line[3] = ' ';
    assert_int_equal(pg_reply_feed(&r, line, 2006), PG_REPLY_DONE);
    assert_true(r.truncated);
    assert_int_equal(r.text_len, PG_REPLY_TEXT_MAX - 1);
    assert_int_equal(strlen(r.text), r.text_len);
}

/* NUL bytes in a line neither end the text early in a way that breaks bounds nor pass. */
static void test_nul_in_line(void **state)
{
    (void)state;
    pg_reply r;
    pg_reply_init(&r);
    assert_int_equal(pg_reply_feed(&r, "250 a\0b\r\n", 9), PG_REPLY_DONE);
    assert_int_equal(r.text_len, 3);
    assert_memory_equal(r.text, "a?b", 3);
}

static void test_enhanced_parse(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(pg_enhanced_code_parse("5.1.1 x", 7, 5, out), 5);
    assert_string_equal(out, "5.1.1");
    assert_int_equal(pg_enhanced_code_parse("4.7.0", 5, 0, out), 5);
    assert_int_equal(pg_enhanced_code_parse("5.123.456 y", 11, 5, out), 9);
    assert_string_equal(out, "5.123.456");
    assert_int_equal(pg_enhanced_code_parse("3.1.1 x", 7, 0, out), 0);
    assert_int_equal(pg_enhanced_code_parse("5.1.1x", 6, 5, out), 0);
    assert_int_equal(pg_enhanced_code_parse("5..1", 4, 5, out), 0);
    assert_int_equal(pg_enhanced_code_parse("5.1.", 4, 5, out), 0);
    assert_int_equal(pg_enhanced_code_parse("5.1", 3, 5, out), 0);
    assert_int_equal(pg_enhanced_code_parse("5.1.1", 5, 4, out), 0);
    assert_int_equal(pg_enhanced_code_parse("5.1234.1", 8, 5, out), 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),          cmocka_unit_test(test_line_by_line),
        cmocka_unit_test(test_bounds),         cmocka_unit_test(test_nul_in_line),
        cmocka_unit_test(test_enhanced_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
