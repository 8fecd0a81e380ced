/*
 * spool_pg_copy.c - the PostgreSQL spool backend: a batch of messages written with binary
 * COPY (see spool_pg.c for the enqueue around it).
 *
 * Inside a batch (pigeon_spool_begin), after its first messages (COPY_AFTER in
 * spool_pg.c: a small batch stays one statement), the rows of the messages enqueued are
 * built in PostgreSQL's binary COPY format, one stream per table, and sent once they hold
 * 1 MiB: COPY message, COPY rcpt, COPY body. COPY skips what a statement with array
 * parameters costs the server per row (decoding the arrays, planning, joining the
 * recipients to their message by queue id, materializing the arrays of the bodies), and
 * the ids of the messages are ours: a nextval() of message_id_seq reserves a block of
 * PG_SPOOL_PQ_ID_BLOCK ids (schema migration 7), taken once per block.
 *
 * The last COPY of a flush (the bodies, most of the server's work) is not waited for:
 * its result is read before the connection's next command (pg_spool_pq_settle), so the
 * server stores one part of the batch while the caller builds the next. A failure there
 * fails the batch at its next flush or at its commit, which rolls the batch back.
 *
 * Recipients repeated in one envelope are stored once (as on SQLite, and as the unique
 * key on (msg, address) kept the statement's ON CONFLICT DO NOTHING doing): COPY cannot
 * skip a conflicting row, it fails.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool_pg.h"

/* COPY's binary header: signature, flags, header extension length. */
static const unsigned char copy_header[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n',
                                              0,   0,   0,   0,   0,   0,   0,    0,    0};

/* Bytes per CopyData message (any size works; the server reads 8 KB at a time). */
#define COPY_MSG (16u << 10)

static const char copy_message[] = "COPY message(id, queue_id, message_id, account, mail_from,"
                                   " size, sha256, created_ms) FROM STDIN (FORMAT binary)";
static const char copy_rcpt[] =
    "COPY rcpt(msg, address, state, due_ms, updated_ms) FROM STDIN (FORMAT binary)";
static const char copy_body[] = "COPY body(msg, seq, data) FROM STDIN (FORMAT binary)";

/* ---- building a stream ---- */

/* Room for need more bytes (the header written first). */
static int room(pg_spool_pq_copy *c, size_t need)
{
    if (c->nomem)
        return -1;
    if (c->p != NULL && c->len + need <= c->cap)
        return 0;
    size_t cap = c->cap ? c->cap : 64 * 1024;
    size_t len = c->p != NULL ? c->len : sizeof copy_header;
    while (cap < len + need + 2)
        cap *= 2;
    unsigned char *n = realloc(c->p, cap);
    if (n == NULL) {
        c->nomem = 1;
        return -1;
    }
    if (c->p == NULL)
        memcpy(n, copy_header, sizeof copy_header);
    c->p = n;
    c->cap = cap;
    c->len = len;
    return 0;
}

static void put(pg_spool_pq_copy *c, const void *data, size_t len)
{
    if (room(c, len) != 0)
        return;
    memcpy(c->p + c->len, data, len);
    c->len += len;
}

static void put_u32(pg_spool_pq_copy *c, uint32_t v)
{
    uint32_t n = htonl(v);
    put(c, &n, 4);
}

void pg_spool_pq_copy_row(pg_spool_pq_copy *c, int fields)
{
    uint16_t n = htons((uint16_t)fields);
    put(c, &n, 2);
    c->rows++;
}

void pg_spool_pq_copy_bin(pg_spool_pq_copy *c, const void *data, size_t len)
{
    if (data == NULL) {
        put_u32(c, 0xffffffffu); /* -1: NULL */
        return;
    }
    put_u32(c, (uint32_t)len);
    put(c, data, len);
}

void pg_spool_pq_copy_text(pg_spool_pq_copy *c, const char *s)
{
    pg_spool_pq_copy_bin(c, s, s != NULL ? strlen(s) : 0);
}

void pg_spool_pq_copy_i64(pg_spool_pq_copy *c, int64_t v)
{
    uint64_t u = (uint64_t)v;
    put_u32(c, 8);
    put_u32(c, (uint32_t)(u >> 32));
    put_u32(c, (uint32_t)u);
}

void pg_spool_pq_copy_i32(pg_spool_pq_copy *c, int32_t v)
{
    put_u32(c, 4);
    put_u32(c, (uint32_t)v);
}

void pg_spool_pq_copy_i16(pg_spool_pq_copy *c, int16_t v)
{
    uint16_t n = htons((uint16_t)v);
    put_u32(c, 2);
    put(c, &n, 2);
}

void pg_spool_pq_copy_reset(pg_spool_pq_copy *c, int free_it)
{
    if (free_it) {
        free(c->p);
        c->p = NULL;
        c->cap = 0;
    }
    c->len = c->p != NULL ? sizeof copy_header : 0;
    c->rows = 0;
    c->nomem = 0;
}

/* ---- the batch's rows ---- */

/* Whether rcpts[i] repeats an earlier address of the envelope: quadratic, for envelopes
 * are small (1,000 recipients are half a million comparisons, about a millisecond, where
 * storing their rows takes ten). */
static int repeated(const char *const *rcpts, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(rcpts[j], rcpts[i]) == 0)
            return 1;
    return 0;
}

void pg_spool_pq_copy_message(pg_spool_pq *q, const pg_spool_new *m, int64_t id, int64_t size,
                              const unsigned char *sha)
{
    pg_spool_pq_pending *p = &q->pend;
    pg_spool_pq_copy_row(&p->c_msg, 8);
    pg_spool_pq_copy_i64(&p->c_msg, id);
    pg_spool_pq_copy_text(&p->c_msg, m->queue_id);
    pg_spool_pq_copy_text(&p->c_msg, m->env->message_id != NULL ? m->env->message_id : "");
    pg_spool_pq_copy_text(&p->c_msg, m->env->account);
    pg_spool_pq_copy_text(&p->c_msg, m->env->mail_from);
    pg_spool_pq_copy_i64(&p->c_msg, size);
    pg_spool_pq_copy_bin(&p->c_msg, sha, 32);
    pg_spool_pq_copy_i64(&p->c_msg, m->now_ms);
    for (size_t i = 0; i < m->env->rcpt_count; i++) {
        if (repeated(m->env->rcpts, i))
            continue;
        pg_spool_pq_copy_row(&p->c_rcpt, 5);
        pg_spool_pq_copy_i64(&p->c_rcpt, id);
        pg_spool_pq_copy_text(&p->c_rcpt, m->env->rcpts[i]);
        pg_spool_pq_copy_i16(&p->c_rcpt, 0);
        pg_spool_pq_copy_i64(&p->c_rcpt, m->now_ms);
        pg_spool_pq_copy_i64(&p->c_rcpt, m->now_ms);
    }
    p->msgs++;
}

void pg_spool_pq_copy_chunk(pg_spool_pq *q, int64_t id, int64_t seq, const void *data, size_t len)
{
    pg_spool_pq_pending *p = &q->pend;
    pg_spool_pq_copy_row(&p->c_body, 3);
    pg_spool_pq_copy_i64(&p->c_body, id);
    pg_spool_pq_copy_i32(&p->c_body, (int32_t)seq);
    pg_spool_pq_copy_bin(&p->c_body, data, len);
    p->bytes += len;
}

pigeon_err pg_spool_pq_next_id(pg_spool_pq *q, int64_t *id)
{
    if (q->id_next == 0 || q->id_next >= q->id_end) {
        PGresult *res = NULL;
        pg_spool_pq_params p = {0};
        pigeon_err err = pg_spool_pq_run(q, PQ_MSG_IDS, &p, 0, "reserving message ids", &res);
        if (err == PIGEON_OK && PQntuples(res) != 1)
            err = pg_spool_fail(q->diag, PIGEON_ERR_IO, "spool: reserving message ids: no row");
        if (err == PIGEON_OK) {
            q->id_next = pg_spool_pq_i64(res, 0, 0);
            q->id_end = q->id_next + PG_SPOOL_PQ_ID_BLOCK;
        }
        PQclear(res);
        if (err != PIGEON_OK)
            return err;
    }
    *id = q->id_next++;
    return PIGEON_OK;
}

/* ---- sending ---- */

/* Reads the results of the command in progress (until libpq has none left); the first
 * failure is the diagnosis. */
static pigeon_err finish_command(pg_spool_pq *q, const char *what)
{
    pigeon_err err = PIGEON_OK;
    PGresult *res;
    while ((res = PQgetResult(q->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COPY_IN) { /* (only after a failed send: end it) */
            PQputCopyEnd(q->conn, "pigeon: the copy was abandoned");
        } else if (st != PGRES_COMMAND_OK && err == PIGEON_OK) {
            err = pg_spool_pq_err(q, res, what);
        }
        PQclear(res);
        if (q->conn == NULL)
            break;
    }
    return err;
}

pigeon_err pg_spool_pq_settle(pg_spool_pq *q)
{
    if (!q->copy_busy)
        return PIGEON_OK;
    q->copy_busy = 0;
    if (q->conn == NULL)
        return pg_spool_fail(q->diag, PIGEON_ERR_NETWORK,
                             "spool: connection to PostgreSQL lost inside a batch");
    return finish_command(q, "storing messages");
}

/* Sends one table's stream: the COPY command, the rows, the trailer. The command's result
 * is read now when wait, else by pg_spool_pq_settle() before the next command. */
static pigeon_err send_copy(pg_spool_pq *q, const char *sql, pg_spool_pq_copy *c, int wait,
                            const char *what)
{
    static const unsigned char trailer[2] = {0xff, 0xff};
    if (c->rows == 0)
        return PIGEON_OK;
    pigeon_err err = pg_spool_pq_settle(q);
    if (err == PIGEON_OK)
        err = pg_spool_pq_ready(q);
    if (err != PIGEON_OK)
        return err;
    PGresult *res = PQexec(q->conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        err = pg_spool_pq_err(q, res, what);
        PQclear(res);
        return err;
    }
    PQclear(res);
    put(c, trailer, sizeof trailer);
    size_t off = 0;
    int ok = !c->nomem;
    while (ok && off < c->len) {
        size_t n = c->len - off < COPY_MSG ? c->len - off : COPY_MSG;
        ok = PQputCopyData(q->conn, (const char *)c->p + off, (int)n) == 1;
        off += n;
    }
    if (PQputCopyEnd(q->conn, ok ? NULL : "pigeon: out of memory") != 1)
        ok = 0;
    if (!ok || wait) {
        err = finish_command(q, what);
        if (err == PIGEON_OK && !ok)
            err = c->nomem ? pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory")
                           : pg_spool_pq_err(q, NULL, what);
        return err;
    }
    q->copy_busy = 1;
    return PIGEON_OK;
}

/* Makes the backend's malloc (glibc's) keep the memory it frees instead of returning it
 * to the kernel at once. COPY forms each row in memory of its own and frees a few rows'
 * worth every 64 KB of rows; glibc gave the top of its heap back after each such free
 * (above 128 KB free) and took it again for the next rows, so that about a third of the
 * backend's time went to page faults on that fresh memory (perf, bench/pg.sh: 110-120 us
 * of server CPU per message instead of 45-65). glibc raises the threshold under which it
 * keeps freed memory to twice the size of the largest mapped block freed, so one 4 MiB
 * value made and dropped does it for the rest of the session (and costs about a
 * millisecond, once per connection that writes a batch). Harmless under another malloc. */
static pigeon_err keep_heap(pg_spool_pq *q)
{
    if (q->heap_kept)
        return PIGEON_OK;
    pigeon_err err =
        pg_spool_pq_exec(q, "SELECT length(repeat('x', 4 << 20))", "setting up the session");
    q->heap_kept = err == PIGEON_OK;
    return err;
}

pigeon_err pg_spool_pq_copy_flush(pg_spool_pq *q)
{
    pg_spool_pq_pending *p = &q->pend;
    pigeon_err err = keep_heap(q);
    if (err == PIGEON_OK)
        err = send_copy(q, copy_message, &p->c_msg, 1, "storing messages");
    if (err == PIGEON_OK)
        err = send_copy(q, copy_rcpt, &p->c_rcpt, 1, "storing recipients");
    if (err == PIGEON_OK)
        err = send_copy(q, copy_body, &p->c_body, 0, "storing message bodies");
    pg_spool_pq_copy_reset(&p->c_msg, 0);
    pg_spool_pq_copy_reset(&p->c_rcpt, 0);
    pg_spool_pq_copy_reset(&p->c_body, 0);
    p->msgs = 0;
    p->bytes = 0;
    return err;
}
