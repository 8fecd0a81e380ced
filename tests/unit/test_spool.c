/*
 * test_spool.c - the spool: enqueue and read back, claims and leases under an injected
 * clock, outcomes (an accepted recipient is never handed out again), administration,
 * refusal of foreign, damaged and newer files (byte-for-byte untouched), batches of claims
 * and outcomes (one lease, one commit), and two handles on one file never claiming the same
 * recipient.
 *
 * With PIGEON_TEST_PG set (a PostgreSQL server's URL: tests/integration/pgserver.py runs
 * the second ctest entry, unit/test_spool_pg), every test runs against a fresh database
 * of that server instead of a file; tests of the SQLite file itself are skipped there,
 * and their PostgreSQL counterparts (newer schema, foreign tables) run instead.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pigeon/spool.h"
#include "spool_testutil.h"

#define T0     1795000000000LL /* an arbitrary wall-clock time (2026), ms */
#define MIN_MS 60000LL

static void enqueue(pigeon_spool *s, const char *account, const char *const *rcpts, size_t n,
                    int64_t now, char id[PIGEON_SPOOL_ID_LEN + 1])
{
    pigeon_spool_envelope env = {account, "a@example.org", rcpts, n, "m1@example.org"};
    pigeon_err rc = pigeon_spool_enqueue(s, &env, sample, sizeof sample - 1, now, id);
    if (rc != PIGEON_OK)
        fail_msg("enqueue: %s", pigeon_spool_error(s));
}

/* Reads a whole body through the pigeon_read_fn interface in odd-sized pieces. */
static pigeon_err read_all(pigeon_spool *s, const char *id, unsigned char **out, size_t *len)
{
    pigeon_spool_body *b = NULL;
    int64_t size = 0;
    pigeon_err err = pigeon_spool_body_open(s, id, &b, &size);
    if (err != PIGEON_OK)
        return err;
    pigeon_read_fn fn = pigeon_spool_body_read;
    unsigned char *buf = malloc((size_t)size + 1);
    size_t got = 0, n = 0;
    do {
        size_t want = 1 + (got % 7919);
        if (want > (size_t)size + 1 - got)
            want = (size_t)size + 1 - got;
        err = (pigeon_err)fn(b, buf + got, want, &n);
        got += n;
    } while (err == PIGEON_OK && n > 0);
    pigeon_spool_body_close(b);
    if (err == PIGEON_OK && got != (size_t)size)
        err = PIGEON_ERR_CORRUPT;
    *out = buf;
    *len = got;
    return err;
}

static unsigned char *read_file(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *p, const void *data, size_t len)
{
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void exec_raw(const char *sql)
{
    if (pg != NULL) {
        pg_exec(path, sql);
        return;
    }
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

/* ---- enqueue and read back ---- */

static void test_enqueue_show_read_back(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"b@example.net", "c@example.net", "b@example.net"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 3, T0, id);
    assert_int_equal(strlen(id), PIGEON_SPOOL_ID_LEN);
    assert_int_equal(strspn(id, "0123456789ABCDEFGHJKMNPQRSTVWXYZ"), PIGEON_SPOOL_ID_LEN);

    pigeon_spool_entry *e = NULL;
    assert_int_equal(pigeon_spool_show(s, id, &e), PIGEON_OK);
    assert_string_equal(e->queue_id, id);
    assert_string_equal(e->account, "work");
    assert_string_equal(e->mail_from, "a@example.org");
    assert_string_equal(e->message_id, "m1@example.org");
    assert_int_equal(e->size, sizeof sample - 1);
    assert_int_equal(e->created_ms, T0);
    assert_int_equal(e->rcpt_count, 2); /* the duplicate was merged */
    assert_string_equal(e->rcpts[0].address, "b@example.net");
    assert_string_equal(e->rcpts[1].address, "c@example.net");
    assert_int_equal(e->rcpts[0].state, PIGEON_SPOOL_QUEUED);
    assert_int_equal(e->count[PIGEON_SPOOL_QUEUED], 2);
    pigeon_spool_entry_free(e);

    unsigned char *bytes;
    size_t len;
    assert_int_equal(read_all(s, id, &bytes, &len), PIGEON_OK);
    assert_int_equal(len, sizeof sample - 1);
    assert_memory_equal(bytes, sample, len);
    free(bytes);

    /* Ids of messages enqueued later sort later (the time is in front). */
    char id2[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 1, T0 + 1, id2);
    assert_true(strcmp(id, id2) < 0);
    pigeon_spool_close(s);
}

struct pattern_stream {
    size_t left; /* bytes still to produce */
    uint32_t x;  /* generator state */
};

static int pattern_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    struct pattern_stream *p = ctx;
    size_t k = cap < p->left ? cap : p->left;
    if (k > 10000)
        k = 10000 - (p->left % 97); /* uneven pieces */
    unsigned char *b = buf;
    for (size_t i = 0; i < k; i++) {
        p->x = p->x * 1103515245u + 12345u;
        b[i] = (unsigned char)(p->x >> 16);
    }
    p->left -= k;
    *n = k;
    return 0;
}

/* bytes (size of them) are what pattern_read produces from seed. */
static void assert_pattern(const unsigned char *bytes, size_t size, uint32_t seed)
{
    struct pattern_stream again = {size, seed};
    unsigned char *want = malloc(size);
    assert_non_null(want);
    size_t done = 0, n;
    while (done < size) {
        pattern_read(&again, want + done, size - done, &n);
        done += n;
    }
    assert_memory_equal(bytes, want, size);
    free(want);
}

/* A message bigger than several chunks, from a stream, comes back byte for byte. */
static void test_stream_large_message(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const size_t size = 3 * 256 * 1024 + 12345;
    struct pattern_stream ps = {size, 7};
    const char *rcpts[] = {"b@example.net"};
    pigeon_spool_envelope env = {"work", "", rcpts, 1, NULL};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    assert_int_equal(pigeon_spool_enqueue_stream(s, &env, pattern_read, &ps, T0, id), PIGEON_OK);
    unsigned char *bytes;
    size_t len;
    assert_int_equal(read_all(s, id, &bytes, &len), PIGEON_OK);
    assert_int_equal(len, size);
    assert_pattern(bytes, size, 7);
    free(bytes);

    pigeon_spool_entry *e = NULL;
    assert_int_equal(pigeon_spool_show(s, id, &e), PIGEON_OK);
    assert_string_equal(e->mail_from, "");
    assert_string_equal(e->message_id, "");
    pigeon_spool_entry_free(e);
    pigeon_spool_close(s);
}

/* Changing stored bytes behind the spool's back is detected when reading them. */
static void test_tampered_body_detected(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"b@example.net"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 1, T0, id);
    pigeon_spool_close(s);
    exec_raw(pg != NULL ? "UPDATE body SET data = convert_to(replace(convert_from(data, 'UTF8'), "
                          "'Hello', 'Hellx'), 'UTF8')"
                        : "UPDATE body SET data = CAST(replace(CAST(data AS TEXT), 'Hello', "
                          "'Hellx') AS BLOB)");
    s = open_new();
    unsigned char *bytes;
    size_t len;
    assert_int_equal(read_all(s, id, &bytes, &len), PIGEON_ERR_CORRUPT);
    free(bytes);
    assert_non_null(strstr(pigeon_spool_error(s), "SHA-256"));
    pigeon_spool_close(s);
}

/* A stream that fails after more than a chunk was stored leaves nothing behind, in a
 * batch (where the messages before it stay) and alone. */
static void test_failed_stream_stores_nothing(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"b@example.net"};
    pigeon_spool_envelope env = {"work", "a@example.org", rcpts, 1, NULL};
    char id[PIGEON_SPOOL_ID_LEN + 1], kept[PIGEON_SPOOL_ID_LEN + 1];
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    enqueue(s, "work", rcpts, 1, T0, kept);
    struct failing_stream f = {600 * 1024};
    assert_int_equal(pigeon_spool_enqueue_stream(s, &env, failing_read, &f, T0, id), PIGEON_ERR_IO);
    assert_string_equal(id, "");
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    f.left = 300 * 1024;
    assert_int_equal(pigeon_spool_enqueue_stream(s, &env, failing_read, &f, T0, id), PIGEON_ERR_IO);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0, &st), PIGEON_OK);
    assert_int_equal(st.messages, 1);
    assert_int_equal(st.rcpts[PIGEON_SPOOL_QUEUED], 1);
    assert_int_equal(st.bytes, (int64_t)(sizeof sample - 1));
    pigeon_spool_entry *e = NULL;
    assert_int_equal(pigeon_spool_show(s, kept, &e), PIGEON_OK);
    pigeon_spool_entry_free(e);
    pigeon_spool_close(s);
    /* No orphan body chunks either. */
    if (pg != NULL) {
        PGconn *c = PQconnectdb(path);
        PGresult *r = PQexec(c, "SELECT count(*) FROM body");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), "1");
        PQclear(r);
        PQfinish(c);
        return;
    }
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM body", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 1);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* What another program (or the sqlite3 shell) sees in the file. */
static void test_file_format(void **state)
{
    (void)state;
    if (pg != NULL)
        skip(); /* the SQLite file itself */
    pigeon_spool *s = open_new();
    pigeon_spool_close(s);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600); /* queued mail is private */
    static const struct {
        const char *sql;
        const char *want;
    } pragmas[] = {
        {"PRAGMA journal_mode", "wal"},
        {"PRAGMA application_id", "1885819760"}, /* 0x70675370 "pgSp" */
        {"PRAGMA user_version", "2"},
        {"PRAGMA page_size", "8192"},
    };
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    for (size_t i = 0; i < sizeof pragmas / sizeof pragmas[0]; i++) {
        sqlite3_stmt *q = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, pragmas[i].sql, -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(q, 0), pragmas[i].want);
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
}

static void test_invalid_envelopes(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    char id[PIGEON_SPOOL_ID_LEN + 1];
    const char *bad_rcpt[] = {"b@example.net\r\nRCPT TO:<x@evil>"};
    const char *good[] = {"b@example.net"};
    pigeon_spool_envelope env = {"work", "a@example.org", bad_rcpt, 1, NULL};
    assert_int_equal(pigeon_spool_enqueue(s, &env, "x", 1, T0, id), PIGEON_ERR_ADDRESS);
    assert_string_equal(id, "");
    env.rcpts = good;
    env.mail_from = "a@example.org\n";
    assert_int_equal(pigeon_spool_enqueue(s, &env, "x", 1, T0, id), PIGEON_ERR_ADDRESS);
    env.mail_from = "a@example.org";
    env.account = "";
    assert_int_equal(pigeon_spool_enqueue(s, &env, "x", 1, T0, id), PIGEON_ERR_INVALID);
    env.account = "work";
    env.rcpt_count = 0;
    assert_int_equal(pigeon_spool_enqueue(s, &env, "x", 1, T0, id), PIGEON_ERR_INVALID);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0, &st), PIGEON_OK);
    assert_int_equal(st.messages, 0);
    pigeon_spool_close(s);
}

/* ---- batches ---- */

static void test_batch_commit_and_rollback(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"b@example.net"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    for (int i = 0; i < 50; i++)
        enqueue(s, "work", rcpts, 1, T0, id);
    /* A failing enqueue inside the batch stores nothing but keeps the others. */
    const char *bad[] = {"x\r"};
    pigeon_spool_envelope env = {"work", "", bad, 1, NULL};
    assert_int_equal(pigeon_spool_enqueue(s, &env, "x", 1, T0, id), PIGEON_ERR_ADDRESS);
    pigeon_spool_entry *job = NULL;
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0, MIN_MS, &job), PIGEON_ERR_STATE);
    assert_int_equal(pigeon_spool_rollback(s), PIGEON_OK);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0, &st), PIGEON_OK);
    assert_int_equal(st.messages, 0);

    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    for (int i = 0; i < 50; i++)
        enqueue(s, "work", rcpts, 1, T0, id);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    pigeon_spool_close(s);

    /* Committed means there for another handle. */
    s = open_new();
    assert_int_equal(pigeon_spool_stats_get(s, T0, &st), PIGEON_OK);
    assert_int_equal(st.messages, 50);
    assert_int_equal(st.rcpts[PIGEON_SPOOL_QUEUED], 50);
    assert_int_equal(st.bytes, 50 * (int64_t)(sizeof sample - 1));
    pigeon_spool_close(s);
}

/* A big batch as the PostgreSQL backend writes it (binary COPY, message ids reserved in
 * blocks of 1024): more messages than a block, repeated recipients merged, a message
 * bigger than the buffer (written before its end) and one failing after that (undone),
 * a single enqueue of another handle in between; everything reads back. */
static void test_batch_large_and_repeated(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    pigeon_spool *other = open_new();
    const char *rcpts[] = {"b@example.net", "c@example.net", "b@example.net"};
    pigeon_spool_envelope env = {"work", "a@example.org", rcpts, 3, NULL};
    char id[PIGEON_SPOOL_ID_LEN + 1], first[PIGEON_SPOOL_ID_LEN + 1], big[PIGEON_SPOOL_ID_LEN + 1];
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    enqueue(s, "work", rcpts, 3, T0, first);
    if (pg != NULL) /* (SQLite: the batch holds the file's write lock) */
        enqueue(other, "work", rcpts, 1, T0, id); /* its own transaction, its own id block */
    for (int i = 0; i < 1100; i++)
        enqueue(s, "work", rcpts, 3, T0, id);
    const size_t size = 9 * 256 * 1024 + 777;
    struct pattern_stream ps = {size, 11};
    assert_int_equal(pigeon_spool_enqueue_stream(s, &env, pattern_read, &ps, T0, big), PIGEON_OK);
    struct failing_stream f = {6 * 256 * 1024 + 5};
    assert_int_equal(pigeon_spool_enqueue_stream(s, &env, failing_read, &f, T0, id), PIGEON_ERR_IO);
    enqueue(s, "work", rcpts, 3, T0, id);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    pigeon_spool_close(other);

    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0, &st), PIGEON_OK);
    int others = pg != NULL;
    assert_int_equal(st.messages, others + 1 + 1100 + 1 + 1);
    assert_int_equal(st.rcpts[PIGEON_SPOOL_QUEUED], others + 2 * (1 + 1100 + 1 + 1));
    assert_int_equal(st.bytes, (int64_t)size + (1102 + others) * (int64_t)(sizeof sample - 1));
    pigeon_spool_entry *e = NULL;
    assert_int_equal(pigeon_spool_show(s, first, &e), PIGEON_OK);
    assert_int_equal(e->rcpt_count, 2);
    assert_string_equal(e->rcpts[0].address, "b@example.net");
    assert_string_equal(e->rcpts[1].address, "c@example.net");
    pigeon_spool_entry_free(e);
    unsigned char *bytes;
    size_t len;
    assert_int_equal(read_all(s, id, &bytes, &len), PIGEON_OK);
    assert_int_equal(len, sizeof sample - 1);
    assert_memory_equal(bytes, sample, len);
    free(bytes);
    assert_int_equal(read_all(s, big, &bytes, &len), PIGEON_OK);
    assert_int_equal(len, size);
    assert_pattern(bytes, size, 11);
    free(bytes);
    pigeon_spool_close(s);
}

/* ---- claims, leases, outcomes ---- */

static void test_claim_and_lease_expiry(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"b@example.net", "c@example.net"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 2, T0, id);

    pigeon_spool_entry *job = NULL;
    assert_int_equal(pigeon_spool_claim(s, "w1", NULL, T0 - 1, MIN_MS, &job), PIGEON_OK);
    assert_null(job); /* not due before its enqueue time */
    assert_int_equal(pigeon_spool_claim(s, "w1", NULL, T0, MIN_MS, &job), PIGEON_OK);
    assert_non_null(job);
    assert_string_equal(job->queue_id, id);
    assert_string_equal(job->account, "work");
    assert_int_equal(job->rcpt_count, 2);
    assert_int_equal(job->attempt, 1);
    assert_int_equal(job->lease_until_ms, T0 + MIN_MS);
    assert_string_equal(job->lease_owner, "w1");
    assert_int_equal(job->rcpts[0].state, PIGEON_SPOOL_INFLIGHT);

    /* While the lease runs, nobody else gets it. */
    pigeon_spool_entry *other = NULL;
    assert_int_equal(pigeon_spool_claim(s, "w2", NULL, T0 + MIN_MS - 1, MIN_MS, &other), PIGEON_OK);
    assert_null(other);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0 + MIN_MS, &st), PIGEON_OK);
    assert_int_equal(st.rcpts[PIGEON_SPOOL_INFLIGHT], 2);
    assert_int_equal(st.stale_leases, 2);

    /* w1 "died": after expiry the work is due again, as attempt 2. */
    assert_int_equal(pigeon_spool_claim(s, "w2", NULL, T0 + MIN_MS, MIN_MS, &other), PIGEON_OK);
    assert_non_null(other);
    assert_int_equal(other->rcpt_count, 2);
    assert_int_equal(other->attempt, 2);
    assert_true(other->lease_token != job->lease_token);

    /* The dead worker's late "deferred" is refused (lease lost) ... */
    pigeon_spool_outcome late = {
        0, PIGEON_SPOOL_DEFERRED, T0 + 10 * MIN_MS, PIGEON_ERR_DEFERRED, 451, "4.3.0", "later"};
    assert_int_equal(pigeon_spool_record(s, job, &late, 1, T0 + MIN_MS + 5), PIGEON_ERR_STATE);
    assert_int_equal(pigeon_spool_renew(s, job, T0 + 5 * MIN_MS), PIGEON_ERR_STATE);
    /* ... but its "delivered" is a fact and is kept. */
    pigeon_spool_outcome ok = {1, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "queued"};
    assert_int_equal(pigeon_spool_record(s, job, &ok, 1, T0 + MIN_MS + 5), PIGEON_OK);
    pigeon_spool_entry *e = NULL;
    assert_int_equal(pigeon_spool_show(s, id, &e), PIGEON_OK);
    assert_int_equal(e->rcpts[0].state, PIGEON_SPOOL_INFLIGHT);
    assert_string_equal(e->rcpts[0].lease_owner, "w2");
    assert_int_equal(e->rcpts[1].state, PIGEON_SPOOL_DELIVERED);
    pigeon_spool_entry_free(e);

    /* The live lease can be renewed and then outlives the old expiry. */
    assert_int_equal(pigeon_spool_renew(s, other, T0 + 10 * MIN_MS), PIGEON_OK);
    pigeon_spool_entry *none = NULL;
    assert_int_equal(pigeon_spool_claim(s, "w3", NULL, T0 + 5 * MIN_MS, MIN_MS, &none), PIGEON_OK);
    assert_null(none);
    pigeon_spool_entry_free(job);
    pigeon_spool_entry_free(other);
    pigeon_spool_close(s);
}

static void test_accepted_never_resent(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"a@x.example", "b@x.example", "c@x.example"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 3, T0, id);
    pigeon_spool_entry *job = NULL;
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0, MIN_MS, &job), PIGEON_OK);
    assert_int_equal(job->rcpt_count, 3);
    pigeon_spool_outcome out[3] = {
        {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.1.5", "ok"},
        {1, PIGEON_SPOOL_DEFERRED, T0 + 10 * MIN_MS, PIGEON_ERR_DEFERRED, 450, "4.2.1",
         "try later"},
        {2, PIGEON_SPOOL_FAILED, 0, PIGEON_ERR_REJECTED, 550, "5.1.1", "no such user"},
    };
    assert_int_equal(pigeon_spool_record(s, job, out, 3, T0 + 1000), PIGEON_OK);
    pigeon_spool_entry_free(job);

    pigeon_spool_entry *e = NULL;
    assert_int_equal(pigeon_spool_show(s, id, &e), PIGEON_OK);
    assert_int_equal(e->rcpts[1].state, PIGEON_SPOOL_DEFERRED);
    assert_int_equal(e->rcpts[1].next_ms, T0 + 10 * MIN_MS);
    assert_int_equal(e->rcpts[1].smtp_code, 450);
    assert_string_equal(e->rcpts[1].enhanced_code, "4.2.1");
    assert_string_equal(e->rcpts[1].text, "try later");
    assert_int_equal(e->rcpts[2].state, PIGEON_SPOOL_FAILED);
    assert_int_equal(e->rcpts[2].last_err, PIGEON_ERR_REJECTED);
    assert_int_equal(e->next_ms, T0 + 10 * MIN_MS);
    pigeon_spool_entry_free(e);

    /* Nothing due before the deferral ends; then only the deferred recipient. */
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0 + 10 * MIN_MS - 1, MIN_MS, &job),
                     PIGEON_OK);
    assert_null(job);
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0 + 10 * MIN_MS, MIN_MS, &job), PIGEON_OK);
    assert_non_null(job);
    assert_int_equal(job->rcpt_count, 1);
    assert_string_equal(job->rcpts[0].address, "b@x.example");
    assert_int_equal(job->attempt, 2);
    pigeon_spool_outcome ok = {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, NULL, NULL};
    assert_int_equal(pigeon_spool_record(s, job, &ok, 1, T0 + 11 * MIN_MS), PIGEON_OK);
    pigeon_spool_entry_free(job);

    /* Retrying with include_failed never revives the delivered ones. */
    size_t n = 0;
    assert_int_equal(pigeon_spool_retry(s, NULL, 0, T0 + 12 * MIN_MS, &n), PIGEON_OK);
    assert_int_equal(n, 0);
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0 + 100 * MIN_MS, MIN_MS, &job), PIGEON_OK);
    assert_null(job);
    assert_int_equal(pigeon_spool_retry(s, id, 1, T0 + 12 * MIN_MS, &n), PIGEON_OK);
    assert_int_equal(n, 1);
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0 + 12 * MIN_MS, MIN_MS, &job), PIGEON_OK);
    assert_non_null(job);
    assert_int_equal(job->rcpt_count, 1);
    assert_string_equal(job->rcpts[0].address, "c@x.example");
    pigeon_spool_outcome no = {0,       PIGEON_SPOOL_FAILED, 0, PIGEON_ERR_REJECTED, 550,
                               "5.1.1", "still no such user"};
    assert_int_equal(pigeon_spool_record(s, job, &no, 1, T0 + 13 * MIN_MS), PIGEON_OK);
    pigeon_spool_entry_free(job);

    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0 + 13 * MIN_MS, &st), PIGEON_OK);
    assert_int_equal(st.messages, 1);
    assert_int_equal(st.rcpts[PIGEON_SPOOL_DELIVERED], 2);
    assert_int_equal(st.rcpts[PIGEON_SPOOL_FAILED], 1);
    assert_int_equal(st.oldest_pending_ms, 0);

    assert_int_equal(pigeon_spool_purge_failed(s, &n), PIGEON_OK);
    assert_int_equal(n, 1);
    assert_int_equal(pigeon_spool_show(s, id, &e), PIGEON_ERR_NOTFOUND);
    pigeon_spool_close(s);
}

/* A message whose recipients were all accepted leaves the spool. */
static void test_delivered_message_removed(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"a@x.example", "b@x.example"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 2, T0, id);
    pigeon_spool_entry *job = NULL;
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0, MIN_MS, &job), PIGEON_OK);
    pigeon_spool_outcome first = {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, NULL, NULL};
    assert_int_equal(pigeon_spool_record(s, job, &first, 1, T0 + 1), PIGEON_OK);
    pigeon_spool_entry *e = NULL;
    assert_int_equal(pigeon_spool_show(s, id, &e), PIGEON_OK);
    pigeon_spool_entry_free(e);
    pigeon_spool_outcome second = {1, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, NULL, NULL};
    assert_int_equal(pigeon_spool_record(s, job, &second, 1, T0 + 2), PIGEON_OK);
    pigeon_spool_entry_free(job);
    assert_int_equal(pigeon_spool_show(s, id, &e), PIGEON_ERR_NOTFOUND);
    pigeon_spool_body *b = NULL;
    assert_int_equal(pigeon_spool_body_open(s, id, &b, NULL), PIGEON_ERR_NOTFOUND);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0, &st), PIGEON_OK);
    assert_int_equal(st.messages, 0);
    assert_int_equal(st.rcpts[PIGEON_SPOOL_DELIVERED], 0);
    pigeon_spool_close(s);
}

static void test_release_and_throttle(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"a@x.example"};
    char id_work[PIGEON_SPOOL_ID_LEN + 1], id_home[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 1, T0, id_work);
    enqueue(s, "home", rcpts, 1, T0 + 1, id_home);

    /* Released work is due again at once and the attempt is not counted. */
    pigeon_spool_entry *job = NULL;
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0 + 5, MIN_MS, &job), PIGEON_OK);
    assert_string_equal(job->queue_id, id_work); /* oldest first */
    assert_int_equal(pigeon_spool_release(s, job, T0 + 6), PIGEON_OK);
    pigeon_spool_entry_free(job);
    assert_int_equal(pigeon_spool_claim(s, "w", "work", T0 + 6, MIN_MS, &job), PIGEON_OK);
    assert_non_null(job);
    assert_int_equal(job->attempt, 1);
    assert_int_equal(pigeon_spool_release(s, job, T0 + 7), PIGEON_OK);
    pigeon_spool_entry_free(job);

    /* A throttled account is skipped until its time; others go on. */
    assert_int_equal(pigeon_spool_throttle(s, "work", T0 + 60 * MIN_MS, "421 too many"), PIGEON_OK);
    assert_int_equal(pigeon_spool_throttle(s, "work", T0 + 2 * MIN_MS, NULL), PIGEON_OK);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0 + 10, &st), PIGEON_OK);
    assert_int_equal(st.throttled_accounts, 1);
    assert_int_equal(st.oldest_pending_ms, T0);
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0 + 10 * MIN_MS, MIN_MS, &job), PIGEON_OK);
    assert_string_equal(job->queue_id, id_home);
    pigeon_spool_entry_free(job);
    assert_int_equal(pigeon_spool_claim(s, "w", "work", T0 + 59 * MIN_MS, MIN_MS, &job), PIGEON_OK);
    assert_null(job); /* the shorter throttle did not shorten the longer one */
    assert_int_equal(pigeon_spool_claim(s, "w", "work", T0 + 60 * MIN_MS, MIN_MS, &job), PIGEON_OK);
    assert_non_null(job);
    assert_string_equal(job->queue_id, id_work);
    pigeon_spool_entry_free(job);
    pigeon_spool_close(s);
}

struct list_ctx {
    int n;          /* entries seen */
    char first[32]; /* the first queue id */
    size_t queued;  /* sum of queued counts */
};

static int list_cb(void *ctx, const pigeon_spool_entry *e)
{
    struct list_ctx *l = ctx;
    if (l->n++ == 0)
        snprintf(l->first, sizeof l->first, "%s", e->queue_id);
    l->queued += e->count[PIGEON_SPOOL_QUEUED];
    return 0;
}

static void test_list_delete(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"a@x.example", "b@x.example"};
    char ids[3][PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 2, T0, ids[0]);
    enqueue(s, "home", rcpts, 1, T0 + 1, ids[1]);
    enqueue(s, "work", rcpts, 1, T0 + 2, ids[2]);
    struct list_ctx l = {0, "", 0};
    assert_int_equal(pigeon_spool_list(s, NULL, list_cb, &l), PIGEON_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.first, ids[0]);
    assert_int_equal(l.queued, 4);
    memset(&l, 0, sizeof l);
    assert_int_equal(pigeon_spool_list(s, "home", list_cb, &l), PIGEON_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.first, ids[1]);

    assert_int_equal(pigeon_spool_delete(s, ids[0]), PIGEON_OK);
    assert_int_equal(pigeon_spool_delete(s, ids[0]), PIGEON_ERR_NOTFOUND);
    assert_int_equal(pigeon_spool_retry(s, ids[0], 0, T0, NULL), PIGEON_ERR_NOTFOUND);
    memset(&l, 0, sizeof l);
    assert_int_equal(pigeon_spool_list(s, NULL, list_cb, &l), PIGEON_OK);
    assert_int_equal(l.n, 2);
    pigeon_spool_close(s);
}

/* ---- files that are not ours ---- */

/* PostgreSQL: refused with a message saying what, and the tables are as they were (the
 * schema version has its one row, or none). */
static void pg_expect_refused(const char *what)
{
    pigeon_spool *s = NULL;
    char err[512];
    assert_int_equal(pigeon_spool_open(path, PIGEON_SPOOL_CREATE, &s, err, sizeof err),
                     PIGEON_ERR_CORRUPT);
    assert_null(s);
    if (strstr(err, what) == NULL)
        fail_msg("message \"%s\" does not say \"%s\"", err, what);
    PGconn *c = PQconnectdb(path);
    PGresult *r = PQexec(c, "SELECT to_regclass('holder') IS NULL");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(c);
}

static void expect_refused_untouched(const char *what)
{
    size_t before_len, after_len;
    if (pg != NULL) {
        pg_expect_refused(what);
        return;
    }
    unsigned char *before = read_file(path, &before_len);
    pigeon_spool *s = NULL;
    char err[512];
    assert_int_equal(pigeon_spool_open(path, PIGEON_SPOOL_CREATE, &s, err, sizeof err),
                     PIGEON_ERR_CORRUPT);
    assert_null(s);
    if (strstr(err, what) == NULL)
        fail_msg("message \"%s\" does not say \"%s\"", err, what);
    unsigned char *after = read_file(path, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);
}

static void test_garbage_file_refused_untouched(void **state)
{
    (void)state;
    if (pg != NULL)
        skip(); /* the SQLite file itself */
    unsigned char junk[16384];
    uint32_t x = 99;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1664525u + 1013904223u;
        junk[i] = (unsigned char)(x >> 24);
    }
    write_file(path, junk, sizeof junk);
    expect_refused_untouched("not a pigeon spool");
    /* An SQLite header on garbage. */
    memcpy(junk, "SQLite format 3", 16);
    write_file(path, junk, sizeof junk);
    expect_refused_untouched("not a pigeon spool");
}

static void test_foreign_database_refused_untouched(void **state)
{
    (void)state;
    exec_raw(pg != NULL ? "CREATE TABLE message(t text); INSERT INTO message VALUES('mine');"
                        : "CREATE TABLE notes(t TEXT); INSERT INTO notes VALUES('mine');");
    expect_refused_untouched("not a pigeon spool");
}

/* A process that dies (no sync, no close) after claiming two messages and recording one
 * as delivered: its outcome waits in its journal and its leases run for ten minutes.
 * pigeon_spool_reclaim() of another process applies the journal (the delivered message
 * is gone, never sent again) and gives the other message back at once. */
static void test_reclaim_dead_holder_applies_its_journal(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    char ids[2][PIGEON_SPOOL_ID_LEN + 1];
    const char *rcpts[] = {"a@x.example"};
    enqueue(s, "acct", rcpts, 1, T0, ids[0]);
    enqueue(s, "acct", rcpts, 1, T0 + 1, ids[1]);
    pigeon_spool_close(s); /* an SQLite connection must not cross a fork */
    kill_holder(T0);
    s = open_new();
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0 + 30, &st), PIGEON_OK);
    /* PostgreSQL keeps no journal: the outcome is in the spool at once. */
    assert_int_equal(st.rcpts[PIGEON_SPOOL_INFLIGHT], pg != NULL ? 1 : 2);
    pigeon_spool_entry *job = NULL;
    assert_int_equal(pigeon_spool_claim(s, "me", NULL, T0 + 30, 1000, &job), PIGEON_OK);
    assert_null(job);
    size_t count = 9;
    assert_int_equal(pigeon_spool_reclaim(s, T0 + 40, &count), PIGEON_OK);
    assert_int_equal(count, 1);
    assert_int_equal(pigeon_spool_stats_get(s, T0 + 40, &st), PIGEON_OK);
    assert_int_equal(st.messages, 1);
    assert_int_equal(st.rcpts[PIGEON_SPOOL_INFLIGHT], 1);
    assert_int_equal(pigeon_spool_claim(s, "me", NULL, T0 + 40, 1000, &job), PIGEON_OK);
    assert_non_null(job);
    assert_string_equal(job->queue_id, ids[1]);
    assert_int_equal(job->attempt, 2);
    /* Our own live lease is left alone. */
    assert_int_equal(pigeon_spool_reclaim(s, T0 + 50, &count), PIGEON_OK);
    assert_int_equal(count, 0);
    pigeon_spool_entry_free(job);
    pigeon_spool_close(s);
}

/* pigeon_spool_apply(): the journaled outcome reaches the spool (seen by another handle:
 * the delivered message is gone) without pigeon_spool_sync(); the caller flushes the log. */
static void test_apply_without_flush(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    char id[PIGEON_SPOOL_ID_LEN + 1];
    const char *rcpts[] = {"a@x.example"};
    enqueue(s, "acct", rcpts, 1, T0, id);
    pigeon_spool *c = open_with(PIGEON_SPOOL_DEFER_SYNC | PIGEON_SPOOL_NO_CHECK); /* a daemon's */
    pigeon_spool_entry **jobs = NULL;
    size_t n = 0;
    assert_int_equal(pigeon_spool_claim_batch(c, "w", NULL, T0 + 10, 600000, 1, 0, &jobs, &n),
                     PIGEON_OK);
    assert_int_equal(n, 1);
    pigeon_spool_outcome o = {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "ok"};
    pigeon_spool_record_item item = {jobs[0], &o, 1, 0};
    assert_int_equal(pigeon_spool_record_batch(c, &item, 1, T0 + 20), PIGEON_OK);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0 + 30, &st), PIGEON_OK);
    assert_int_equal(st.messages, pg != NULL ? 0 : 1); /* journaled only (SQLite) */
    assert_int_equal(pigeon_spool_apply(c), PIGEON_OK);
    assert_int_equal(pigeon_spool_stats_get(s, T0 + 30, &st), PIGEON_OK);
    assert_int_equal(st.messages, 0);
    assert_int_equal(pigeon_spool_apply(NULL), PIGEON_ERR_INVALID);
    pigeon_spool_jobs_free(jobs, n);
    pigeon_spool_close(c);
    pigeon_spool_close(s);
}

/* Journaled deliveries (a daemon's handle) remove a message once its last recipient not
 * delivered is: not while another one waits, whether recorded alone or beside another
 * outcome of the same claim. */
static void test_journaled_deliveries_remove_when_done(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    char one[PIGEON_SPOOL_ID_LEN + 1], two[PIGEON_SPOOL_ID_LEN + 1];
    const char *rcpts[] = {"a@x.example", "b@x.example"};
    enqueue(s, "acct", rcpts, 2, T0, two);
    enqueue(s, "acct", rcpts, 1, T0 + 1, one);
    pigeon_spool *c = open_with(PIGEON_SPOOL_DEFER_SYNC | PIGEON_SPOOL_NO_CHECK); /* a daemon's */
    pigeon_spool_entry **jobs = NULL;
    size_t n = 0;
    assert_int_equal(pigeon_spool_claim_batch(c, "w", NULL, T0 + 10, 600000, 2, 0, &jobs, &n),
                     PIGEON_OK);
    assert_int_equal(n, 2);
    assert_string_equal(jobs[0]->queue_id, two);
    /* b of the first message alone, then the second message: the first stays. */
    pigeon_spool_outcome b = {1, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "ok"};
    pigeon_spool_outcome a = {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "ok"};
    pigeon_spool_record_item items[2] = {{jobs[0], &b, 1, 0}, {jobs[1], &a, 1, 0}};
    assert_int_equal(pigeon_spool_record_batch(c, items, 2, T0 + 20), PIGEON_OK);
    assert_int_equal(pigeon_spool_apply(c), PIGEON_OK);
    pigeon_spool_entry *e = NULL;
    assert_int_equal(pigeon_spool_show(s, one, &e), PIGEON_ERR_NOTFOUND);
    assert_int_equal(pigeon_spool_show(s, two, &e), PIGEON_OK);
    assert_int_equal(e->rcpts[0].state, PIGEON_SPOOL_INFLIGHT);
    assert_int_equal(e->rcpts[1].state, PIGEON_SPOOL_DELIVERED);
    assert_int_equal(e->rcpts[1].smtp_code, 250);
    pigeon_spool_entry_free(e);
    /* Then a: nothing is left of it. */
    items[0] = (pigeon_spool_record_item){jobs[0], &a, 1, 0};
    assert_int_equal(pigeon_spool_record_batch(c, items, 1, T0 + 30), PIGEON_OK);
    assert_int_equal(pigeon_spool_sync(c), PIGEON_OK);
    assert_int_equal(pigeon_spool_show(s, two, &e), PIGEON_ERR_NOTFOUND);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0 + 40, &st), PIGEON_OK);
    assert_int_equal(st.messages, 0);
    assert_int_equal(st.rcpts[PIGEON_SPOOL_INFLIGHT] + st.rcpts[PIGEON_SPOOL_DELIVERED], 0);
    pigeon_spool_jobs_free(jobs, n);

    /* Both recipients in one record, one deferred: the message stays for it. */
    enqueue(s, "acct", rcpts, 2, T0 + 50, two);
    assert_int_equal(pigeon_spool_claim_batch(c, "w", NULL, T0 + 60, 600000, 1, 0, &jobs, &n),
                     PIGEON_OK);
    assert_int_equal(n, 1);
    pigeon_spool_outcome both[2] = {
        {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "ok"},
        {1, PIGEON_SPOOL_DEFERRED, T0 + 10 * MIN_MS, PIGEON_ERR_DEFERRED, 450, "4.2.1", "later"},
    };
    items[0] = (pigeon_spool_record_item){jobs[0], both, 2, 0};
    assert_int_equal(pigeon_spool_record_batch(c, items, 1, T0 + 70), PIGEON_OK);
    assert_int_equal(pigeon_spool_sync(c), PIGEON_OK);
    assert_int_equal(pigeon_spool_show(s, two, &e), PIGEON_OK);
    assert_int_equal(e->rcpts[0].state, PIGEON_SPOOL_DELIVERED);
    assert_int_equal(e->rcpts[1].state, PIGEON_SPOOL_DEFERRED);
    pigeon_spool_entry_free(e);
    pigeon_spool_jobs_free(jobs, n);
    pigeon_spool_close(c);
    pigeon_spool_close(s);
}

/* pigeon_spool_journal_delivered(): another thread journals deliveries while the
 * handle's own thread applies the journal (pigeon_spool_apply) again and again, as the
 * daemon's workers do; no outcome is lost between an apply's reading of the journal and
 * its emptying, and every message ends up removed. */
#define JD_COUNT 300
typedef struct jd_ctx {
    pigeon_spool *c;
    pigeon_spool_entry **jobs;
    int failures;
    _Atomic int done;
} jd_ctx;

static void *jd_thread(void *arg)
{
    jd_ctx *x = arg;
    pigeon_spool_outcome o = {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "ok"};
    char err[256];
    for (size_t i = 1; i < JD_COUNT; i++) {
        pigeon_spool_record_item item = {x->jobs[i], &o, 1, 0};
        if (pigeon_spool_journal_delivered(x->c, &item, 1, T0 + 20, err, sizeof err) != PIGEON_OK)
            x->failures++;
    }
    x->done = 1;
    return NULL;
}

static void test_journal_delivered_beside_applies(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    char id[PIGEON_SPOOL_ID_LEN + 1];
    const char *rcpts[] = {"a@x.example"};
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    for (int i = 0; i < JD_COUNT; i++)
        enqueue(s, "acct", rcpts, 1, T0 + i, id);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    pigeon_spool *c = open_with(PIGEON_SPOOL_DEFER_SYNC | PIGEON_SPOOL_NO_CHECK); /* a daemon's */
    pigeon_spool_entry **jobs = NULL;
    size_t n = 0;
    assert_int_equal(
        pigeon_spool_claim_batch(c, "w", NULL, T0 + JD_COUNT, 600000, JD_COUNT, 0, &jobs, &n),
        PIGEON_OK);
    assert_int_equal(n, JD_COUNT);
    pigeon_spool_outcome o = {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "ok"};
    pigeon_spool_record_item item = {jobs[0], &o, 1, 0};
    char err[256] = "";
    /* No journal yet (nothing recorded through the handle): the caller records as usual. */
    assert_int_equal(pigeon_spool_journal_delivered(c, &item, 1, T0 + 20, err, sizeof err),
                     PIGEON_ERR_UNSUPPORTED);
    assert_true(err[0] != '\0');
    assert_int_equal(pigeon_spool_record_batch(c, &item, 1, T0 + 20), PIGEON_OK);
    if (pg != NULL) { /* PostgreSQL records through the connection only */
        pigeon_spool_jobs_free(jobs, n);
        pigeon_spool_close(c);
        pigeon_spool_close(s);
        return;
    }
    /* Only deliveries of the claim are accepted. */
    pigeon_spool_outcome bad = {
        0, PIGEON_SPOOL_DEFERRED, T0 + MIN_MS, PIGEON_ERR_DEFERRED, 451, "4.0.0", "later"};
    pigeon_spool_record_item bad_item = {jobs[1], &bad, 1, 0};
    err[0] = '\0';
    assert_int_equal(pigeon_spool_journal_delivered(c, &bad_item, 1, T0 + 20, err, sizeof err),
                     PIGEON_ERR_INVALID);
    assert_true(err[0] != '\0');
    pigeon_spool_outcome stray = {5, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, NULL, "ok"};
    bad_item.outcomes = &stray;
    assert_int_equal(pigeon_spool_journal_delivered(c, &bad_item, 1, T0 + 20, err, sizeof err),
                     PIGEON_ERR_INVALID);
    jd_ctx x = {c, jobs, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, jd_thread, &x), 0);
    int applies = 0;
    while (!x.done) {
        assert_int_equal(pigeon_spool_apply(c), PIGEON_OK);
        applies++;
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(x.failures, 0);
    assert_true(applies > 0);
    assert_int_equal(pigeon_spool_sync(c), PIGEON_OK);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0 + JD_COUNT, &st), PIGEON_OK);
    assert_int_equal(st.messages, 0);
    pigeon_spool_jobs_free(jobs, n);
    pigeon_spool_close(c);
    pigeon_spool_close(s);
}

/* A version 1 spool (before lease holders) is upgraded when opened for writing: its
 * messages are kept, claimed, and their leases recorded with their holder. */
static void test_version_1_spool_is_upgraded(void **state)
{
    (void)state;
    if (pg != NULL)
        skip(); /* the SQLite file itself */
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"a@x.example"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 1, T0, id);
    pigeon_spool_close(s);
    exec_raw("DROP TABLE holder; ALTER TABLE rcpt DROP COLUMN holder; PRAGMA user_version = 1;");
    s = open_new();
    pigeon_spool_entry *job = NULL;
    assert_int_equal(pigeon_spool_claim(s, "me", NULL, T0 + 10, 1000, &job), PIGEON_OK);
    assert_non_null(job);
    assert_string_equal(job->queue_id, id);
    size_t count = 9;
    assert_int_equal(pigeon_spool_reclaim(s, T0 + 20, &count), PIGEON_OK);
    assert_int_equal(count, 0); /* our own lease: left alone */
    pigeon_spool_entry_free(job);
    pigeon_spool_close(s);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT user_version FROM pragma_user_version), "
                                        "(SELECT count(*) FROM rcpt WHERE holder IS NOT NULL)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    assert_int_equal(sqlite3_column_int(st, 1), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* One integer a query returns (PostgreSQL). */
static long long pg_value(const char *sql)
{
    PGconn *c = PQconnectdb(path);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

/* pigeon_record() of one recipient on conn, for message qid; the query only sent when
 * async (its result read later). */
static void pg_record_delivered(PGconn *conn, long long rcpt, const char *qid, int async)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT * FROM pigeon_record(ARRAY[%lld]::bigint[], ARRAY[0]::bigint[],"
             " ARRAY[3], ARRAY[NULL]::bigint[], ARRAY[0], ARRAY[250], ARRAY['2.0.0'],"
             " ARRAY['ok'], ARRAY['%s'], 1)",
             rcpt, qid);
    if (async) {
        assert_int_equal(PQsendQuery(conn, sql), 1);
        return;
    }
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s", PQerrorMessage(conn));
    PQclear(r);
}

/* Two daemons record the last two recipients of one message at the same moment (two
 * transactions, neither committed when the other records): the message is removed once
 * both are in. Before migration 8 each saw the other's recipient undelivered and neither
 * removed it. The second is let run until it either ends or waits for a lock, then the
 * first commits. */
static void test_last_recipients_recorded_at_once(void **state)
{
    (void)state;
    if (pg == NULL)
        skip(); /* concurrent transactions of the PostgreSQL backend */
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"a@x.example", "b@x.example"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 2, T0, id);
    pigeon_spool_close(s);
    long long a = pg_value("SELECT min(id) FROM rcpt"), b = pg_value("SELECT max(id) FROM rcpt");
    PGconn *one = PQconnectdb(path), *two = PQconnectdb(path);
    assert_int_equal(PQstatus(one), CONNECTION_OK);
    assert_int_equal(PQstatus(two), CONNECTION_OK);
    PQclear(PQexec(one, "BEGIN"));
    pg_record_delivered(one, a, id, 0);
    pg_record_delivered(two, b, id, 1);
    /* A row lock's wait shows in pg_stat_activity (pg_locks has it as a transaction id
     * lock, without a database). At most 30 s, then the commit goes ahead anyway. */
    for (int i = 0; i < 3000; i++) {
        assert_int_equal(PQconsumeInput(two), 1);
        if (!PQisBusy(two) || pg_value("SELECT count(*) FROM pg_stat_activity WHERE"
                                       " wait_event_type = 'Lock' AND datname ="
                                       " current_database()") > 0)
            break;
        usleep(10000);
    }
    PQclear(PQexec(one, "COMMIT"));
    PGresult *r;
    while ((r = PQgetResult(two)) != NULL) {
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
    }
    PQfinish(one);
    PQfinish(two);
    assert_int_equal(pg_value("SELECT count(*) FROM message"), 0);
    assert_int_equal(pg_value("SELECT count(*) FROM rcpt"), 0);
    assert_int_equal(pg_value("SELECT count(*) FROM body"), 0);
}

/* A version 6 PostgreSQL spool (foreign keys, ids one at a time) is upgraded when opened
 * for writing, with its messages kept; and what a version 6 pigeon still running beside
 * does keeps working: its delete of a message takes the children along (the trigger that
 * replaced the keys' cascade), its inserts (default ids) never collide with a batch's
 * reserved ids. */
static void test_version_6_pg_spool_is_upgraded(void **state)
{
    (void)state;
    if (pg == NULL)
        skip(); /* the PostgreSQL schema */
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"a@x.example", "b@x.example"};
    char one[PIGEON_SPOOL_ID_LEN + 1], two[PIGEON_SPOOL_ID_LEN + 1], id[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 2, T0, one);
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    enqueue(s, "work", rcpts, 2, T0, two);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    pigeon_spool_close(s);
    /* Back to version 6 as it was made. */
    exec_raw("DROP TRIGGER message_cascade ON message; DROP FUNCTION pigeon_cascade();"
             "ALTER TABLE rcpt ADD FOREIGN KEY (msg) REFERENCES message(id) ON DELETE CASCADE;"
             "ALTER TABLE body ADD FOREIGN KEY (msg) REFERENCES message(id) ON DELETE CASCADE;"
             "ALTER SEQUENCE message_id_seq INCREMENT BY 1;"
             "DELETE FROM schema_version WHERE version >= 7");
    assert_int_equal(pg_value("SELECT max(version) FROM schema_version"), 6);
    s = NULL;
    char err[256];
    assert_int_equal(pigeon_spool_open(path, PIGEON_SPOOL_READONLY, &s, err, sizeof err),
                     PIGEON_ERR_STATE);
    assert_non_null(strstr(err, "older"));
    s = open_new();
    assert_int_equal(pg_value("SELECT max(version) FROM schema_version"), 9);
    assert_int_equal(pg_value("SELECT count(*) FROM pg_constraint WHERE contype = 'f'"), 0);
    unsigned char *bytes;
    size_t len;
    assert_int_equal(read_all(s, one, &bytes, &len), PIGEON_OK);
    assert_int_equal(len, sizeof sample - 1);
    free(bytes);
    /* A version 6 pigeon's insert (the default id) between two batches. */
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    enqueue(s, "work", rcpts, 2, T0, id);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    exec_raw("INSERT INTO message(queue_id, message_id, account, mail_from, size, created_ms)"
             " VALUES ('OLD', '', 'work', '', 0, 0)");
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    for (int i = 0; i < 3; i++)
        enqueue(s, "work", rcpts, 2, T0, id);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    /* Its delete, and ours, remove the children. */
    char sql[160];
    snprintf(sql, sizeof sql, "DELETE FROM message WHERE queue_id IN ('%s', 'OLD')", one);
    exec_raw(sql);
    assert_int_equal(pigeon_spool_delete(s, two), PIGEON_OK);
    assert_int_equal(pg_value("SELECT count(*) FROM message"), 4);
    assert_int_equal(pg_value("SELECT count(*) FROM rcpt"), 8);
    assert_int_equal(pg_value("SELECT count(*) FROM body"), 4);
    assert_int_equal(pg_value("SELECT count(*) FROM rcpt r WHERE NOT EXISTS (SELECT 1 FROM"
                              " message m WHERE m.id = r.msg)"),
                     0);
    pigeon_spool_close(s);
}

/* A spool made with 16 KiB pages (before 8 KiB became the size of new files) keeps its
 * page size and works as before: a batch claim brings the body and the counts, one
 * recipient claimed of two (the other not due yet), and the message goes once both are
 * delivered. */
static void test_16k_page_spool_still_works(void **state)
{
    (void)state;
    if (pg != NULL)
        skip(); /* the SQLite file itself */
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"a@x.example", "b@x.example"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 2, T0, id);
    pigeon_spool_close(s);
    exec_raw("PRAGMA journal_mode=DELETE; PRAGMA page_size=16384; VACUUM; "
             "PRAGMA journal_mode=WAL; UPDATE rcpt SET due_ms = due_ms + 100000 "
             "WHERE address = 'b@x.example';");
    s = open_new();
    pigeon_spool_entry **jobs = NULL;
    size_t n = 0;
    assert_int_equal(pigeon_spool_claim_batch(s, "w", NULL, T0 + 10, MIN_MS, 8, 65536, &jobs, &n),
                     PIGEON_OK);
    assert_int_equal(n, 1);
    pigeon_spool_entry *e = jobs[0];
    assert_string_equal(e->queue_id, id);
    assert_int_equal(e->rcpt_count, 1);
    assert_string_equal(e->rcpts[0].address, "a@x.example");
    assert_int_equal(e->rcpts[0].state, PIGEON_SPOOL_INFLIGHT);
    assert_int_equal(e->rcpts[0].attempts, 1);
    assert_int_equal(e->rcpts[0].next_ms, T0 + 10 + MIN_MS);
    assert_string_equal(e->rcpts[0].lease_owner, "w");
    assert_int_equal(e->count[PIGEON_SPOOL_INFLIGHT], 1);
    assert_int_equal(e->count[PIGEON_SPOOL_QUEUED], 1);
    assert_int_equal(e->next_ms, T0 + 10 + MIN_MS);
    assert_int_equal(e->attempt, 1);
    assert_non_null(e->body);
    assert_memory_equal(e->body, sample, sizeof sample - 1);
    pigeon_spool_outcome o = {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, NULL, NULL};
    pigeon_spool_record_item item = {e, &o, 1, 0};
    assert_int_equal(pigeon_spool_record_batch(s, &item, 1, T0 + 20), PIGEON_OK);
    pigeon_spool_jobs_free(jobs, n);
    pigeon_spool_entry *job = NULL;
    assert_int_equal(pigeon_spool_claim(s, "w", NULL, T0 + 200000, MIN_MS, &job), PIGEON_OK);
    assert_non_null(job);
    assert_int_equal(job->rcpt_count, 1);
    assert_string_equal(job->rcpts[0].address, "b@x.example");
    assert_int_equal(job->count[PIGEON_SPOOL_DELIVERED], 1);
    o.rcpt = 0;
    assert_int_equal(pigeon_spool_record(s, job, &o, 1, T0 + 200001), PIGEON_OK);
    pigeon_spool_entry_free(job);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0 + 200002, &st), PIGEON_OK);
    assert_int_equal(st.messages, 0);
    assert_int_equal(pigeon_spool_check(s, 1), PIGEON_OK);
    pigeon_spool_close(s);
    sqlite3 *db = NULL;
    sqlite3_stmt *st2 = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st2, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st2), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st2, 0), 16384);
    sqlite3_finalize(st2);
    sqlite3_close(db);
}

/* Processes that create the same new spool at once (a daemon and `send --queue` started
 * together) all open it: switching the new file to WAL does not wait in SQLite's busy
 * handler, so a loser of that race used to fail at once with "database is locked". */
static void test_concurrent_creation(void **state)
{
    (void)state;
    if (pg != NULL)
        skip(); /* the SQLite file itself */
    for (int round = 0; round < 20; round++) {
        char p[400];
        snprintf(p, sizeof p, "%s/race-%d.db", dir, round);
        int go[2];
        assert_int_equal(pipe(go), 0);
        pid_t kids[6];
        for (int k = 0; k < 6; k++) {
            kids[k] = fork();
            assert_true(kids[k] >= 0);
            if (kids[k] == 0) {
                char c;
                close(go[1]);
                _exit(read(go[0], &c, 1) == 0 &&
                              pigeon_spool_open(
                                  p, PIGEON_SPOOL_CREATE | (k % 2 ? PIGEON_SPOOL_DEFER_SYNC : 0),
                                  &(pigeon_spool *){NULL}, NULL, 0) == PIGEON_OK
                          ? 0
                          : 1);
            }
        }
        close(go[0]);
        close(go[1]); /* all start at once */
        for (int k = 0; k < 6; k++) {
            int status = 0;
            assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 0);
        }
    }
}

static void test_newer_version_refused_untouched(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"a@x.example"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    enqueue(s, "work", rcpts, 1, T0, id);
    pigeon_spool_close(s);
    exec_raw(pg != NULL ? "INSERT INTO schema_version VALUES (99, 0)" : "PRAGMA user_version = 3;");
    expect_refused_untouched("newer");
}

static void test_damaged_spool_refused_untouched(void **state)
{
    (void)state;
    if (pg != NULL)
        skip(); /* the SQLite file itself */
    pigeon_spool *s = open_new();
    const char *rcpts[] = {"a@x.example", "b@x.example", "c@x.example"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    for (int i = 0; i < 300; i++)
        enqueue(s, "work", rcpts, 3, T0 + i, id);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    pigeon_spool_close(s);
    /* Smash the middle of the file (b-tree pages of the tables and indexes). */
    size_t len;
    unsigned char *bytes = read_file(path, &len);
    assert_true(len > 64 * 1024);
    for (size_t i = 4096; i < len - 4096; i += 4096)
        memset(bytes + i, 0xA5, 64);
    write_file(path, bytes, len);
    free(bytes);
    expect_refused_untouched("damaged");
}

static void test_missing_and_empty_files(void **state)
{
    (void)state;
    pigeon_spool *s = NULL;
    char err[256];
    assert_int_equal(pigeon_spool_open(path, 0, &s, err, sizeof err), PIGEON_ERR_NOTFOUND);
    if (pg != NULL) {
        /* An empty database is not a spool until it is created (migrated) once. */
        assert_int_equal(pigeon_spool_open(path, PIGEON_SPOOL_READONLY, &s, err, sizeof err),
                         PIGEON_ERR_NOTFOUND);
        s = open_new();
        pigeon_spool_close(s);
        assert_int_equal(pigeon_spool_open(path, PIGEON_SPOOL_READONLY, &s, err, sizeof err),
                         PIGEON_OK);
        pigeon_spool_close(s);
        return;
    }
    assert_int_equal(access(path, F_OK), -1); /* not created */
    assert_int_equal(pigeon_spool_open(path, PIGEON_SPOOL_READONLY, &s, err, sizeof err),
                     PIGEON_ERR_NOTFOUND);
    write_file(path, "", 0);
    s = open_new();
    assert_int_equal(pigeon_spool_check(s, 1), PIGEON_OK);
    pigeon_spool_close(s);
    /* Read-only handles can look but not claim. */
    assert_int_equal(pigeon_spool_open(path, PIGEON_SPOOL_READONLY, &s, err, sizeof err),
                     PIGEON_OK);
    pigeon_spool_stats st;
    assert_int_equal(pigeon_spool_stats_get(s, T0, &st), PIGEON_OK);
    pigeon_spool_close(s);
}

/* ---- batches of claims and outcomes ---- */

/* Enqueues n one-recipient messages (rcpt r<i>@x.example) of account at T0 + first + i. */
static void enqueue_many(pigeon_spool *s, const char *account, int n, int64_t first,
                         char ids[][PIGEON_SPOOL_ID_LEN + 1])
{
    for (int i = 0; i < n; i++) {
        char rcpt[64];
        snprintf(rcpt, sizeof rcpt, "r%d@x.example", i);
        const char *rcpts[] = {rcpt, "all@x.example"};
        enqueue(s, account, rcpts, 2, T0 + first + 10 * i, ids[i]);
    }
}

static void test_claim_batch_one_account_one_lease(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    char home[5][PIGEON_SPOOL_ID_LEN + 1], work[3][PIGEON_SPOOL_ID_LEN + 1];
    enqueue_many(s, "home", 5, 0, home); /* due at T0, T0+10, ... */
    enqueue_many(s, "work", 3, 5, work); /* due at T0+5, T0+15, T0+25: interleaved */
    pigeon_spool_entry **jobs = NULL;
    size_t n = 99;
    assert_int_equal(pigeon_spool_claim_batch(s, "w", NULL, T0 + 100, MIN_MS, 0, 0, &jobs, &n),
                     PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_spool_claim_batch(s, "w", NULL, T0 + 100, MIN_MS,
                                              PIGEON_SPOOL_MAX_BATCH + 1, 0, &jobs, &n),
                     PIGEON_ERR_INVALID);
    /* The oldest due work is home's: four of its messages, oldest first, one lease. */
    assert_int_equal(pigeon_spool_claim_batch(s, "w1", NULL, T0 + 100, MIN_MS, 4, 0, &jobs, &n),
                     PIGEON_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(jobs[i]->queue_id, home[i]);
        assert_string_equal(jobs[i]->account, "home");
        assert_int_equal(jobs[i]->rcpt_count, 2);
        assert_int_equal(jobs[i]->rcpts[0].state, PIGEON_SPOOL_INFLIGHT);
        assert_int_equal(jobs[i]->attempt, 1);
        assert_string_equal(jobs[i]->lease_owner, "w1");
        assert_int_equal(jobs[i]->lease_until_ms, T0 + 100 + MIN_MS);
        assert_true(jobs[i]->lease_token != 0 && jobs[i]->lease_token == jobs[0]->lease_token);
    }
    /* An account named: only its messages, though home's last one is due earlier. */
    pigeon_spool_entry **more = NULL;
    size_t m = 0;
    assert_int_equal(pigeon_spool_claim_batch(s, "w2", "work", T0 + 100, MIN_MS, 10, 0, &more, &m),
                     PIGEON_OK);
    assert_int_equal(m, 3);
    for (size_t i = 0; i < m; i++)
        assert_string_equal(more[i]->queue_id, work[i]);
    assert_true(more[0]->lease_token != jobs[0]->lease_token);
    pigeon_spool_jobs_free(more, m);
    /* What is left: home's fifth; then nothing until the leases expire. */
    assert_int_equal(pigeon_spool_claim_batch(s, "w2", NULL, T0 + 100, MIN_MS, 10, 0, &more, &m),
                     PIGEON_OK);
    assert_int_equal(m, 1);
    assert_string_equal(more[0]->queue_id, home[4]);
    pigeon_spool_jobs_free(more, m);
    assert_int_equal(pigeon_spool_claim_batch(s, "w2", NULL, T0 + 100, MIN_MS, 10, 0, &more, &m),
                     PIGEON_OK);
    assert_null(more);
    assert_int_equal(m, 0);
    /* A throttled account is skipped by batches too. */
    assert_int_equal(pigeon_spool_throttle(s, "home", T0 + 10 * MIN_MS, "slow"), PIGEON_OK);
    assert_int_equal(
        pigeon_spool_claim_batch(s, "w3", NULL, T0 + 100 + MIN_MS, MIN_MS, 10, 0, &more, &m),
        PIGEON_OK);
    assert_int_equal(m, 3);
    for (size_t i = 0; i < m; i++)
        assert_string_equal(more[i]->account, "work");
    pigeon_spool_jobs_free(more, m);
    pigeon_spool_jobs_free(jobs, n);
    pigeon_spool_close(s);
}

/* Reads a claimed message through pigeon_spool_job_body() in odd-sized pieces. */
static pigeon_err read_job(pigeon_spool *s, const pigeon_spool_entry *job, char *buf, size_t cap,
                           size_t *len)
{
    pigeon_spool_body *b = NULL;
    int64_t size = -1;
    size_t n = 0;
    *len = 0;
    pigeon_err err = pigeon_spool_job_body(s, job, &b, &size);
    if (err != PIGEON_OK)
        return err;
    assert_int_equal(size, (int64_t)(sizeof sample - 1));
    do {
        size_t want = cap - *len < 7 ? cap - *len : 7;
        err = (pigeon_err)pigeon_spool_body_read(b, buf + *len, want, &n);
        *len += n;
    } while (err == PIGEON_OK && n > 0);
    pigeon_spool_body_close(b);
    return err;
}

/* A batch claim can carry the bytes of small messages; they read back exactly as stored,
 * and are still checked against the stored SHA-256. */
static void test_claim_batch_inline_bodies(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    char ids[2][PIGEON_SPOOL_ID_LEN + 1], buf[512];
    size_t n = 0, len = 0;
    enqueue_many(s, "home", 2, 0, ids);
    pigeon_spool_entry **jobs = NULL;
    assert_int_equal(pigeon_spool_claim_batch(s, "w", NULL, T0 + 100, MIN_MS, 1,
                                              PIGEON_SPOOL_MAX_INLINE + 1, &jobs, &n),
                     PIGEON_ERR_INVALID);
    /* Too small a limit: no bytes carried; they come from the store. */
    assert_int_equal(
        pigeon_spool_claim_batch(s, "w", NULL, T0 + 100, MIN_MS, 1, sizeof sample - 2, &jobs, &n),
        PIGEON_OK);
    assert_int_equal(n, 1);
    assert_null(jobs[0]->body);
    assert_int_equal(read_job(s, jobs[0], buf, sizeof buf, &len), PIGEON_OK);
    assert_int_equal(len, sizeof sample - 1);
    assert_memory_equal(buf, sample, len);
    pigeon_spool_jobs_free(jobs, n);
    assert_int_equal(
        pigeon_spool_claim_batch(s, "w", NULL, T0 + 100, MIN_MS, 1, sizeof sample - 1, &jobs, &n),
        PIGEON_OK);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0]->queue_id, ids[1]);
    assert_non_null(jobs[0]->body);
    assert_memory_equal(jobs[0]->body, sample, sizeof sample - 1);
    assert_int_equal(read_job(s, jobs[0], buf, sizeof buf, &len), PIGEON_OK);
    assert_int_equal(len, sizeof sample - 1);
    assert_memory_equal(buf, sample, len);
    /* Bytes that do not match their hash are refused at the end, as from the store. */
    ((char *)jobs[0]->body)[3] ^= 1;
    assert_int_equal(read_job(s, jobs[0], buf, sizeof buf, &len), PIGEON_ERR_CORRUPT);
    pigeon_spool_jobs_free(jobs, n);
    pigeon_spool_close(s);
}

/* One commit records several claims; what was not recorded (a crash after sending) comes
 * back after the lease, what was delivered never does, and a lost lease is reported. */
static void test_record_batch(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    char ids[3][PIGEON_SPOOL_ID_LEN + 1];
    enqueue_many(s, "home", 3, 0, ids);
    pigeon_spool_entry **jobs = NULL;
    size_t n = 0;
    assert_int_equal(pigeon_spool_claim_batch(s, "w1", NULL, T0 + 100, MIN_MS, 8, 0, &jobs, &n),
                     PIGEON_OK);
    assert_int_equal(n, 3);
    pigeon_spool_outcome all[2] = {{0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "ok"},
                                   {1, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "ok"}};
    pigeon_spool_outcome half[2] = {
        {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.1.5", "ok"},
        {1, PIGEON_SPOOL_DEFERRED, T0 + 5 * MIN_MS, PIGEON_ERR_DEFERRED, 451, "4.3.0", "busy"}};
    pigeon_spool_outcome bad = {5, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, NULL, NULL};
    pigeon_spool_record_item items[2] = {{jobs[0], all, 2, 0}, {jobs[1], &bad, 1, 0}};
    /* A bad item refuses the whole call: nothing recorded. */
    assert_int_equal(pigeon_spool_record_batch(s, items, 2, T0 + 200), PIGEON_ERR_INVALID);
    pigeon_spool_entry *e = NULL;
    assert_int_equal(pigeon_spool_show(s, ids[0], &e), PIGEON_OK);
    assert_int_equal(e->count[PIGEON_SPOOL_INFLIGHT], 2);
    pigeon_spool_entry_free(e);
    items[1] = (pigeon_spool_record_item){jobs[1], half, 2, 0};
    assert_int_equal(pigeon_spool_record_batch(s, items, 2, T0 + 200), PIGEON_OK);
    assert_int_equal(pigeon_spool_show(s, ids[0], &e), PIGEON_ERR_NOTFOUND); /* all delivered */
    assert_int_equal(pigeon_spool_show(s, ids[1], &e), PIGEON_OK);
    assert_int_equal(e->rcpts[0].state, PIGEON_SPOOL_DELIVERED);
    assert_int_equal(e->rcpts[1].state, PIGEON_SPOOL_DEFERRED);
    assert_int_equal(e->rcpts[1].smtp_code, 451);
    pigeon_spool_entry_free(e);
    /* jobs[2] was "sent" but never recorded (the worker died): after the lease it is due
     * again, alone; the recorded ones are not. */
    pigeon_spool_entry **again = NULL;
    size_t m = 0;
    assert_int_equal(
        pigeon_spool_claim_batch(s, "w2", NULL, T0 + 100 + MIN_MS, MIN_MS, 8, 0, &again, &m),
        PIGEON_OK);
    assert_int_equal(m, 1);
    assert_string_equal(again[0]->queue_id, ids[2]);
    assert_int_equal(again[0]->rcpt_count, 2);
    assert_int_equal(again[0]->attempt, 2);
    /* The dead worker's late outcomes: its "deferred" is refused (lease lost), its
     * "delivered" kept; the call says so. */
    pigeon_spool_outcome late[2] = {
        {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, NULL, NULL},
        {1, PIGEON_SPOOL_DEFERRED, T0 + 9 * MIN_MS, PIGEON_ERR_DEFERRED, 451, NULL, NULL}};
    pigeon_spool_record_item late_item = {jobs[2], late, 2, 0};
    assert_int_equal(pigeon_spool_record_batch(s, &late_item, 1, T0 + 100 + MIN_MS + 1),
                     PIGEON_ERR_STATE);
    assert_int_equal(late_item.lost, 1);
    assert_int_equal(pigeon_spool_show(s, ids[2], &e), PIGEON_OK);
    assert_int_equal(e->rcpts[0].state, PIGEON_SPOOL_DELIVERED);
    assert_int_equal(e->rcpts[1].state, PIGEON_SPOOL_INFLIGHT);
    assert_string_equal(e->rcpts[1].lease_owner, "w2");
    pigeon_spool_entry_free(e);
    pigeon_spool_jobs_free(again, m);
    pigeon_spool_jobs_free(jobs, n);
    pigeon_spool_close(s);
}

static void test_renew_and_release_batch(void **state)
{
    (void)state;
    pigeon_spool *s = open_new();
    char ids[3][PIGEON_SPOOL_ID_LEN + 1];
    enqueue_many(s, "home", 3, 0, ids);
    pigeon_spool_entry **jobs = NULL, **none = NULL;
    size_t n = 0, m = 0, lost = 99;
    assert_int_equal(pigeon_spool_claim_batch(s, "w1", NULL, T0 + 100, MIN_MS, 8, 0, &jobs, &n),
                     PIGEON_OK);
    assert_int_equal(n, 3);
    pigeon_spool_outcome all[2] = {{0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, NULL, NULL},
                                   {1, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, NULL, NULL}};
    assert_int_equal(pigeon_spool_record(s, jobs[0], all, 2, T0 + 200), PIGEON_OK);
    /* Renewing: the recorded one has nothing left in flight and keeps its old expiry. */
    assert_int_equal(pigeon_spool_renew_batch(s, jobs, n, T0 + 10 * MIN_MS, &lost), PIGEON_OK);
    assert_int_equal(lost, 1);
    assert_int_equal(jobs[0]->lease_until_ms, T0 + 100 + MIN_MS);
    assert_int_equal(jobs[1]->lease_until_ms, T0 + 10 * MIN_MS);
    assert_int_equal(jobs[2]->lease_until_ms, T0 + 10 * MIN_MS);
    assert_int_equal(
        pigeon_spool_claim_batch(s, "w2", NULL, T0 + 5 * MIN_MS, MIN_MS, 8, 0, &none, &m),
        PIGEON_OK);
    assert_int_equal(m, 0);
    /* Released (a shutdown before sending): due now, the attempt not counted. */
    assert_int_equal(pigeon_spool_release_batch(s, jobs + 1, 2, T0 + 300), PIGEON_OK);
    pigeon_spool_entry *e = NULL;
    assert_int_equal(pigeon_spool_show(s, ids[2], &e), PIGEON_OK);
    assert_int_equal(e->rcpts[0].state, PIGEON_SPOOL_QUEUED);
    assert_int_equal(e->rcpts[0].attempts, 0);
    pigeon_spool_entry_free(e);
    /* Renewing after the release: all three lost. */
    assert_int_equal(pigeon_spool_renew_batch(s, jobs, n, T0 + 20 * MIN_MS, &lost), PIGEON_OK);
    assert_int_equal(lost, 3);
    assert_int_equal(pigeon_spool_claim_batch(s, "w2", NULL, T0 + 300, MIN_MS, 8, 0, &none, &m),
                     PIGEON_OK);
    assert_int_equal(m, 2);
    assert_string_equal(none[0]->queue_id, ids[1]);
    assert_int_equal(none[0]->attempt, 1);
    pigeon_spool_jobs_free(none, m);
    pigeon_spool_jobs_free(jobs, n);
    pigeon_spool_close(s);
}

/* ---- two handles on one file ---- */

#define NMSG  60
#define NRCPT 3

static void collect(pigeon_spool_entry *job, unsigned char *seen, int *dups)
{
    for (size_t i = 0; i < job->rcpt_count; i++) {
        int64_t rid = job->rcpts[i].id;
        assert_true(rid > 0 && rid <= NMSG * NRCPT);
        if (seen[rid]++)
            (*dups)++;
    }
}

static void fill_for_claims(void)
{
    pigeon_spool *s = open_new();
    const char *rcpts[NRCPT] = {"a@x.example", "b@x.example", "c@x.example"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    assert_int_equal(pigeon_spool_begin(s), PIGEON_OK);
    for (int i = 0; i < NMSG; i++)
        enqueue(s, i % 2 ? "work" : "home", rcpts, NRCPT, T0 + i, id);
    assert_int_equal(pigeon_spool_commit(s), PIGEON_OK);
    pigeon_spool_close(s);
}

static void test_two_handles_interleaved(void **state)
{
    (void)state;
    fill_for_claims();
    pigeon_spool *h[2] = {open_new(), open_new()};
    unsigned char seen[NMSG * NRCPT + 1];
    memset(seen, 0, sizeof seen);
    int dups = 0, empty = 0, turn = 0, claims = 0;
    while (empty < 2) {
        pigeon_spool_entry *job = NULL;
        const char *owner = turn ? "w1" : "w0";
        assert_int_equal(pigeon_spool_claim(h[turn], owner, NULL, T0 + NMSG, MIN_MS, &job),
                         PIGEON_OK);
        if (job == NULL) {
            empty++;
        } else {
            empty = 0;
            claims++;
            collect(job, seen, &dups);
            pigeon_spool_entry_free(job);
        }
        turn ^= 1;
    }
    assert_int_equal(dups, 0);
    assert_int_equal(claims, NMSG);
    for (int i = 1; i <= NMSG * NRCPT; i++)
        assert_int_equal(seen[i], 1);
    pigeon_spool_close(h[0]);
    pigeon_spool_close(h[1]);
}

struct claimer {
    pigeon_spool *spool;       /* this thread's own handle */
    size_t batch;              /* 0: single claims; else batches of up to this many */
    const char *owner;         /* lease owner */
    int64_t ids[NMSG * NRCPT]; /* recipients claimed */
    int n;                     /* how many */
    pigeon_err err;            /* first error */
};

/* Batch claims until nothing is left. */
static void *claim_batch_loop(struct claimer *c)
{
    for (;;) {
        pigeon_spool_entry **jobs = NULL;
        size_t n = 0;
        c->err = pigeon_spool_claim_batch(c->spool, c->owner, NULL, T0 + NMSG, MIN_MS, c->batch, 0,
                                          &jobs, &n);
        if (c->err != PIGEON_OK || n == 0)
            break;
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < jobs[j]->rcpt_count && c->n < NMSG * NRCPT; i++)
                c->ids[c->n++] = jobs[j]->rcpts[i].id;
        pigeon_spool_jobs_free(jobs, n);
    }
    return NULL;
}

static void *claim_loop(void *arg)
{
    struct claimer *c = arg;
    if (c->batch > 0)
        return claim_batch_loop(c);
    for (;;) {
        pigeon_spool_entry *job = NULL;
        c->err = pigeon_spool_claim(c->spool, c->owner, NULL, T0 + NMSG, MIN_MS, &job);
        if (c->err != PIGEON_OK || job == NULL)
            break;
        for (size_t i = 0; i < job->rcpt_count && c->n < NMSG * NRCPT; i++)
            c->ids[c->n++] = job->rcpts[i].id;
        pigeon_spool_entry_free(job);
    }
    return NULL;
}

/* The same with two threads racing, each with its own handle: single claims, then
 * batches (of two accounts mixed in the spool). */
static void race(size_t batch)
{
    fill_for_claims();
    static struct claimer c[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].spool = open_new();
        c[i].owner = i ? "t1" : "t0";
        c[i].batch = batch;
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, claim_loop, &c[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    unsigned char seen[NMSG * NRCPT + 1];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c[i].err, PIGEON_OK);
        for (int k = 0; k < c[i].n; k++) {
            assert_true(c[i].ids[k] > 0 && c[i].ids[k] <= NMSG * NRCPT);
            assert_int_equal(seen[c[i].ids[k]]++, 0);
        }
        pigeon_spool_close(c[i].spool);
    }
    assert_int_equal(c[0].n + c[1].n, NMSG * NRCPT);
}

static void test_two_handles_racing(void **state)
{
    (void)state;
    race(0);
}

static void test_two_handles_racing_batches(void **state)
{
    (void)state;
    race(7);
}

int main(void)
{
    fixture_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enqueue_show_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_large_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_body_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_stream_stores_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_envelopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_commit_and_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_large_and_repeated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_and_lease_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accepted_never_resent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivered_message_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_and_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file_refused_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_database_refused_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_version_refused_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_dead_holder_applies_its_journal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_version_1_spool_is_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_6_pg_spool_is_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_recipients_recorded_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_16k_page_spool_still_works, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_creation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_spool_refused_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_empty_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_interleaved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_racing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_batch_one_account_one_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_batch_inline_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_without_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journaled_deliveries_remove_when_done, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_delivered_beside_applies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renew_and_release_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_racing_batches, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
