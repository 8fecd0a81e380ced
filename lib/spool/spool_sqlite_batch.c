/*
 * spool_sqlite_batch.c - the SQLite spool backend: claims, renewals, outcomes and releases
 * of many messages in one transaction each (see spool_backend.h for the contract and
 * pigeon/spool.h for why: every transaction here costs one fsync of the WAL, whatever it
 * holds, so a worker that claims 32 messages at once and records their outcomes at once
 * pays two fsyncs for 32 messages instead of 64).
 *
 * A batch claim is one IMMEDIATE transaction like a single claim: it walks the due
 * recipients in due order (the rcpt_due index), collects up to max distinct messages of
 * one account, moves each one's due recipients under the one lease token of the batch,
 * and loads them. A second handle waits for the write lock and then no longer sees any
 * of them as due, so batches from any number of handles never overlap.
 *
 * Renewals and releases go recipient by recipient (primary key lookups) under the lease
 * token, so a recipient that was recorded meanwhile, or whose lease was lost to another
 * worker, is left alone.
 */
#include "spool/spool_sqlite.h"

#include <stdlib.h>
#include <string.h>

/* How many due recipient rows a batch claim looks at, per message wanted, before it stops
 * looking (when other accounts' work is due first): a bound on the time the write lock is
 * held. */
#define SCAN_ROWS_PER_MESSAGE 8
#define SCAN_ROWS_MIN         256

static int seen(const int64_t *msgs, size_t n, int64_t msg);
static pigeon_err scan_due(pg_spool_sq *q, const pg_spool_claim_req *req, size_t max, int64_t *msgs,
                           size_t *found);

/* Nonzero if msg is among the first n of msgs (a message with several due recipients
 * appears once per recipient in the scan). */
static int seen(const int64_t *msgs, size_t n, int64_t msg)
{
    for (size_t i = n; i > 0; i--)
        if (msgs[i - 1] == msg)
            return 1;
    return 0;
}

/* Collects up to max messages with due work, oldest due first: of req->account, or when
 * it is NULL, of the account of the oldest due recipient (a batch is sent over one
 * connection, which serves one account). */
static pigeon_err scan_due(pg_spool_sq *q, const pg_spool_claim_req *req, size_t max, int64_t *msgs,
                           size_t *found)
{
    sqlite3_stmt *st = NULL;
    char *account = NULL;
    size_t budget = max * SCAN_ROWS_PER_MESSAGE + SCAN_ROWS_MIN;
    int rc = SQLITE_DONE;
    pigeon_err err = pg_spool_sq_prep(q, ST_CLAIM_SCAN, &st);
    *found = 0;
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, req->now_ms);
    pg_spool_sq_bind_text(st, 2, req->account);
    while (*found < max && budget-- > 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t msg = sqlite3_column_int64(st, 0);
        const char *acct = (const char *)sqlite3_column_text(st, 1);
        if (req->account == NULL && acct != NULL) {
            if (account == NULL && (account = strdup(acct)) == NULL) {
                err = pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
                break;
            }
            if (strcmp(acct, account) != 0)
                continue;
        }
        if (!seen(msgs, *found, msg))
            msgs[(*found)++] = msg;
    }
    sqlite3_reset(st);
    free(account);
    if (err == PIGEON_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = pg_spool_sq_err(q, rc, "finding due work");
    return err;
}

pigeon_err pg_spool_sq_claim_batch(void *be, const pg_spool_claim_req *req, size_t max,
                                   pigeon_spool_entry **jobs, size_t *count)
{
    pg_spool_sq *q = be;
    size_t found = 0;
    *count = 0;
    int64_t *msgs = calloc(max, sizeof *msgs);
    if (msgs == NULL)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err != PIGEON_OK) {
        free(msgs);
        return err;
    }
    err = scan_due(q, req, max, msgs, &found);
    if (err == PIGEON_OK && found > 0)
        err = pg_spool_sq_holder_id(q, req, &q->holder_id);
    for (size_t i = 0; err == PIGEON_OK && i < found; i++) {
        err = pg_spool_sq_claim_msg(q, req, msgs[i], &jobs[i]);
    }
    err = pg_spool_sq_tx_end(q, err);
    if (err != PIGEON_OK) {
        /* Rolled back: nothing was claimed, so none of the entries stands. */
        for (size_t i = 0; i < found; i++) {
            pigeon_spool_entry_free(jobs[i]);
            jobs[i] = NULL;
        }
        found = 0;
    }
    *count = found;
    free(msgs);
    return err;
}

/* Runs statement id (?1 recipient id, ?2 lease token, ?3 time) for every recipient of
 * the n jobs; held[j] (if not NULL) is set when a row of job j changed. */
static pigeon_err per_rcpt(pg_spool_sq *q, int id, pigeon_spool_entry *const *jobs, size_t n,
                           int64_t ms, unsigned char *held)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, id, &st);
    for (size_t j = 0; err == PIGEON_OK && j < n; j++) {
        if (held != NULL)
            held[j] = 0;
        for (size_t i = 0; err == PIGEON_OK && i < jobs[j]->rcpt_count; i++) {
            sqlite3_bind_int64(st, 1, jobs[j]->rcpts[i].id);
            sqlite3_bind_int64(st, 2, jobs[j]->lease_token);
            sqlite3_bind_int64(st, 3, ms);
            err = pg_spool_sq_step(q, st, "updating a lease");
            if (err == PIGEON_OK && held != NULL && sqlite3_changes(q->db) > 0)
                held[j] = 1;
        }
    }
    return err;
}

pigeon_err pg_spool_sq_renew_batch(void *be, pigeon_spool_entry *const *jobs, size_t n,
                                   int64_t until_ms, unsigned char *held)
{
    pg_spool_sq *q = be;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err == PIGEON_OK)
        err = per_rcpt(q, ST_RENEW_RCPT, jobs, n, until_ms, held);
    return pg_spool_sq_tx_end(q, err);
}

pigeon_err pg_spool_sq_release_batch(void *be, pigeon_spool_entry *const *jobs, size_t n,
                                     int64_t now_ms)
{
    pg_spool_sq *q = be;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err == PIGEON_OK)
        err = per_rcpt(q, ST_RELEASE_RCPT, jobs, n, now_ms, NULL);
    return pg_spool_sq_tx_end(q, err);
}

pigeon_err pg_spool_sq_record_batch(void *be, pigeon_spool_record_item *items, size_t n,
                                    int64_t now_ms)
{
    pg_spool_sq *q = be;
    if (pg_spool_sq_journaling(q))
        return pg_spool_sq_journal_add(q, items, n, now_ms);
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err != PIGEON_OK)
        return err;
    for (size_t i = 0; err == PIGEON_OK && i < n; i++) {
        items[i].lost = 0;
        err = pg_spool_sq_record_job(q, items[i].job, items[i].outcomes, items[i].n, now_ms,
                                     &items[i].lost);
    }
    return pg_spool_sq_tx_end(q, err);
}
