/*
 * bench_daemon.c - fills a spool for bench/daemon.sh.
 *
 *   bench_daemon SPOOL ACCOUNT COUNT FILE
 *
 * Enqueues COUNT copies of the message in FILE (CRLF line endings, as `pigeon send
 * --dry-run` writes it) for ACCOUNT, from sender@example.com to receiver@example.com,
 * 1000 per transaction, and prints the durable enqueue rate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pigeon/spool.h"

#define BATCH 1000

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads the whole file into a malloc'd buffer. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)size + 1)) == NULL ||
        fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    *len = buf != NULL ? (size_t)size : 0;
    if (f != NULL)
        fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_daemon SPOOL ACCOUNT COUNT FILE\n");
        return 2;
    }
    unsigned long count = strtoul(argv[3], NULL, 10);
    size_t len = 0;
    char *msg = slurp(argv[4], &len);
    char err[512];
    char id[PIGEON_SPOOL_ID_LEN + 1];
    pigeon_spool *spool = NULL;
    if (msg == NULL) {
        perror(argv[4]);
        return 1;
    }
    if (pigeon_spool_open(argv[1], PIGEON_SPOOL_CREATE, &spool, err, sizeof err) != PIGEON_OK) {
        fprintf(stderr, "bench_daemon: %s\n", err);
        free(msg);
        return 1;
    }
    const char *rcpts[] = {"receiver@example.com"};
    pigeon_spool_envelope env = {argv[2], "sender@example.com", rcpts, 1, NULL};
    double t0 = seconds();
    int ok = 1;
    for (unsigned long i = 0; ok && i < count; i++) {
        if (i % BATCH == 0)
            ok = pigeon_spool_begin(spool) == PIGEON_OK;
        ok = ok &&
             pigeon_spool_enqueue(spool, &env, msg, len, pigeon_spool_now_ms(), id) == PIGEON_OK;
        if (ok && (i % BATCH == BATCH - 1 || i == count - 1))
            ok = pigeon_spool_commit(spool) == PIGEON_OK;
    }
    double t = seconds() - t0;
    if (!ok)
        fprintf(stderr, "bench_daemon: %s\n", pigeon_spool_error(spool));
    else
        printf("enqueued %lu messages of %zu bytes in %.2f s (%.0f msgs/s, batches of %d)\n", count,
               len, t, (double)count / t, BATCH);
    pigeon_spool_close(spool);
    free(msg);
    return ok ? 0 : 1;
}
