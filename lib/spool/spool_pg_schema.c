/*
 * spool_pg_schema.c - the PostgreSQL spool's schema under versioned migrations.
 *
 * Table schema_version holds one row per migration applied. On open the version is read
 * (nothing is written for that): an empty database gets every migration, an older one the
 * missing ones, each in one transaction under an advisory lock (two daemons starting at
 * once migrate once); a database newer than this code, or with another program's tables
 * and no schema_version, is refused untouched, as the SQLite backend refuses a newer or
 * foreign file. Migrations only ever add (tables, columns with defaults, indexes,
 * functions), so that an older pigeon still running beside a newer one keeps working
 * until it is upgraded in turn.
 *
 * Rows are those of the SQLite backend (spool_sqlite.c): a recipient that can be claimed
 * has due_ms set, final ones NULL, so "due" is one range scan of a partial index. Bodies
 * are bytea chunks of at most 256 KiB, in the same transaction as their message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool_pg.h"

/* Any constant: the advisory lock migrations take (pg_advisory_xact_lock). */
#define MIGRATE_LOCK 7063537001LL

/* Migration 1: the queue, the holders of leases, the submission service's tables, and
 * the function that records outcomes (the update and the removal of finished messages in
 * one call: one round trip, one atomic statement). */
static const char migration_1[] =
    "CREATE TABLE message("
    " id bigserial PRIMARY KEY,"
    " queue_id text NOT NULL UNIQUE,"
    " message_id text NOT NULL,"
    " account text NOT NULL,"
    " mail_from text NOT NULL,"
    " size bigint NOT NULL,"
    " sha256 bytea,"
    " created_ms bigint NOT NULL);"
    "CREATE TABLE body("
    " msg bigint NOT NULL REFERENCES message(id) ON DELETE CASCADE,"
    " seq integer NOT NULL,"
    " data bytea NOT NULL,"
    " PRIMARY KEY(msg, seq));"
    "CREATE TABLE rcpt("
    " id bigserial PRIMARY KEY,"
    " msg bigint NOT NULL REFERENCES message(id) ON DELETE CASCADE,"
    " address text NOT NULL,"
    " state smallint NOT NULL,"
    " due_ms bigint,"
    " attempts integer NOT NULL DEFAULT 0,"
    " owner text,"
    " lease bigint,"
    " err integer NOT NULL DEFAULT 0,"
    " smtp_code integer NOT NULL DEFAULT 0,"
    " enhanced text,"
    " text text,"
    " updated_ms bigint NOT NULL,"
    " holder bigint,"
    " UNIQUE(msg, address));"
    "CREATE INDEX rcpt_due ON rcpt(due_ms) WHERE due_ms IS NOT NULL;"
    "CREATE INDEX rcpt_lease ON rcpt(lease) WHERE lease IS NOT NULL;"
    "CREATE INDEX rcpt_holder ON rcpt(holder) WHERE holder IS NOT NULL;"
    "CREATE TABLE account("
    " name text PRIMARY KEY,"
    " not_before_ms bigint NOT NULL,"
    " reason text);"
    "CREATE TABLE holder("
    " id bigserial PRIMARY KEY,"
    " host text NOT NULL,"
    " boot_id text NOT NULL,"
    " pid bigint NOT NULL,"
    " started bigint NOT NULL,"
    " UNIQUE(host, boot_id, pid, started));"
    "CREATE TABLE api_keys("
    " id text PRIMARY KEY, hash bytea NOT NULL, account text NOT NULL, domains text NOT NULL,"
    " scopes text NOT NULL, rate double precision NOT NULL, created_ms bigint NOT NULL,"
    " revoked_ms bigint NOT NULL DEFAULT 0);"
    "CREATE TABLE api_messages("
    " queue_id text PRIMARY KEY, key_id text NOT NULL, idem text, req_sha bytea NOT NULL,"
    " created_ms bigint NOT NULL, cancelled_ms bigint NOT NULL DEFAULT 0);"
    "CREATE INDEX api_messages_idem ON api_messages(key_id, idem) WHERE idem IS NOT NULL;"
    /* Delivered is recorded always (acceptance is a fact), other outcomes only under the
     * lease; the ids updated are returned, so that the caller counts the others as lost. */
    "CREATE FUNCTION pigeon_record(ids bigint[], leases bigint[], states integer[],"
    " dues bigint[], errs integer[], codes integer[], enh text[], txt text[], qids text[],"
    " now_ms bigint) RETURNS SETOF bigint LANGUAGE plpgsql AS $f$ "
    "BEGIN "
    " RETURN QUERY UPDATE rcpt r SET state = u.st, due_ms = CASE WHEN u.st = 2 THEN u.due END,"
    "  owner = NULL, lease = NULL, err = CASE WHEN u.st = 3 THEN 0 ELSE u.err END,"
    "  smtp_code = u.code, enhanced = u.enh, text = u.txt, updated_ms = now_ms"
    "  FROM unnest(ids, leases, states, dues, errs, codes, enh, txt)"
    "   AS u(id, lease, st, due, err, code, enh, txt)"
    "  WHERE r.id = u.id AND ((u.st = 3 AND r.state <> 3)"
    "   OR (u.st <> 3 AND r.state = 1 AND r.lease = u.lease))"
    "  RETURNING r.id;"
    " DELETE FROM message m WHERE m.queue_id = ANY(qids) AND NOT EXISTS"
    "  (SELECT 1 FROM rcpt x WHERE x.msg = m.id AND x.state <> 3);"
    "END $f$;";

/* Migration 2: the suppression list (spool_pg_suppress.c), as on SQLite: entries keyed by
 * (key, account) so that a check is one index seek for the account's entry and the
 * global one, and the soft-bounce events indexed for the window count. */
static const char migration_2[] =
    "CREATE TABLE suppression("
    " key text NOT NULL, account text NOT NULL, address text NOT NULL,"
    " reason integer NOT NULL, status text NOT NULL DEFAULT '',"
    " diagnostic text NOT NULL DEFAULT '', queue_id text NOT NULL DEFAULT '',"
    " created_ms bigint NOT NULL, updated_ms bigint NOT NULL,"
    " PRIMARY KEY(key, account));"
    "CREATE INDEX suppression_account ON suppression(account, key);"
    "CREATE TABLE suppression_soft("
    " key text NOT NULL, account text NOT NULL, at_ms bigint NOT NULL,"
    " status text NOT NULL DEFAULT '', diagnostic text NOT NULL DEFAULT '',"
    " queue_id text NOT NULL DEFAULT '');"
    "CREATE INDEX suppression_soft_key ON suppression_soft(key, account, at_ms);";

/* Migration 3: shared sending limits (spool_pg_limits.c), one row per account: the token
 * bucket (tokens left, when counted) and the UTC day's count, as on SQLite. */
static const char migration_3[] =
    "CREATE TABLE limits("
    " account text PRIMARY KEY, tokens double precision NOT NULL,"
    " at_ms bigint NOT NULL, day bigint NOT NULL, sent bigint NOT NULL);";

/* Migration 4: the not-before time a message was submitted with over the API (send_at),
 * shown by GET /v1/messages/{id}; the recipients' due_ms is what holds the daemon back. */
static const char migration_4[] =
    "ALTER TABLE api_messages ADD COLUMN IF NOT EXISTS send_at_ms bigint NOT NULL DEFAULT 0;";

static const char *const migrations[PG_SPOOL_PQ_VERSION] = {migration_1, migration_2, migration_3,
                                                            migration_4};

/* The schema version (0: none yet), or -1 with *foreign set when the database holds
 * tables of ours without schema_version (another program's, or damaged). */
static pigeon_err read_version(pg_spool_pq *q, int64_t *version, int *foreign)
{
    PGresult *res = NULL;
    *version = 0;
    *foreign = 0;
    static const char sql[] =
        "SELECT CASE WHEN to_regclass('schema_version') IS NULL THEN -1 END, "
        "(SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() "
        " AND tablename IN ('message', 'rcpt', 'body'))";
    res = PQexecParams(q->conn, sql, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pigeon_err err = pg_spool_pq_err(q, res, "reading the schema version");
        PQclear(res);
        return err;
    }
    int missing = !PQgetisnull(res, 0, 0);
    int ours = (int)pg_spool_pq_i64(res, 0, 1);
    PQclear(res);
    if (missing) {
        *foreign = ours > 0;
        return PIGEON_OK;
    }
    res = PQexecParams(q->conn, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL,
                       NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pigeon_err err = pg_spool_pq_err(q, res, "reading the schema version");
        PQclear(res);
        return err;
    }
    *version = pg_spool_pq_i64(res, 0, 0);
    PQclear(res);
    return PIGEON_OK;
}

/* Applies the migrations after version, under the lock, after looking again. */
static pigeon_err apply(pg_spool_pq *q)
{
    char sql[160];
    int64_t version = 0;
    int foreign = 0;
    snprintf(sql, sizeof sql, "BEGIN; SELECT pg_advisory_xact_lock(%lld);",
             (long long)MIGRATE_LOCK);
    pigeon_err err = pg_spool_pq_exec(q, sql, "locking the schema");
    if (err == PIGEON_OK)
        err = read_version(q, &version, &foreign);
    if (err == PIGEON_OK && version == 0)
        err = pg_spool_pq_exec(q,
                               "CREATE TABLE IF NOT EXISTS schema_version(version integer "
                               "PRIMARY KEY, applied_ms bigint NOT NULL)",
                               "creating the schema version table");
    for (int64_t v = version + 1; err == PIGEON_OK && v <= PG_SPOOL_PQ_VERSION; v++) {
        err = pg_spool_pq_exec(q, migrations[v - 1], "migrating the spool");
        snprintf(sql, sizeof sql,
                 "INSERT INTO schema_version VALUES(%lld, "
                 "(extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
                 (long long)v);
        if (err == PIGEON_OK)
            err = pg_spool_pq_exec(q, sql, "migrating the spool");
    }
    if (err == PIGEON_OK)
        return pg_spool_pq_exec(q, "COMMIT", "committing the migration");
    char keep[sizeof q->diag->text];
    memcpy(keep, q->diag->text, sizeof keep);
    if (q->conn != NULL)
        PQclear(PQexec(q->conn, "ROLLBACK"));
    memcpy(q->diag->text, keep, sizeof keep);
    return err;
}

pigeon_err pg_spool_pq_migrate(pg_spool_pq *q)
{
    int64_t version = 0;
    int foreign = 0;
    pigeon_err err = read_version(q, &version, &foreign);
    if (err != PIGEON_OK)
        return err;
    if (foreign)
        return pg_spool_fail(q->diag, PIGEON_ERR_CORRUPT,
                             "spool: %s holds tables named like the spool's but no "
                             "schema_version: not a pigeon spool; refusing to use it, nothing "
                             "was changed",
                             q->shown);
    if (version > PG_SPOOL_PQ_VERSION)
        return pg_spool_fail(q->diag, PIGEON_ERR_CORRUPT,
                             "spool: %s has schema version %lld, newer than this pigeon "
                             "understands (%d); upgrade pigeon. Nothing was changed",
                             q->shown, (long long)version, PG_SPOOL_PQ_VERSION);
    if (version == PG_SPOOL_PQ_VERSION)
        return PIGEON_OK;
    if (version == 0 && !(q->flags & PIGEON_SPOOL_CREATE))
        return pg_spool_fail(q->diag, PIGEON_ERR_NOTFOUND, "spool: %s holds no spool yet",
                             q->shown);
    if (q->flags & PIGEON_SPOOL_READONLY)
        return pg_spool_fail(q->diag, PIGEON_ERR_STATE,
                             "spool: %s has schema version %lld, older than this pigeon's (%d): "
                             "run `pigeon queue migrate`",
                             q->shown, (long long)version, PG_SPOOL_PQ_VERSION);
    return apply(q);
}
