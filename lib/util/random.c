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
#include <sys/random.h>

#include <openssl/rand.h>

pigeon_err pg_random_bytes(void *buf, size_t n)
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
