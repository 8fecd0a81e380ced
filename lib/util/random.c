/*
 * random.c - CSPRNG helpers (boundaries, Message-IDs, nonces, spool ids).
 *
 * The kernel's CSPRNG through getrandom(2): it is what OpenSSL's DRBG seeds from, and it
 * costs one system call, while the first RAND_bytes() of a process instantiates and seeds
 * OpenSSL's DRBG tree (a few million instructions: most of a short `pigeon send`).
 * OpenSSL's RAND_bytes remains the fallback where getrandom is unavailable.
 */
#include "util/random.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/rand.h>

/* Small requests (queue ids, Message-IDs, boundaries: a few per message in pigeon serve)
 * are served from a per-thread pool that one getrandom(2) fills, instead of a system
 * call each. Taken bytes are wiped from the pool. A child of fork() must not hand out the
 * bytes its parent will also use: the atfork handler empties the pool of the thread that
 * forked (the only one the child has). */
#define POOL_SIZE 256
#define POOL_MAX  64 /* requests larger than this go to the kernel directly */

static __thread unsigned char pool[POOL_SIZE];
static __thread size_t pool_left;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void pool_forget(void)
{
    explicit_bzero(pool, sizeof pool);
    pool_left = 0;
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, pool_forget);
}

static pigeon_err kernel_bytes(void *buf, size_t n);

pigeon_err pg_random_bytes(void *buf, size_t n)
{
    if (n > POOL_MAX)
        return kernel_bytes(buf, n);
    pthread_once(&atfork_once, register_atfork);
    if (pool_left < n) {
        pigeon_err err = kernel_bytes(pool, sizeof pool);
        if (err != PIGEON_OK)
            return err;
        pool_left = sizeof pool;
    }
    unsigned char *from = pool + sizeof pool - pool_left;
    memcpy(buf, from, n);
    explicit_bzero(from, n);
    pool_left -= n;
    return PIGEON_OK;
}

static pigeon_err kernel_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < n) {
        /* Reads of up to 256 bytes never return short once the pool is initialized;
         * larger ones may, and a signal may interrupt: loop. */
        ssize_t r = getrandom(p + done, n - done, 0);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (n - done > 0x7fffffff || RAND_bytes(p + done, (int)(n - done)) != 1)
            return PIGEON_ERR_IO;
        return PIGEON_OK;
    }
    return PIGEON_OK;
}

pigeon_err pg_random_token(char *out, size_t n)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char raw[64];
    size_t done = 0;
    while (done < n) {
        pigeon_err err = pg_random_bytes(raw, sizeof raw);
        if (err != PIGEON_OK)
            return err;
        for (size_t i = 0; i < sizeof raw && done < n; i++) {
            /* 62 * 4 = 248: reject 248..255 so every character is equally likely. */
            if (raw[i] < 248)
                out[done++] = alphabet[raw[i] % 62];
        }
    }
    out[n] = '\0';
    return PIGEON_OK;
}
