/*
 * test_dotstuff.c - DATA transparency (RFC 5321 4.5.2) and line-ending normalization
 * (RFC 5321 2.3.8), over every chunking of the input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/encode.h"

static const struct {
    const char *in;
    size_t n; /* 0: strlen(in) */
    const char *out;
} table[] = {
    {"", 0, ".\r\n"},
    {"hello\r\n", 0, "hello\r\n.\r\n"},
    {"hello", 0, "hello\r\n.\r\n"},
    {".", 0, "..\r\n.\r\n"},
    {".\r\n", 0, "..\r\n.\r\n"},
    {"a\r\n.\r\nb\r\n", 0, "a\r\n..\r\nb\r\n.\r\n"},
    {"..double\r\n", 0, "...double\r\n.\r\n"},
    {"unix\nlines\n.dot\n", 0, "unix\r\nlines\r\n..dot\r\n.\r\n"},
    {"old mac\rlines\r.dot\r", 0, "old mac\r\nlines\r\n..dot\r\n.\r\n"},
    {"mixed\r\r\n\n.x", 0, "mixed\r\n\r\n\r\n..x\r\n.\r\n"},
    {"not.at.start\r\n a.\r\n", 0, "not.at.start\r\n a.\r\n.\r\n"},
    {"\r\n.\r\n", 0, "\r\n..\r\n.\r\n"}, /* an embedded terminator is neutralized */
    {"nul\0byte\n", 9, "nul\0byte\r\n.\r\n"},
};

static size_t in_len(size_t i)
{
    return table[i].n ? table[i].n : strlen(table[i].in);
}

static size_t out_len(size_t i)
{
    /* The NUL case is the only one with an embedded NUL in the expected output. */
    return table[i].n ? strlen(table[i].out) + 1 + strlen(table[i].out + strlen(table[i].out) + 1)
                      : strlen(table[i].out);
}

/* Each table row, fed in chunks of every size from 1 to the whole. */
static void test_table_all_chunkings(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t n = in_len(i);
        for (size_t chunk = 1; chunk <= (n ? n : 1); chunk++) {
            pg_dotstuff st;
            pg_buf b;
            pg_buf_init(&b);
            pg_dotstuff_init(&st);
            for (size_t off = 0; off < n; off += chunk) {
                size_t take = n - off < chunk ? n - off : chunk;
                assert_int_equal(pg_dotstuff_update(&st, &b, table[i].in + off, take), PIGEON_OK);
            }
            assert_int_equal(pg_dotstuff_final(&st, &b), PIGEON_OK);
            assert_int_equal(b.len, out_len(i));
            assert_memory_equal(b.data, table[i].out, b.len);
            assert_int_equal(st.out_len, b.len);
            pg_buf_cleanup(&b);
        }
    }
}

/* Whatever the input: only CRLF line endings and exactly one terminator, at the end. */
static void test_random_invariants(void **state)
{
    (void)state;
    static const char alphabet[] = {'.', '\r', '\n', 'a', ' ', '\0'};
    uint32_t seed = 42;
    for (int round = 0; round < 3000; round++) {
        char in[200];
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % sizeof in;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = alphabet[(seed >> 16) % sizeof alphabet];
        }
        pg_dotstuff st;
        pg_buf b;
        pg_buf_init(&b);
        pg_dotstuff_init(&st);
        size_t half = n / 3;
        pg_dotstuff_update(&st, &b, in, half);
        pg_dotstuff_update(&st, &b, in + half, n - half);
        assert_int_equal(pg_dotstuff_final(&st, &b), PIGEON_OK);
        assert_true(b.len >= 3);
        assert_memory_equal(b.data + b.len - 3, ".\r\n", 3);
        assert_true(b.len == 3 || (b.len >= 5 && memcmp(b.data + b.len - 5, "\r\n", 2) == 0));
        for (size_t i = 0; i < b.len; i++) {
            if (b.data[i] == '\r')
                assert_true(i + 1 < b.len && b.data[i + 1] == '\n');
            if (b.data[i] == '\n')
                assert_true(i > 0 && b.data[i - 1] == '\r');
            /* "\r\n.\r\n" (or ".\r\n" at the very start) only as the terminator. */
            int line_start = i == 0 || b.data[i - 1] == '\n';
            if (line_start && b.data[i] == '.' && i + 3 < b.len)
                assert_true(b.data[i + 1] != '\r');
        }
        pg_buf_cleanup(&b);
    }
}

/* Large input crosses the internal slices; the output length is tracked. */
static void test_large(void **state)
{
    (void)state;
    size_t n = 300000;
    char *in = malloc(n);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = i % 80 == 79 ? '\n' : i % 80 == 0 ? '.' : 'x';
    pg_dotstuff st;
    pg_buf b;
    pg_buf_init(&b);
    pg_dotstuff_init(&st);
    assert_int_equal(pg_dotstuff_update(&st, &b, in, n), PIGEON_OK);
    assert_int_equal(pg_dotstuff_final(&st, &b), PIGEON_OK);
    /* Each of the n/80 lines gains a CR and a dot; then the terminator. */
    assert_int_equal(b.len, n + 2 * (n / 80) + 3);
    assert_int_equal(st.out_len, b.len);
    pg_buf_cleanup(&b);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_all_chunkings),
        cmocka_unit_test(test_random_invariants),
        cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
