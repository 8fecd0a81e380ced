/*
 * test_qp.c - quoted-printable (RFC 2045 6.7): the five encoding rules, soft breaks at
 * 76 columns, hard CRLF breaks, and the final soft break for text without a last CRLF.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/encode.h"

static char *repeat(char c, size_t n, const char *suffix)
{
    size_t sl = strlen(suffix);
    char *s = malloc(n + sl + 1);
    assert_non_null(s);
    memset(s, c, n);
    memcpy(s + n, suffix, sl + 1);
    return s;
}

static void check_encode(const char *in, size_t n, const char *want)
{
    pg_buf b;
    pg_buf_init(&b);
    assert_int_equal(pg_qp_encode(&b, in, n), PIGEON_OK);
    assert_string_equal(b.data ? b.data : "", want);
    assert_int_equal(pg_qp_encoded_len(in, n), strlen(want));
    pg_buf_cleanup(&b);
}

static void test_rules_table(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } table[] = {
        {"", ""},
        {"abc\r\n", "abc\r\n"},
        {"abc", "abc=\r\n"},      /* no final CRLF: a soft break so it decodes exactly */
        {"a=b\r\n", "a=3Db\r\n"}, /* rule 1: '=' */
        {"trailing space \r\n", "trailing space=20\r\n"},   /* rule 3 */
        {"tab\t\r\nnext\r\n", "tab=09\r\nnext\r\n"},        /* rule 3 */
        {"in the middle\tok\r\n", "in the middle\tok\r\n"}, /* rule 3: not at the end */
        {"end space ", "end space=20=\r\n"},
        {"caf\xc3\xa9\r\n", "caf=C3=A9\r\n"}, /* rule 1: 8-bit */
        {"lone\nLF\r\n", "lone=0ALF\r\n"},    /* only CRLF is a line break */
        {"lone\rCR\r\n", "lone=0DCR\r\n"},
        {"\r\n\r\n", "\r\n\r\n"},
        {".leading dot\r\nFrom me\r\n", ".leading dot\r\nFrom me\r\n"},
        {"ctl\x01\x7f\r\n", "ctl=01=7F\r\n"},
        {"~!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}\r\n", "~!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}\r\n"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        check_encode(table[i].in, strlen(table[i].in), table[i].out);
    check_encode("nul\0byte\r\n", 10, "nul=00byte\r\n");
}

/* Rule 5: 76 characters fit before a hard break; elsewhere 75 and the '='. */
static void test_soft_breaks(void **state)
{
    (void)state;
    char *in, *want;
    in = repeat('a', 76, "\r\n");
    check_encode(in, strlen(in), in);
    free(in);

    in = repeat('a', 77, "\r\n");
    want = repeat('a', 75, "=\r\naa\r\n");
    check_encode(in, strlen(in), want);
    free(in);
    free(want);

    in = repeat('a', 76, "");
    want = repeat('a', 75, "=\r\na=\r\n");
    check_encode(in, strlen(in), want);
    free(in);
    free(want);

    /* An =XX escape is never split across a soft break. */
    in = repeat('a', 74, "\xc3\xa9");
    want = repeat('a', 74, "=\r\n=C3=A9=\r\n");
    check_encode(in, strlen(in), want);
    free(in);
    free(want);

    /* 25 escapes fill 75 columns exactly. */
    in = repeat('=', 30, "\r\n");
    pg_buf b;
    pg_buf_init(&b);
    for (int i = 0; i < 25; i++)
        pg_buf_puts(&b, "=3D");
    pg_buf_puts(&b, "=\r\n=3D=3D=3D=3D=3D\r\n");
    check_encode(in, strlen(in), b.data);
    pg_buf_cleanup(&b);
    free(in);
}

static void check_lines(const char *s, size_t n)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r') {
            assert_true(i + 1 < n && s[i + 1] == '\n');
            assert_true(i == 0 || (s[i - 1] != ' ' && s[i - 1] != '\t'));
            i++;
            col = 0;
            continue;
        }
        assert_true((c >= 32 && c <= 126) || c == '\t');
        assert_true(++col <= 76);
    }
    assert_true(n == 0 || (n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n'));
}

/* Any bytes: lines within 76, only CRLF, length as predicted, exact decode. */
static void test_round_trip_random(void **state)
{
    (void)state;
    static const char alphabet[] = {'a', ' ', '\t', '=', '\r', '\n', '.', 'Z', (char)0xe4, 0};
    uint32_t seed = 5;
    for (int round = 0; round < 2000; round++) {
        char in[300];
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % sizeof in;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = alphabet[(seed >> 16) % sizeof alphabet];
        }
        pg_buf enc, dec;
        pg_buf_init(&enc);
        pg_buf_init(&dec);
        assert_int_equal(pg_qp_encode(&enc, in, n), PIGEON_OK);
        assert_int_equal(pg_qp_encoded_len(in, n), enc.len);
        check_lines(enc.data ? enc.data : "", enc.len);
        assert_int_equal(pg_qp_decode(&dec, enc.data ? enc.data : "", enc.len), PIGEON_OK);
        assert_int_equal(dec.len, n);
        assert_memory_equal(dec.len ? dec.data : "", in, n);
        pg_buf_cleanup(&enc);
        pg_buf_cleanup(&dec);
    }
}

/* Longer than one internal slice, so state crosses slice boundaries. */
static void test_large_input(void **state)
{
    (void)state;
    size_t n = 100000;
    char *in = malloc(n);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = i % 97 == 96 ? '\r' : i % 97 == 0 && i ? '\n' : (char)('A' + i % 50);
    pg_buf enc, dec;
    pg_buf_init(&enc);
    pg_buf_init(&dec);
    assert_int_equal(pg_qp_encode(&enc, in, n), PIGEON_OK);
    assert_int_equal(pg_qp_encoded_len(in, n), enc.len);
    check_lines(enc.data, enc.len);
    assert_int_equal(pg_qp_decode(&dec, enc.data, enc.len), PIGEON_OK);
    assert_int_equal(dec.len, n);
    assert_memory_equal(dec.data, in, n);
    pg_buf_cleanup(&enc);
    pg_buf_cleanup(&dec);
    free(in);
}

static void test_decode_table(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        pigeon_err err;
        const char *out;
    } table[] = {
        {"abc=\r\ndef\r\n", PIGEON_OK, "abcdef\r\n"},    /* soft break */
        {"caf=c3=a9\r\n", PIGEON_OK, "caf\xc3\xa9\r\n"}, /* lowercase hex */
        {"trail   \r\nx", PIGEON_OK, "trail\r\nx"},      /* transport padding deleted */
        {"soft=  \r\nx", PIGEON_OK, "softx"},            /* white space after the '=' */
        {"unix=\nline\n", PIGEON_OK, "unixline\n"},      /* LF-only soft break */
        {"end=", PIGEON_OK, "end"},
        {"a=3D=3d\r\n", PIGEON_OK, "a==\r\n"},
        {"bad=G1", PIGEON_ERR_INVALID, NULL},
        {"bad=4", PIGEON_ERR_INVALID, NULL},
        {"bad= x\r\n", PIGEON_ERR_INVALID, NULL},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        pg_buf b;
        pg_buf_init(&b);
        assert_int_equal(pg_qp_decode(&b, table[i].in, strlen(table[i].in)), table[i].err);
        if (table[i].out != NULL)
            assert_string_equal(b.data, table[i].out);
        else
            assert_int_equal(b.len, 0);
        pg_buf_cleanup(&b);
    }
}

/* pg_qp_encode_text: a lone CR or LF is a hard line break like CRLF, so the output is the
 * encoding of the text with its line breaks made CRLF (RFC 2046 4.1.1). */
static void test_text_line_breaks(void **state)
{
    (void)state;
    static const char *const table[] = {
        "a\nb\n",    "a\rb\r",  "a\r\nb\r\n",          "mixed\r\nlf\ncr\rend",
        "trail \nx", "tab\t\r", "end space ",          "\n\n\r\r\n",
        "=\n=\r",    "",        "\xc3\xa9\n.From x\n",
    };
    char *longline = repeat('y', 200, " \nnext\rlast");
    for (size_t i = 0; i <= sizeof table / sizeof table[0]; i++) {
        const char *in = i < sizeof table / sizeof table[0] ? table[i] : longline;
        size_t n = strlen(in);
        pg_buf crlf, want, got;
        pg_buf_init(&crlf);
        pg_buf_init(&want);
        pg_buf_init(&got);
        for (size_t k = 0; k < n; k++) {
            if (in[k] != '\r' && in[k] != '\n') {
                pg_buf_putc(&crlf, in[k]);
                continue;
            }
            pg_buf_append(&crlf, "\r\n", 2);
            k += in[k] == '\r' && in[k + 1] == '\n';
        }
        assert_int_equal(pg_qp_encode(&want, crlf.data ? crlf.data : "", crlf.len), PIGEON_OK);
        assert_int_equal(pg_qp_encode_text(&got, in, n), PIGEON_OK);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, want.len);
        pg_buf_cleanup(&crlf);
        pg_buf_cleanup(&want);
        pg_buf_cleanup(&got);
    }
    free(longline);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_table),       cmocka_unit_test(test_soft_breaks),
        cmocka_unit_test(test_round_trip_random), cmocka_unit_test(test_large_input),
        cmocka_unit_test(test_decode_table),      cmocka_unit_test(test_text_line_breaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
