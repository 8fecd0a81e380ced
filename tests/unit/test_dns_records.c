/*
 * test_dns_records.c - the pure DNS record parsers: SPF (RFC 7208 4.5, 5, 6, 7.1), DMARC
 * (RFC 7489 6.3), DKIM key records (RFC 6376 3.6.1), MTA-STS/TLS-RPT/BIMI, the
 * organizational domain rule, the reverse names of DNSBL lookups and the provider table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pigeon/dns.h"

static pigeon_err spf(const char *s, pigeon_spf_record *r)
{
    return pigeon_spf_parse(s, strlen(s), r);
}

static void test_spf_valid(void **state)
{
    (void)state;
    static pigeon_spf_record r;
    assert_int_equal(spf("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx:mail.example.com/24//64 "
                         "include:_spf.google.com ~all",
                         &r),
                     PIGEON_OK);
    assert_int_equal(r.count, 6);
    assert_int_equal(r.terms[0].kind, PIGEON_SPF_IP4);
    assert_int_equal(r.terms[0].cidr4, 24);
    assert_int_equal(r.terms[1].kind, PIGEON_SPF_IP6);
    assert_int_equal(r.terms[1].cidr6, 32);
    assert_int_equal(r.terms[3].kind, PIGEON_SPF_MX);
    assert_string_equal(r.terms[3].domain, "mail.example.com");
    assert_int_equal(r.terms[3].cidr4, 24);
    assert_int_equal(r.terms[3].cidr6, 64);
    assert_int_equal(r.terms[5].qualifier, '~');
    assert_int_equal(r.all, 5);
    /* Modifiers, macros, case-insensitive names (4.6.1). */
    assert_int_equal(spf("V=SPF1 EXISTS:%{i}.%{l1r-}.bl.example -ALL redirect=_spf.example.com "
                         "foo=bar",
                         &r),
                     PIGEON_OK);
    assert_true(r.terms[0].has_macro);
    assert_int_equal(r.terms[1].qualifier, '-');
    assert_int_equal(r.redirect, 2);
    assert_int_equal(r.terms[3].kind, PIGEON_SPF_UNKNOWN);
    assert_int_equal(spf("v=spf1", &r), PIGEON_OK);
    assert_int_equal(r.count, 0);
}

static void test_spf_invalid(void **state)
{
    (void)state;
    static pigeon_spf_record r;
    static const char *const bad[] = {
        "v=spf1 ip4:192.0.2.300",
        "v=spf1 ip4:192.0.2.0/33",
        "v=spf1 ip6:2001:db8::/129",
        "v=spf1 include",
        "v=spf1 foo:bar",
        "v=spf1 all:x",
        "v=spf1 exists:%{x}.example.com",
        "v=spf1 a:example.com/024",
        "v=spf1 redirect=a.com redirect=b.com",
        "v=spf1 include:example.123",
        "v=spf1 -",
        "v=spf10 -all",
        "spf1 -all",
        "v=spf1 a:%{i",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(spf(bad[i], &r), PIGEON_ERR_PROTOCOL);
        assert_true(r.error[0] != '\0');
    }
    assert_false(pigeon_spf_is_record("v=spf10", 7));
    assert_true(pigeon_spf_is_record("v=spf1 -all", 11));
}

/* Found by fuzz_dns_spf: an error message quoted past the end of an unterminated input. */
static void test_spf_unterminated(void **state)
{
    (void)state;
    static pigeon_spf_record r;
    static const char *const inputs[] = {"v=spf1 a:%{x", "v=spf1 a:%{i", "v=spf1 a:x%"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        size_t n = strlen(inputs[i]);
        char *exact = malloc(n); /* no NUL: ASan sees any read past n */
        assert_non_null(exact);
        memcpy(exact, inputs[i], n);
        assert_int_equal(pigeon_spf_parse(exact, n, &r), PIGEON_ERR_PROTOCOL);
        free(exact);
    }
}

static void test_dmarc(void **state)
{
    (void)state;
    pigeon_dmarc_record r;
    const char *ok = "v=DMARC1; p=quarantine; sp=reject; pct=50; rua=mailto:a@example.com,"
                     "mailto:b@example.net; ruf=mailto:f@example.com; adkim=s; aspf=r; fo=1:d; "
                     "ri=3600";
    assert_int_equal(pigeon_dmarc_parse(ok, strlen(ok), &r), PIGEON_OK);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.p, PIGEON_DMARC_QUARANTINE);
    assert_int_equal(r.sp, PIGEON_DMARC_REJECT);
    assert_int_equal(r.pct, 50);
    assert_int_equal(r.adkim, 's');
    assert_string_equal(r.fo, "1:d");
    assert_int_equal(r.ri, 3600);
    assert_string_equal(r.rua, "mailto:a@example.com,mailto:b@example.net");
    const char *bad = "v=DMARC1; p=block; pct=150; adkim=x; rua=dmarc@example.com";
    assert_int_equal(pigeon_dmarc_parse(bad, strlen(bad), &r), PIGEON_ERR_PROTOCOL);
    assert_int_equal(r.errors, 5); /* four bad tags, and no valid p= */
    assert_non_null(strstr(r.error, "p=block"));
    /* 6.6.3: no valid p= but a valid rua= is p=none. */
    const char *norp = "v=DMARC1; rua=mailto:d@example.com";
    assert_int_equal(pigeon_dmarc_parse(norp, strlen(norp), &r), PIGEON_OK);
    assert_int_equal(r.p, PIGEON_DMARC_NONE);
    assert_false(pigeon_dmarc_is_record("v=spf1 -all", 11));
    assert_false(pigeon_dmarc_is_record("p=none; v=DMARC1", 16));
    assert_true(pigeon_dmarc_is_record("v = DMARC1 ;p=none", 18));
}

static void test_dkim_key(void **state)
{
    (void)state;
    pigeon_dns_dkim_record k;
    const char *rec = "v=DKIM1; k=ed25519; t=y:s; h=sha256; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIa"
                      "aPcHURo=";
    assert_int_equal(pigeon_dns_dkim_record_parse(rec, strlen(rec), &k), PIGEON_OK);
    assert_string_equal(k.k, "ed25519");
    assert_true(k.testing);
    assert_int_equal(k.p_len, 44);
    const char *revoked = "v=DKIM1; p=";
    assert_int_equal(pigeon_dns_dkim_record_parse(revoked, strlen(revoked), &k), PIGEON_OK);
    assert_int_equal(k.p_len, 0);
    static const char *const bad[] = {"k=rsa; v=DKIM1; p=AB", "v=DKIM1; k=dsa; p=AB",
                                      "v=DKIM1; p=AB; p=CD",  "v=DKIM1; k=rsa",
                                      "v=DKIM1; p=A*B",       "v=DKIM1; 1x=y; p=AB"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pigeon_dns_dkim_record_parse(bad[i], strlen(bad[i]), &k),
                         PIGEON_ERR_PROTOCOL);
}

static void test_tagrec(void **state)
{
    (void)state;
    pigeon_tagrec t;
    const char *sts = "v=STSv1; id=20240101T000000";
    assert_int_equal(pigeon_tagrec_parse(sts, strlen(sts), "STSv1", &t), PIGEON_OK);
    assert_string_equal(t.id, "20240101T000000");
    const char *noid = "v=STSv1;";
    assert_int_equal(pigeon_tagrec_parse(noid, strlen(noid), "STSv1", &t), PIGEON_ERR_PROTOCOL);
    const char *rpt = "v=TLSRPTv1; rua=mailto:tls@example.com";
    assert_int_equal(pigeon_tagrec_parse(rpt, strlen(rpt), "TLSRPTv1", &t), PIGEON_OK);
    assert_string_equal(t.rua, "mailto:tls@example.com");
    const char *bimi = "v=BIMI1; l=https://example.com/logo.svg; a=";
    assert_int_equal(pigeon_tagrec_parse(bimi, strlen(bimi), "BIMI1", &t), PIGEON_OK);
    assert_string_equal(t.l, "https://example.com/logo.svg");
    assert_int_equal(pigeon_tagrec_parse(bimi, strlen(bimi), "STSv1", &t), PIGEON_ERR_PROTOCOL);
}

static void test_org_domain(void **state)
{
    (void)state;
    char out[256];
    static const char *const cases[][2] = {
        {"mail.example.com", "example.com"},
        {"example.com", "example.com"},
        {"a.b.example.com.cn", "example.com.cn"},
        {"news.bbc.co.uk", "bbc.co.uk"},
        {"co.uk", "co.uk"},
        {"Mail.Example.COM.", "example.com"},
        {"localhost", "localhost"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(pigeon_dns_org_domain(cases[i][0], out, sizeof out), 0);
        assert_string_equal(out, cases[i][1]);
    }
}

static void test_reverse_and_providers(void **state)
{
    (void)state;
    char out[200];
    assert_int_equal(pigeon_dns_reverse_name("192.0.2.99", "zen.spamhaus.org", out, sizeof out), 0);
    assert_string_equal(out, "99.2.0.192.zen.spamhaus.org");
    assert_int_equal(pigeon_dns_reverse_name("2001:db8::1", "ip6.arpa", out, sizeof out), 0);
    assert_string_equal(out,
                        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    assert_int_equal(pigeon_dns_reverse_name("nope", "x", out, sizeof out), -1);
    assert_string_equal(pigeon_dns_provider_spf_include("qq"), "spf.mail.qq.com");
    assert_string_equal(pigeon_dns_provider_spf_include("163"), "spf.163.com");
    assert_string_equal(pigeon_dns_provider_spf_include("ses-eu-west-1"), "amazonses.com");
    assert_string_equal(pigeon_dns_provider_spf_include("gmail"), "_spf.google.com");
    assert_string_equal(pigeon_dns_provider_spf_include("office365"), "spf.protection.outlook.com");
    assert_null(pigeon_dns_provider_spf_include("yahoo"));
    assert_null(pigeon_dns_provider_spf_include(NULL));
}

static void collect(void *ctx, const char *host, size_t len)
{
    char *out = ctx;
    size_t n = strlen(out);
    if (n + len + 2 < 256) {
        memcpy(out + n, host, len);
        out[n + len] = ' ';
        out[n + len + 1] = '\0';
    }
}

static void test_links(void **state)
{
    (void)state;
    char hosts[256] = "";
    const char *msg =
        "<a href=\"https://www.Example.com/x?y=1\">x</a> HTTP://user:pw@evil.test:8080/ "
        "see http://a.b.c./, (http://) https://";
    pigeon_dns_scan_links(msg, strlen(msg), collect, hosts);
    assert_string_equal(hosts, "www.Example.com evil.test a.b.c ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spf_valid),
        cmocka_unit_test(test_spf_invalid),
        cmocka_unit_test(test_spf_unterminated),
        cmocka_unit_test(test_dmarc),
        cmocka_unit_test(test_dkim_key),
        cmocka_unit_test(test_tagrec),
        cmocka_unit_test(test_org_domain),
        cmocka_unit_test(test_reverse_and_providers),
        cmocka_unit_test(test_links),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
