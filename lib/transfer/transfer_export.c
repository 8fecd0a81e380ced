/*
 * transfer_export.c - writing a spool in the queue export format (transfer.h): a listing
 * on one handle, and for each message its recipients and body read through a second
 * handle as the listing goes, the body base64-encoded one chunk at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "codec/encode.h"
#include "transfer/transfer.h"
#include "util/buf.h"
#include "util/utf8.h"

/* Bytes of body encoded at a time (a multiple of 3, so pieces join without padding). */
#define BODY_PIECE (3 * 64 * 1024)

/* An export in progress. */
typedef struct exporter {
    pigeon_spool *read;         /* the handle reading recipients and bodies */
    pg_transfer_write_fn write; /* where lines go */
    void *ctx;                  /* its context */
    pg_transfer_stats *stats;   /* the counts */
    pg_buf line;                /* the current line, up to its body */
    unsigned char *piece;       /* BODY_PIECE bytes of body */
    char *b64;                  /* their base64 */
    pigeon_err err;             /* the first failure */
    char *errbuf;               /* where its reason goes */
    size_t errlen;              /* its size */
} exporter;

/* Appends s as a JSON string (RFC 8259 7): quote, backslash and control characters
 * escaped, bytes that are not UTF-8 replaced by U+FFFD (JSON text is UTF-8). */
static void put_string(pg_buf *b, const char *s)
{
    if (s == NULL) {
        pg_buf_puts(b, "null");
        return;
    }
    pg_buf_putc(b, '"');
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        uint32_t cp = 0;
        size_t k = ch < 0x80 ? 1 : pg_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k == 0) {
            pg_buf_puts(b, "\xef\xbf\xbd");
            i++;
        } else if (k > 1) {
            pg_buf_append(b, s + i, k);
            i += k;
        } else {
            if (ch == '"' || ch == '\\') {
                pg_buf_putc(b, '\\');
                pg_buf_putc(b, (char)ch);
            } else if (ch < 0x20 || ch == 0x7f) {
                pg_buf_printf(b, "\\u%04x", ch);
            } else {
                pg_buf_putc(b, (char)ch);
            }
            i++;
        }
    }
    pg_buf_putc(b, '"');
}

static void put_key(pg_buf *b, const char *key, int first)
{
    pg_buf_printf(b, "%s\"%s\":", first ? "" : ",", key);
}

static void put_int(pg_buf *b, const char *key, int64_t v)
{
    pg_buf_printf(b, ",\"%s\":%lld", key, (long long)v);
}

static void put_rcpt(pg_buf *b, const pigeon_spool_rcpt *r, int first)
{
    pg_buf_puts(b, first ? "{" : ",{");
    put_key(b, "address", 1);
    put_string(b, r->address);
    put_key(b, "state", 0);
    put_string(b, pigeon_spool_state_name(r->state));
    put_int(b, "attempts", r->attempts);
    put_int(b, "next_ms", r->next_ms);
    put_int(b, "error", (int64_t)r->last_err);
    put_key(b, "code", 0);
    if (r->smtp_code != 0)
        pg_buf_printf(b, "%d", r->smtp_code);
    else
        pg_buf_puts(b, "null");
    put_key(b, "enhanced_code", 0);
    put_string(b, r->enhanced_code);
    put_key(b, "text", 0);
    put_string(b, r->text);
    put_int(b, "updated_ms", r->updated_ms);
    pg_buf_putc(b, '}');
}

static int say(exporter *ex, pigeon_err err, const char *what)
{
    if (ex->err == PIGEON_OK) {
        ex->err = err;
        snprintf(ex->errbuf, ex->errlen, "%s", what);
    }
    return 1;
}

/* The message's line up to the body's opening quote, from its shown entry. */
static void put_head(exporter *ex, const pigeon_spool_entry *e, int64_t size,
                     const unsigned char sha[32])
{
    pg_buf *b = &ex->line;
    pg_buf_reset(b);
    pg_buf_putc(b, '{');
    put_key(b, "queue_id", 1);
    put_string(b, e->queue_id);
    put_key(b, "account", 0);
    put_string(b, e->account);
    put_key(b, "mail_from", 0);
    put_string(b, e->mail_from);
    put_key(b, "message_id", 0);
    put_string(b, e->message_id);
    put_int(b, "created_ms", e->created_ms);
    put_int(b, "size", size);
    put_key(b, "sha256", 0);
    pg_buf_putc(b, '"');
    for (int i = 0; i < 32; i++)
        pg_buf_printf(b, "%02x", sha[i]);
    pg_buf_putc(b, '"');
    put_key(b, "recipients", 0);
    pg_buf_putc(b, '[');
    for (size_t i = 0; i < e->rcpt_count; i++)
        put_rcpt(b, &e->rcpts[i], i == 0);
    pg_buf_puts(b, "],\"body\":\"");
}

/* Streams the body as base64. The SHA-256 is checked by the spool at the end of the
 * read (a damaged body fails the export rather than being carried over). */
static int put_body(exporter *ex, pigeon_spool_body *body, int64_t *total)
{
    *total = 0;
    for (;;) {
        size_t fill = 0, n = 0;
        int rc = 0;
        /* Fill a whole piece (a multiple of 3) unless the body ends first. */
        while (fill < BODY_PIECE &&
               (rc = pigeon_spool_body_read(body, ex->piece + fill, BODY_PIECE - fill, &n)) == 0 &&
               n > 0)
            fill += n;
        if (rc != 0)
            return say(ex, (pigeon_err)rc, pigeon_spool_error(ex->read));
        if (fill == 0)
            return 0;
        size_t out = pg_b64_encode_raw(ex->piece, fill, ex->b64);
        if (ex->write(ex->ctx, ex->b64, out) != 0)
            return say(ex, PIGEON_ERR_IO, "writing the export failed");
        *total += (int64_t)fill;
        if (fill < BODY_PIECE)
            return 0;
    }
}

/* One message's line. The format puts the SHA-256 before the body and the spool does
 * not hand out the one it stored, so the body is read twice, both times streamed: once
 * for the hash (the spool checks it against its own on the way), once to write it. */
static int export_one(exporter *ex, const pigeon_spool_entry *listed)
{
    pigeon_spool_entry *e = NULL;
    pigeon_spool_body *body = NULL;
    unsigned char sha[32];
    int64_t size = 0, total = 0;
    pigeon_err err = pigeon_spool_show(ex->read, listed->queue_id, &e);
    if (err == PIGEON_OK)
        err = pigeon_spool_body_open(ex->read, listed->queue_id, &body, &size);
    if (err == PIGEON_ERR_NOTFOUND) { /* delivered and removed since the listing */
        ex->stats->vanished++;
        goto done;
    }
    if (err != PIGEON_OK) {
        say(ex, err, pigeon_spool_error(ex->read));
        goto done;
    }
    /* First pass: the hash (the format puts it before the body, and the spool's own is
     * not exposed); the second pass writes. Both stream. */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        say(ex, PIGEON_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t n = 0;
    int rc;
    while ((rc = pigeon_spool_body_read(body, ex->piece, BODY_PIECE, &n)) == 0 && n > 0)
        EVP_DigestUpdate(md, ex->piece, n);
    EVP_DigestFinal_ex(md, sha, NULL);
    EVP_MD_CTX_free(md);
    pigeon_spool_body_close(body);
    body = NULL;
    if (rc != 0) {
        say(ex, (pigeon_err)rc, pigeon_spool_error(ex->read));
        goto done;
    }
    err = pigeon_spool_body_open(ex->read, listed->queue_id, &body, &size);
    if (err != PIGEON_OK) {
        if (err == PIGEON_ERR_NOTFOUND)
            ex->stats->vanished++;
        else
            say(ex, err, pigeon_spool_error(ex->read));
        goto done;
    }
    put_head(ex, e, size, sha);
    if (ex->line.err != PIGEON_OK || ex->write(ex->ctx, ex->line.data, ex->line.len) != 0) {
        say(ex, PIGEON_ERR_IO, "writing the export failed");
        goto done;
    }
    if (put_body(ex, body, &total) != 0)
        goto done;
    if (ex->write(ex->ctx, "\"}\n", 3) != 0) {
        say(ex, PIGEON_ERR_IO, "writing the export failed");
        goto done;
    }
    ex->stats->messages++;
    ex->stats->bytes += total;
done:
    pigeon_spool_body_close(body);
    pigeon_spool_entry_free(e);
    return ex->err != PIGEON_OK;
}

static int export_cb(void *ctx, const pigeon_spool_entry *entry)
{
    return export_one(ctx, entry);
}

pigeon_err pg_transfer_export(pigeon_spool *list, pigeon_spool *read, const char *account,
                              const char *backend, int64_t now_ms, pg_transfer_write_fn write,
                              void *ctx, pg_transfer_stats *stats, char *err, size_t errlen)
{
    exporter ex = {read, write, ctx, stats, {0}, NULL, NULL, PIGEON_OK, err, errlen};
    char head[256];
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (list == NULL || read == NULL || write == NULL || stats == NULL || err == NULL)
        return PIGEON_ERR_INVALID;
    memset(stats, 0, sizeof *stats);
    pg_buf_init(&ex.line);
    ex.piece = malloc(BODY_PIECE);
    ex.b64 = malloc(BODY_PIECE / 3 * 4);
    if (ex.piece == NULL || ex.b64 == NULL) {
        say(&ex, PIGEON_ERR_NOMEM, "out of memory");
        goto done;
    }
    int n = snprintf(head, sizeof head,
                     "{\"format\":\"pigeon-queue\",\"version\":%d,\"exported_ms\":%lld,"
                     "\"backend\":\"%s\"}\n",
                     PG_TRANSFER_VERSION, (long long)now_ms, backend != NULL ? backend : "");
    if (n < 0 || (size_t)n >= sizeof head || write(ctx, head, (size_t)n) != 0) {
        say(&ex, PIGEON_ERR_IO, "writing the export failed");
        goto done;
    }
    pigeon_err e = pigeon_spool_list(list, account, export_cb, &ex);
    if (e != PIGEON_OK && ex.err == PIGEON_OK)
        say(&ex, e, pigeon_spool_error(list));
    if (ex.err != PIGEON_OK)
        goto done;
    n = snprintf(head, sizeof head, "{\"end\":true,\"messages\":%zu}\n", stats->messages);
    if (write(ctx, head, (size_t)n) != 0)
        say(&ex, PIGEON_ERR_IO, "writing the export failed");
done:
    pg_buf_cleanup(&ex.line);
    free(ex.piece);
    free(ex.b64);
    return ex.err;
}
