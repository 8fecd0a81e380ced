/*
 * test_provider.c - the provider presets: lookups by name, region and address domain.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pigeon/provider.h"

static void test_issue_presets_exist(void **state)
{
    (void)state;
    static const char *const required[] = {
        "qq",    "qq-starttls", "qq-exmail", "163",           "126",      "yeah",    "139",
        "sina",  "sohu",        "aliyun",    "aliyun-qiye",   "gmail",    "outlook", "office365",
        "yahoo", "icloud",      "zoho",      "ses-us-east-1", "sendgrid", "mailgun", "brevo",
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        pigeon_provider p;
        char host[96];
        assert_int_equal(pigeon_provider_lookup(required[i], &p, host, sizeof host), 0);
        assert_non_null(p.host);
        assert_true(p.port == 465 || p.port == 587);
        assert_true(strlen(p.notes) > 10);
    }
}

static void test_known_settings(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *host;
        uint16_t port;
        pigeon_provider_tls tls;
    } table[] = {
        {"qq", "smtp.qq.com", 465, PIGEON_PROVIDER_TLS_IMPLICIT},
        {"QQ", "smtp.qq.com", 465, PIGEON_PROVIDER_TLS_IMPLICIT},
        {"qq-starttls", "smtp.qq.com", 587, PIGEON_PROVIDER_TLS_STARTTLS},
        {"163", "smtp.163.com", 465, PIGEON_PROVIDER_TLS_IMPLICIT},
        {"outlook", "smtp-mail.outlook.com", 587, PIGEON_PROVIDER_TLS_STARTTLS},
        {"gmail", "smtp.gmail.com", 465, PIGEON_PROVIDER_TLS_IMPLICIT},
        {"ses-eu-west-1", "email-smtp.eu-west-1.amazonaws.com", 587, PIGEON_PROVIDER_TLS_STARTTLS},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        pigeon_provider p;
        char host[96];
        assert_int_equal(pigeon_provider_lookup(table[i].name, &p, host, sizeof host), 0);
        assert_string_equal(p.host, table[i].host);
        assert_int_equal(p.port, table[i].port);
        assert_int_equal(p.tls, table[i].tls);
    }
}

static void test_unknown_and_bad_region(void **state)
{
    (void)state;
    pigeon_provider p;
    char host[96];
    assert_int_equal(pigeon_provider_lookup("nosuch", &p, host, sizeof host), -1);
    assert_int_equal(pigeon_provider_lookup("ses-", &p, host, sizeof host), -1);
    assert_int_equal(pigeon_provider_lookup("ses-us east", &p, host, sizeof host), -1);
    assert_int_equal(pigeon_provider_lookup("ses-a.b/../c", &p, host, sizeof host), -1);
    assert_int_equal(pigeon_provider_lookup("ses-REGION", &p, host, sizeof host), -1);
}

static void test_for_domain(void **state)
{
    (void)state;
    static const struct {
        const char *domain;
        const char *preset;
    } table[] = {
        {"qq.com", "qq"},         {"foxmail.com", "qq"},
        {"FOXMAIL.COM", "qq"},    {"163.com", "163"},
        {"126.com", "126"},       {"yeah.net", "yeah"},
        {"gmail.com", "gmail"},   {"hotmail.com", "outlook"},
        {"icloud.com", "icloud"}, {"sina.cn", "sina"},
        {"example.com", NULL},    {"q.com", NULL},
        {"qq.co", NULL},          {"", NULL},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const pigeon_provider *p = pigeon_provider_for_domain(table[i].domain);
        if (table[i].preset == NULL) {
            assert_null(p);
        } else {
            assert_non_null(p);
            assert_string_equal(p->name, table[i].preset);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_presets_exist),
        cmocka_unit_test(test_known_settings),
        cmocka_unit_test(test_unknown_and_bad_region),
        cmocka_unit_test(test_for_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
