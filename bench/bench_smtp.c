/*
 * bench_smtp.c - messages per second over SMTP: N messages, each composed from the shared
 * 7.4 KB bilingual sample (/work/shared/bench/sample.py: text + HTML alternative), sent over
 * K connections (K threads, one pigeon_smtp each, connections reused for every message).
 *
 *   bench_smtp HOST PORT N [K [BATCH]]
 *
 * BATCH (default 32) messages are composed, then sent with one pigeon_smtp_send_batch
 * (one round trip per message: each end of data travels with the next command group);
 * BATCH 0 sends each with pigeon_smtp_send_message (two round trips per message).
 * Plaintext, no AUTH (smtp-sink on loopback). Prints one line:
 *   "pigeon (K conn, batch B)  N msgs  T s  R msg/s" and exits 1 if any message failed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pigeon/smtp.h"
#include "sample.h"

/* One sending thread's job and outcome. */
struct worker {
    const char *host; /* server */
    uint16_t port;    /* its port */
    long count;       /* messages to send */
    long batch;       /* messages per pigeon_smtp_send_batch, 0 for one by one */
    long sent;        /* messages accepted */
    char error[640];  /* first failure, or "" */
    pthread_t thread; /* the thread */
};

static char *text_body;
static char *html_body;

/* The sample of bench/sample.py (sample.h). */
static int make_sample(void)
{
    text_body = sample_text();
    html_body = sample_html();
    return text_body != NULL && html_body != NULL ? 0 : -1;
}

static pigeon_message *compose(void)
{
    pigeon_message *m = pigeon_message_new();
    if (m == NULL)
        return NULL;
    pigeon_message_set_from(m, SAMPLE_FROM);
    pigeon_message_add_to(m, SAMPLE_TO);
    pigeon_message_set_subject(m, SAMPLE_SUBJECT);
    pigeon_message_set_text(m, text_body, (size_t)-1);
    pigeon_message_set_html(m, html_body, (size_t)-1);
    if (pigeon_message_status(m) != PIGEON_OK) {
        pigeon_message_free(m);
        return NULL;
    }
    return m;
}

/* Composes up to w->batch messages at a time and sends them with one call. */
static void send_batches(pigeon_smtp *s, struct worker *w)
{
    pigeon_message **msgs = calloc((size_t)w->batch, sizeof *msgs);
    pigeon_send_result *rs = calloc((size_t)w->batch, sizeof *rs);
    for (long done = 0; msgs != NULL && rs != NULL && done < w->count && !w->error[0];) {
        size_t n = (size_t)(w->count - done < w->batch ? w->count - done : w->batch);
        for (size_t i = 0; i < n; i++)
            msgs[i] = compose();
        pigeon_smtp_send_batch(s, msgs, n, rs);
        for (size_t i = 0; i < n; i++) {
            if (rs[i].status == PIGEON_SEND_SENT)
                w->sent++;
            else if (!w->error[0])
                snprintf(w->error, sizeof w->error, "message %ld: %s", done + (long)i,
                         rs[i].errmsg);
            pigeon_send_result_cleanup(&rs[i]);
            pigeon_message_free(msgs[i]);
            msgs[i] = NULL;
        }
        done += (long)n;
    }
    free(msgs);
    free(rs);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    pigeon_smtp_opts o;
    pigeon_smtp *s = NULL;
    pigeon_send_result r;
    pigeon_smtp_opts_init(&o);
    pigeon_send_result_init(&r);
    o.host = w->host;
    o.port = w->port;
    o.tls = PIGEON_TLS_NONE;
    if (pigeon_smtp_new(&o, &s) != PIGEON_OK || pigeon_smtp_connect(s, &r) != PIGEON_OK) {
        snprintf(w->error, sizeof w->error, "connect: %s", r.errmsg);
        goto out;
    }
    if (w->batch > 0)
        send_batches(s, w);
    for (long i = 0; w->batch == 0 && i < w->count; i++) {
        /* Each message is composed anew, as an application sending reports would. */
        pigeon_message *m = compose();
        pigeon_err err = m != NULL ? pigeon_smtp_send_message(s, m, &r) : PIGEON_ERR_NOMEM;
        pigeon_message_free(m);
        if (err != PIGEON_OK) {
            snprintf(w->error, sizeof w->error, "message %ld: %s %s", i, pigeon_strerror(err),
                     r.errmsg);
            break;
        }
        w->sent++;
    }
    pigeon_smtp_quit(s);
out:
    pigeon_send_result_cleanup(&r);
    pigeon_smtp_free(s);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_smtp HOST PORT N [CONNECTIONS]\n");
        return 2;
    }
    long n = strtol(argv[3], NULL, 10);
    long k = argc > 4 ? strtol(argv[4], NULL, 10) : 1;
    long batch = argc > 5 ? strtol(argv[5], NULL, 10) : 32;
    if (n < 1 || k < 1 || k > 64 || batch < 0 || make_sample() != 0)
        return 2;
    struct worker *w = calloc((size_t)k, sizeof *w);
    if (w == NULL)
        return 2;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < k; i++) {
        w[i].host = argv[1];
        w[i].port = (uint16_t)strtol(argv[2], NULL, 10);
        w[i].count = n / k + (i < n % k);
        w[i].batch = batch;
        pthread_create(&w[i].thread, NULL, work, &w[i]);
    }
    long sent = 0;
    int failed = 0;
    for (long i = 0; i < k; i++) {
        pthread_join(w[i].thread, NULL);
        sent += w[i].sent;
        if (w[i].error[0] != '\0') {
            fprintf(stderr, "connection %ld: %s\n", i, w[i].error);
            failed = 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    char label[64];
    if (batch > 0)
        snprintf(label, sizeof label, "pigeon (%ld conn, batch %ld)", k, batch);
    else
        snprintf(label, sizeof label, "pigeon (%ld conn, one by one)", k);
    printf("%-34s %6ld msgs %7.3fs %9.0f msg/s\n", label, sent, secs, (double)sent / secs);
    free(w);
    free(text_body);
    free(html_body);
    return failed;
}
