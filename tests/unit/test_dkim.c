/*
 * test_dkim.c - DKIM: the canonicalization example of RFC 6376 3.4.5, the streaming body
 * canonicalizer against any chunking (a CRLF split across chunks), trailing empty lines
 * (3.4.3, 3.4.4), the RFC 8463 appendix A signatures reproduced byte for byte (Ed25519 and
 * RSA are deterministic), and the signer's h= (oversigning), folding and refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "codec/encode.h"
#include "dkim/canon.h"
#include "dkim/dkim_sign.h"
#include "pigeon/dkim.h"

static void to_buf(void *ctx, const void *p, size_t n)
{
    pg_buf_append(ctx, p, n);
}

/* The canonical body of in, fed in chunks of step bytes. */
static char *body(pigeon_dkim_canon c, const char *in, size_t step, size_t *len)
{
    pg_buf out;
    pg_dkim_body b;
    pg_buf_init(&out);
    pg_buf_puts(&out, ""); /* never NULL */
    pg_dkim_body_init(&b, c, to_buf, &out);
    size_t n = strlen(in);
    for (size_t i = 0; i < n; i += step)
        pg_dkim_body_feed(&b, in + i, n - i < step ? n - i : step);
    pg_dkim_body_finish(&b);
    return pg_buf_detach(&out, len);
}

static void check_body(pigeon_dkim_canon c, const char *in, const char *want)
{
    for (size_t step = 1; step <= strlen(in) + 1; step++) {
        size_t len;
        char *got = body(c, in, step, &len);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(got, want, len);
        free(got);
    }
}

static char *headers(pigeon_dkim_canon c, const char *block)
{
    pg_dkim_field f[8];
    size_t n = pg_dkim_fields_split(block, strlen(block), f, 8);
    pg_buf out;
    pg_buf_init(&out);
    pg_buf_puts(&out, "");
    for (size_t i = 0; i < n; i++)
        pg_dkim_header_canon(&out, c, f[i].raw, f[i].raw_len, 1);
    return pg_buf_detach(&out, NULL);
}

/* RFC 6376 3.4.5, both canonicalizations of its example. */
static void test_rfc6376_example(void **state)
{
    (void)state;
    const char *hdr = "A: X\r\nB : Y\t\r\n\tZ  ";
    char *relaxed = headers(PIGEON_DKIM_RELAXED, hdr);
    assert_string_equal(relaxed, "a:X\r\nb:Y Z\r\n");
    char *simple = headers(PIGEON_DKIM_SIMPLE, hdr);
    assert_string_equal(simple, "A: X\r\nB : Y\t\r\n\tZ  \r\n");
    free(relaxed);
    free(simple);
    const char *bd = " C \r\nD \t E\r\n\r\n\r\n";
    check_body(PIGEON_DKIM_RELAXED, bd, " C\r\nD E\r\n");
    check_body(PIGEON_DKIM_SIMPLE, bd, " C \r\nD \t E\r\n");
}

/* Empty bodies, CRLF-only bodies, a missing last CRLF, bare LF and CR, white-space lines. */
static void test_body_edges(void **state)
{
    (void)state;
    check_body(PIGEON_DKIM_SIMPLE, "", "\r\n");
    check_body(PIGEON_DKIM_RELAXED, "", "");
    check_body(PIGEON_DKIM_SIMPLE, "\r\n\r\n\r\n", "\r\n");
    check_body(PIGEON_DKIM_RELAXED, "\r\n \t\r\n\r\n", "");
    check_body(PIGEON_DKIM_SIMPLE, "abc", "abc\r\n");
    check_body(PIGEON_DKIM_RELAXED, "abc  ", "abc\r\n");
    check_body(PIGEON_DKIM_SIMPLE, "a\nb\rc\r\n\n", "a\r\nb\r\nc\r\n");
    check_body(PIGEON_DKIM_RELAXED, "a  \r\n   \r\nb\t\tc \r\n", "a\r\n\r\nb c\r\n");
    check_body(PIGEON_DKIM_SIMPLE, "  \r\n", "  \r\n");
    check_body(PIGEON_DKIM_RELAXED, "x\r\n\r\n\r\ny", "x\r\n\r\n\r\ny\r\n");
}

/* Long lines, which go through the whole-line and word-at-a-time scanners: an SP pair, a
 * trailing SP, an HTAB or a bare CR at each offset of a 16- and 8-byte word (and across
 * their boundaries) must still be folded; plain lines and single SPs pass as they are. */
static void test_body_long_lines(void **state)
{
    (void)state;
    const char *plain =
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+/abcdefghijk";
    char in[512], want_r[512], want_s[512];
    for (size_t at = 0; at < 40; at++) {
        static const char *const bad[] = {"  ", " \t", "\t", " \r\n", "\r"};
        static const char *const fixed[] = {" ", " ", " ", "\r\n", "\r\n"};
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            /* line 1 plain with single SPs; line 2 with the defect at offset at; line 3 plain */
            snprintf(in, sizeof in, "%.20s %.20s %.20s\r\n%.*s%s%s\r\n%s\r\n", plain, plain + 20,
                     plain + 40, (int)at + 1, plain, bad[k], plain + at + 1, plain);
            snprintf(want_r, sizeof want_r, "%.20s %.20s %.20s\r\n%.*s%s%s\r\n%s\r\n", plain,
                     plain + 20, plain + 40, (int)at + 1, plain, fixed[k], plain + at + 1, plain);
            snprintf(want_s, sizeof want_s, "%.20s %.20s %.20s\r\n%.*s%s%s\r\n%s\r\n", plain,
                     plain + 20, plain + 40, (int)at + 1, plain, k == 4 ? "\r\n" : bad[k],
                     plain + at + 1, plain);
            check_body(PIGEON_DKIM_RELAXED, in, want_r);
            check_body(PIGEON_DKIM_SIMPLE, in, want_s);
        }
    }
}

/* Folded fields and their names; a line without a colon. */
static void test_fields_split(void **state)
{
    (void)state;
    const char *block = "Subject: a\r\n b\r\nFrom : x@y\r\nbogus\r\nTo: z";
    pg_dkim_field f[4];
    size_t n = pg_dkim_fields_split(block, strlen(block), f, 4);
    assert_int_equal(n, 4);
    assert_int_equal(f[0].raw_len, strlen("Subject: a\r\n b"));
    assert_int_equal(f[0].name_len, 7);
    assert_int_equal(f[1].name_len, 4);
    assert_int_equal(f[2].name_len, 0);
    assert_int_equal(pg_dkim_fields_split(block, strlen(block), f, 2), 3);
}

/* ---- RFC 8463 appendix A ---- */

static const char rfc_rsa_key[] =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
    "Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
    "KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
    "AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
    "6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
    "zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
    "6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
    "uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
    "WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
    "WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
    "licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
    "o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
    "uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
    "-----END RSA PRIVATE KEY-----\n";
/* A.2: the Ed25519 key as its base64 seed (RFC 8032 7.1 test 1). */
static const char rfc_ed_seed[] = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";

static const char rfc_msg_header[] =
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n";
static const char rfc_msg_body[] =
    "Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n";

/* A.3: the two signatures, b= emptied, and the b= values. */
static const char rfc_ed_sig[] = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
                                 " d=football.example.com; i=@football.example.com;\r\n"
                                 " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
                                 " subject : date : message-id : from : subject : date;\r\n"
                                 " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
                                 " b=";
static const char rfc_ed_b[] = "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus"
                               "Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==";
static const char rfc_rsa_sig[] = "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
                                  " d=football.example.com; i=@football.example.com;\r\n"
                                  " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
                                  " date : message-id : from : subject : date;\r\n"
                                  " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
                                  " b=";
static const char rfc_rsa_b[] = "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3"
                                "DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz"
                                "dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=";

static char *b64(const unsigned char *p, size_t n)
{
    pg_buf out;
    pg_buf_init(&out);
    pg_b64_encode(&out, p, n);
    return pg_buf_detach(&out, NULL);
}

static void test_rfc8463_body_hash(void **state)
{
    (void)state;
    size_t len;
    char *canon = body(PIGEON_DKIM_RELAXED, rfc_msg_body, 7, &len);
    unsigned char md[32];
    unsigned mdlen;
    assert_int_equal(EVP_Digest(canon, len, md, &mdlen, EVP_sha256(), NULL), 1);
    char *bh = b64(md, 32);
    assert_string_equal(bh, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
    free(bh);
    free(canon);
}

/* The b= of one of the RFC's signatures, computed over the RFC's header data. */
static char *rfc_signature(const pigeon_dkim_key *key, const char *sig_field)
{
    static const char *const h[] = {"from", "to", "subject", "date", "message-id"};
    pg_dkim_field f[8];
    size_t n = pg_dkim_fields_split(rfc_msg_header, strlen(rfc_msg_header) - 2, f, 8);
    assert_int_equal(n, 5);
    pg_buf data;
    pg_buf_init(&data);
    for (size_t i = 0; i < 5; i++) { /* from, subject, date again select nothing */
        assert_int_equal(f[i].name_len, strlen(h[i]));
        pg_dkim_header_canon(&data, PIGEON_DKIM_RELAXED, f[i].raw, f[i].raw_len, 1);
    }
    pg_dkim_header_canon(&data, PIGEON_DKIM_RELAXED, sig_field, strlen(sig_field), 0);
    unsigned char sig[512];
    size_t siglen = sizeof sig;
    assert_int_equal(pg_dkim_sign_raw(key, data.data, data.len, sig, &siglen), 1);
    pg_buf_cleanup(&data);
    return b64(sig, siglen);
}

static void test_rfc8463_signatures(void **state)
{
    (void)state;
    pigeon_dkim_key *ed = NULL, *rsa = NULL;
    char why[200];
    assert_int_equal(pigeon_dkim_key_parse(rfc_ed_seed, strlen(rfc_ed_seed), &ed, why, sizeof why),
                     PIGEON_OK);
    assert_int_equal(pigeon_dkim_key_parse(rfc_rsa_key, strlen(rfc_rsa_key), &rsa, why, sizeof why),
                     PIGEON_OK);
    assert_int_equal(pigeon_dkim_key_alg(ed), PIGEON_DKIM_ED25519_SHA256);
    assert_int_equal(pigeon_dkim_key_bits(rsa), 1024);
    /* A.2: the published public keys. */
    char *txt = NULL;
    assert_int_equal(pigeon_dkim_key_dns_value(ed, &txt), PIGEON_OK);
    assert_string_equal(txt, "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
    free(txt);
    char *b = rfc_signature(rsa, rfc_rsa_sig);
    assert_string_equal(b, rfc_rsa_b);
    free(b);
    b = rfc_signature(ed, rfc_ed_sig);
    assert_string_equal(b, rfc_ed_b);
    free(b);
    pigeon_dkim_key_free(ed);
    pigeon_dkim_key_free(rsa);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6376_example),    cmocka_unit_test(test_body_edges),
        cmocka_unit_test(test_fields_split),       cmocka_unit_test(test_rfc8463_body_hash),
        cmocka_unit_test(test_rfc8463_signatures), cmocka_unit_test(test_body_long_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
