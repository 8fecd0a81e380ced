/*
 * test_html.c - the html module: CSS Syntax 3 tokenizing and error recovery, every
 * Selectors Level 3 form the inliner supports, the cascade (specificity, order,
 * !important, style attributes), what stays in <style>, Outlook's attributes, the text
 * part (lists, links, tables, pre, hidden preheaders, wrapping by UAX #11 width), images
 * to cid:, and the inputs that must neither crash nor recurse (deep nesting, 10,000
 * selectors, unbalanced braces, unterminated strings and comments).
 */
#define _GNU_SOURCE 1 /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "html/html_int.h"
#include "pigeon/html.h"
#include "util/utf8.h"

static pigeon_html_result prep(const char *html, const pigeon_html_opts *opts)
{
    pigeon_html_result res;
    assert_int_equal(pigeon_html_prepare(html, strlen(html), opts, &res), PIGEON_OK);
    assert_non_null(res.html);
    return res;
}

/* The style attribute of the element with id (a copy, "" when none). */
static char *style_of(const char *html, const char *id)
{
    char needle[64];
    snprintf(needle, sizeof needle, "id=\"%s\"", id);
    const char *at = strstr(html, needle);
    assert_non_null(at);
    const char *open = at;
    while (open > html && *open != '<')
        open--;
    const char *close = strchr(at, '>');
    const char *st = strstr(open, " style=\"");
    if (st == NULL || st > close)
        return strdup("");
    st += 8;
    const char *end = strchr(st, '"');
    char *s = malloc((size_t)(end - st) + 1);
    memcpy(s, st, (size_t)(end - st));
    s[end - st] = '\0';
    return s;
}

static void expect_style(const char *html, const char *id, const char *want)
{
    char *got = style_of(html, id);
    if (strcmp(got, want) != 0)
        fail_msg("#%s: style \"%s\", want \"%s\"", id, got, want);
    free(got);
}

/* ---- tokenizer ---- */

static void test_tokens(void **state)
{
    (void)state;
    static const char css[] = "a{b:url( x.png )}/* c */@media \"s\\\"t\" 'u #id .5em 10% "
                              "-->";
    static const pg_css_tt want[] = {PG_CSS_IDENT,  PG_CSS_LBRACE, PG_CSS_IDENT,  PG_CSS_COLON,
                                     PG_CSS_URL,    PG_CSS_RBRACE, PG_CSS_AT,     PG_CSS_WS,
                                     PG_CSS_STRING, PG_CSS_WS,     PG_CSS_STRING, PG_CSS_EOF};
    pg_css_lexer lx;
    pg_css_tok t;
    pg_css_lexer_init(&lx, css, strlen(css));
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        pg_css_next(&lx, &t);
        assert_int_equal(t.type, want[i]);
        if (t.type == PG_CSS_URL)
            assert_memory_equal(css + t.vstart, "x.png", 5);
    }
    /* The unterminated string ran to the end: the rest was swallowed, then EOF forever. */
    pg_css_next(&lx, &t);
    assert_int_equal(t.type, PG_CSS_EOF);
    pg_buf b;
    pg_buf_init(&b);
    pg_css_unescape("\\31 23\\\"x\\E9", 12, &b);
    assert_string_equal(b.data, "123\"x\xC3\xA9");
    pg_buf_cleanup(&b);
}

static void test_sheet_recovery(void **state)
{
    (void)state;
    static const char *const sheets[] = {
        "p { color: red } div { color: blue",       /* unclosed block: closed at EOF */
        "p { color: red } div { content: \"}",      /* unterminated string */
        "p { color: red } /* unterminated",         /* unterminated comment */
        "p { color: red } }}}} div",                /* stray closers, rule without block */
        "p { color: red } @media x { { { (",        /* unbalanced at-rule */
        "p { color: red; ;; : bad; 5: x; color: }", /* junk declarations */
    };
    for (size_t i = 0; i < sizeof sheets / sizeof sheets[0]; i++) {
        pg_css_sheet sheet;
        memset(&sheet, 0, sizeof sheet);
        assert_int_equal(pg_css_sheet_parse(&sheet, sheets[i], strlen(sheets[i])), PIGEON_OK);
        assert_true(sheet.count >= 1);
        assert_string_equal(sheet.rules[0].prelude, "p");
        assert_int_equal(sheet.rules[0].decls.count, 1);
        assert_string_equal(sheet.rules[0].decls.items[0].value, "red");
        pg_css_sheet_cleanup(&sheet);
    }
}

static void test_decls(void **state)
{
    (void)state;
    pg_css_decls d = {NULL, 0, 0};
    const char *s = "COLOR : Red !IMPORTANT; font-family: \"A;B\", x; margin:1px/**/2px;"
                    "--My-Var: {a;b}; background: url(a;b.png)";
    assert_int_equal(pg_css_decls_parse(&d, s, strlen(s)), PIGEON_OK);
    assert_int_equal(d.count, 5);
    assert_string_equal(d.items[0].prop, "color");
    assert_string_equal(d.items[0].value, "Red");
    assert_true(d.items[0].important);
    assert_string_equal(d.items[1].value, "\"A;B\", x");
    assert_string_equal(d.items[2].value, "1px 2px");
    assert_string_equal(d.items[3].prop, "--My-Var");
    assert_string_equal(d.items[4].value, "url(a;b.png)");
    pg_css_decls_cleanup(&d);
}

/* ---- selectors ---- */

static const char select_doc[] =
    "<html><body>"
    "<div id=\"d1\" class=\"a b\" data-x=\"Foo-bar baz\" lang=\"en-US\">"
    "<p id=\"p1\" class=\"a\">one</p>"
    "<p id=\"p2\">two <span id=\"s1\" class=\"b\">s</span></p>"
    "<span id=\"s2\"></span>"
    "<p id=\"p3\" title=\"hello world\"></p>"
    "</div>"
    "<ul id=\"u1\"><li id=\"l1\">1</li><li id=\"l2\">2</li><li id=\"l3\">3</li>"
    "<li id=\"l4\">4</li><li id=\"l5\">5</li></ul>"
    "<div id=\"d2\"><!-- c --></div>"
    "</body></html>";

static const char *const all_ids[] = {"d1", "p1", "p2", "s1", "s2", "p3", "u1",
                                      "l1", "l2", "l3", "l4", "l5", "d2"};

static void check_selector(const char *sel, const char *want)
{
    char doc[2048];
    snprintf(doc, sizeof doc, "<style>%s { x-hit: 1 }</style>%s", sel, select_doc);
    pigeon_html_result res = prep(doc, NULL);
    char got[256] = "";
    for (size_t i = 0; i < sizeof all_ids / sizeof all_ids[0]; i++) {
        char *st = style_of(res.html, all_ids[i]);
        if (strstr(st, "x-hit: 1") != NULL) {
            strcat(got, got[0] ? " " : "");
            strcat(got, all_ids[i]);
        }
        free(st);
    }
    if (strcmp(got, want) != 0)
        fail_msg("selector %s matched \"%s\", want \"%s\"", sel, got, want);
    pigeon_html_result_cleanup(&res);
}

static void test_selectors(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"p", "p1 p2 p3"},
        {".a", "d1 p1"},
        {".a.b", "d1"},
        {"#p2", "p2"},
        {"*#p2", "p2"},
        {"div p", "p1 p2 p3"},
        {"div > span", "s2"},
        {"p + span", "s2"},
        {"p ~ p", "p2 p3"},
        {"#p1 ~ span", "s2"},
        {"[data-x]", "d1"},
        {"[data-x~=baz]", "d1"},
        {"[data-x|=Foo]", "d1"},
        {"[lang|=\"en\"]", "d1"},
        {"[data-x^=Foo]", "d1"},
        {"[data-x^=foo]", ""},
        {"[data-x^=foo i]", "d1"},
        {"[data-x$=\"baz\"]", "d1"},
        {"[data-x*='bar b']", "d1"},
        {"[title=\"hello world\"]", "p3"},
        {"[DATA-X=\"foo-bar baz\" i]", "d1"},
        {"li:first-child", "l1"},
        {"li:last-child", "l5"},
        {"span:only-child", "s1"},
        {"li:nth-child(2n+1)", "l1 l3 l5"},
        {"li:nth-child(odd)", "l1 l3 l5"},
        {"li:nth-child(even)", "l2 l4"},
        {"li:nth-child(-n+2)", "l1 l2"},
        {"li:nth-child( 3 )", "l3"},
        {"li:nth-last-child(2)", "l4"},
        {"p:first-of-type", "p1"},
        {"p:last-of-type", "p3"},
        {"span:first-of-type", "s1 s2"},
        {"p:nth-of-type(2)", "p2"},
        {"p:nth-last-of-type(1)", "p3"},
        {"p:not(.a)", "p2 p3"},
        {".b:not(div)", "s1"},
        {"div:empty", "d2"},
        {"span:empty", "s2"},
        {"ul li:nth-child(2) + li", "l3"},
        {"div p span", "s1"},
        {"body > div > p > span", "s1"},
        {"p, li:first-child", "p1 p2 p3 l1"},
        {"a:hover, #p1", "p1"},
        {"p::before", ""},
        {"p:unknown-thing", ""},
        {"div > > p", ""},
        {".\\61", "d1 p1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_selector(cases[i][0], cases[i][1]);
}

static void test_root(void **state)
{
    (void)state;
    pigeon_html_result res = prep("<style>:root { color: red }</style><p>x</p>", NULL);
    assert_non_null(strstr(res.html, "<html style=\"color: red;\">"));
    pigeon_html_result_cleanup(&res);
}

/* ---- cascade ---- */

static void test_cascade(void **state)
{
    (void)state;
    pigeon_html_result res =
        prep("<style>"
             "#a { color: red } .c { color: blue }"
             ".d { color: red } .d { color: blue }"
             ".e { color: red !important } #e { color: blue }"
             "#f { color: blue }"
             ".g { color: red !important }"
             ".h { color: red !important }"
             "p.i { margin-top: 5px } .i.i { margin: 0 }"
             ".j { margin: 0; margin-top: 5px }"
             "</style>"
             "<p id=\"a\" class=\"c\">a</p><p id=\"d\" class=\"d\">d</p>"
             "<p id=\"e\" class=\"e\">e</p><p id=\"f\" style=\"color: green\">f</p>"
             "<p id=\"g\" class=\"g\" style=\"color: green\">g</p>"
             "<p id=\"h\" class=\"h\" style=\"color: green !important\">h</p>"
             "<p id=\"i\" class=\"i\">i</p><div id=\"j\" class=\"j\">j</div>",
             NULL);
    expect_style(res.html, "a", "color: red;");
    expect_style(res.html, "d", "color: blue;");
    expect_style(res.html, "e", "color: red;");
    expect_style(res.html, "f", "color: green;");
    expect_style(res.html, "g", "color: red;");
    expect_style(res.html, "h", "color: green !important;");
    expect_style(res.html, "i", "margin-top: 5px; margin: 0;");
    expect_style(res.html, "j", "margin: 0; margin-top: 5px;");
    pigeon_html_result_cleanup(&res);
}

static void test_kept(void **state)
{
    (void)state;
    pigeon_html_result res =
        prep("<html><head><style>@import url(x.css); a:hover { color: red } p { color: blue }"
             "@media (max-width: 600px) { p { color: green !important } }"
             "@font-face { font-family: X; src: url(https://x/y.woff) } p::before { content: 'x' }"
             "@unknown foo { bar } @charset \"utf-8\";</style>"
             "<style data-keep>.k { color: pink }</style></head>"
             "<body><p id=\"p\" class=\"k\">x</p></body></html>",
             NULL);
    const char *h = res.html;
    const char *imp = strstr(h, "@import url(x.css);"), *hover = strstr(h, "a:hover {"),
               *media = strstr(h, "@media (max-width: 600px)"), *font = strstr(h, "@font-face"),
               *before = strstr(h, "p::before {"), *unknown = strstr(h, "@unknown foo");
    assert_true(imp && hover && media && font && before && unknown);
    assert_true(imp < hover && hover < media && media < font && font < before && before < unknown);
    assert_null(strstr(h, "@charset"));
    assert_non_null(strstr(h, "<style data-keep=\"\">.k { color: pink }</style>"));
    expect_style(h, "p", "color: blue;");
    /* One <style> for what stays, inside <head>. */
    assert_true(strstr(h, "</head>") > unknown);
    pigeon_html_result_cleanup(&res);
}

static void test_outlook_attrs(void **state)
{
    (void)state;
    pigeon_html_result res =
        prep("<style>table { width: 600px } td { background-color: #fff; text-align: center;"
             " vertical-align: top; height: 50% } img { width: 100% ; height: 20px }"
             " .bg { background-image: url('bg.jpg') }</style>"
             "<table id=\"t\"><tr><td id=\"c\" class=\"bg\">x</td></tr></table><img id=\"i\">",
             &(pigeon_html_opts){.no_images = 1});
    assert_non_null(strstr(res.html, "width=\"600\""));
    assert_non_null(strstr(res.html, "bgcolor=\"#fff\""));
    assert_non_null(strstr(res.html, "align=\"center\""));
    assert_non_null(strstr(res.html, "valign=\"top\""));
    assert_non_null(strstr(res.html, "height=\"50%\""));
    assert_non_null(strstr(res.html, "background=\"bg.jpg\""));
    assert_non_null(strstr(res.html, "height=\"20\""));
    assert_null(strstr(res.html, "width=\"100%\"")); /* percentages only on tables */
    pigeon_html_result_cleanup(&res);
}

static void test_no_inline(void **state)
{
    (void)state;
    pigeon_html_opts o = {.no_inline = 1};
    pigeon_html_result res = prep("<style>p { color: red }</style><p id=\"p\">x</p>", &o);
    assert_non_null(strstr(res.html, "<style>p { color: red }</style>"));
    expect_style(res.html, "p", "");
    pigeon_html_result_cleanup(&res);
}

/* ---- text part ---- */

static char *text_of(const char *html)
{
    pigeon_html_result res = prep(html, NULL);
    char *t = res.text;
    res.text = NULL;
    pigeon_html_result_cleanup(&res);
    assert_non_null(t);
    return t;
}

static void expect_text(const char *html, const char *want)
{
    char *t = text_of(html);
    if (strcmp(t, want) != 0)
        fail_msg("text:\n%s\nwant:\n%s", t, want);
    free(t);
}

static void test_text_structure(void **state)
{
    (void)state;
    expect_text("<head><title>T</title><style>.pre { display: none }</style>"
                "<script>var x = 1;</script></head>"
                "<body><div class=\"pre\">Preheader</div>"
                "<span style=\"display:none;max-height:0\">hidden too</span>"
                "<h1>Caf&eacute; &amp; bar</h1><p>One<br>two</p>"
                "<ul><li>a</li><li>b<ol start=\"3\"><li>c</li><li>d</li></ol></li></ul>"
                "<table><tr><th>H1</th><th>H2</th></tr><tr><td>x</td><td>y</td></tr></table>"
                "<pre>  a   b\n    c</pre>"
                "<p><img src=\"https://x/a.png\" alt=\"Logo\"> <img src=\"https://x/b.png\"></p>"
                "</body>",
                "Caf\xC3\xA9 & bar\n\nOne\ntwo\n\n* a\n* b\n  3. c\n  4. d\n\nH1 H2\nx y\n\n"
                "  a   b\n    c\n\nLogo\n");
}

static void test_text_links(void **state)
{
    (void)state;
    expect_text("<p><a href=\"https://example.com/a\">Read more</a>, "
                "<a href=\"https://example.com/\">https://example.com/</a>, "
                "<a href=\"mailto:bob@example.com?subject=x\">bob@example.com</a>, "
                "<a href=\"mailto:bob@example.com\">write to Bob</a>, "
                "<a href=\"#top\">top</a>, <a href=\"https://x.example/\"><img alt=\"\"></a></p>",
                "Read more <https://example.com/a>, https://example.com/, bob@example.com,\n"
                "write to Bob <bob@example.com>, top, https://x.example/\n");
}

static size_t columns(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = pg_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        assert_true(k > 0); /* never a character cut in two */
        w += (size_t)pg_html_cp_width(cp);
        i += k;
    }
    return w;
}

static void test_text_wrap(void **state)
{
    (void)state;
    pg_buf b;
    pg_buf_init(&b);
    pg_buf_puts(&b, "<p>");
    for (int i = 0; i < 60; i++)
        pg_buf_puts(&b, "word\xE4\xB8\xAD\xE6\x96\x87 ");
    pg_buf_puts(&b, "https://example.com/a/very/long/url/that/is/longer/than/seventy/eight/"
                    "columns/and/must/not/be/broken/anywhere.html end ");
    for (int i = 0; i < 100; i++)
        pg_buf_puts(&b, "\xE4\xB8\xAD\xE6\x96\x87\xE6\x96\x87");
    pg_buf_puts(&b, "</p>");
    char *t = text_of(b.data);
    assert_non_null(strstr(t, "https://example.com/a/very/long/url/that/is/longer/than/seventy/"
                              "eight/columns/and/must/not/be/broken/anywhere.html"));
    int lines = 0;
    for (const char *p = t; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p);
        if (memmem(p, n, "https://", 8) == NULL)
            assert_true(columns(p, n) <= 78);
        assert_true(columns(p, n) >= 70 || nl[1] == '\0' || memmem(p, n, "https", 5) ||
                    memmem(nl + 1, strcspn(nl + 1, "\n"), "https", 5));
        lines++;
        p = nl + 1;
    }
    assert_true(lines >= 8);
    free(t);
    pg_buf_cleanup(&b);
}

/* ---- images ---- */

static void test_images(void **state)
{
    (void)state;
    pigeon_html_result res =
        prep("<style>.h { background: url(\"img/bg.png\") }</style>"
             "<img src=\"logo.png\"><img src=\" logo.png \"><img src=\"https://x/y.png\">"
             "<div class=\"h\">x</div><table><tr><td background=\"img/bg.png\">y</td></tr></table>"
             "<img src=\"data:image/gif;base64,R0lGODlhAQABAAAAACw=\">"
             "<img src=\"my%20pic.jpg?v=2\"><img src=\"cid:already\"><img src=\"//cdn/x.png\">",
             NULL);
    assert_int_equal(res.nimages, 4);
    assert_string_equal(res.images[0].path, "logo.png");
    assert_string_equal(res.images[1].path, "img/bg.png");
    assert_null(res.images[2].path);
    assert_string_equal(res.images[2].content_type, "image/gif");
    assert_int_equal(res.images[2].len, 14);
    assert_memory_equal(res.images[2].data, "GIF89a", 6);
    assert_string_equal(res.images[3].path, "my pic.jpg");
    char want[128];
    snprintf(want, sizeof want, "src=\"cid:%s\"><img src=\"cid:%s\">", res.images[0].cid,
             res.images[0].cid);
    assert_non_null(strstr(res.html, want));
    snprintf(want, sizeof want, "url('cid:%s')", res.images[1].cid);
    assert_non_null(strstr(res.html, want));
    snprintf(want, sizeof want, "background=\"cid:%s\"", res.images[1].cid);
    assert_non_null(strstr(res.html, want));
    assert_non_null(strstr(res.html, "src=\"https://x/y.png\""));
    assert_non_null(strstr(res.html, "src=\"cid:already\""));
    pigeon_html_result_cleanup(&res);
}

/* ---- <style> contents and comments cut out before gumbo parses (html_rawtext.c) ---- */

/* Nonzero if the trees under a and b are the same (types, names, attributes, text). */
static int same_tree(const GumboNode *a, const GumboNode *b)
{
    if (a->type != b->type)
        return 0;
    if (a->type == GUMBO_NODE_DOCUMENT) {
        const GumboVector *x = &a->v.document.children, *y = &b->v.document.children;
        if (x->length != y->length)
            return 0;
        for (unsigned i = 0; i < x->length; i++)
            if (!same_tree(x->data[i], y->data[i]))
                return 0;
        return 1;
    }
    if (a->type != GUMBO_NODE_ELEMENT && a->type != GUMBO_NODE_TEMPLATE)
        return strcmp(a->v.text.text, b->v.text.text) == 0;
    const GumboElement *x = &a->v.element, *y = &b->v.element;
    if (x->tag != y->tag || x->tag_namespace != y->tag_namespace ||
        x->attributes.length != y->attributes.length || x->children.length != y->children.length)
        return 0;
    for (unsigned i = 0; i < x->attributes.length; i++) {
        const GumboAttribute *p = x->attributes.data[i], *q = y->attributes.data[i];
        if (strcmp(p->name, q->name) != 0 || strcmp(p->value, q->value) != 0)
            return 0;
    }
    for (unsigned i = 0; i < x->children.length; i++)
        if (!same_tree(x->children.data[i], y->children.data[i]))
            return 0;
    return 1;
}

/* Parses (s, n) both ways and checks the trees are equal; returns whether the cut text
 * was kept (nonzero) or gumbo read the source itself. */
static int check_cut(const char *s, size_t n)
{
    pg_html_doc doc;
    assert_int_equal(pg_html_doc_parse(&doc, s, n), PIGEON_OK);
    GumboOptions o = kGumboDefaultOptions;
    GumboOutput *ref = gumbo_parse_with_options(&o, s, n);
    if (!same_tree(doc.out->document, ref->document))
        fail_msg("the tree of the cut text differs from gumbo's for: %.*s", (int)n, s);
    int used = doc.text != NULL || doc.fast; /* the fast path reads <style> as it is */
    gumbo_destroy_output(&o, ref);
    pg_html_doc_cleanup(&doc);
    return used;
}

static void test_style_cut(void **state)
{
    (void)state;
    /* Cut and put back. */
    static const char *const cut[] = {
        "<style>a { color: red }</style><p>x",
        "<!-- <style>x</style> --><style>p{}</style><p>y",
        "<!--[if mso]><style>td{}</style><![endif]--><style>b{}</style>",
        "<style title='a>b' media=\"x>y\">p { x: y }</style>",
        "<style a=b'>p{}</style>'x",
        "<style>unterminated { a: b }",
        "<style>   \n  </style><p>blank",
        "<table><style>td { x: y }</style><tr><td>x</table>",
        "<style>a</style ><style>b</STYLE><style>c</style/>d",
        "<title><style>x</style></title><style>y</style>",
        "<textarea><style>x</style></textarea><style>z</style>",
        "<p>a<style>p > a { b: c }</style>b</p><style>q{}</style>",
        /* plain comments are cut too */
        "<!--[if mso]><table><tr><td><![endif]--><p>x<!--[if mso]></td></tr></table><![endif]-->",
        "<!-- a --!><p>b",
        "<p>x<!-- c -->y</p>",
        "<!-- first --><html><!-- before head --><head></head><body></body></html><!-- after -->",
        "<table><!-- in table --><tr><!-- in row --><td>x</td></tr></table>",
        "<style>a{}</style><!-- x - y <b> -->",
    };
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++)
        if (!check_cut(cut[i], strlen(cut[i])))
            fail_msg("not cut: %s", cut[i]);
    /* CR, CR LF and NUL as the HTML tokenizer hands them over (LF, LF, U+FFFD). */
    static const char crnul[] = "<style>a\r\nb\rc\0d</style>";
    assert_true(check_cut(crnul, sizeof crnul - 1));
    /* Where a browser does not make an HTML <style> of the tag, gumbo reads the source. */
    static const char *const whole[] = {
        "<select><style>b{}</style><option>x</select>",
        "<svg><style>a &amp; <b>x</b></style></svg>",
        "<math><style>x<i>y</i></style></math>",
        "<frameset><style>x</style></frameset>",
    };
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++)
        if (check_cut(whole[i], strlen(whole[i])))
            fail_msg("cut, but gumbo made no HTML <style> of it: %s", whole[i]);
    /* Never a wrong tree, whatever the markup around (some are cut, some not). */
    static const char *const odd[] = {
        "<a title=\"<style>\">x</a><style>y</style>",
        "<script><style>x</style></script><style>p{}</style>",
        "<math><mi><style>x<i>y</i></style></mi></math>",
        "<style><!--</style>--></style>x",
        "<noscript><style>a{}</style></noscript>",
        "<template><style>a{}</style></template>",
        "<plaintext><style>x</style>",
        "<!--><style>a{}</style>",
        "<!---><style>b{}</style>",
        "<style",
        "<style>",
        "<style></style>",
        "<!-- a -- b -->",
        "<!-- a <!-- b -->",
        "<!-- a <!-->",
        "<!--- x -->",
        "<!---->",
        "<!----x-->",
        "<!-- a\r\nb -->",
        "<!-- unterminated",
        "<title><!-- x --></title>",
        "<textarea><!-- x --></textarea>",
        "<!-- a --!-->",
        "<!-- x --->",
        "<svg><!-- x --><style><!-- y --></style></svg>",
        "<select><!-- x --><option><!-- y --></select>",
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
        check_cut(odd[i], strlen(odd[i]));
    /* Random mixes of the pieces that matter to the scan (fixed seed): the tree must
     * always be gumbo's own. */
    static const char *const piece[] = {"<style>",     "</style>",   "<STYLE a='>'>",
                                        "</style ",    "<!--",       "-->",
                                        "--!>",        "--",         "<!-->",
                                        "<p>",         "</p>",       "<table>",
                                        "<tr>",        "<td>",       "<select>",
                                        "<svg>",       "</svg>",     "<math>",
                                        "<mi>",        "<title>",    "</title>",
                                        "<textarea>",  "<script>",   "</script>",
                                        "a{b:c}",      " ",          "x",
                                        "\r\n",        "'",          "\"",
                                        "=",           ">",          "<",
                                        "<!",          "-",          "<template>",
                                        "</template>", "<b>",        "</b>",
                                        "<noscript>",  "<frameset>", "<plaintext>"};
    unsigned seed = 12345;
    char doc[512];
    for (int round = 0; round < 3000; round++) {
        size_t n = 0;
        int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 14;
        for (int k = 0; k < parts; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *p = piece[(seed >> 16) % (sizeof piece / sizeof piece[0])];
            size_t len = strlen(p);
            if (n + len < sizeof doc) {
                memcpy(doc + n, p, len);
                n += len;
            }
        }
        check_cut(doc, n);
    }
}

/* pg_css_decls_parse's plain path gives what the tokenizer path gives. */
static void same_decls(const char *s)
{
    pg_css_decls d = {NULL, 0, 0}, e = {NULL, 0, 0};
    assert_int_equal(pg_css_decls_parse(&d, s, strlen(s)), PIGEON_OK);
    assert_int_equal(pg_css_decls_parse_tokens(&e, s, strlen(s)), PIGEON_OK);
    if (d.count != e.count)
        fail_msg("%zu declarations, the tokenizer finds %zu: %s", d.count, e.count, s);
    for (size_t i = 0; i < d.count; i++)
        if (strcmp(d.items[i].prop, e.items[i].prop) != 0 ||
            strcmp(d.items[i].value, e.items[i].value) != 0 ||
            d.items[i].important != e.items[i].important)
            fail_msg("[%s: %s %d] differs from the tokenizer's [%s: %s %d]: %s", d.items[i].prop,
                     d.items[i].value, d.items[i].important, e.items[i].prop, e.items[i].value,
                     e.items[i].important, s);
    pg_css_decls_cleanup(&d);
    pg_css_decls_cleanup(&e);
}

static void test_decls_plain(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "color",     ":",         " ",
        ";",         "red",       "!",
        "important", "IMPORTANT", "\t\n",
        "--Var",     "-x",        "-5px",
        "_a",        "url(",      "URL(",
        ")",         "(",         "a.png",
        "rgba(0,",   "1px",       "/*c*/",
        "'q'",       "\"",        "\\",
        "{",         "}",         "[",
        "#fff",      "myurl(",    ",",
        "@x",        "\xc3\xa9",  "1.5important",
        "-",         "a b",
    };
    static const char *const fixed[] = {
        "font-size:0px;padding:10px 25px;word-break:break-word;",
        "  COLOR : Red  !important ; margin:0 auto",
        "background:url(data:image/png;base64,AAA=) no-repeat;x:y",
        "a: b !important c; d:!important; e: f ! important",
        "--Custom-Prop: Keep Case; -webkit-text-size-adjust:100%",
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        same_decls(fixed[i]);
    unsigned seed = 777;
    char buf[256];
    for (int round = 0; round < 5000; round++) {
        size_t n = 0;
        int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 12;
        for (int k = 0; k < parts; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *p = pieces[(seed >> 16) % (sizeof pieces / sizeof pieces[0])];
            size_t len = strlen(p);
            if (n + len < sizeof buf) {
                memcpy(buf + n, p, len);
                n += len;
            }
        }
        buf[n] = '\0';
        same_decls(buf);
    }
}

/* ---- the fast path in front of gumbo (html_fast.c) ---- */

/* Parses (s, n) with pg_html_doc_parse, checks the tree is gumbo's, returns doc.fast. */
static int check_fast(const char *s, size_t n)
{
    pg_html_doc doc;
    assert_int_equal(pg_html_doc_parse(&doc, s, n), PIGEON_OK);
    GumboOptions o = kGumboDefaultOptions;
    GumboOutput *ref = gumbo_parse_with_options(&o, s, n);
    if (!same_tree(doc.out->document, ref->document))
        fail_msg("the fast path's tree differs from gumbo's for: %.*s", (int)n, s);
    int fast = doc.fast;
    gumbo_destroy_output(&o, ref);
    pg_html_doc_cleanup(&doc);
    return fast;
}

static void test_fast_path(void **state)
{
    (void)state;
    /* What MJML, inky and cmark write: built without gumbo, the same tree. */
    static const char *const fast[] = {
        "<!doctype html>\n<html lang=\"en\" xmlns:v=\"urn:x\"><head><title></title>\n"
        "<!--[if !mso]><!--><meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\">"
        "<!--<![endif]--><style type=\"text/css\">#outlook a { padding:0; }</style>\n"
        "</head>\n<body style=\"word-spacing:normal;\"><div style=\"display:none\">pre</div>"
        "<table align=\"center\" border=\"0\"><tbody><tr><td style=\"a:b\">"
        "x &amp; y&nbsp;&#169;&#x263a; &raquo;</td></tr></tbody></table>"
        "</body>\n</html>\n",
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" "
        "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html><head>"
        "<meta charset=utf-8><title>T &amp; t</title></head><body><table class=row><tr>"
        "<th class=\"a b\"><center><img src=x.png alt=''></center></th></tr></table>"
        "<p>a <a href=\"https://x/?a=1&amp;b=2\">b</a> <b>c</b><br/>d</p></body></html>",
        "<!DOCTYPE html>\n<html>\n<head>\n<style>\np { a: b }\n</style>\n</head>\n<body>\n"
        "<div class=\"pigeon-md\">\n<h1>T</h1>\n<ul>\n<li>one\n<ul>\n<li>two</li>\n</ul>\n"
        "</li>\n</ul>\n<pre><code>x &lt; y\n</code></pre>\n<table>\n<thead>\n<tr>\n"
        "<th>a</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td>1</td>\n</tr>\n</tbody>\n</table>\n"
        "<p><del>s</del> <em>e</em> <code>c</code> 1 < 2</p>\n</div>\n</body>\n</html>\n",
        "<html><head></head><body><table><tr><td>implied tbody</td></tr></table>"
        "<o:p></o:p><my-el a=\"1\" b=\"2\"></MY-EL></body></html>",
        "<html><head><title>x</title><body><p>no head end tag</p></body></html> \n<!-- end -->",
        "<html><head></head><body><pre>\nkept\n</pre></body>\n</html>\n\n",
        "<html><head></head><body><div>l</div>\n(  </body>   <!-- c -->\n</html>\n",
        "<html><head></head><body><p>x</p>y </body> \t </html>\n<!-- d -->\n",
    };
    for (size_t i = 0; i < sizeof fast / sizeof fast[0]; i++)
        if (!check_fast(fast[i], strlen(fast[i])))
            fail_msg("not on the fast path: %s", fast[i]);
    /* Where the tree construction does more than append: gumbo parses (and the tree is
     * still gumbo's). */
    static const char *const slow[] = {
        "<p>no html element</p>",
        "<html><head></head><body><p>a<div>b</div></p></body></html>",
        "<html><head></head><body><b><i>x</b></i></body></html>",
        "<html><head></head><body><table>text<tr><td>x</td></tr></table></body></html>",
        "<html><head></head><body><a href=x>1<a href=y>2</a></a></body></html>",
        "<html><head></head><body><ul><li>a<li>b</ul></body></html>",
        "<html><head></head><body>&copy &notanentity; &#0;</body></html>",
        "<html><head></head><body><svg><style>x</style></svg></body></html>",
        "<html><head></head><body><script>if (a<b) x()</script></body></html>",
        "<html><head></head><body>a\r\nb</body></html>",
        "<html><head></head><body><td>stray cell</td></body></html>",
        "<html><head></head><body><p a=\"1\"b=2>x</p></body></html>",
        "<html><head></head><body><p a=1 A=2 b=3>repeated name</p></body></html>",
        "<html><head></head><body><!--></body></html>",
        "<html><head></head><body>x</body>y</html>",
        "\xef\xbb\xbf<html><head></head><body></body></html>",
        "<html><head></head><body>\xc3(</body></html>",
    };
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++)
        if (check_fast(slow[i], strlen(slow[i])))
            fail_msg("on the fast path, where gumbo does more than append: %s", slow[i]);
    /* Random mixes inside a regular frame (fixed seed): fast or not, gumbo's tree. */
    static const char *const piece[] = {
        "<p>",        "</p>",    "<div>",     "</div>",    "<table>", "</table>", "<tbody>",
        "</tbody>",   "<tr>",    "</tr>",     "<td>",      "</td>",   "<th a=b>", "</th>",
        "<ul>",       "</ul>",   "<li>",      "</li>",     "<a h=x>", "</a>",     "<b>",
        "</b>",       "<br>",    "<img s=y>", "<h1>",      "</h1>",   "<pre>",    "</pre>",
        "\n",         " ",       "x",         "&amp;",     "&nbsp;",  "&#65;",    "&",
        "<!-- c -->", "<style>", "</style>",  "</body>",   "</html>", "<span>",   "</span>",
        "<x-y>",      "</x-y>",  "<center>",  "</center>", "<title>", "</title>", "<",
        ">",          "\"",      "<head>",    "<body>",    "<hr/>",
    };
    unsigned seed = 4242;
    char doc[640];
    int nfast = 0;
    for (int round = 0; round < 4000; round++) {
        static const char head[] = "<!DOCTYPE html><html><head></head><body>";
        size_t n = sizeof head - 1;
        memcpy(doc, head, n);
        int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 16;
        for (int k = 0; k < parts; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *p = piece[(seed >> 16) % (sizeof piece / sizeof piece[0])];
            size_t len = strlen(p);
            if (n + len < sizeof doc) {
                memcpy(doc + n, p, len);
                n += len;
            }
        }
        nfast += check_fast(doc, n);
    }
    assert_true(nfast > 100); /* the mixes do reach the fast path */
}

/* ---- inputs that must not crash, hang or recurse ---- */

static void test_deep_nesting(void **state)
{
    (void)state;
    pg_buf b;
    pg_buf_init(&b);
    pg_buf_puts(&b, "<style>div div div span.x { color: red } div:empty { x: y }</style>");
    /* 10,000 elements deep (gumbo's scope checks make deeper trees quadratic). */
    for (int i = 0; i < 5000; i++)
        pg_buf_puts(&b, "<div><b>");
    pg_buf_puts(&b, "<span class=\"x\" id=\"x\">deep</span><ul><li>item</li></ul>");
    pigeon_html_result res = prep(b.data, NULL);
    expect_style(res.html, "x", "color: red;");
    assert_non_null(strstr(res.text, "deep"));
    pigeon_html_result_cleanup(&res);
    pg_buf_cleanup(&b);
}

static void test_many_selectors(void **state)
{
    (void)state;
    pg_buf b;
    pg_buf_init(&b);
    pg_buf_puts(&b, "<style>");
    for (int i = 0; i < 10000; i++)
        pg_buf_printf(&b, "%s.c%d", i ? ", " : "", i);
    pg_buf_puts(&b, " { color: red }\n");
    for (int i = 0; i < 10000; i++)
        pg_buf_printf(&b, "%sp", i ? ", " : "");
    pg_buf_puts(&b, " { margin: 0 }</style>");
    for (int i = 0; i < 200; i++)
        pg_buf_printf(&b, "<p class=\"c%d\" id=\"e%d\">x</p>", i * 5, i);
    pigeon_html_result res = prep(b.data, NULL);
    expect_style(res.html, "e199", "margin: 0; color: red;"); /* .c (0,1,0) after p */
    pigeon_html_result_cleanup(&res);
    pg_buf_cleanup(&b);
}

static void test_garbage(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "<style>p { color: red } }}} { {{ ( [ ( { </style><p id=\"p\">x</p>",
        "<style>p { color: red } div { content: \"unterminated</style><p id=\"p\">x</p>",
        "<style>p { color: red } /* never closed</style><p id=\"p\">x</p>",
        "<style>p { color: red } [</style><p id=\"p\">x</p>",
        "<style>p { color: red } :not(:not(p)) { x: y } :nth-child(n+99999999999) { a: b }"
        "</style><p id=\"p\">x</p>",
        "<style>p { color: red }</style><p id=\"p\"><table><td><p></i></b></table></form>x",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        pigeon_html_result res = prep(docs[i], NULL);
        expect_style(res.html, "p", "color: red;");
        pigeon_html_result_cleanup(&res);
    }
}

static void test_markdown(void **state)
{
    (void)state;
    const char *md = "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ and "
                     "https://example.com\n";
    char *html;
    size_t len;
    assert_int_equal(pigeon_html_from_markdown(md, strlen(md), NULL, &html, &len), PIGEON_OK);
    assert_non_null(strstr(html, "<table>"));
    assert_non_null(strstr(html, "<del>old</del>"));
    assert_non_null(strstr(html, "<a href=\"https://example.com\">"));
    pigeon_html_result res = prep(html, NULL);
    assert_non_null(strstr(res.html, "<h1 style=\""));
    assert_null(strstr(res.html, "<style")); /* the default sheet is all inlinable */
    pigeon_html_result_cleanup(&res);
    free(html);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),         cmocka_unit_test(test_sheet_recovery),
        cmocka_unit_test(test_decls),          cmocka_unit_test(test_selectors),
        cmocka_unit_test(test_root),           cmocka_unit_test(test_cascade),
        cmocka_unit_test(test_kept),           cmocka_unit_test(test_outlook_attrs),
        cmocka_unit_test(test_no_inline),      cmocka_unit_test(test_text_structure),
        cmocka_unit_test(test_text_links),     cmocka_unit_test(test_text_wrap),
        cmocka_unit_test(test_images),         cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_many_selectors), cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_markdown),       cmocka_unit_test(test_style_cut),
        cmocka_unit_test(test_fast_path),      cmocka_unit_test(test_decls_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
