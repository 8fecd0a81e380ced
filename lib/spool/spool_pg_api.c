/*
 * spool_pg_api.c - keys and message owners in the PostgreSQL spool (see spool/spool_api.h).
 *
 * The tables come with the schema (migration 1, spool_pg_schema.c). Inside a batch these
 * statements run in the batch's transaction (an owner row commits with its message), else
 * each in its own. Shared by every API server on every host: a key revoked on one is
 * refused by all at their next reload, and an Idempotency-Key used through one server is
 * found by the others.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool_api.h"
#include "spool/spool_pg.h"

#define KEY_COLUMNS "id, hash, account, domains, scopes, rate, created_ms, revoked_ms"

/* Runs sql with text parameters (NULL for SQL NULL) and one optional binary one (bin,
 * 32 bytes, at position binpos, 1-based; 0 for none). *out (may be NULL) gets the result. */
static pigeon_err run(pg_spool_pq *q, const char *sql, const char *const *vals, int n,
                      const unsigned char *bin, int binpos, const char *what, PGresult **out)
{
    pg_spool_pq_params p;
    memset(&p, 0, sizeof p);
    p.n = n;
    for (int i = 0; i < n; i++)
        p.v[i] = vals[i];
    if (binpos > 0) {
        p.v[binpos - 1] = (const char *)bin;
        p.len[binpos - 1] = 32;
        p.fmt[binpos - 1] = 1;
    }
    return pg_spool_pq_exec_params(q, sql, &p, what, out);
}

static void copy_text(char *out, size_t size, const PGresult *res, int row, int col)
{
    snprintf(out, size, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static pigeon_err pq_key_add(void *be, const pg_spool_key *k)
{
    char rate[40], created[24];
    snprintf(rate, sizeof rate, "%.17g", k->rate);
    snprintf(created, sizeof created, "%lld", (long long)k->created_ms);
    const char *v[7] = {k->id, NULL, k->account, k->domains, k->scopes, rate, created};
    return run(be,
               "INSERT INTO api_keys(id, hash, account, domains, scopes, rate, created_ms)"
               " VALUES ($1::text, $2::bytea, $3::text, $4::text, $5::text, $6::float8,"
               " $7::bigint)",
               v, 7, k->hash, 2, "storing an API key", NULL);
}

static void key_row(const PGresult *res, int row, pg_spool_key *k)
{
    memset(k, 0, sizeof *k);
    copy_text(k->id, sizeof k->id, res, row, 0);
    pg_spool_pq_bytea(res, row, 1, k->hash, sizeof k->hash);
    copy_text(k->account, sizeof k->account, res, row, 2);
    copy_text(k->domains, sizeof k->domains, res, row, 3);
    copy_text(k->scopes, sizeof k->scopes, res, row, 4);
    k->rate = strtod(PQgetvalue(res, row, 5), NULL);
    k->created_ms = pg_spool_pq_i64(res, row, 6);
    k->revoked_ms = pg_spool_pq_i64(res, row, 7);
}

static pigeon_err pq_key_get(void *be, const char *id, pg_spool_key *out)
{
    pg_spool_pq *q = be;
    PGresult *res = NULL;
    const char *v[1] = {id};
    pigeon_err err = run(q, "SELECT " KEY_COLUMNS " FROM api_keys WHERE id = $1::text", v, 1, NULL,
                         0, "reading an API key", &res);
    if (err == PIGEON_OK && PQntuples(res) == 0)
        err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "no API key %s", id);
    else if (err == PIGEON_OK)
        key_row(res, 0, out);
    PQclear(res);
    return err;
}

static pigeon_err pq_key_list(void *be, int (*fn)(void *ctx, const pg_spool_key *key), void *ctx)
{
    PGresult *res = NULL;
    pigeon_err err = run(be, "SELECT " KEY_COLUMNS " FROM api_keys ORDER BY created_ms, id", NULL,
                         0, NULL, 0, "listing API keys", &res);
    pg_spool_key k;
    for (int row = 0; err == PIGEON_OK && row < PQntuples(res); row++) {
        key_row(res, row, &k);
        if (fn(ctx, &k) != 0)
            break;
    }
    PQclear(res);
    return err;
}

static pigeon_err pq_key_revoke(void *be, const char *id, int64_t now_ms)
{
    pg_spool_pq *q = be;
    PGresult *res = NULL;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    const char *v[2] = {now, id};
    pigeon_err err = run(q,
                         "UPDATE api_keys SET revoked_ms = $1::bigint WHERE id = $2::text"
                         " AND revoked_ms = 0",
                         v, 2, NULL, 0, "revoking an API key", &res);
    if (err == PIGEON_OK && strcmp(PQcmdTuples(res), "0") == 0)
        err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "no live API key %s", id);
    PQclear(res);
    return err;
}

static pigeon_err pq_owner_add(void *be, const char *queue_id, const char *key_id, const char *idem,
                               const unsigned char sha[32], int64_t now_ms)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    const char *v[5] = {queue_id, key_id, idem, NULL, now};
    return run(be,
               "INSERT INTO api_messages(queue_id, key_id, idem, req_sha, created_ms)"
               " VALUES ($1::text, $2::text, $3::text, $4::bytea, $5::bigint)",
               v, 5, sha, 4, "recording a message's owner", NULL);
}

static pigeon_err pq_owner_get(void *be, const char *queue_id, char *key_id, size_t size,
                               int64_t *cancelled_ms, int64_t *send_at_ms)
{
    pg_spool_pq *q = be;
    PGresult *res = NULL;
    const char *v[1] = {queue_id};
    pigeon_err err = run(q,
                         "SELECT key_id, cancelled_ms, send_at_ms FROM api_messages"
                         " WHERE queue_id = $1::text",
                         v, 1, NULL, 0, "reading a message's owner", &res);
    if (err == PIGEON_OK && PQntuples(res) == 0)
        err = pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "no message %s", queue_id);
    else if (err == PIGEON_OK) {
        copy_text(key_id, size, res, 0, 0);
        if (cancelled_ms != NULL)
            *cancelled_ms = pg_spool_pq_i64(res, 0, 1);
        if (send_at_ms != NULL)
            *send_at_ms = pg_spool_pq_i64(res, 0, 2);
    }
    PQclear(res);
    return err;
}

static pigeon_err pq_owner_cancel(void *be, const char *queue_id, int64_t now_ms)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    const char *v[2] = {now, queue_id};
    return run(be, "UPDATE api_messages SET cancelled_ms = $1::bigint WHERE queue_id = $2::text", v,
               2, NULL, 0, "cancelling a message", NULL);
}

/*
 * One statement: the message row and its recipients' rows locked FOR UPDATE (a daemon's
 * claim in progress holds the message row: this waits for it, and the recipients then
 * read as the claim left them, in flight; a claim after this passes the locked row by
 * with SKIP LOCKED), the message deleted only when none is in flight and some is open,
 * and its owner row marked cancelled in the same statement.
 */
static pigeon_err pq_cancel(void *be, const char *queue_id, int64_t now_ms,
                            pg_spool_cancel_result *result)
{
    PGresult *res = NULL;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    const char *v[2] = {queue_id, now};
    pigeon_err err =
        run(be,
            "WITH m AS (SELECT id FROM message WHERE queue_id = $1::text FOR UPDATE),"
            " r AS (SELECT state FROM rcpt WHERE msg IN (SELECT id FROM m) FOR UPDATE),"
            " c AS (SELECT count(*) FILTER (WHERE state = 1) AS busy,"
            "  count(*) FILTER (WHERE state IN (0, 2)) AS open FROM r),"
            " d AS (DELETE FROM message WHERE id IN (SELECT id FROM m)"
            "  AND (SELECT busy FROM c) = 0 AND (SELECT open FROM c) > 0 RETURNING id),"
            " u AS (UPDATE api_messages SET cancelled_ms = $2::bigint WHERE queue_id = $1::text"
            "  AND EXISTS (SELECT 1 FROM d) RETURNING 1)"
            " SELECT (SELECT count(*) FROM m), (SELECT busy FROM c), (SELECT open FROM c),"
            " (SELECT count(*) FROM d), (SELECT count(*) FROM u)",
            v, 2, NULL, 0, "cancelling a message", &res);
    if (err != PIGEON_OK)
        return err;
    *result = pg_spool_pq_i64(res, 0, 0) == 0   ? PG_SPOOL_CANCEL_GONE
              : pg_spool_pq_i64(res, 0, 1) > 0  ? PG_SPOOL_CANCEL_INFLIGHT
              : pg_spool_pq_i64(res, 0, 2) == 0 ? PG_SPOOL_CANCEL_NOTHING
                                                : PG_SPOOL_CANCELLED;
    PQclear(res);
    return PIGEON_OK;
}

static pigeon_err pq_owner_schedule(void *be, const char *queue_id, int64_t send_at_ms)
{
    char when[24];
    snprintf(when, sizeof when, "%lld", (long long)send_at_ms);
    const char *v[2] = {queue_id, when};
    return run(be,
               "WITH u AS (UPDATE api_messages SET send_at_ms = $2::bigint"
               " WHERE queue_id = $1::text RETURNING 1)"
               " UPDATE rcpt SET due_ms = $2::bigint WHERE state = 0 AND msg ="
               " (SELECT id FROM message WHERE queue_id = $1::text)",
               v, 2, NULL, 0, "scheduling a message", NULL);
}

static pigeon_err pq_idem_find(void *be, const char *key_id, const char *idem, int64_t since_ms,
                               char *queue_id, unsigned char sha[32])
{
    PGresult *res = NULL;
    char since[24];
    snprintf(since, sizeof since, "%lld", (long long)since_ms);
    const char *v[3] = {key_id, idem, since};
    pigeon_err err = run(be,
                         "SELECT queue_id, req_sha FROM api_messages WHERE key_id = $1::text"
                         " AND idem = $2::text AND created_ms >= $3::bigint"
                         " ORDER BY created_ms DESC LIMIT 1",
                         v, 3, NULL, 0, "reading an idempotency key", &res);
    if (err == PIGEON_OK && PQntuples(res) == 0)
        err = PIGEON_ERR_NOTFOUND;
    else if (err == PIGEON_OK) {
        copy_text(queue_id, PIGEON_SPOOL_ID_LEN + 1, res, 0, 0);
        memset(sha, 0, 32);
        pg_spool_pq_bytea(res, 0, 1, sha, 32);
    }
    PQclear(res);
    return err;
}

static pigeon_err pq_owner_expire(void *be, int64_t before_ms)
{
    char before[24];
    snprintf(before, sizeof before, "%lld", (long long)before_ms);
    const char *v[1] = {before};
    return run(be,
               "DELETE FROM api_messages a WHERE a.created_ms < $1::bigint AND NOT EXISTS"
               " (SELECT 1 FROM message m WHERE m.queue_id = a.queue_id)",
               v, 1, NULL, 0, "expiring message owners", NULL);
}

const pg_spool_api_ops pg_spool_pq_api_ops = {
    .key_add = pq_key_add,
    .key_get = pq_key_get,
    .key_list = pq_key_list,
    .key_revoke = pq_key_revoke,
    .owner_add = pq_owner_add,
    .owner_get = pq_owner_get,
    .owner_cancel = pq_owner_cancel,
    .cancel = pq_cancel,
    .owner_schedule = pq_owner_schedule,
    .idem_find = pq_idem_find,
    .owner_expire = pq_owner_expire,
};
