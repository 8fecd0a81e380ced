/*
 * spool_import.c - storing a message with its exported state, the generic side: checks
 * the fields, maps in-flight recipients, streams the body in chunks through the
 * backend's enqueue steps while hashing it, and refuses a body that does not match its
 * exported size and SHA-256 before the message is committed (see spool_import.h).
 */
#include "spool/spool_import.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "spool/spool_backend.h"

/* Bounds as the generic layer's (spool.c): RFC 5321 4.5.3.1.3 paths (with room for
 * SMTPUTF8), configuration names, Message-ID field bodies, stored reply texts. */
#define MAX_PATH_LEN    512
#define MAX_ACCOUNT_LEN 255
#define MAX_MSGID_LEN   998
#define MAX_TEXT_LEN    1000
/* The error codes an import accepts (pigeon_err values, appended over time). */
#define MAX_ERR_CODE 255

/* One import in progress. */
typedef struct importer {
    const pg_spool_ops *ops; /* the backend */
    void *be;                /* its state */
    char *diag;              /* the caller's diagnosis buffer, or NULL */
    size_t diag_len;         /* its size */
} importer;

static pigeon_err say(importer *im, pigeon_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static pigeon_err say(importer *im, pigeon_err err, const char *fmt, ...)
{
    if (im->diag != NULL && im->diag_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(im->diag, im->diag_len, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* Nonzero if s is at most max bytes without control characters (C0, DEL): such a byte
 * in a path could end an SMTP command line early. */
static int valid_text(const char *s, size_t max, int allow_empty)
{
    if (s == NULL)
        return 0;
    size_t len = strnlen(s, max + 1);
    if (len > max || (len == 0 && !allow_empty))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

/* Crockford base32, 26 characters: what make_queue_id (spool.c) writes. */
static int valid_queue_id(const char *s)
{
    if (s == NULL || strlen(s) != PIGEON_SPOOL_ID_LEN)
        return 0;
    for (size_t i = 0; i < PIGEON_SPOOL_ID_LEN; i++)
        if (strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", s[i]) == NULL)
            return 0;
    return 1;
}

static pigeon_err check_rcpt(importer *im, const pg_spool_import_rcpt *r, size_t i)
{
    if (!valid_text(r->address, MAX_PATH_LEN, 0))
        return say(im, PIGEON_ERR_ADDRESS, "recipient #%zu: bad address", i + 1);
    if ((unsigned)r->state >= PIGEON_SPOOL_NSTATES)
        return say(im, PIGEON_ERR_INVALID, "recipient #%zu: bad state", i + 1);
    if (r->attempts < 0 || r->next_ms < 0 || r->updated_ms < 0)
        return say(im, PIGEON_ERR_INVALID, "recipient #%zu: negative attempts or time", i + 1);
    if ((int)r->last_err < 0 || (int)r->last_err > MAX_ERR_CODE)
        return say(im, PIGEON_ERR_INVALID, "recipient #%zu: bad error code", i + 1);
    if (r->smtp_code != 0 && (r->smtp_code < 200 || r->smtp_code > 599))
        return say(im, PIGEON_ERR_INVALID, "recipient #%zu: bad reply code %d", i + 1,
                   r->smtp_code);
    if (r->enhanced_code != NULL && !valid_text(r->enhanced_code, 15, 1))
        return say(im, PIGEON_ERR_INVALID, "recipient #%zu: bad enhanced code", i + 1);
    if (r->text != NULL && !valid_text(r->text, MAX_TEXT_LEN, 1))
        return say(im, PIGEON_ERR_INVALID, "recipient #%zu: bad reply text", i + 1);
    return PIGEON_OK;
}

static pigeon_err check_msg(importer *im, const pg_spool_import_msg *m)
{
    if (!valid_queue_id(m->queue_id))
        return say(im, PIGEON_ERR_INVALID, "bad queue id");
    if (!valid_text(m->account, MAX_ACCOUNT_LEN, 0))
        return say(im, PIGEON_ERR_INVALID, "bad or missing account name");
    if (!valid_text(m->mail_from, MAX_PATH_LEN, 1))
        return say(im, PIGEON_ERR_ADDRESS, "bad envelope sender");
    if (!valid_text(m->message_id, MAX_MSGID_LEN, 1))
        return say(im, PIGEON_ERR_HEADER, "bad Message-ID");
    if (m->created_ms < 0)
        return say(im, PIGEON_ERR_INVALID, "negative enqueue time");
    if (m->rcpts == NULL || m->rcpt_count == 0)
        return say(im, PIGEON_ERR_INVALID, "no recipients");
    for (size_t i = 0; i < m->rcpt_count; i++) {
        pigeon_err err = check_rcpt(im, &m->rcpts[i], i);
        if (err != PIGEON_OK)
            return err;
    }
    return PIGEON_OK;
}

/* Streams the body into the started message: chunks of PG_SPOOL_CHUNK, hashed. */
static pigeon_err store_body(importer *im, pigeon_read_fn read, void *ctx, EVP_MD_CTX *md,
                             int64_t *total)
{
    pigeon_err err = PIGEON_OK;
    unsigned char *chunk = malloc(PG_SPOOL_CHUNK);
    size_t fill = 0;
    int64_t seq = 0;
    int eof = 0;
    *total = 0;
    if (chunk == NULL)
        return say(im, PIGEON_ERR_NOMEM, "out of memory");
    while (!eof) {
        size_t n = 0;
        int rc = read(ctx, chunk + fill, PG_SPOOL_CHUNK - fill, &n);
        if (rc != 0 || n > PG_SPOOL_CHUNK - fill) {
            err = say(im, rc == PIGEON_ERR_INVALID ? PIGEON_ERR_INVALID : PIGEON_ERR_IO,
                      "reading the message body failed");
            break;
        }
        fill += n;
        eof = n == 0;
        if (fill == PG_SPOOL_CHUNK || (eof && fill > 0)) {
            if (EVP_DigestUpdate(md, chunk, fill) != 1) {
                err = say(im, PIGEON_ERR_NOMEM, "SHA-256 failed");
                break;
            }
            err = im->ops->msg_chunk(im->be, seq++, chunk, fill);
            if (err != PIGEON_OK)
                break;
            *total += (int64_t)fill;
            fill = 0;
        }
    }
    free(chunk);
    return err;
}

/* Copies the recipients with in-flight ones made deferred (see spool_import.h). */
static pg_spool_import_rcpt *map_rcpts(const pg_spool_import_msg *m)
{
    pg_spool_import_rcpt *r = calloc(m->rcpt_count, sizeof *r);
    if (r == NULL)
        return NULL;
    memcpy(r, m->rcpts, m->rcpt_count * sizeof *r);
    for (size_t i = 0; i < m->rcpt_count; i++) {
        if (r[i].state == PIGEON_SPOOL_INFLIGHT)
            r[i].state = PIGEON_SPOOL_DEFERRED;
        if (r[i].state == PIGEON_SPOOL_DELIVERED || r[i].state == PIGEON_SPOOL_FAILED)
            r[i].next_ms = 0;
        else if (r[i].next_ms == 0)
            r[i].next_ms = m->created_ms; /* due since it was queued */
    }
    return r;
}

pigeon_err pg_spool_import(pigeon_spool *spool, const pg_spool_import_msg *msg, pigeon_read_fn read,
                           void *ctx, int64_t size, const unsigned char sha256[32], int *present,
                           char *diag, size_t diag_len)
{
    importer im = {NULL, NULL, diag, diag_len};
    unsigned char got[32];
    int64_t total = 0;
    EVP_MD_CTX *md = NULL;
    pg_spool_import_rcpt *rcpts = NULL;
    int started = 0;
    if (diag != NULL && diag_len > 0)
        diag[0] = '\0';
    if (spool == NULL || msg == NULL || read == NULL || sha256 == NULL || present == NULL)
        return PIGEON_ERR_INVALID;
    *present = 0;
    im.be = pg_spool_backend(spool, &im.ops);
    if (im.ops->import == NULL)
        return say(&im, PIGEON_ERR_UNSUPPORTED, "the %s spool backend cannot import messages",
                   im.ops->name);
    pigeon_err err = check_msg(&im, msg);
    if (err != PIGEON_OK)
        return err;
    if (size < 0)
        return say(&im, PIGEON_ERR_INVALID, "negative size");
    size_t delivered = 0;
    for (size_t i = 0; i < msg->rcpt_count; i++)
        delivered += msg->rcpts[i].state == PIGEON_SPOOL_DELIVERED;
    if (delivered == msg->rcpt_count) { /* nothing left to send: the spool keeps no such */
        *present = 2;
        return PIGEON_OK;
    }
    rcpts = map_rcpts(msg);
    md = EVP_MD_CTX_new();
    if (rcpts == NULL || md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        err = say(&im, PIGEON_ERR_NOMEM, "out of memory");
        goto done;
    }
    pg_spool_import_msg mapped = *msg;
    mapped.rcpts = rcpts;
    err = im.ops->import->begin(im.be, &mapped, present);
    if (err != PIGEON_OK || *present)
        goto done;
    started = 1;
    err = store_body(&im, read, ctx, md, &total);
    if (err == PIGEON_OK && EVP_DigestFinal_ex(md, got, NULL) != 1)
        err = say(&im, PIGEON_ERR_NOMEM, "SHA-256 failed");
    if (err == PIGEON_OK && (total != size || memcmp(got, sha256, sizeof got) != 0))
        err = say(&im, PIGEON_ERR_INVALID,
                  "the body (%lld bytes) does not match its recorded size (%lld) or SHA-256",
                  (long long)total, (long long)size);
    if (err != PIGEON_OK)
        goto done;
    started = 0; /* msg_end undoes the unit itself when it fails */
    err = im.ops->msg_end(im.be, total, got);
done:
    if (started)
        im.ops->msg_abort(im.be);
    EVP_MD_CTX_free(md);
    free(rcpts);
    return err;
}
