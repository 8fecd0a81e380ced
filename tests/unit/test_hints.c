/*
 * test_hints.c - the hint tables: provider + code + text for the replies people hit
 * (QQ/163 535, 501 sender must equal login, QQ 550 content denied, 163 554 DT:SPM,
 * frequency limits, 552 size), provider families, and the wrong-TLS-mode hints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/hints.h"

static void test_families(void **state)
{
    (void)state;
    assert_int_equal(pg_hint_family_of("qq", NULL), PG_FAMILY_QQ);
    assert_int_equal(pg_hint_family_of("qq-exmail", NULL), PG_FAMILY_QQ);
    assert_int_equal(pg_hint_family_of("163", NULL), PG_FAMILY_NETEASE);
    assert_int_equal(pg_hint_family_of(NULL, "smtp.qq.com"), PG_FAMILY_QQ);
    assert_int_equal(pg_hint_family_of(NULL, "SMTP.126.COM"), PG_FAMILY_NETEASE);
    assert_int_equal(pg_hint_family_of(NULL, "smtp.gmail.com"), PG_FAMILY_GMAIL);
    assert_int_equal(pg_hint_family_of(NULL, "notqq.com"), PG_FAMILY_OTHER);
    assert_int_equal(pg_hint_family_of(NULL, "127.0.0.1"), PG_FAMILY_OTHER);
    assert_int_equal(pg_hint_family_of(NULL, NULL), PG_FAMILY_OTHER);
}

/* Each row: the reply, and a word the hint must contain (NULL: no hint). */
static const struct {
    pg_hint_family family;
    const char *stage;
    int code;
    const char *enhanced;
    const char *text;
    const char *must_contain;
} rows[] = {
    {PG_FAMILY_QQ, "auth", 535, "", "Login Fail. Please enter your authorization code to login",
     "authorization code"},
    {PG_FAMILY_NETEASE, "auth", 535, "", "Error: authentication failed", "authorization code"},
    {PG_FAMILY_OTHER, "auth", 535, "5.7.8", "5.7.8 Authentication credentials invalid",
     "app password"},
    {PG_FAMILY_QQ, "mail", 501, "", "mail from address must be same as authorization user",
     "log in with"},
    {PG_FAMILY_QQ, "dot", 550, "", "Mail content denied. http://service.mail.qq.com/...",
     "content filter"},
    {PG_FAMILY_NETEASE, "dot", 554, "", "DT:SPM 163 smtp10,DsCowAA... http://mail.163.com/help",
     "DT:SPM"},
    {PG_FAMILY_NETEASE, "mail", 421, "", "Ip frequency limited", "limit"},
    {PG_FAMILY_QQ, "rcpt", 550, "", "Ip frequency limited", "limit"},
    {PG_FAMILY_OTHER, "mail", 552, "5.3.4", "5.3.4 Message size exceeds fixed limit", "larger"},
    {PG_FAMILY_OTHER, "dot", 554, "5.3.4", "5.3.4 too big", "larger"},
    {PG_FAMILY_OTHER, "rcpt", 550, "5.1.1", "5.1.1 <x@y>: Recipient address rejected",
     "does not exist"},
    {PG_FAMILY_OTHER, "mail", 250, "", "ok", NULL},
    {PG_FAMILY_OTHER, "rcpt", 451, "4.3.0", "4.3.0 try later", NULL},
};

static void test_reply_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *h = pg_hint_for_reply(rows[i].family, rows[i].stage, rows[i].code,
                                          rows[i].enhanced, rows[i].text);
        if (rows[i].must_contain == NULL) {
            if (h != NULL)
                fail_msg("row %zu: unexpected hint %s", i, h);
            continue;
        }
        if (h == NULL || strstr(h, rows[i].must_contain) == NULL)
            fail_msg("row %zu: hint %s lacks %s", i, h ? h : "(null)", rows[i].must_contain);
    }
    /* Provider-specific rows do not leak to others: a generic 535 is not QQ's. */
    const char *h = pg_hint_for_reply(PG_FAMILY_OTHER, "auth", 535, "", "bad");
    assert_non_null(h);
    assert_null(strstr(h, "QQ"));
}

static void test_situations(void **state)
{
    (void)state;
    assert_non_null(
        strstr(pg_hint_for_situation(PG_HINT_GREETING_IN_TLS_MODE, 587), "--tls starttls"));
    assert_non_null(
        strstr(pg_hint_for_situation(PG_HINT_TLS_RECORD_IN_PLAIN, 465), "--tls implicit"));
    assert_non_null(strstr(pg_hint_for_situation(PG_HINT_GREETING_TIMEOUT_465, 465), "Port 465"));
    assert_null(strstr(pg_hint_for_situation(PG_HINT_GREETING_TIMEOUT_465, 25), "Port 465"));
    for (int s = PG_HINT_GREETING_IN_TLS_MODE; s <= PG_HINT_TIMEOUT; s++)
        assert_non_null(pg_hint_for_situation((pg_hint_situation)s, 587));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_families),
        cmocka_unit_test(test_reply_table),
        cmocka_unit_test(test_situations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
