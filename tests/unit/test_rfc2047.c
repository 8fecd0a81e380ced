/*
 * test_rfc2047.c - RFC 2047 encoded-words: encoding (B or Q, 75-character words, whole
 * UTF-8 characters, 78-column folding, injection defence) and decoding (RFC 2047 section
 * 8 examples, legacy charsets through iconv).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/encode.h"

/* The buffer's text as a heap string ("" when nothing was appended); frees the buffer. */
static char *take(pg_buf *b)
{
    char *s = strdup(b->data != NULL ? b->data : "");
    assert_non_null(s);
    pg_buf_cleanup(b);
    return s;
}

static char *encode(const char *in, size_t col, pg_ew_context ctx, size_t *col_after)
{
    pg_buf b;
    pg_buf_init(&b);
    assert_int_equal(pg_ew_encode(&b, &col, in, strlen(in), ctx), PIGEON_OK);
    if (col_after != NULL)
        *col_after = col;
    return take(&b);
}

static char *decode(const char *in)
{
    pg_buf b;
    pg_buf_init(&b);
    assert_int_equal(pg_ew_decode(&b, in, strlen(in)), PIGEON_OK);
    return take(&b);
}

static void test_encode_table(void **state)
{
    (void)state;
    static const struct {
        pg_ew_context ctx;
        const char *in;
        const char *out;
    } table[] = {
        {PG_EW_TEXT, "Hello world", "Hello world"},
        {PG_EW_TEXT, "Hello 世界", "Hello =?UTF-8?B?5LiW55WM?="},
        {PG_EW_TEXT, "caf\xc3\xa9", "=?UTF-8?B?Y2Fmw6k=?="},      /* B 8 < Q 9 */
        {PG_EW_TEXT, "M\xc3\xbcller", "=?UTF-8?Q?M=C3=BCller?="}, /* Q 11 < B 12 */
        {PG_EW_TEXT, "\xc3\xa9.x", "=?UTF-8?Q?=C3=A9.x?="},       /* a tie: Q */
        {PG_EW_TEXT, "a_b?c=d \xc3\xa9", "a_b?c=d =?UTF-8?B?w6k=?="},
        /* White space between encoded words is encoded inside them (RFC 2047 6.2). */
        {PG_EW_TEXT, "Re: 你好  世界 ok", "Re: =?UTF-8?B?5L2g5aW9ICDkuJbnlYw=?= ok"},
        /* Leading and trailing white space, which parsers strip, is carried encoded. */
        {PG_EW_TEXT, "  lead", "=?UTF-8?Q?__lead?="},
        {PG_EW_TEXT, "trail ", "=?UTF-8?Q?trail_?="},
        {PG_EW_TEXT, "a\tb", "a\tb"},
        {PG_EW_TEXT, "tab\t", "=?UTF-8?Q?tab=09?="},
        /* An encoded-word lookalike is encoded so that a decoder shows it literally. */
        {PG_EW_TEXT, "=?UTF-8?Q?=0D=0A?=", "=?UTF-8?B?PT9VVEYtOD9RPz0wRD0wQT89?="},
        {PG_EW_TEXT, "x=?y", "=?UTF-8?Q?x=3D=3Fy?="},
        {PG_EW_TEXT, "", ""},
        /* RFC 2047 5(3): in a phrase Q leaves only letters, digits and !*+-/ bare. */
        {PG_EW_PHRASE, "\xc3\xa9.x", "=?UTF-8?B?w6kueA==?="},
        {PG_EW_PHRASE, "M\xc3\xbcller, H", "=?UTF-8?Q?M=C3=BCller=2C_H?="},
        {PG_EW_PHRASE, "张三", "=?UTF-8?B?5byg5LiJ?="},
        {PG_EW_PHRASE, "John Smith", "John Smith"},
        {PG_EW_PHRASE, "O'Brien", "O'Brien"},
        /* Specials make a quoted-string (RFC 5322 3.2.4) with quoted-pairs. */
        {PG_EW_PHRASE, "Zhang, San", "\"Zhang, San\""},
        {PG_EW_PHRASE, "Dr. Who", "\"Dr. Who\""},
        {PG_EW_PHRASE, "say \"hi\" \\o/", "\"say \\\"hi\\\" \\\\o/\""},
        {PG_EW_PHRASE, "  Bob  ", "\"  Bob  \""},
        {PG_EW_PHRASE, "=?UTF-8?Q?=0D=0A?=", "=?UTF-8?B?PT9VVEYtOD9RPz0wRD0wQT89?="},
        {PG_EW_PHRASE, "", ""},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t col_after;
        char *got = encode(table[i].in, 9, table[i].ctx, &col_after);
        assert_string_equal(got, table[i].out);
        assert_int_equal(col_after, 9 + strlen(table[i].out));
        free(got);
    }
}

/* Checks one encoded value: RFC 5322 2.1.1 / 2.2.3 folding, RFC 2047 2 word length,
 * whole UTF-8 characters per word, and the Q alphabet of the context. */
static void check_wire(const char *s, size_t col, pg_ew_context ctx)
{
    size_t line = col;
    for (const char *p = s; *p; p++) {
        if (*p == '\r') {
            assert_int_equal(p[1], '\n');
            assert_true(p[2] == ' ' || p[2] == '\t'); /* a fold, never a bare break */
            /* A fold before the first token only when the caller's line is full. */
            assert_true(p == s ? col > 1 : p[-1] != ' ' && p[-1] != '\t');
            p++;
            line = 0;
            continue;
        }
        assert_true((*p >= 32 && *p <= 126) || *p == '\t');
        assert_true(++line <= 78);
    }
    for (const char *p = strstr(s, "=?"); p != NULL; p = strstr(p + 2, "=?")) {
        const char *end = strstr(p + 10, "?=");
        assert_non_null(end);
        assert_true(end + 2 - p <= 75);
        assert_true(strncmp(p, "=?UTF-8?B?", 10) == 0 || strncmp(p, "=?UTF-8?Q?", 10) == 0);
        if (ctx == PG_EW_PHRASE && p[8] == 'Q')
            for (const char *q = p + 10; q < end; q++)
                assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789!*+-/=_",
                                       *q));
        /* Each word alone decodes to valid UTF-8: no character is split. */
        char word[80];
        memcpy(word, p, (size_t)(end + 2 - p));
        word[end + 2 - p] = '\0';
        char *one = decode(word);
        assert_true(pg_utf8_valid(one, strlen(one)));
        free(one);
        p = end;
    }
}

static const char *const samples[] = {
    "你好，世界",
    "关于下周会议的安排（请查收附件）关于下周会议的安排（请查收附件）关于下周会议的安排",
    "お問い合わせいただきありがとうございます。担当者より折り返しご連絡いたします。",
    "🎉 Party time 🥳🎂 at 8pm "
    "🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉",
    "مرحبا بالعالم - اجتماع الغد في الساعة العاشرة صباحا في قاعة الاجتماعات الكبرى",
    "שלום עולם, מה שלומך? זוהי שורת נושא ארוכה למדי כדי לבדוק קיפול",
    "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy "
    "dog. The quick brown fox jumps over the lazy dog. The quick brown fox jumps over it.",
    "mixed ASCII 和中文 and 日本語 text with emoji 🎉 and Ελληνικά and more words here ok",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "a                                                                                  b",
    "  leading and trailing  ",
    "=?UTF-8?B?PT9VVEYtOD9RPz0wRD0wQT89?= =?ISO-8859-1?Q?a?=",
    "e\xcc\x81\xcc\x81\xcc\x81 combining marks and \xe2\x80\x8b zero width",
};

/* Every sample at several start columns: folded within 78 and decodes exactly. */
static void test_long_and_international(void **state)
{
    (void)state;
    static const size_t cols[] = {0, 9, 30, 60};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
            size_t col_after;
            char *text = encode(samples[i], cols[c], PG_EW_TEXT, &col_after);
            check_wire(text, cols[c], PG_EW_TEXT);
            const char *last = strrchr(text, '\n');
            assert_int_equal(col_after, last ? strlen(last + 1) : cols[c] + strlen(text));
            /* The white space of a fold before the first token belongs to the caller. */
            char *back = decode(strncmp(text, "\r\n ", 3) == 0 ? text + 3 : text);
            assert_string_equal(back, samples[i]);
            free(back);
            free(text);
            char *phrase = encode(samples[i], cols[c], PG_EW_PHRASE, NULL);
            check_wire(phrase, cols[c], PG_EW_PHRASE);
            free(phrase);
        }
    }
}

/* A 500-character subject of CJK: many words, each within 75, lines within 78. */
static void test_500_char_subject(void **state)
{
    (void)state;
    pg_buf in;
    pg_buf_init(&in);
    for (int i = 0; i < 500; i++)
        pg_buf_puts(&in, i % 7 == 6 ? " " : "长");
    char *text = encode(in.data, 9, PG_EW_TEXT, NULL);
    check_wire(text, 9, PG_EW_TEXT);
    assert_true(strlen(text) > 500 * 3 * 4 / 3);
    char *back = decode(text);
    assert_string_equal(back, in.data);
    free(back);
    free(text);
    pg_buf_cleanup(&in);
}

static void test_encode_errors(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        pigeon_err err;
    } table[] = {
        {"a\r\nBcc: x@y.z", 13, PIGEON_ERR_HEADER},
        {"a\nb", 3, PIGEON_ERR_HEADER},
        {"a\rb", 3, PIGEON_ERR_HEADER},
        {"a\0b", 3, PIGEON_ERR_HEADER},
        {"\xc0\x80", 2, PIGEON_ERR_CHARSET},         /* overlong NUL */
        {"\xe0\x80\xaf", 3, PIGEON_ERR_CHARSET},     /* overlong '/' */
        {"\xed\xa0\x80", 3, PIGEON_ERR_CHARSET},     /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, PIGEON_ERR_CHARSET}, /* above U+10FFFF */
        {"\xe4\xb8", 2, PIGEON_ERR_CHARSET},         /* truncated */
        {"\xff", 1, PIGEON_ERR_CHARSET},
        {"latin1 caf\xe9", 11, PIGEON_ERR_CHARSET},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        for (int ctx = PG_EW_TEXT; ctx <= PG_EW_PHRASE; ctx++) {
            pg_buf b;
            size_t col = 9;
            pg_buf_init(&b);
            assert_int_equal(pg_ew_encode(&b, &col, table[i].in, table[i].n, (pg_ew_context)ctx),
                             table[i].err);
            assert_int_equal(b.len, 0); /* nothing written */
            pg_buf_cleanup(&b);
        }
    }
}

static void test_decode_rfc2047_section8(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } table[] = {
        {"(=?ISO-8859-1?Q?a?=)", "(a)"},
        {"(=?ISO-8859-1?Q?a?= b)", "(a b)"},
        {"(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)"},
        {"(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)", "(ab)"},
        {"(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)", "(ab)"},
        {"(=?ISO-8859-1?Q?a_b?=)", "(a b)"},
        {"(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)"},
        {"=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>", "Keith Moore <moore@cs.utk.edu>"},
        {"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>",
         "Keld J\xc3\xb8rn Simonsen <keld@dkuug.dk>"},
        {"=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
         "Andr\xc3\xa9 Pirard <PIRARD@vm1.ulg.ac.be>"},
        {"=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n"
         " =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
         "If you can read this you understand the example."},
        {"=?ISO-8859-1?Q?Olle_J=E4rnefors?=", "Olle J\xc3\xa4rnefors"},
        {"=?ISO-8859-1?Q?Patrik_F=E4ltstr=F6m?=", "Patrik F\xc3\xa4ltstr\xc3\xb6m"},
        /* RFC 2231 5: a language tag after '*'. */
        {"=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore"},
        /* Lowercase encodings and charsets; B without padding. */
        {"=?utf-8?b?5L2g5aW9?=", "你好"},
        {"=?utf-8?q?caf=c3=a9?=", "caf\xc3\xa9"},
        {"=?UTF-8?B?5L2g5aW9?=", "你好"},
        /* Folding: CRLF before white space is removed, the white space kept. */
        {"Hello\r\n world", "Hello world"},
        {"a =?UTF-8?Q?b?=\r\n c", "a b c"},
        /* A character split across words by a careless encoder is reassembled. */
        {"=?UTF-8?Q?=E4=B8?= =?UTF-8?Q?=AD?=", "中"},
        /* Malformed words stay as text. */
        {"=?UTF-8?Q?bad=ZZ?=", "=?UTF-8?Q?bad=ZZ?="},
        {"=?UTF-8?X?abc?=", "=?UTF-8?X?abc?="},
        {"=?UTF-8?B?!!!?=", "=?UTF-8?B?!!!?="},
        {"=?UTF-8?Q?no end", "=?UTF-8?Q?no end"},
        {"plain = text ?= here", "plain = text ?= here"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char *got = decode(table[i].in);
        assert_string_equal(got, table[i].out);
        free(got);
    }
}

static void test_decode_charsets(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } table[] = {
        {"=?ISO-2022-JP?B?GyRCRnxLXDhsJE43b0w+JEckORsoQg==?=", "日本語の件名です"},
        {"=?Shift_JIS?B?k/qWe4zq?=", "日本語"},
        {"=?GB2312?B?xOO6w8rAvec=?=", "你好世界"},
        {"=?GBK?Q?=D6=D0=CE=C4?=", "中文"},
        {"=?Big5?B?wWPF6Q==?=", "繁體"},
        {"=?KOI8-R?B?8NLJ18XU?=", "Привет"},
        {"=?windows-1252?Q?=93smart=94_=80?=", "“smart” €"},
        {"=?ISO-8859-8?B?+ezl7Q==?=", "שלום"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char *got = decode(table[i].in);
        assert_string_equal(got, table[i].out);
        free(got);
    }
}

static void test_decode_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "=?X-NO-SUCH-CHARSET?Q?a?=",
        "=?UTF-8//TRANSLIT?Q?a?=", /* not a charset name; never reaches iconv */
        "=?UTF-8?Q?=FF?=",         /* not UTF-8 */
        "=?US-ASCII?Q?=E9?=",
        "=?ISO-2022-JP?B?GyRCRg==?=", /* truncated multibyte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pg_buf b;
        pg_buf_init(&b);
        assert_int_equal(pg_ew_decode(&b, bad[i], strlen(bad[i])), PIGEON_ERR_CHARSET);
        pg_buf_cleanup(&b);
    }
}

/* Encode then decode: exact, white space included, for awkward white space. */
static void test_whitespace_round_trip(void **state)
{
    (void)state;
    static const char *const table[] = {
        " ",     "   ",    "\t",  " \t ", "a  b", "a\t\tb", " a",       "a ",
        "中 文", "中  文", " 中", "中 ",  "a 中", "中 a",   "a  中  b", "中\t\ta\t\t中",
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char *text = encode(table[i], 9, PG_EW_TEXT, NULL);
        check_wire(text, 9, PG_EW_TEXT);
        char *back = decode(text);
        assert_string_equal(back, table[i]);
        free(back);
        free(text);
    }
}

/* A one-character first token at column 0 followed by one that fills a line: the fold
 * goes after that character (found by fuzz_header_encode: the line ran to 79). A phrase
 * reads back through its quoted-string (RFC 5322 3.2.4: a fold inside one is FWS). */
static void test_fold_after_one_character(void **state)
{
    (void)state;
    char atom[128] = "a ", quoted[128] = " ";
    memset(atom + 2, 'b', 77);
    memset(quoted + 1, '`', 76);
    const char *const values[] = {atom, quoted};
    for (size_t i = 0; i < 2; i++) {
        for (int ctx = 0; ctx < 2; ctx++) {
            pg_ew_context c = ctx ? PG_EW_PHRASE : PG_EW_TEXT;
            char *enc = encode(values[i], 0, c, NULL);
            check_wire(enc, 0, c);
            pg_buf back;
            pg_buf_init(&back);
            if (enc[0] == '"') {
                for (const char *p = enc + 1; p[1] != '\0'; p++)
                    if (*p != '\r' && *p != '\n')
                        pg_buf_putc(&back, *p);
            } else {
                assert_int_equal(pg_ew_decode(&back, enc, strlen(enc)), PIGEON_OK);
            }
            char *s = take(&back);
            assert_string_equal(s, values[i]);
            free(s);
            free(enc);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_table),
        cmocka_unit_test(test_long_and_international),
        cmocka_unit_test(test_500_char_subject),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_decode_rfc2047_section8),
        cmocka_unit_test(test_decode_charsets),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_whitespace_round_trip),
        cmocka_unit_test(test_fold_after_one_character),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
