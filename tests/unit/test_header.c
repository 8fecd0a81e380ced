/*
 * test_header.c - field names (RFC 5322 2.2), CR/LF/NUL checks, UTF-8 validation
 * (RFC 3629 3 and 4) and complete unstructured fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/encode.h"

static void test_name_valid(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int valid;
    } table[] = {
        {"Subject", 1},
        {"X-Mailer", 1},
        {"a", 1},
        {"!#$%&'*+-.^_`|~", 1},
        {"", 0},
        {"Sub ject", 0},
        {"Subject:", 0},
        {"Sub\tject", 0},
        {"Subj\x7f", 0},
        {"Sübject", 0},
        {"Sub\r\nBcc", 0},
        {"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", 1},
        {"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", 0},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        assert_int_equal(pg_header_name_valid(table[i].name) != 0, table[i].valid);
    assert_int_equal(pg_header_name_valid(NULL), 0);
}

static void test_ctl_breaks(void **state)
{
    (void)state;
    assert_false(pg_has_ctl_breaks("plain text\twith tab", 19));
    assert_true(pg_has_ctl_breaks("a\rb", 3));
    assert_true(pg_has_ctl_breaks("a\nb", 3));
    assert_true(pg_has_ctl_breaks("a\0b", 3));
    assert_false(pg_has_ctl_breaks("a\0b", 1)); /* only within n */
    assert_false(pg_has_ctl_breaks("", 0));
}

static void test_utf8_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        int valid;
    } table[] = {
        {"", 0, 1},
        {"ascii", 5, 1},
        {"\xc2\x80", 2, 1},         /* U+0080 */
        {"\xdf\xbf", 2, 1},         /* U+07FF */
        {"\xe0\xa0\x80", 3, 1},     /* U+0800 */
        {"\xed\x9f\xbf", 3, 1},     /* U+D7FF */
        {"\xee\x80\x80", 3, 1},     /* U+E000 */
        {"\xef\xbf\xbf", 3, 1},     /* U+FFFF */
        {"\xf0\x90\x80\x80", 4, 1}, /* U+10000 */
        {"\xf4\x8f\xbf\xbf", 4, 1}, /* U+10FFFF */
        {"\xc0\xaf", 2, 0},         /* overlong '/' */
        {"\xc1\xbf", 2, 0},
        {"\xe0\x9f\xbf", 3, 0},     /* overlong */
        {"\xf0\x8f\xbf\xbf", 4, 0}, /* overlong */
        {"\xed\xa0\x80", 3, 0},     /* U+D800 surrogate */
        {"\xed\xbf\xbf", 3, 0},     /* U+DFFF surrogate */
        {"\xf4\x90\x80\x80", 4, 0}, /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xff", 1, 0},
        {"\x80", 1, 0},         /* lone continuation */
        {"\xe4\xb8", 2, 0},     /* truncated */
        {"\xe4\xb8\xad", 2, 0}, /* truncated by n */
        {"\xe4\x41\xad", 3, 0}, /* bad continuation */
        {"a\xf0\x9f\x8e\x89z", 6, 1},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        assert_int_equal(pg_utf8_valid(table[i].s, table[i].n) != 0, table[i].valid);
}

static void test_unstructured_fields(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *value;
        const char *out;
    } table[] = {
        {"Subject", "Hello world", "Subject: Hello world\r\n"},
        {"Subject", "", "Subject:\r\n"},
        {"Subject", "你好", "Subject: =?UTF-8?B?5L2g5aW9?=\r\n"},
        {"X-Note", "a\tb", "X-Note: a\tb\r\n"},
        {"Subject",
         "The quick brown fox jumps over the lazy dog and keeps running far away from here",
         "Subject: The quick brown fox jumps over the lazy dog and keeps running far\r\n"
         " away from here\r\n"},
        {"Subject", "=?UTF-8?Q?=0D=0A?=", "Subject: =?UTF-8?B?PT9VVEYtOD9RPz0wRD0wQT89?=\r\n"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        pg_buf b;
        pg_buf_init(&b);
        assert_int_equal(pg_header_unstructured(&b, table[i].name, table[i].value), PIGEON_OK);
        assert_string_equal(b.data, table[i].out);
        pg_buf_cleanup(&b);
    }
}

/* Lines stay within 78 and the field decodes back, for a long mixed value. */
static void test_unstructured_long(void **state)
{
    (void)state;
    pg_buf value, b, dec;
    pg_buf_init(&value);
    pg_buf_init(&b);
    pg_buf_init(&dec);
    for (int i = 0; i < 40; i++)
        pg_buf_puts(&value, i % 2 ? "word " : "文字 ");
    pg_buf_puts(&value, "end");
    assert_int_equal(pg_header_unstructured(&b, "Subject", value.data), PIGEON_OK);
    size_t line = 0;
    for (size_t i = 0; i < b.len; i++) {
        if (b.data[i] == '\r') {
            assert_int_equal(b.data[i + 1], '\n');
            assert_true(i + 2 == b.len || b.data[i + 2] == ' ');
            i++;
            line = 0;
        } else {
            assert_true(++line <= 78);
        }
    }
    assert_int_equal(pg_ew_decode(&dec, b.data + 9, b.len - 11), PIGEON_OK);
    assert_string_equal(dec.data, value.data);
    pg_buf_cleanup(&value);
    pg_buf_cleanup(&b);
    pg_buf_cleanup(&dec);
}

static void test_unstructured_errors(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *value;
        pigeon_err err;
    } table[] = {
        {"Subject", "a\r\nBcc: victim@example.com", PIGEON_ERR_HEADER},
        {"Subject", "line\nbreak", PIGEON_ERR_HEADER},
        {"Bad Name", "x", PIGEON_ERR_HEADER},
        {"Subject:", "x", PIGEON_ERR_HEADER},
        {"", "x", PIGEON_ERR_HEADER},
        {"Subject", "caf\xe9", PIGEON_ERR_CHARSET},
        {NULL, "x", PIGEON_ERR_INVALID},
        {"Subject", NULL, PIGEON_ERR_INVALID},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        pg_buf b;
        pg_buf_init(&b);
        assert_int_equal(pg_header_unstructured(&b, table[i].name, table[i].value), table[i].err);
        assert_int_equal(b.len, 0);
        pg_buf_cleanup(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_valid),        cmocka_unit_test(test_ctl_breaks),
        cmocka_unit_test(test_utf8_valid),        cmocka_unit_test(test_unstructured_fields),
        cmocka_unit_test(test_unstructured_long), cmocka_unit_test(test_unstructured_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
