/*
 * transfer_import.c - reading the queue export format (transfer.h) into a spool: lines
 * read from a stream into one growing buffer (bounded by max_line), each parsed by
 * transfer_line.c and stored by pg_spool_import, a few hundred messages per commit.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/transfer.h"

/* Bytes read from the stream at a time. */
#define READ_BLOCK (64 * 1024)
/* A batch is committed after this many messages or bytes of bodies: one flush for many
 * small messages, and a bounded transaction for large ones. */
#define BATCH_MESSAGES 256
#define BATCH_BYTES    (32 * 1024 * 1024)

/* The line reader. */
typedef struct line_reader {
    pigeon_read_fn read; /* the stream */
    void *ctx;           /* its context */
    char *buf;           /* bytes read and not yet consumed: [start, len) */
    size_t cap;          /* allocated */
    size_t start;        /* the next line's first byte */
    size_t len;          /* bytes in buf */
    size_t scan;         /* where the search for LF goes on */
    size_t max;          /* the longest line allowed */
    int eof;             /* the stream ended */
} line_reader;

/* An import in progress. */
typedef struct importer {
    pigeon_spool *spool;      /* where messages go */
    pg_transfer_stats *stats; /* the counts */
    char *err;                /* where the reason goes */
    size_t errlen;            /* its size */
    size_t batch_messages;    /* stored in the open batch, not yet committed */
    size_t batch_present;     /* skipped in it */
    int64_t batch_bytes;      /* bytes stored in it */
    int in_batch;             /* a batch is open */
} importer;

static pigeon_err say(importer *im, pigeon_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static pigeon_err say(importer *im, pigeon_err err, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (im->stats->line > 0)
        snprintf(im->err, im->errlen, "line %zu: %s", im->stats->line, what);
    else
        snprintf(im->err, im->errlen, "%s", what);
    return err;
}

/* The next line (without its LF; *line points into the reader's buffer, valid until the
 * next call): 1, 0 at the end, or -1 (too long: err says so; or the read failed: -2). */
static int next_line(line_reader *r, char **line, size_t *len)
{
    for (;;) {
        char *lf = r->scan < r->len ? memchr(r->buf + r->scan, '\n', r->len - r->scan) : NULL;
        if (lf != NULL) {
            *line = r->buf + r->start;
            *len = (size_t)(lf - *line);
            r->start = r->scan = (size_t)(lf - r->buf) + 1;
            return *len > r->max ? -1 : 1;
        }
        r->scan = r->len;
        if (r->len - r->start > r->max)
            return -1;
        if (r->eof) {
            if (r->start == r->len)
                return 0;
            *line = r->buf + r->start;
            *len = r->len - r->start;
            r->start = r->scan = r->len;
            return 1;
        }
        if (r->start > 0) { /* keep only the line being read */
            memmove(r->buf, r->buf + r->start, r->len - r->start);
            r->len -= r->start;
            r->scan -= r->start;
            r->start = 0;
        }
        if (r->cap - r->len < READ_BLOCK) {
            size_t cap = r->cap == 0 ? 4 * READ_BLOCK : r->cap * 2;
            char *b = realloc(r->buf, cap);
            if (b == NULL)
                return -3;
            r->buf = b;
            r->cap = cap;
        }
        size_t n = 0;
        if (r->read(r->ctx, r->buf + r->len, READ_BLOCK, &n) != 0 || n > READ_BLOCK)
            return -2;
        r->len += n;
        r->eof = n == 0;
    }
}

/* Commits the open batch and counts what it held. */
static pigeon_err commit(importer *im)
{
    if (!im->in_batch)
        return PIGEON_OK;
    im->in_batch = 0;
    pigeon_err err = pigeon_spool_commit(im->spool);
    if (err != PIGEON_OK)
        return say(im, err, "storing the messages before this line failed: %s",
                   pigeon_spool_error(im->spool));
    im->stats->messages += im->batch_messages;
    im->stats->present += im->batch_present;
    im->stats->bytes += im->batch_bytes;
    im->batch_messages = im->batch_present = 0;
    im->batch_bytes = 0;
    return PIGEON_OK;
}

static pigeon_err store(importer *im, const pg_transfer_line *l)
{
    char why[300];
    int present = 0;
    if (!im->in_batch) {
        pigeon_err err = pigeon_spool_begin(im->spool);
        if (err != PIGEON_OK)
            return say(im, err, "%s", pigeon_spool_error(im->spool));
        im->in_batch = 1;
    }
    pg_transfer_body body = {l->body, l->body_len, {0}, 0, 0, 0};
    pigeon_err err = pg_spool_import(im->spool, &l->msg, pg_transfer_body_read, &body, l->size,
                                     l->sha256, &present, why, sizeof why);
    if (err != PIGEON_OK) {
        const char *reason = body.bad         ? "the body is not valid base64 (RFC 4648 4)"
                             : why[0] != '\0' ? why
                                              : pigeon_spool_error(im->spool);
        if (err == PIGEON_ERR_ADDRESS || err == PIGEON_ERR_HEADER)
            err = PIGEON_ERR_INVALID;
        say(im, err, "message %s: %s", l->msg.queue_id, reason);
        char keep[sizeof why + 64];
        snprintf(keep, sizeof keep, "%s", im->err);
        pigeon_err c = commit(im); /* the messages before it stay imported */
        if (c != PIGEON_OK)
            return c;
        snprintf(im->err, im->errlen, "%s", keep);
        return err;
    }
    if (present == 2)
        im->stats->finished++;
    else if (present)
        im->batch_present++;
    else {
        im->batch_messages++;
        im->batch_bytes += l->size;
    }
    if (im->batch_messages >= BATCH_MESSAGES || im->batch_bytes >= BATCH_BYTES)
        return commit(im);
    return PIGEON_OK;
}

/* Handles one line: the header first, then messages, then the end. */
static pigeon_err one_line(importer *im, char *text, size_t len, int *state, int64_t *seen)
{
    char why[300];
    pg_transfer_line l;
    pigeon_err err = pg_transfer_line_parse(text, len, &l, why, sizeof why);
    if (err != PIGEON_OK) {
        pg_transfer_line_cleanup(&l);
        return say(im, err, "%s", why);
    }
    if (*state == 0 && l.kind != PG_TRANSFER_HEADER)
        err = say(im, PIGEON_ERR_INVALID, "not a pigeon queue export (no header line first)");
    else if (*state == 0 && l.version > PG_TRANSFER_VERSION)
        err = say(im, PIGEON_ERR_INVALID,
                  "format version %lld is newer than this pigeon reads (%d): upgrade pigeon",
                  (long long)l.version, PG_TRANSFER_VERSION);
    else if (*state == 2)
        err = say(im, PIGEON_ERR_INVALID, "a line after the end line");
    else if (*state == 1 && l.kind == PG_TRANSFER_HEADER)
        err = say(im, PIGEON_ERR_INVALID, "a second header line");
    else if (l.kind == PG_TRANSFER_END && l.messages != *seen)
        err = say(im, PIGEON_ERR_INVALID, "the end line counts %lld messages, the file has %lld",
                  (long long)l.messages, (long long)*seen);
    else if (l.kind == PG_TRANSFER_MESSAGE) {
        ++*seen;
        err = store(im, &l);
    }
    if (err == PIGEON_OK)
        *state = l.kind == PG_TRANSFER_END ? 2 : 1;
    pg_transfer_line_cleanup(&l);
    return err;
}

pigeon_err pg_transfer_import(pigeon_spool *spool, pigeon_read_fn read, void *ctx, size_t max_line,
                              pg_transfer_stats *stats, char *err, size_t errlen)
{
    line_reader r = {read, ctx, NULL, 0, 0, 0, 0, max_line, 0};
    importer im = {spool, stats, err, errlen, 0, 0, 0, 0};
    int state = 0; /* 0: before the header, 1: messages, 2: after the end */
    int64_t seen = 0;
    pigeon_err e = PIGEON_OK;
    if (spool == NULL || read == NULL || stats == NULL || err == NULL || errlen == 0)
        return PIGEON_ERR_INVALID;
    memset(stats, 0, sizeof *stats);
    err[0] = '\0';
    for (;;) {
        char *text = NULL;
        size_t len = 0;
        int got = next_line(&r, &text, &len);
        if (got == 0)
            break;
        stats->line++;
        if (got == -1)
            e = say(&im, PIGEON_ERR_INVALID, "longer than %zu bytes", max_line);
        else if (got == -2)
            e = say(&im, PIGEON_ERR_IO, "reading the export failed");
        else if (got == -3)
            e = say(&im, PIGEON_ERR_NOMEM, "out of memory");
        else if (len == 0 || (len == 1 && text[0] == '\r'))
            continue; /* a blank line (at the end, typically) */
        else
            e = one_line(&im, text, len, &state, &seen);
        if (e != PIGEON_OK)
            break;
    }
    if (e == PIGEON_OK)
        e = commit(&im);
    else if (im.in_batch) {
        char keep[512];
        snprintf(keep, sizeof keep, "%s", err);
        if (commit(&im) == PIGEON_OK)
            snprintf(err, errlen, "%s", keep);
    }
    if (e == PIGEON_OK && state != 2) {
        stats->line = 0;
        e = say(&im, PIGEON_ERR_INVALID,
                state == 0 ? "the input is empty: no header line"
                           : "the export ends without its end line (cut short?); the complete "
                             "messages before the cut were imported");
    }
    free(r.buf);
    return e;
}
