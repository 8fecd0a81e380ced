/*
 * spool_sqlite_work.c - the SQLite spool backend: claims, outcomes, administration and
 * reading bodies back (see spool_sqlite.c for the file format and spool_backend.h for
 * the contract).
 *
 * A claim is one IMMEDIATE transaction: find the message with the oldest due recipient
 * (due_ms <= now, account not throttled), move its due recipients to "in flight" under a
 * fresh lease token with due_ms = lease expiry, and load them. Two handles therefore
 * never claim the same recipient: the second waits for the first's write lock and then
 * no longer sees the recipients as due. Outcomes other than "delivered" are applied only
 * under the same lease token, so a worker whose lease expired cannot overwrite the work
 * of the one that took over.
 */
#include "spool/spool_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A body being read. */
typedef struct sq_reader {
    int64_t msg;        /* the message's row id */
    sqlite3_blob *blob; /* the open chunk, or NULL */
    int64_t seq;        /* which chunk blob is */
} sq_reader;

static char *column_dup(sqlite3_stmt *st, int col, int *nomem);
static pigeon_err load_message(pg_spool_sq *q, sqlite3_stmt *st, pigeon_spool_entry **out,
                               int64_t *rowid);
static pigeon_err load_counts(pg_spool_sq *q, int64_t msg, pigeon_spool_entry *e);
static pigeon_err load_rcpts(pg_spool_sq *q, sqlite3_stmt *st, pigeon_spool_entry *e);

/* A malloc'd copy of a text column; NULL for SQL NULL (or, setting *nomem, no memory). */
static char *column_dup(sqlite3_stmt *st, int col, int *nomem)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    if (s == NULL)
        return NULL;
    char *copy = strdup((const char *)s);
    if (copy == NULL)
        *nomem = 1;
    return copy;
}

/* ---- loading entries ---- */

/* Builds an entry from a row of MSG_COLS (starting at column 0); *rowid gets m.id. */
static pigeon_err load_message(pg_spool_sq *q, sqlite3_stmt *st, pigeon_spool_entry **out,
                               int64_t *rowid)
{
    int nomem = 0;
    pigeon_spool_entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    *rowid = sqlite3_column_int64(st, 0);
    const char *qid = (const char *)sqlite3_column_text(st, 1);
    snprintf(e->queue_id, sizeof e->queue_id, "%s", qid != NULL ? qid : "");
    e->message_id = column_dup(st, 2, &nomem);
    e->account = column_dup(st, 3, &nomem);
    e->mail_from = column_dup(st, 4, &nomem);
    e->size = sqlite3_column_int64(st, 5);
    e->created_ms = sqlite3_column_int64(st, 6);
    *out = e;
    if (nomem || e->message_id == NULL || e->account == NULL || e->mail_from == NULL)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    return PIGEON_OK;
}

static pigeon_err load_counts(pg_spool_sq *q, int64_t msg, pigeon_spool_entry *e)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, ST_COUNTS, &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, msg);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        if (state >= 0 && state < PIGEON_SPOOL_NSTATES)
            e->count[state] = (size_t)sqlite3_column_int64(st, 1);
        if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
            int64_t due = sqlite3_column_int64(st, 2);
            if (e->next_ms == 0 || due < e->next_ms)
                e->next_ms = due;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? PIGEON_OK : pg_spool_sq_err(q, rc, "counting recipients");
}

/* Fills one recipient from a row of RCPT_COLS. Returns nonzero when out of memory. */
static int fill_rcpt(sqlite3_stmt *st, pigeon_spool_rcpt *r)
{
    int nomem = 0;
    r->id = sqlite3_column_int64(st, 0);
    r->address = column_dup(st, 1, &nomem);
    r->state = (pigeon_spool_state)sqlite3_column_int(st, 2);
    r->attempts = sqlite3_column_int(st, 3);
    r->next_ms = sqlite3_column_int64(st, 4);
    r->lease_owner = column_dup(st, 5, &nomem);
    r->last_err = (pigeon_err)sqlite3_column_int(st, 6);
    r->smtp_code = sqlite3_column_int(st, 7);
    r->enhanced_code = column_dup(st, 8, &nomem);
    r->text = column_dup(st, 9, &nomem);
    r->updated_ms = sqlite3_column_int64(st, 10);
    return nomem || r->address == NULL;
}

/* Appends the rows of a bound RCPT_COLS statement to e->rcpts, and resets it. */
static pigeon_err load_rcpts(pg_spool_sq *q, sqlite3_stmt *st, pigeon_spool_entry *e)
{
    size_t cap = 0;
    int rc;
    pigeon_err err = PIGEON_OK;
    while (err == PIGEON_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (e->rcpt_count == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            pigeon_spool_rcpt *n = realloc(e->rcpts, ncap * sizeof *n);
            if (n == NULL) {
                err = pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
                break;
            }
            e->rcpts = n;
            cap = ncap;
        }
        pigeon_spool_rcpt *r = &e->rcpts[e->rcpt_count++];
        memset(r, 0, sizeof *r);
        if (fill_rcpt(st, r))
            err = pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    }
    if (err == PIGEON_OK && rc != SQLITE_DONE)
        err = pg_spool_sq_err(q, rc, "reading recipients");
    sqlite3_reset(st);
    return err;
}

/* ---- claims ---- */

/* Finds the message with the oldest due recipient; *msg = 0 when nothing is due. */
static pigeon_err claim_find(pg_spool_sq *q, const pg_spool_claim_req *req, int64_t *msg)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, ST_CLAIM_FIND, &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, req->now_ms);
    pg_spool_sq_bind_text(st, 2, req->account);
    int rc = sqlite3_step(st);
    *msg = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? PIGEON_OK
                                                 : pg_spool_sq_err(q, rc, "finding due work");
}

pigeon_err pg_spool_sq_holder_id(pg_spool_sq *q, const pg_spool_claim_req *req, int64_t *id)
{
    sqlite3_stmt *st = NULL;
    const pg_spool_holder *h = req->holder;
    *id = 0;
    if (h == NULL)
        return PIGEON_OK; /* no holder known: the lease only expires */
    for (int k = 0; k < 2; k++) {
        pigeon_err err = pg_spool_sq_prep(q, k == 0 ? ST_HOLDER_ADD : ST_HOLDER_ID, &st);
        if (err != PIGEON_OK)
            return err;
        pg_spool_sq_bind_text(st, 1, h->host);
        pg_spool_sq_bind_text(st, 2, h->boot_id);
        sqlite3_bind_int64(st, 3, h->pid);
        sqlite3_bind_int64(st, 4, h->started);
        if (k == 0) {
            err = pg_spool_sq_step(q, st, "recording the lease holder");
            if (err != PIGEON_OK)
                return err;
            continue;
        }
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *id = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        if (rc != SQLITE_ROW)
            return pg_spool_sq_err(q, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc,
                                   "finding the lease holder");
    }
    return PIGEON_OK;
}

pigeon_err pg_spool_sq_holders(void *be, const char *host,
                               int (*fn)(void *ctx, const pg_spool_holder *holder), void *ctx)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_DONE;
    pigeon_err err = pg_spool_sq_tx_begin(q, 0);
    if (err == PIGEON_OK)
        err = pg_spool_sq_prep(q, ST_HOLDERS, &st);
    if (err != PIGEON_OK)
        return pg_spool_sq_tx_end(q, err);
    pg_spool_sq_bind_text(st, 1, host);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *hh = (const char *)sqlite3_column_text(st, 1);
        const char *boot = (const char *)sqlite3_column_text(st, 2);
        pg_spool_holder h = {sqlite3_column_int64(st, 0), hh != NULL ? hh : "",
                             boot != NULL ? boot : "", sqlite3_column_int64(st, 3),
                             sqlite3_column_int64(st, 4)};
        if (fn(ctx, &h) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        err = pg_spool_sq_err(q, rc, "listing lease holders");
    return pg_spool_sq_tx_end(q, err);
}

pigeon_err pg_spool_sq_reclaim(void *be, int64_t holder_id, int64_t now_ms, size_t *count)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    *count = 0;
    int64_t upto = 0;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    /* First what the holder recorded in its journal but did not apply yet: a message it
     * sent is not sent again. */
    if (err == PIGEON_OK)
        err = pg_spool_sq_journal_apply(q, holder_id, &upto);
    if (err == PIGEON_OK)
        err = pg_spool_sq_prep(q, ST_RECLAIM, &st);
    if (err == PIGEON_OK) {
        sqlite3_bind_int64(st, 1, holder_id);
        sqlite3_bind_int64(st, 2, now_ms);
        err = pg_spool_sq_step(q, st, "giving back leases");
        *count = (size_t)sqlite3_changes(q->db);
    }
    if (err == PIGEON_OK)
        err = pg_spool_sq_prep(q, ST_HOLDER_DEL, &st);
    if (err == PIGEON_OK) {
        sqlite3_bind_int64(st, 1, holder_id);
        err = pg_spool_sq_step(q, st, "forgetting a lease holder");
    }
    err = pg_spool_sq_tx_end(q, err);
    return err == PIGEON_OK ? pg_spool_sq_journal_forget(q, holder_id, upto) : err;
}

/* Loads the bytes of a claimed message of e->size bytes into e->body (and its hash), in
 * the claim's transaction. A body whose chunks do not add up to its size is left out
 * (e->body NULL): reading it from the store then reports the damage. */
static pigeon_err load_inline(pg_spool_sq *q, int64_t msg, pigeon_spool_entry *e)
{
    sqlite3_stmt *st = NULL;
    size_t size = (size_t)e->size, got = 0;
    int rc, ok = 1;
    pigeon_err err = pg_spool_sq_prep(q, ST_INLINE_BODY, &st);
    unsigned char *body = err == PIGEON_OK ? malloc(size > 0 ? size : 1) : NULL;
    if (err == PIGEON_OK && body == NULL)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, msg);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *data = sqlite3_column_blob(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        ok = ok && len <= size - got && (data != NULL || len == 0) &&
             sqlite3_column_bytes(st, 1) == 32;
        if (ok && len > 0)
            memcpy(body + got, data, len);
        if (ok) {
            got += len;
            memcpy(e->body_sha256, sqlite3_column_blob(st, 1), 32);
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(body);
        return pg_spool_sq_err(q, rc, "reading a claimed message");
    }
    if (ok && got == size)
        e->body = body;
    else
        free(body);
    return PIGEON_OK;
}

/* The due recipients of message msg, read with all the others (for the counts): each due
 * one is appended to e->rcpts as it will be once claimed, the counts and next_ms are
 * those after the claim, and ids[] (room for n) gets the row ids to update. */
static pigeon_err claim_read(pg_spool_sq *q, const pg_spool_claim_req *req, int64_t msg,
                             pigeon_spool_entry *e)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc;
    pigeon_err err = pg_spool_sq_prep(q, ST_RCPTS_ALL, &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, msg);
    while (err == PIGEON_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int due_null = sqlite3_column_type(st, 4) == SQLITE_NULL;
        int64_t due = sqlite3_column_int64(st, 4);
        int state = sqlite3_column_int(st, 2);
        if (due_null || due > req->now_ms) { /* not claimed: counted as it is */
            if (state >= 0 && state < PIGEON_SPOOL_NSTATES)
                e->count[state]++;
            if (!due_null && (e->next_ms == 0 || due < e->next_ms))
                e->next_ms = due;
            continue;
        }
        if (e->rcpt_count == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            pigeon_spool_rcpt *n = realloc(e->rcpts, ncap * sizeof *n);
            if (n == NULL) {
                err = pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
                break;
            }
            e->rcpts = n;
            cap = ncap;
        }
        pigeon_spool_rcpt *r = &e->rcpts[e->rcpt_count++];
        memset(r, 0, sizeof *r);
        int nomem = fill_rcpt(st, r);
        free((char *)r->lease_owner);
        r->lease_owner = strdup(req->owner);
        r->state = PIGEON_SPOOL_INFLIGHT;
        r->attempts++;
        r->next_ms = req->until_ms;
        r->updated_ms = req->now_ms;
        e->count[PIGEON_SPOOL_INFLIGHT]++;
        if (e->next_ms == 0 || req->until_ms < e->next_ms)
            e->next_ms = req->until_ms;
        if (r->attempts > e->attempt)
            e->attempt = r->attempts;
        if (nomem || r->lease_owner == NULL)
            err = pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    }
    if (err == PIGEON_OK && rc != SQLITE_DONE)
        err = pg_spool_sq_err(q, rc, "reading recipients");
    sqlite3_reset(st);
    return err;
}

/* Moves the recipients claim_read found under the lease: one statement per recipient by
 * its row id. A statement that changes at most one row needs no statement journal (a
 * multi-row UPDATE inside a transaction copies every page it touches into one first). */
static pigeon_err claim_take(pg_spool_sq *q, const pg_spool_claim_req *req,
                             const pigeon_spool_entry *e)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, ST_CLAIM_TAKE, &st);
    for (size_t i = 0; err == PIGEON_OK && i < e->rcpt_count; i++) {
        sqlite3_bind_int64(st, 1, e->rcpts[i].id);
        pg_spool_sq_bind_text(st, 2, req->owner);
        sqlite3_bind_int64(st, 3, req->token);
        sqlite3_bind_int64(st, 4, req->until_ms);
        sqlite3_bind_int64(st, 5, req->now_ms);
        sqlite3_bind_int64(st, 6, q->holder_id);
        err = pg_spool_sq_step(q, st, "claiming recipients");
        if (err == PIGEON_OK && sqlite3_changes(q->db) != 1)
            err = pg_spool_fail(q->diag, PIGEON_ERR_CORRUPT,
                                "spool: a due recipient of %s could not be claimed", e->queue_id);
    }
    return err;
}

/* The message row of a claim, and with want > 0 the bytes of a body of up to want bytes
 * stored in one chunk (one statement: the first chunk is joined, read only when small). */
static pigeon_err claim_message(pg_spool_sq *q, int64_t msg, size_t want, pigeon_spool_entry **out)
{
    sqlite3_stmt *st = NULL;
    int64_t rowid = 0;
    pigeon_err err = pg_spool_sq_prep(q, want > 0 ? ST_MSG_BODY_BY_ID : ST_MSG_BY_ID, &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, msg);
    if (want > 0)
        sqlite3_bind_int64(st, 2, (int64_t)want);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return pg_spool_sq_err(q, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc,
                               "loading a claimed message");
    }
    err = load_message(q, st, out, &rowid);
    pigeon_spool_entry *e = *out;
    if (err == PIGEON_OK && want > 0 && sqlite3_column_type(st, 8) != SQLITE_NULL) {
        /* A body that does not match its size is left out: reading it from the store then
         * reports the damage. */
        const void *data = sqlite3_column_blob(st, 8);
        size_t len = (size_t)sqlite3_column_bytes(st, 8);
        if (sqlite3_column_bytes(st, 7) == 32 && e->size >= 0 && len == (size_t)e->size &&
            (data != NULL || len == 0)) {
            e->body = malloc(len > 0 ? len : 1);
            if (e->body == NULL)
                err = pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
            else {
                memcpy(e->body, data, len);
                memcpy(e->body_sha256, sqlite3_column_blob(st, 7), 32);
            }
        }
    }
    sqlite3_reset(st);
    return err;
}

/* Claims message msg's due recipients under req's lease and builds the claim's entry (in
 * a transaction the caller holds): three statements for a message of one recipient. */
pigeon_err pg_spool_sq_claim_msg(pg_spool_sq *q, const pg_spool_claim_req *req, int64_t msg,
                                 pigeon_spool_entry **job)
{
    size_t one = req->inline_max < PG_SPOOL_CHUNK ? req->inline_max : PG_SPOOL_CHUNK;
    pigeon_err err = claim_message(q, msg, one, job);
    pigeon_spool_entry *e = *job;
    if (err == PIGEON_OK)
        err = claim_read(q, req, msg, e);
    if (err == PIGEON_OK)
        err = claim_take(q, req, e);
    if (err != PIGEON_OK)
        return err;
    e->lease_owner = strdup(req->owner);
    e->lease_until_ms = req->until_ms;
    e->lease_token = req->token;
    if (e->lease_owner == NULL)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    /* Bodies of several chunks wanted inline (not the daemon's: it asks for less). */
    if (e->body == NULL && req->inline_max > one && e->size >= 0 &&
        (uint64_t)e->size <= req->inline_max)
        return load_inline(q, msg, e);
    return PIGEON_OK;
}

pigeon_err pg_spool_sq_claim(void *be, const pg_spool_claim_req *req, pigeon_spool_entry **job)
{
    pg_spool_sq *q = be;
    int64_t msg = 0;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err != PIGEON_OK)
        return err;
    err = claim_find(q, req, &msg);
    if (err == PIGEON_OK && msg != 0)
        err = pg_spool_sq_holder_id(q, req, &q->holder_id);
    if (err == PIGEON_OK && msg != 0)
        err = pg_spool_sq_claim_msg(q, req, msg, job);
    err = pg_spool_sq_tx_end(q, err);
    if (err != PIGEON_OK) {
        pigeon_spool_entry_free(*job);
        *job = NULL;
    }
    return err;
}

/* Binds the lease identity (queue id, token) used by renew and release. */
static pigeon_err lease_update(pg_spool_sq *q, int id, const pigeon_spool_entry *job, int64_t ms,
                               int *changed)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err == PIGEON_OK)
        err = pg_spool_sq_prep(q, id, &st);
    if (err == PIGEON_OK) {
        pg_spool_sq_bind_text(st, 1, job->queue_id);
        sqlite3_bind_int64(st, 2, job->lease_token);
        sqlite3_bind_int64(st, 3, ms);
        err = pg_spool_sq_step(q, st, "updating a lease");
        *changed = sqlite3_changes(q->db);
    }
    return pg_spool_sq_tx_end(q, err);
}

pigeon_err pg_spool_sq_renew(void *be, const pigeon_spool_entry *job, int64_t until_ms)
{
    pg_spool_sq *q = be;
    int changed = 0;
    pigeon_err err = lease_update(q, ST_RENEW, job, until_ms, &changed);
    if (err == PIGEON_OK && changed == 0)
        err = pg_spool_fail(q->diag, PIGEON_ERR_STATE,
                            "spool: the lease on %s is lost or has nothing left in flight",
                            job->queue_id);
    return err;
}

pigeon_err pg_spool_sq_release(void *be, const pigeon_spool_entry *job, int64_t now_ms)
{
    int changed = 0;
    return lease_update(be, ST_RELEASE_LEASE, job, now_ms, &changed);
}

pigeon_err pg_spool_sq_record_job(pg_spool_sq *q, const pigeon_spool_entry *job,
                                  const pigeon_spool_outcome *outcomes, size_t n, int64_t now_ms,
                                  size_t *lost)
{
    pigeon_err err = PIGEON_OK;
    for (size_t i = 0; err == PIGEON_OK && i < n; i++)
        err = pg_spool_sq_apply(q, job->rcpts[outcomes[i].rcpt].id, job->lease_token, &outcomes[i],
                                now_ms, lost);
    /* A message whose every recipient was delivered has nothing left to do. */
    return err == PIGEON_OK ? pg_spool_sq_remove_if_done(q, job->queue_id) : err;
}

pigeon_err pg_spool_sq_record(void *be, const pigeon_spool_entry *job,
                              const pigeon_spool_outcome *outcomes, size_t n, int64_t now_ms,
                              size_t *lost)
{
    pg_spool_sq *q = be;
    if (pg_spool_sq_journaling(q)) {
        pigeon_spool_record_item item = {job, outcomes, n, 0};
        pigeon_err err = pg_spool_sq_journal_add(q, &item, 1, now_ms);
        *lost = item.lost;
        return err;
    }
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err != PIGEON_OK)
        return err;
    err = pg_spool_sq_record_job(q, job, outcomes, n, now_ms, lost);
    return pg_spool_sq_tx_end(q, err);
}

pigeon_err pg_spool_sq_throttle(void *be, const char *account, int64_t until_ms, const char *reason)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err == PIGEON_OK)
        err = pg_spool_sq_prep(q, ST_THROTTLE, &st);
    if (err == PIGEON_OK) {
        pg_spool_sq_bind_text(st, 1, account);
        sqlite3_bind_int64(st, 2, until_ms);
        pg_spool_sq_bind_text(st, 3, reason);
        err = pg_spool_sq_step(q, st, "throttling an account");
    }
    return pg_spool_sq_tx_end(q, err);
}

/* ---- administration ---- */

pigeon_err pg_spool_sq_list(void *be, const char *account,
                            int (*fn)(void *ctx, const pigeon_spool_entry *entry), void *ctx)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    int rc;
    pigeon_err err = pg_spool_sq_tx_begin(q, 0);
    if (err == PIGEON_OK)
        err = pg_spool_sq_prep(q, ST_LIST, &st);
    if (err != PIGEON_OK)
        return pg_spool_sq_tx_end(q, err);
    pg_spool_sq_bind_text(st, 1, account);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        pigeon_spool_entry e;
        memset(&e, 0, sizeof e);
        const char *qid = (const char *)sqlite3_column_text(st, 1);
        snprintf(e.queue_id, sizeof e.queue_id, "%s", qid != NULL ? qid : "");
        e.message_id = (const char *)sqlite3_column_text(st, 2);
        e.account = (const char *)sqlite3_column_text(st, 3);
        e.mail_from = (const char *)sqlite3_column_text(st, 4);
        e.size = sqlite3_column_int64(st, 5);
        e.created_ms = sqlite3_column_int64(st, 6);
        for (int s = 0; s < PIGEON_SPOOL_NSTATES; s++)
            e.count[s] = (size_t)sqlite3_column_int64(st, 7 + s);
        e.next_ms = sqlite3_column_int64(st, 7 + PIGEON_SPOOL_NSTATES);
        if (fn(ctx, &e) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        err = pg_spool_sq_err(q, rc, "listing the spool");
    return pg_spool_sq_tx_end(q, err);
}

/* Loads the message with this queue id (entry, counts); *rowid 0 when there is none. */
static pigeon_err find_message(pg_spool_sq *q, const char *queue_id, pigeon_spool_entry **out,
                               int64_t *rowid)
{
    sqlite3_stmt *st = NULL;
    *rowid = 0;
    pigeon_err err = pg_spool_sq_prep(q, ST_MSG_BY_QID, &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, queue_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        err = out != NULL ? load_message(q, st, out, rowid) : PIGEON_OK;
    if (rc == SQLITE_ROW && out == NULL)
        *rowid = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return pg_spool_sq_err(q, rc, "finding a message");
    if (err == PIGEON_OK && *rowid == 0)
        err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "spool: no message %s", queue_id);
    return err;
}

pigeon_err pg_spool_sq_show(void *be, const char *queue_id, pigeon_spool_entry **out)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    int64_t rowid = 0;
    pigeon_err err = pg_spool_sq_tx_begin(q, 0);
    if (err == PIGEON_OK)
        err = find_message(q, queue_id, out, &rowid);
    if (err == PIGEON_OK)
        err = load_counts(q, rowid, *out);
    if (err == PIGEON_OK)
        err = pg_spool_sq_prep(q, ST_RCPTS_ALL, &st);
    if (err == PIGEON_OK) {
        sqlite3_bind_int64(st, 1, rowid);
        err = load_rcpts(q, st, *out);
    }
    err = pg_spool_sq_tx_end(q, err);
    if (err != PIGEON_OK) {
        pigeon_spool_entry_free(*out);
        *out = NULL;
    }
    return err;
}

pigeon_err pg_spool_sq_retry(void *be, const char *queue_id, int include_failed, int64_t now_ms,
                             size_t *count)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    int64_t rowid = 0;
    *count = 0;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err == PIGEON_OK && queue_id != NULL)
        err = find_message(q, queue_id, NULL, &rowid);
    if (err == PIGEON_OK)
        err = pg_spool_sq_prep(q, ST_RETRY, &st);
    if (err == PIGEON_OK) {
        if (queue_id != NULL)
            sqlite3_bind_int64(st, 1, rowid);
        else
            sqlite3_bind_null(st, 1);
        sqlite3_bind_int64(st, 2, now_ms);
        sqlite3_bind_int(st, 3, include_failed != 0);
        err = pg_spool_sq_step(q, st, "rescheduling recipients");
        *count = (size_t)sqlite3_changes(q->db);
    }
    return pg_spool_sq_tx_end(q, err);
}

pigeon_err pg_spool_sq_remove(void *be, const char *queue_id)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err == PIGEON_OK)
        err = pg_spool_sq_prep(q, ST_DELETE, &st);
    if (err == PIGEON_OK) {
        pg_spool_sq_bind_text(st, 1, queue_id);
        err = pg_spool_sq_step(q, st, "deleting a message");
        if (err == PIGEON_OK && sqlite3_changes(q->db) == 0)
            err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "spool: no message %s", queue_id);
    }
    return pg_spool_sq_tx_end(q, err);
}

pigeon_err pg_spool_sq_purge_failed(void *be, size_t *count)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    *count = 0;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err == PIGEON_OK)
        err = pg_spool_sq_prep(q, ST_PURGE, &st);
    if (err == PIGEON_OK) {
        err = pg_spool_sq_step(q, st, "purging failed messages");
        *count = (size_t)sqlite3_changes(q->db);
    }
    return pg_spool_sq_tx_end(q, err);
}

/* Runs a one-row statement with an optional time parameter; its columns go to v[]. */
static pigeon_err stat_row(pg_spool_sq *q, int id, int64_t now_ms, int64_t *v, int ncols)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, id, &st);
    if (err != PIGEON_OK)
        return err;
    if (sqlite3_bind_parameter_count(st) > 0)
        sqlite3_bind_int64(st, 1, now_ms);
    int rc = sqlite3_step(st);
    for (int i = 0; rc == SQLITE_ROW && i < ncols; i++)
        v[i] = sqlite3_column_int64(st, i);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? PIGEON_OK : pg_spool_sq_err(q, rc, "reading statistics");
}

static pigeon_err stat_states(pg_spool_sq *q, pigeon_spool_stats *out)
{
    sqlite3_stmt *st = NULL;
    int rc;
    pigeon_err err = pg_spool_sq_prep(q, ST_STAT_RCPT, &st);
    if (err != PIGEON_OK)
        return err;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        if (state >= 0 && state < PIGEON_SPOOL_NSTATES)
            out->rcpts[state] = (size_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? PIGEON_OK : pg_spool_sq_err(q, rc, "reading statistics");
}

pigeon_err pg_spool_sq_stats(void *be, int64_t now_ms, pigeon_spool_stats *out)
{
    pg_spool_sq *q = be;
    int64_t v[2] = {0, 0}, stale = 0, throttled = 0, oldest = 0;
    pigeon_err err = pg_spool_sq_tx_begin(q, 0);
    if (err == PIGEON_OK)
        err = stat_row(q, ST_STAT_MSG, now_ms, v, 2);
    if (err == PIGEON_OK)
        err = stat_states(q, out);
    if (err == PIGEON_OK)
        err = stat_row(q, ST_STAT_STALE, now_ms, &stale, 1);
    if (err == PIGEON_OK)
        err = stat_row(q, ST_STAT_THROTTLED, now_ms, &throttled, 1);
    if (err == PIGEON_OK)
        err = stat_row(q, ST_STAT_OLDEST, now_ms, &oldest, 1);
    out->messages = (size_t)v[0];
    out->bytes = v[1];
    out->stale_leases = (size_t)stale;
    out->throttled_accounts = (size_t)throttled;
    out->oldest_pending_ms = oldest;
    return pg_spool_sq_tx_end(q, err);
}

/* ---- reading bodies ---- */

pigeon_err pg_spool_sq_body_open(void *be, const char *queue_id, void **reader, int64_t *size,
                                 unsigned char sha256[32])
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, ST_BODY_MSG, &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, queue_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 2) != 32)
        err = pg_spool_fail(q->diag, PIGEON_ERR_CORRUPT, "spool: message %s has no hash", queue_id);
    else if (rc == SQLITE_DONE)
        err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "spool: no message %s", queue_id);
    else if (rc != SQLITE_ROW)
        err = pg_spool_sq_err(q, rc, "opening a message");
    sq_reader *r = err == PIGEON_OK ? calloc(1, sizeof *r) : NULL;
    if (err == PIGEON_OK && r == NULL)
        err = pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    if (err == PIGEON_OK) {
        r->msg = sqlite3_column_int64(st, 0);
        r->seq = -1;
        *size = sqlite3_column_int64(st, 1);
        memcpy(sha256, sqlite3_column_blob(st, 2), 32);
        *reader = r;
    }
    sqlite3_reset(st);
    return err;
}

/* Opens chunk seq of the body as an incremental blob. */
static pigeon_err open_chunk(pg_spool_sq *q, sq_reader *r, int64_t seq)
{
    sqlite3_stmt *st = NULL;
    if (r->blob != NULL) {
        sqlite3_blob_close(r->blob);
        r->blob = NULL;
    }
    pigeon_err err = pg_spool_sq_prep(q, ST_BODY_CHUNK, &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, r->msg);
    sqlite3_bind_int64(st, 2, seq);
    int rc = sqlite3_step(st);
    int64_t rowid = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND,
                             "spool: the message was deleted while being read");
    if (rc != SQLITE_ROW)
        return pg_spool_sq_err(q, rc, "reading a message");
    rc = sqlite3_blob_open(q->db, "main", "body", "data", rowid, 0, &r->blob);
    if (rc != SQLITE_OK)
        return pg_spool_sq_err(q, rc, "reading a message");
    r->seq = seq;
    return PIGEON_OK;
}

pigeon_err pg_spool_sq_body_read(void *be, void *reader, int64_t offset, void *buf, size_t cap,
                                 size_t *n)
{
    pg_spool_sq *q = be;
    sq_reader *r = reader;
    int64_t seq = offset / PG_SPOOL_CHUNK;
    int within = (int)(offset % PG_SPOOL_CHUNK);
    *n = 0;
    if (seq != r->seq || r->blob == NULL) {
        pigeon_err err = open_chunk(q, r, seq);
        if (err != PIGEON_OK)
            return err;
    }
    int len = sqlite3_blob_bytes(r->blob);
    if (len <= within)
        return PIGEON_OK; /* short chunk: the generic layer reports the damage */
    size_t take = (size_t)(len - within) < cap ? (size_t)(len - within) : cap;
    int rc = sqlite3_blob_read(r->blob, buf, (int)take, within);
    if (rc != SQLITE_OK) {
        sqlite3_blob_close(r->blob);
        r->blob = NULL;
        if (rc == SQLITE_ABORT)
            return pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND,
                                 "spool: the message was deleted while being read");
        return pg_spool_sq_err(q, rc, "reading a message");
    }
    *n = take;
    return PIGEON_OK;
}

void pg_spool_sq_body_close(void *be, void *reader)
{
    sq_reader *r = reader;
    (void)be;
    if (r == NULL)
        return;
    sqlite3_blob_close(r->blob);
    free(r);
}
