/*
 * spool_testutil.h - the fixture the spool's unit suites share (test_spool, test_spool_bulk,
 * test_spool_hooks): every test gets a fresh spool of its own at `path`, a file in a new
 * directory under /tmp or, when the suite runs against PostgreSQL (PIGEON_TEST_PG set:
 * the suite's _pg ctest entry, started by tests/integration/pgserver.py), a fresh database
 * of that server.
 *
 * Test code only, one copy per test program: it defines the fixture's state and functions
 * (static) under the names the suites use, with a sample message, a body stream that
 * fails and a spool handle's holder that dies. Each cmocka test gets setup and teardown;
 * a suite that also runs against PostgreSQL calls fixture_init() first in main() (without
 * it, as in test_spool_bulk, the spool is always an SQLite file).
 */
#ifndef SPOOL_TESTUTIL_H
#define SPOOL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pigeon/spool.h"

static char dir[256];  /* the test's directory under /tmp (made by setup, removed by teardown) */
static char path[300]; /* the test's spool: dir/spool.db, or the URL of its fresh database */
static const char *pg; /* PIGEON_TEST_PG: the PostgreSQL server's base URL, or NULL */

/* Reads PIGEON_TEST_PG (empty counts as unset): which backend the suite runs against. */
static inline void fixture_init(void)
{
    pg = getenv("PIGEON_TEST_PG");
    if (pg != NULL && pg[0] == '\0')
        pg = NULL;
}

/* Runs sql on database url (PostgreSQL); fails the test on error. */
static inline void pg_exec(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("%s: %s", url, PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* cmocka setup: a new directory, and the spool's path in it or a new database. */
static inline int setup(void **state)
{
    (void)state;
    static int n;
    snprintf(dir, sizeof dir, "/tmp/pigeon-spool-test-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof path, "%s/spool.db", dir);
    if (pg != NULL) {
        /* A fresh database per test: the base URL with its database name replaced. */
        char sql[96], db[64];
        snprintf(db, sizeof db, "spool_%ld_%d", (long)getpid(), ++n);
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
        pg_exec(pg, sql);
        const char *slash = strrchr(pg, '/');
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - pg), pg, db);
    }
    return 0;
}

/* cmocka teardown: removes the spool file with its WAL, shared-memory and journal files,
 * and the directory (a database goes with its server: pgserver.py starts one per run). */
static inline int teardown(void **state)
{
    (void)state;
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[320];
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

/* A small message: what enqueue() stores in the suites. */
static const char sample[] = "From: a@example.org\r\nTo: b@example.net\r\n"
                             "Message-ID: <m1@example.org>\r\nSubject: hi\r\n\r\nHello.\r\n";

/* A pigeon_read_fn body that gives `left` bytes of 'x', then fails: an enqueue whose
 * stream breaks part way. */
struct failing_stream {
    size_t left; /* bytes before the failure */
};

static inline int failing_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    struct failing_stream *f = ctx;
    if (f->left == 0)
        return -1;
    size_t k = cap < f->left ? cap : f->left;
    memset(buf, 'x', k);
    f->left -= k;
    *n = k;
    return 0;
}

/* Opens the test's spool with flags; fails the test with the spool's message if it cannot. */
static inline pigeon_spool *open_with(unsigned flags)
{
    pigeon_spool *s = NULL;
    char err[256];
    if (pigeon_spool_open(path, flags, &s, err, sizeof err) != PIGEON_OK)
        fail_msg("open: %s", err);
    return s;
}

/* Opens the test's spool, creating it. */
static inline pigeon_spool *open_new(void)
{
    return open_with(PIGEON_SPOOL_CREATE);
}

/* A daemon's handle that dies: a child process opens the spool as the daemon does
 * (journaled outcomes), claims two messages at now + 10 ms for ten minutes, records the
 * first as delivered at now + 20 ms and exits without a sync or a close, as if killed.
 * Returns once it has; the caller has closed its own handles (an SQLite connection must
 * not cross a fork). */
static inline void kill_holder(int64_t now)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pigeon_spool *c = NULL;
        pigeon_spool_entry **jobs = NULL;
        size_t n = 0;
        if (pigeon_spool_open(path, PIGEON_SPOOL_DEFER_SYNC | PIGEON_SPOOL_NO_CHECK, &c, NULL, 0) !=
            PIGEON_OK)
            _exit(2);
        if (pigeon_spool_claim_batch(c, "child", NULL, now + 10, 600000, 2, 0, &jobs, &n) !=
                PIGEON_OK ||
            n != 2)
            _exit(3);
        pigeon_spool_outcome o = {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "ok"};
        pigeon_spool_record_item item = {jobs[0], &o, 1, 0};
        if (pigeon_spool_record_batch(c, &item, 1, now + 20) != PIGEON_OK)
            _exit(4);
        _exit(0); /* killed, as it were: no sync, no close */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

#endif
