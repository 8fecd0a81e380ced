/*
 * spool_sqlite.c - the SQLite storage backend of the spool (see spool_backend.h).
 *
 * Durability: WAL mode with synchronous=FULL, so a COMMIT returns only after the WAL was
 * fsynced; every write is one transaction, begun IMMEDIATE so that writers queue up on the
 * busy timeout instead of failing half-way (a deferred transaction upgraded to a writer
 * can fail with SQLITE_BUSY without waiting).
 *
 * Bodies are BLOB chunks in the same file. Against files next to the database this buys
 * one atomic commit for message, envelope and body (no orphan files, no rows without files
 * after kill -9, one fsync instead of three) at the price of the WAL writing the bytes
 * twice; SQLite reads and writes small blobs (here ~7 KB typical) faster than the file
 * system does (https://sqlite.org/fasterthanfs.html). Chunks are read back with incremental
 * blob I/O (sqlite3_blob_read), so memory stays bounded for any size.
 *
 * Identity and versioning: PRAGMA application_id marks the file as ours and user_version
 * is the schema version. A file that is not SQLite, is another program's database, is
 * damaged (PRAGMA quick_check) or has a newer version is refused before anything is
 * written to it, and it is closed without the checkpoint-on-close that could otherwise
 * write a foreign WAL into it.
 *
 * Claims: a recipient that can be claimed has due_ms set (queued: enqueue time; deferred:
 * next attempt; in flight: lease expiry), final ones have it NULL, so "due" is one
 * indexed range scan, and an expired lease is due like any deferral.
 */
#include "spool/spool_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* "pgSp": the application_id of a pigeon spool (PRAGMA application_id). */
#define SPOOL_APP_ID 0x70675370
/* The schema version this code writes and reads (PRAGMA user_version). */
#define SPOOL_VERSION 2
/* The page size of new spools (older files keep theirs). A typical message (~8 KB) then
 * keeps about 1 KB in a leaf page shared with its neighbours and the rest in one overflow
 * page of its own. Deleting a delivered message frees that overflow page without writing
 * it (secure_delete=FAST) and takes one cell out of a shared leaf; with 16 KiB pages, the
 * whole body filled a leaf alone, and each delete emptied a leaf and rebalanced its
 * siblings: the drain spent 1.6 times the instructions removing messages, for 5% less
 * at enqueue, and the file was 80% larger (measured with callgrind and bench_spool). */
#define PAGE_SIZE_STR "8192"
/* A daemon's handle reads the spool through a memory map of this many bytes: pages come
 * from the kernel's cache without a pread() and a copy each. */
#define MMAP_BYTES "1073741824"
/* The page cache per handle, in KiB (see set_pragmas). */
#define CACHE_KIB "65536"
/* The page cache of a PIGEON_SPOOL_BULK handle, in KiB: a batch larger than the cache
 * spills into the WAL whatever its size, and a small cache reuses warm memory (a merge of
 * 10,000 messages into the spool: 0.62 s of CPU with 2 MiB, 1.0 s with 64 MiB). */
#define BULK_CACHE_KIB "2048"
/* The page cache of a daemon's handle (PIGEON_SPOOL_DEFER_SYNC), in KiB. It reads the
 * spool through the memory map, so its cache holds only the pages it writes: a batch's
 * claim or outcomes dirty a few hundred at most. With 64 MiB the cache kept growing into
 * fresh memory through a whole drain (a page fault per 4 KiB, 8,000 of a drain's 14,000);
 * 4 MiB is reused warm. */
#define DAEMON_CACHE_KIB "4096"

/* Version 2: the processes holding leases (rcpt.holder), so that the leases of one that
 * is gone can be given back at once (pigeon_spool_reclaim). A version 1 file gets the
 * table and the column when first opened for writing (upgrade()). */
#define HOLDER_SQL                                                                                 \
    "CREATE TABLE holder("                                                                         \
    " id INTEGER PRIMARY KEY,"                                                                     \
    " host TEXT NOT NULL,"                                                                         \
    " boot_id TEXT NOT NULL,"                                                                      \
    " pid INTEGER NOT NULL,"                                                                       \
    " started INTEGER NOT NULL,"                                                                   \
    " UNIQUE(host, boot_id, pid, started));"

static const char schema_sql[] = "CREATE TABLE message("
                                 " id INTEGER PRIMARY KEY,"
                                 " queue_id TEXT NOT NULL UNIQUE,"
                                 " message_id TEXT NOT NULL,"
                                 " account TEXT NOT NULL,"
                                 " mail_from TEXT NOT NULL,"
                                 " size INTEGER NOT NULL,"
                                 " sha256 BLOB,"
                                 " created_ms INTEGER NOT NULL);"
                                 "CREATE TABLE body("
                                 " id INTEGER PRIMARY KEY,"
                                 " msg INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,"
                                 " seq INTEGER NOT NULL,"
                                 " data BLOB NOT NULL,"
                                 " UNIQUE(msg, seq));"
                                 "CREATE TABLE rcpt("
                                 " id INTEGER PRIMARY KEY,"
                                 " msg INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,"
                                 " address TEXT NOT NULL,"
                                 " state INTEGER NOT NULL,"
                                 " due_ms INTEGER,"
                                 " attempts INTEGER NOT NULL DEFAULT 0,"
                                 " owner TEXT,"
                                 " lease INTEGER,"
                                 " err INTEGER NOT NULL DEFAULT 0,"
                                 " smtp_code INTEGER NOT NULL DEFAULT 0,"
                                 " enhanced TEXT,"
                                 " text TEXT,"
                                 " updated_ms INTEGER NOT NULL,"
                                 " holder INTEGER,"
                                 " UNIQUE(msg, address));"
                                 "CREATE INDEX rcpt_due ON rcpt(due_ms) WHERE due_ms IS NOT NULL;"
                                 "CREATE TABLE account("
                                 " name TEXT PRIMARY KEY,"
                                 " not_before_ms INTEGER NOT NULL,"
                                 " reason TEXT) WITHOUT ROWID;" HOLDER_SQL;

/* The cached statements, prepared on first use. */

#define MSG_COLS "m.id, m.queue_id, m.message_id, m.account, m.mail_from, m.size, m.created_ms"
#define RCPT_COLS                                                                                  \
    "id, address, state, attempts, due_ms, owner, err, smtp_code, enhanced, text, updated_ms"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_UNDO_MSG] = "DELETE FROM message WHERE id = ?1",
    [ST_INS_MSG] = "INSERT INTO message(queue_id, message_id, account, mail_from, size, "
                   "created_ms) VALUES(?1, ?2, ?3, ?4, 0, ?5)",
    [ST_INS_RCPT] = "INSERT OR IGNORE INTO rcpt(msg, address, state, due_ms, updated_ms) "
                    "VALUES(?1, ?2, 0, ?3, ?3)",
    [ST_INS_CHUNK] = "INSERT INTO body(msg, seq, data) VALUES(?1, ?2, ?3)",
    [ST_END_MSG] = "UPDATE message SET size = ?2, sha256 = ?3 WHERE id = ?1",
    [ST_CLAIM_FIND] = "SELECT r.msg FROM rcpt r JOIN message m ON m.id = r.msg "
                      "WHERE r.due_ms <= ?1 AND (?2 IS NULL OR m.account = ?2) "
                      "AND NOT EXISTS (SELECT 1 FROM account a WHERE a.name = m.account "
                      "AND a.not_before_ms > ?1) ORDER BY r.due_ms LIMIT 1",
    [ST_CLAIM_TAKE] = "UPDATE rcpt SET state = 1, owner = ?2, lease = ?3, due_ms = ?4, "
                      "attempts = attempts + 1, updated_ms = ?5, holder = ?6 "
                      "WHERE id = ?1 AND due_ms <= ?5",
    [ST_MSG_BY_ID] = "SELECT " MSG_COLS " FROM message m WHERE m.id = ?1",
    /* The first chunk is read only when the message is small enough (?2 bytes) to be
     * loaded with its claim. A join, not a scalar subquery in a CASE: the subquery's
     * value was copied once more on its way to the result row (8.7 KB per message). */
    [ST_MSG_BODY_BY_ID] = "SELECT " MSG_COLS ", m.sha256, b.data FROM message m "
                          "LEFT JOIN body b ON b.msg = m.id AND b.seq = 0 AND m.size <= ?2 "
                          "WHERE m.id = ?1",
    [ST_MSG_BY_QID] = "SELECT " MSG_COLS " FROM message m WHERE m.queue_id = ?1",
    [ST_COUNTS] = "SELECT state, count(*), min(due_ms) FROM rcpt WHERE msg = ?1 GROUP BY state",
    [ST_RCPTS_ALL] = "SELECT " RCPT_COLS " FROM rcpt WHERE msg = ?1 ORDER BY id",
    [ST_DELIVER] = "UPDATE rcpt SET state = 3, due_ms = NULL, owner = NULL, lease = NULL, "
                   "err = 0, smtp_code = ?2, enhanced = ?3, text = ?4, updated_ms = ?5 "
                   "WHERE id = ?1 AND state <> 3",
    [ST_SETTLE] = "UPDATE rcpt SET state = ?6, due_ms = ?7, owner = NULL, lease = NULL, "
                  "err = ?8, smtp_code = ?2, enhanced = ?3, text = ?4, updated_ms = ?5 "
                  "WHERE id = ?1 AND state = 1 AND lease = ?9",
    [ST_DELETE_DONE] = "DELETE FROM message WHERE queue_id = ?1 AND NOT EXISTS "
                       "(SELECT 1 FROM rcpt r WHERE r.msg = message.id AND r.state <> 3)",
    /* A message delivered to recipient ?2, its last one not delivered yet: removed without
     * writing the outcome into a row that goes with it. */
    [ST_DELETE_DELIVERED] = "DELETE FROM message WHERE queue_id = ?1 AND NOT EXISTS "
                            "(SELECT 1 FROM rcpt r WHERE r.msg = message.id AND r.state <> 3 "
                            "AND r.id <> ?2)",
    [ST_RENEW] = "UPDATE rcpt SET due_ms = ?3 WHERE msg = (SELECT id FROM message "
                 "WHERE queue_id = ?1) AND state = 1 AND lease = ?2",
    [ST_RELEASE_LEASE] = "UPDATE rcpt SET state = CASE WHEN attempts > 1 THEN 2 ELSE 0 END, "
                         "attempts = attempts - 1, due_ms = ?3, owner = NULL, lease = NULL, "
                         "updated_ms = ?3 WHERE msg = (SELECT id FROM message "
                         "WHERE queue_id = ?1) AND state = 1 AND lease = ?2",
    [ST_THROTTLE] = "INSERT INTO account(name, not_before_ms, reason) VALUES(?1, ?2, ?3) "
                    "ON CONFLICT(name) DO UPDATE SET not_before_ms = excluded.not_before_ms, "
                    "reason = excluded.reason "
                    "WHERE excluded.not_before_ms > account.not_before_ms",
    [ST_LIST] = "SELECT " MSG_COLS ", sum(r.state = 0), sum(r.state = 1), sum(r.state = 2), "
                "sum(r.state = 3), sum(r.state = 4), min(r.due_ms) "
                "FROM message m JOIN rcpt r ON r.msg = m.id "
                "WHERE (?1 IS NULL OR m.account = ?1) "
                "GROUP BY m.id ORDER BY m.id",
    [ST_RETRY] = "UPDATE rcpt SET state = 2, due_ms = ?2, owner = NULL, lease = NULL "
                 "WHERE (?1 IS NULL OR msg = ?1) AND (state = 2 OR (?3 AND state = 4))",
    [ST_DELETE] = "DELETE FROM message WHERE queue_id = ?1",
    [ST_PURGE] = "DELETE FROM message WHERE id IN (SELECT msg FROM rcpt GROUP BY msg "
                 "HAVING sum(state = 4) > 0 AND sum(state IN (0, 1, 2)) = 0)",
    [ST_STAT_MSG] = "SELECT count(*), coalesce(sum(size), 0) FROM message",
    [ST_STAT_RCPT] = "SELECT state, count(*) FROM rcpt GROUP BY state",
    [ST_STAT_STALE] = "SELECT count(*) FROM rcpt WHERE state = 1 AND due_ms <= ?1",
    [ST_STAT_THROTTLED] = "SELECT count(*) FROM account WHERE not_before_ms > ?1",
    [ST_STAT_OLDEST] = "SELECT min(m.created_ms) FROM message m WHERE EXISTS "
                       "(SELECT 1 FROM rcpt r WHERE r.msg = m.id AND r.due_ms IS NOT NULL)",
    [ST_BODY_MSG] = "SELECT id, size, sha256 FROM message WHERE queue_id = ?1",
    [ST_BODY_CHUNK] = "SELECT id FROM body WHERE msg = ?1 AND seq = ?2",
    /* The due recipients in due order, with their message's account, for a batch claim
     * (read lazily: the caller stops once it has enough messages). */
    [ST_CLAIM_SCAN] = "SELECT r.msg, m.account FROM rcpt r JOIN message m ON m.id = r.msg "
                      "WHERE r.due_ms <= ?1 AND (?2 IS NULL OR m.account = ?2) "
                      "AND NOT EXISTS (SELECT 1 FROM account a WHERE a.name = m.account "
                      "AND a.not_before_ms > ?1) ORDER BY r.due_ms",
    [ST_INLINE_BODY] = "SELECT b.data, m.sha256 FROM body b JOIN message m ON m.id = b.msg "
                       "WHERE b.msg = ?1 ORDER BY b.seq",
    [ST_RENEW_RCPT] = "UPDATE rcpt SET due_ms = ?3 WHERE id = ?1 AND state = 1 AND lease = ?2",
    [ST_HOLDER_ADD] = "INSERT INTO holder(host, boot_id, pid, started) VALUES(?1, ?2, ?3, ?4) "
                      "ON CONFLICT DO NOTHING",
    [ST_HOLDER_ID] = "SELECT id FROM holder WHERE host = ?1 AND boot_id = ?2 AND pid = ?3 "
                     "AND started = ?4",
    [ST_HOLDERS] = "SELECT id, host, boot_id, pid, started FROM holder WHERE host = ?1",
    [ST_RECLAIM] =
        "UPDATE rcpt SET due_ms = min(due_ms, ?2), holder = NULL WHERE holder = ?1 AND state = 1",
    [ST_HOLDER_DEL] = "DELETE FROM holder WHERE id = ?1",
    [ST_LEASE_HELD] = "SELECT 1 FROM rcpt WHERE id = ?1 AND state = 1 AND lease = ?2",
    [ST_SCHEMA_COOKIE] = "PRAGMA schema_version",
    [ST_RELEASE_RCPT] = "UPDATE rcpt SET state = CASE WHEN attempts > 1 THEN 2 ELSE 0 END, "
                        "attempts = attempts - 1, due_ms = ?3, owner = NULL, lease = NULL, "
                        "updated_ms = ?3 WHERE id = ?1 AND state = 1 AND lease = ?2",
};

static pigeon_err identify(pg_spool_sq *q, const char *path, int *fresh);
static pigeon_err initialize(pg_spool_sq *q, const char *path);
static pigeon_err run_check(pg_spool_sq *q, int full);
static pigeon_err upgrade(pg_spool_sq *q);
static pigeon_err flush_wal(pg_spool_sq *q);
static pigeon_err sq_sync(void *be, int flush);
static pigeon_err set_pragmas(pg_spool_sq *q, unsigned flags);
static void sq_msg_abort(void *be);

/* ---- helpers ---- */

/* Maps an SQLite result to our code and writes the diagnosis. */
pigeon_err pg_spool_sq_err(pg_spool_sq *q, int rc, const char *what)
{
    pigeon_err err = PIGEON_ERR_IO;
    const char *hint = "";
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        err = PIGEON_ERR_NOMEM;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        err = PIGEON_ERR_TIMEOUT;
        hint = " (the spool stayed locked by another process)";
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        err = PIGEON_ERR_CORRUPT;
        break;
    case SQLITE_FULL:
        err = PIGEON_ERR_NOSPACE;
        hint = " (disk full)";
        break;
    default:
        break;
    }
    /* A write or flush that failed for want of room is reported as such, whatever SQLite
     * called it (SQLITE_IOERR_WRITE, _FSYNC, _SHMSIZE...). */
    int sys = q->db != NULL ? sqlite3_system_errno(q->db) : 0;
    if ((rc & 0xff) == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT)) {
        err = PIGEON_ERR_NOSPACE;
        hint = " (disk full)";
    }
    return pg_spool_fail(q->diag, err, "spool: %s: %s%s", what,
                         q->db != NULL ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc), hint);
}

pigeon_err pg_spool_sq_prep(pg_spool_sq *q, int id, sqlite3_stmt **out)
{
    if (q->stmt[id] == NULL) {
        int rc = sqlite3_prepare_v3(q->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &q->stmt[id], NULL);
        if (rc != SQLITE_OK)
            return pg_spool_sq_err(q, rc, "preparing a statement");
    }
    *out = q->stmt[id];
    return PIGEON_OK;
}

/* Steps a statement that returns no rows to its end, and resets it. */
pigeon_err pg_spool_sq_step(pg_spool_sq *q, sqlite3_stmt *st, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? PIGEON_OK : pg_spool_sq_err(q, rc, what);
}

pigeon_err pg_spool_sq_side_prepare(pg_spool_sq *q, const char *sql, sqlite3_stmt **st,
                                    pigeon_err (*ensure)(pg_spool_sq *q), const char *what)
{
    int rc = sqlite3_prepare_v2(q->db, sql, -1, st, NULL);
    if (rc == SQLITE_ERROR && ensure != NULL) {
        pigeon_err err = ensure(q);
        if (err != PIGEON_OK)
            return err;
        rc = sqlite3_prepare_v2(q->db, sql, -1, st, NULL);
    }
    return rc == SQLITE_OK ? PIGEON_OK : pg_spool_sq_err(q, rc, what);
}

pigeon_err pg_spool_sq_side_run(pg_spool_sq *q, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? PIGEON_OK : pg_spool_sq_err(q, rc, what);
}

pigeon_err pg_spool_sq_side_exec(pg_spool_sq *q, const char *sql, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);
    sqlite3_free(msg);
    return rc == SQLITE_OK ? PIGEON_OK : pg_spool_sq_err(q, rc, what);
}

pigeon_err pg_spool_sq_exec(pg_spool_sq *q, int id)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, id, &st);
    return err != PIGEON_OK ? err : pg_spool_sq_step(q, st, stmt_sql[id]);
}

int64_t pg_spool_sq_schema_cookie(pg_spool_sq *q)
{
    sqlite3_stmt *st = NULL;
    if (pg_spool_sq_prep(q, ST_SCHEMA_COOKIE, &st) != PIGEON_OK)
        return -1;
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    return v;
}

pigeon_err pg_spool_sq_tx_begin(pg_spool_sq *q, int write)
{
    if (q->in_batch)
        return pg_spool_fail(q->diag, PIGEON_ERR_STATE, "spool: inside a batch");
    return pg_spool_sq_exec(q, write ? ST_BEGIN : ST_BEGIN_READ);
}

/* Commits when err is PIGEON_OK (returning the commit's result), else rolls back and
 * returns err. A failed COMMIT is rolled back too, so the handle is never left inside a
 * transaction. */
pigeon_err pg_spool_sq_tx_end(pg_spool_sq *q, pigeon_err err)
{
    if (err == PIGEON_OK)
        err = pg_spool_sq_exec(q, ST_COMMIT);
    if (err != PIGEON_OK && !sqlite3_get_autocommit(q->db)) {
        char keep[sizeof q->diag->text];
        memcpy(keep, q->diag->text, sizeof keep);
        pg_spool_sq_exec(q, ST_ROLLBACK);
        memcpy(q->diag->text, keep, sizeof keep);
    }
    return err;
}

void pg_spool_sq_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s == NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* ---- open, identify, initialize ---- */

/* Reads the file's identity without writing anything. *fresh is set for an empty file. */
static pigeon_err identify(pg_spool_sq *q, const char *path, int *fresh)
{
    static const char sql[] = "SELECT (SELECT application_id FROM pragma_application_id), "
                              "(SELECT user_version FROM pragma_user_version), "
                              "(SELECT page_count FROM pragma_page_count), "
                              "(SELECT count(*) FROM sqlite_schema)";
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
            return pg_spool_fail(q->diag, PIGEON_ERR_CORRUPT,
                                 "spool: %s is not a pigeon spool (not an SQLite database, or "
                                 "damaged); refusing to use it, the file was left untouched",
                                 path);
        return pg_spool_sq_err(q, rc, "reading the spool header");
    }
    int64_t app = sqlite3_column_int64(st, 0), version = sqlite3_column_int64(st, 1);
    int64_t pages = sqlite3_column_int64(st, 2), objects = sqlite3_column_int64(st, 3);
    sqlite3_finalize(st);
    /* Empty: no page yet, or (inside a write transaction, where SQLite has already set up
     * page 1) no schema, no identity. Nothing in such a file can be lost. */
    *fresh = pages == 0 || (app == 0 && version == 0 && objects == 0);
    if (*fresh)
        return PIGEON_OK;
    if (app != SPOOL_APP_ID)
        return pg_spool_fail(q->diag, PIGEON_ERR_CORRUPT,
                             "spool: %s is an SQLite database but not a pigeon spool "
                             "(application_id 0x%08llx); refusing to use it, the file was "
                             "left untouched",
                             path, (unsigned long long)(uint32_t)app);
    if (version > SPOOL_VERSION)
        return pg_spool_fail(q->diag, PIGEON_ERR_CORRUPT,
                             "spool: %s has format version %lld, newer than this pigeon "
                             "understands (%d); upgrade pigeon. The file was left untouched",
                             path, (long long)version, SPOOL_VERSION);
    if (version < 1)
        return pg_spool_fail(q->diag, PIGEON_ERR_CORRUPT,
                             "spool: %s has no schema version; refusing to use it, the file was "
                             "left untouched",
                             path);
    return PIGEON_OK;
}

/* fsyncs the directory holding path, so that a newly created file's name is durable. */
static pigeon_err sync_dir(pg_spool_sq *q, const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t len = slash == NULL ? 0 : (size_t)(slash - path);
    if (len >= sizeof dir)
        return pg_spool_fail(q->diag, PIGEON_ERR_INVALID, "spool: path too long");
    if (slash == NULL)
        memcpy(dir, ".", 2);
    else if (len == 0)
        memcpy(dir, "/", 2);
    else {
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return pg_spool_fail(q->diag, PIGEON_ERR_IO, "spool: cannot sync directory %s: %s", dir,
                             strerror(e));
    }
    close(fd);
    return PIGEON_OK;
}

/* Creates the schema in an empty file. Another process may be doing the same at the same
 * moment: the check is repeated under the write lock. */
static pigeon_err initialize(pg_spool_sq *q, const char *path)
{
    char *msg = NULL;
    int fresh = 0, rc;
    /* The schema is created in rollback-journal mode and WAL is switched on afterwards
     * (set_pragmas): switching first would write page 1 and make the file look used.
     * PAGE_SIZE applies only to a file without pages, and is then fixed. */
    rc = sqlite3_exec(q->db, "PRAGMA page_size=" PAGE_SIZE_STR, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return pg_spool_sq_err(q, rc, "setting the page size");
    pigeon_err err = pg_spool_sq_exec(q, ST_BEGIN);
    if (err != PIGEON_OK)
        return err;
    err = identify(q, path, &fresh);
    if (err != PIGEON_OK || !fresh)
        return pg_spool_sq_tx_end(q, err);
    char sql[128];
    snprintf(sql, sizeof sql, "PRAGMA application_id=%d; PRAGMA user_version=%d;", SPOOL_APP_ID,
             SPOOL_VERSION);
    rc = sqlite3_exec(q->db, schema_sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        err = pg_spool_fail(q->diag, PIGEON_ERR_IO, "spool: creating the schema: %s",
                            msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return pg_spool_sq_tx_end(q, err);
    }
    err = pg_spool_sq_tx_end(q, PIGEON_OK);
    return err != PIGEON_OK ? err : sync_dir(q, path);
}

/* The schema version of the open file (PRAGMA user_version), or -1. */
static int64_t schema_version(pg_spool_sq *q)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Brings a version 1 file to version 2 (the holder table and column), under the write
 * lock and after looking again, since another process may be doing the same. Adding a
 * column rewrites nothing in SQLite; rows of version 1 read it as NULL (no holder known:
 * such leases expire as before). */
static pigeon_err upgrade(pg_spool_sq *q)
{
    char *msg = NULL;
    if (schema_version(q) != 1)
        return PIGEON_OK;
    pigeon_err err = pg_spool_sq_exec(q, ST_BEGIN);
    if (err != PIGEON_OK || schema_version(q) != 1)
        return pg_spool_sq_tx_end(q, err);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d;", SPOOL_VERSION);
    int rc = sqlite3_exec(q->db, "ALTER TABLE rcpt ADD COLUMN holder INTEGER;" HOLDER_SQL, NULL,
                          NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        err =
            pg_spool_fail(q->diag, (rc & 0xff) == SQLITE_FULL ? PIGEON_ERR_NOSPACE : PIGEON_ERR_IO,
                          "spool: upgrading the spool to version %d: %s", SPOOL_VERSION,
                          msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
    }
    return pg_spool_sq_tx_end(q, err);
}

static pigeon_err run_check(pg_spool_sq *q, int full)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, full ? "PRAGMA integrity_check" : "PRAGMA quick_check", -1,
                                &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return pg_spool_sq_err(q, rc, "checking the spool");
    }
    const char *res = (const char *)sqlite3_column_text(st, 0);
    pigeon_err err = PIGEON_OK;
    if (res == NULL || strcmp(res, "ok") != 0)
        err = pg_spool_fail(q->diag, PIGEON_ERR_CORRUPT, "spool: damaged: %s",
                            res != NULL ? res : "?");
    sqlite3_finalize(st);
    return err;
}

static pigeon_err set_pragmas(pg_spool_sq *q, unsigned flags)
{
    /* WAL is persistent in the file; asking again checks it is really on (it is not on
     * file systems without shared memory, where we would rather fail than lose the
     * durability we promise). */
    if (!(flags & PIGEON_SPOOL_READONLY)) {
        sqlite3_stmt *st = NULL;
        int rc = SQLITE_BUSY, wal = 0;
        /* Switching a new file to WAL needs its exclusive lock and does not wait in the busy
         * handler: while another process creates the same spool (a daemon and a `send
         * --queue` started together) it fails at once with SQLITE_BUSY. Try again for up
         * to the busy timeout. */
        for (int tries = 0; (rc & 0xff) == SQLITE_BUSY && tries < 1000; tries++) {
            if (tries > 0) {
                struct timespec nap = {0, 10 * 1000 * 1000};
                nanosleep(&nap, NULL);
            }
            rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
            if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
            const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
            wal = mode != NULL && strcmp(mode, "wal") == 0;
            sqlite3_finalize(st);
            st = NULL;
        }
        if (rc != SQLITE_ROW)
            return pg_spool_sq_err(q, rc, "switching to WAL mode");
        if (!wal)
            return pg_spool_fail(q->diag, PIGEON_ERR_IO,
                                 "spool: the file system does not support WAL mode");
    }
    /* synchronous=FULL: a commit returns after the WAL is fsynced (durable enqueue).
     * synchronous=NORMAL (PIGEON_SPOOL_DEFER_SYNC): a commit returns once its pages are
     * written to the WAL, where the kernel keeps them if the process dies; sq_sync
     * flushes them (https://sqlite.org/pragma.html#pragma_synchronous).
     * A page cache that holds a batch of a few thousand messages, so that dirty pages do
     * not spill into the WAL before the commit (and get written again when touched
     * again); it grows only as used. Checkpoints every 4096 pages (32 MiB of 8 KiB) rather than
     * SQLite's 1000: the same bytes are copied, with a quarter of the fsync pairs. */
    int rc = sqlite3_exec(q->db,
                          (flags & PIGEON_SPOOL_DEFER_SYNC) ? "PRAGMA synchronous=NORMAL; "
                                                            : "PRAGMA synchronous=FULL; ",
                          NULL, NULL, NULL);
    /* secure_delete=FAST: Debian's SQLite is built with SECURE_DELETE on, which writes
     * every page freed by a delete back as zeros. A delivered message frees its body's
     * page(s), so the drain wrote a whole page per message to the WAL (and again at the
     * checkpoint) only to erase it. FAST still zeroes deleted bytes inside pages that are
     * written anyway, and leaves freed pages as they are until reused, as a file system
     * leaves the blocks of an unlinked queue file: the spool file stays 0600. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(q->db,
                          "PRAGMA foreign_keys=ON; PRAGMA secure_delete=FAST; "
                          "PRAGMA cache_size=-" CACHE_KIB "; PRAGMA wal_autocheckpoint=4096;",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK && (flags & PIGEON_SPOOL_BULK))
        rc = sqlite3_exec(q->db, "PRAGMA cache_size=-" BULK_CACHE_KIB ";", NULL, NULL, NULL);
    if (rc == SQLITE_OK && (flags & PIGEON_SPOOL_DEFER_SYNC))
        rc = sqlite3_exec(
            q->db, "PRAGMA mmap_size=" MMAP_BYTES "; PRAGMA cache_size=-" DAEMON_CACHE_KIB ";",
            NULL, NULL, NULL);
    return rc == SQLITE_OK ? PIGEON_OK : pg_spool_sq_err(q, rc, "setting pragmas");
}

static void sq_close(void *be)
{
    pg_spool_sq *q = be;
    if (q == NULL)
        return;
    if (q->journal_rows > 0 && q->db != NULL)
        sq_sync(q, 1); /* best effort: else the next daemon's reclaim applies them */
    pg_spool_sq_journal_close(q);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(q->stmt[i]);
    sqlite3_close_v2(q->db);
    pthread_mutex_destroy(&q->journal_lock);
    free(q);
}

/* Closes a file we refused, without the checkpoint that would write its WAL into it. */
static void close_untouched(pg_spool_sq *q)
{
    if (q->db != NULL)
        sqlite3_db_config(q->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    sq_close(q);
}

static pigeon_err sq_open(const char *path, unsigned flags, pg_spool_diag *diag, void **out)
{
    struct stat sb;
    int fresh = 0;
    pigeon_err err;
    pg_spool_sq *q = calloc(1, sizeof *q);
    if (q == NULL)
        return PIGEON_ERR_NOMEM;
    q->journal_fd = -1;
    pthread_mutex_init(&q->journal_lock, NULL);
    q->diag = diag;
    int exists = stat(path, &sb) == 0;
    if (!exists && (!(flags & PIGEON_SPOOL_CREATE) || (flags & PIGEON_SPOOL_READONLY))) {
        free(q);
        return pg_spool_fail(diag, PIGEON_ERR_NOTFOUND, "spool: %s does not exist", path);
    }
    /* Queued mail is private: create the file 0600 ourselves (SQLite would use 0644), and
     * the -wal and -shm files SQLite makes later take the database file's mode. */
    if (!exists) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) {
            int e = errno;
            free(q);
            return pg_spool_fail(diag,
                                 e == ENOSPC || e == EDQUOT ? PIGEON_ERR_NOSPACE : PIGEON_ERR_IO,
                                 "spool: cannot create %s: %s", path, strerror(e));
        }
        if (fd >= 0)
            close(fd);
    }
    int oflags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    if (flags & PIGEON_SPOOL_READONLY)
        oflags |= SQLITE_OPEN_READONLY;
    else
        oflags |= SQLITE_OPEN_READWRITE | ((flags & PIGEON_SPOOL_CREATE) ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &q->db, oflags, NULL);
    if (rc != SQLITE_OK) {
        err = pg_spool_sq_err(q, rc, "opening the spool");
        goto fail;
    }
    sqlite3_busy_timeout(q->db, 10000);
    /* The daemon's handle maps the file before the check, which then reads every page
     * of the spool from the kernel's cache without a copy. */
    if ((flags & PIGEON_SPOOL_DEFER_SYNC) && !(flags & PIGEON_SPOOL_NO_CHECK))
        sqlite3_exec(q->db, "PRAGMA mmap_size=" MMAP_BYTES, NULL, NULL, NULL);
    err = identify(q, path, &fresh);
    if (err == PIGEON_OK && fresh && (flags & PIGEON_SPOOL_READONLY))
        err = pg_spool_fail(diag, PIGEON_ERR_NOTFOUND, "spool: %s is empty", path);
    else if (err == PIGEON_OK && fresh)
        err = initialize(q, path);
    else if (err == PIGEON_OK && !(flags & PIGEON_SPOOL_NO_CHECK))
        err = run_check(q, 0);
    if (err == PIGEON_OK && !(flags & PIGEON_SPOOL_READONLY))
        err = upgrade(q);
    if (err != PIGEON_OK)
        goto fail;
    q->defer_sync = (flags & PIGEON_SPOOL_DEFER_SYNC) != 0;
    err = set_pragmas(q, flags);
    if (err != PIGEON_OK)
        goto fail;
    *out = q;
    return PIGEON_OK;
fail:
    close_untouched(q);
    return err;
}

static pigeon_err sq_set_busy_timeout(void *be, int ms)
{
    pg_spool_sq *q = be;
    int rc = sqlite3_busy_timeout(q->db, ms);
    return rc == SQLITE_OK ? PIGEON_OK : pg_spool_sq_err(q, rc, "setting the busy timeout");
}

static pigeon_err sq_check(void *be, int full)
{
    return run_check(be, full);
}

/* Applies the outcomes journaled since the last sync (spool_sqlite_journal.c) in one
 * commit, flushes the WAL (where synchronous=NORMAL left this handle's commits unflushed),
 * and only then forgets the journaled rows. */
static pigeon_err sq_sync(void *be, int flush)
{
    pg_spool_sq *q = be;
    pg_spool_sq_span span;
    if (!q->defer_sync)
        return PIGEON_OK;
    pg_spool_sq_journal_take(q, &span);
    pigeon_err err = PIGEON_OK;
    if (span.rows > 0) {
        err = pg_spool_sq_tx_begin(q, 1);
        if (err == PIGEON_OK)
            err = pg_spool_sq_journal_apply_span(q, &span);
        err = pg_spool_sq_tx_end(q, err);
    }
    /* Without the flush (flush 0), the journal is emptied before the caller flushes the
     * log: a kill meanwhile loses nothing (the kernel holds both), and a power cut loses
     * at most the commits since the caller's last flush, as the journal was not flushed
     * either. */
    if (err == PIGEON_OK && flush)
        err = flush_wal(q);
    pigeon_err done = pg_spool_sq_journal_done(q, &span, err == PIGEON_OK);
    return err != PIGEON_OK ? err : done;
}

/* fsyncs the spool's WAL through SQLite's own file object (SQLITE_FCNTL_JOURNAL_POINTER),
 * so that whatever VFS is in use does the flush. */
static pigeon_err flush_wal(pg_spool_sq *q)
{
    sqlite3_file *wal = NULL;
    int rc = sqlite3_file_control(q->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
    if (rc != SQLITE_OK)
        return pg_spool_sq_err(q, rc, "finding the write-ahead log");
    if (wal == NULL || wal->pMethods == NULL)
        return PIGEON_OK; /* not open: nothing was written through it */
    rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
    if (rc == SQLITE_OK)
        return PIGEON_OK;
    int sys = errno;
    pigeon_err err = sys == ENOSPC || sys == EDQUOT ? PIGEON_ERR_NOSPACE : PIGEON_ERR_IO;
    return pg_spool_fail(q->diag, err, "spool: flushing the write-ahead log: %s",
                         sys != 0 ? strerror(sys) : sqlite3_errstr(rc));
}

/* ---- batches ---- */

static pigeon_err sq_begin(void *be)
{
    pg_spool_sq *q = be;
    pigeon_err err = pg_spool_sq_exec(q, ST_BEGIN);
    if (err == PIGEON_OK)
        q->in_batch = 1;
    return err;
}

static pigeon_err sq_commit(void *be)
{
    pg_spool_sq *q = be;
    q->in_batch = 0;
    /* An I/O error inside the batch may have rolled it back already. */
    if (sqlite3_get_autocommit(q->db))
        return pg_spool_fail(q->diag, PIGEON_ERR_IO,
                             "spool: the batch was rolled back after an earlier error");
    return pg_spool_sq_tx_end(q, PIGEON_OK);
}

static pigeon_err sq_rollback(void *be)
{
    pg_spool_sq *q = be;
    q->in_batch = 0;
    if (sqlite3_get_autocommit(q->db))
        return PIGEON_OK;
    return pg_spool_sq_exec(q, ST_ROLLBACK);
}

/* ---- enqueue ---- */

static pigeon_err insert_rcpts(pg_spool_sq *q, const pg_spool_new *m)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, ST_INS_RCPT, &st);
    for (size_t i = 0; err == PIGEON_OK && i < m->env->rcpt_count; i++) {
        sqlite3_bind_int64(st, 1, q->msg_rowid);
        pg_spool_sq_bind_text(st, 2, m->env->rcpts[i]);
        sqlite3_bind_int64(st, 3, m->now_ms);
        err = pg_spool_sq_step(q, st, "storing a recipient");
    }
    return err;
}

static pigeon_err sq_msg_begin(void *be, const pg_spool_new *m)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = PIGEON_OK;
    q->msg_rowid = 0;
    if (!q->in_batch)
        err = pg_spool_sq_exec(q, ST_BEGIN);
    else if (sqlite3_get_autocommit(q->db))
        err = pg_spool_fail(q->diag, PIGEON_ERR_IO,
                            "spool: the batch was rolled back after an earlier error");
    if (err != PIGEON_OK)
        return err;
    err = pg_spool_sq_prep(q, ST_INS_MSG, &st);
    if (err == PIGEON_OK) {
        pg_spool_sq_bind_text(st, 1, m->queue_id);
        pg_spool_sq_bind_text(st, 2, m->env->message_id != NULL ? m->env->message_id : "");
        pg_spool_sq_bind_text(st, 3, m->env->account);
        pg_spool_sq_bind_text(st, 4, m->env->mail_from);
        sqlite3_bind_int64(st, 5, m->now_ms);
        err = pg_spool_sq_step(q, st, "storing a message");
    }
    if (err == PIGEON_OK) {
        q->msg_rowid = sqlite3_last_insert_rowid(q->db);
        err = insert_rcpts(q, m);
    }
    if (err != PIGEON_OK) {
        char keep[sizeof q->diag->text];
        memcpy(keep, q->diag->text, sizeof keep);
        sq_msg_abort(q);
        memcpy(q->diag->text, keep, sizeof keep);
    }
    return err;
}

static pigeon_err sq_msg_chunk(void *be, int64_t seq, const void *data, size_t len)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, ST_INS_CHUNK, &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, q->msg_rowid);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_blob64(st, 3, data, len, SQLITE_STATIC);
    return pg_spool_sq_step(q, st, "storing the message body");
}

/* Undoes the enqueue in progress. Inside a batch this deletes the message's rows (the
 * cascade takes its recipients and body) instead of rolling back to a savepoint: a
 * savepoint makes SQLite copy every page a message touches to a statement journal,
 * which cost more than the enqueue itself. If even the delete fails, the whole batch is
 * rolled back, and the commit reports it. */
static void sq_msg_abort(void *be)
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    if (sqlite3_get_autocommit(q->db))
        return; /* SQLite already rolled everything back (I/O error, out of memory) */
    if (!q->in_batch) {
        pg_spool_sq_exec(q, ST_ROLLBACK);
        return;
    }
    if (q->msg_rowid == 0)
        return;                              /* the message row was never inserted */
    pg_spool_sq_hooks_undo(q, q->msg_rowid); /* its "queued" webhook events */
    pigeon_err err = pg_spool_sq_prep(q, ST_UNDO_MSG, &st);
    if (err == PIGEON_OK) {
        sqlite3_bind_int64(st, 1, q->msg_rowid);
        err = pg_spool_sq_step(q, st, "undoing an enqueue");
    }
    if (err != PIGEON_OK)
        pg_spool_sq_exec(q, ST_ROLLBACK);
    q->msg_rowid = 0;
}

static pigeon_err sq_msg_end(void *be, int64_t size, const unsigned char sha256[32])
{
    pg_spool_sq *q = be;
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, ST_END_MSG, &st);
    if (err == PIGEON_OK) {
        sqlite3_bind_int64(st, 1, q->msg_rowid);
        sqlite3_bind_int64(st, 2, size);
        sqlite3_bind_blob(st, 3, sha256, 32, SQLITE_STATIC);
        err = pg_spool_sq_step(q, st, "storing the message size");
    }
    if (err == PIGEON_OK)
        err = q->in_batch ? PIGEON_OK : pg_spool_sq_tx_end(q, PIGEON_OK);
    if (err != PIGEON_OK) {
        char keep[sizeof q->diag->text];
        memcpy(keep, q->diag->text, sizeof keep);
        sq_msg_abort(q);
        memcpy(q->diag->text, keep, sizeof keep);
    }
    return err;
}

const pg_spool_ops pg_spool_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .set_busy_timeout = sq_set_busy_timeout,
    .check = sq_check,
    .sync = sq_sync,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .msg_begin = sq_msg_begin,
    .msg_chunk = sq_msg_chunk,
    .msg_end = sq_msg_end,
    .msg_abort = sq_msg_abort,
    .claim = pg_spool_sq_claim,
    .renew = pg_spool_sq_renew,
    .record = pg_spool_sq_record,
    .release = pg_spool_sq_release,
    .throttle = pg_spool_sq_throttle,
    .holders = pg_spool_sq_holders,
    .reclaim = pg_spool_sq_reclaim,
    .claim_batch = pg_spool_sq_claim_batch,
    .renew_batch = pg_spool_sq_renew_batch,
    .record_batch = pg_spool_sq_record_batch,
    .release_batch = pg_spool_sq_release_batch,
    .list = pg_spool_sq_list,
    .show = pg_spool_sq_show,
    .retry = pg_spool_sq_retry,
    .remove = pg_spool_sq_remove,
    .purge_failed = pg_spool_sq_purge_failed,
    .stats = pg_spool_sq_stats,
    .body_open = pg_spool_sq_body_open,
    .body_read = pg_spool_sq_body_read,
    .body_close = pg_spool_sq_body_close,
    .api = &pg_spool_sq_api_ops,
    .import = &pg_spool_sq_import_ops,
    .limits = &pg_spool_sq_limits_ops,
    .hooks = &pg_spool_sq_hooks_ops,
    .suppress = &pg_spool_sq_suppress_ops,
    .journal_delivered = pg_spool_sq_journal_delivered,
};
