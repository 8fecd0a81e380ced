/*
 * bench_limits.c - the cost of a shared-limits take (lib/spool/spool_limits.h) on the
 * SQLite spool, as the daemon pays it.
 *
 *   bench_limits [DIR] [TAKES]
 *
 * Opens a fresh spool in DIR the way `pigeon daemon` does (PIGEON_SPOOL_DEFER_SYNC: a
 * commit is written to the WAL, not flushed) and times TAKES takes of one token, then of
 * a quarter second's worth at 200 messages/s (50 tokens, what the daemon takes at that
 * rate), with a second handle taking in between as a second daemon would. Prints the
 * microseconds per take and per message, beside the in-memory pacing the daemon used
 * before (a mutex and two additions).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "pigeon/spool.h"
#include "spool/spool_limits.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double run(pigeon_spool *a, pigeon_spool *b, long takes, long want)
{
    pg_spool_take_req req = {"main", pigeon_spool_now_ms(), 1e6, 1.0, 0, want};
    pg_spool_take t;
    double start = now_s();
    for (long i = 0; i < takes; i++) {
        req.now_ms = pigeon_spool_now_ms();
        if (pg_spool_limits_take(i % 2 && b != NULL ? b : a, &req, &t) != PIGEON_OK) {
            fprintf(stderr, "bench_limits: take: %s\n",
                    pigeon_spool_error(i % 2 && b != NULL ? b : a));
            exit(1);
        }
    }
    return (now_s() - start) / (double)takes;
}

/* The spool's own work per message in the daemon's way (claims of 64, one record per
 * message, both on the DEFER_SYNC handle), for scale: seconds per message. */
static double spool_work(pigeon_spool *s, long count)
{
    static const char body[] = "Subject: x\r\n\r\nhello\r\n";
    const char *rcpt[] = {"r@example.net"};
    pigeon_spool_envelope env = {"work", "s@example.org", rcpt, 1, NULL};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    int64_t now = pigeon_spool_now_ms();
    pigeon_spool_begin(s);
    for (long i = 0; i < count; i++)
        pigeon_spool_enqueue(s, &env, body, sizeof body - 1, now, id);
    pigeon_spool_commit(s);
    pigeon_spool_sync(s);
    double start = now_s();
    long done = 0;
    while (done < count) {
        pigeon_spool_entry **jobs = NULL;
        size_t n = 0;
        if (pigeon_spool_claim_batch(s, "bench:1", "work", now, 60000, 64, 0, &jobs, &n) !=
                PIGEON_OK ||
            n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            pigeon_spool_outcome o = {0, PIGEON_SPOOL_DELIVERED, 0, PIGEON_OK, 250, "2.0.0", "ok"};
            pigeon_spool_record_item item = {jobs[i], &o, 1, 0};
            pigeon_spool_record_batch(s, &item, 1, now);
        }
        pigeon_spool_sync(s);
        pigeon_spool_jobs_free(jobs, n);
        done += (long)n;
    }
    return done > 0 ? (now_s() - start) / (double)done : 0;
}

int main(int argc, char **argv)
{
    char dir[256] = "/tmp/pigeon-limits-bench-XXXXXX", path[300], err[256];
    long takes = argc > 2 ? atol(argv[2]) : 20000;
    pigeon_spool *a = NULL, *b = NULL;
    if (argc > 1)
        snprintf(dir, sizeof dir, "%s", argv[1]);
    else if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(path, sizeof path, "%s/spool.db", dir);
    unsigned flags = PIGEON_SPOOL_CREATE | PIGEON_SPOOL_DEFER_SYNC | PIGEON_SPOOL_NO_CHECK;
    if (pigeon_spool_open(path, flags, &a, err, sizeof err) != PIGEON_OK ||
        pigeon_spool_open(path, flags, &b, err, sizeof err) != PIGEON_OK) {
        fprintf(stderr, "bench_limits: %s\n", err);
        return 1;
    }
    run(a, b, 100, 1); /* the table, the caches */
    double alone = run(a, NULL, takes, 1);
    double one = run(a, b, takes, 1);
    double fifty = run(a, b, takes, 50);
    /* The in-memory pacing: a mutex and the slot arithmetic. */
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    volatile int64_t slot = 0;
    double start = now_s();
    for (long i = 0; i < takes * 100; i++) {
        pthread_mutex_lock(&lock);
        slot = slot + 5;
        pthread_mutex_unlock(&lock);
    }
    double mem = (now_s() - start) / (double)(takes * 100);
    double work = spool_work(a, takes);
    printf("shared limits, SQLite, two handles alternating, %ld takes each:\n", takes);
    printf("  one handle alone:  %8.1f us per take\n", alone * 1e6);
    printf("  take of 1 token:   %8.1f us per take = %8.2f us per message\n", one * 1e6, one * 1e6);
    printf("  take of 50 tokens: %8.1f us per take = %8.2f us per message\n", fifty * 1e6,
           fifty * 1e6 / 50);
    printf("  for scale, the spool's own claim + record: %8.1f us per message\n", work * 1e6);
    printf("  in-memory pacing:  %8.3f us per message (the path it replaces)\n", mem * 1e6);
    pigeon_spool_close(a);
    pigeon_spool_close(b);
    return 0;
}
