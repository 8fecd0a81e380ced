/*
 * test_base64.c - base64 (RFC 4648) and its MIME line wrapping (RFC 2045 6.8).
 *
 * Vectors from RFC 4648 section 10; wrapped output checked against OpenSSL's
 * EVP_EncodeBlock split into lines, for every chunking of the input stream.
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

/* RFC 4648 section 10 test vectors. */
static const struct {
    const char *in;
    const char *out;
} rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void fill_random(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* The expected wrapped form: OpenSSL's unwrapped base64 cut into lines with CRLF. */
static char *reference_wrapped(const uint8_t *in, size_t n, unsigned line_len, size_t *len)
{
    size_t raw_len = (n + 2) / 3 * 4;
    char *raw = malloc(raw_len + 1);
    char *out = malloc(raw_len + 2 * (raw_len / 4 + 1) + 1);
    assert_non_null(raw);
    assert_non_null(out);
    assert_int_equal(EVP_EncodeBlock((unsigned char *)raw, in, (int)n), (int)raw_len);
    size_t o = 0;
    for (size_t i = 0; i < raw_len; i += line_len) {
        size_t take = raw_len - i < line_len ? raw_len - i : line_len;
        memcpy(out + o, raw + i, take);
        o += take;
        memcpy(out + o, "\r\n", 2);
        o += 2;
    }
    free(raw);
    *len = o;
    return out;
}

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        pg_buf b;
        pg_buf_init(&b);
        size_t n = strlen(rfc4648[i].in);
        assert_int_equal(pg_b64_encode(&b, rfc4648[i].in, n), PIGEON_OK);
        assert_int_equal(b.len, strlen(rfc4648[i].out));
        assert_memory_equal(b.len ? b.data : "", rfc4648[i].out, b.len);
        char raw[16];
        assert_int_equal(pg_b64_encode_raw((const uint8_t *)rfc4648[i].in, n, raw), b.len);
        assert_memory_equal(raw, rfc4648[i].out, b.len);
        pg_buf_reset(&b);
        assert_int_equal(pg_b64_decode(&b, rfc4648[i].out, strlen(rfc4648[i].out)), PIGEON_OK);
        assert_int_equal(b.len, n);
        assert_memory_equal(b.len ? b.data : "", rfc4648[i].in, n);
        pg_buf_cleanup(&b);
    }
}

static void test_encoded_len(void **state)
{
    (void)state;
    static const struct {
        uint64_t n;
        unsigned line_len;
        uint64_t want;
    } table[] = {
        {0, 76, 0},
        {1, 76, 6},
        {3, 0, 4},
        {57, 76, 78},
        {58, 76, 84},
        {114, 76, 156},
        {1, 0, 4},
        {2, 4, 6},
        {3, 4, 6},
        {4, 4, 12},
        {1u << 30, 76, 1431655768ull + 2 * 18837576ull}, /* 2^30 bytes: 18837576 lines */
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        assert_int_equal(pg_b64_encoded_len(table[i].n, table[i].line_len), table[i].want);
}

/* Wrapped output equals OpenSSL's, cut into lines, for lengths around line boundaries. */
static void test_stream_matches_reference(void **state)
{
    (void)state;
    static const unsigned line_lens[] = {76, 64, 4, 8};
    uint8_t data[700];
    fill_random(data, sizeof data, 7);
    for (size_t l = 0; l < sizeof line_lens / sizeof line_lens[0]; l++) {
        for (size_t n = 0; n <= 300; n += (n < 130 ? 1 : 37)) {
            size_t want_len;
            char *want = reference_wrapped(data, n, line_lens[l], &want_len);
            pg_b64_stream st;
            pg_buf b;
            pg_buf_init(&b);
            pg_b64_stream_init(&st, line_lens[l]);
            assert_int_equal(pg_b64_stream_update(&st, &b, data, n), PIGEON_OK);
            assert_int_equal(pg_b64_stream_final(&st, &b), PIGEON_OK);
            assert_int_equal(b.len, want_len);
            assert_int_equal(pg_b64_encoded_len(n, line_lens[l]), want_len);
            assert_memory_equal(b.len ? b.data : "", want, want_len);
            pg_buf_cleanup(&b);
            free(want);
        }
    }
}

/* Any chunking of the input gives the bytes of one call. */
static void test_stream_chunking(void **state)
{
    (void)state;
    static const size_t chunks[] = {1, 2, 3, 4, 5, 7, 56, 57, 58, 100, 171, 1000};
    uint8_t data[5000];
    fill_random(data, sizeof data, 99);
    size_t want_len;
    char *want = reference_wrapped(data, sizeof data, 76, &want_len);
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        pg_b64_stream st;
        pg_buf b;
        pg_buf_init(&b);
        pg_b64_stream_init(&st, 76);
        for (size_t off = 0; off < sizeof data; off += chunks[c]) {
            size_t take = sizeof data - off < chunks[c] ? sizeof data - off : chunks[c];
            assert_int_equal(pg_b64_stream_update(&st, &b, data + off, take), PIGEON_OK);
        }
        assert_int_equal(pg_b64_stream_final(&st, &b), PIGEON_OK);
        assert_int_equal(b.len, want_len);
        assert_memory_equal(b.data, want, want_len);
        pg_buf_cleanup(&b);
    }
    free(want);
}

static void test_stream_empty_and_unwrapped(void **state)
{
    (void)state;
    pg_b64_stream st;
    pg_buf b;
    pg_buf_init(&b);
    pg_b64_stream_init(&st, 76);
    assert_int_equal(pg_b64_stream_final(&st, &b), PIGEON_OK);
    assert_int_equal(b.len, 0);
    /* line_len 0: no line breaks at all, same as pg_b64_encode. */
    pg_b64_stream_init(&st, 0);
    assert_int_equal(pg_b64_stream_update(&st, &b, "fo", 2), PIGEON_OK);
    assert_int_equal(pg_b64_stream_update(&st, &b, "obar", 4), PIGEON_OK);
    assert_int_equal(pg_b64_stream_final(&st, &b), PIGEON_OK);
    assert_string_equal(b.data, "Zm9vYmFy");
    pg_buf_cleanup(&b);
}

static void test_decode_lenient_and_strict(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        pigeon_err err;
        const char *out;
    } table[] = {
        {"Zm9v\r\nYmFy", PIGEON_OK, "foobar"},   /* MIME line breaks are ignored */
        {" Zm 9v\tYg==\r\n", PIGEON_OK, "foob"}, /* and so are spaces and tabs */
        {"Zm9vYg", PIGEON_OK, "foob"},           /* padding is optional at the end */
        {"Zm9vYmE", PIGEON_OK, "fooba"},
        {"Zg=\r\n=", PIGEON_OK, "f"}, /* padding split across lines */
        {"Zm9v!", PIGEON_ERR_INVALID, NULL},
        {"Zm9vY", PIGEON_ERR_INVALID, NULL},    /* a lone character in the last quantum */
        {"Zg=", PIGEON_ERR_INVALID, NULL},      /* half the padding */
        {"Zm8==", PIGEON_ERR_INVALID, NULL},    /* too much padding */
        {"Zg==Zg==", PIGEON_ERR_INVALID, NULL}, /* data after padding */
        {"=", PIGEON_ERR_INVALID, NULL},
        {"Zm9v-_", PIGEON_ERR_INVALID, NULL}, /* base64url is another alphabet */
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        pg_buf b;
        pg_buf_init(&b);
        pg_buf_append(&b, "x", 1);
        assert_int_equal(pg_b64_decode(&b, table[i].in, strlen(table[i].in)), table[i].err);
        if (table[i].out != NULL) {
            assert_int_equal(b.len, 1 + strlen(table[i].out));
            assert_memory_equal(b.data + 1, table[i].out, b.len - 1);
        } else {
            assert_int_equal(b.len, 1); /* nothing half-written */
            assert_int_equal(b.err, table[i].err);
        }
        pg_buf_cleanup(&b);
    }
}

static void test_round_trip_all_lengths(void **state)
{
    (void)state;
    uint8_t data[300];
    fill_random(data, sizeof data, 1234);
    for (size_t n = 0; n <= sizeof data; n++) {
        pg_buf enc, dec;
        pg_buf_init(&enc);
        pg_buf_init(&dec);
        pg_b64_stream st;
        pg_b64_stream_init(&st, 76);
        pg_b64_stream_update(&st, &enc, data, n);
        pg_b64_stream_final(&st, &enc);
        assert_int_equal(pg_b64_decode(&dec, enc.data ? enc.data : "", enc.len), PIGEON_OK);
        assert_int_equal(dec.len, n);
        assert_memory_equal(dec.len ? dec.data : "", data, n);
        pg_buf_cleanup(&enc);
        pg_buf_cleanup(&dec);
    }
}

/* A buffer already in error stays untouched (sticky error). */
static void test_sticky_error(void **state)
{
    (void)state;
    pg_buf b;
    pg_buf_init(&b);
    b.err = PIGEON_ERR_NOMEM;
    assert_int_equal(pg_b64_encode(&b, "foo", 3), PIGEON_ERR_NOMEM);
    assert_int_equal(pg_b64_decode(&b, "Zm9v", 4), PIGEON_ERR_NOMEM);
    assert_int_equal(b.len, 0);
    pg_buf_cleanup(&b);
    /* A size limit on the buffer is honoured. */
    pg_buf_init(&b);
    b.max = 10;
    assert_int_equal(pg_b64_encode(&b, "0123456789", 10), PIGEON_ERR_TOO_LARGE);
    pg_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_encoded_len),
        cmocka_unit_test(test_stream_matches_reference),
        cmocka_unit_test(test_stream_chunking),
        cmocka_unit_test(test_stream_empty_and_unwrapped),
        cmocka_unit_test(test_decode_lenient_and_strict),
        cmocka_unit_test(test_round_trip_all_lengths),
        cmocka_unit_test(test_sticky_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
