/*
 * spool_sqlite_api.c - keys and message owners in the SQLite spool (see spool/spool_api.h).
 *
 * Two tables beside the queue's, created on first use. Statements are prepared per call
 * (these calls are rare next to enqueues, or ride along with them inside a batch) and run
 * in the caller's transaction when a batch is open, else each in its own (autocommit,
 * durable with the file's synchronous=FULL).
 */
#include <stdio.h>
#include <string.h>

#include "spool/spool_api.h"
#include "spool/spool_sqlite.h"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS api_keys ("
    " id TEXT PRIMARY KEY, hash BLOB NOT NULL, account TEXT NOT NULL, domains TEXT NOT NULL,"
    " scopes TEXT NOT NULL, rate REAL NOT NULL, created_ms INTEGER NOT NULL,"
    " revoked_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS api_messages ("
    " queue_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, idem TEXT, req_sha BLOB NOT NULL,"
    " created_ms INTEGER NOT NULL, cancelled_ms INTEGER NOT NULL DEFAULT 0,"
    " send_at_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS api_messages_idem ON api_messages(key_id, idem)"
    " WHERE idem IS NOT NULL;";

/* Creates the tables once per handle (cheap after the first time: IF NOT EXISTS), and
 * brings an api_messages of an older pigeon up to date: send_at_ms (the not-before time
 * a message was submitted with) came later. The ALTER fails harmlessly once the column
 * is there; no schema version is involved (the table is ours alone). */
static pigeon_err ensure(pg_spool_sq *q)
{
    pigeon_err err = pg_spool_sq_side_exec(q, schema, "creating the API tables");
    if (err == PIGEON_OK)
        sqlite3_exec(q->db,
                     "ALTER TABLE api_messages ADD COLUMN send_at_ms INTEGER NOT NULL DEFAULT 0",
                     NULL, NULL, NULL);
    return err;
}

/* Prepares sql; the tables are created only when they are missing (the first use of a
 * file), so that the common case costs one prepare. */
static pigeon_err prepare(pg_spool_sq *q, const char *sql, sqlite3_stmt **st)
{
    return pg_spool_sq_side_prepare(q, sql, st, ensure, "preparing an API statement");
}

/* Runs a statement that returns no rows and finalizes it. */
static pigeon_err run(pg_spool_sq *q, sqlite3_stmt *st, const char *what)
{
    return pg_spool_sq_side_run(q, st, what);
}

static void copy_text(char *out, size_t size, const unsigned char *s)
{
    snprintf(out, size, "%s", s != NULL ? (const char *)s : "");
}

static pigeon_err sq_key_add(void *be, const pg_spool_key *k)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q,
                             "INSERT INTO api_keys(id, hash, account, domains, scopes, rate,"
                             " created_ms) VALUES (?,?,?,?,?,?,?)",
                             &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, k->id);
    sqlite3_bind_blob(st, 2, k->hash, 32, SQLITE_STATIC);
    pg_spool_sq_bind_text(st, 3, k->account);
    pg_spool_sq_bind_text(st, 4, k->domains);
    pg_spool_sq_bind_text(st, 5, k->scopes);
    sqlite3_bind_double(st, 6, k->rate);
    sqlite3_bind_int64(st, 7, k->created_ms);
    return run(q, st, "storing an API key");
}

static void key_row(sqlite3_stmt *st, pg_spool_key *k)
{
    memset(k, 0, sizeof *k);
    copy_text(k->id, sizeof k->id, sqlite3_column_text(st, 0));
    if (sqlite3_column_bytes(st, 1) == 32)
        memcpy(k->hash, sqlite3_column_blob(st, 1), 32);
    copy_text(k->account, sizeof k->account, sqlite3_column_text(st, 2));
    copy_text(k->domains, sizeof k->domains, sqlite3_column_text(st, 3));
    copy_text(k->scopes, sizeof k->scopes, sqlite3_column_text(st, 4));
    k->rate = sqlite3_column_double(st, 5);
    k->created_ms = sqlite3_column_int64(st, 6);
    k->revoked_ms = sqlite3_column_int64(st, 7);
}

#define KEY_COLUMNS "id, hash, account, domains, scopes, rate, created_ms, revoked_ms"

static pigeon_err sq_key_get(void *be, const char *id, pg_spool_key *out)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q, "SELECT " KEY_COLUMNS " FROM api_keys WHERE id = ?", &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        key_row(st, out);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return PIGEON_OK;
    if (rc == SQLITE_DONE)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "no API key %s", id);
    return pg_spool_sq_err(q, rc, "reading an API key");
}

static pigeon_err sq_key_list(void *be, int (*fn)(void *ctx, const pg_spool_key *key), void *ctx)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err =
        prepare(q, "SELECT " KEY_COLUMNS " FROM api_keys ORDER BY created_ms, id", &st);
    if (err != PIGEON_OK)
        return err;
    int rc;
    pg_spool_key k;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        key_row(st, &k);
        if (fn(ctx, &k) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? PIGEON_OK : pg_spool_sq_err(q, rc, "listing API keys");
}

static pigeon_err sq_key_revoke(void *be, const char *id, int64_t now_ms)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err =
        prepare(q, "UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms = 0", &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, now_ms);
    pg_spool_sq_bind_text(st, 2, id);
    if ((err = run(q, st, "revoking an API key")) != PIGEON_OK)
        return err;
    if (sqlite3_changes(q->db) == 0)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "no live API key %s", id);
    return PIGEON_OK;
}

/* The owner row rides along with every message pigeon serve stores: its statement is
 * kept in the handle's cache, so that it is parsed once, not once per message. */
static pigeon_err owner_stmt(pg_spool_sq *q, sqlite3_stmt **st)
{
    static const char sql[] = "INSERT INTO api_messages(queue_id, key_id, idem, req_sha,"
                              " created_ms) VALUES (?,?,?,?,?)";
    *st = q->stmt[ST_API_OWNER];
    if (*st != NULL)
        return PIGEON_OK;
    int rc = sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc == SQLITE_ERROR) {
        pigeon_err err = ensure(q);
        if (err != PIGEON_OK)
            return err;
        rc = sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    }
    if (rc != SQLITE_OK)
        return pg_spool_sq_err(q, rc, "preparing an API statement");
    q->stmt[ST_API_OWNER] = *st;
    return PIGEON_OK;
}

static pigeon_err sq_owner_add(void *be, const char *queue_id, const char *key_id, const char *idem,
                               const unsigned char sha[32], int64_t now_ms)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = owner_stmt(q, &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, queue_id);
    pg_spool_sq_bind_text(st, 2, key_id);
    pg_spool_sq_bind_text(st, 3, idem);
    sqlite3_bind_blob(st, 4, sha, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    err = pg_spool_sq_step(q, st, "recording a message's owner");
    sqlite3_clear_bindings(st);
    return err;
}

static pigeon_err sq_owner_get(void *be, const char *queue_id, char *key_id, size_t size,
                               int64_t *cancelled_ms, int64_t *send_at_ms)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(
        q, "SELECT key_id, cancelled_ms, send_at_ms FROM api_messages WHERE queue_id = ?", &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, queue_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_text(key_id, size, sqlite3_column_text(st, 0));
        if (cancelled_ms != NULL)
            *cancelled_ms = sqlite3_column_int64(st, 1);
        if (send_at_ms != NULL)
            *send_at_ms = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return PIGEON_OK;
    if (rc == SQLITE_DONE)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "no message %s", queue_id);
    return pg_spool_sq_err(q, rc, "reading a message's owner");
}

static pigeon_err sq_owner_cancel(void *be, const char *queue_id, int64_t now_ms)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q, "UPDATE api_messages SET cancelled_ms = ? WHERE queue_id = ?", &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, now_ms);
    pg_spool_sq_bind_text(st, 2, queue_id);
    return run(q, st, "cancelling a message");
}

/* The message's recipients in flight and still open (queued or deferred); *rowid 0 when
 * the message is not in the queue. */
static pigeon_err cancel_look(pg_spool_sq *q, const char *queue_id, int64_t *rowid,
                              int64_t *inflight, int64_t *open)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q,
                             "SELECT m.id, total(r.state = 1), total(r.state IN (0, 2))"
                             " FROM message m LEFT JOIN rcpt r ON r.msg = m.id"
                             " WHERE m.queue_id = ? GROUP BY m.id",
                             &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, queue_id);
    int rc = sqlite3_step(st);
    *rowid = *inflight = *open = 0;
    if (rc == SQLITE_ROW) {
        *rowid = sqlite3_column_int64(st, 0);
        *inflight = sqlite3_column_int64(st, 1);
        *open = sqlite3_column_int64(st, 2);
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? PIGEON_OK : pg_spool_sq_err(q, rc, "reading a message to cancel");
}

/* Check and delete in one IMMEDIATE transaction: a daemon's claim is a write too, so it
 * waits for this one (or this one for it, and then sees the recipient in flight). */
static pigeon_err sq_cancel(void *be, const char *queue_id, int64_t now_ms,
                            pg_spool_cancel_result *result)
{
    pg_spool_sq *q = be;
    int64_t rowid = 0, inflight = 0, open = 0;
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_tx_begin(q, 1);
    if (err != PIGEON_OK)
        return err;
    err = cancel_look(q, queue_id, &rowid, &inflight, &open);
    *result = rowid == 0     ? PG_SPOOL_CANCEL_GONE
              : inflight > 0 ? PG_SPOOL_CANCEL_INFLIGHT
              : open == 0    ? PG_SPOOL_CANCEL_NOTHING
                             : PG_SPOOL_CANCELLED;
    if (err == PIGEON_OK && *result == PG_SPOOL_CANCELLED &&
        (err = prepare(q, "UPDATE api_messages SET cancelled_ms = ? WHERE queue_id = ?", &st)) ==
            PIGEON_OK) {
        sqlite3_bind_int64(st, 1, now_ms);
        pg_spool_sq_bind_text(st, 2, queue_id);
        err = run(q, st, "cancelling a message");
    }
    if (err == PIGEON_OK && *result == PG_SPOOL_CANCELLED &&
        (err = pg_spool_sq_prep(q, ST_DELETE, &st)) == PIGEON_OK) {
        pg_spool_sq_bind_text(st, 1, queue_id);
        err = pg_spool_sq_step(q, st, "deleting a cancelled message");
    }
    return pg_spool_sq_tx_end(q, err);
}

/* The owner row and the queued recipients of a message enqueued in this batch. */
static pigeon_err sq_owner_schedule(void *be, const char *queue_id, int64_t send_at_ms)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q, "UPDATE api_messages SET send_at_ms = ?1 WHERE queue_id = ?2", &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, send_at_ms);
    pg_spool_sq_bind_text(st, 2, queue_id);
    if ((err = run(q, st, "scheduling a message")) != PIGEON_OK)
        return err;
    err = prepare(q,
                  "UPDATE rcpt SET due_ms = ?1 WHERE state = 0 AND msg ="
                  " (SELECT id FROM message WHERE queue_id = ?2)",
                  &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, send_at_ms);
    pg_spool_sq_bind_text(st, 2, queue_id);
    return run(q, st, "scheduling a message's recipients");
}

static pigeon_err sq_idem_find(void *be, const char *key_id, const char *idem, int64_t since_ms,
                               char *queue_id, unsigned char sha[32])
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q,
                             "SELECT queue_id, req_sha FROM api_messages WHERE key_id = ?"
                             " AND idem = ? AND created_ms >= ? ORDER BY created_ms DESC"
                             " LIMIT 1",
                             &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, key_id);
    pg_spool_sq_bind_text(st, 2, idem);
    sqlite3_bind_int64(st, 3, since_ms);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_text(queue_id, PIGEON_SPOOL_ID_LEN + 1, sqlite3_column_text(st, 0));
        memset(sha, 0, 32);
        if (sqlite3_column_bytes(st, 1) == 32)
            memcpy(sha, sqlite3_column_blob(st, 1), 32);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return PIGEON_OK;
    if (rc == SQLITE_DONE)
        return PIGEON_ERR_NOTFOUND;
    return pg_spool_sq_err(q, rc, "reading an idempotency key");
}

static pigeon_err sq_owner_expire(void *be, int64_t before_ms)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q,
                             "DELETE FROM api_messages WHERE created_ms < ? AND queue_id NOT IN"
                             " (SELECT queue_id FROM message)",
                             &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, before_ms);
    return run(q, st, "expiring message owners");
}

const pg_spool_api_ops pg_spool_sq_api_ops = {
    .key_add = sq_key_add,
    .key_get = sq_key_get,
    .key_list = sq_key_list,
    .key_revoke = sq_key_revoke,
    .owner_add = sq_owner_add,
    .owner_get = sq_owner_get,
    .owner_cancel = sq_owner_cancel,
    .cancel = sq_cancel,
    .owner_schedule = sq_owner_schedule,
    .idem_find = sq_idem_find,
    .owner_expire = sq_owner_expire,
};
