/*
 * spool.c - the durable outgoing mail queue: the generic layer over a storage backend.
 *
 * This file validates what callers pass (envelope addresses are RFC 5321 paths without
 * angle brackets, so no control character may reach the wire from the spool), makes queue
 * ids (ULIDs) and lease tokens, hashes message bodies with SHA-256 and cuts them into
 * chunks, and checks bodies against their hash when they are read back. Storage is behind
 * pg_spool_ops (spool_backend.h); the SQLite backend is lib/spool/spool_sqlite.c.
 */
#include "pigeon/spool.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <pthread.h>

#include "lazy/lazy.h"
#include "util/random.h"
#include "spool/spool_backend.h"
#include "spool/spool_holder.h"

/* Bounds on stored strings. RFC 5321 4.5.3.1.3: a path is at most 256 octets; we allow
 * a little more for SMTPUTF8 addresses. Account names are configuration names. */
#define MAX_PATH_LEN    512
#define MAX_ACCOUNT_LEN 255
#define MAX_OWNER_LEN   128
#define MAX_MSGID_LEN   998

struct pigeon_spool {
    const pg_spool_ops *ops; /* the backend */
    void *be;                /* the backend's state */
    int in_batch;            /* nonzero between pigeon_spool_begin() and commit/rollback */
    pg_spool_diag diag;      /* the last diagnosis */
    pg_spool_self self;      /* this process, as its leases record it */
    pg_spool_holder holder;  /* self in the backend's terms (strings borrowed from self) */
};

struct pigeon_spool_body {
    pigeon_spool *spool;      /* the handle it reads through (borrowed) */
    void *reader;             /* the backend's reader, or NULL when reading from memory */
    const unsigned char *mem; /* the bytes, when a claim carried them (borrowed), else NULL */
    int64_t size;             /* the stored size */
    int64_t offset;           /* bytes returned so far */
    unsigned char want[32];   /* the stored SHA-256 */
    EVP_MD_CTX *md;           /* SHA-256 of the bytes returned so far */
    int verified;             /* nonzero once the end was reached and checked */
    pigeon_err end_err;       /* the outcome of that check, reported at every later call */
};

static int valid_text(const char *s, size_t max, int allow_empty);
static pigeon_err check_envelope(pigeon_spool *s, const pigeon_spool_envelope *env);
static pigeon_err make_queue_id(int64_t now_ms, char id[PIGEON_SPOOL_ID_LEN + 1]);
static pigeon_err enqueue_common(pigeon_spool *s, const pigeon_spool_envelope *env,
                                 const void *data, size_t len, pigeon_read_fn read, void *ctx,
                                 int64_t now_ms, char id[PIGEON_SPOOL_ID_LEN + 1]);
static pigeon_err store_buffer(pigeon_spool *s, const void *data, size_t len, EVP_MD_CTX *md,
                               int64_t *size);
static pigeon_err store_stream(pigeon_spool *s, pigeon_read_fn read, void *ctx, EVP_MD_CTX *md,
                               int64_t *size);
static pigeon_err check_outcomes(pigeon_spool *s, const pigeon_spool_entry *job,
                                 const pigeon_spool_outcome *o, size_t n);
static pigeon_err not_in_batch(pigeon_spool *s);

/* ---- handle ---- */

pigeon_err pigeon_spool_open(const char *path, unsigned flags, pigeon_spool **out, char *errbuf,
                             size_t errlen)
{
    pigeon_spool *s = NULL;
    pigeon_err err = PIGEON_ERR_INVALID;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return PIGEON_ERR_NOMEM;
    s->ops = &pg_spool_sqlite_ops;
    /* The backend's library is loaded now, by the first spool (lib/lazy/lazy.h): libpq or
     * libsqlite3. libcrypto waits for the first body's SHA-256: `sendmail` checking the
     * suppression list in a spool never needs its 4.7 MB. */
    char *why = s->diag.text;
    size_t whylen = sizeof s->diag.text;
    if (path != NULL &&
        (strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0)) {
        s->ops = &pg_spool_pgsql_ops;
        if (pg_lazy_pq(why, whylen) != PIGEON_OK) {
            err = PIGEON_ERR_UNSUPPORTED;
            goto fail;
        }
    } else if (path != NULL && path[0] != '\0' && pg_lazy_sqlite(why, whylen) != PIGEON_OK) {
        err = PIGEON_ERR_UNSUPPORTED;
        goto fail;
    }
    if (path == NULL || path[0] == '\0' || (flags & ~31u) != 0) {
        pg_spool_fail(&s->diag, err, "spool: no path, or unknown flags");
        goto fail;
    }
    err = s->ops->open(path, flags, &s->diag, &s->be);
    if (err != PIGEON_OK)
        goto fail;
    *out = s;
    return PIGEON_OK;
fail:
    if (errbuf != NULL && errlen > 0)
        snprintf(errbuf, errlen, "%s", s->diag.text);
    free(s);
    return err;
}

void pigeon_spool_close(pigeon_spool *spool)
{
    if (spool == NULL)
        return;
    if (spool->in_batch)
        spool->ops->rollback(spool->be);
    spool->ops->close(spool->be);
    free(spool);
}

const char *pigeon_spool_error(const pigeon_spool *spool)
{
    return spool != NULL ? spool->diag.text : "";
}

pigeon_err pigeon_spool_set_busy_timeout(pigeon_spool *spool, int ms)
{
    if (spool == NULL || ms < 0)
        return PIGEON_ERR_INVALID;
    return spool->ops->set_busy_timeout(spool->be, ms);
}

int64_t pigeon_spool_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

pigeon_err pigeon_spool_check(pigeon_spool *spool, int full)
{
    if (spool == NULL)
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    return spool->ops->check(spool->be, full);
}

/* ---- validation ---- */

/* Nonzero if s is non-NULL, at most max bytes, and has no control character (C0, DEL):
 * such a byte in a path or name could end an SMTP command line early (injection). */
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

static pigeon_err check_envelope(pigeon_spool *s, const pigeon_spool_envelope *env)
{
    if (env == NULL || env->rcpts == NULL || env->rcpt_count == 0)
        return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID, "spool: no recipients");
    if (!valid_text(env->account, MAX_ACCOUNT_LEN, 0))
        return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID, "spool: bad or missing account name");
    if (!valid_text(env->mail_from, MAX_PATH_LEN, 1))
        return pg_spool_fail(&s->diag, PIGEON_ERR_ADDRESS, "spool: bad envelope sender");
    if (env->message_id != NULL && !valid_text(env->message_id, MAX_MSGID_LEN, 1))
        return pg_spool_fail(&s->diag, PIGEON_ERR_HEADER, "spool: bad Message-ID");
    for (size_t i = 0; i < env->rcpt_count; i++) {
        if (!valid_text(env->rcpts[i], MAX_PATH_LEN, 0))
            return pg_spool_fail(&s->diag, PIGEON_ERR_ADDRESS, "spool: bad envelope recipient #%zu",
                                 i + 1);
    }
    return PIGEON_OK;
}

static pigeon_err not_in_batch(pigeon_spool *s)
{
    if (s->in_batch)
        return pg_spool_fail(&s->diag, PIGEON_ERR_STATE, "spool: not allowed inside a batch");
    return PIGEON_OK;
}

/* ---- queue ids ---- */

/* A ULID: 48 bits of milliseconds, then 80 random bits, in Crockford base32 (no I, L, O,
 * U), 26 characters. The time part makes ids sort by enqueue time. */
/* SHA-256 fetched once: EVP_sha256() makes every EVP_DigestInit_ex look the algorithm up
 * in the provider store again (OpenSSL 3), which costs about as much as hashing a small
 * message. */
static EVP_MD *sha256_fetched;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *spool_sha256(void)
{
    pthread_once(&sha256_once, fetch_sha256);
    return sha256_fetched != NULL ? sha256_fetched : EVP_sha256();
}

static pigeon_err make_queue_id(int64_t now_ms, char id[PIGEON_SPOOL_ID_LEN + 1])
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    unsigned char rnd[10];
    pigeon_err err = pg_random_bytes(rnd, sizeof rnd);
    if (err != PIGEON_OK)
        return err;
    uint64_t t = (uint64_t)now_ms & 0xffffffffffffULL;
    for (int i = 9; i >= 0; i--) {
        id[i] = alphabet[t & 31];
        t >>= 5;
    }
    /* 80 bits = 16 groups of 5, taken from two integers of 40 bits each. */
    for (int half = 0; half < 2; half++) {
        uint64_t r = 0;
        for (int k = 0; k < 5; k++)
            r = (r << 8) | rnd[half * 5 + k];
        for (int i = 7; i >= 0; i--) {
            id[10 + half * 8 + i] = alphabet[r & 31];
            r >>= 5;
        }
    }
    id[PIGEON_SPOOL_ID_LEN] = '\0';
    return PIGEON_OK;
}

/* ---- enqueue ---- */

pigeon_err pigeon_spool_enqueue(pigeon_spool *spool, const pigeon_spool_envelope *env,
                                const void *data, size_t len, int64_t now_ms,
                                char id[PIGEON_SPOOL_ID_LEN + 1])
{
    if (spool == NULL || id == NULL || (data == NULL && len > 0))
        return PIGEON_ERR_INVALID;
    return enqueue_common(spool, env, data, len, NULL, NULL, now_ms, id);
}

pigeon_err pigeon_spool_enqueue_stream(pigeon_spool *spool, const pigeon_spool_envelope *env,
                                       pigeon_read_fn read, void *ctx, int64_t now_ms,
                                       char id[PIGEON_SPOOL_ID_LEN + 1])
{
    if (spool == NULL || id == NULL || read == NULL)
        return PIGEON_ERR_INVALID;
    return enqueue_common(spool, env, NULL, 0, read, ctx, now_ms, id);
}

static pigeon_err enqueue_common(pigeon_spool *s, const pigeon_spool_envelope *env,
                                 const void *data, size_t len, pigeon_read_fn read, void *ctx,
                                 int64_t now_ms, char id[PIGEON_SPOOL_ID_LEN + 1])
{
    char qid[PIGEON_SPOOL_ID_LEN + 1];
    unsigned char sha[32];
    int64_t size = 0;
    EVP_MD_CTX *md = NULL;
    int started = 0;
    id[0] = '\0';
    s->diag.text[0] = '\0';
    pigeon_err err = check_envelope(s, env);
    if (err != PIGEON_OK)
        return err;
    if (now_ms < 0)
        return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID, "spool: negative time");
    err = make_queue_id(now_ms, qid);
    if (err != PIGEON_OK)
        return pg_spool_fail(&s->diag, err, "spool: no random bytes for a queue id");
    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, spool_sha256(), NULL) != 1) {
        err = pg_spool_fail(&s->diag, PIGEON_ERR_NOMEM, "spool: cannot start SHA-256");
        goto fail;
    }
    pg_spool_new msg = {qid, env, now_ms};
    err = s->ops->msg_begin(s->be, &msg);
    if (err != PIGEON_OK)
        goto fail;
    started = 1;
    err = read != NULL ? store_stream(s, read, ctx, md, &size)
                       : store_buffer(s, data, len, md, &size);
    if (err != PIGEON_OK)
        goto fail;
    if (EVP_DigestFinal_ex(md, sha, NULL) != 1) {
        err = pg_spool_fail(&s->diag, PIGEON_ERR_NOMEM, "spool: SHA-256 failed");
        goto fail;
    }
    started = 0; /* msg_end undoes the unit itself when it fails */
    err = s->ops->msg_end(s->be, size, sha);
    if (err != PIGEON_OK)
        goto fail;
    EVP_MD_CTX_free(md);
    memcpy(id, qid, sizeof qid);
    return PIGEON_OK;
fail:
    if (started)
        s->ops->msg_abort(s->be);
    EVP_MD_CTX_free(md);
    return err;
}

static pigeon_err store_buffer(pigeon_spool *s, const void *data, size_t len, EVP_MD_CTX *md,
                               int64_t *size)
{
    const unsigned char *p = data;
    int64_t seq = 0;
    for (size_t off = 0; off < len; off += PG_SPOOL_CHUNK) {
        size_t n = len - off < PG_SPOOL_CHUNK ? len - off : PG_SPOOL_CHUNK;
        if (EVP_DigestUpdate(md, p + off, n) != 1)
            return pg_spool_fail(&s->diag, PIGEON_ERR_NOMEM, "spool: SHA-256 failed");
        pigeon_err err = s->ops->msg_chunk(s->be, seq++, p + off, n);
        if (err != PIGEON_OK)
            return err;
    }
    *size = (int64_t)len;
    return PIGEON_OK;
}

/* Fills a chunk-sized buffer from the stream and stores each full chunk, so memory stays
 * at one chunk whatever the message size. */
static pigeon_err store_stream(pigeon_spool *s, pigeon_read_fn read, void *ctx, EVP_MD_CTX *md,
                               int64_t *size)
{
    pigeon_err err = PIGEON_OK;
    unsigned char *chunk = malloc(PG_SPOOL_CHUNK);
    size_t fill = 0;
    int64_t seq = 0, total = 0;
    int eof = 0;
    if (chunk == NULL)
        return pg_spool_fail(&s->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    while (!eof) {
        size_t n = 0;
        if (read(ctx, chunk + fill, PG_SPOOL_CHUNK - fill, &n) != 0 || n > PG_SPOOL_CHUNK - fill) {
            err = pg_spool_fail(&s->diag, PIGEON_ERR_IO, "spool: reading the message failed");
            goto done;
        }
        fill += n;
        eof = n == 0;
        if (fill == PG_SPOOL_CHUNK || (eof && fill > 0)) {
            if (EVP_DigestUpdate(md, chunk, fill) != 1) {
                err = pg_spool_fail(&s->diag, PIGEON_ERR_NOMEM, "spool: SHA-256 failed");
                goto done;
            }
            err = s->ops->msg_chunk(s->be, seq++, chunk, fill);
            if (err != PIGEON_OK)
                goto done;
            total += (int64_t)fill;
            fill = 0;
        }
    }
    *size = total;
done:
    free(chunk);
    return err;
}

/* ---- batches ---- */

pigeon_err pigeon_spool_begin(pigeon_spool *spool)
{
    if (spool == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_err err = not_in_batch(spool);
    if (err != PIGEON_OK)
        return err;
    err = spool->ops->begin(spool->be);
    if (err == PIGEON_OK)
        spool->in_batch = 1;
    return err;
}

pigeon_err pigeon_spool_commit(pigeon_spool *spool)
{
    if (spool == NULL)
        return PIGEON_ERR_INVALID;
    if (!spool->in_batch)
        return pg_spool_fail(&spool->diag, PIGEON_ERR_STATE, "spool: commit without begin");
    /* Whatever the result, the batch is over: a failed commit rolls back. */
    spool->in_batch = 0;
    return spool->ops->commit(spool->be);
}

pigeon_err pigeon_spool_rollback(pigeon_spool *spool)
{
    if (spool == NULL)
        return PIGEON_ERR_INVALID;
    if (!spool->in_batch)
        return pg_spool_fail(&spool->diag, PIGEON_ERR_STATE, "spool: rollback without begin");
    spool->in_batch = 0;
    return spool->ops->rollback(spool->be);
}

/* ---- states and entries ---- */

const char *pigeon_spool_state_name(pigeon_spool_state state)
{
    static const char *const names[PIGEON_SPOOL_NSTATES] = {"queued", "inflight", "deferred",
                                                            "delivered", "failed"};
    if ((unsigned)state >= PIGEON_SPOOL_NSTATES)
        return "?";
    return names[state];
}

void pigeon_spool_entry_free(pigeon_spool_entry *entry)
{
    if (entry == NULL)
        return;
    for (size_t i = 0; i < entry->rcpt_count; i++) {
        pigeon_spool_rcpt *r = &entry->rcpts[i];
        free((char *)r->address);
        free((char *)r->lease_owner);
        free((char *)r->enhanced_code);
        free((char *)r->text);
    }
    free(entry->rcpts);
    free(entry->body);
    free((char *)entry->message_id);
    free((char *)entry->account);
    free((char *)entry->mail_from);
    free((char *)entry->lease_owner);
    free(entry);
}

/* ---- claims and outcomes ---- */

/* Validates a claim's arguments and makes its lease (a fresh random token) into *req. */
static pigeon_err claim_request(pigeon_spool *s, const char *owner, const char *account,
                                int64_t now_ms, int64_t lease_ms, pg_spool_claim_req *req)
{
    s->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(s);
    if (err != PIGEON_OK)
        return err;
    if (!valid_text(owner, MAX_OWNER_LEN, 0) ||
        (account != NULL && !valid_text(account, MAX_ACCOUNT_LEN, 0)))
        return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID, "spool: bad lease owner or account");
    if (now_ms < 0 || lease_ms <= 0 || lease_ms > INT64_MAX - now_ms)
        return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID, "spool: bad time or lease length");
    uint64_t token = 0;
    err = pg_random_bytes(&token, sizeof token);
    if (err != PIGEON_OK)
        return pg_spool_fail(&s->diag, err, "spool: no random bytes for a lease");
    /* Positive and nonzero, so that it fits SQL integers and 0 can mean "no lease". */
    token = (token >> 1) | 1;
    pg_spool_holder_self(&s->self);
    s->holder = pg_spool_holder_of(&s->self);
    *req = (pg_spool_claim_req){owner,          &s->holder, account, now_ms, now_ms + lease_ms,
                                (int64_t)token, 0};
    return PIGEON_OK;
}

pigeon_err pigeon_spool_claim(pigeon_spool *spool, const char *owner, const char *account,
                              int64_t now_ms, int64_t lease_ms, pigeon_spool_entry **job)
{
    pg_spool_claim_req req;
    if (spool == NULL || job == NULL)
        return PIGEON_ERR_INVALID;
    *job = NULL;
    pigeon_err err = claim_request(spool, owner, account, now_ms, lease_ms, &req);
    return err != PIGEON_OK ? err : spool->ops->claim(spool->be, &req, job);
}

pigeon_err pigeon_spool_renew(pigeon_spool *spool, pigeon_spool_entry *job, int64_t until_ms)
{
    if (spool == NULL || job == NULL || job->lease_token == 0 || until_ms < 0)
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    if (err == PIGEON_OK)
        err = spool->ops->renew(spool->be, job, until_ms);
    if (err == PIGEON_OK)
        job->lease_until_ms = until_ms;
    return err;
}

static pigeon_err check_outcomes(pigeon_spool *s, const pigeon_spool_entry *job,
                                 const pigeon_spool_outcome *o, size_t n)
{
    if (job->lease_token == 0 || (o == NULL && n > 0))
        return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID, "spool: not a claim");
    for (size_t i = 0; i < n; i++) {
        if (o[i].rcpt >= job->rcpt_count)
            return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID,
                                 "spool: outcome #%zu names no recipient of the claim", i + 1);
        if (o[i].state != PIGEON_SPOOL_DELIVERED && o[i].state != PIGEON_SPOOL_DEFERRED &&
            o[i].state != PIGEON_SPOOL_FAILED)
            return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID,
                                 "spool: outcome #%zu is not delivered, deferred or failed", i + 1);
        if (o[i].state == PIGEON_SPOOL_DEFERRED && o[i].next_ms <= 0)
            return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID,
                                 "spool: deferred outcome #%zu without a next attempt time", i + 1);
        if (o[i].enhanced_code != NULL && !valid_text(o[i].enhanced_code, 15, 1))
            return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID,
                                 "spool: bad enhanced code in outcome #%zu", i + 1);
    }
    return PIGEON_OK;
}

pigeon_err pigeon_spool_record(pigeon_spool *spool, const pigeon_spool_entry *job,
                               const pigeon_spool_outcome *outcomes, size_t n, int64_t now_ms)
{
    if (spool == NULL || job == NULL)
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    if (err == PIGEON_OK)
        err = check_outcomes(spool, job, outcomes, n);
    if (err != PIGEON_OK || n == 0)
        return err;
    size_t lost = 0;
    err = spool->ops->record(spool->be, job, outcomes, n, now_ms, &lost);
    if (err == PIGEON_OK && lost > 0)
        err = pg_spool_fail(&spool->diag, PIGEON_ERR_STATE,
                            "spool: lease of %s lost; %zu outcome(s) not recorded", job->queue_id,
                            lost);
    return err;
}

pigeon_err pigeon_spool_release(pigeon_spool *spool, const pigeon_spool_entry *job, int64_t now_ms)
{
    if (spool == NULL || job == NULL || job->lease_token == 0)
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    return err != PIGEON_OK ? err : spool->ops->release(spool->be, job, now_ms);
}

/* ---- batches of claims and outcomes ---- */

pigeon_err pigeon_spool_claim_batch(pigeon_spool *spool, const char *owner, const char *account,
                                    int64_t now_ms, int64_t lease_ms, size_t max, size_t inline_max,
                                    pigeon_spool_entry ***jobs, size_t *count)
{
    pg_spool_claim_req req;
    if (spool == NULL || jobs == NULL || count == NULL)
        return PIGEON_ERR_INVALID;
    *jobs = NULL;
    *count = 0;
    pigeon_err err = claim_request(spool, owner, account, now_ms, lease_ms, &req);
    if (err != PIGEON_OK)
        return err;
    if (max == 0 || max > PIGEON_SPOOL_MAX_BATCH || inline_max > PIGEON_SPOOL_MAX_INLINE)
        return pg_spool_fail(&spool->diag, PIGEON_ERR_INVALID,
                             "spool: bad batch size %zu or inline size %zu", max, inline_max);
    req.inline_max = inline_max;
    pigeon_spool_entry **arr = calloc(max, sizeof *arr);
    if (arr == NULL)
        return pg_spool_fail(&spool->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    err = spool->ops->claim_batch(spool->be, &req, max, arr, count);
    if (err != PIGEON_OK || *count == 0) {
        free(arr);
        *count = 0;
        return err;
    }
    *jobs = arr;
    return PIGEON_OK;
}

void pigeon_spool_jobs_free(pigeon_spool_entry **jobs, size_t n)
{
    if (jobs == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        pigeon_spool_entry_free(jobs[i]);
    free(jobs);
}

/* Checks an array of claims; returns PIGEON_OK or PIGEON_ERR_INVALID with a diagnosis. */
static pigeon_err check_jobs(pigeon_spool *s, pigeon_spool_entry *const *jobs, size_t n)
{
    s->diag.text[0] = '\0';
    if (jobs == NULL && n > 0)
        return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID, "spool: no claims");
    for (size_t i = 0; i < n; i++)
        if (jobs[i] == NULL || jobs[i]->lease_token == 0)
            return pg_spool_fail(&s->diag, PIGEON_ERR_INVALID, "spool: #%zu is not a claim", i + 1);
    return not_in_batch(s);
}

pigeon_err pigeon_spool_renew_batch(pigeon_spool *spool, pigeon_spool_entry *const *jobs, size_t n,
                                    int64_t until_ms, size_t *lost)
{
    if (lost != NULL)
        *lost = 0;
    if (spool == NULL || until_ms < 0)
        return PIGEON_ERR_INVALID;
    pigeon_err err = check_jobs(spool, jobs, n);
    if (err != PIGEON_OK || n == 0)
        return err;
    unsigned char *held = calloc(n, 1);
    if (held == NULL)
        return pg_spool_fail(&spool->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    err = spool->ops->renew_batch(spool->be, jobs, n, until_ms, held);
    for (size_t i = 0; err == PIGEON_OK && i < n; i++) {
        if (held[i])
            jobs[i]->lease_until_ms = until_ms;
        else if (lost != NULL)
            (*lost)++;
    }
    free(held);
    return err;
}

pigeon_err pigeon_spool_record_batch(pigeon_spool *spool, pigeon_spool_record_item *items, size_t n,
                                     int64_t now_ms)
{
    if (spool == NULL || (items == NULL && n > 0))
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    for (size_t i = 0; err == PIGEON_OK && i < n; i++) {
        items[i].lost = 0;
        if (items[i].job == NULL)
            err = pg_spool_fail(&spool->diag, PIGEON_ERR_INVALID, "spool: item #%zu has no claim",
                                i + 1);
        else
            err = check_outcomes(spool, items[i].job, items[i].outcomes, items[i].n);
    }
    if (err != PIGEON_OK || n == 0)
        return err;
    err = spool->ops->record_batch(spool->be, items, n, now_ms);
    size_t lost = 0, first = n;
    for (size_t i = 0; err == PIGEON_OK && i < n; i++) {
        if (items[i].lost > 0 && first == n)
            first = i;
        lost += items[i].lost;
    }
    if (err == PIGEON_OK && lost > 0)
        err = pg_spool_fail(&spool->diag, PIGEON_ERR_STATE,
                            "spool: lease of %s (and maybe others) lost; %zu outcome(s) not "
                            "recorded",
                            items[first].job->queue_id, lost);
    return err;
}

pigeon_err pigeon_spool_journal_delivered(pigeon_spool *spool, pigeon_spool_record_item *items,
                                          size_t n, int64_t now_ms, char *errbuf, size_t errlen)
{
    pg_spool_diag diag; /* not the handle's: another thread may be writing that one */
    pigeon_err err = PIGEON_OK;
    diag.text[0] = '\0';
    if (spool == NULL || (items == NULL && n > 0))
        err = PIGEON_ERR_INVALID;
    for (size_t i = 0; err == PIGEON_OK && i < n; i++) {
        const pigeon_spool_entry *job = items[i].job;
        if (job == NULL || job->lease_token == 0 || (items[i].outcomes == NULL && items[i].n > 0))
            err =
                pg_spool_fail(&diag, PIGEON_ERR_INVALID, "spool: item #%zu is not a claim", i + 1);
        for (size_t k = 0; err == PIGEON_OK && k < items[i].n; k++) {
            const pigeon_spool_outcome *o = &items[i].outcomes[k];
            if (o->rcpt >= job->rcpt_count || o->state != PIGEON_SPOOL_DELIVERED ||
                (o->enhanced_code != NULL && !valid_text(o->enhanced_code, 15, 1)))
                err = pg_spool_fail(&diag, PIGEON_ERR_INVALID,
                                    "spool: outcome #%zu of item #%zu is not a delivery of the "
                                    "claim",
                                    k + 1, i + 1);
        }
    }
    if (err == PIGEON_OK && n > 0)
        err = spool->ops->journal_delivered == NULL
                  ? pg_spool_fail(&diag, PIGEON_ERR_UNSUPPORTED,
                                  "spool: outcomes are recorded through the handle on %s",
                                  spool->ops->name)
                  : spool->ops->journal_delivered(spool->be, items, n, now_ms, &diag);
    if (errbuf != NULL && errlen > 0)
        snprintf(errbuf, errlen, "%s", diag.text);
    return err;
}

pigeon_err pigeon_spool_release_batch(pigeon_spool *spool, pigeon_spool_entry *const *jobs,
                                      size_t n, int64_t now_ms)
{
    if (spool == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_err err = check_jobs(spool, jobs, n);
    if (err != PIGEON_OK || n == 0)
        return err;
    return spool->ops->release_batch(spool->be, jobs, n, now_ms);
}

pigeon_err pigeon_spool_throttle(pigeon_spool *spool, const char *account, int64_t until_ms,
                                 const char *reason)
{
    if (spool == NULL || !valid_text(account, MAX_ACCOUNT_LEN, 0) ||
        (reason != NULL && !valid_text(reason, 1000, 1)))
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    return err != PIGEON_OK ? err : spool->ops->throttle(spool->be, account, until_ms, reason);
}

pigeon_err pigeon_spool_sync(pigeon_spool *spool)
{
    if (spool == NULL)
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    return err != PIGEON_OK ? err : spool->ops->sync(spool->be, 1);
}

pigeon_err pigeon_spool_apply(pigeon_spool *spool)
{
    if (spool == NULL)
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    return err != PIGEON_OK ? err : spool->ops->sync(spool->be, 0);
}

/* ---- leases of processes that are gone ---- */

/* The holders found gone by a listing, reclaimed after it (a listing may not write). */
typedef struct gone_list {
    const pg_spool_self *self; /* this process */
    int64_t ids[64];           /* the holders found gone */
    size_t n;                  /* how many */
} gone_list;

static int collect_gone(void *ctx, const pg_spool_holder *h)
{
    gone_list *g = ctx;
    if (pg_spool_holder_gone(g->self, h))
        g->ids[g->n++] = h->id;
    return g->n == sizeof g->ids / sizeof g->ids[0];
}

pigeon_err pigeon_spool_reclaim(pigeon_spool *spool, int64_t now_ms, size_t *count)
{
    size_t dummy;
    if (count == NULL)
        count = &dummy;
    *count = 0;
    if (spool == NULL || now_ms < 0)
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    if (err != PIGEON_OK)
        return err;
    pg_spool_holder_self(&spool->self);
    gone_list g = {.self = &spool->self};
    /* A listing holds at most 64; more dead holders than that are taken in turns. */
    do {
        g.n = 0;
        err = spool->ops->holders(spool->be, spool->self.host, collect_gone, &g);
        for (size_t i = 0; err == PIGEON_OK && i < g.n; i++) {
            size_t n = 0;
            err = spool->ops->reclaim(spool->be, g.ids[i], now_ms, &n);
            *count += n;
        }
    } while (err == PIGEON_OK && g.n == sizeof g.ids / sizeof g.ids[0]);
    return err;
}

/* ---- administration ---- */

pigeon_err pigeon_spool_list(pigeon_spool *spool, const char *account,
                             int (*fn)(void *ctx, const pigeon_spool_entry *entry), void *ctx)
{
    if (spool == NULL || fn == NULL)
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    return err != PIGEON_OK ? err : spool->ops->list(spool->be, account, fn, ctx);
}

pigeon_err pigeon_spool_show(pigeon_spool *spool, const char *queue_id, pigeon_spool_entry **out)
{
    if (spool == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (!valid_text(queue_id, 64, 0))
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    return err != PIGEON_OK ? err : spool->ops->show(spool->be, queue_id, out);
}

pigeon_err pigeon_spool_retry(pigeon_spool *spool, const char *queue_id, int include_failed,
                              int64_t now_ms, size_t *count)
{
    size_t dummy;
    if (spool == NULL || (queue_id != NULL && !valid_text(queue_id, 64, 0)))
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    return err != PIGEON_OK ? err
                            : spool->ops->retry(spool->be, queue_id, include_failed, now_ms,
                                                count != NULL ? count : &dummy);
}

pigeon_err pigeon_spool_delete(pigeon_spool *spool, const char *queue_id)
{
    if (spool == NULL || !valid_text(queue_id, 64, 0))
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    return err != PIGEON_OK ? err : spool->ops->remove(spool->be, queue_id);
}

pigeon_err pigeon_spool_purge_failed(pigeon_spool *spool, size_t *count)
{
    size_t dummy;
    if (spool == NULL)
        return PIGEON_ERR_INVALID;
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    return err != PIGEON_OK ? err
                            : spool->ops->purge_failed(spool->be, count != NULL ? count : &dummy);
}

pigeon_err pigeon_spool_stats_get(pigeon_spool *spool, int64_t now_ms, pigeon_spool_stats *out)
{
    if (spool == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    spool->diag.text[0] = '\0';
    pigeon_err err = not_in_batch(spool);
    return err != PIGEON_OK ? err : spool->ops->stats(spool->be, now_ms, out);
}

/* ---- reading a body back ---- */

/* Opens a body from the store (queue_id), or from memory (job->body) when job is given. */
static pigeon_err body_open(pigeon_spool *spool, const char *queue_id,
                            const pigeon_spool_entry *job, pigeon_spool_body **out, int64_t *size)
{
    pigeon_spool_body *b = NULL;
    pigeon_err err;
    *out = NULL;
    spool->diag.text[0] = '\0';
    b = calloc(1, sizeof *b);
    if (b == NULL)
        return PIGEON_ERR_NOMEM;
    b->spool = spool;
    b->md = EVP_MD_CTX_new();
    if (b->md == NULL || EVP_DigestInit_ex(b->md, spool_sha256(), NULL) != 1) {
        err = pg_spool_fail(&spool->diag, PIGEON_ERR_NOMEM, "spool: cannot start SHA-256");
        goto fail;
    }
    if (job != NULL) {
        b->mem = job->body;
        b->size = job->size;
        memcpy(b->want, job->body_sha256, sizeof b->want);
        err = PIGEON_OK;
    } else {
        err = spool->ops->body_open(spool->be, queue_id, &b->reader, &b->size, b->want);
    }
    if (err != PIGEON_OK)
        goto fail;
    if (size != NULL)
        *size = b->size;
    *out = b;
    return PIGEON_OK;
fail:
    EVP_MD_CTX_free(b->md);
    free(b);
    return err;
}

pigeon_err pigeon_spool_body_open(pigeon_spool *spool, const char *queue_id,
                                  pigeon_spool_body **out, int64_t *size)
{
    if (spool == NULL || out == NULL || !valid_text(queue_id, 64, 0))
        return PIGEON_ERR_INVALID;
    return body_open(spool, queue_id, NULL, out, size);
}

pigeon_err pigeon_spool_job_body(pigeon_spool *spool, const pigeon_spool_entry *job,
                                 pigeon_spool_body **out, int64_t *size)
{
    if (spool == NULL || out == NULL || job == NULL || !valid_text(job->queue_id, 64, 0))
        return PIGEON_ERR_INVALID;
    return body_open(spool, job->queue_id, job->body != NULL ? job : NULL, out, size);
}

/* Called at the end: the bytes returned must hash to what was stored at enqueue. */
static pigeon_err body_verify(pigeon_spool_body *b)
{
    unsigned char got[32];
    if (EVP_DigestFinal_ex(b->md, got, NULL) != 1)
        return pg_spool_fail(&b->spool->diag, PIGEON_ERR_NOMEM, "spool: SHA-256 failed");
    if (memcmp(got, b->want, sizeof got) != 0)
        return pg_spool_fail(&b->spool->diag, PIGEON_ERR_CORRUPT,
                             "spool: stored message does not match its SHA-256");
    return PIGEON_OK;
}

int pigeon_spool_body_read(void *body, void *buf, size_t cap, size_t *n)
{
    pigeon_spool_body *b = body;
    if (b == NULL || n == NULL || (buf == NULL && cap > 0))
        return PIGEON_ERR_INVALID;
    *n = 0;
    if (b->offset == b->size) {
        /* The end is reported only once the whole body proved intact. */
        if (!b->verified) {
            b->end_err = body_verify(b);
            b->verified = 1;
        }
        return (int)b->end_err;
    }
    if (cap == 0)
        return PIGEON_OK;
    int64_t left = b->size - b->offset;
    size_t want = (uint64_t)left < cap ? (size_t)left : cap;
    pigeon_err err = PIGEON_OK;
    if (b->mem != NULL) {
        memcpy(buf, b->mem + b->offset, want);
        *n = want;
    } else {
        err = b->spool->ops->body_read(b->spool->be, b->reader, b->offset, buf, want, n);
    }
    if (err != PIGEON_OK)
        return err;
    if (*n == 0)
        return pg_spool_fail(&b->spool->diag, PIGEON_ERR_CORRUPT,
                             "spool: stored message is shorter than its recorded size");
    if (EVP_DigestUpdate(b->md, buf, *n) != 1)
        return pg_spool_fail(&b->spool->diag, PIGEON_ERR_NOMEM, "spool: SHA-256 failed");
    b->offset += (int64_t)*n;
    return PIGEON_OK;
}

void pigeon_spool_body_close(pigeon_spool_body *body)
{
    if (body == NULL)
        return;
    if (body->reader != NULL)
        body->spool->ops->body_close(body->spool->be, body->reader);
    EVP_MD_CTX_free(body->md);
    free(body);
}

int pigeon_spool_wait_fd(pigeon_spool *spool)
{
    if (spool == NULL || spool->in_batch || spool->ops->wait_fd == NULL)
        return -1;
    return spool->ops->wait_fd(spool->be);
}

int pigeon_spool_notified(pigeon_spool *spool)
{
    if (spool == NULL || spool->ops->notified == NULL)
        return 0;
    return spool->ops->notified(spool->be);
}

void *pg_spool_backend(pigeon_spool *spool, const pg_spool_ops **ops)
{
    *ops = spool->ops;
    return spool->be;
}

pg_spool_diag *pg_spool_diag_of(pigeon_spool *spool)
{
    return &spool->diag;
}
