/*
 * spool_sqlite_journal.c - the SQLite spool backend: applying outcomes, and the outcome
 * journal of handles opened with PIGEON_SPOOL_DEFER_SYNC (see spool_sqlite.h).
 *
 * Why a journal: a delivery daemon records each message's outcome as soon as its reply
 * is read, so that a crash of the process re-sends at most the message in hand. In the
 * spool itself that record rewrites whole pages (16 KiB each: the recipient row, its due
 * index, the message and its body when removed) into the WAL, several per message, which
 * made recording one by one four times slower than recording a batch at once. The
 * journal is a second SQLite file beside the spool ("SPOOL-outcomes", 1 KiB pages, WAL,
 * synchronous=OFF): a record there is one small row, written to the OS at commit, so it
 * survives a crash of the process (not of the machine: the batch's sync covers that).
 *
 * At pigeon_spool_sync() the handle applies its journaled outcomes to the spool in one
 * transaction (removing finished messages), flushes the spool's WAL, and only then
 * deletes the rows from the journal. Rows are keyed by the lease holder (spool_holder.c):
 * when a daemon dies, the daemon that reclaims its leases applies its rows first, so that
 * a message it had sent is not sent again. Applying twice is harmless: a delivered
 * recipient stays delivered, and other outcomes apply only under their lease token.
 */
#include "spool/spool_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The journal's cached statements (q->jstmt). */
enum { J_BEGIN, J_COMMIT, J_ROLLBACK, J_INSERT, J_SELECT, J_FORGET, J_COUNT };

static const char *const jsql[J_COUNT] = {
    [J_BEGIN] = "BEGIN IMMEDIATE",
    [J_COMMIT] = "COMMIT",
    [J_ROLLBACK] = "ROLLBACK",
    [J_INSERT] = "INSERT INTO outcome(holder, token, queue_id, rcpt_id, state, next_ms, err, "
                 "smtp_code, enhanced, text, now_ms) "
                 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [J_SELECT] = "SELECT id, token, queue_id, rcpt_id, state, next_ms, err, smtp_code, enhanced, "
                 "text, now_ms FROM outcome WHERE holder = ?1 ORDER BY id",
    [J_FORGET] = "DELETE FROM outcome WHERE holder = ?1 AND id <= ?2",
};

static const char journal_schema[] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; "
                                     "CREATE TABLE IF NOT EXISTS outcome("
                                     " id INTEGER PRIMARY KEY,"
                                     " holder INTEGER NOT NULL,"
                                     " token INTEGER NOT NULL,"
                                     " queue_id TEXT NOT NULL,"
                                     " rcpt_id INTEGER NOT NULL,"
                                     " state INTEGER NOT NULL,"
                                     " next_ms INTEGER,"
                                     " err INTEGER NOT NULL,"
                                     " smtp_code INTEGER NOT NULL,"
                                     " enhanced TEXT,"
                                     " text TEXT,"
                                     " now_ms INTEGER NOT NULL);";

static void bind_text_cut(sqlite3_stmt *st, int i, const char *s);
static pigeon_err jerr(pg_spool_sq *q, int rc, const char *what);
static pigeon_err journal_open(pg_spool_sq *q, int create);
static pigeon_err jprep(pg_spool_sq *q, int id, sqlite3_stmt **out);
static pigeon_err jexec(pg_spool_sq *q, int id, const char *what);

/* Binds text cut to PG_SPOOL_SQ_MAX_TEXT bytes, not in the middle of a UTF-8 sequence. */
static void bind_text_cut(sqlite3_stmt *st, int i, const char *s)
{
    if (s == NULL) {
        sqlite3_bind_null(st, i);
        return;
    }
    size_t len = strnlen(s, PG_SPOOL_SQ_MAX_TEXT + 1);
    if (len > PG_SPOOL_SQ_MAX_TEXT) {
        len = PG_SPOOL_SQ_MAX_TEXT;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
            len--;
    }
    sqlite3_bind_text(st, i, s, (int)len, SQLITE_TRANSIENT);
}

pigeon_err pg_spool_sq_apply(pg_spool_sq *q, int64_t rcpt_id, int64_t token,
                             const pigeon_spool_outcome *o, int64_t now_ms, size_t *lost)
{
    sqlite3_stmt *st = NULL;
    int deliver = o->state == PIGEON_SPOOL_DELIVERED;
    pigeon_err err = pg_spool_sq_prep(q, deliver ? ST_DELIVER : ST_SETTLE, &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, rcpt_id);
    sqlite3_bind_int(st, 2, o->smtp_code);
    pg_spool_sq_bind_text(st, 3, o->enhanced_code);
    bind_text_cut(st, 4, o->text);
    sqlite3_bind_int64(st, 5, now_ms);
    if (!deliver) {
        sqlite3_bind_int(st, 6, (int)o->state);
        if (o->state == PIGEON_SPOOL_DEFERRED)
            sqlite3_bind_int64(st, 7, o->next_ms);
        else
            sqlite3_bind_null(st, 7);
        sqlite3_bind_int(st, 8, (int)o->err);
        sqlite3_bind_int64(st, 9, token);
    }
    err = pg_spool_sq_step(q, st, "recording an outcome");
    if (err == PIGEON_OK && !deliver && sqlite3_changes(q->db) == 0)
        (*lost)++;
    return err;
}

/* ---- the journal file ---- */

static pigeon_err jerr(pg_spool_sq *q, int rc, const char *what)
{
    int sys = q->journal != NULL ? sqlite3_system_errno(q->journal) : 0;
    int full = (rc & 0xff) == SQLITE_FULL || sys == ENOSPC || sys == EDQUOT;
    return pg_spool_fail(q->diag, full ? PIGEON_ERR_NOSPACE : PIGEON_ERR_IO,
                         "spool: %s (outcome journal): %s%s", what,
                         q->journal != NULL ? sqlite3_errmsg(q->journal) : sqlite3_errstr(rc),
                         full ? " (disk full)" : "");
}

int pg_spool_sq_journaling(const pg_spool_sq *q)
{
    return q->defer_sync && q->holder_id != 0;
}

/* Opens the journal beside the spool; without create, a missing journal is not an error
 * (q->journal stays NULL: nothing was journaled). */
static pigeon_err journal_open(pg_spool_sq *q, int create)
{
    char path[4200];
    if (q->journal != NULL)
        return PIGEON_OK;
    const char *main = sqlite3_db_filename(q->db, "main");
    if (main == NULL || snprintf(path, sizeof path, "%s-outcomes", main) >= (int)sizeof path)
        return pg_spool_fail(q->diag, PIGEON_ERR_INVALID, "spool: path too long for a journal");
    if (access(path, F_OK) != 0) {
        if (!create)
            return PIGEON_OK;
        /* Private like the spool: created 0600 before SQLite opens it. */
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            int e = errno;
            return pg_spool_fail(q->diag,
                                 e == ENOSPC || e == EDQUOT ? PIGEON_ERR_NOSPACE : PIGEON_ERR_IO,
                                 "spool: cannot create %s: %s", path, strerror(e));
        }
        close(fd);
    }
    int rc =
        sqlite3_open_v2(path, &q->journal,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(q->journal, 10000);
        rc = sqlite3_exec(q->journal, "PRAGMA page_size=1024", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(q->journal, journal_schema, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        pigeon_err err = jerr(q, rc, "opening");
        pg_spool_sq_journal_close(q);
        return err;
    }
    return PIGEON_OK;
}

void pg_spool_sq_journal_close(pg_spool_sq *q)
{
    for (int i = 0; i < J_COUNT; i++) {
        sqlite3_finalize(q->jstmt[i]);
        q->jstmt[i] = NULL;
    }
    sqlite3_close_v2(q->journal);
    q->journal = NULL;
}

static pigeon_err jprep(pg_spool_sq *q, int id, sqlite3_stmt **out)
{
    if (q->jstmt[id] == NULL) {
        int rc = sqlite3_prepare_v3(q->journal, jsql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &q->jstmt[id], NULL);
        if (rc != SQLITE_OK)
            return jerr(q, rc, "preparing a statement");
    }
    *out = q->jstmt[id];
    return PIGEON_OK;
}

/* Runs a journal statement (bound already, or without parameters) to its end. */
static pigeon_err jexec(pg_spool_sq *q, int id, const char *what)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = jprep(q, id, &st);
    if (err != PIGEON_OK)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? PIGEON_OK : jerr(q, rc, what);
}

/* Writes one outcome of a claim to the journal. */
static pigeon_err journal_row(pg_spool_sq *q, const pigeon_spool_entry *job,
                              const pigeon_spool_outcome *o, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = jprep(q, J_INSERT, &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, q->holder_id);
    sqlite3_bind_int64(st, 2, job->lease_token);
    pg_spool_sq_bind_text(st, 3, job->queue_id);
    sqlite3_bind_int64(st, 4, job->rcpts[o->rcpt].id);
    sqlite3_bind_int(st, 5, (int)o->state);
    if (o->state == PIGEON_SPOOL_DEFERRED)
        sqlite3_bind_int64(st, 6, o->next_ms);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_int(st, 7, (int)o->err);
    sqlite3_bind_int(st, 8, o->smtp_code);
    pg_spool_sq_bind_text(st, 9, o->enhanced_code);
    bind_text_cut(st, 10, o->text);
    sqlite3_bind_int64(st, 11, now_ms);
    return jexec(q, J_INSERT, "recording an outcome");
}

/* Nonzero when the recipient is still in flight under the claim's lease (a read of the
 * spool: an outcome other than delivered counts only then, as in a direct record). */
static int lease_held(pg_spool_sq *q, const pigeon_spool_entry *job, size_t rcpt)
{
    sqlite3_stmt *st = NULL;
    if (pg_spool_sq_prep(q, ST_LEASE_HELD, &st) != PIGEON_OK)
        return 1; /* cannot tell: journaled, and judged again when applied */
    sqlite3_bind_int64(st, 1, job->rcpts[rcpt].id);
    sqlite3_bind_int64(st, 2, job->lease_token);
    int held = sqlite3_step(st) != SQLITE_DONE;
    sqlite3_reset(st);
    return held;
}

pigeon_err pg_spool_sq_journal_add(pg_spool_sq *q, pigeon_spool_record_item *items, size_t n,
                                   int64_t now_ms)
{
    size_t rows = 0;
    pigeon_err err = journal_open(q, 1);
    if (err == PIGEON_OK)
        err = jexec(q, J_BEGIN, "starting a record");
    if (err != PIGEON_OK)
        return err;
    for (size_t i = 0; err == PIGEON_OK && i < n; i++) {
        items[i].lost = 0;
        for (size_t k = 0; err == PIGEON_OK && k < items[i].n; k++) {
            const pigeon_spool_outcome *o = &items[i].outcomes[k];
            if (o->state != PIGEON_SPOOL_DELIVERED && !lease_held(q, items[i].job, o->rcpt)) {
                items[i].lost++;
                continue;
            }
            err = journal_row(q, items[i].job, o, now_ms);
            rows++;
        }
    }
    if (err == PIGEON_OK)
        err = jexec(q, J_COMMIT, "recording an outcome");
    if (err != PIGEON_OK) {
        if (!sqlite3_get_autocommit(q->journal)) {
            char keep[sizeof q->diag->text];
            memcpy(keep, q->diag->text, sizeof keep);
            jexec(q, J_ROLLBACK, "undoing a record");
            memcpy(q->diag->text, keep, sizeof keep);
        }
        return err;
    }
    q->journal_rows += rows;
    return PIGEON_OK;
}

/* Applies one journal row (a J_SELECT row) to the spool. */
static pigeon_err apply_row(pg_spool_sq *q, sqlite3_stmt *row)
{
    pigeon_spool_outcome o;
    size_t lost = 0;
    memset(&o, 0, sizeof o);
    o.state = (pigeon_spool_state)sqlite3_column_int(row, 4);
    o.next_ms = sqlite3_column_int64(row, 5);
    o.err = (pigeon_err)sqlite3_column_int(row, 6);
    o.smtp_code = sqlite3_column_int(row, 7);
    o.enhanced_code = (const char *)sqlite3_column_text(row, 8);
    o.text = (const char *)sqlite3_column_text(row, 9);
    if (o.state != PIGEON_SPOOL_DELIVERED && o.state != PIGEON_SPOOL_DEFERRED &&
        o.state != PIGEON_SPOOL_FAILED)
        return PIGEON_OK; /* not ours to judge: a damaged row is skipped */
    return pg_spool_sq_apply(q, sqlite3_column_int64(row, 3), sqlite3_column_int64(row, 1), &o,
                             sqlite3_column_int64(row, 10), &lost);
}

/* Removes the message if every recipient of it is delivered. */
static pigeon_err remove_if_done(pg_spool_sq *q, const char *queue_id)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, ST_DELETE_DONE, &st);
    if (err == PIGEON_OK) {
        pg_spool_sq_bind_text(st, 1, queue_id);
        err = pg_spool_sq_step(q, st, "removing a delivered message");
    }
    return err;
}

pigeon_err pg_spool_sq_journal_apply(pg_spool_sq *q, int64_t holder, int64_t *upto)
{
    sqlite3_stmt *st = NULL;
    char last[PIGEON_SPOOL_ID_LEN + 1] = "";
    int rc = SQLITE_DONE;
    *upto = 0;
    pigeon_err err = journal_open(q, 0);
    if (err != PIGEON_OK || q->journal == NULL)
        return err;
    err = jprep(q, J_SELECT, &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, holder);
    while (err == PIGEON_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *qid = (const char *)sqlite3_column_text(st, 2);
        err = apply_row(q, st);
        if (err == PIGEON_OK && qid != NULL && strcmp(qid, last) != 0 && last[0] != '\0')
            err = remove_if_done(q, last);
        if (qid != NULL)
            snprintf(last, sizeof last, "%s", qid);
        *upto = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    if (err == PIGEON_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        err = jerr(q, rc, "reading the journal");
    if (err == PIGEON_OK && last[0] != '\0')
        err = remove_if_done(q, last);
    return err;
}

pigeon_err pg_spool_sq_journal_forget(pg_spool_sq *q, int64_t holder, int64_t upto)
{
    sqlite3_stmt *st = NULL;
    if (upto <= 0 || q->journal == NULL)
        return PIGEON_OK;
    pigeon_err err = jprep(q, J_FORGET, &st);
    if (err != PIGEON_OK)
        return err;
    sqlite3_bind_int64(st, 1, holder);
    sqlite3_bind_int64(st, 2, upto);
    err = jexec(q, J_FORGET, "forgetting applied outcomes");
    if (err == PIGEON_OK && holder == q->holder_id)
        q->journal_rows = 0;
    return err;
}
