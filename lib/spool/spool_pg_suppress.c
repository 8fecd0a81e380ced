/*
 * spool_pg_suppress.c - the suppression list in the PostgreSQL spool (see
 * pigeon/suppress.h and spool/spool_suppress.h), with the SQLite side's semantics
 * (spool_sqlite_suppress.c).
 *
 * The tables come with migration 2 (spool_pg_schema.c): suppression keyed by (key,
 * account), and suppression_soft, the soft-bounce events. Every operation is one
 * statement (so one round trip, atomic on its own, or inside the caller's batch): a soft
 * bounce records its event, forgets those before the window, counts those within it on
 * the address's row of times (migration 4: concurrent soft bounces serialize on that
 * row) and lists the key when enough remain, in one statement of data-modifying CTEs; a batch check
 * looks every key up in one statement over arrays, the account's own entry before the global one.
 */
#include <stdio.h>
#include <string.h>

#include "spool/spool_pg.h"
#include "spool/spool_suppress.h"

/* The columns of an upsert's VALUES: $1 key, $2 account, $3 address, $4 reason, $5
 * status, $6 diagnostic, $7 queue id, $8 created_ms (also updated_ms). */
#define UPSERT_HEAD                                                                                \
    "INSERT INTO suppression(key, account, address, reason, status, diagnostic, queue_id,"         \
    " created_ms, updated_ms)"

/* The row's values as $1..$8 (see UPSERT_HEAD). */
static void row_params(pg_spool_pq_params *p, const pg_spool_suppress_row *r)
{
    pg_spool_pq_p_text(p, r->key);
    pg_spool_pq_p_text(p, r->account);
    pg_spool_pq_p_text(p, r->address);
    pg_spool_pq_p_i64(p, (int64_t)r->reason);
    pg_spool_pq_p_text(p, r->status);
    pg_spool_pq_p_text(p, r->diagnostic);
    pg_spool_pq_p_text(p, r->queue_id);
    pg_spool_pq_p_i64(p, r->created_ms);
}

static pigeon_err pq_add(void *be, const pg_spool_suppress_row *row)
{
    pg_spool_pq_params p = {0};
    row_params(&p, row);
    return pg_spool_pq_exec_params(
        be,
        UPSERT_HEAD " VALUES ($1::text, $2::text, $3::text, $4::int, $5::text, $6::text,"
                    " $7::text, $8::bigint, $8::bigint) ON CONFLICT (key, account) DO"
                    " UPDATE SET reason = excluded.reason, status = excluded.status,"
                    " diagnostic = excluded.diagnostic, queue_id = excluded.queue_id,"
                    " updated_ms = excluded.updated_ms",
        &p, "storing a suppression", NULL);
}

/* The event (kept for the record), forgetting events before the window, and the count
 * since the window's start (this event's and any dated after it: clocks of two hosts a
 * millisecond apart) from the address's row of times, which an
 * upsert appends to: ON CONFLICT DO UPDATE locks that row and works on its latest
 * version, so two soft bounces of one address at the same instant (two daemons, or a
 * daemon and `bounces fetch`) serialize there and the second counts the first. (Counting
 * the events of suppression_soft instead, under each statement's snapshot, let both miss
 * each other: neither reached the limit.) The entry is added when the count reaches the
 * limit (a soft bounce never replaces an entry: DO NOTHING). Returns the count. */
static const char soft_sql[] =
    "WITH ev AS (INSERT INTO suppression_soft(key, account, at_ms, status, diagnostic,"
    " queue_id) VALUES ($1::text, $2::text, $8::bigint, $5::text, $6::text, $7::text)),"
    " old AS (DELETE FROM suppression_soft WHERE key = $1::text AND account = $2::text"
    " AND at_ms < $9::bigint),"
    " t AS (INSERT INTO suppression_soft_times AS t(key, account, times) VALUES ($1::text,"
    " $2::text, ARRAY[$8::bigint]) ON CONFLICT (key, account) DO UPDATE SET times ="
    " ARRAY(SELECT x FROM unnest(t.times || $8::bigint) x WHERE x >= $9::bigint ORDER BY x)"
    " RETURNING times),"
    " n AS (SELECT count(*) AS c FROM t, unnest(t.times) x WHERE x >= $9::bigint),"
    " s AS (" UPSERT_HEAD " SELECT $1::text, $2::text, $3::text, $4::int, $5::text, $6::text,"
    " $7::text, $8::bigint, $8::bigint FROM n WHERE n.c >= $10::bigint"
    " ON CONFLICT (key, account) DO NOTHING)"
    " SELECT c FROM n";

static pigeon_err pq_soft(void *be, const pg_spool_suppress_row *row, int64_t since_ms, int limit,
                          int *suppressed)
{
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    row_params(&p, row);
    pg_spool_pq_p_i64(&p, since_ms);
    pg_spool_pq_p_i64(&p, limit);
    pigeon_err err = pg_spool_pq_exec_params(be, soft_sql, &p, "recording a soft bounce", &res);
    if (err == PIGEON_OK && PQntuples(res) == 1 && pg_spool_pq_i64(res, 0, 0) >= limit)
        *suppressed = 1;
    PQclear(res);
    return err;
}

static pigeon_err pq_remove(void *be, const char *account, const char *key, size_t *count)
{
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    *count = 0;
    pg_spool_pq_p_text(&p, key);
    pg_spool_pq_p_text(&p, account);
    pigeon_err err = pg_spool_pq_exec_params(
        be,
        "WITH a AS (DELETE FROM suppression WHERE key = $1::text AND account ="
        " $2::text RETURNING 1), b AS (DELETE FROM suppression_soft WHERE key ="
        " $1::text AND account = $2::text RETURNING 1), c AS (DELETE FROM"
        " suppression_soft_times WHERE key = $1::text AND account = $2::text)"
        " SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)",
        &p, "removing a suppression", &res);
    if (err == PIGEON_OK && PQntuples(res) == 1)
        *count = (size_t)pg_spool_pq_i64(res, 0, 0);
    PQclear(res);
    return err;
}

/* Every key (with its exact address or NULL, and its index) in one statement; per key
 * the account's own entry first, then the global one. */
static const char check_sql[] =
    "SELECT u.i, s.reason, s.account, s.status, s.created_ms FROM unnest($2::text[],"
    " $3::text[], $4::int[]) AS u(k, ex, i) CROSS JOIN LATERAL (SELECT reason, account, status,"
    " created_ms FROM suppression WHERE key = u.k AND account IN ($1::text, '*') AND (u.ex IS"
    " NULL OR address = u.ex) ORDER BY account = '*' LIMIT 1) s";

static pigeon_err pq_check(void *be, const char *account, const char *const *keys,
                           const char *const *exact, size_t n, pigeon_suppress_hit *hits)
{
    pg_spool_pq *q = be;
    pg_spool_pq_arr k, ex, idx;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    pg_spool_pq_arr_init(&k, 25);
    pg_spool_pq_arr_init(&ex, 25);
    pg_spool_pq_arr_init(&idx, 23);
    for (size_t i = 0; i < n; i++) {
        if (keys[i] == NULL)
            continue;
        pg_spool_pq_arr_text(&k, keys[i]);
        pg_spool_pq_arr_text(&ex, exact != NULL ? exact[i] : NULL);
        pg_spool_pq_arr_i32(&idx, (int32_t)i);
    }
    pigeon_err err = PIGEON_OK;
    if (k.nomem || ex.nomem || idx.nomem)
        err = pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    else if (k.n > 0) {
        pg_spool_pq_p_text(&p, account);
        pg_spool_pq_p_arr(&p, &k);
        pg_spool_pq_p_arr(&p, &ex);
        pg_spool_pq_p_arr(&p, &idx);
        err = pg_spool_pq_run_sql(q, PQ_SUPPRESS_CHECK, check_sql, &p, 0, "checking a suppression",
                                  &res);
    }
    for (int row = 0; err == PIGEON_OK && res != NULL && row < PQntuples(res); row++) {
        int64_t i = pg_spool_pq_i64(res, row, 0);
        if (i < 0 || (size_t)i >= n)
            continue;
        pigeon_suppress_hit *hit = &hits[i];
        hit->reason = (pigeon_suppress_reason)pg_spool_pq_i64(res, row, 1);
        hit->global = strcmp(PQgetvalue(res, row, 2), "*") == 0;
        snprintf(hit->status, sizeof hit->status, "%s", PQgetvalue(res, row, 3));
        hit->created_ms = pg_spool_pq_i64(res, row, 4);
    }
    PQclear(res);
    pg_spool_pq_arr_free(&k);
    pg_spool_pq_arr_free(&ex);
    pg_spool_pq_arr_free(&idx);
    return err;
}

static pigeon_err pq_list(void *be, const char *account, pigeon_suppress_reason reason,
                          int (*fn)(void *ctx, const pigeon_suppress_entry *entry), void *ctx)
{
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    pg_spool_pq_p_text(&p, account);
    pg_spool_pq_p_i64(&p, (int64_t)reason);
    /* COLLATE "C": the order of the SQLite side (bytes), whatever the database's locale. */
    pigeon_err err =
        pg_spool_pq_exec_params(be,
                                "SELECT account, address, reason, status, diagnostic, queue_id,"
                                " created_ms FROM suppression WHERE ($1::text IS NULL OR account ="
                                " $1::text) AND ($2::int = 0 OR reason = $2::int)"
                                " ORDER BY account COLLATE \"C\", key COLLATE \"C\"",
                                &p, "listing suppressions", &res);
    for (int row = 0; err == PIGEON_OK && row < PQntuples(res); row++) {
        pigeon_suppress_entry e = {
            .account = PQgetvalue(res, row, 0),
            .address = PQgetvalue(res, row, 1),
            .reason = (pigeon_suppress_reason)pg_spool_pq_i64(res, row, 2),
            .status = PQgetvalue(res, row, 3),
            .diagnostic = PQgetvalue(res, row, 4),
            .queue_id = PQgetvalue(res, row, 5),
            .created_ms = pg_spool_pq_i64(res, row, 6),
        };
        if (fn(ctx, &e) != 0)
            break;
    }
    PQclear(res);
    return err;
}

const pg_spool_suppress_ops pg_spool_pq_suppress_ops = {
    .add = pq_add,
    .soft = pq_soft,
    .remove = pq_remove,
    .check = pq_check,
    .list = pq_list,
};
