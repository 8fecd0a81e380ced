/*
 * spool_pg_limits.c - shared sending limits in the PostgreSQL spool (see
 * spool/spool_limits.h), so that the daemons of every host sharing the database draw
 * from one allowance per account.
 *
 * One row per account in table limits (migration 3, spool_pg_schema.c). A take is one
 * short transaction: an upsert that creates the row with a full bucket or, when it
 * exists, locks it (the SELECT ... FOR UPDATE of the row, without a separate insert
 * for a new account: two daemons meeting a new account both end on the one row) and
 * returns its values with the account's throttle; the arithmetic every backend shares
 * (pg_spool_limits_apply); the update; the commit. Concurrent takes on one account wait
 * for each other on the row lock (a few milliseconds), takes on other accounts do not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool_limits.h"
#include "spool/spool_pg.h"

/* $1 account, $2 the bucket's size (a new row starts full), $3 now. */
static const char lock_sql[] =
    "INSERT INTO limits AS l(account, tokens, at_ms, day, sent) VALUES ($1::text,"
    " $2::float8, $3::bigint, -1, 0) ON CONFLICT (account) DO UPDATE SET account ="
    " l.account RETURNING l.tokens, l.at_ms, l.day, l.sent, (SELECT a.not_before_ms FROM"
    " account a WHERE a.name = $1::text)";
static const char give_back_sql[] = "UPDATE limits SET sent = greatest(sent - $3::bigint, 0)"
                                    " WHERE account = $1::text AND day = $2::bigint";
static const char write_sql[] = "UPDATE limits SET tokens = $2::float8, at_ms = $3::bigint,"
                                " day = $4::bigint, sent = $5::bigint WHERE account = $1::text";

/* The row's values, locked until the transaction ends. */
static pigeon_err load(pg_spool_pq *q, const pg_spool_take_req *req, double *tokens, int64_t *at_ms,
                       int64_t *day, long *sent, int64_t *not_before_ms)
{
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    pg_spool_pq_p_text(&p, req->account);
    snprintf(p.num[1], sizeof p.num[1], "%.17g", req->burst);
    pg_spool_pq_p_text(&p, p.num[1]);
    pg_spool_pq_p_i64(&p, req->now_ms);
    pigeon_err err = pg_spool_pq_exec_params(q, lock_sql, &p, "reading the account's limits", &res);
    if (err == PIGEON_OK && PQntuples(res) != 1)
        err = pg_spool_fail(q->diag, PIGEON_ERR_IO, "spool: reading the account's limits: no row");
    if (err == PIGEON_OK) {
        *tokens = strtod(PQgetvalue(res, 0, 0), NULL);
        *at_ms = pg_spool_pq_i64(res, 0, 1);
        *day = pg_spool_pq_i64(res, 0, 2);
        *sent = (long)pg_spool_pq_i64(res, 0, 3);
        *not_before_ms = pg_spool_pq_i64(res, 0, 4);
    }
    PQclear(res);
    return err;
}

static pigeon_err store(pg_spool_pq *q, const char *account, double tokens, int64_t at_ms,
                        int64_t day, long sent)
{
    pg_spool_pq_params p = {0};
    pg_spool_pq_p_text(&p, account);
    snprintf(p.num[1], sizeof p.num[1], "%.17g", tokens);
    pg_spool_pq_p_text(&p, p.num[1]);
    pg_spool_pq_p_i64(&p, at_ms);
    pg_spool_pq_p_i64(&p, day);
    pg_spool_pq_p_i64(&p, sent);
    return pg_spool_pq_exec_params(q, write_sql, &p, "writing the account's limits", NULL);
}

static pigeon_err pq_take(void *be, const pg_spool_take_req *req, pg_spool_take *out)
{
    pg_spool_pq *q = be;
    double tokens = 0;
    int64_t at_ms = 0, day = 0, not_before_ms = 0;
    long sent = 0;
    int own = !q->in_tx; /* inside a caller's batch, its transaction */
    pigeon_err err = own ? pg_spool_pq_exec(q, "BEGIN", "taking tokens") : PIGEON_OK;
    if (err != PIGEON_OK)
        return err;
    err = load(q, req, &tokens, &at_ms, &day, &sent, &not_before_ms);
    if (err == PIGEON_OK) {
        pg_spool_limits_apply(req, &tokens, &at_ms, &day, &sent, out);
        out->not_before_ms = not_before_ms > req->now_ms ? not_before_ms : 0;
        err = store(q, req->account, tokens, at_ms, day, sent);
    }
    if (!own)
        return err;
    if (err == PIGEON_OK)
        return pg_spool_pq_exec(q, "COMMIT", "committing a take");
    char keep[sizeof q->diag->text];
    memcpy(keep, q->diag->text, sizeof keep);
    if (q->conn != NULL)
        PQclear(PQexec(q->conn, "ROLLBACK"));
    memcpy(q->diag->text, keep, sizeof keep);
    return err;
}

static pigeon_err pq_give_back(void *be, const char *account, int64_t day, long n)
{
    pg_spool_pq_params p = {0};
    pg_spool_pq_p_text(&p, account);
    pg_spool_pq_p_i64(&p, day);
    pg_spool_pq_p_i64(&p, n);
    return pg_spool_pq_exec_params(be, give_back_sql, &p, "giving tokens back to the day", NULL);
}

const pg_spool_limits_ops pg_spool_pq_limits_ops = {
    .take = pq_take,
    .give_back = pq_give_back,
};
