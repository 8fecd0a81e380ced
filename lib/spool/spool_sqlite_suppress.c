/*
 * spool_sqlite_suppress.c - the suppression list in the SQLite spool (see
 * pigeon/suppress.h and spool/spool_suppress.h).
 *
 * Two tables beside the queue's, created on first use: suppression, keyed by (key,
 * account) WITHOUT ROWID so that a check is one seek in the primary key's b-tree for both
 * the account's entry and the global one; and suppression_soft, the soft-bounce events,
 * indexed by (key, account, at_ms) for the window count. Statements are prepared per
 * call; a batch check prepares once and steps n times inside one read transaction.
 */
#include <stdio.h>
#include <string.h>

#include "spool/spool_sqlite.h"
#include "spool/spool_suppress.h"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS suppression ("
    " key TEXT NOT NULL, account TEXT NOT NULL, address TEXT NOT NULL,"
    " reason INTEGER NOT NULL, status TEXT NOT NULL DEFAULT '',"
    " diagnostic TEXT NOT NULL DEFAULT '', queue_id TEXT NOT NULL DEFAULT '',"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY (key, account)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS suppression_account ON suppression(account, key);"
    "CREATE TABLE IF NOT EXISTS suppression_soft ("
    " key TEXT NOT NULL, account TEXT NOT NULL, at_ms INTEGER NOT NULL,"
    " status TEXT NOT NULL DEFAULT '', diagnostic TEXT NOT NULL DEFAULT '',"
    " queue_id TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS suppression_soft_key ON suppression_soft(key, account, at_ms);";

static pigeon_err ensure(pg_spool_sq *q)
{
    return pg_spool_sq_side_exec(q, schema, "creating the suppression tables");
}

/* Prepares sql, creating the tables when they are missing (the first use of a file). */
static pigeon_err prepare(pg_spool_sq *q, const char *sql, sqlite3_stmt **st)
{
    return pg_spool_sq_side_prepare(q, sql, st, ensure, "preparing a suppression statement");
}

/* Prepares a read: *st stays NULL when the tables do not exist yet (nothing was ever
 * listed), without creating them, so that a read-only handle can check. */
static pigeon_err prepare_read(pg_spool_sq *q, const char *sql, sqlite3_stmt **st)
{
    *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, sql, -1, st, NULL);
    if (rc == SQLITE_ERROR && strstr(sqlite3_errmsg(q->db), "no such table") != NULL)
        return PIGEON_OK;
    return rc == SQLITE_OK ? PIGEON_OK
                           : pg_spool_sq_err(q, rc, "preparing a suppression statement");
}

/* Runs a statement that returns no rows and finalizes it. */
static pigeon_err run(pg_spool_sq *q, sqlite3_stmt *st, const char *what)
{
    return pg_spool_sq_side_run(q, st, what);
}

/* A transaction of our own unless the caller's batch is open. */
static pigeon_err tx_begin(pg_spool_sq *q, int write)
{
    return q->in_batch ? PIGEON_OK : pg_spool_sq_tx_begin(q, write);
}

static pigeon_err tx_end(pg_spool_sq *q, pigeon_err err)
{
    return q->in_batch ? err : pg_spool_sq_tx_end(q, err);
}

/* Upsert; nothing on conflict when keep (a soft bounce never replaces an entry). */
static pigeon_err upsert(pg_spool_sq *q, const pg_spool_suppress_row *r, int keep)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err =
        prepare(q,
                keep ? "INSERT INTO suppression(key, account, address, reason, status, diagnostic,"
                       " queue_id, created_ms, updated_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?8)"
                       " ON CONFLICT(key, account) DO NOTHING"
                     : "INSERT INTO suppression(key, account, address, reason, status, diagnostic,"
                       " queue_id, created_ms, updated_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?8)"
                       " ON CONFLICT(key, account) DO UPDATE SET reason = excluded.reason,"
                       " status = excluded.status, diagnostic = excluded.diagnostic,"
                       " queue_id = excluded.queue_id, updated_ms = excluded.updated_ms",
                &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, r->key);
    pg_spool_sq_bind_text(st, 2, r->account);
    pg_spool_sq_bind_text(st, 3, r->address);
    sqlite3_bind_int(st, 4, (int)r->reason);
    pg_spool_sq_bind_text(st, 5, r->status);
    pg_spool_sq_bind_text(st, 6, r->diagnostic);
    pg_spool_sq_bind_text(st, 7, r->queue_id);
    sqlite3_bind_int64(st, 8, r->created_ms);
    return run(q, st, "storing a suppression");
}

static pigeon_err sq_add(void *be, const pg_spool_suppress_row *row)
{
    return upsert(be, row, 0);
}

/* Step 1 of a soft bounce: the event, and forgetting events older than the window. */
static pigeon_err soft_event(pg_spool_sq *q, const pg_spool_suppress_row *r, int64_t since_ms)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q,
                             "INSERT INTO suppression_soft(key, account, at_ms, status,"
                             " diagnostic, queue_id) VALUES (?,?,?,?,?,?)",
                             &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, r->key);
    pg_spool_sq_bind_text(st, 2, r->account);
    sqlite3_bind_int64(st, 3, r->created_ms);
    pg_spool_sq_bind_text(st, 4, r->status);
    pg_spool_sq_bind_text(st, 5, r->diagnostic);
    pg_spool_sq_bind_text(st, 6, r->queue_id);
    if ((err = run(q, st, "recording a soft bounce")) != PIGEON_OK)
        return err;
    err =
        prepare(q, "DELETE FROM suppression_soft WHERE key = ? AND account = ? AND at_ms < ?", &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, r->key);
    pg_spool_sq_bind_text(st, 2, r->account);
    sqlite3_bind_int64(st, 3, since_ms);
    return run(q, st, "forgetting old soft bounces");
}

/* Step 2: the events since the window's start, this one's and any dated after it (two
 * soft bounces at the same moment from clocks a millisecond apart count each other,
 * whichever is stored last). */
static pigeon_err soft_count(pg_spool_sq *q, const pg_spool_suppress_row *r, int64_t since_ms,
                             int64_t *count)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q,
                             "SELECT count(*) FROM suppression_soft WHERE key = ? AND"
                             " account = ? AND at_ms >= ?",
                             &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, r->key);
    pg_spool_sq_bind_text(st, 2, r->account);
    sqlite3_bind_int64(st, 3, since_ms);
    int rc = sqlite3_step(st);
    *count = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? PIGEON_OK : pg_spool_sq_err(q, rc, "counting soft bounces");
}

static pigeon_err sq_soft(void *be, const pg_spool_suppress_row *row, int64_t since_ms, int limit,
                          int *suppressed)
{
    pg_spool_sq *q = be;
    int64_t count = 0;
    pigeon_err err = tx_begin(q, 1);
    if (err != PIGEON_OK)
        return err;
    err = soft_event(q, row, since_ms);
    if (err == PIGEON_OK)
        err = soft_count(q, row, since_ms, &count);
    if (err == PIGEON_OK && count >= limit) {
        err = upsert(q, row, 1);
        *suppressed = err == PIGEON_OK;
    }
    return tx_end(q, err);
}

static pigeon_err remove_from(pg_spool_sq *q, const char *sql, const char *account, const char *key,
                              size_t *count)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q, sql, &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, key);
    pg_spool_sq_bind_text(st, 2, account);
    err = run(q, st, "removing a suppression");
    if (err == PIGEON_OK)
        *count += (size_t)sqlite3_changes(q->db);
    return err;
}

static pigeon_err sq_remove(void *be, const char *account, const char *key, size_t *count)
{
    pg_spool_sq *q = be;
    *count = 0;
    pigeon_err err = tx_begin(q, 1);
    if (err != PIGEON_OK)
        return err;
    err = remove_from(q, "DELETE FROM suppression WHERE key = ? AND account = ?", account, key,
                      count);
    if (err == PIGEON_OK)
        err = remove_from(q, "DELETE FROM suppression_soft WHERE key = ? AND account = ?", account,
                          key, count);
    return tx_end(q, err);
}

/* Looks up one key with the prepared statement (reset after). */
static pigeon_err check_one(pg_spool_sq *q, sqlite3_stmt *st, const char *key, const char *exact,
                            pigeon_suppress_hit *hit)
{
    pg_spool_sq_bind_text(st, 1, key);
    pg_spool_sq_bind_text(st, 3, exact);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        hit->reason = (pigeon_suppress_reason)sqlite3_column_int(st, 0);
        const unsigned char *acc = sqlite3_column_text(st, 1);
        hit->global = acc != NULL && strcmp((const char *)acc, "*") == 0;
        const unsigned char *status = sqlite3_column_text(st, 2);
        snprintf(hit->status, sizeof hit->status, "%s", status != NULL ? (const char *)status : "");
        hit->created_ms = sqlite3_column_int64(st, 3);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? PIGEON_OK : pg_spool_sq_err(q, rc, "checking a suppression");
}

/* The check's statement, kept in the handle's cache (a check is the hot path of every
 * send, merge row and claim; parsing it each time would cost more than the lookup).
 * *st stays NULL, and nothing is cached, while the table does not exist. */
static pigeon_err check_stmt(pg_spool_sq *q, sqlite3_stmt **st)
{
    /* The account's own entry first: the compound runs its parts in order and stops at
     * the first row, two primary-key seeks and no sort (an ORDER BY would build a
     * temporary b-tree, with its own pager, at every check). */
    static const char sql[] =
        "SELECT reason, account, status, created_ms FROM suppression WHERE key = ?1 AND"
        " account = ?2 AND (?3 IS NULL OR address = ?3)"
        " UNION ALL SELECT reason, account, status, created_ms FROM suppression WHERE"
        " key = ?1 AND account = '*' AND (?3 IS NULL OR address = ?3) LIMIT 1";
    *st = q->stmt[ST_SUPPRESS_CHECK];
    if (*st != NULL)
        return PIGEON_OK;
    /* A spool without the table (nobody ever suppressed anything) is the common case:
     * failing to prepare costs a parse each time, so the miss is remembered until the
     * schema changes (another process creating the table changes the cookie). */
    int64_t cookie = q->suppress_absent > 0 ? pg_spool_sq_schema_cookie(q) : -1;
    if (cookie >= 0 && cookie + 1 == q->suppress_absent)
        return PIGEON_OK;
    int rc = sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc == SQLITE_ERROR && strstr(sqlite3_errmsg(q->db), "no such table") != NULL) {
        cookie = pg_spool_sq_schema_cookie(q);
        q->suppress_absent = cookie >= 0 ? cookie + 1 : 0;
        return PIGEON_OK;
    }
    if (rc != SQLITE_OK)
        return pg_spool_sq_err(q, rc, "preparing a suppression check");
    q->stmt[ST_SUPPRESS_CHECK] = *st;
    return PIGEON_OK;
}

static pigeon_err sq_check(void *be, const char *account, const char *const *keys,
                           const char *const *exact, size_t n, pigeon_suppress_hit *hits)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = check_stmt(q, &st);
    if (err != PIGEON_OK || st == NULL)
        return err;
    pg_spool_sq_bind_text(st, 2, account);
    int own = n > 1 && !q->in_batch;
    if (own && (err = pg_spool_sq_tx_begin(q, 0)) != PIGEON_OK)
        return err;
    for (size_t i = 0; i < n && err == PIGEON_OK; i++)
        if (keys[i] != NULL)
            err = check_one(q, st, keys[i], exact != NULL ? exact[i] : NULL, &hits[i]);
    sqlite3_clear_bindings(st);
    return own ? pg_spool_sq_tx_end(q, err) : err;
}

static pigeon_err sq_list(void *be, const char *account, pigeon_suppress_reason reason,
                          int (*fn)(void *ctx, const pigeon_suppress_entry *entry), void *ctx)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare_read(q,
                                  "SELECT account, address, reason, status, diagnostic, queue_id,"
                                  " created_ms FROM suppression WHERE (?1 IS NULL OR account = ?1)"
                                  " AND (?2 = 0 OR reason = ?2) ORDER BY account, key",
                                  &st);
    if (err != PIGEON_OK || st == NULL)
        return err;
    pg_spool_sq_bind_text(st, 1, account);
    sqlite3_bind_int(st, 2, (int)reason);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        pigeon_suppress_entry e = {
            .account = (const char *)sqlite3_column_text(st, 0),
            .address = (const char *)sqlite3_column_text(st, 1),
            .reason = (pigeon_suppress_reason)sqlite3_column_int(st, 2),
            .status = (const char *)sqlite3_column_text(st, 3),
            .diagnostic = (const char *)sqlite3_column_text(st, 4),
            .queue_id = (const char *)sqlite3_column_text(st, 5),
            .created_ms = sqlite3_column_int64(st, 6),
        };
        if (fn(ctx, &e) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? PIGEON_OK : pg_spool_sq_err(q, rc, "listing suppressions");
}

const pg_spool_suppress_ops pg_spool_sq_suppress_ops = {
    .add = sq_add,
    .soft = sq_soft,
    .remove = sq_remove,
    .check = sq_check,
    .list = sq_list,
};
