/*
 * spool_pg_import.c - storing an exported message with its state in the PostgreSQL spool
 * (see spool/spool_import.h), for `pigeon queue import` (a spool moved from SQLite, or
 * from another database).
 *
 * begin writes the message's row and its recipients, with their exported states, in one
 * statement inside a transaction (the batch's, or one of its own), its row first as an
 * enqueue whose body outgrew the buffer does (spool_pg.c: flush_early): the body then
 * goes through the backend's own msg_chunk, and msg_end stores the size and hash and
 * commits, or msg_abort undoes it. A queue id already present inserts nothing (ON
 * CONFLICT DO NOTHING: also when another importer stores it at the same moment).
 */
#include <stdio.h>
#include <string.h>

#include "spool/spool_import.h"
#include "spool/spool_pg.h"

/* $1..$5 the message; $6..$14 one array per recipient column. Returns the new row's id,
 * no row when the queue id is present. */
static const char import_sql[] =
    "WITH m AS (INSERT INTO message(queue_id, message_id, account, mail_from, size,"
    " created_ms) VALUES ($1::text, $2::text, $3::text, $4::text, 0, $5::bigint)"
    " ON CONFLICT (queue_id) DO NOTHING RETURNING id),"
    " r AS (INSERT INTO rcpt(msg, address, state, due_ms, attempts, err, smtp_code, enhanced,"
    " text, updated_ms) SELECT m.id, u.* FROM m, unnest($6::text[], $7::int4[], $8::int8[],"
    " $9::int4[], $10::int4[], $11::int4[], $12::text[], $13::text[], $14::int8[])"
    " AS u ON CONFLICT DO NOTHING)"
    " SELECT id FROM m";

/* The recipients' columns as arrays (index order of import_sql's $6..$14). */
typedef struct rcpt_cols {
    pg_spool_pq_arr a[9];
} rcpt_cols;

static void cols_fill(rcpt_cols *c, const pg_spool_import_msg *m)
{
    static const uint32_t oid[9] = {25, 23, 20, 23, 23, 23, 25, 25, 20};
    for (int i = 0; i < 9; i++)
        pg_spool_pq_arr_init(&c->a[i], oid[i]);
    for (size_t i = 0; i < m->rcpt_count; i++) {
        const pg_spool_import_rcpt *r = &m->rcpts[i];
        int pending = r->state == PIGEON_SPOOL_QUEUED || r->state == PIGEON_SPOOL_DEFERRED;
        pg_spool_pq_arr_text(&c->a[0], r->address);
        pg_spool_pq_arr_i32(&c->a[1], (int32_t)r->state);
        if (pending) /* a final recipient has no due time (never claimed again) */
            pg_spool_pq_arr_i64(&c->a[2], r->next_ms);
        else
            pg_spool_pq_arr_text(&c->a[2], NULL); /* SQL NULL, whatever the type */
        pg_spool_pq_arr_i32(&c->a[3], r->attempts);
        pg_spool_pq_arr_i32(&c->a[4], (int32_t)r->last_err);
        pg_spool_pq_arr_i32(&c->a[5], r->smtp_code);
        pg_spool_pq_arr_text(&c->a[6], r->enhanced_code);
        pg_spool_pq_arr_text(&c->a[7], r->text);
        pg_spool_pq_arr_i64(&c->a[8], r->updated_ms);
    }
}

static void cols_free(rcpt_cols *c)
{
    for (int i = 0; i < 9; i++)
        pg_spool_pq_arr_free(&c->a[i]);
}

/* Runs import_sql: *stored 1 when the message went in, 0 when its queue id was there. */
static pigeon_err insert(pg_spool_pq *q, const pg_spool_import_msg *m, int *stored, int64_t *id)
{
    rcpt_cols c;
    pg_spool_pq_params p = {0};
    cols_fill(&c, m);
    pg_spool_pq_p_text(&p, m->queue_id);
    pg_spool_pq_p_text(&p, m->message_id != NULL ? m->message_id : "");
    pg_spool_pq_p_text(&p, m->account);
    pg_spool_pq_p_text(&p, m->mail_from);
    pg_spool_pq_p_i64(&p, m->created_ms);
    pigeon_err err = PIGEON_OK;
    for (int i = 0; i < 9; i++) {
        if (c.a[i].nomem)
            err = pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
        pg_spool_pq_p_arr(&p, &c.a[i]);
    }
    PGresult *res = NULL;
    if (err == PIGEON_OK)
        res = PQexecParams(q->conn, import_sql, p.n, NULL, p.v, p.len, p.fmt, 0);
    if (err == PIGEON_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        err = pg_spool_pq_err(q, res, "storing an imported message");
    if (err == PIGEON_OK && (*stored = PQntuples(res) == 1))
        *id = pg_spool_pq_i64(res, 0, 0);
    PQclear(res);
    cols_free(&c);
    return err;
}

/* Ends the transaction of our own (nothing to keep), keeping the diagnosis. */
static void own_rollback(pg_spool_pq *q)
{
    char keep[sizeof q->diag->text];
    memcpy(keep, q->diag->text, sizeof keep);
    if (q->conn != NULL)
        PQclear(PQexec(q->conn, "ROLLBACK"));
    q->in_tx = 0;
    memcpy(q->diag->text, keep, sizeof keep);
}

static pigeon_err pq_import_begin(void *be, const pg_spool_import_msg *m, int *present)
{
    pg_spool_pq *q = be;
    int stored = 0;
    *present = 0;
    pigeon_err err = pg_spool_pq_settle(q); /* (a batch's COPY in flight) */
    if (err != PIGEON_OK)
        return err;
    if (q->in_batch && (q->conn == NULL || PQtransactionStatus(q->conn) != PQTRANS_INTRANS))
        return pg_spool_fail(q->diag, PIGEON_ERR_IO,
                             "spool: the batch was rolled back after an earlier error");
    err = pg_spool_pq_ready(q);
    if (err != PIGEON_OK)
        return err;
    int own = !q->in_tx;
    if (own) {
        if ((err = pg_spool_pq_exec(q, "BEGIN", "beginning an import")) != PIGEON_OK)
            return err;
        q->in_tx = 1;
    }
    /* The batch's buffered enqueues first: then only this message's chunks are pending
     * while it is open, which msg_abort relies on. */
    err = pg_spool_pq_flush(q);
    if (err == PIGEON_OK)
        err = insert(q, m, &stored, &q->cur_id);
    if (err != PIGEON_OK || !stored) {
        *present = err == PIGEON_OK;
        if (own)
            own_rollback(q);
        return err;
    }
    /* The message is open as an enqueue whose row was written early (see spool_pg.c),
     * under the id the insert gave it (its chunks name it in a batch's COPY). */
    snprintf(q->cur_qid, sizeof q->cur_qid, "%s", m->queue_id);
    q->cur_flushed = 1;
    q->cur_copy = 0; /* (its chunks go as the statement's arrays, found by queue id) */
    q->cur_seq = 0;
    memset(&q->cur, 0, sizeof q->cur);
    return PIGEON_OK;
}

const pg_spool_import_ops pg_spool_pq_import_ops = {
    .begin = pq_import_begin,
};
