/*
 * test_template.c - the Mustache engine against the cases of the Mustache specification
 * that apply (comments, interpolation, sections, inverted sections, delimiters, and the
 * standalone-line rules), written here as a table from the spec's semantics; then our
 * own rules: missing variables name the line, header mode refuses line breaks, URL mode
 * percent-encodes, values are never expanded again, and the JSON reader's strictness.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pigeon/template.h"

/* One case: data (JSON), template, expected output (HTML mode, as in the spec). */
typedef struct spec_case {
    const char *name;
    const char *data;
    const char *tpl;
    const char *want;
} spec_case;

static const spec_case cases[] = {
    /* comments */
    {"inline comment", "{}", "12345{{! Comment Block! }}67890", "1234567890"},
    {"multiline comment", "{}", "12345{{!\n  This is a\n  multi-line comment...\n}}67890\n",
     "1234567890\n"},
    {"standalone comment", "{}", "Begin.\n{{! Comment Block! }}\nEnd.\n", "Begin.\nEnd.\n"},
    {"indented standalone comment", "{}", "Begin.\n  {{! Indented Comment Block! }}\nEnd.\n",
     "Begin.\nEnd.\n"},
    {"standalone comment CRLF", "{}", "|\r\n{{! Standalone Comment }}\r\n|", "|\r\n|"},
    {"standalone comment without newline", "{}", "!\n  {{! I'm Still Standalone }}", "!\n"},
    {"standalone comment without previous line", "{}", "  {{! I'm Still Standalone }}\n!", "!"},
    {"indented inline comment", "{}", "  12 {{! 34 }}\n", "  12 \n"},
    {"surrounding whitespace comment", "{}", "12345 {{! Comment Block! }} 67890", "12345  67890"},
    /* interpolation */
    {"no interpolation", "{}", "Hello from {Mustache}!\n", "Hello from {Mustache}!\n"},
    {"basic interpolation", "{\"subject\":\"world\"}", "Hello, {{subject}}!\n", "Hello, world!\n"},
    {"html escaping", "{\"forbidden\":\"& \\\" < >\"}",
     "These characters should be HTML escaped: {{forbidden}}\n",
     "These characters should be HTML escaped: &amp; &quot; &lt; &gt;\n"},
    {"triple mustache", "{\"forbidden\":\"& \\\" < >\"}",
     "These characters should not be HTML escaped: {{{forbidden}}}\n",
     "These characters should not be HTML escaped: & \" < >\n"},
    {"ampersand", "{\"forbidden\":\"& \\\" < >\"}",
     "These characters should not be HTML escaped: {{&forbidden}}\n",
     "These characters should not be HTML escaped: & \" < >\n"},
    {"integer", "{\"mph\":85}", "\"{{mph}} miles an hour!\"", "\"85 miles an hour!\""},
    {"decimal", "{\"power\":1.210}", "\"{{power}} jiggawatts!\"", "\"1.21 jiggawatts!\""},
    {"null", "{\"cannot\":null}", "I ({{cannot}}) be seen!", "I () be seen!"},
    {"dotted names", "{\"person\":{\"name\":\"Joe\"}}",
     "\"{{person.name}}\" == \"{{#person}}{{name}}{{/person}}\"", "\"Joe\" == \"Joe\""},
    {"dotted names arbitrary depth", "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"name\":\"Phil\"}}}}}}",
     "\"{{a.b.c.d.e.name}}\" == \"Phil\"", "\"Phil\" == \"Phil\""},
    {"dotted names initial resolution", "{\"a\":{\"b\":{\"c\":{\"name\":\"Phil\"}}},\"b\":{}}",
     "\"{{#a}}{{b.c.name}}{{/a}}\"", "\"Phil\""},
    {"implicit iterator string", "{\"list\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
     "\"{{#list}}({{.}}){{/list}}\"", "\"(a)(b)(c)(d)(e)\""},
    {"implicit iterator basic", "\"world\"", "Hello, {{.}}!\n", "Hello, world!\n"},
    {"interpolation surrounding whitespace", "{\"string\":\"---\"}", "| {{string}} |", "| --- |"},
    {"interpolation standalone", "{\"string\":\"---\"}", "  {{string}}\n", "  ---\n"},
    {"interpolation with padding", "{\"string\":\"---\"}", "|{{ string }}|", "|---|"},
    {"triple with padding", "{\"string\":\"---\"}", "|{{{ string }}}|", "|---|"},
    {"ampersand with padding", "{\"string\":\"---\"}", "|{{& string }}|", "|---|"},
    /* sections */
    {"section truthy", "{\"boolean\":true}", "\"{{#boolean}}This should be rendered.{{/boolean}}\"",
     "\"This should be rendered.\""},
    {"section falsey", "{\"boolean\":false}",
     "\"{{#boolean}}This should not be rendered.{{/boolean}}\"", "\"\""},
    {"section null is falsey", "{\"null\":null}",
     "\"{{#null}}This should not be rendered.{{/null}}\"", "\"\""},
    {"section context", "{\"context\":{\"name\":\"Joe\"}}",
     "\"{{#context}}Hi {{name}}.{{/context}}\"", "\"Hi Joe.\""},
    {"section parent contexts",
     "{\"a\":\"foo\",\"b\":\"wrong\",\"sec\":{\"b\":\"bar\"},\"c\":{\"d\":\"baz\"}}",
     "\"{{#sec}}{{a}}, {{b}}, {{c.d}}{{/sec}}\"", "\"foo, bar, baz\""},
    {"section list", "{\"list\":[{\"item\":1},{\"item\":2},{\"item\":3}]}",
     "\"{{#list}}{{item}}{{/list}}\"", "\"123\""},
    {"section empty list", "{\"list\":[]}", "\"{{#list}}Yay lists!{{/list}}\"", "\"\""},
    {"section doubled", "{\"bool\":true,\"two\":\"second\"}",
     "{{#bool}}\n* first\n{{/bool}}\n* {{two}}\n{{#bool}}\n* third\n{{/bool}}\n",
     "* first\n* second\n* third\n"},
    {"section nested truthy", "{\"bool\":true}",
     "| A {{#bool}}B {{#bool}}C{{/bool}} D{{/bool}} E |", "| A B C D E |"},
    {"section nested falsey", "{\"bool\":false}",
     "| A {{#bool}}B {{#bool}}C{{/bool}} D{{/bool}} E |", "| A  E |"},
    {"section missing is false", "{}", "[{{#missing}}Found key 'missing'!{{/missing}}]", "[]"},
    {"section implicit iterator integer", "{\"list\":[1,2,3,4,5]}", "\"{{#list}}({{.}}){{/list}}\"",
     "\"(1)(2)(3)(4)(5)\""},
    {"section implicit iterator array", "{\"list\":[[1,2,3],[\"a\",\"b\",\"c\"]]}",
     "\"{{#list}}({{#.}}{{.}}{{/.}}){{/list}}\"", "\"(123)(abc)\""},
    {"section dotted truthy", "{\"a\":{\"b\":{\"c\":true}}}",
     "\"{{#a.b.c}}Here{{/a.b.c}}\" == \"Here\"", "\"Here\" == \"Here\""},
    {"section dotted broken chain", "{\"a\":{}}", "\"{{#a.b.c}}Here{{/a.b.c}}\" == \"\"",
     "\"\" == \"\""},
    {"section surrounding whitespace", "{\"boolean\":true}",
     " | {{#boolean}}\t|\t{{/boolean}} | \n", " | \t|\t | \n"},
    {"section internal whitespace", "{\"boolean\":true}",
     " | {{#boolean}} {{! Important Whitespace }}\n {{/boolean}} | \n", " |  \n  | \n"},
    {"section indented inline", "{\"boolean\":true}",
     " {{#boolean}}YES{{/boolean}}\n {{#boolean}}GOOD{{/boolean}}\n", " YES\n GOOD\n"},
    {"section standalone lines", "{\"boolean\":true}",
     "| This Is\n{{#boolean}}\n|\n{{/boolean}}\n| A Line\n", "| This Is\n|\n| A Line\n"},
    {"section indented standalone", "{\"boolean\":true}",
     "| This Is\n  {{#boolean}}\n|\n  {{/boolean}}\n| A Line\n", "| This Is\n|\n| A Line\n"},
    {"section standalone CRLF", "{\"boolean\":true}", "|\r\n{{#boolean}}\r\n{{/boolean}}\r\n|",
     "|\r\n|"},
    {"section standalone without previous line", "{\"boolean\":true}",
     "  {{#boolean}}\n#{{/boolean}}\n/", "#\n/"},
    {"section standalone without newline", "{\"boolean\":true}", "#{{#boolean}}\n/\n  {{/boolean}}",
     "#\n/\n"},
    {"section padding", "{\"boolean\":true}", "|{{# boolean }}={{/ boolean }}|", "|=|"},
    /* inverted */
    {"inverted falsey", "{\"boolean\":false}",
     "\"{{^boolean}}This should be rendered.{{/boolean}}\"", "\"This should be rendered.\""},
    {"inverted truthy", "{\"boolean\":true}",
     "\"{{^boolean}}This should not be rendered.{{/boolean}}\"", "\"\""},
    {"inverted null", "{\"null\":null}", "\"{{^null}}This should be rendered.{{/null}}\"",
     "\"This should be rendered.\""},
    {"inverted context", "{\"context\":{\"name\":\"Joe\"}}",
     "\"{{^context}}Hi {{name}}.{{/context}}\"", "\"\""},
    {"inverted list", "{\"list\":[{\"n\":1},{\"n\":2},{\"n\":3}]}", "\"{{^list}}{{n}}{{/list}}\"",
     "\"\""},
    {"inverted empty list", "{\"list\":[]}", "\"{{^list}}Yay lists!{{/list}}\"", "\"Yay lists!\""},
    {"inverted missing", "{}", "[{{^missing}}Found key 'missing'!{{/missing}}]",
     "[Found key 'missing'!]"},
    {"inverted dotted falsey", "{\"a\":{\"b\":{\"c\":false}}}",
     "\"{{^a.b.c}}Not Here{{/a.b.c}}\" == \"Not Here\"", "\"Not Here\" == \"Not Here\""},
    {"inverted standalone lines", "{\"boolean\":false}",
     "| This Is\n{{^boolean}}\n|\n{{/boolean}}\n| A Line\n", "| This Is\n|\n| A Line\n"},
    {"inverted nested", "{\"bool\":false}", "| A {{^bool}}B {{^bool}}C{{/bool}} D{{/bool}} E |",
     "| A B C D E |"},
    /* delimiters */
    {"pair behavior", "{\"text\":\"Hey!\"}", "{{=<% %>=}}(<%text%>)", "(Hey!)"},
    {"special characters", "{\"text\":\"It worked!\"}", "({{=[ ]=}}[text])", "(It worked!)"},
    {"delimiters in sections", "{\"section\":true,\"data\":\"I got interpolated.\"}",
     "[\n{{#section}}\n  {{data}}\n  |data|\n{{/section}}\n\n{{= | | =}}\n|#section|\n  {{data}}\n "
     " "
     "|data|\n|/section|\n]\n",
     "[\n  I got interpolated.\n  |data|\n\n  {{data}}\n  I got interpolated.\n]\n"},
    {"standalone delimiter tag", "{}", "Begin.\n{{=@ @=}}\nEnd.\n", "Begin.\nEnd.\n"},
    {"indented standalone delimiter tag", "{}", "Begin.\n  {{=@ @=}}\nEnd.\n", "Begin.\nEnd.\n"},
    {"delimiters surrounding whitespace", "{}", "| {{=@ @=}} |", "|  |"},
};

static pigeon_vars *json(const char *s)
{
    pigeon_vars *v = NULL;
    assert_int_equal(pigeon_vars_parse_json(s, strlen(s), NULL, &v, NULL), PIGEON_OK);
    return v;
}

static char *render(const char *tpl, const pigeon_vars *data, pigeon_template_mode mode,
                    unsigned flags, pigeon_err *code, pigeon_template_error *err)
{
    pigeon_template *t = NULL;
    char *out = NULL;
    size_t len = 0;
    *code = pigeon_template_compile(tpl, strlen(tpl), &t, err);
    if (*code == PIGEON_OK)
        *code = pigeon_template_render(t, &data, 1, mode, flags, &out, &len, err);
    if (out != NULL)
        assert_int_equal(strlen(out), len);
    pigeon_template_free(t);
    return out;
}

static void test_spec_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pigeon_vars *data = json(cases[i].data);
        pigeon_template_error err;
        pigeon_err code;
        char *out = render(cases[i].tpl, data, PIGEON_TEMPLATE_HTML, 0, &code, &err);
        if (code != PIGEON_OK || strcmp(out, cases[i].want) != 0)
            fail_msg("%s: got \"%s\" (%s), want \"%s\"", cases[i].name, out ? out : "(null)",
                     err.message, cases[i].want);
        free(out);
        pigeon_vars_free(data);
    }
}

static void expect_error(const char *tpl, const char *data, pigeon_template_mode mode,
                         pigeon_err want, unsigned line, const char *name)
{
    pigeon_vars *v = json(data);
    pigeon_template_error err;
    pigeon_err code;
    char *out = render(tpl, v, mode, 0, &code, &err);
    assert_null(out);
    assert_int_equal(code, want);
    assert_int_equal(err.line, line);
    assert_string_equal(err.name, name);
    assert_non_null(strstr(err.message, name));
    pigeon_vars_free(v);
}

static void test_missing_variable_names_line(void **state)
{
    (void)state;
    expect_error("Hello\n\nDear {{first}},", "{\"name\":\"x\"}", PIGEON_TEMPLATE_TEXT,
                 PIGEON_ERR_INVALID, 3, "first");
    expect_error("{{#a}}\n{{a.b}}\n{{/a}}", "{\"a\":{\"c\":1}}", PIGEON_TEMPLATE_TEXT,
                 PIGEON_ERR_INVALID, 2, "a.b");
    /* allowed: written as nothing */
    pigeon_vars *v = json("{}");
    pigeon_err code;
    char *out =
        render("[{{x}}]", v, PIGEON_TEMPLATE_TEXT, PIGEON_TEMPLATE_ALLOW_MISSING, &code, NULL);
    assert_string_equal(out, "[]");
    free(out);
    pigeon_vars_free(v);
}

static void test_header_refuses_line_breaks(void **state)
{
    (void)state;
    expect_error("Hi {{name}}", "{\"name\":\"x\\r\\nBcc: victim@example.com\"}",
                 PIGEON_TEMPLATE_HEADER, PIGEON_ERR_HEADER, 1, "name");
    expect_error("Hi {{{name}}}", "{\"name\":\"x\\nBcc: v@example.com\"}", PIGEON_TEMPLATE_HEADER,
                 PIGEON_ERR_HEADER, 1, "name");
    /* the same value is fine in a body */
    pigeon_vars *v = json("{\"name\":\"a\\nb\"}");
    pigeon_err code;
    char *out = render("{{name}}", v, PIGEON_TEMPLATE_TEXT, 0, &code, NULL);
    assert_string_equal(out, "a\nb");
    free(out);
    pigeon_vars_free(v);
}

static void test_values_never_expanded_again(void **state)
{
    (void)state;
    pigeon_vars *v = json("{\"a\":\"{{b}}\",\"b\":\"secret\"}");
    pigeon_err code;
    char *out = render("{{a}} {{{a}}}", v, PIGEON_TEMPLATE_TEXT, 0, &code, NULL);
    assert_string_equal(out, "{{b}} {{b}}");
    free(out);
    pigeon_vars_free(v);
}

static void test_text_mode_raw_url_mode_encoded(void **state)
{
    (void)state;
    pigeon_vars *v = json("{\"n\":\"<Tom & \\\"Jerry\\\">\",\"id\":\"a b&c=d/é,\"}");
    pigeon_err code;
    char *out = render("{{n}}", v, PIGEON_TEMPLATE_TEXT, 0, &code, NULL);
    assert_string_equal(out, "<Tom & \"Jerry\">");
    free(out);
    out = render("https://x.example/u?id={{id}}", v, PIGEON_TEMPLATE_URL, 0, &code, NULL);
    assert_string_equal(out, "https://x.example/u?id=a%20b%26c%3Dd%2F%C3%A9%2C");
    free(out);
    pigeon_vars *crlf = json("{\"id\":\"a\\r\\nb\"}");
    /* In a URL, {{id}} encodes a line break; {{{id}}} would put it in the header. */
    out = render("https://x.example/?{{id}}", crlf, PIGEON_TEMPLATE_URL, 0, &code, NULL);
    assert_string_equal(out, "https://x.example/?a%0D%0Ab");
    free(out);
    out = render("https://x.example/?{{{id}}}", crlf, PIGEON_TEMPLATE_URL, 0, &code, NULL);
    assert_null(out);
    assert_int_equal(code, PIGEON_ERR_HEADER);
    pigeon_vars_free(crlf);
    out = render("{{n}}'", v, PIGEON_TEMPLATE_HTML, 0, &code, NULL);
    assert_string_equal(out, "&lt;Tom &amp; &quot;Jerry&quot;&gt;'");
    free(out);
    pigeon_vars_free(v);
}

static void test_scopes_stack(void **state)
{
    (void)state;
    pigeon_vars *global = pigeon_vars_new(), *row = pigeon_vars_new();
    assert_int_equal(pigeon_vars_set(global, "company", "ACME", (size_t)-1), PIGEON_OK);
    assert_int_equal(pigeon_vars_set(global, "name", "nobody", (size_t)-1), PIGEON_OK);
    assert_int_equal(pigeon_vars_set(row, "name", "张三", (size_t)-1), PIGEON_OK);
    assert_int_equal(pigeon_vars_set(row, "user.city", "Hangzhou", (size_t)-1), PIGEON_OK);
    assert_int_equal(pigeon_vars_set(row, "user..x", "y", (size_t)-1), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_vars_set(row, "bad", "\xff", 1), PIGEON_ERR_CHARSET);
    const pigeon_vars *scopes[] = {global, row};
    pigeon_template *t = NULL;
    const char *src = "{{name}} of {{company}} in {{user.city}}";
    assert_int_equal(pigeon_template_compile(src, strlen(src), &t, NULL), PIGEON_OK);
    char *out = NULL;
    size_t len;
    assert_int_equal(
        pigeon_template_render(t, scopes, 2, PIGEON_TEMPLATE_TEXT, 0, &out, &len, NULL), PIGEON_OK);
    assert_string_equal(out, "张三 of ACME in Hangzhou");
    free(out);
    pigeon_template_free(t);
    pigeon_vars_free(global);
    pigeon_vars_free(row);
}

/* Sections over lists multiply: 40 nested sections over a list of two would run 2^40
 * times. The render stops with an error instead of hanging; so does a huge output. */
static void test_render_is_bounded(void **state)
{
    (void)state;
    char tpl[40 * 12 + 8] = "";
    for (int i = 0; i < 40; i++)
        strcat(tpl, "{{#l}}");
    strcat(tpl, "x");
    for (int i = 0; i < 40; i++)
        strcat(tpl, "{{/l}}");
    pigeon_vars *v = json("{\"l\":[1,2]}");
    pigeon_template_error err;
    pigeon_err code;
    char *out = render(tpl, v, PIGEON_TEMPLATE_TEXT, 0, &code, &err);
    assert_null(out);
    assert_int_equal(code, PIGEON_ERR_TOO_LARGE);
    assert_non_null(strstr(err.message, "too large"));
    out = render(tpl + 6 * 30, v, PIGEON_TEMPLATE_TEXT, 0, &code, &err);
    assert_null(out); /* 10 sections open, 40 closes: a compile error, not a render */
    pigeon_vars_free(v);
}

static void test_compile_errors(void **state)
{
    (void)state;
    static const struct {
        const char *tpl;
        unsigned line;
    } bad[] = {
        {"a {{b", 1},        {"{{#a}}\nx", 1},  {"x\n{{/a}}", 2},
        {"{{#a}}{{/b}}", 1}, {"{{> part}}", 1}, {"{{}}", 1},
        {"{{=<% =}}", 1},    {"{{{a}}", 1},     {"\n\n{{#a}}{{#b}}{{/a}}{{/b}}", 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pigeon_template *t = NULL;
        pigeon_template_error err;
        pigeon_err e = pigeon_template_compile(bad[i].tpl, strlen(bad[i].tpl), &t, &err);
        if (e != PIGEON_ERR_INVALID || t != NULL || err.line != bad[i].line)
            fail_msg("\"%s\": code %d line %u (%s)", bad[i].tpl, e, err.line, err.message);
    }
    pigeon_template *t = NULL;
    assert_int_equal(pigeon_template_compile("\xc3", 1, &t, NULL), PIGEON_ERR_CHARSET);
    char deep[64 * 10 + 80] = "";
    for (int i = 0; i < 65; i++)
        strcat(deep, "{{#a}}");
    assert_int_equal(pigeon_template_compile(deep, strlen(deep), &t, NULL), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_template_compile("plain", 5, &t, NULL), PIGEON_OK);
    assert_true(pigeon_template_is_static(t));
    pigeon_template_free(t);
}

static void test_json_strict(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "{",
        "{\"a\":1,}",
        "[1,]",
        "{'a':1}",
        "01",
        "1.",
        "-",
        "NaN",
        "\"\\x\"",
        "\"a\nb\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "[1] 2",
        "{\"a\" 1}",
        "\"\xff\"",
        "tru",
        "/*c*/1",
        "\"\xc0\xaf\"",
        "1e",
        "[",
        "{\"a\":}",
        "{\"s\":1,\"s\":2}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pigeon_vars *v = NULL;
        pigeon_json_error err;
        pigeon_err e = pigeon_vars_parse_json(bad[i], strlen(bad[i]), NULL, &v, &err);
        if (e == PIGEON_OK || v != NULL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_true(err.message[0] != '\0');
    }
    pigeon_vars *v = NULL;
    const char *good = "\xEF\xBB\xBF { \"s\": \"\\u00e9\\ud83d\\ude00\\n\", \"n\": -0.5e2, "
                       "\"l\": [true, false, null], \"o\": {} } ";
    assert_int_equal(pigeon_vars_parse_json(good, strlen(good), NULL, &v, NULL), PIGEON_OK);
    assert_string_equal(pigeon_vars_text(pigeon_vars_get(v, "s"), NULL),
                        "\xc3\xa9\xf0\x9f\x98\x80\n");
    assert_string_equal(pigeon_vars_text(pigeon_vars_get(v, "n"), NULL), "-50");
    assert_int_equal(pigeon_vars_type(pigeon_vars_get(v, "l")), PIGEON_VAR_LIST);
    pigeon_vars_free(v);
    const char *esc = "\"\\u00e9\\ud83d\\ude00\\/\"";
    assert_int_equal(pigeon_vars_parse_json(esc, strlen(esc), NULL, &v, NULL), PIGEON_OK);
    assert_string_equal(pigeon_vars_text(v, NULL), "\xc3\xa9\xf0\x9f\x98\x80/");
    pigeon_vars_free(v);
    /* limits */
    char deep[200];
    memset(deep, '[', sizeof deep);
    pigeon_json_limits lim = {0, 10, 0};
    assert_int_equal(pigeon_vars_parse_json(deep, sizeof deep, &lim, &v, NULL),
                     PIGEON_ERR_TOO_LARGE);
    lim = (pigeon_json_limits){8, 0, 0};
    assert_int_equal(pigeon_vars_parse_json("[1,2,3,4,5]", 11, &lim, &v, NULL),
                     PIGEON_ERR_TOO_LARGE);
}

/* ---- rows ---- */

typedef struct mem_reader {
    const char *s;  /* the input */
    size_t len, at; /* its length, bytes given */
    size_t step;    /* most bytes per read (tests chunk boundaries) */
} mem_reader;

static int mem_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    mem_reader *m = ctx;
    size_t k = m->len - m->at;
    if (k > cap)
        k = cap;
    if (k > m->step)
        k = m->step;
    memcpy(buf, m->s + m->at, k);
    m->at += k;
    *n = k;
    return 0;
}

static const char *col(const pigeon_vars *row, const char *name)
{
    return pigeon_vars_text(pigeon_vars_get(row, name), NULL);
}

static void test_csv_rfc4180(void **state)
{
    (void)state;
    const char *csv = "\xEF\xBB\xBF"
                      "email,name,note\r\n"
                      "a@example.com,Ann,plain\r\n"
                      "\r\n"
                      "b@example.com,\"Bond, James\",\"says \"\"hi\"\"\nand more\"\r\n"
                      "c@example.com,\"x\"y,z\n"
                      "d@example.com,only two\n"
                      "e@example.com,Eve,\"\"\n"
                      "f@example.com,Fay,\"unterminated\n";
    for (size_t step = 1; step <= 64; step *= 63) {
        mem_reader m = {csv, strlen(csv), 0, step};
        pigeon_rows *r = pigeon_rows_new(PIGEON_ROWS_CSV, mem_read, &m);
        const pigeon_vars *row;
        unsigned long line;
        assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_OK);
        assert_int_equal(line, 2);
        assert_string_equal(col(row, "email"), "a@example.com");
        assert_string_equal(col(row, "note"), "plain");
        assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_OK);
        assert_int_equal(line, 4);
        assert_string_equal(col(row, "name"), "Bond, James");
        assert_string_equal(col(row, "note"), "says \"hi\"\nand more");
        assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_ERR_INVALID);
        assert_int_equal(line, 6);
        assert_non_null(strstr(pigeon_rows_error(r), "line 6"));
        assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_ERR_INVALID);
        assert_int_equal(line, 7);
        assert_non_null(strstr(pigeon_rows_error(r), "2 fields"));
        assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_OK);
        assert_int_equal(line, 8);
        assert_string_equal(col(row, "note"), "");
        assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_ERR_INVALID);
        assert_int_equal(line, 9);
        assert_non_null(strstr(pigeon_rows_error(r), "never closed"));
        assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_OK);
        assert_null(row);
        pigeon_rows_free(r);
    }
}

static void test_csv_bad_header(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "email,email\na,b\n", "email,,x\n1,2,3\n"};
    for (size_t i = 0; i < 3; i++) {
        mem_reader m = {bad[i], strlen(bad[i]), 0, 4096};
        pigeon_rows *r = pigeon_rows_new(PIGEON_ROWS_CSV, mem_read, &m);
        const pigeon_vars *row;
        assert_int_equal(pigeon_rows_next(r, &row, NULL), PIGEON_ERR_CORRUPT);
        assert_int_equal(pigeon_rows_next(r, &row, NULL), PIGEON_ERR_CORRUPT);
        pigeon_rows_free(r);
    }
}

static void test_jsonl(void **state)
{
    (void)state;
    const char *in = "{\"email\":\"a@example.com\",\"n\":1,\"tags\":[\"x\"]}\n"
                     "\n"
                     "[1,2]\n"
                     "{\"email\":\"b@example.com\"\n"
                     "  {\"email\":\"c@example.com\"}  \r\n";
    mem_reader m = {in, strlen(in), 0, 7};
    pigeon_rows *r = pigeon_rows_new(PIGEON_ROWS_JSONL, mem_read, &m);
    const pigeon_vars *row;
    unsigned long line;
    assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_OK);
    assert_int_equal(line, 1);
    assert_string_equal(col(row, "n"), "1");
    assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_ERR_INVALID);
    assert_int_equal(line, 3);
    assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_ERR_INVALID);
    assert_int_equal(line, 4);
    assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_OK);
    assert_int_equal(line, 5);
    assert_string_equal(col(row, "email"), "c@example.com");
    assert_int_equal(pigeon_rows_next(r, &row, &line), PIGEON_OK);
    assert_null(row);
    pigeon_rows_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_cases),
        cmocka_unit_test(test_missing_variable_names_line),
        cmocka_unit_test(test_header_refuses_line_breaks),
        cmocka_unit_test(test_values_never_expanded_again),
        cmocka_unit_test(test_text_mode_raw_url_mode_encoded),
        cmocka_unit_test(test_scopes_stack),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_render_is_bounded),
        cmocka_unit_test(test_json_strict),
        cmocka_unit_test(test_csv_rfc4180),
        cmocka_unit_test(test_csv_bad_header),
        cmocka_unit_test(test_jsonl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
