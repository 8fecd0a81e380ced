/*
 * tool_spool.c - drives the spool for tests/integration/test_spool_crash.py.
 *
 *   tool_spool enqueue PATH SEED [BATCH]
 *       Enqueues messages forever (until killed): one by one, or BATCH per transaction.
 *       After each enqueue (or each batch commit) returned PIGEON_OK it prints, for each
 *       message, "<queue id> <sha256 of the bytes> <size>" and flushes stdout. A line
 *       printed is a promise: that message must survive kill -9.
 *   tool_spool fill PATH COUNT
 *       Enqueues COUNT small messages with two recipients each, in one batch.
 *   tool_spool work PATH LEASE_MS [drain]
 *       A worker: claims due work under a lease of LEASE_MS (real time) and records
 *       outcomes as if delivering: a recipient with an odd id is deferred (due at once)
 *       on its first attempt, everything else is delivered. Prints "claimed <rcpt id>"
 *       when it got a recipient and "delivered <rcpt id>" once that outcome is recorded.
 *       Loops forever; with "drain", exits 0 once the spool has no pending recipient.
 *   tool_spool dump PATH
 *       Opens the spool (quick_check), runs the full integrity check, and prints the same
 *       line for every stored message, hashing the bytes read back through the library.
 *       Exits 1 with a reason on stderr if anything fails.
 *
 * Sizes vary: most messages are a few KB, one in eight spans several 256 KiB chunks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "pigeon/spool.h"

static uint64_t rng_state;

static uint64_t next_random(void)
{
    /* xorshift64*: deterministic per seed, enough to vary sizes and bytes. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static void hex_sha256(const unsigned char *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Fills buf with a message of *len bytes (header, then printable lines with CRLF). */
static void make_message(unsigned char *buf, size_t cap, size_t *len, unsigned long n)
{
    size_t size =
        next_random() % 8 == 0 ? 300000 + next_random() % 500000 : 2000 + next_random() % 10000;
    if (size > cap)
        size = cap;
    int h = snprintf((char *)buf, size, "From: a@example.org\r\nSubject: crash %lu\r\n\r\n", n);
    for (size_t i = (size_t)h; i < size; i++)
        buf[i] = (i % 76 == 75)   ? '\n'
                 : (i % 76 == 74) ? '\r'
                                  : (unsigned char)(33 + next_random() % 90);
    *len = size;
}

static int enqueue_loop(const char *path, unsigned long seed, unsigned batch)
{
    static const char *const rcpts[] = {"b@example.net", "c@example.net"};
    pigeon_spool_envelope env = {"crash", "a@example.org", rcpts, 2, NULL};
    char err[512];
    pigeon_spool *s = NULL;
    if (pigeon_spool_open(path, PIGEON_SPOOL_CREATE | PIGEON_SPOOL_NO_CHECK, &s, err, sizeof err) !=
        PIGEON_OK) {
        fprintf(stderr, "tool_spool: %s\n", err);
        return 1;
    }
    size_t cap = 900000;
    unsigned char *msg = malloc(cap);
    char(*lines)[128] = calloc(batch ? batch : 1, sizeof *lines);
    rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (unsigned long n = 0; msg != NULL && lines != NULL; n++) {
        unsigned per = batch ? batch : 1;
        if (batch && pigeon_spool_begin(s) != PIGEON_OK)
            break;
        for (unsigned k = 0; k < per; k++) {
            size_t len;
            char id[PIGEON_SPOOL_ID_LEN + 1], sha[65];
            make_message(msg, cap, &len, n * per + k);
            hex_sha256(msg, len, sha);
            if (pigeon_spool_enqueue(s, &env, msg, len, pigeon_spool_now_ms(), id) != PIGEON_OK) {
                fprintf(stderr, "tool_spool: enqueue: %s\n", pigeon_spool_error(s));
                return 1;
            }
            snprintf(lines[k], sizeof lines[k], "%s %s %zu\n", id, sha, len);
        }
        if (batch && pigeon_spool_commit(s) != PIGEON_OK) {
            fprintf(stderr, "tool_spool: commit: %s\n", pigeon_spool_error(s));
            return 1;
        }
        /* Only now is it durable: promise it. */
        for (unsigned k = 0; k < per; k++)
            fputs(lines[k], stdout);
        fflush(stdout);
    }
    fprintf(stderr, "tool_spool: out of memory or begin failed\n");
    return 1;
}

static int fill(const char *path, long count)
{
    static const char *const rcpts[] = {"b@example.net", "c@example.net"};
    static const char body[] = "From: a@example.org\r\nSubject: work\r\n\r\nHi.\r\n";
    pigeon_spool_envelope env = {"crash", "a@example.org", rcpts, 2, NULL};
    char err[512], id[PIGEON_SPOOL_ID_LEN + 1];
    pigeon_spool *s = NULL;
    if (pigeon_spool_open(path, PIGEON_SPOOL_CREATE, &s, err, sizeof err) != PIGEON_OK) {
        fprintf(stderr, "tool_spool: %s\n", err);
        return 1;
    }
    int rc = pigeon_spool_begin(s) != PIGEON_OK;
    for (long i = 0; rc == 0 && i < count; i++)
        rc = pigeon_spool_enqueue(s, &env, body, sizeof body - 1, pigeon_spool_now_ms(), id) !=
             PIGEON_OK;
    if (rc == 0)
        rc = pigeon_spool_commit(s) != PIGEON_OK;
    if (rc != 0)
        fprintf(stderr, "tool_spool: fill: %s\n", pigeon_spool_error(s));
    pigeon_spool_close(s);
    return rc;
}

/* Records the outcomes of one claim; prints the delivered ones once durable. */
static int work_one(pigeon_spool *s, pigeon_spool_entry *job)
{
    pigeon_spool_outcome out[16];
    size_t n = job->rcpt_count < 16 ? job->rcpt_count : 16;
    int64_t now = pigeon_spool_now_ms();
    for (size_t i = 0; i < n; i++) {
        const pigeon_spool_rcpt *r = &job->rcpts[i];
        printf("claimed %lld\n", (long long)r->id);
        int defer = r->attempts == 1 && r->id % 2 == 1;
        out[i] = (pigeon_spool_outcome){i,
                                        defer ? PIGEON_SPOOL_DEFERRED : PIGEON_SPOOL_DELIVERED,
                                        now + 10,
                                        defer ? PIGEON_ERR_DEFERRED : PIGEON_OK,
                                        defer ? 451 : 250,
                                        NULL,
                                        defer ? "try later" : "ok"};
    }
    fflush(stdout);
    if (pigeon_spool_record(s, job, out, n, now) != PIGEON_OK) {
        fprintf(stderr, "tool_spool: record: %s\n", pigeon_spool_error(s));
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (out[i].state == PIGEON_SPOOL_DELIVERED)
            printf("delivered %lld\n", (long long)job->rcpts[i].id);
    fflush(stdout);
    return 0;
}

static int work(const char *path, long lease_ms, int drain)
{
    char err[512], owner[64];
    pigeon_spool *s = NULL;
    if (pigeon_spool_open(path, PIGEON_SPOOL_NO_CHECK, &s, err, sizeof err) != PIGEON_OK) {
        fprintf(stderr, "tool_spool: %s\n", err);
        return 1;
    }
    snprintf(owner, sizeof owner, "tool_spool:%ld", (long)getpid());
    for (;;) {
        pigeon_spool_entry *job = NULL;
        pigeon_spool_stats st;
        if (pigeon_spool_claim(s, owner, NULL, pigeon_spool_now_ms(), lease_ms, &job) != PIGEON_OK)
            break;
        if (job != NULL) {
            int rc = work_one(s, job);
            pigeon_spool_entry_free(job);
            if (rc != 0)
                break;
            continue;
        }
        if (pigeon_spool_stats_get(s, pigeon_spool_now_ms(), &st) != PIGEON_OK)
            break;
        if (drain && st.oldest_pending_ms == 0) {
            pigeon_spool_close(s);
            return 0;
        }
        usleep(20000);
    }
    fprintf(stderr, "tool_spool: work: %s\n", pigeon_spool_error(s));
    pigeon_spool_close(s);
    return 1;
}

/* The list callback may not use the handle: it writes the ids to a file, and the bodies
 * are read afterwards. */
static int list_id(void *ctx, const pigeon_spool_entry *e)
{
    fprintf((FILE *)ctx, "%s\n", e->queue_id);
    return 0;
}

static int dump_bodies(pigeon_spool *s, FILE *ids)
{
    char line[64];
    unsigned char buf[65536];
    while (fgets(line, sizeof line, ids) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        pigeon_spool_body *b = NULL;
        int64_t size = 0;
        if (pigeon_spool_body_open(s, line, &b, &size) != PIGEON_OK) {
            fprintf(stderr, "tool_spool: open %s: %s\n", line, pigeon_spool_error(s));
            return 1;
        }
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        size_t n = 0, total = 0;
        int rc;
        while ((rc = pigeon_spool_body_read(b, buf, sizeof buf, &n)) == 0 && n > 0) {
            EVP_DigestUpdate(md, buf, n);
            total += n;
        }
        pigeon_spool_body_close(b);
        unsigned char digest[32];
        EVP_DigestFinal_ex(md, digest, NULL);
        EVP_MD_CTX_free(md);
        if (rc != 0 || (int64_t)total != size) {
            fprintf(stderr, "tool_spool: read %s: %s\n", line, pigeon_spool_error(s));
            return 1;
        }
        printf("%s ", line);
        for (int i = 0; i < 32; i++)
            printf("%02x", digest[i]);
        printf(" %zu\n", total);
    }
    return 0;
}

static int dump(const char *path)
{
    char err[512];
    pigeon_spool *s = NULL;
    if (pigeon_spool_open(path, 0, &s, err, sizeof err) != PIGEON_OK) {
        fprintf(stderr, "tool_spool: %s\n", err);
        return 1;
    }
    if (pigeon_spool_check(s, 1) != PIGEON_OK) {
        fprintf(stderr, "tool_spool: %s\n", pigeon_spool_error(s));
        pigeon_spool_close(s);
        return 1;
    }
    FILE *ids = tmpfile();
    pigeon_err rc = ids == NULL ? PIGEON_ERR_IO : pigeon_spool_list(s, NULL, list_id, ids);
    if (ids != NULL)
        rewind(ids);
    int status = rc != PIGEON_OK ? 1 : dump_bodies(s, ids);
    if (rc != PIGEON_OK)
        fprintf(stderr, "tool_spool: list: %s\n", pigeon_spool_error(s));
    if (ids != NULL)
        fclose(ids);
    pigeon_spool_close(s);
    return status;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "enqueue") == 0)
        return enqueue_loop(argv[2], strtoul(argv[3], NULL, 10),
                            argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 0);
    if (argc == 4 && strcmp(argv[1], "fill") == 0)
        return fill(argv[2], strtol(argv[3], NULL, 10));
    if (argc >= 4 && strcmp(argv[1], "work") == 0)
        return work(argv[2], strtol(argv[3], NULL, 10), argc > 4 && !strcmp(argv[4], "drain"));
    if (argc == 3 && strcmp(argv[1], "dump") == 0)
        return dump(argv[2]);
    fprintf(stderr, "usage: tool_spool enqueue PATH SEED [BATCH] | fill PATH COUNT | "
                    "work PATH LEASE_MS [drain] | dump PATH\n");
    return 2;
}
