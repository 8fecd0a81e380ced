/*
 * test_param.c - MIME parameters (RFC 2045 5.1) and RFC 2231 extended, continued values,
 * plus the quoted encoded-word form QQ Mail and Outlook read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/encode.h"

typedef pigeon_err (*param_fn)(pg_buf *, size_t *, const char *, const char *);

static const struct {
    param_fn fn;
    const char *name;
    const char *value;
    size_t col;
    const char *out;
} cases[] = {
    {pg_param_append, "charset", "utf-8", 24, "; charset=utf-8"},
    {pg_param_append, "filename", "a b.txt", 31, "; filename=\"a b.txt\""},
    {pg_param_append, "filename", "quote\".txt", 31, "; filename=\"quote\\\".txt\""},
    {pg_param_append, "filename", "back\\slash", 31, "; filename=\"back\\\\slash\""},
    {pg_param_append, "filename", "", 31, "; filename=\"\""},
    {pg_param_append, "filename", "semi;colon", 31, "; filename=\"semi;colon\""},
    /* RFC 2231 4: non-ASCII as charset''percent-encoding. */
    {pg_param_append, "filename", "报告.pdf", 31, "; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf"},
    {pg_param_append, "filename", "tab\tname", 31, "; filename*=UTF-8''tab%09name"},
    /* An encoded-word lookalike: readers decode those even in quoted-strings. */
    {pg_param_append, "filename", "=?UTF-8?B?Zm9v?=.txt", 31,
     ";\r\n filename*=UTF-8''%3D%3FUTF-8%3FB%3FZm9v%3F%3D.txt"},
    /* Folded before a parameter that would pass column 78. */
    {pg_param_append, "boundary", "abc", 70, ";\r\n boundary=abc"},
    /* RFC 2231 3: a long value in numbered sections, one per line (compare the RFC's
     * title*0*=us-ascii'en'This%20is%20even%20more%20 example). */
    {pg_param_append, "title",
     "This is even more ***fun*** isn't it! This is even more ***fun*** isn't it!", 12,
     ";\r\n title*0*=UTF-8''This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn%27t%20;"
     "\r\n title*1*=it!%20This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn%27t%20i;"
     "\r\n title*2*=t!"},
    {pg_param_append_ew, "filename", "报告.pdf", 31, "; filename=\"=?UTF-8?B?5oql5ZGKLnBkZg==?=\""},
    {pg_param_append_ew, "filename", "report.pdf", 31, "; filename=report.pdf"},
    {pg_param_append_ew, "name", "a b", 31, "; name=\"a b\""},
};

static void test_param_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pg_buf b;
        pg_buf_init(&b);
        size_t col = cases[i].col;
        assert_int_equal(cases[i].fn(&b, &col, cases[i].name, cases[i].value), PIGEON_OK);
        assert_string_equal(b.data, cases[i].out);
        const char *nl = strrchr(cases[i].out, '\n');
        assert_int_equal(col, nl ? strlen(nl + 1) : cases[i].col + strlen(cases[i].out));
        pg_buf_cleanup(&b);
    }
}

/* Decodes RFC 2231 %XX in [s, s+n) into out. */
static void pct_decode(pg_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            pg_buf_putc(out, (char)strtol(hex, NULL, 16));
            i += 2;
        } else {
            pg_buf_putc(out, s[i]);
        }
    }
}

/* Continued sections: lines within 78, each section whole UTF-8, all of it = input. */
static void test_continuations_split_whole_characters(void **state)
{
    (void)state;
    static const char *const pieces[] = {"中", "é", "🎉", "a", " ", "%"};
    for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
        pg_buf value, b, joined;
        pg_buf_init(&value);
        pg_buf_init(&b);
        pg_buf_init(&joined);
        for (int i = 0; i < 70; i++)
            pg_buf_puts(&value, i % 3 ? pieces[p] : "\xe6\x96\x87");
        size_t col = 31;
        assert_int_equal(pg_param_append(&b, &col, "filename", value.data), PIGEON_OK);
        assert_non_null(strstr(b.data, "filename*0*=UTF-8''"));
        for (char *line = b.data; line != NULL && *line != '\0';) {
            char *lf = strchr(line, '\n');
            size_t len = lf ? (size_t)(lf - line) : strlen(line);
            char *next = lf ? lf + 1 : NULL;
            if (len > 0 && line[len - 1] == '\r')
                len--;
            assert_true(len <= 78);
            char *eq = strstr(line, "*=");
            if (eq == NULL || eq > line + len) {
                line = next;
                continue;
            }
            const char *text = eq + 2;
            if (strncmp(text, "UTF-8''", 7) == 0)
                text += 7;
            size_t tl = (size_t)(line + len - text) - (line[len - 1] == ';');
            pg_buf section;
            pg_buf_init(&section);
            pct_decode(&section, text, tl);
            assert_true(pg_utf8_valid(section.data, section.len));
            pg_buf_append(&joined, section.data, section.len);
            pg_buf_cleanup(&section);
            line = next;
        }
        assert_string_equal(joined.data, value.data);
        pg_buf_cleanup(&value);
        pg_buf_cleanup(&b);
        pg_buf_cleanup(&joined);
    }
}

static void test_param_errors(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *value;
        pigeon_err err;
    } table[] = {
        {"file name", "x", PIGEON_ERR_HEADER},   {"", "x", PIGEON_ERR_HEADER},
        {"a*b", "x", PIGEON_ERR_HEADER},         {"na=me", "x", PIGEON_ERR_HEADER},
        {"name", "a\r\nb", PIGEON_ERR_HEADER},   {"name", "a\nb", PIGEON_ERR_HEADER},
        {"name", "caf\xe9", PIGEON_ERR_CHARSET}, {"name", "\xed\xa0\x80", PIGEON_ERR_CHARSET},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        for (int ew = 0; ew < 2; ew++) {
            pg_buf b;
            pg_buf_init(&b);
            size_t col = 31;
            param_fn fn = ew ? pg_param_append_ew : pg_param_append;
            assert_int_equal(fn(&b, &col, table[i].name, table[i].value), table[i].err);
            assert_int_equal(b.len, 0);
            pg_buf_cleanup(&b);
        }
    }
    pg_buf b;
    pg_buf_init(&b);
    size_t col = 0;
    assert_int_equal(pg_param_append(&b, &col, "name", NULL), PIGEON_ERR_INVALID);
    pg_buf_cleanup(&b);
}

/* The quoted encoded-word form keeps room for the closing quote and a ';'. */
static void test_param_ew_long(void **state)
{
    (void)state;
    pg_buf value, b;
    pg_buf_init(&value);
    pg_buf_init(&b);
    for (int i = 0; i < 60; i++)
        pg_buf_puts(&value, "\xc3\xa9");
    for (size_t col = 20; col < 78; col += 7) {
        size_t c = col;
        pg_buf_reset(&b);
        assert_int_equal(pg_param_append_ew(&b, &c, "name", value.data), PIGEON_OK);
        size_t line = col;
        for (size_t i = 0; i < b.len; i++) {
            if (b.data[i] == '\r') {
                i++;
                line = 0;
            } else {
                assert_true(++line <= 78);
            }
        }
        assert_true(line <= 77); /* the next parameter's ';' still fits */
        assert_int_equal(b.data[b.len - 1], '"');
        /* Everything between the quotes decodes back to the value. */
        char *open = strchr(b.data, '"');
        pg_buf dec;
        pg_buf_init(&dec);
        assert_int_equal(pg_ew_decode(&dec, open + 1, (size_t)(b.data + b.len - 1 - open - 1)),
                         PIGEON_OK);
        assert_string_equal(dec.data, value.data);
        pg_buf_cleanup(&dec);
    }
    pg_buf_cleanup(&value);
    pg_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_table),
        cmocka_unit_test(test_continuations_split_whole_characters),
        cmocka_unit_test(test_param_errors),
        cmocka_unit_test(test_param_ew_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
