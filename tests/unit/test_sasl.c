/*
 * test_sasl.c - SASL mechanisms against their specifications' vectors: RFC 2195 2 (the
 * CRAM-MD5 example), RFC 4616 (PLAIN message layout), RFC 2104 / RFC 2202 (HMAC-MD5 test
 * cases), Google's XOAUTH2 format, LOGIN's two steps, and the challenge bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec/encode.h"
#include "smtp/sasl.h"

/* RFC 2202 2: HMAC-MD5 test cases 2 and 3, and RFC 2195's example. */
static void test_hmac_md5_vectors(void **state)
{
    (void)state;
    char hex[33];
    assert_int_equal(pg_hmac_md5_hex("Jefe", 4, "what do ya want for nothing?", 28, hex),
                     PIGEON_OK);
    assert_string_equal(hex, "750c783e6ab0b503eaa86e310a5db738");
    unsigned char key[16], data[50];
    memset(key, 0xaa, sizeof key);
    memset(data, 0xdd, sizeof data);
    assert_int_equal(pg_hmac_md5_hex(key, sizeof key, data, sizeof data, hex), PIGEON_OK);
    assert_string_equal(hex, "56be34521d144c88dbb8c733f0e8b3f6");
}

/* RFC 2195 2: user tim, secret tanstaaftanstaaf, the challenge below. */
static void test_cram_md5_rfc2195(void **state)
{
    (void)state;
    const char *b64 = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+";
    pg_buf ch, resp, enc;
    pg_buf_init(&ch);
    pg_buf_init(&resp);
    pg_buf_init(&enc);
    assert_int_equal(pg_b64_decode(&ch, b64, strlen(b64)), PIGEON_OK);
    assert_string_equal(ch.data, "<1896.697170952@postoffice.reston.mci.net>");
    pg_sasl s;
    pg_sasl_init(&s, PG_SASL_CRAM_MD5, "tim", "tanstaaftanstaaf");
    int has = 1;
    assert_int_equal(pg_sasl_initial(&s, &resp, &has), PIGEON_OK);
    assert_int_equal(has, 0);
    assert_int_equal(pg_sasl_step(&s, (const unsigned char *)ch.data, ch.len, &resp), PIGEON_OK);
    assert_string_equal(resp.data, "tim b913a602c7eda7a495b4e6e7334d3890");
    assert_int_equal(pg_b64_encode(&enc, resp.data, resp.len), PIGEON_OK);
    assert_string_equal(enc.data, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
    /* One challenge only. */
    assert_int_equal(pg_sasl_step(&s, (const unsigned char *)"x", 1, &resp), PIGEON_ERR_PROTOCOL);
    pg_buf_cleanup(&ch);
    pg_buf_wipe_cleanup(&resp);
    pg_buf_cleanup(&enc);
}

/* RFC 4616 2: [authzid] NUL authcid NUL passwd; its example "tim"/"tanstaaftanstaaf". */
static void test_plain(void **state)
{
    (void)state;
    pg_sasl s;
    pg_buf b, enc;
    pg_buf_init(&b);
    pg_buf_init(&enc);
    pg_sasl_init(&s, PG_SASL_PLAIN, "tim", "tanstaaftanstaaf");
    int has = 0;
    assert_int_equal(pg_sasl_initial(&s, &b, &has), PIGEON_OK);
    assert_int_equal(has, 1);
    assert_int_equal(b.len, 21);
    assert_memory_equal(b.data, "\0tim\0tanstaaftanstaaf", 21);
    assert_int_equal(pg_b64_encode(&enc, b.data, b.len), PIGEON_OK);
    assert_string_equal(enc.data, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    /* Sent with AUTH: no challenge is expected. */
    s.sent_initial = 1;
    pg_buf_reset(&b);
    assert_int_equal(pg_sasl_step(&s, NULL, 0, &b), PIGEON_ERR_PROTOCOL);
    /* Not sent with AUTH: the empty challenge gets the message. */
    pg_sasl_init(&s, PG_SASL_PLAIN, "tim", "tanstaaftanstaaf");
    assert_int_equal(pg_sasl_step(&s, (const unsigned char *)"", 0, &b), PIGEON_OK);
    assert_int_equal(b.len, 21);
    pg_buf_wipe_cleanup(&b);
    pg_buf_wipe_cleanup(&enc);
}

static void test_login(void **state)
{
    (void)state;
    pg_sasl s;
    pg_buf b;
    pg_buf_init(&b);
    pg_sasl_init(&s, PG_SASL_LOGIN, "user@qq.com", "authcode");
    int has = 1;
    assert_int_equal(pg_sasl_initial(&s, &b, &has), PIGEON_OK);
    assert_int_equal(has, 0);
    assert_int_equal(pg_sasl_step(&s, (const unsigned char *)"Username:", 9, &b), PIGEON_OK);
    assert_string_equal(b.data, "user@qq.com");
    pg_buf_reset(&b);
    assert_int_equal(pg_sasl_step(&s, (const unsigned char *)"Password:", 9, &b), PIGEON_OK);
    assert_string_equal(b.data, "authcode");
    pg_buf_reset(&b);
    assert_int_equal(pg_sasl_step(&s, (const unsigned char *)"Again:", 6, &b), PIGEON_ERR_PROTOCOL);
    pg_buf_wipe_cleanup(&b);
}

/* Google's XOAUTH2: base64("user=" user "^Aauth=Bearer " token "^A^A"). */
static void test_xoauth2(void **state)
{
    (void)state;
    pg_sasl s;
    pg_buf b, enc;
    pg_buf_init(&b);
    pg_buf_init(&enc);
    pg_sasl_init(&s, PG_SASL_XOAUTH2, "someuser@example.com",
                 "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
    int has = 0;
    assert_int_equal(pg_sasl_initial(&s, &b, &has), PIGEON_OK);
    assert_int_equal(has, 1);
    assert_int_equal(pg_b64_encode(&enc, b.data, b.len), PIGEON_OK);
    /* The example from Google's XOAUTH2 protocol documentation. */
    assert_string_equal(enc.data,
                        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRj"
                        "Mk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
    /* After the initial response, a challenge is the error document: answer empty. */
    s.sent_initial = 1;
    pg_buf_reset(&b);
    const char *err = "{\"status\":\"401\",\"schemes\":\"bearer\"}";
    assert_int_equal(pg_sasl_step(&s, (const unsigned char *)err, strlen(err), &b),
                     PIGEON_ERR_AUTH);
    assert_int_equal(b.len, 0);
    assert_int_equal(pg_sasl_step(&s, (const unsigned char *)err, strlen(err), &b),
                     PIGEON_ERR_PROTOCOL);
    pg_sasl_init(&s, PG_SASL_XOAUTH2, "a\001b", "t");
    assert_int_equal(pg_sasl_initial(&s, &b, &has), PIGEON_ERR_INVALID);
    pg_buf_wipe_cleanup(&b);
    pg_buf_cleanup(&enc);
}

/* At most PG_SASL_MAX_CHALLENGES, each at most PG_SASL_CHALLENGE_MAX. */
static void test_bounds(void **state)
{
    (void)state;
    static unsigned char big[PG_SASL_CHALLENGE_MAX + 1];
    pg_sasl s;
    pg_buf b;
    pg_buf_init(&b);
    pg_sasl_init(&s, PG_SASL_CRAM_MD5, "u", "p");
    assert_int_equal(pg_sasl_step(&s, big, sizeof big, &b), PIGEON_ERR_PROTOCOL);
    assert_int_equal(b.len, 0);
    pg_sasl_init(&s, PG_SASL_LOGIN, "u", "p");
    s.challenges = PG_SASL_MAX_CHALLENGES;
    assert_int_equal(pg_sasl_step(&s, big, 1, &b), PIGEON_ERR_PROTOCOL);
    assert_string_equal(pg_sasl_name(PG_SASL_CRAM_MD5), "CRAM-MD5");
    pg_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_md5_vectors),
        cmocka_unit_test(test_cram_md5_rfc2195),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_login),
        cmocka_unit_test(test_xoauth2),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
