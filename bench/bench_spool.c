/*
 * bench_spool.c - durable enqueue rate of the spool.
 *
 *   bench_spool [DIR] [SINGLE_COUNT] [BATCHED_COUNT] [BATCH_SIZE]
 *
 * Enqueues a 7.4 KiB message (the size of a typical multipart/alternative notification:
 * headers, a text part and an HTML part) to one recipient, into a fresh spool in DIR
 * (default: a new directory under /tmp), first one by one (one durable commit, i.e. one
 * WAL fsync, per message), then in batches of BATCH_SIZE per transaction. Prints msgs/s
 * for both. Each message is hashed and gets a fresh queue id, as in real use.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pigeon/spool.h"

#define SAMPLE_SIZE 7578 /* 7.4 KiB */

static double clock_s(clockid_t which)
{
    struct timespec ts;
    clock_gettime(which, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A plausible message of exactly SAMPLE_SIZE bytes with CRLF line endings. */
static char *make_sample(void)
{
    static const char head[] = "From: Pigeon Bench <bench@example.org>\r\n"
                               "To: Someone <someone@example.net>\r\n"
                               "Subject: Your weekly report\r\n"
                               "Date: Thu, 26 Nov 2026 09:00:00 +0000\r\n"
                               "Message-ID: <bench.0001@example.org>\r\n"
                               "MIME-Version: 1.0\r\n"
                               "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
                               "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
                               "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
    static const char line[] = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, "
                               "sed do eiusmod tempor.\r\n";
    static const char tail[] = "--b1--\r\n";
    char *msg = malloc(SAMPLE_SIZE + 1);
    if (msg == NULL)
        return NULL;
    size_t len = 0;
    memcpy(msg, head, sizeof head - 1);
    len = sizeof head - 1;
    while (len + sizeof line - 1 + sizeof tail - 1 <= SAMPLE_SIZE) {
        memcpy(msg + len, line, sizeof line - 1);
        len += sizeof line - 1;
    }
    while (len + sizeof tail - 1 < SAMPLE_SIZE)
        msg[len++] = '.';
    memcpy(msg + len, tail, sizeof tail - 1);
    return msg;
}

static int run(pigeon_spool *s, const char *msg, long count, long batch, const char *label)
{
    static const char *const rcpts[] = {"someone@example.net"};
    pigeon_spool_envelope env = {"bench", "bench@example.org", rcpts, 1, "bench.0001@example.org"};
    char id[PIGEON_SPOOL_ID_LEN + 1];
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (long done = 0; done < count;) {
        long n = batch > 0 ? batch : 1;
        if (batch > 0 && pigeon_spool_begin(s) != PIGEON_OK)
            goto fail;
        for (long k = 0; k < n && done < count; k++, done++)
            if (pigeon_spool_enqueue(s, &env, msg, SAMPLE_SIZE, pigeon_spool_now_ms(), id) !=
                PIGEON_OK)
                goto fail;
        if (batch > 0 && pigeon_spool_commit(s) != PIGEON_OK)
            goto fail;
    }
    double dt = clock_s(CLOCK_MONOTONIC) - t0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("%-34s %7ld msgs in %7.3f s = %7.0f msgs/s (%.1f MB/s; cpu %.3f s = %.0f msgs/cpu-s)\n",
           label, count, dt, (double)count / dt, (double)count * SAMPLE_SIZE / dt / 1e6, cpu,
           (double)count / cpu);
    return 0;
fail:
    fprintf(stderr, "bench_spool: %s\n", pigeon_spool_error(s));
    return 1;
}

int main(int argc, char **argv)
{
    char dir[256], path[300], label[64];
    long single = argc > 2 ? strtol(argv[2], NULL, 10) : 500;
    long batched = argc > 3 ? strtol(argv[3], NULL, 10) : 100000;
    long batch = argc > 4 ? strtol(argv[4], NULL, 10) : 1000;
    if (argc > 1) {
        snprintf(dir, sizeof dir, "%s", argv[1]);
    } else {
        snprintf(dir, sizeof dir, "/tmp/pigeon-bench-spool-XXXXXX");
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
    }
    snprintf(path, sizeof path, "%s/bench-spool.db", dir);
    unlink(path);
    char *msg = make_sample();
    pigeon_spool *s = NULL;
    char err[512];
    if (msg == NULL || pigeon_spool_open(path, PIGEON_SPOOL_CREATE, &s, err, sizeof err)) {
        fprintf(stderr, "bench_spool: %s\n", msg == NULL ? "out of memory" : err);
        return 1;
    }
    printf("spool %s, message %d bytes, 1 recipient, WAL + synchronous=FULL\n", path, SAMPLE_SIZE);
    int rc = run(s, msg, single, 0, "enqueue one by one (fsync each)");
    snprintf(label, sizeof label, "enqueue batched (%ld per commit)", batch);
    if (rc == 0)
        rc = run(s, msg, batched, batch, label);
    pigeon_spool_close(s);
    free(msg);
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[320];
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
    if (argc <= 1)
        rmdir(dir);
    return rc;
}
