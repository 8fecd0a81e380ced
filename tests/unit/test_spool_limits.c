/*
 * test_spool_limits.c - shared sending limits (lib/spool/spool_limits.h): the token
 * bucket's arithmetic, its guarantee under many takers, the daily counter, and the
 * SQLite table behind pg_spool_limits_take (with a throttle set by another handle).
 *
 * The guarantee checked: every token handed out is used at or after the time the take
 * said it is valid (now + wait_ms + i * interval_ms), and with rate r and burst b the
 * tokens used by any number of takers within [0, T] never exceed b + r * T.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "pigeon/spool.h"
#include "spool/spool_limits.h"

#define T0  1795000000000LL /* 2026, ms */
#define DAY 86400000LL

/* A fresh bucket as a backend starts one: full, counted now, no day yet. */
typedef struct row {
    double tokens;
    int64_t at_ms, day;
    long sent;
} row;

static pg_spool_take take(row *r, int64_t now, double rate, long daily, long want)
{
    pg_spool_take_req req = {"main", now, rate, 1.0, daily, want};
    pg_spool_take t;
    pg_spool_limits_apply(&req, &r->tokens, &r->at_ms, &r->day, &r->sent, &t);
    return t;
}

static void first_tokens_at_once_then_paced(void **state)
{
    (void)state;
    row r = {1.0, T0, -1, 0};
    pg_spool_take t = take(&r, T0, 10, 0, 5);
    assert_int_equal(t.granted, 5);
    assert_int_equal(t.wait_ms, 0);
    assert_int_equal(t.interval_ms, 100);
    /* Five handed out from one: the next taker waits for those four to be covered. */
    t = take(&r, T0 + 100, 10, 0, 1);
    assert_int_equal(t.granted, 1);
    assert_int_equal(t.wait_ms, 400);
    /* Idle for a long time: the bucket refills to its size, never more. */
    t = take(&r, T0 + 3600000, 10, 0, 3);
    assert_int_equal(t.wait_ms, 0);
    t = take(&r, T0 + 3600000, 10, 0, 1);
    assert_int_equal(t.wait_ms, 300);
}

/* Many takers with random wants at random moments; each spends its tokens as told. */
static void no_window_exceeds_burst_plus_rate(void **state)
{
    (void)state;
    const double rate = 25;
    enum { USES = 20000 };
    static int64_t used[USES];
    size_t n = 0;
    row r = {1.0, T0, -1, 0};
    int64_t now = T0;
    srand(7);
    while (n < USES - 64) {
        now += rand() % 120;
        long want = 1 + rand() % 8;
        pg_spool_take t = take(&r, now, rate, 0, want);
        assert_int_equal(t.granted, want);
        for (long i = 0; i < t.granted; i++)
            used[n++] = now + t.wait_ms + i * t.interval_ms;
    }
    /* Sort the use times (insertion sort is enough: they are nearly sorted). */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && used[j - 1] > used[j]; j--) {
            int64_t x = used[j];
            used[j] = used[j - 1];
            used[j - 1] = x;
        }
    /* Every window [used[i], used[i] + T]: at most 1 + rate * T uses. */
    for (size_t i = 0; i < n; i += 13) {
        for (int64_t span = 0; span <= 5000; span += 250) {
            size_t k = i;
            while (k < n && used[k] <= used[i] + span)
                k++;
            assert_true((double)(k - i) <= 1.0 + rate * (double)span / 1000.0 + 1e-9);
        }
    }
}

static void daily_limit_is_never_exceeded_and_resets(void **state)
{
    (void)state;
    row r = {0, T0, -1, 0};
    int64_t day_start = T0 / DAY * DAY;
    assert_int_equal(take(&r, day_start + 10, 0, 7, 5).granted, 5);
    pg_spool_take t = take(&r, day_start + 20, 0, 7, 5);
    assert_int_equal(t.granted, 2);
    assert_int_equal(t.sent_today, 7);
    assert_int_equal(take(&r, day_start + 30, 0, 7, 5).granted, 0);
    /* The next UTC day counts from zero. */
    t = take(&r, day_start + DAY, 0, 7, 5);
    assert_int_equal(t.granted, 5);
    assert_int_equal(t.sent_today, 5);
}

static void sqlite_table_is_shared_and_reports_throttle(void **state)
{
    (void)state;
    char dir[] = "/tmp/pigeon-limits-test-XXXXXX", path[64], err[256];
    pigeon_spool *a = NULL, *b = NULL;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/spool.db", dir);
    assert_int_equal(pigeon_spool_open(path, PIGEON_SPOOL_CREATE, &a, err, sizeof err), PIGEON_OK);
    assert_int_equal(pigeon_spool_open(path, 0, &b, err, sizeof err), PIGEON_OK);
    assert_true(pg_spool_limits_shared(a));
    pg_spool_take_req req = {"main", T0, 10, 1.0, 6, 4};
    pg_spool_take t;
    /* Two handles (two daemons) draw from one bucket and one day's count. */
    assert_int_equal(pg_spool_limits_take(a, &req, &t), PIGEON_OK);
    assert_int_equal(t.granted, 4);
    assert_int_equal(t.wait_ms, 0);
    assert_int_equal(pg_spool_limits_take(b, &req, &t), PIGEON_OK);
    assert_int_equal(t.granted, 2); /* the day's six */
    assert_int_equal(t.wait_ms, 400);
    assert_int_equal(t.sent_today, 6);
    assert_int_equal(t.not_before_ms, 0);
    /* Another account is another bucket; a throttle set by one handle shows in the
     * other's take. */
    assert_int_equal(pigeon_spool_throttle(a, "other", T0 + 5000, "421 busy"), PIGEON_OK);
    req.account = "other";
    assert_int_equal(pg_spool_limits_take(b, &req, &t), PIGEON_OK);
    assert_int_equal(t.granted, 4);
    assert_int_equal(t.not_before_ms, T0 + 5000);
    /* Bad requests are refused before the store. */
    req.want = 0;
    assert_int_equal(pg_spool_limits_take(b, &req, &t), PIGEON_ERR_INVALID);
    req.want = 1, req.burst = 0;
    assert_int_equal(pg_spool_limits_take(b, &req, &t), PIGEON_ERR_INVALID);
    pigeon_spool_close(a);
    pigeon_spool_close(b);
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[80];
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_tokens_at_once_then_paced),
        cmocka_unit_test(no_window_exceeds_burst_plus_rate),
        cmocka_unit_test(daily_limit_is_never_exceeded_and_resets),
        cmocka_unit_test(sqlite_table_is_shared_and_reports_throttle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
