/*
 * mime_random.c - randomness for boundaries and Message-IDs: the kernel's CSPRNG, or a fixed
 * sequence for golden-file tests (pg_mime_test_seed). The builder (message.c) and the writer
 * (mime.c) both draw from here, so neither depends on the other for it.
 */
#include "mime/mime.h"
#include "util/random.h"

static int test_mode;       /* pg_mime_test_seed was called with a nonzero seed */
static uint64_t test_state; /* splitmix64 state */

void pg_mime_test_seed(uint64_t seed)
{
    test_mode = seed != 0;
    test_state = seed;
}

/* splitmix64 (Steele, Lea, Flood 2014): a fixed, well-mixed sequence for tests. */
static uint64_t test_next(void)
{
    uint64_t z = (test_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

pigeon_err pg_mime_random_bytes(void *buf, size_t n)
{
    if (!test_mode)
        return pg_random_bytes(buf, n);
    for (size_t i = 0; i < n; i++)
        ((unsigned char *)buf)[i] = (unsigned char)(test_next() >> 56);
    return PIGEON_OK;
}

pigeon_err pg_mime_random_token(char *out, size_t n)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    if (!test_mode)
        return pg_random_token(out, n);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[test_next() % 62];
    out[n] = '\0';
    return PIGEON_OK;
}
