/*
 * pigeon/dkim.h - DKIM signing (RFC 6376) with rsa-sha256 and ed25519-sha256 (RFC 8463).
 *
 * A key (pigeon_dkim_key) is loaded once from a PEM file's bytes; a signer
 * (pigeon_dkim_signer) holds the domain, selector, up to two keys and the canonicalization,
 * and signs one message at a time: feed the message as it is written (any chunking), then
 * ask for the DKIM-Signature fields to put in front of it. The body is hashed as it streams
 * (memory stays bounded whatever its size); the header block is kept (at most 1 MiB).
 *
 * Line endings of the input may be CRLF, LF or a lone CR: each is signed as the CRLF the
 * SMTP layer sends. No l= tag is ever written (RFC 6376 8.2: it lets anyone append content).
 *
 * Thread safety: a key may be shared by signers in several threads; a signer is used by
 * one thread at a time.
 */
#ifndef PIGEON_DKIM_H
#define PIGEON_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The signing algorithm of a key (RFC 6376 3.3, RFC 8463 3). */
typedef enum pigeon_dkim_alg {
    PIGEON_DKIM_RSA_SHA256 = 0,     /* "rsa-sha256", 1024 to 4096 bit keys */
    PIGEON_DKIM_ED25519_SHA256 = 1, /* "ed25519-sha256" */
} pigeon_dkim_alg;

/* Canonicalization of the header or the body (RFC 6376 3.4). */
typedef enum pigeon_dkim_canon {
    PIGEON_DKIM_RELAXED = 0, /* the default: survives refolding and trailing white space */
    PIGEON_DKIM_SIMPLE = 1,  /* byte for byte (trailing empty lines of the body aside) */
} pigeon_dkim_canon;

/* ---- keys ---- */
typedef struct pigeon_dkim_key pigeon_dkim_key;

/*
 * Parses a private key: PEM (PKCS#8 "PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY"), or the bare
 * base64 of a 32-byte Ed25519 seed (what dkimpy's dknewkey writes). RSA keys must have 1024
 * to 4096 bits. On failure *out is NULL and why (if not NULL) gets a one-line reason.
 * Returns PIGEON_ERR_INVALID (not a key, encrypted, wrong size), PIGEON_ERR_UNSUPPORTED
 * (a key type DKIM has no algorithm for, e.g. EC), PIGEON_ERR_NOMEM.
 */
pigeon_err pigeon_dkim_key_parse(const void *data, size_t len, pigeon_dkim_key **out, char *why,
                                 size_t whylen);
/* Generates a key: bits is for RSA (0 = 2048; 1024..4096), ignored for Ed25519. */
pigeon_err pigeon_dkim_key_generate(pigeon_dkim_alg alg, unsigned bits, pigeon_dkim_key **out);
/* The private key as PKCS#8 PEM, malloc'd (*pem, *len), wiped and freed by the caller. */
pigeon_err pigeon_dkim_key_private_pem(const pigeon_dkim_key *key, char **pem, size_t *len);
/* The DNS TXT value to publish, malloc'd: "v=DKIM1; k=rsa; p=BASE64" (RFC 6376 3.6.1;
 * for Ed25519 p= is the raw 32-byte public key, RFC 8463 4). */
pigeon_err pigeon_dkim_key_dns_value(const pigeon_dkim_key *key, char **out);
pigeon_dkim_alg pigeon_dkim_key_alg(const pigeon_dkim_key *key);
/* Key size in bits (RSA modulus; 256 for Ed25519). */
unsigned pigeon_dkim_key_bits(const pigeon_dkim_key *key);
/* The algorithm's name as in a= ("rsa-sha256"). */
const char *pigeon_dkim_alg_name(pigeon_dkim_alg alg);
/* NULL is a no-op. The key material is wiped. */
void pigeon_dkim_key_free(pigeon_dkim_key *key);
/* A second handle on the same key (the key material is shared, not copied, and lives until
 * both handles are freed): for a cache that hands each user its own to free. Thread-safe. */
pigeon_err pigeon_dkim_key_dup(const pigeon_dkim_key *key, pigeon_dkim_key **out);

/* ---- signing ---- */

/* What to sign with. Strings and keys are borrowed for the signer's life. */
typedef struct pigeon_dkim_opts {
    const char *domain;             /* d=, the signing domain (A-label form); NULL:
                                            each message's From domain */
    const char *selector;           /* s= of the first key */
    const pigeon_dkim_key *key;     /* the first key (one signature per key) */
    const char *selector2;          /* s= of the second key (NULL: selector) */
    const pigeon_dkim_key *key2;    /* a second key, or NULL */
    pigeon_dkim_canon header_canon; /* c= header part (default relaxed) */
    pigeon_dkim_canon body_canon;   /* c= body part (default relaxed) */
    int64_t expire_seconds;         /* > 0: x= is t= plus this (RFC 6376 3.5) */
    const char *const *headers;     /* lower-case names to sign when present, NULL-
                                       terminated; NULL: From, To, Cc, Subject, Date,
                                       Message-ID, MIME-Version, Content-Type, Reply-To,
                                       In-Reply-To, References, List-Unsubscribe,
                                       List-Unsubscribe-Post */
    const char *const *oversign;    /* names listed once more than present (so that no
                                       copy can be added), NULL-terminated; NULL: From and
                                       Subject always, the List-Unsubscribe pair when
                                       present */
    int check_from;                 /* nonzero: the From domain must be d= or below it */
} pigeon_dkim_opts;

typedef struct pigeon_dkim_signer pigeon_dkim_signer;

/* Checks the options and creates a signer. PIGEON_ERR_INVALID for a missing or malformed
 * domain or selector or no key (the reason: pigeon_dkim_signer_error() is not available,
 * so why gets it), PIGEON_ERR_NOMEM. */
pigeon_err pigeon_dkim_signer_new(const pigeon_dkim_opts *opts, pigeon_dkim_signer **out, char *why,
                                  size_t whylen);
/* Feeds the next bytes of the message (header fields, the empty line, the body).
 * PIGEON_ERR_TOO_LARGE when the header block passes 1 MiB; the error is sticky. */
pigeon_err pigeon_dkim_signer_update(pigeon_dkim_signer *s, const void *buf, size_t len);
/*
 * Ends the message and writes the DKIM-Signature fields (each folded, CRLF-terminated) into
 * a malloc'd buffer (*fields, *len) for the caller to put before the header block.
 * unix_time is t=. PIGEON_ERR_HEADER when the message has no From or (check_from) a From
 * domain outside d=, PIGEON_ERR_INVALID when signing fails; the reason is in
 * pigeon_dkim_signer_error(). The signer is then ready for the next message.
 */
pigeon_err pigeon_dkim_signer_final(pigeon_dkim_signer *s, int64_t unix_time, char **fields,
                                    size_t *len);
/* Forgets the message fed so far (to start another). */
void pigeon_dkim_signer_reset(pigeon_dkim_signer *s);
/* The reason for the last failure, "" if none. Never NULL. */
const char *pigeon_dkim_signer_error(const pigeon_dkim_signer *s);
/* NULL is a no-op. */
void pigeon_dkim_signer_free(pigeon_dkim_signer *s);

/* Nonzero if domain is parent (equal, or a suffix at a label boundary, case-insensitive)
 * of child: the relaxed DKIM alignment of DMARC (RFC 7489 3.1.1) without the public-suffix
 * step, and the rule of d= and the From domain. */
int pigeon_dkim_domain_covers(const char *parent, const char *child);

#ifdef __cplusplus
}
#endif
#endif
