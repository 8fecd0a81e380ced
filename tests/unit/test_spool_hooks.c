/*
 * test_spool_hooks.c - the webhook outbox: the queue's outcomes become events in the
 * transaction that stores them (queued, deferred, delivered, failed; none for a lease
 * given back or a retry), events added from outside (bounced, suppressed) get the
 * message's account, key and Message-ID, sinks read in id order with a key and type
 * filter, cursors, backoff and give-up, trimming, and nothing at all while disabled.
 *
 * With PIGEON_TEST_PG set (tests/integration/pgserver.py runs the second ctest entry,
 * unit/test_spool_hooks_pg) every test runs against a fresh database of that server.
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
#include "spool/spool_api.h"
#include "spool/spool_hooks.h"
#include "spool_testutil.h"

#define T0 1795000000000LL

static void enqueue(pigeon_spool *s, const char *const *rcpts, size_t n, int64_t now,
                    char id[PIGEON_SPOOL_ID_LEN + 1])
{
    pigeon_spool_envelope env = {"main", "a@example.org", rcpts, n, "m1@example.org"};
    if (pigeon_spool_enqueue(s, &env, sample, sizeof sample - 1, now, id) != PIGEON_OK)
        fail_msg("enqueue: %s", pigeon_spool_error(s));
}

/* What a sink saw, one line per event: "type rcpt key code attempts". */
typedef struct seen {
    char lines[32][160];
    int64_t ids[32];
    size_t n;
} seen;

static int collect(void *ctx, const pg_spool_hook_event *ev)
{
    seen *sn = ctx;
    if (sn->n < 32) {
        snprintf(sn->lines[sn->n], sizeof sn->lines[0], "%s %s %s %d %d %s %s",
                 pg_hook_type_name(ev->type), ev->rcpt, ev->key_id[0] ? ev->key_id : "-",
                 ev->smtp_code, ev->attempts, ev->account ? ev->account : "?",
                 ev->message_id ? ev->message_id : "?");
        sn->ids[sn->n] = ev->id;
    }
    sn->n++;
    return 0;
}

static void fetch(pigeon_spool *s, const pg_spool_hook_sink *sink, seen *sn, int64_t *upto)
{
    memset(sn, 0, sizeof *sn);
    assert_int_equal(pg_spool_hook_fetch(s, sink, 32, collect, sn, upto), PIGEON_OK);
}

static void test_outcomes_become_events(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"x@example.net", "y@example.net", "z@example.net"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    int on = 1;
    /* Disabled: nothing is recorded, and an added event is dropped without error. */
    assert_int_equal(pg_spool_hooks_enabled(s, &on), PIGEON_OK);
    assert_int_equal(on, 0);
    enqueue(s, rcpts, 1, T0, id);
    pg_spool_hook_event ev = {.type = PG_HOOK_SUPPRESSED, .rcpt = "q@example.net", .at_ms = T0};
    assert_int_equal(pg_spool_hook_add(s, &ev), PIGEON_OK);
    assert_int_equal(pg_spool_hooks_enable(s, 1), PIGEON_OK);
    assert_int_equal(pg_spool_hooks_enabled(s, &on), PIGEON_OK);
    assert_int_equal(on, 1);
    int64_t total = -1, oldest = -1;
    assert_int_equal(pg_spool_hook_count(s, &total, &oldest), PIGEON_OK);
    assert_int_equal(total, 0);

    /* A message submitted over the API: its key is stored after it, in the same batch. */
    unsigned char sha[32] = {0};
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    enqueue(s, rcpts, 3, T0 + 1, id);
    assert_int_equal(pg_spool_owner_add(s, id, "00112233aabbccdd", NULL, sha, T0 + 1), PIGEON_OK);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);

    /* Claim (no event), then one delivered, one deferred, one failed. */
    pigeon_spool_entry *job = NULL;
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0 + 10, 60000, &job), PIGEON_OK);
    assert_non_null(job);
    if (strcmp(job->queue_id, id) != 0) { /* the first (pre-enable) message came first */
        pigeon_spool_outcome ok = {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, NULL, "ok"};
        assert_int_equal(pigeon_spool_record(s, job, &ok, 1, T0 + 11), PIGEON_OK);
        pigeon_spool_entry_free(job);
        job = NULL;
        assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0 + 12, 60000, &job), PIGEON_OK);
    }
    assert_string_equal(job->queue_id, id);
    assert_int_equal(job->rcpt_count, 3);
    pigeon_spool_outcome out[3] = {
        {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "queued as 1"},
        {1, PIGEON_SPOOL_DEFERRED, T0 + 1000, PIGEON_ERR_DEFERRED, 451, "4.7.1", "later"},
        {2, PIGEON_SPOOL_FAILED, 0, PIGEON_ERR_REJECTED, 550, "5.1.1", "no such user"},
    };
    assert_int_equal(pigeon_spool_record(s, job, out, 3, T0 + 20), PIGEON_OK);
    pigeon_spool_entry_free(job);
    /* A retry is not an outcome; a lease given back unused neither. */
    size_t count = 0;
    assert_int_equal(pigeon_spool_retry(s, id, 1, T0 + 30, &count), PIGEON_OK);
    job = NULL;
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0 + 40, 60000, &job), PIGEON_OK);
    assert_non_null(job);
    assert_int_equal(pigeon_spool_release(s, job, T0 + 41), PIGEON_OK);
    pigeon_spool_entry_free(job);
    /* From outside: a bounce about y, after the fact. */
    pg_spool_hook_event b = {.type = PG_HOOK_BOUNCED,
                             .queue_id = id,
                             .rcpt = "y@example.net",
                             .smtp_code = 550,
                             .enhanced = "5.2.2",
                             .text = "mailbox full",
                             .at_ms = T0 + 50};
    assert_int_equal(pg_spool_hook_add(s, &b), PIGEON_OK);

    pg_spool_hook_sink all = {"url:http://a", NULL, PG_HOOK_ALL};
    seen sn;
    int64_t upto = 0;
    fetch(s, &all, &sn, &upto);
    assert_int_equal(sn.n, 8);
    assert_string_equal(sn.lines[0],
                        "queued x@example.net 00112233aabbccdd 0 0 main m1@example.org");
    assert_string_equal(sn.lines[1],
                        "queued y@example.net 00112233aabbccdd 0 0 main m1@example.org");
    assert_string_equal(sn.lines[2],
                        "queued z@example.net 00112233aabbccdd 0 0 main m1@example.org");
    assert_string_equal(sn.lines[3], "delivered x@example.net - 250 1 main m1@example.org");
    assert_string_equal(sn.lines[4],
                        "delivered x@example.net 00112233aabbccdd 250 1 main m1@example.org");
    assert_string_equal(sn.lines[5],
                        "deferred y@example.net 00112233aabbccdd 451 1 main m1@example.org");
    assert_string_equal(sn.lines[6],
                        "failed z@example.net 00112233aabbccdd 550 1 main m1@example.org");
    assert_string_equal(sn.lines[7],
                        "bounced y@example.net 00112233aabbccdd 550 0 main m1@example.org");
    for (size_t i = 1; i < sn.n; i++)
        assert_true(sn.ids[i] > sn.ids[i - 1]);
    assert_int_equal(upto, sn.ids[7]);

    /* A key's sink sees only its key's events; a type filter only its types. */
    pg_spool_hook_sink mine = {"key:00112233aabbccdd", "00112233aabbccdd",
                               (1u << PG_HOOK_DELIVERED) | (1u << PG_HOOK_BOUNCED)};
    fetch(s, &mine, &sn, &upto);
    assert_int_equal(sn.n, 2);
    assert_string_equal(sn.lines[1],
                        "bounced y@example.net 00112233aabbccdd 550 0 main m1@example.org");
    assert_string_equal(sn.lines[0],
                        "delivered x@example.net 00112233aabbccdd 250 1 main m1@example.org");
    pg_spool_hook_sink other = {"key:ffff", "ffff", PG_HOOK_ALL};
    fetch(s, &other, &sn, &upto);
    assert_int_equal(sn.n, 0);

    /* Failure: the cursor stays; success moves it; trim deletes what all are done with. */
    assert_int_equal(pg_spool_hook_done(s, "url:http://a", 0, 0, upto, 8, T0 + 5000, "HTTP 500"),
                     PIGEON_OK);
    pg_spool_hook_state st;
    assert_int_equal(pg_spool_hook_state_get(s, &all, &st), PIGEON_OK);
    assert_int_equal(st.failures, 1);
    assert_int_equal(st.pending, 8);
    assert_int_equal(st.next_ms, T0 + 5000);
    assert_string_equal(st.last_error, "HTTP 500");
    fetch(s, &all, &sn, &upto);
    assert_int_equal(sn.n, 8);
    assert_int_equal(pg_spool_hook_done(s, "url:http://a", 1, 0, upto, 8, 0, NULL), PIGEON_OK);
    assert_int_equal(pg_spool_hook_state_get(s, &all, &st), PIGEON_OK);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.delivered, 8);
    assert_int_equal(st.failures, 0);
    const char *sinks[] = {"url:http://a", "key:00112233aabbccdd"};
    assert_int_equal(pg_spool_hook_trim(s, sinks, 2, &count), PIGEON_OK);
    assert_int_equal(count, 0); /* the key's sink has not moved */
    fetch(s, &mine, &sn, &upto);
    assert_int_equal(pg_spool_hook_done(s, sinks[1], 0, 1, upto, sn.n, T0, "gave up"), PIGEON_OK);
    assert_int_equal(pg_spool_hook_state_get(s, &mine, &st), PIGEON_OK);
    assert_int_equal(st.given_up, 2);
    assert_int_equal(pg_spool_hook_trim(s, sinks, 2, &count), PIGEON_OK);
    assert_int_equal(count, 7); /* the newest stays, so that ids never go back */
    assert_int_equal(pg_spool_hook_count(s, &total, &oldest), PIGEON_OK);
    assert_int_equal(total, 1);
    assert_int_equal(oldest, T0 + 50);
    /* Ids go on after a trim: a cursor never sees an id twice. */
    assert_int_equal(pg_spool_hook_add(s, &b), PIGEON_OK);
    fetch(s, &all, &sn, &upto);
    assert_int_equal(sn.n, 1);
    assert_int_equal(sn.ids[0], 9);

    /* Off again: the queue's outcomes are no longer recorded. */
    assert_int_equal(pg_spool_hooks_enable(s, 0), PIGEON_OK);
    enqueue(s, rcpts, 1, T0 + 100, id);
    assert_int_equal(pg_spool_hook_count(s, &total, &oldest), PIGEON_OK);
    assert_int_equal(total, 2);
    pigeon_spool_close(s);
}

/* Counts the events of each type in the outbox (through a fresh sink). */
static void count_types(pigeon_spool *s, const char *sink, size_t counts[PG_HOOK_NTYPES])
{
    pg_spool_hook_sink all = {sink, NULL, PG_HOOK_ALL};
    seen sn;
    int64_t upto = 0;
    fetch(s, &all, &sn, &upto);
    memset(counts, 0, PG_HOOK_NTYPES * sizeof counts[0]);
    for (size_t i = 0; i < sn.n && i < 32; i++) {
        char type[32];
        sscanf(sn.lines[i], "%31s", type);
        counts[pg_hook_type_lookup(type)]++;
    }
}

/* A daemon records an outcome in its journal and dies before applying it: the event
 * appears when the journal is applied by the reclaim, once, as the outcome does. */
static void test_journaled_outcome_event_survives_kill(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    char id[PIGEON_SPOOL_ID_LEN + 1];
    const char *rcpts[] = {"a@x.example"};
    assert_int_equal(pg_spool_hooks_enable(s, 1), PIGEON_OK);
    enqueue(s, rcpts, 1, T0, id);
    enqueue(s, rcpts, 1, T0 + 1, id);
    pigeon_spool_close(s); /* an SQLite connection must not cross a fork */
    kill_holder(T0);
    s = open_new();
    size_t counts[PG_HOOK_NTYPES];
    count_types(s, "url:a", counts);
    assert_int_equal(counts[PG_HOOK_QUEUED], 2);
    /* SQLite: only in the dead one's journal; PostgreSQL committed it (not flushed). */
    assert_int_equal(counts[PG_HOOK_DELIVERED], pg != NULL ? 1 : 0);
    size_t n = 0;
    assert_int_equal(pigeon_spool_reclaim(s, T0 + 40, &n), PIGEON_OK);
    count_types(s, "url:b", counts);
    assert_int_equal(counts[PG_HOOK_QUEUED], 2);
    assert_int_equal(counts[PG_HOOK_DELIVERED], 1);
    assert_int_equal(pigeon_spool_reclaim(s, T0 + 50, &n), PIGEON_OK);
    count_types(s, "url:c", counts);
    assert_int_equal(counts[PG_HOOK_DELIVERED], 1);

    /* An event added inside a batch is stored with it, or not at all. */
    pg_spool_hook_event ev = {
        .type = PG_HOOK_COMPLAINED, .queue_id = id, .rcpt = "a@x.example", .at_ms = T0 + 60};
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    assert_int_equal(pg_spool_hook_add(s, &ev), PIGEON_OK);
    assert_int_equal(pigeon_spool_rollback(s), PIGEON_OK);
    count_types(s, "url:d", counts);
    assert_int_equal(counts[PG_HOOK_COMPLAINED], 0);
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    assert_int_equal(pg_spool_hook_add(s, &ev), PIGEON_OK);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    count_types(s, "url:e", counts);
    assert_int_equal(counts[PG_HOOK_COMPLAINED], 1);
    pigeon_spool_close(s);
}

/* An enqueue undone inside a batch (its body failed) leaves no "queued" event behind;
 * the batch's other messages keep theirs. */
static void test_undone_enqueue_has_no_event(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"b@example.net", "c@example.net"};
    pigeon_spool_envelope env = {"main", "a@example.org", rcpts, 2, NULL};
    char id[PIGEON_SPOOL_ID_LEN + 1], kept[PIGEON_SPOOL_ID_LEN + 1];
    assert_int_equal(pg_spool_hooks_enable(s, 1), PIGEON_OK);
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    enqueue(s, rcpts, 1, T0, kept);
    struct failing_stream f = {600 * 1024};
    assert_int_equal(pigeon_spool_enqueue_stream(s, &env, failing_read, &f, T0, id), PIGEON_ERR_IO);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    pg_spool_hook_sink all = {"url:a", NULL, PG_HOOK_ALL};
    seen sn;
    int64_t upto = 0;
    fetch(s, &all, &sn, &upto);
    assert_int_equal(sn.n, 1);
    assert_string_equal(sn.lines[0], "queued b@example.net - 0 0 main m1@example.org");
    pigeon_spool_close(s);
}

/* A recipient the daemon skipped as suppressed (cli/daemon_suppress.c: failed, no reply
 * code, the text "suppressed: ...") is a "suppressed" event; a server's refusal whose text
 * happens to read the same stays "failed". */
static void test_suppressed_outcome_is_its_own_event(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"b@example.net", "c@example.net"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    assert_int_equal(pg_spool_hooks_enable(s, 1), PIGEON_OK);
    enqueue(s, rcpts, 2, T0, id);
    pigeon_spool_entry *job = NULL;
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0 + 10, 60000, &job), PIGEON_OK);
    assert_non_null(job);
    assert_int_equal(job->rcpt_count, 2);
    pigeon_spool_outcome out[2] = {
        {.rcpt = 0,
         .state = PIGEON_SPOOL_FAILED,
         .err = PIGEON_ERR_REJECTED,
         .text = "suppressed: hard-bounce 5.1.1 since 2026-12-01"},
        {.rcpt = 1,
         .state = PIGEON_SPOOL_FAILED,
         .err = PIGEON_ERR_REJECTED,
         .smtp_code = 550,
         .text = "suppressed: by the remote site"},
    };
    assert_int_equal(pigeon_spool_record(s, job, out, 2, T0 + 20), PIGEON_OK);
    pigeon_spool_entry_free(job);
    size_t counts[PG_HOOK_NTYPES];
    count_types(s, "url:a", counts);
    assert_int_equal(counts[PG_HOOK_QUEUED], 2);
    assert_int_equal(counts[PG_HOOK_SUPPRESSED], 1);
    assert_int_equal(counts[PG_HOOK_FAILED], 1);
    pigeon_spool_close(s);
}

static void test_invalid_and_keys(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    pg_spool_hook_event bad = {.type = PG_HOOK_BOUNCED, .rcpt = "a\r\nb@example.net"};
    assert_int_equal(pg_spool_hook_add(s, &bad), PIGEON_ERR_INVALID);
    bad.rcpt = "";
    assert_int_equal(pg_spool_hook_add(s, &bad), PIGEON_ERR_INVALID);
    bad.rcpt = "a@example.net";
    bad.type = (pg_hook_type)99;
    assert_int_equal(pg_spool_hook_add(s, &bad), PIGEON_ERR_INVALID);
    unsigned mask = 0;
    char word[80];
    assert_int_equal(pg_hook_types_parse("delivered, bounced", &mask, word, sizeof word), 0);
    assert_int_equal(mask, (1u << PG_HOOK_DELIVERED) | (1u << PG_HOOK_BOUNCED));
    assert_int_equal(pg_hook_types_parse("delivered,bouncd", &mask, word, sizeof word), -1);
    assert_string_equal(word, "bouncd");
    assert_int_equal(pg_hook_types_parse("all", &mask, word, sizeof word), 0);
    assert_int_equal(mask, PG_HOOK_ALL);

    pg_spool_hook_key k = {"0011", "https://h.example/x", "s3cret", PG_HOOK_ALL};
    assert_int_equal(pg_spool_hook_key_set(s, &k), PIGEON_OK);
    pigeon_spool_close(s);
}

int main(void)
{
    fixture_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outcomes_become_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journaled_outcome_event_survives_kill, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_undone_enqueue_has_no_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suppressed_outcome_is_its_own_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_and_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
