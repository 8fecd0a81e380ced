/*
 * webhook_send.c - the signed JSON of events, and the daemon's sender (see webhook.h).
 *
 * The sender runs beside the delivery workers. Only one daemon per SQLite spool sends (an
 * exclusive lock on "SPOOL-webhooks.lock", which the kernel drops when the holder dies, so
 * a daemon started after a kill -9 takes over at once); on PostgreSQL every daemon sends
 * and a sink is served by one of them at a time (a lock in the database, per sink). Each sink is
 * served by one of a few threads (chosen by a hash of its name, so a sink never has two), which
 * reads the events after the sink's cursor, POSTs them as one JSON array (up to webhook_batch: one
 * when events trickle in, more when the receiver is slow or a backlog has grown), and
 * moves the cursor only after a 2xx answer. A failure keeps the cursor where it is, so
 * nothing after the failed events is sent before them (a recipient's order is kept), and
 * the sink waits min(webhook_retry_max, 1 s * 2^failures) with jitter (a random time in
 * the upper half) before trying again. Events older than webhook_max_age that still fail
 * are given up for that sink (counted in `pigeon webhook list`). Delivery is at least
 * once: a crash between the answer and the cursor's move sends the events again, with
 * the same ids.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "cli.h"
#include "daemon.h"
#include "json.h"
#include "util/random.h"
#include "wake.h"
#include "webhook.h"

#define SENDERS   4         /* threads; each serves the sinks that hash to it */
#define RELOAD_MS 2000      /* how often the API keys' webhooks are read again */
#define IDLE_MS   50        /* the pause when a sender's sinks had no work */
#define TRIM_MS   2000      /* how often delivered events are deleted */
#define BODY_MAX  (4 << 20) /* a batch stops growing at this many octets */

void webhook_sign(const char *secret, int64_t t, const void *body, size_t len, char out[96])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    char stamp[24];
    int slen = snprintf(stamp, sizeof stamp, "%lld.", (long long)t);
    /* HMAC over "<t>.<body>" in two updates, without copying the body. */
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                            OSSL_PARAM_construct_end()};
    size_t outl = 0;
    if (ctx != NULL && EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) &&
        EVP_MAC_update(ctx, (const unsigned char *)stamp, (size_t)slen) &&
        EVP_MAC_update(ctx, body, len) && EVP_MAC_final(ctx, mac, &outl, sizeof mac))
        mlen = (unsigned int)outl;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    int n = snprintf(out, 96, "t=%lld,v1=", (long long)t);
    static const char digits[] = "0123456789abcdef";
    for (unsigned int i = 0; i < mlen && n + 2 < 96; i++) {
        out[n++] = digits[mac[i] >> 4];
        out[n++] = digits[mac[i] & 15];
    }
    out[n] = '\0';
}

/* ---- the body ---- */

struct webhook_body {
    FILE *f;       /* a memory stream */
    char *data;    /* its buffer (open_memstream) */
    size_t len;    /* its length */
    json_writer w; /* the writer on it */
};

webhook_body *webhook_body_begin(void)
{
    webhook_body *b = calloc(1, sizeof *b);
    if (b == NULL || (b->f = open_memstream(&b->data, &b->len)) == NULL) {
        free(b);
        return NULL;
    }
    json_init(&b->w, b->f);
    json_array_begin(&b->w);
    return b;
}

static void iso_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03dZ", day, (int)(ms % 1000));
}

void webhook_body_add(webhook_body *b, const pg_spool_hook_event *ev)
{
    char id[32], at[40];
    json_writer *w = &b->w;
    snprintf(id, sizeof id, "evt_%lld", (long long)ev->id);
    iso_time(ev->at_ms, at, sizeof at);
    json_object_begin(w);
    json_kv_string(w, "id", id);
    json_kv_string(w, "type", pg_hook_type_name(ev->type));
    json_kv_string(w, "time", at);
    json_kv_int(w, "time_ms", ev->at_ms);
    json_kv_string(w, "recipient", ev->rcpt);
    json_kv_string(w, "queue_id", ev->queue_id != NULL && ev->queue_id[0] ? ev->queue_id : NULL);
    json_kv_string(w, "message_id", ev->message_id);
    json_kv_string(w, "account", ev->account);
    json_kv_string(w, "api_key", ev->key_id != NULL && ev->key_id[0] ? ev->key_id : NULL);
    json_kv_int(w, "attempts", ev->attempts);
    json_key(w, "smtp_code");
    if (ev->smtp_code > 0)
        json_int(w, ev->smtp_code);
    else
        json_null(w);
    json_kv_string(w, "enhanced_code", ev->enhanced);
    json_kv_string(w, "reply", ev->text);
    json_object_end(w);
}

char *webhook_body_end(webhook_body *b, size_t *len)
{
    json_array_end(&b->w);
    int bad = fclose(b->f) != 0;
    char *data = b->data;
    *len = b->len;
    free(b);
    if (bad) {
        free(data);
        return NULL;
    }
    return data;
}

pigeon_err webhook_post(webhook_sink *sink, const webhook_conf *wc, const char *body, size_t len,
                        int64_t first_id, size_t count, pg_http_response *resp, char *err,
                        size_t errlen)
{
    char sig[96], id[32], n[24];
    if (sink->http == NULL) {
        pg_http_client_opts o = {.timeout_ms = wc->timeout_ms,
                                 .connect_timeout_ms = wc->timeout_ms,
                                 .ca_file = wc->ca_file[0] ? wc->ca_file : NULL};
        if ((sink->http = pg_http_client_new(&o)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return PIGEON_ERR_NOMEM;
        }
    }
    webhook_sign(sink->secret, (int64_t)time(NULL), body, len, sig);
    snprintf(id, sizeof id, "evt_%lld", (long long)first_id);
    snprintf(n, sizeof n, "%zu", count);
    pg_http_field fields[] = {{"Content-Type", "application/json"},
                              {"User-Agent", "pigeon-webhook/1"},
                              {"Pigeon-Event-Id", id},
                              {"Pigeon-Event-Count", n},
                              {"Pigeon-Signature", sig}};
    return pg_http_client_post(sink->http, &sink->target, fields, sizeof fields / sizeof fields[0],
                               body, len, resp, err, errlen);
}

/* ---- the sender ---- */

typedef struct sender {
    struct webhook_runner *r; /* the runner */
    int index;                /* which of the SENDERS */
    pthread_t thread;         /* its thread */
    pigeon_spool *spool;      /* its handle */
    webhook_sink *sinks;      /* the sinks it serves */
    size_t n;                 /* how many */
    int64_t loaded_ms;        /* when the keys' webhooks were last read */
} sender;

struct webhook_runner {
    daemon_state *d;         /* the daemon */
    webhook_conf conf;       /* the settings */
    pthread_t manager;       /* takes the lock, then runs the senders */
    sender senders[SENDERS]; /* the senders */
    int lock_fd;             /* the lock file, or -1 */
    atomic_int stop;         /* set by webhook_stop */
    int stop_pipe[2];        /* made readable by webhook_stop: ends every pause at once */
};

static unsigned hash_name(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void log_hook(daemon_state *d, eventlog_level level, const char *name, const webhook_sink *s,
                     size_t count, int status, const char *text)
{
    eventlog_event e;
    eventlog_event_init(&e, level, name);
    eventlog_add_str(&e, "webhook", s->url);
    if (s->key_id[0] != '\0')
        eventlog_add_str(&e, "api_key", s->key_id);
    eventlog_add_int(&e, "events", (int64_t)count);
    if (status > 0)
        eventlog_add_int(&e, "http_status", status);
    if (text != NULL)
        eventlog_add_str(&e, "text", text);
    eventlog_write(d->log, &e);
}

/* Reads the sinks this sender serves: the file's and the keys', keeping connections and
 * backoff of the sinks it already had. */
static void reload(sender *s)
{
    webhook_sink *list = NULL;
    size_t n = 0;
    const webhook_conf *wc = &s->r->conf;
    webhook_key_sinks(s->spool, &list, &n);
    webhook_sink *mine = calloc(wc->nsinks + n + 1, sizeof *mine);
    size_t m = 0;
    for (size_t i = 0; mine != NULL && i < wc->nsinks + n; i++) {
        const webhook_sink *from = i < wc->nsinks ? &wc->sinks[i] : &list[i - wc->nsinks];
        if (hash_name(from->name) % SENDERS != (unsigned)s->index)
            continue;
        webhook_sink *to = &mine[m++];
        *to = *from;
        to->secret = strdup(from->secret);
        to->http = NULL;
        to->batch = wc->batch;
        for (size_t k = 0; k < s->n; k++) {
            if (strcmp(s->sinks[k].name, to->name) == 0 && strcmp(s->sinks[k].url, to->url) == 0) {
                to->http = s->sinks[k].http;
                to->next_ms = s->sinks[k].next_ms;
                to->batch = s->sinks[k].batch;
                to->cursor = s->sinks[k].cursor;
                to->idle_ms = s->sinks[k].idle_ms;
                to->failures = s->sinks[k].failures;
                s->sinks[k].http = NULL;
            }
        }
        if (to->secret == NULL)
            m--;
    }
    webhook_sinks_free(list, n);
    if (mine == NULL)
        return;
    webhook_sinks_free(s->sinks, s->n);
    s->sinks = mine;
    s->n = m;
}

/* Collects fetched events into a body. */
typedef struct batch {
    webhook_body *body; /* the JSON being written */
    size_t count;       /* events in it */
    int64_t first_id;   /* the first's id */
    int64_t oldest_ms;  /* the first's time */
} batch;

static int collect(void *ctx, const pg_spool_hook_event *ev)
{
    batch *b = ctx;
    if (b->count == 0) {
        b->first_id = ev->id;
        b->oldest_ms = ev->at_ms;
    }
    webhook_body_add(b->body, ev);
    b->count++;
    return 0;
}

/* The pause after failures: up to retry_max, the upper half chosen at random. */
static int64_t backoff_ms(const webhook_conf *wc, int64_t failures)
{
    int64_t d = 1000;
    for (int64_t i = 1; i < failures && d < wc->retry_max_ms; i++)
        d *= 2;
    if (d > wc->retry_max_ms)
        d = wc->retry_max_ms;
    uint32_t r = 0;
    pg_random_bytes(&r, sizeof r);
    return d / 2 + (int64_t)(r % (uint32_t)(d / 2 + 1));
}

/* Records a failed POST: backoff, or with events over max_age, giving them up. */
static void failed(sender *s, webhook_sink *k, const batch *b, int64_t upto, int status,
                   const char *why)
{
    const webhook_conf *wc = &s->r->conf;
    int64_t now = daemon_now_ms();
    int give_up = b->oldest_ms > 0 && now - b->oldest_ms > wc->max_age_ms;
    int64_t wait = backoff_ms(wc, ++k->failures);
    if (give_up)
        k->failures = 0;
    k->next_ms = give_up ? 0 : now + wait;
    if (status == 413 && k->batch > 1)
        k->batch /= 2; /* too large for the receiver: smaller batches */
    pg_spool_hook_done(s->spool, k->name, 0, give_up, upto, b->count, k->next_ms, why);
    log_hook(s->r->d, EVENTLOG_WARNING, give_up ? "webhook_given_up" : "webhook_deferred", k,
             b->count, status, why);
}

/* Sends one batch to k if it has events. Returns 1 when it did work. */
static int serve_sink(sender *s, webhook_sink *k)
{
    const webhook_conf *wc = &s->r->conf;
    pg_spool_hook_sink view = {k->name, k->key_id[0] ? k->key_id : NULL, k->types};
    batch b = {webhook_body_begin(), 0, 0, 0};
    int64_t upto = 0;
    if (b.body == NULL)
        return 0;
    pigeon_err e = pg_spool_hook_fetch(s->spool, &view, (size_t)k->batch, collect, &b, &upto);
    size_t len = 0;
    char *body = webhook_body_end(b.body, &len);
    if (e != PIGEON_OK || body == NULL || b.count == 0) {
        /* Nothing for this sink: its cursor skips the others' events, now and then (so
         * that trim can delete them, and the next read starts later). */
        int64_t now = daemon_now_ms();
        if (e == PIGEON_OK && upto > k->cursor && now - k->idle_ms >= TRIM_MS &&
            pg_spool_hook_done(s->spool, k->name, 1, 0, upto, 0, 0, NULL) == PIGEON_OK) {
            k->cursor = upto;
            k->idle_ms = now;
        }
        free(body);
        return 0;
    }
    pg_http_response resp;
    char err[300];
    e = webhook_post(k, wc, body, len, b.first_id, b.count, &resp, err, sizeof err);
    free(body);
    if (e == PIGEON_OK && resp.status >= 200 && resp.status < 300) {
        if (k->batch < wc->batch)
            k->batch = k->batch * 2 < wc->batch ? k->batch * 2 : wc->batch;
        if (pg_spool_hook_done(s->spool, k->name, 1, 0, upto, b.count, 0, NULL) == PIGEON_OK)
            k->cursor = upto;
        k->failures = 0;
    } else {
        char why[400];
        if (e != PIGEON_OK)
            snprintf(why, sizeof why, "%s", err);
        else if (resp.status >= 300 && resp.status < 400)
            snprintf(why, sizeof why, "HTTP %d %.100s (redirect to %.200s not followed)",
                     resp.status, resp.reason, resp.location);
        else
            snprintf(why, sizeof why, "HTTP %d %.100s", resp.status, resp.reason);
        failed(s, k, &b, upto, e == PIGEON_OK ? resp.status : 0, why);
    }
    pg_http_response_cleanup(&resp);
    return 1;
}

/* Pauses ms milliseconds (at most RELOAD_MS), or until webhook_stop. */
static void pause_ms(struct webhook_runner *r, int64_t ms)
{
    cli_wake_wait(r->stop_pipe, ms < RELOAD_MS ? ms : RELOAD_MS, &r->stop);
}

static void *sender_main(void *arg)
{
    sender *s = arg;
    struct webhook_runner *r = s->r;
    char err[300];
    if (pigeon_spool_open(r->d->spool_path, PIGEON_SPOOL_NO_CHECK, &s->spool, err, sizeof err) !=
        PIGEON_OK) {
        eventlog_event e;
        eventlog_event_init(&e, EVENTLOG_ERROR, "webhook_failed");
        eventlog_add_str(&e, "text", err);
        eventlog_write(r->d->log, &e);
        return NULL;
    }
    pigeon_spool_set_busy_timeout(s->spool, 10000);
    while (!atomic_load(&r->stop)) {
        int64_t now = daemon_now_ms();
        if (now - s->loaded_ms >= RELOAD_MS) {
            reload(s);
            s->loaded_ms = now;
        }
        int worked = 0;
        for (size_t i = 0; i < s->n && !atomic_load(&r->stop); i++)
            if (s->sinks[i].next_ms <= daemon_now_ms())
                worked |= serve_sink(s, &s->sinks[i]);
        /* A sender without sinks waits for the next reload: an idle daemon is not woken
         * 20 times a second per thread for nothing. */
        if (s->n == 0)
            pause_ms(r, s->loaded_ms + RELOAD_MS - daemon_now_ms());
        else if (!worked)
            pause_ms(r, IDLE_MS);
    }
    webhook_sinks_free(s->sinks, s->n);
    s->sinks = NULL;
    pigeon_spool_close(s->spool);
    return NULL;
}

/* Deletes the events every sink is done with. */
static void trim(struct webhook_runner *r, pigeon_spool *spool)
{
    webhook_sink *list = NULL;
    size_t n = 0, count = 0;
    if (webhook_key_sinks(spool, &list, &n) != 0)
        return;
    const char **names = calloc(r->conf.nsinks + n + 1, sizeof *names);
    for (size_t i = 0; names != NULL && i < r->conf.nsinks + n; i++)
        names[i] = i < r->conf.nsinks ? r->conf.sinks[i].name : list[i - r->conf.nsinks].name;
    if (names != NULL)
        pg_spool_hook_trim(spool, names, r->conf.nsinks + n, &count);
    free(names);
    webhook_sinks_free(list, n);
}

/* Turns the outbox on when any webhook exists. */
static void enable(struct webhook_runner *r, pigeon_spool *spool)
{
    webhook_sink *list = NULL;
    size_t n = 0;
    int on = 0;
    webhook_key_sinks(spool, &list, &n);
    webhook_sinks_free(list, n);
    pg_spool_hooks_enabled(spool, &on);
    if ((r->conf.nsinks > 0 || n > 0) && !on)
        pg_spool_hooks_enable(spool, 1);
}

/* Waits for the lock (one sender per spool), then runs the senders until stopped. */
static void *manager_main(void *arg)
{
    struct webhook_runner *r = arg;
    pigeon_spool *spool = NULL;
    char err[300];
    while (!atomic_load(&r->stop) && r->lock_fd >= 0 && flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0)
        pause_ms(r, 500);
    if (atomic_load(&r->stop))
        return NULL;
    if (pigeon_spool_open(r->d->spool_path, PIGEON_SPOOL_NO_CHECK, &spool, err, sizeof err) !=
        PIGEON_OK)
        return NULL;
    pigeon_spool_set_busy_timeout(spool, 10000);
    int started = 0;
    for (; started < SENDERS; started++) {
        r->senders[started].r = r;
        r->senders[started].index = started;
        if (pthread_create(&r->senders[started].thread, NULL, sender_main, &r->senders[started]) !=
            0)
            break;
    }
    while (!atomic_load(&r->stop)) {
        enable(r, spool);
        trim(r, spool);
        pause_ms(r, TRIM_MS);
    }
    for (int i = 0; i < started; i++)
        pthread_join(r->senders[i].thread, NULL);
    pigeon_spool_close(spool);
    return NULL;
}

/* Frees the runner and closes its descriptors. */
static void close_runner(struct webhook_runner *r)
{
    if (r->lock_fd >= 0)
        close(r->lock_fd);
    cli_wake_close(r->stop_pipe);
    webhook_conf_cleanup(&r->conf);
    free(r);
}

int webhook_start(daemon_state *d, webhook_runner **out)
{
    char path[4200];
    pigeon_spool *spool = NULL;
    int status = EX_OSERR;
    webhook_runner *r = calloc(1, sizeof *r);
    *out = NULL;
    if (r == NULL)
        return EX_OSERR;
    r->d = d;
    r->lock_fd = -1;
    cli_wake_open(r->stop_pipe);
    if ((status = webhook_conf_load(&r->conf)) != 0)
        goto fail;
    status = EX_OSERR;
    /* The outbox is turned on before the workers start, so that no outcome of this run
     * goes unrecorded. */
    int outbox = 1;
    if (pigeon_spool_open(d->spool_path, PIGEON_SPOOL_NO_CHECK, &spool, path, sizeof path) ==
        PIGEON_OK) {
        int on = 0;
        pigeon_spool_set_busy_timeout(spool, 10000);
        if (pg_spool_hooks_enabled(spool, &on) == PIGEON_ERR_UNSUPPORTED)
            outbox = 0;
        else
            enable(r, spool);
        pigeon_spool_close(spool);
    }
    if (!outbox) {
        /* A backend without an outbox: webhooks in the configuration cannot be honoured,
         * which must not pass silently. */
        if (r->conf.nsinks > 0) {
            cli_error("daemon: %s: this spool backend keeps no webhook outbox",
                      r->conf.path[0] ? r->conf.path : "configuration");
            status = EX_CONFIG;
            goto fail;
        }
        close_runner(r);
        return 0;
    }
    /* A PostgreSQL spool (a URL, no file to lock): every daemon of every host sends, and
     * the backend lets one sender at a time serve a sink (spool_pg_hooks.c). */
    if (strstr(d->spool_path, "://") != NULL) {
        if (pthread_create(&r->manager, NULL, manager_main, r) != 0)
            goto fail;
        *out = r;
        return 0;
    }
    snprintf(path, sizeof path, "%s-webhooks.lock", d->spool_path);
    r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (r->lock_fd < 0) {
        cli_error("daemon: cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    if (pthread_create(&r->manager, NULL, manager_main, r) != 0)
        goto fail;
    *out = r;
    return 0;
fail:
    close_runner(r);
    return status;
}

void webhook_stop(webhook_runner *r)
{
    if (r == NULL)
        return;
    atomic_store(&r->stop, 1);
    cli_wake_set(r->stop_pipe);
    pthread_join(r->manager, NULL);
    close_runner(r);
}
