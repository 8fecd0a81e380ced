/*
 * test_retry.c - the retry policy: which failures are retried, backoff bounds with full
 * jitter, account throttling, and giving up at the end of the lifetime.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spool/retry.h"

#define MIN_MS  (60 * 1000LL)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS  (24 * HOUR_MS)
#define T0      1795000000000LL /* an arbitrary wall-clock time (2026) */

/* Replies and failures as the SMTP engine reports them, and what must happen. */
static void test_classification_table(void **state)
{
    (void)state;
    static const struct {
        pigeon_err err;
        int code;
        const char *enhanced;
        const char *text;
        int retry;    /* expected: retried */
        int throttle; /* expected: the whole account is slowed */
    } table[] = {
        {PIGEON_ERR_DEFERRED, 421, "4.7.0", "Too many connections, try again later", 1, 1},
        {PIGEON_ERR_DEFERRED, 421, NULL, "Service not available, closing channel", 1, 1},
        {PIGEON_ERR_DEFERRED, 450, "4.2.1",
         "The user you are trying to contact is receiving mail at a rate that prevents "
         "additional messages from being delivered",
         1, 0},
        {PIGEON_ERR_DEFERRED, 451, "4.3.0", "Temporary local problem", 1, 0},
        {PIGEON_ERR_DEFERRED, 451, NULL, "RP:QRC frequency limited, please try later", 1, 1},
        {PIGEON_ERR_DEFERRED, 452, "4.5.3", "Too many recipients", 1, 0},
        {PIGEON_ERR_DEFERRED, 452, "4.3.1", "Insufficient system storage", 1, 0},
        {PIGEON_ERR_DEFERRED, 432, "4.3.2", "STOREDRV.ClientSubmit; sender thread limit exceeded",
         1, 1},
        {PIGEON_ERR_AUTH, 454, "4.7.0", "Temporary authentication failure", 1, 0},
        {PIGEON_ERR_REJECTED, 550, "5.1.1", "User unknown", 0, 0},
        {PIGEON_ERR_REJECTED, 552, "5.3.4", "Message size exceeds fixed limit", 0, 0},
        {PIGEON_ERR_REJECTED, 552, NULL, "Requested mail action aborted", 0, 0},
        {PIGEON_ERR_DEFERRED, 552, "5.5.3", "Too many recipients", 1, 0},
        {PIGEON_ERR_REJECTED, 554, "5.7.1", "Relay access denied", 0, 0},
        {PIGEON_ERR_REJECTED, 554, NULL, "DT:SPM 163 smtp", 0, 0},
        {PIGEON_ERR_AUTH, 535, "5.7.8", "Username and Password not accepted", 0, 0},
        {PIGEON_ERR_NETWORK, 0, NULL, "connection reset by peer", 1, 0},
        {PIGEON_ERR_NETWORK, 0, NULL, "connection refused", 1, 0},
        {PIGEON_ERR_TIMEOUT, 0, NULL, "no reply within 300 s", 1, 0},
        {PIGEON_ERR_TLS, 0, NULL, "handshake failed", 1, 0},
        {PIGEON_ERR_PROTOCOL, 0, NULL, "reply line too long", 1, 0},
        {PIGEON_ERR_AUTH, 0, NULL, "no common mechanism", 0, 0},
        {PIGEON_ERR_TOO_LARGE, 0, NULL, "larger than the server's SIZE", 0, 0},
        {PIGEON_ERR_CHARSET, 0, NULL, "not valid UTF-8", 0, 0},
        {PIGEON_ERR_CONFIG, 0, NULL, "no password", 0, 0},
        {PIGEON_ERR_UNSUPPORTED, 0, NULL, "no SMTPUTF8", 0, 0},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        pg_retry_failure f = {table[i].err, table[i].code, table[i].enhanced, table[i].text, 0};
        pg_retry_decision d;
        assert_int_equal(pg_retry_decide(NULL, &f, 1, T0, T0 + 1000, 12345, &d), PIGEON_OK);
        if (table[i].retry) {
            assert_int_equal(d.action, PG_RETRY_AGAIN);
            assert_int_equal(d.reason, PG_RETRY_TEMPORARY);
            assert_true(d.retry_at_ms > T0 + 1000);
        } else {
            assert_int_equal(d.action, PG_RETRY_GIVE_UP);
            assert_int_equal(d.reason, PG_RETRY_PERMANENT);
            assert_int_equal(d.retry_at_ms, 0);
        }
        if (d.throttle_account != table[i].throttle)
            fail_msg("row %zu (%d %s): throttle %d, expected %d", i, table[i].code, table[i].text,
                     d.throttle_account, table[i].throttle);
        assert_non_null(d.why);
    }
}

static void test_success_is_not_a_failure(void **state)
{
    (void)state;
    pg_retry_failure f = {PIGEON_OK, 250, "2.0.0", "ok", 0};
    pg_retry_decision d;
    assert_int_equal(pg_retry_decide(NULL, &f, 1, T0, T0, 0, &d), PIGEON_ERR_INVALID);
    f.smtp_code = 0;
    assert_int_equal(pg_retry_decide(NULL, &f, 1, T0, T0, 0, &d), PIGEON_ERR_INVALID);
    f.err = PIGEON_ERR_NETWORK;
    assert_int_equal(pg_retry_decide(NULL, &f, 0, T0, T0, 0, &d), PIGEON_ERR_INVALID);
}

/* Defaults: first retry within minutes, ceiling doubling up to about an hour. */
static void test_default_ceilings(void **state)
{
    (void)state;
    pg_retry_policy p;
    pg_retry_policy_default(&p);
    static const int64_t want[] = {5 * MIN_MS, 10 * MIN_MS, 20 * MIN_MS, 40 * MIN_MS,
                                   HOUR_MS,    HOUR_MS,     HOUR_MS};
    for (int a = 1; a <= 7; a++)
        assert_int_equal(pg_retry_ceiling(&p, a), want[a - 1]);
    assert_int_equal(pg_retry_ceiling(&p, 1000000), HOUR_MS);
    assert_true(p.lifetime_ms == 5 * DAY_MS);
}

/* Full jitter: the delay spans [min_delay, ceiling] (random 0 gives the floor, the
 * largest value the ceiling), and everything in between is within bounds. */
static void test_full_jitter_bounds(void **state)
{
    (void)state;
    pg_retry_policy p;
    pg_retry_policy_default(&p);
    p.min_delay_ms = 0;
    pg_retry_failure f = {PIGEON_ERR_DEFERRED, 451, "4.3.0", "later", 0};
    pg_retry_decision d;
    const int64_t now = T0 + 10 * MIN_MS;
    for (int attempt = 1; attempt <= 12; attempt++) {
        int64_t ceiling = pg_retry_ceiling(&p, attempt);
        assert_true(ceiling <= p.cap_ms);
        assert_int_equal(pg_retry_decide(&p, &f, attempt, T0, now, 0, &d), PIGEON_OK);
        assert_int_equal(d.retry_at_ms, now);
        assert_int_equal(pg_retry_decide(&p, &f, attempt, T0, now, (uint64_t)ceiling, &d),
                         PIGEON_OK);
        assert_int_equal(d.retry_at_ms, now + ceiling);
        uint64_t x = 0x9e3779b97f4a7c15ULL * (uint64_t)attempt;
        int64_t lo = INT64_MAX, hi = 0;
        for (int k = 0; k < 2000; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            assert_int_equal(pg_retry_decide(&p, &f, attempt, T0, now, x, &d), PIGEON_OK);
            int64_t delay = d.retry_at_ms - now;
            assert_true(delay >= 0 && delay <= ceiling);
            lo = delay < lo ? delay : lo;
            hi = delay > hi ? delay : hi;
        }
        /* Spread over the whole range, not a fixed step. */
        assert_true(lo < ceiling / 10);
        assert_true(hi > ceiling - ceiling / 10);
    }
    /* The first retry is within minutes with the defaults. */
    pg_retry_policy_default(&p);
    assert_int_equal(pg_retry_decide(&p, &f, 1, T0, now, UINT64_MAX, &d), PIGEON_OK);
    assert_true(d.retry_at_ms - now >= p.min_delay_ms);
    assert_true(d.retry_at_ms - now <= 5 * MIN_MS);
}

static void test_gives_up_after_lifetime(void **state)
{
    (void)state;
    pg_retry_policy p;
    pg_retry_policy_default(&p);
    pg_retry_failure f = {PIGEON_ERR_NETWORK, 0, NULL, NULL, 0};
    pg_retry_decision d;
    /* Just before the deadline: retried, but not later than the deadline. */
    int64_t now = T0 + 5 * DAY_MS - 10 * 1000;
    assert_int_equal(pg_retry_decide(&p, &f, 80, T0, now, UINT64_MAX / 3, &d), PIGEON_OK);
    assert_int_equal(d.action, PG_RETRY_AGAIN);
    assert_true(d.retry_at_ms > now && d.retry_at_ms <= T0 + 5 * DAY_MS);
    /* At and after the deadline: given up as expired. */
    assert_int_equal(pg_retry_decide(&p, &f, 81, T0, T0 + 5 * DAY_MS, 7, &d), PIGEON_OK);
    assert_int_equal(d.action, PG_RETRY_GIVE_UP);
    assert_int_equal(d.reason, PG_RETRY_EXPIRED);
    /* A shorter configured lifetime is honoured. */
    p.lifetime_ms = HOUR_MS;
    assert_int_equal(pg_retry_decide(&p, &f, 2, T0, T0 + HOUR_MS + 1, 7, &d), PIGEON_OK);
    assert_int_equal(d.reason, PG_RETRY_EXPIRED);
}

static void test_hint_slows_account(void **state)
{
    (void)state;
    pg_retry_policy p;
    pg_retry_policy_default(&p);
    pg_retry_failure f = {PIGEON_ERR_DEFERRED, 450, "4.7.0", "slow", 2 * HOUR_MS};
    pg_retry_decision d;
    assert_int_equal(pg_retry_decide(&p, &f, 1, T0, T0, 0, &d), PIGEON_OK);
    assert_true(d.throttle_account);
    assert_int_equal(d.account_until_ms, T0 + 2 * HOUR_MS);
    assert_true(d.retry_at_ms >= T0 + 2 * HOUR_MS);
    /* A hint of a year is cut to max_hint_ms. */
    f.retry_after_ms = 365 * DAY_MS;
    assert_int_equal(pg_retry_decide(&p, &f, 1, T0, T0, 0, &d), PIGEON_OK);
    assert_int_equal(d.account_until_ms, T0 + p.max_hint_ms);
    /* 421 without a hint pauses the account for account_pause_ms. */
    pg_retry_failure busy = {PIGEON_ERR_DEFERRED, 421, "4.7.0", "Too many connections", 0};
    assert_int_equal(pg_retry_decide(&p, &busy, 3, T0, T0 + 1, 0, &d), PIGEON_OK);
    assert_int_equal(d.account_until_ms, T0 + 1 + p.account_pause_ms);
    assert_true(d.retry_at_ms >= d.account_until_ms);
}

static void test_bad_policy(void **state)
{
    (void)state;
    pg_retry_policy p;
    pg_retry_policy_default(&p);
    p.cap_ms = p.base_ms - 1;
    pg_retry_failure f = {PIGEON_ERR_NETWORK, 0, NULL, NULL, 0};
    pg_retry_decision d;
    assert_int_equal(pg_retry_decide(&p, &f, 1, T0, T0, 0, &d), PIGEON_ERR_INVALID);
    pg_retry_policy_default(&p);
    p.factor = 0;
    assert_int_equal(pg_retry_decide(&p, &f, 1, T0, T0, 0, &d), PIGEON_ERR_INVALID);
    /* factor 1: a constant ceiling. */
    p.factor = 1;
    assert_int_equal(pg_retry_ceiling(&p, 50), p.base_ms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classification_table),
        cmocka_unit_test(test_success_is_not_a_failure),
        cmocka_unit_test(test_default_ceilings),
        cmocka_unit_test(test_full_jitter_bounds),
        cmocka_unit_test(test_gives_up_after_lifetime),
        cmocka_unit_test(test_hint_slows_account),
        cmocka_unit_test(test_bad_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
