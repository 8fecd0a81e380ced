/*
 * spool_sqlite_journal.c - the SQLite spool backend: applying outcomes, and the outcome
 * journal of handles opened with PIGEON_SPOOL_DEFER_SYNC (see spool_sqlite.h).
 *
 * Why a journal: a delivery daemon records each message's outcome as soon as its reply
 * is read, so that a crash of the process re-sends at most the message in hand. In the
 * spool itself that record rewrites whole pages (8 or 16 KiB each: the recipient row, its due
 * index, the message and its body when removed) into the WAL, several per message, which
 * made recording one by one several times slower than recording a batch at once. The
 * journal is an append-only file per lease holder beside the spool
 * ("SPOOL-outcomes-HOLDER"): a record is one write() of a few hundred bytes, which the
 * kernel keeps if the process dies (not if the machine does: the batch's sync covers
 * that). Each record carries its length and a checksum, so a record torn by a crash in
 * the middle of its write is recognized and ignored (its message is then sent again:
 * the one duplicate the daemon allows).
 *
 * At pigeon_spool_sync() the handle applies its journaled outcomes to the spool in one
 * transaction (removing finished messages), flushes the spool's WAL, and only then
 * empties the journal. Deliveries may be journaled meanwhile by other threads
 * (pigeon_spool_journal_delivered, under journal_lock only): a sync applies the span of
 * the file written before it started, remembers where that span ends, and empties the
 * file only when nothing was added after it (else the next sync goes on from there; past
 * JOURNAL_COMPACT bytes a sync keeps the journal locked so that it ends empty). When a daemon dies,
 * the daemon that reclaims its leases applies its journal first, so that a message it had sent is
 * not sent again, then removes the file. Applying twice is harmless: a delivered recipient stays
 * delivered, and other outcomes apply only under their lease token.
 */
#include "spool/spool_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A record's header: what follows it, and a check that it was written whole. */
#define JOURNAL_MAGIC 0x704a4f31u /* "pJO1" */
typedef struct jhead {
    uint32_t magic; /* JOURNAL_MAGIC */
    uint32_t len;   /* bytes of the record after the header */
    uint32_t sum;   /* FNV-1a of those bytes */
} jhead;

/* A record: one outcome, then enh_len bytes of enhanced code and text_len of text. */
typedef struct jrec {
    int64_t token;                          /* the claim's lease token */
    int64_t rcpt_id;                        /* the recipient's row id */
    int64_t next_ms;                        /* DEFERRED: when due again */
    int64_t now_ms;                         /* when recorded */
    int32_t state;                          /* pigeon_spool_state */
    int32_t err;                            /* pigeon_err */
    int32_t smtp_code;                      /* the server's code */
    uint16_t enh_len;                       /* bytes of enhanced code that follow */
    uint16_t text_len;                      /* bytes of text after those */
    char queue_id[PIGEON_SPOOL_ID_LEN + 1]; /* the message */
} jrec;

/* The largest record: a record's strings are bounded by what the spool stores. */
#define JOURNAL_MAX_RECORD (sizeof(jhead) + sizeof(jrec) + 64 + PG_SPOOL_SQ_MAX_TEXT)

static uint32_t fnv1a(const unsigned char *p, size_t n);
static int journal_path(pg_spool_sq *q, int64_t holder, char *out, size_t cap);
static pigeon_err journal_fail(pg_spool_diag *diag, int e, const char *what);
static pigeon_err journal_write(pg_spool_sq *q, const unsigned char *buf, size_t len, size_t rows,
                                pg_spool_diag *diag);
static size_t decode(const unsigned char *buf, size_t len, size_t off, jrec *r,
                     const unsigned char **strings);
static pigeon_err remove_delivered(pg_spool_sq *q, const jrec *r, int *removed);
static pigeon_err apply_records(pg_spool_sq *q, const unsigned char *buf, size_t len);
static size_t encode(unsigned char *buf, const pigeon_spool_entry *job,
                     const pigeon_spool_outcome *o, int64_t now_ms);
static pigeon_err journal_read(pg_spool_sq *q, int64_t holder, off_t from, off_t to,
                               unsigned char **out, size_t *len);
static pigeon_err apply_record(pg_spool_sq *q, const jrec *r, const unsigned char *strings);
static int lease_held(pg_spool_sq *q, const pigeon_spool_entry *job, size_t rcpt);
static void bind_text_cut(sqlite3_stmt *st, int i, const char *s);
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

/* One statement: deleting the message row cascades to its body and recipients, which
 * measured cheaper than deleting them first in statements of their own. */
pigeon_err pg_spool_sq_remove_if_done(pg_spool_sq *q, const char *queue_id)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, ST_DELETE_DONE, &st);
    if (err == PIGEON_OK) {
        pg_spool_sq_bind_text(st, 1, queue_id);
        err = pg_spool_sq_step(q, st, "removing a delivered message");
    }
    return err;
}

/* ---- the journal file ---- */

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* "SPOOL-outcomes-HOLDER" into out; -1 if it does not fit. */
static int journal_path(pg_spool_sq *q, int64_t holder, char *out, size_t cap)
{
    const char *main = sqlite3_db_filename(q->db, "main");
    int n = snprintf(out, cap, "%s-outcomes-%lld", main != NULL ? main : "", (long long)holder);
    return main != NULL && main[0] != '\0' && n > 0 && (size_t)n < cap ? 0 : -1;
}

int pg_spool_sq_journaling(const pg_spool_sq *q)
{
    return q->defer_sync && q->holder_id != 0;
}

static pigeon_err journal_fail(pg_spool_diag *diag, int e, const char *what)
{
    return pg_spool_fail(diag, e == ENOSPC || e == EDQUOT ? PIGEON_ERR_NOSPACE : PIGEON_ERR_IO,
                         "spool: %s the outcome journal: %s%s", what, strerror(e),
                         e == ENOSPC || e == EDQUOT ? " (disk full)" : "");
}

/* Appends one record for outcome o of job to buf (room for JOURNAL_MAX_RECORD). */
static size_t encode(unsigned char *buf, const pigeon_spool_entry *job,
                     const pigeon_spool_outcome *o, int64_t now_ms)
{
    jrec r;
    memset(&r, 0, sizeof r);
    r.token = job->lease_token;
    r.rcpt_id = job->rcpts[o->rcpt].id;
    r.next_ms = o->state == PIGEON_SPOOL_DEFERRED ? o->next_ms : 0;
    r.now_ms = now_ms;
    r.state = (int32_t)o->state;
    r.err = (int32_t)o->err;
    r.smtp_code = o->smtp_code;
    size_t enh = o->enhanced_code != NULL ? strnlen(o->enhanced_code, 63) : 0;
    size_t text = o->text != NULL ? strnlen(o->text, PG_SPOOL_SQ_MAX_TEXT) : 0;
    while (text > 0 && text < strnlen(o->text, PG_SPOOL_SQ_MAX_TEXT + 1) &&
           ((unsigned char)o->text[text] & 0xc0) == 0x80)
        text--; /* cut, not in the middle of a UTF-8 sequence */
    r.enh_len = (uint16_t)enh;
    r.text_len = (uint16_t)text;
    memcpy(r.queue_id, job->queue_id, sizeof r.queue_id);
    unsigned char *p = buf + sizeof(jhead);
    memcpy(p, &r, sizeof r);
    if (enh > 0)
        memcpy(p + sizeof r, o->enhanced_code, enh);
    if (text > 0)
        memcpy(p + sizeof r + enh, o->text, text);
    jhead h = {JOURNAL_MAGIC, (uint32_t)(sizeof r + enh + text), 0};
    h.sum = fnv1a(p, h.len);
    memcpy(buf, &h, sizeof h);
    return sizeof h + h.len;
}

/* Appends len bytes holding rows records in one write: the records of a call reach the
 * file together or (torn by a crash) are recognized as incomplete. The caller holds
 * journal_lock, with the journal open. */
static pigeon_err journal_write(pg_spool_sq *q, const unsigned char *buf, size_t len, size_t rows,
                                pg_spool_diag *diag)
{
    ssize_t w = len > 0 ? write(q->journal_fd, buf, len) : 0;
    int e = errno;
    if (w < 0 || (size_t)w != len) {
        if (w > 0 && ftruncate(q->journal_fd, q->journal_size) != 0)
            e = errno;
        return journal_fail(diag, w < 0 ? e : ENOSPC, "writing");
    }
    q->journal_size += (off_t)len;
    q->journal_rows += rows;
    return PIGEON_OK;
}

pigeon_err pg_spool_sq_journal_add(pg_spool_sq *q, pigeon_spool_record_item *items, size_t n,
                                   int64_t now_ms)
{
    char path[4200];
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += items[i].n;
    unsigned char *buf = malloc(total > 0 ? total * JOURNAL_MAX_RECORD : 1);
    if (buf == NULL)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    size_t len = 0, rows = 0;
    for (size_t i = 0; i < n; i++) {
        items[i].lost = 0;
        for (size_t k = 0; k < items[i].n; k++) {
            const pigeon_spool_outcome *o = &items[i].outcomes[k];
            if (o->state != PIGEON_SPOOL_DELIVERED && !lease_held(q, items[i].job, o->rcpt)) {
                items[i].lost++;
                continue;
            }
            len += encode(buf + len, items[i].job, o, now_ms);
            rows++;
        }
    }
    pigeon_err err = PIGEON_OK;
    pthread_mutex_lock(&q->journal_lock);
    if (q->journal_fd < 0) {
        if (journal_path(q, q->holder_id, path, sizeof path) != 0)
            err = pg_spool_fail(q->diag, PIGEON_ERR_INVALID, "spool: path too long");
        /* Private like the spool. */
        else if ((q->journal_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
            err = journal_fail(q->diag, errno, "opening");
        else {
            /* Records left by an earlier handle of this holder are applied at the next
             * sync with ours (counted as one row until then). */
            q->journal_size = lseek(q->journal_fd, 0, SEEK_END);
            q->journal_applied = 0;
            q->journal_rows += q->journal_size > 0;
        }
    }
    if (err == PIGEON_OK)
        err = journal_write(q, buf, len, rows, q->diag);
    pthread_mutex_unlock(&q->journal_lock);
    free(buf);
    return err;
}

pigeon_err pg_spool_sq_journal_delivered(void *be, pigeon_spool_record_item *items, size_t n,
                                         int64_t now_ms, pg_spool_diag *diag)
{
    pg_spool_sq *q = be;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += items[i].n;
    unsigned char *buf = malloc(total > 0 ? total * JOURNAL_MAX_RECORD : 1);
    if (buf == NULL)
        return pg_spool_fail(diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        items[i].lost = 0;
        for (size_t k = 0; k < items[i].n; k++)
            len += encode(buf + len, items[i].job, &items[i].outcomes[k], now_ms);
    }
    pigeon_err err;
    pthread_mutex_lock(&q->journal_lock);
    if (!q->defer_sync || q->journal_fd < 0)
        err = pg_spool_fail(diag, PIGEON_ERR_UNSUPPORTED, "spool: no outcome journal open");
    else
        err = journal_write(q, buf, len, total, diag);
    pthread_mutex_unlock(&q->journal_lock);
    free(buf);
    return err;
}

/* Reads bytes from..to (to -1: the end) of the journal of holder into *out (*len bytes);
 * *out NULL if there is none. */
static pigeon_err journal_read(pg_spool_sq *q, int64_t holder, off_t from, off_t to,
                               unsigned char **out, size_t *len)
{
    char path[4200];
    struct stat sb;
    *out = NULL;
    *len = 0;
    if (journal_path(q, holder, path, sizeof path) != 0)
        return PIGEON_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? PIGEON_OK : journal_fail(q->diag, errno, "opening");
    pigeon_err err = PIGEON_OK;
    unsigned char *buf = NULL;
    size_t got = 0, want = 0;
    if (fstat(fd, &sb) != 0)
        err = journal_fail(q->diag, errno, "reading");
    else {
        if (to < 0 || to > sb.st_size)
            to = sb.st_size;
        want = to > from ? (size_t)(to - from) : 0;
        if (want > 0 && (buf = malloc(want)) == NULL)
            err = pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    }
    while (err == PIGEON_OK && buf != NULL && got < want) {
        ssize_t r = pread(fd, buf + got, want - got, from + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* shorter than it said: what was read is applied */
        got += (size_t)r;
    }
    close(fd);
    if (err != PIGEON_OK) {
        free(buf);
        return err;
    }
    *out = buf;
    *len = got;
    return PIGEON_OK;
}

/* Applies one decoded record to the spool. */
static pigeon_err apply_record(pg_spool_sq *q, const jrec *r, const unsigned char *strings)
{
    char enh[64], text[PG_SPOOL_SQ_MAX_TEXT + 1];
    pigeon_spool_outcome o;
    size_t lost = 0;
    memcpy(enh, strings, r->enh_len);
    enh[r->enh_len] = '\0';
    memcpy(text, strings + r->enh_len, r->text_len);
    text[r->text_len] = '\0';
    memset(&o, 0, sizeof o);
    o.state = (pigeon_spool_state)r->state;
    o.next_ms = r->next_ms;
    o.err = (pigeon_err)r->err;
    o.smtp_code = r->smtp_code;
    o.enhanced_code = r->enh_len > 0 ? enh : NULL;
    o.text = r->text_len > 0 ? text : NULL;
    if (o.state != PIGEON_SPOOL_DELIVERED && o.state != PIGEON_SPOOL_DEFERRED &&
        o.state != PIGEON_SPOOL_FAILED)
        return PIGEON_OK;
    return pg_spool_sq_apply(q, r->rcpt_id, r->token, &o, r->now_ms, &lost);
}

/* Decodes the record at off of buf (len bytes) into *r and *strings (its enhanced code
 * and text, when strings is not NULL). Returns its size, 0 when there is none whole:
 * the end, or a record torn by a crash (nothing after it was written whole either). */
static size_t decode(const unsigned char *buf, size_t len, size_t off, jrec *r,
                     const unsigned char **strings)
{
    jhead h;
    if (len - off < sizeof h)
        return 0;
    memcpy(&h, buf + off, sizeof h);
    if (h.magic != JOURNAL_MAGIC || h.len < sizeof *r || h.len > len - off - sizeof h ||
        fnv1a(buf + off + sizeof h, h.len) != h.sum)
        return 0;
    memcpy(r, buf + off + sizeof h, sizeof *r);
    r->queue_id[PIGEON_SPOOL_ID_LEN] = '\0';
    if ((size_t)r->enh_len + r->text_len + sizeof *r != h.len || r->enh_len > 63 ||
        r->text_len > PG_SPOOL_SQ_MAX_TEXT)
        return 0;
    if (strings != NULL)
        *strings = buf + off + sizeof h + sizeof *r;
    return sizeof h + h.len;
}

/* Removes the message of r, a delivery, when its recipient was the last one not delivered
 * (*removed set): its outcome is not written into a row deleted in the same transaction. */
static pigeon_err remove_delivered(pg_spool_sq *q, const jrec *r, int *removed)
{
    sqlite3_stmt *st = NULL;
    pigeon_err err = pg_spool_sq_prep(q, ST_DELETE_DELIVERED, &st);
    *removed = 0;
    if (err != PIGEON_OK)
        return err;
    pg_spool_sq_bind_text(st, 1, r->queue_id);
    sqlite3_bind_int64(st, 2, r->rcpt_id);
    err = pg_spool_sq_step(q, st, "removing a delivered message");
    *removed = err == PIGEON_OK && sqlite3_changes(q->db) > 0;
    return err;
}

/* Applies the records in buf (len bytes), up to the first one torn by a crash. A message
 * whose outcomes are all applied is removed once its last record is (a message's records
 * are written together, in one call). The usual case, a message's one record and a
 * delivery, is one statement that removes the message, when no webhook wants the outcome
 * (its trigger reads the recipient row's update). */
static pigeon_err apply_records(pg_spool_sq *q, const unsigned char *buf, size_t len)
{
    char last[PIGEON_SPOOL_ID_LEN + 1] = ""; /* the message of the records applied one by one */
    const unsigned char *strings = NULL, *next_strings = NULL;
    jrec r = {0}, next = {0};
    int hooks = 1;
    pigeon_err err = pg_spool_sq_hooks_on(q, &hooks);
    /* Each record is decoded once: the one after r is read ahead, to know whether r is
     * its message's last. */
    size_t off = decode(buf, len, 0, &r, &strings);
    for (size_t size = off; err == PIGEON_OK && size > 0; r = next, strings = next_strings) {
        size = decode(buf, len, off, &next, &next_strings);
        off += size;
        if (last[0] != '\0' && strcmp(last, r.queue_id) != 0) {
            err = pg_spool_sq_remove_if_done(q, last);
            last[0] = '\0';
            if (err != PIGEON_OK)
                break;
        }
        int removed = 0;
        if (!hooks && last[0] == '\0' && r.state == PIGEON_SPOOL_DELIVERED &&
            (size == 0 || strcmp(next.queue_id, r.queue_id) != 0))
            err = remove_delivered(q, &r, &removed);
        if (err != PIGEON_OK || removed)
            continue;
        err = apply_record(q, &r, strings);
        memcpy(last, r.queue_id, sizeof last);
    }
    if (err == PIGEON_OK && last[0] != '\0')
        err = pg_spool_sq_remove_if_done(q, last);
    return err;
}

pigeon_err pg_spool_sq_journal_apply(pg_spool_sq *q, int64_t holder, int64_t *upto)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    *upto = 0;
    pigeon_err err = journal_read(q, holder, 0, -1, &buf, &len);
    if (err != PIGEON_OK || buf == NULL)
        return err;
    err = apply_records(q, buf, len);
    free(buf);
    *upto = 1; /* the file exists: removed (a dead holder's) after commit */
    return err;
}

/* Applied records stay at the start of the journal while records journaled during the
 * application follow them (emptying the file would lose those); once this many bytes
 * are applied, a sync keeps the journal locked until it is caught up and emptied. */
#define JOURNAL_COMPACT (1024 * 1024)

void pg_spool_sq_journal_take(pg_spool_sq *q, pg_spool_sq_span *span)
{
    pthread_mutex_lock(&q->journal_lock);
    span->from = q->journal_applied;
    span->to = q->journal_size;
    span->rows = q->journal_rows;
    span->locked = q->journal_applied >= JOURNAL_COMPACT;
    if (!span->locked)
        pthread_mutex_unlock(&q->journal_lock);
}

pigeon_err pg_spool_sq_journal_apply_span(pg_spool_sq *q, const pg_spool_sq_span *span)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    if (span->rows == 0)
        return PIGEON_OK;
    pigeon_err err = journal_read(q, q->holder_id, span->from, span->to, &buf, &len);
    if (err == PIGEON_OK && buf != NULL)
        err = apply_records(q, buf, len);
    free(buf);
    return err;
}

pigeon_err pg_spool_sq_journal_done(pg_spool_sq *q, pg_spool_sq_span *span, int ok)
{
    pigeon_err err = PIGEON_OK;
    if (!span->locked)
        pthread_mutex_lock(&q->journal_lock);
    span->locked = 0;
    if (ok) {
        q->journal_applied = span->to;
        q->journal_rows -= span->rows < q->journal_rows ? span->rows : q->journal_rows;
        /* Caught up: emptied. Applying a record again (after a crash before this) is
         * harmless, see the top of this file. */
        if (q->journal_fd >= 0 && q->journal_size > 0 && q->journal_size == q->journal_applied) {
            if (ftruncate(q->journal_fd, 0) != 0)
                err = journal_fail(q->diag, errno, "emptying");
            else
                q->journal_size = q->journal_applied = 0;
        }
    }
    pthread_mutex_unlock(&q->journal_lock);
    return err;
}

pigeon_err pg_spool_sq_journal_forget(pg_spool_sq *q, int64_t holder, int64_t upto)
{
    char path[4200];
    if (upto <= 0 || holder == q->holder_id)
        return PIGEON_OK; /* this handle's own journal is emptied by pg_spool_sq_journal_done */
    if (journal_path(q, holder, path, sizeof path) == 0 && unlink(path) != 0 && errno != ENOENT)
        return journal_fail(q->diag, errno, "removing");
    return PIGEON_OK;
}

void pg_spool_sq_journal_close(pg_spool_sq *q)
{
    char path[4200];
    if (q->journal_fd < 0)
        return;
    close(q->journal_fd);
    q->journal_fd = -1;
    /* Applied and empty: the file is not needed any more. */
    if (q->journal_rows == 0 && q->journal_size == 0 && q->db != NULL &&
        journal_path(q, q->holder_id, path, sizeof path) == 0)
        unlink(path);
}
