/*
 * random.h - CSPRNG helpers (internal), on the kernel's getrandom(2).
 */
#ifndef PG_RANDOM_H
#define PG_RANDOM_H

#include <stddef.h>

#include "pigeon/error.h"

/* Fills buf with n cryptographically random bytes. */
pigeon_err pg_random_bytes(void *buf, size_t n);
/* Writes n random characters from [0-9A-Za-z] and a NUL into out (n + 1 bytes). */
pigeon_err pg_random_token(char *out, size_t n);

#endif
