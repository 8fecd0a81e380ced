/*
 * test_transfer.c - the queue export line parser and its body decoder
 * (lib/transfer/transfer_line.c): RFC 4648 section 10 vectors, padded and not, read
 * through buffers of every small size; RFC 8259 strings (escapes, surrogate pairs,
 * control characters, U+0000), numbers (integers only where the format wants them) and
 * the format's lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transfer/transfer.h"

/* Decodes b64 through buffers of cap bytes; returns the length or -1. */
static long decode(const char *b64, size_t cap, unsigned char *out, size_t room)
{
    pg_transfer_body b = {b64, strlen(b64), {0}, 0, 0, 0};
    size_t total = 0;
    for (;;) {
        size_t n = 0;
        if (pg_transfer_body_read(&b, out + total, cap < room - total ? cap : room - total, &n) !=
            0)
            return -1;
        if (n == 0)
            return (long)total;
        total += n;
    }
}

static void base64_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"", ""},
        {"Zg==", "f"},
        {"Zm8=", "fo"},
        {"Zm9v", "foo"},
        {"Zm9vYg==", "foob"},
        {"Zm9vYmE=", "fooba"},
        {"Zm9vYmFy", "foobar"},
        {"Zg", "f"},
        {"Zm8", "fo"},
        {"Zm9vYmE", "fooba"},
        {"+/+/", "\xfb\xff\xbf"},
    };
    static const char *const bad[] = {"Z", "Zg=a", "Z===", "Zg==Zg==", "Zm9v!", "Zm 9v", "=Zg="};
    unsigned char out[64];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        for (size_t cap = 1; cap <= 8; cap++) {
            long n = decode(ok[i].in, cap, out, sizeof out);
            assert_int_equal(n, (long)strlen(ok[i].out));
            assert_memory_equal(out, ok[i].out, (size_t)n);
        }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (size_t cap = 1; cap <= 4; cap++)
            assert_int_equal(decode(bad[i], cap, out, sizeof out), -1);
}

/* Parses a message line whose account is the JSON string literal account_json. */
static pigeon_err parse_account(const char *account_json, pg_transfer_line *l, char *err,
                                size_t errlen)
{
    char line[1024];
    snprintf(line, sizeof line,
             "{\"queue_id\":\"01HF7YAT007KVRKBT6SPKZJQQ0\",\"account\":%s,\"mail_from\":\"\","
             "\"created_ms\":1,\"size\":0,\"sha256\":\"%064d\",\"recipients\":[{\"address\":"
             "\"a@b\",\"state\":\"queued\"}],\"body\":\"\"}",
             account_json, 0);
    static char keep[1024];
    memcpy(keep, line, sizeof keep);
    return pg_transfer_line_parse(keep, strlen(keep), l, err, errlen);
}

static void strings(void **state)
{
    (void)state;
    static const struct {
        const char *json, *want;
    } ok[] = {
        {"\"plain\"", "plain"},
        {"\"q\\\"b\\\\s\\/\"", "q\"b\\s/"},
        {"\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t"},
        {"\"\\u00e9t\\u00E9\"", "\xc3\xa9t\xc3\xa9"},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"},
        {"\"\xe2\x82\xac\"", "\xe2\x82\xac"},
    };
    static const char *const bad[] = {
        "\"a\\u0000b\"",  "\"\\ud800\"", "\"\\ude00\"", "\"\\ud800\\u0041\"",
        "\"\\x\"",        "\"a\tb\"",    "\"\xff\"",    "\"\xc0\xaf\"",
        "\"unterminated", "12",          "null",
    };
    char err[200];
    pg_transfer_line l;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(parse_account(ok[i].json, &l, err, sizeof err), PIGEON_OK);
        assert_int_equal(l.kind, PG_TRANSFER_MESSAGE);
        assert_string_equal(l.msg.account, ok[i].want);
        pg_transfer_line_cleanup(&l);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse_account(bad[i], &l, err, sizeof err), PIGEON_ERR_INVALID);
        assert_true(err[0] != '\0');
        pg_transfer_line_cleanup(&l);
    }
}

static pigeon_err parse(const char *text, pg_transfer_line *l, char *err, size_t errlen)
{
    static char buf[2048];
    snprintf(buf, sizeof buf, "%s", text);
    return pg_transfer_line_parse(buf, strlen(buf), l, err, errlen);
}

static void lines(void **state)
{
    (void)state;
    char err[200];
    pg_transfer_line l;
    /* Unknown keys are skipped, whatever they hold. */
    assert_int_equal(parse("{\"format\":\"pigeon-queue\",\"version\":1,\"x\":[1,{\"y\":[]},-2.5e3,"
                           "true,null]} \r",
                           &l, err, sizeof err),
                     PIGEON_OK);
    assert_int_equal(l.kind, PG_TRANSFER_HEADER);
    assert_int_equal(l.version, 1);
    assert_int_equal(parse("{\"end\":true,\"messages\":42}", &l, err, sizeof err), PIGEON_OK);
    assert_int_equal(l.kind, PG_TRANSFER_END);
    assert_int_equal(l.messages, 42);
    static const char *const bad[] = {
        "",
        "{",
        "{}",
        "[]",
        "{\"end\":true,\"messages\":1} x",
        "{\"end\":true,\"messages\":01}",
        "{\"end\":true,\"messages\":1.0}",
        "{\"end\":true,\"messages\":1e2}",
        "{\"end\":true,\"messages\":-1}",
        "{\"end\":true,\"messages\":9223372036854775808}",
        "{\"end\":false,\"messages\":1}",
        "{\"end\":true,\"end\":true,\"messages\":1}",
        "{\"format\":\"pigeon-queue\"}",
        "{\"format\":\"other\",\"version\":1}",
        "{\"format\":\"pigeon-queue\",\"version\":1,\"messages\":3}",
        "{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
        "{\"end\":true,\"messages\":1,}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(parse(bad[i], &l, err, sizeof err), PIGEON_ERR_INVALID);
        assert_true(err[0] != '\0');
        pg_transfer_line_cleanup(&l);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base64_vectors),
        cmocka_unit_test(strings),
        cmocka_unit_test(lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
