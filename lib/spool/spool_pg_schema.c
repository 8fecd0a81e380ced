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
 * until it is upgraded in turn; the one removal, of the foreign keys in migration 7,
 * leaves a trigger doing what older code relied on them for (the children deleted with
 * their message).
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

/* pigeon_record()'s parameters and its last two statements, as every migration that
 * (re)creates it writes them: the outcomes written (delivered always, acceptance being a
 * fact; the others only under their lease; the ids updated returned, so that the caller
 * counts the others as lost), then the messages left with every recipient delivered
 * removed. */
#define RECORD_PARAMS                                                                              \
    "(ids bigint[], leases bigint[], states integer[],"                                            \
    " dues bigint[], errs integer[], codes integer[], enh text[], txt text[], qids text[],"        \
    " now_ms bigint) RETURNS SETOF bigint"
#define RECORD_OUTCOMES                                                                            \
    " RETURN QUERY UPDATE rcpt r SET state = u.st, due_ms = CASE WHEN u.st = 2 THEN u.due END,"    \
    "  owner = NULL, lease = NULL, err = CASE WHEN u.st = 3 THEN 0 ELSE u.err END,"                \
    "  smtp_code = u.code, enhanced = u.enh, text = u.txt, updated_ms = now_ms"                    \
    "  FROM unnest(ids, leases, states, dues, errs, codes, enh, txt)"                              \
    "   AS u(id, lease, st, due, err, code, enh, txt)"                                             \
    "  WHERE r.id = u.id AND ((u.st = 3 AND r.state <> 3)"                                         \
    "   OR (u.st <> 3 AND r.state = 1 AND r.lease = u.lease))"                                     \
    "  RETURNING r.id;"                                                                            \
    " DELETE FROM message m WHERE m.queue_id = ANY(qids) AND NOT EXISTS"                           \
    "  (SELECT 1 FROM rcpt x WHERE x.msg = m.id AND x.state <> 3);"

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
    "CREATE FUNCTION pigeon_record" RECORD_PARAMS " LANGUAGE plpgsql AS $f$ "
    "BEGIN " RECORD_OUTCOMES "END $f$;";

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

/* Migration 4:
 * - bodies compressed with LZ4 (when the server has it) instead of pglz: pglz cost about
 *   65 us of server CPU per 8.7 KB message on enqueue, LZ4 under 10 (bench/pg.sh), for
 *   about the same size; and kept inline up to a page (toast_tuple_target), so that a
 *   compressed body of a few KB is one heap row, not a row plus TOAST chunks and their
 *   index entries. Both apply to rows written from now on.
 * - soft bounces counted on one row per address (suppression_soft_times), updated by an
 *   upsert: two soft bounces of one address at the same instant serialize on that row
 *   and each sees the other's (see spool_pg_suppress.c), where counting the events of
 *   suppression_soft under each statement's snapshot could miss both.
 * - the webhook outbox (spool_pg_hooks.c): its tables, and the trigger functions that
 *   write an outcome's event in the statement that stores the outcome (the triggers
 *   themselves are created when the outbox is enabled). */
static const char migration_4[] =
    "DO $d$ BEGIN"
    " ALTER TABLE body ALTER COLUMN data SET COMPRESSION lz4;"
    " EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL; END $d$;"
    "ALTER TABLE body SET (toast_tuple_target = 8160);"
    "CREATE TABLE suppression_soft_times("
    " key text NOT NULL, account text NOT NULL, times bigint[] NOT NULL,"
    " PRIMARY KEY(key, account));"
    "INSERT INTO suppression_soft_times SELECT key, account, array_agg(at_ms ORDER BY at_ms)"
    " FROM suppression_soft GROUP BY key, account;"
    /* ins: the order rows were written in; id: the order senders see, given under a lock
     * to committed rows only (spool_pg_hooks.c says why), NULL until then. */
    "CREATE SEQUENCE hook_event_id;"
    "CREATE TABLE hook_events("
    " ins bigserial PRIMARY KEY, id bigint UNIQUE, type integer NOT NULL, queue_id text,"
    " rcpt text NOT NULL, account text, key_id text, message_id text,"
    " code integer NOT NULL DEFAULT 0, enhanced text, text text,"
    " attempts integer NOT NULL DEFAULT 0, at_ms bigint NOT NULL);"
    "CREATE INDEX hook_events_new ON hook_events(ins) WHERE id IS NULL;"
    "CREATE INDEX hook_events_queued ON hook_events(queue_id) WHERE type = 0;"
    "CREATE TABLE hook_sinks("
    " name text PRIMARY KEY, cursor bigint NOT NULL, failures bigint NOT NULL DEFAULT 0,"
    " next_ms bigint NOT NULL DEFAULT 0, delivered bigint NOT NULL DEFAULT 0,"
    " given_up bigint NOT NULL DEFAULT 0, last_error text);"
    "CREATE TABLE hook_keys("
    " key_id text PRIMARY KEY, url text NOT NULL, secret text NOT NULL, types bigint NOT NULL);"
    /* Statement triggers over transition tables: one INSERT ... SELECT per statement that
     * stores outcomes, however many rows it touched. The transitions that are outcomes
     * are those of the SQLite side (spool_sqlite_hooks.c). */
    "CREATE FUNCTION pigeon_hook_queued() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
    " INSERT INTO hook_events(type, queue_id, rcpt, account, key_id, message_id, at_ms)"
    "  SELECT 0, m.queue_id, n.address, m.account, (SELECT a.key_id FROM api_messages a"
    "  WHERE a.queue_id = m.queue_id), m.message_id, n.updated_ms FROM new_rows n"
    "  JOIN message m ON m.id = n.msg ORDER BY n.id;"
    " RETURN NULL; END $f$;"
    "CREATE FUNCTION pigeon_hook_outcome() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
    " INSERT INTO hook_events(type, queue_id, rcpt, account, key_id, message_id, code,"
    "  enhanced, text, attempts, at_ms)"
    "  SELECT CASE n.state WHEN 2 THEN 2 WHEN 3 THEN 1 ELSE CASE WHEN n.smtp_code = 0 AND"
    "  n.text LIKE 'suppressed:%' THEN 5 ELSE 6 END END, m.queue_id, n.address, m.account,"
    "  coalesce((SELECT a.key_id FROM api_messages a WHERE a.queue_id = m.queue_id), ''),"
    "  m.message_id, n.smtp_code, n.enhanced, n.text, n.attempts, n.updated_ms"
    "  FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN message m ON m.id = n.msg"
    "  WHERE n.state IN (2, 3, 4) AND n.attempts = o.attempts"
    "  AND (o.state = 1 OR (n.state = 3 AND o.state <> 3)) ORDER BY n.id;"
    " RETURN NULL; END $f$;"
    "CREATE FUNCTION pigeon_hook_owner() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
    " UPDATE hook_events h SET key_id = n.key_id FROM new_rows n"
    "  WHERE h.queue_id = n.queue_id AND h.type = 0 AND h.key_id IS NULL;"
    " RETURN NULL; END $f$;";

/* Migration 5: the not-before time a message was submitted with over the API (send_at),
 * shown by GET /v1/messages/{id}; the recipients' due_ms is what holds the daemon back. */
static const char migration_5[] =
    "ALTER TABLE api_messages ADD COLUMN IF NOT EXISTS send_at_ms bigint NOT NULL DEFAULT 0;";

/* Migration 6: plans that do not depend on the tables' statistics (bench/pg.sh: a drain
 * spent about 1 ms of server CPU per message without it).
 * - The claim becomes a function, pigeon_claim(), whose statement is planned once per
 *   connection (a generic plan) with sequential, bitmap, hash and merge plans ruled out,
 *   and each due row's message looked up and locked in a lateral subquery (which its row
 *   lock keeps from being turned into a join): the only plan left walks the due index in
 *   due order, takes each message at its first due recipient, locks it (SKIP LOCKED:
 *   concurrent claimers never wait for each other) and stops once it holds max messages.
 *   Planned from statistics instead, a queue filled faster than autovacuum analyzes it (a
 *   bulk enqueue, then the drain) was estimated at a few hundred rows, and every claim
 *   joined and sorted the whole queue: a drain quadratic in the queue's length. The
 *   window of candidates the old statement read and sorted (its scan bound, now unused)
 *   was 12 rows per message claimed.
 * - pigeon_record() keeps its body, with the same settings: its two statements were
 *   planned anew on every call (custom plans for array parameters), about half of its
 *   cost for the one message a daemon records at a time.
 * Both can be created again (a re-run after a schema rollback). */
static const char migration_6[] =
    "CREATE OR REPLACE FUNCTION pigeon_claim(bigint, text, integer, integer, text, bigint,"
    " bigint, bigint) RETURNS TABLE(c_msg bigint, c_id bigint, c_address text,"
    " c_state smallint, c_attempts integer, c_due bigint, c_owner text, c_err integer,"
    " c_code integer, c_enhanced text, c_text text, c_updated bigint) LANGUAGE plpgsql"
    " SET plan_cache_mode = force_generic_plan SET enable_seqscan = off"
    " SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off"
    " AS $f$ BEGIN RETURN QUERY "
    "WITH acct AS (SELECT coalesce($2, (SELECT m.account FROM rcpt r JOIN message m"
    " ON m.id = r.msg WHERE r.due_ms <= $1 AND NOT EXISTS (SELECT 1 FROM account a"
    " WHERE a.name = m.account AND a.not_before_ms > $1) ORDER BY r.due_ms"
    " LIMIT 1)) AS name),"
    " pick AS (SELECT m.id FROM rcpt r CROSS JOIN LATERAL (SELECT m.id FROM message m"
    " WHERE m.id = r.msg AND m.account = (SELECT name FROM acct) AND NOT EXISTS (SELECT 1"
    " FROM account a WHERE a.name = m.account AND a.not_before_ms > $1) AND NOT EXISTS"
    " (SELECT 1 FROM rcpt f WHERE f.msg = r.msg AND f.due_ms <= $1 AND (f.due_ms, f.id) <"
    " (r.due_ms, r.id)) FOR UPDATE SKIP LOCKED) m WHERE r.due_ms <= $1"
    " ORDER BY r.due_ms LIMIT $3)"
    " UPDATE rcpt r SET state = 1, owner = $5, lease = $6, due_ms = $7,"
    " attempts = r.attempts + 1, updated_ms = $1, holder = $8 FROM pick"
    " WHERE r.msg = pick.id AND r.due_ms <= $1 RETURNING r.msg, r.id, r.address,"
    " r.state, r.attempts, r.due_ms, r.owner, r.err, r.smtp_code, r.enhanced, r.text,"
    " r.updated_ms;"
    " END $f$;"
    "ALTER FUNCTION pigeon_record(bigint[], bigint[], integer[], bigint[], integer[],"
    " integer[], text[], text[], text[], bigint) SET plan_cache_mode = force_generic_plan;"
    "ALTER FUNCTION pigeon_record(bigint[], bigint[], integer[], bigint[], integer[],"
    " integer[], text[], text[], text[], bigint) SET enable_seqscan = off;"
    "ALTER FUNCTION pigeon_record(bigint[], bigint[], integer[], bigint[], integer[],"
    " integer[], text[], text[], text[], bigint) SET enable_bitmapscan = off;"
    "ALTER FUNCTION pigeon_record(bigint[], bigint[], integer[], bigint[], integer[],"
    " integer[], text[], text[], text[], bigint) SET enable_hashjoin = off;";

/* Migration 7: a batch of messages is loaded with binary COPY (spool_pg_copy.c), which
 * cannot ask the server for the ids of the rows it inserts, and the children's checks
 * cost more than the rows (bench/pg.sh):
 * - message ids are given out in blocks of PG_SPOOL_PQ_ID_BLOCK: every nextval() of the
 *   sequence reserves the block starting at the value it returns, so that a batch takes
 *   one nextval() for up to that many messages and writes the ids itself. A row inserted
 *   with the column's default (an older pigeon, a single message) takes a block too and
 *   uses its first id: ids stay unique, only sparser.
 * - the foreign keys of rcpt and body on message go (about 20 us of server CPU per
 *   message, a lookup and a row lock of the message for every child row inserted); their
 *   ON DELETE CASCADE becomes one statement trigger, message_cascade, which deletes the
 *   children of the messages a statement deleted, by index, in that statement. Every path
 *   that deletes messages (outcomes, queue delete and purge, API cancel, undoing a failed
 *   enqueue), this pigeon's and an older one's still running beside it, keeps relying on
 *   deleting the message alone. Children are only ever inserted with their message, in its
 *   transaction, so the check the keys made never failed.
 * It can be applied again (a re-run after a schema rollback). */
static const char migration_7[] =
    "ALTER TABLE rcpt DROP CONSTRAINT IF EXISTS rcpt_msg_fkey;"
    "ALTER TABLE body DROP CONSTRAINT IF EXISTS body_msg_fkey;"
    "CREATE OR REPLACE FUNCTION pigeon_cascade() RETURNS trigger LANGUAGE plpgsql"
    " SET enable_seqscan = off SET enable_bitmapscan = off AS $f$ BEGIN"
    " DELETE FROM rcpt WHERE msg = ANY(ARRAY(SELECT id FROM gone));"
    " DELETE FROM body WHERE msg = ANY(ARRAY(SELECT id FROM gone));"
    " RETURN NULL; END $f$;"
    "CREATE OR REPLACE TRIGGER message_cascade AFTER DELETE ON message REFERENCING OLD TABLE"
    " AS gone FOR EACH STATEMENT EXECUTE FUNCTION pigeon_cascade();"
    "ALTER SEQUENCE message_id_seq INCREMENT BY " PG_SPOOL_PQ_ID_BLOCK_SQL ";";

/* Migration 8: pigeon_record() locks the messages it records (FOR NO KEY UPDATE, in id
 * order) before it updates their recipients. Two daemons recording the last two
 * recipients of one message at once each saw the other's recipient still undelivered (an
 * uncommitted update), so neither removed the message: delivered to all, it stayed in the
 * queue. Now the second waits for the first to commit, and its statements (each with a
 * fresh snapshot, READ COMMITTED) see that recipient delivered. The lock is per message:
 * workers recording their own messages never wait for each other. Claims take rcpt rows
 * with SKIP LOCKED and deletes take the message first, so the order is message, then
 * recipients, everywhere. The settings are migration 6's. It can be applied again. */
static const char migration_8[] =
    "CREATE OR REPLACE FUNCTION pigeon_record" RECORD_PARAMS " LANGUAGE plpgsql"
    " SET plan_cache_mode = force_generic_plan SET enable_seqscan = off"
    " SET enable_bitmapscan = off SET enable_hashjoin = off AS $f$ "
    "BEGIN "
    " PERFORM 1 FROM message m WHERE m.queue_id = ANY(qids) ORDER BY m.id"
    "  FOR NO KEY UPDATE;" RECORD_OUTCOMES "END $f$;";

/* Migration 9: pigeon_record() removes a message all of whose recipients are delivered
 * once these outcomes are counted without first updating the rows it removes (a daemon
 * records one message at a time, most often its last recipients delivered). Before, each
 * such recipient was updated (a new row version, its index entries, WAL), then deleted
 * with its message: the update was 15% of the server's CPU per message drained
 * (bench/pg.sh: 295 -> 250 us, the drain 9% faster). The message rows are locked FOR
 * UPDATE (the delete's lock, taken at once; migration 8 took FOR NO KEY UPDATE, in the
 * same id order), so that two daemons recording a message's last recipients still see
 * each other's commit. The outcomes of the other messages are written as before; the
 * delivered ones of removed messages are not returned, which the caller only asks of
 * the other outcomes. With the webhook outbox enabled (spool_pg_hooks.c), whose trigger
 * makes each delivery's event from the update, the function keeps migration 8's way: the
 * recipients updated, then the finished messages removed. The settings are migration 6's.
 * It can be applied again. */
static const char migration_9[] =
    "CREATE OR REPLACE FUNCTION pigeon_record" RECORD_PARAMS " LANGUAGE plpgsql"
    " SET plan_cache_mode = force_generic_plan SET enable_seqscan = off"
    " SET enable_bitmapscan = off SET enable_hashjoin = off AS $f$ "
    "DECLARE removed integer; "
    "BEGIN "
    " PERFORM 1 FROM message m WHERE m.queue_id = ANY(qids) ORDER BY m.id FOR UPDATE;"
    " IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'rcpt'::regclass"
    "  AND tgname = 'hook_rcpt_outcome') THEN"
    "  WITH gone AS (DELETE FROM message m WHERE m.queue_id = ANY(qids) AND NOT EXISTS"
    "   (SELECT 1 FROM rcpt x WHERE x.msg = m.id AND x.state <> 3 AND NOT (x.id = ANY"
    "    (ARRAY(SELECT u.id FROM unnest(ids, states) AS u(id, st) WHERE u.st = 3))))"
    "   RETURNING 1) SELECT count(*) INTO removed FROM gone;"
    "  IF removed = cardinality(qids) THEN RETURN; END IF;"
    " END IF;" RECORD_OUTCOMES "END $f$;";

static const char *const migrations[PG_SPOOL_PQ_VERSION] = {migration_1, migration_2, migration_3,
                                                            migration_4, migration_5, migration_6,
                                                            migration_7, migration_8, migration_9};

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
