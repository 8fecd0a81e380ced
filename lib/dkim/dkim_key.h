/*
 * dkim_key.h - the inside of a DKIM key, shared by dkim_key.c (which makes them) and
 * dkim_sign.c (which signs with them).
 */
#ifndef PIGEON_DKIM_KEY_H
#define PIGEON_DKIM_KEY_H

#include <openssl/evp.h>

#include "pigeon/dkim.h"

struct pigeon_dkim_key {
    EVP_PKEY *pkey;          /* the private key */
    pigeon_dkim_alg alg;     /* what it signs with */
    unsigned bits;           /* RSA modulus size, 256 for Ed25519 */
    int ed_ready;            /* Ed25519: ed_sk holds the key for libsodium (dkim_ed25519.c) */
    unsigned char ed_sk[64]; /* Ed25519: seed and public key, libsodium's secret key */
};

#endif
