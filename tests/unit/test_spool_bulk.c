/*
 * test_spool_bulk.c - PIGEON_SPOOL_BULK, the handle of a mail merge's one large batch
 * (pigeon send --queue --to-file): a batch several times its small page cache spills into
 * the WAL while it is built, and still commits whole, every body read back byte for byte
 * by another handle; a rolled-back bulk batch leaves nothing; unknown flags are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pigeon/spool.h"
#include "spool_testutil.h"

#define T0 1795000000000LL /* an arbitrary wall-clock time (2026), ms */
/* 700 messages of 9 KB: about 6 MiB, three times the bulk handle's page cache. */
#define COUNT 700
#define SIZE  9000

/* Message i: a header naming it, then bytes that differ from every other message's. */
static void body_of(int i, char *buf)
{
    int n = snprintf(buf, SIZE, "From: a@example.org\r\nSubject: %d\r\n\r\n", i);
    for (int k = n; k < SIZE; k++)
        buf[k] = (k % 78 == 77) ? '\n' : (char)('A' + (i * 31 + k) % 26);
}

static void fill(pigeon_spool *s, char ids[][PIGEON_SPOOL_ID_LEN + 1])
{
    static char buf[SIZE];
    const char *rcpts[] = {"b@example.net"};
    pigeon_spool_envelope env = {"main", "a@example.org", rcpts, 1, "m@example.org"};
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    for (int i = 0; i < COUNT; i++) {
        body_of(i, buf);
        if (pigeon_spool_enqueue(s, &env, buf, SIZE, T0, ids[i]) != PIGEON_OK)
            fail_msg("enqueue %d: %s", i, pigeon_spool_error(s));
    }
}

static void test_bulk_batch_commits_whole(void **state)
{
    (void)state;
    static char ids[COUNT][PIGEON_SPOOL_ID_LEN + 1];
    static char want[SIZE], got[SIZE + 1];
    pigeon_spool *s = open_with(PIGEON_SPOOL_CREATE | PIGEON_SPOOL_BULK);
    fill(s, ids);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    pigeon_spool_close(s);

    s = open_with(0);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0, &st), PIGEON_OK);
    assert_int_equal(st.messages, COUNT);
    assert_int_equal(st.bytes, (int64_t)COUNT * SIZE);
    for (int i = 0; i < COUNT; i++) {
        pigeon_spool_body *b = NULL;
        int64_t size = 0;
        size_t len = 0, n = 0;
        assert_int_equal(pigeon_spool_body_open(s, ids[i], &b, &size), PIGEON_OK);
        assert_int_equal(size, SIZE);
        pigeon_err e;
        do {
            e = (pigeon_err)pigeon_spool_body_read(b, got + len, sizeof got - len, &n);
            len += n;
        } while (e == PIGEON_OK && n > 0 && len < sizeof got);
        pigeon_spool_body_close(b);
        assert_int_equal(e, PIGEON_OK);
        body_of(i, want);
        assert_int_equal(len, SIZE);
        assert_memory_equal(got, want, SIZE);
    }
    pigeon_spool_close(s);
}

static void test_bulk_batch_rolls_back_whole(void **state)
{
    (void)state;
    static char ids[COUNT][PIGEON_SPOOL_ID_LEN + 1];
    pigeon_spool *s = open_with(PIGEON_SPOOL_CREATE | PIGEON_SPOOL_BULK);
    fill(s, ids);
    assert_int_equal(pigeon_spool_rollback(s), PIGEON_OK);
    pigeon_spool_close(s);
    s = open_with(0);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0, &st), PIGEON_OK);
    assert_int_equal(st.messages, 0);
    pigeon_spool_close(s);
}

static void test_unknown_flag_refused(void **state)
{
    (void)state;
    pigeon_spool *s = NULL;
    char err[256];
    assert_int_equal(pigeon_spool_open(path, PIGEON_SPOOL_CREATE | 32u, &s, err, sizeof err),
                     PIGEON_ERR_INVALID);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bulk_batch_commits_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_batch_rolls_back_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_flag_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
