/*
 * test_lint.c - the message lint: each check fires on the message made to trip it and
 * stays silent on a clean one; the HTML scanner's links and images; MIME walking through
 * nested multiparts (with LF line endings too); the DKIM tag parser under folding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dkim/dkim_tags.h"
#include "lint/lint_html.h"
#include "pigeon/lint.h"

static int has(const pigeon_lint_report *r, const char *code)
{
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->items[i].code, code) == 0)
            return 1;
    return 0;
}

static pigeon_lint_report lint(const char *msg, int bulk, const char *d)
{
    pigeon_lint_report r;
    pigeon_lint_opts o = {d, bulk};
    assert_int_equal(pigeon_lint_message(msg, strlen(msg), &o, &r), PIGEON_OK);
    for (size_t i = 0; i < r.count; i++) {
        assert_non_null(r.items[i].reason);
        assert_non_null(r.items[i].fix);
    }
    return r;
}

#define HEAD                                                                                       \
    "From: Joe <joe@example.com>\r\nTo: a@example.net\r\nDate: Wed, 02 Dec 2026 10:00:00 "         \
    "+0000\r\nMessage-ID: <1@example.com>\r\nMIME-Version: 1.0\r\n"

static const char clean[] =
    HEAD "Subject: Dinner on Friday?\r\n"
         "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
         "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHi, dinner at 8?\r\n"
         "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
         "<p>Hi, <a href=\"https://example.com/menu\">example.com/menu</a> dinner at 8? We "
         "will have the usual table by the window, and Sam brings dessert. Tell me if you "
         "cannot make it; we will move it to Saturday instead, same time, same place. "
         "Parking is behind the building, the entrance on the left side of the court. "
         "<img src=\"https://img.example.com/map.png\"></p>\r\n"
         "--b1--\r\n";

static void test_clean(void **state)
{
    (void)state;
    pigeon_lint_report r = lint(clean, 0, "example.com");
    assert_int_equal(r.count, 0);
    assert_int_equal(pigeon_lint_worst(&r), 0);
    pigeon_lint_report_cleanup(&r);
}

static void test_header_checks(void **state)
{
    (void)state;
    const char *m = "From: a@shop.example\nTo: b@example.net\nSubject: FREE MONEY NOW!!\n"
                    "Precedence: bulk\nDKIM-Signature: v=1; a=rsa-sha256;\n d = other.example ;"
                    " s=x\n\nhello\n";
    pigeon_lint_report r = lint(m, 0, NULL);
    assert_true(has(&r, "no_date"));
    assert_true(has(&r, "no_message_id"));
    assert_true(has(&r, "subject_caps"));
    assert_true(has(&r, "subject_exclamation"));
    assert_true(has(&r, "dkim_not_aligned"));
    assert_true(has(&r, "no_unsubscribe"));
    assert_false(has(&r, "no_text_part"));
    assert_int_equal(pigeon_lint_worst(&r), 2);
    pigeon_lint_report_cleanup(&r);
    /* Aligned: d= a parent of the From domain; an unsigned message with the d= to come. */
    r = lint(HEAD "Subject: x\r\nDKIM-Signature: d=example.com; s=s\r\n\r\nx\r\n", 0, NULL);
    assert_false(has(&r, "dkim_not_aligned"));
    pigeon_lint_report_cleanup(&r);
    r = lint(HEAD "Subject: x\r\n\r\nx\r\n", 1, "other.example");
    assert_true(has(&r, "dkim_not_aligned"));
    assert_true(has(&r, "no_unsubscribe"));
    pigeon_lint_report_cleanup(&r);
    r = lint(HEAD "Subject: x\r\nList-Unsubscribe: <https://example.com/u>\r\n\r\nx\r\n", 1, NULL);
    assert_false(has(&r, "no_unsubscribe"));
    assert_true(has(&r, "no_one_click"));
    pigeon_lint_report_cleanup(&r);
    /* An encoded Subject is judged decoded. */
    r = lint(HEAD "Subject: =?utf-8?B?QlVZIE5PVyBBTkQgU0FWRQ==?=\r\n\r\nx\r\n", 0, NULL);
    assert_true(has(&r, "subject_caps"));
    pigeon_lint_report_cleanup(&r);
}

static void test_html_checks(void **state)
{
    (void)state;
    const char *m =
        HEAD "Subject: Offer\nContent-Type: multipart/related; boundary=r\n\n"
             "--r\nContent-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n"
             "<a href=3D\"http://login.evil.example/x\">https://www.paypal.com/</a>"
             "<a href=3D'https://bit.ly/abc'>go</a><img src=3D\"http://img.example.com/a.png\">"
             "<img src=3D\"cid:logo\"><img src=3D\"cid:gone\"><img src=3Dbroken.png>\n"
             "--r\nContent-Type: image/png\nContent-ID: <logo>\nContent-Transfer-Encoding: "
             "base64\n\niVBORw0KGgo=\n--r--\n";
    pigeon_lint_report r = lint(m, 0, NULL);
    assert_true(has(&r, "no_text_part"));
    assert_true(has(&r, "link_mismatch"));
    assert_true(has(&r, "url_shortener"));
    assert_true(has(&r, "image_insecure"));
    assert_true(has(&r, "image_invalid"));
    assert_true(has(&r, "image_only"));
    size_t invalid = 0;
    for (size_t i = 0; i < r.count; i++)
        invalid += strcmp(r.items[i].code, "image_invalid") == 0;
    assert_int_equal(invalid, 2); /* cid:gone and broken.png; cid:logo exists */
    pigeon_lint_report_cleanup(&r);
}

static void test_size_and_base64(void **state)
{
    (void)state;
    size_t n = 110 * 1024;
    char *big = malloc(n + 512);
    assert_non_null(big);
    size_t k =
        (size_t)snprintf(big, 512, "%sSubject: big\r\nContent-Type: text/html\r\n\r\n<p>", HEAD);
    memset(big + k, 'a', n);
    strcpy(big + k + n, "</p>\r\n");
    pigeon_lint_report r = lint(big, 0, NULL);
    assert_true(has(&r, "html_clipped"));
    pigeon_lint_report_cleanup(&r);
    free(big);
    r = lint(HEAD "Subject: b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: "
                  "base64\r\n\r\naGVsbG8gd29ybGQ=\r\n",
             0, NULL);
    assert_true(has(&r, "base64_text"));
    pigeon_lint_report_cleanup(&r);
    /* UTF-8 text in base64 is a fair choice: no finding. */
    r = lint(HEAD "Subject: b\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\n5L2g5aW9\r\n",
             0, NULL);
    assert_false(has(&r, "base64_text"));
    pigeon_lint_report_cleanup(&r);
}

static void test_html_scanner(void **state)
{
    (void)state;
    const char *h = "<!-- <a href=\"x\">no</a> --><script>var a='<a href=1>';</script>"
                    "<A HREF='https://a.example/?x=1&amp;y=2'> see\n  <b>this</b> </a>"
                    "<img alt=x src=\"/i.png\"/>&nbsp;&copy;";
    pg_lint_html out;
    assert_int_equal(pg_lint_html_scan(h, strlen(h), &out), PIGEON_OK);
    assert_int_equal(out.nlinks, 1);
    assert_string_equal(out.links[0].href, "https://a.example/?x=1&y=2");
    assert_string_equal(out.links[0].text, "see this");
    assert_int_equal(out.nimages, 1);
    assert_string_equal(out.images[0], "/i.png");
    assert_int_equal(out.text_chars, strlen("seethis") + 1);
    pg_lint_html_cleanup(&out);
}

static void test_tags(void **state)
{
    (void)state;
    const char *v = "v=1; a=rsa-sha256;\r\n d = example.com ; s=sel; b=abc\r\n def";
    const char *val;
    size_t n;
    assert_int_equal(pg_dkim_tag_find(v, strlen(v), "d", &val, &n), 1);
    assert_int_equal(n, strlen("example.com"));
    assert_memory_equal(val, "example.com", n);
    assert_int_equal(pg_dkim_tag_find(v, strlen(v), "b", &val, &n), 1);
    assert_int_equal(n, strlen("abc\r\n def"));
    assert_int_equal(pg_dkim_tag_find(v, strlen(v), "x", &val, &n), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),        cmocka_unit_test(test_header_checks),
        cmocka_unit_test(test_html_checks),  cmocka_unit_test(test_size_and_base64),
        cmocka_unit_test(test_html_scanner), cmocka_unit_test(test_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
