/*
 * dkim_ed25519.h - Ed25519 signing through libsodium when pigeon is built with it: its
 * signer (precomputed base-point tables) takes about 60% of the time OpenSSL 3.0's takes,
 * and an Ed25519 DKIM signature is mostly that one operation. Without libsodium, or when it
 * fails to start, the callers sign with OpenSSL as before; both make the same signature
 * (Ed25519 is deterministic, RFC 8032 5.1.6).
 */
#ifndef PIGEON_DKIM_ED25519_H
#define PIGEON_DKIM_ED25519_H

#include <stddef.h>

#include "dkim/dkim_key.h"

/* Readies key (an Ed25519 key) for pg_dkim_ed25519_sign: the expanded secret is computed
 * once here, not per signature. Leaves the key for OpenSSL when libsodium is absent. */
void pg_dkim_ed25519_prepare(pigeon_dkim_key *key);

/* Signs msg with a prepared key into sig (64 bytes). Returns 1 when signed, 0 when the key
 * is not prepared (the caller signs with OpenSSL). */
int pg_dkim_ed25519_sign(const pigeon_dkim_key *key, const unsigned char *msg, size_t len,
                         unsigned char sig[64]);

#endif
