/*
 * spool_sqlite_import.c - storing an exported message with its state in the SQLite spool
 * (see spool/spool_import.h). The message row and its recipients go in as an enqueue's
 * do (the same transaction rules, the same undo inside a batch); only the recipients'
 * columns come from the export instead of being fresh.
 */
#include "spool/spool_import.h"
#include "spool/spool_sqlite.h"

#include <string.h>

static const char exists_sql[] = "SELECT 1 FROM message WHERE queue_id = ?1";
static const char msg_sql[] = "INSERT INTO message(queue_id, message_id, account, mail_from, "
                              "size, created_ms) VALUES(?1, ?2, ?3, ?4, 0, ?5)";
static const char rcpt_sql[] =
    "INSERT OR IGNORE INTO rcpt(msg, address, state, due_ms, attempts, err, smtp_code, "
    "enhanced, text, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/* Prepares, binds nothing, and returns the statement (finalized by the caller). */
static pigeon_err prepare(pg_spool_sq *q, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(q->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? PIGEON_OK : pg_spool_sq_err(q, rc, "preparing an import statement");
}

/* Nonzero in *present when the queue id is already stored. */
static pigeon_err find(pg_spool_sq *q, const char *queue_id, int *present)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q, exists_sql, &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, queue_id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return pg_spool_sq_err(q, rc, "looking for a queue id");
    *present = rc == SQLITE_ROW;
    return PIGEON_OK;
}

static pigeon_err insert_msg(pg_spool_sq *q, const pg_spool_import_msg *m)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q, msg_sql, &st);
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, m->queue_id);
    pg_spool_sq_bind_text(st, 2, m->message_id);
    pg_spool_sq_bind_text(st, 3, m->account);
    pg_spool_sq_bind_text(st, 4, m->mail_from);
    sqlite3_bind_int64(st, 5, m->created_ms);
    err = pg_spool_sq_step(q, st, "storing an imported message");
    sqlite3_finalize(st);
    if (err == PIGEON_OK)
        q->msg_rowid = sqlite3_last_insert_rowid(q->db);
    return err;
}

static pigeon_err insert_rcpts(pg_spool_sq *q, const pg_spool_import_msg *m)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = prepare(q, rcpt_sql, &st);
    for (size_t i = 0; err == PIGEON_OK && i < m->rcpt_count; i++) {
        const pg_spool_import_rcpt *r = &m->rcpts[i];
        int pending = r->state == PIGEON_SPOOL_QUEUED || r->state == PIGEON_SPOOL_DEFERRED;
        sqlite3_bind_int64(st, 1, q->msg_rowid);
        pg_spool_sq_bind_text(st, 2, r->address);
        sqlite3_bind_int(st, 3, (int)r->state);
        if (pending)
            sqlite3_bind_int64(st, 4, r->next_ms);
        else
            sqlite3_bind_null(st, 4);
        sqlite3_bind_int(st, 5, r->attempts);
        sqlite3_bind_int(st, 6, (int)r->last_err);
        sqlite3_bind_int(st, 7, r->smtp_code);
        pg_spool_sq_bind_text(st, 8, r->enhanced_code);
        pg_spool_sq_bind_text(st, 9, r->text);
        sqlite3_bind_int64(st, 10, r->updated_ms);
        err = pg_spool_sq_step(q, st, "storing an imported recipient");
    }
    sqlite3_finalize(st);
    return err;
}

static pigeon_err sq_import_begin(void *be, const pg_spool_import_msg *m, int *present)
{
    pg_spool_sq *q = be;
    pigeon_err err = PIGEON_OK;
    q->msg_rowid = 0;
    *present = 0;
    if (!q->in_batch)
        err = pg_spool_sq_exec(q, ST_BEGIN);
    else if (sqlite3_get_autocommit(q->db))
        err = pg_spool_fail(q->diag, PIGEON_ERR_IO,
                            "spool: the batch was rolled back after an earlier error");
    if (err != PIGEON_OK)
        return err;
    err = find(q, m->queue_id, present);
    if (err == PIGEON_OK && *present) {
        if (!q->in_batch)
            pg_spool_sq_exec(q, ST_ROLLBACK);
        return PIGEON_OK;
    }
    if (err == PIGEON_OK)
        err = insert_msg(q, m);
    if (err == PIGEON_OK)
        err = insert_rcpts(q, m);
    if (err != PIGEON_OK) {
        char keep[sizeof q->diag->text];
        memcpy(keep, q->diag->text, sizeof keep);
        pg_spool_sqlite_ops.msg_abort(q);
        memcpy(q->diag->text, keep, sizeof keep);
    }
    return err;
}

const pg_spool_import_ops pg_spool_sq_import_ops = {
    .begin = sq_import_begin,
};
