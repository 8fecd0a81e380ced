/*
 * test_html_plan.c - the mail merge's prepared HTML (pigeon_html_plan_*, with the flat
 * template API pigeon_template_flat/piece/value): for templates and values chosen at the
 * edges of the HTML parse (text before <html>, in <head>, tables, <pre>, formatting
 * elements reopened, attributes, entities, U+00A0, quotes, controls), a planned render
 * (HTML and text part) is byte for byte what pigeon_html_prepare gives on the template's
 * expansion, or it is refused;
 * the places a value could change the parse or the CSS are refused at planning.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pigeon/html.h"
#include "pigeon/template.h"

/* The template src with markers for its tags (as cli/tpl_html.c builds it). */
static char *marked(const pigeon_template *t, size_t ntags)
{
    char *out = calloc(1, strlen("") + 65536);
    size_t used = 0;
    for (size_t i = 0; i <= ntags; i++) {
        const char *text, *name;
        size_t tl, nl;
        assert_int_equal(pigeon_template_piece(t, i, &text, &tl, &name, &nl), PIGEON_OK);
        memcpy(out + used, text, tl);
        used += tl;
        if (i < ntags)
            used += (size_t)sprintf(out + used, "%s%zu%s", PIGEON_HTML_MARK_OPEN, i,
                                    PIGEON_HTML_MARK_CLOSE);
    }
    return out;
}

static pigeon_vars *row_of(const char *name, const char *city)
{
    pigeon_vars *v = pigeon_vars_new();
    assert_int_equal(pigeon_vars_set(v, "name", name, (size_t)-1), PIGEON_OK);
    assert_int_equal(pigeon_vars_set(v, "city", city, (size_t)-1), PIGEON_OK);
    return v;
}

/* Plans src with opts; for every pair of values, the planned render equals prepare on
 * the expansion, or is refused for a value starting with white space, empty or with CR.
 * Returns whether the template was planned. */
static int check(const char *src, const pigeon_html_opts *opts)
{
    static const char *const values[] = {"Bob",
                                         "A & B",
                                         "<b>x</b>",
                                         "\"q\" 'a'",
                                         "a\xC2\xA0"
                                         "b",
                                         "\xC2\xA0lead",
                                         " lead",
                                         "\tx",
                                         "",
                                         "x\ny",
                                         "\nx",
                                         "x\ry",
                                         "&amp;",
                                         "</p><p>",
                                         "</title>",
                                         "\xE5\x9F\x8E\xE5\xB8\x82",
                                         "trail ",
                                         "\xEE\x80\x80"
                                         "0\xEE\x80\x81",
                                         "-->",
                                         "]]>",
                                         "lt;",
                                         "b>",
                                         "a b",
                                         "x=y",
                                         "a\x1c"
                                         "b",
                                         "a\x7f",
                                         "a\xC2\x85",
                                         "a\xEF\xB7\x90",
                                         "a\xEF\xBF\xBE",
                                         "a\xF0\x9F\xBF\xBF",
                                         "a\x0c"
                                         "b",
                                         "a\x0b",
                                         "amp;x",
                                         "/b"};
    const size_t nv = sizeof values / sizeof values[0];
    pigeon_template *t = NULL;
    pigeon_html_plan *plan = NULL;
    assert_int_equal(pigeon_template_compile(src, strlen(src), &t, NULL), PIGEON_OK);
    size_t ntags = pigeon_template_flat(t);
    if (ntags == (size_t)-1) {
        pigeon_template_free(t);
        return 0;
    }
    char *m = marked(t, ntags);
    pigeon_err e = pigeon_html_plan_new(m, strlen(m), ntags, opts, &plan);
    free(m);
    if (e != PIGEON_OK) {
        assert_int_equal(e, PIGEON_ERR_UNSUPPORTED);
        pigeon_template_free(t);
        return 0;
    }
    for (size_t a = 0; a < nv; a++) {
        for (size_t b = 0; b < nv; b++) {
            pigeon_vars *row = row_of(values[a], values[b]);
            const pigeon_vars *scopes[1] = {row};
            const char *vals[64];
            size_t lens[64];
            assert_true(ntags <= 64);
            for (size_t i = 0; i < ntags; i++) {
                vals[i] = pigeon_template_value(t, i, scopes, 1, &lens[i]);
                assert_non_null(vals[i]);
            }
            pigeon_html_result got, want;
            e = pigeon_html_plan_render(plan, vals, lens, &got);
            char *exp = NULL;
            size_t exp_len = 0;
            assert_int_equal(
                pigeon_template_render(t, scopes, 1, PIGEON_TEMPLATE_HTML, 0, &exp, &exp_len, NULL),
                PIGEON_OK);
            assert_int_equal(pigeon_html_prepare(exp, exp_len, opts, &want), PIGEON_OK);
            if (e == PIGEON_OK) {
                if (strcmp(got.html, want.html) != 0)
                    fail_msg("template %s\nvalues \"%s\" \"%s\"\nplanned  %s\nprepared %s", src,
                             values[a], values[b], got.html, want.html);
                if ((got.text == NULL) != (want.text == NULL) ||
                    (got.text != NULL && strcmp(got.text, want.text) != 0))
                    fail_msg("template %s\nvalues \"%s\" \"%s\"\nplanned text\n%s\nprepared "
                             "text\n%s",
                             src, values[a], values[b], got.text ? got.text : "(none)",
                             want.text ? want.text : "(none)");
                assert_int_equal(got.nimages, want.nimages);
                for (size_t i = 0; i < got.nimages; i++)
                    assert_string_equal(got.images[i].cid, want.images[i].cid);
            } else {
                assert_int_equal(e, PIGEON_ERR_UNSUPPORTED);
                int refused = 0;
                for (size_t i = 0; i < ntags; i++)
                    refused |= lens[i] == 0 || strchr(" \t\n", vals[i][0]) != NULL ||
                               strpbrk(vals[i], "\r\x0b\x1c\x7f") != NULL ||
                               strstr(vals[i], "\xC2\x85") || strstr(vals[i], "\xEF\xB7\x90") ||
                               strstr(vals[i], "\xBF\xBE") || strstr(vals[i], "\xBF\xBF");
                assert_true(refused);
            }
            pigeon_html_result_cleanup(&got);
            pigeon_html_result_cleanup(&want);
            free(exp);
            pigeon_vars_free(row);
        }
    }
    pigeon_html_plan_free(plan);
    pigeon_template_free(t);
    return 1;
}

static const pigeon_html_opts no_text = {.no_text = 1};

static void test_planned(void **state)
{
    (void)state;
    static const char *const planned[] = {
        "<p>Dear {{name}} ({{city}})</p>",
        "<!DOCTYPE html><html><head><title>Hi {{name}}</title><style>p { color: red } "
        ".x { margin: 0 } a:hover { color: blue } @media (max-width: 600px) { p { x: 1 } "
        "}</style></head><body><p class=\"x\">{{name}}</p><a href=\"https://e.com/?c={{city}}"
        "&amp;n={{name}}\" title=\"{{city}}\">go</a><img alt=\"{{name}}\" src=\"a.png\"></body>"
        "</html>",
        "{{name}}<html><head>{{city}}<meta name=\"x\" content=\"{{city}}\"></head><body>t</body>"
        "</html>",
        "<p><b>x</p>{{name}}<i>y</i><table>{{city}}<tr><td>1</td></tr></table>",
        "<pre>{{name}}</pre><textarea>{{city}}</textarea><select><option>{{name}}</option>"
        "</select><ul><li><b>{{city}}</b></ul>",
        "<table><tr><td>{{name}}</td></tr><tr>{{city}}</tr></table>",
        "<html><head></head>{{name}}<body>{{city}}</body></html>{{name}}",
        "<p>no tags at all</p>",
        "<noscript>{{name}}</noscript><p>{{city}}</p>",
    };
    for (size_t i = 0; i < sizeof planned / sizeof planned[0]; i++)
        if (!check(planned[i], &no_text))
            fail_msg("not planned: %s", planned[i]);
    pigeon_html_opts css = {.no_text = 1, .css = "p { color: green }", .css_len = 18};
    assert_true(check(planned[1], &css));
    pigeon_html_opts no_inline = {.no_text = 1, .no_inline = 1};
    assert_true(check(planned[1], &no_inline));
}

/* The text part wraps around the values (and links, alt text, list numbers read from
 * attributes that hold them): written per row from the planned tree. */
static void test_planned_text(void **state)
{
    (void)state;
    static const char *const planned[] = {
        "<p>Dear {{name}} ({{city}})</p><p>A long line of words that will wrap somewhere near "
        "the value {{name}} and again {{city}} at seventy-eight columns.</p>",
        "<ul><li>{{name}}<li><a href=\"https://e.com/?c={{city}}\">{{name}}</a><li><a "
        "href=\"mailto:{{name}}\">{{name}}</a></ul><img alt=\"{{city}}\" "
        "src=\"https://e.com/a.png\"><ol start=\"{{name}}\"><li value=\"{{city}}\">x</ol>",
        "<table><tr><td>{{name}}</td><td>{{city}}</td></tr></table><pre>{{name}}\n  "
        "{{city}}</pre><h1>{{name}}</h1>",
        "<style>.pre { display: none }</style><div class=\"pre\">{{name}}</div><p>{{city}}</p>",
    };
    pigeon_html_opts text = {0};
    for (size_t i = 0; i < sizeof planned / sizeof planned[0]; i++)
        if (!check(planned[i], &text))
            fail_msg("not planned: %s", planned[i]);
    pigeon_html_opts narrow = {.wrap = 20};
    assert_true(check(planned[0], &narrow));
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "<p style=\"color: {{name}}\">x</p>",
        "<p class=\"{{name}}\">x</p>",
        "<p id=\"{{name}}\">x</p>",
        "<img src=\"{{name}}.png\">",
        "<table width=\"{{name}}\"><tr><td>x</td></tr></table>",
        "<style>[title] { color: red }</style><p title=\"{{name}}\">x</p>",
        "<style>p { color: {{name}} }</style><p>x</p>",
        "<script>var x = \"{{name}}\";</script>",
        "<!-- {{name}} --><p>x</p>",
        "<p {{name}}>x</p>",
        "<{{name}}>x",
        "<svg><style>{{name}}</style></svg>",
        "<p>{{#name}}x{{/name}}</p>",
        "<p>{{{name}}}</p>",
        "<p>\xEE\x80\x80 in the source</p>",
        "<p><{{name}}>x</p>",
        "<p>&{{name}}</p>",
        "<p>&lt{{name}}</p>",
        "<p>&#{{name}}</p>",
        "<a title={{name}}>x</a>",
        "<p></{{name}}>x</p>",
        "<p><!{{name}}>x</p>",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (check(refused[i], &no_text))
            fail_msg("planned, should not be: %s", refused[i]);
    /* The source as written needs no pipeline. */
    pigeon_html_opts as_written = {.no_text = 1, .no_inline = 1, .no_images = 1};
    assert_false(check("<p>{{name}}</p>", &as_written));
}

static void test_template_pieces(void **state)
{
    (void)state;
    pigeon_template *t = NULL;
    const char *src = "a{{! c }}b{{x.y}}c{{z}}";
    assert_int_equal(pigeon_template_compile(src, strlen(src), &t, NULL), PIGEON_OK);
    assert_int_equal(pigeon_template_flat(t), 2);
    const char *text, *name;
    size_t tl, nl;
    /* "a" and "b" are split by the comment: not one piece of the source. */
    assert_int_equal(pigeon_template_piece(t, 0, &text, &tl, &name, &nl), PIGEON_ERR_UNSUPPORTED);
    assert_int_equal(pigeon_template_piece(t, 1, &text, &tl, &name, &nl), PIGEON_OK);
    assert_int_equal(tl, 1);
    assert_memory_equal(text, "c", 1);
    assert_int_equal(nl, 1);
    assert_memory_equal(name, "z", 1);
    assert_int_equal(pigeon_template_piece(t, 2, &text, &tl, &name, &nl), PIGEON_OK);
    assert_int_equal(tl, 0);
    assert_null(name);
    assert_int_equal(pigeon_template_piece(t, 3, &text, &tl, &name, &nl), PIGEON_ERR_INVALID);
    pigeon_vars *v = pigeon_vars_new();
    assert_int_equal(pigeon_vars_set(v, "x.y", "deep", (size_t)-1), PIGEON_OK);
    const pigeon_vars *scopes[2] = {NULL, v};
    size_t len = 0;
    const char *got = pigeon_template_value(t, 0, scopes, 2, &len);
    assert_non_null(got);
    assert_int_equal(len, 4);
    assert_null(pigeon_template_value(t, 1, scopes, 2, &len)); /* z is missing */
    pigeon_vars_free(v);
    pigeon_template_free(t);
    const char *sec = "{{#a}}x{{/a}}";
    assert_int_equal(pigeon_template_compile(sec, strlen(sec), &t, NULL), PIGEON_OK);
    assert_int_equal(pigeon_template_flat(t), (size_t)-1);
    pigeon_template_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planned),
        cmocka_unit_test(test_planned_text),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_template_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
