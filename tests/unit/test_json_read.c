/*
 * test_json_read.c - the JSON reader (lib/json/json_read.c): RFC 8259 values, escapes
 * and surrogate pairs, the number grammar, and every refusal with its offset: invalid
 * UTF-8, lone surrogates, control characters, duplicate keys, trailing data, limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json/json_read.h"

static pg_json_doc *doc;
static pg_json_error jerr;

static pigeon_err parse(const char *s)
{
    pg_json_free(doc);
    doc = NULL;
    return pg_json_parse(s, strlen(s), NULL, &doc, &jerr);
}

static void values(void **state)
{
    (void)state;
    assert_int_equal(parse(" {\"a\": [1, -2.5e3, true, false, null, \"x\\ty\"], \"b\": {}} "),
                     PIGEON_OK);
    const pg_json_value *root = pg_json_root(doc);
    assert_int_equal(root->type, PG_JSON_OBJECT);
    assert_int_equal(root->count, 2);
    const pg_json_value *a = pg_json_get(root, "a");
    assert_int_equal(a->type, PG_JSON_ARRAY);
    assert_int_equal(a->count, 6);
    assert_true(a->head->num == 1.0);
    assert_true(a->head->next->num == -2500.0);
    assert_int_equal(a->head->next->next->type, PG_JSON_TRUE);
    const pg_json_value *s = a->head->next->next->next->next->next;
    assert_string_equal(s->str, "x\ty");
    assert_int_equal(pg_json_get(root, "b")->type, PG_JSON_OBJECT);
    assert_null(pg_json_get(root, "c"));
}

static void escapes(void **state)
{
    (void)state;
    assert_int_equal(parse("\"\\u00e9\\u20ac\\ud83d\\udce7\\/\\\"\""), PIGEON_OK);
    assert_string_equal(pg_json_root(doc)->str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x93\xa7/\"");
    assert_int_equal(parse("\"a\\u0000b\""), PIGEON_OK);
    assert_int_equal(pg_json_root(doc)->len, 3);
    assert_int_equal(parse("\"caf\xc3\xa9\""), PIGEON_OK);
    /* The closing quote after runs of backslashes (the reader finds it with memchr and
     * counts the backslashes before it): even runs end the string, odd ones escape. */
    assert_int_equal(parse("[\"a\\\\\", \"\\\\\\\"b\", \"\\\\\\\\\"]"), PIGEON_OK);
    const pg_json_value *a = pg_json_root(doc)->head;
    assert_string_equal(a->str, "a\\");
    assert_string_equal(a->next->str, "\\\"b");
    assert_string_equal(a->next->next->str, "\\\\");
    assert_int_equal(parse("\"x\\\"]"), PIGEON_ERR_PROTOCOL); /* "x\"] : no end */
}

static const struct {
    const char *text;
    pigeon_err want;
    size_t offset;
} bad[] = {
    {"", PIGEON_ERR_PROTOCOL, 0},
    {"{", PIGEON_ERR_PROTOCOL, 1},
    {"{\"a\":1,}", PIGEON_ERR_PROTOCOL, 7},
    {"[1,]", PIGEON_ERR_PROTOCOL, 3},
    {"[1 2]", PIGEON_ERR_PROTOCOL, 3},
    {"{\"a\":1,\"a\":2}", PIGEON_ERR_PROTOCOL, 7},
    {"\"abc", PIGEON_ERR_PROTOCOL, 1},
    {"\"a\nb\"", PIGEON_ERR_PROTOCOL, 2},
    {"\"\\x\"", PIGEON_ERR_PROTOCOL, 2},
    {"\"\\ud800\"", PIGEON_ERR_CHARSET, 7},
    {"\"\\udc00\"", PIGEON_ERR_CHARSET, 7},
    {"\"\xff\"", PIGEON_ERR_CHARSET, 1},
    {"\"\xc0\xaf\"", PIGEON_ERR_CHARSET, 1},     /* overlong */
    {"\"\xed\xa0\x80\"", PIGEON_ERR_CHARSET, 1}, /* encoded surrogate */
    {"01", PIGEON_ERR_PROTOCOL, 1},
    {"1.", PIGEON_ERR_PROTOCOL, 0},
    {"+1", PIGEON_ERR_PROTOCOL, 0},
    {".5", PIGEON_ERR_PROTOCOL, 0},
    {"1e", PIGEON_ERR_PROTOCOL, 0},
    {"NaN", PIGEON_ERR_PROTOCOL, 0},
    {"tru", PIGEON_ERR_PROTOCOL, 0},
    {"{} x", PIGEON_ERR_PROTOCOL, 3},
    {"{'a':1}", PIGEON_ERR_PROTOCOL, 1},
    {"\xef\xbb\xbf{}", PIGEON_ERR_PROTOCOL, 0}, /* a BOM is not JSON text (RFC 8259 8.1) */
};

static void refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pigeon_err got = parse(bad[i].text);
        if (got != bad[i].want || jerr.offset != bad[i].offset)
            fail_msg("case %zu (%s): got %d at %zu (%s), want %d at %zu", i, bad[i].text, got,
                     jerr.offset, jerr.reason, bad[i].want, bad[i].offset);
        assert_null(doc);
        assert_true(jerr.reason[0] != '\0');
    }
}

static void limits(void **state)
{
    (void)state;
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    pg_json_free(doc);
    doc = NULL;
    assert_int_equal(pg_json_parse(deep, 200, NULL, &doc, &jerr), PIGEON_ERR_TOO_LARGE);
    pg_json_limits lim = {.max_depth = 100};
    assert_int_equal(pg_json_parse(deep, 200, &lim, &doc, &jerr), PIGEON_OK);
    pg_json_free(doc);
    doc = NULL;
    pg_json_limits small = {.max_size = 10, .max_string = 4, .max_values = 3};
    assert_int_equal(pg_json_parse("[1,2,3,4]", 9, &small, &doc, &jerr), PIGEON_ERR_TOO_LARGE);
    assert_int_equal(pg_json_parse("\"abcde\"", 7, &small, &doc, &jerr), PIGEON_ERR_TOO_LARGE);
    assert_int_equal(pg_json_parse("[1,2,3,4,5,6]", 13, &small, &doc, &jerr), PIGEON_ERR_TOO_LARGE);
    /* Depth is not bypassed by a million-deep document either (no stack overflow). */
    size_t n = 1000000;
    char *huge = malloc(n);
    memset(huge, '[', n);
    assert_int_equal(pg_json_parse(huge, n, NULL, &doc, &jerr), PIGEON_ERR_TOO_LARGE);
    free(huge);
}

static void pointer_escape(void **state)
{
    (void)state;
    char out[32];
    assert_string_equal(pg_json_pointer_escape("a/b~c", out, sizeof out), "a~1b~0c");
}

static int teardown(void **state)
{
    (void)state;
    pg_json_free(doc);
    doc = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(values, teardown),
        cmocka_unit_test_teardown(escapes, teardown),
        cmocka_unit_test_teardown(refusals, teardown),
        cmocka_unit_test_teardown(limits, teardown),
        cmocka_unit_test(pointer_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
