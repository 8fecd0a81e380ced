/*
 * dkim_sign.h - the signer's raw signing step, for the RFC 8463 test vector (whose
 * DKIM-Signature fields carry tags, i= and q=, that the signer does not write).
 */
#ifndef PIGEON_DKIM_SIGN_H
#define PIGEON_DKIM_SIGN_H

#include <stddef.h>

#include "pigeon/dkim.h"

/* Signs canonical header data with key as DKIM does (RSA: PKCS#1 v1.5 over SHA-256 of data;
 * Ed25519: over the SHA-256 hash of data, RFC 8463 3). *siglen: room in, used out. Returns
 * 1 on success, 0 on failure. */
int pg_dkim_sign_raw(const pigeon_dkim_key *key, const void *data, size_t len, unsigned char *sig,
                     size_t *siglen);

#endif
