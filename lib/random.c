/*
 * random.c - CSPRNG helpers on OpenSSL's RAND_bytes (boundaries, Message-IDs, nonces).
 */
#include "random.h"

#include <openssl/rand.h>

pigeon_err pg_random_bytes(void *buf, size_t n)
{
    if (n > 0x7fffffff)
        return PIGEON_ERR_INVALID;
    if (RAND_bytes(buf, (int)n) != 1)
        return PIGEON_ERR_IO;
    return PIGEON_OK;
}

pigeon_err pg_random_token(char *out, size_t n)
{
    static const char alphabet[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
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
