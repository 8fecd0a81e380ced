/*
 * dkim_key.c - DKIM private keys: parsing (PEM, or dkimpy's bare Ed25519 seed), generation,
 * the PEM to store and the DNS TXT value to publish (RFC 6376 3.6.1, RFC 8463 4).
 *
 * OpenSSL 3 holds the key (EVP_PKEY); this file only checks that it is one DKIM can use:
 * RSA of 1024 to 4096 bits (RFC 8301 3.2 makes 1024 the floor) or Ed25519.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "codec/encode.h"
#include "dkim/dkim_ed25519.h"
#include "dkim/dkim_key.h"

/* RSA sizes DKIM accepts (RFC 8301 3.2: at least 1024; verifiers need not go past 4096). */
#define RSA_MIN_BITS 1024
#define RSA_MAX_BITS 4096

static void say(char *why, size_t whylen, const char *text)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", text);
}

/* Wraps pkey (taken) after checking its type and size. */
static pigeon_err adopt(EVP_PKEY *pkey, pigeon_dkim_key **out, char *why, size_t whylen)
{
    pigeon_dkim_key *k = NULL;
    pigeon_dkim_alg alg;
    int bits = EVP_PKEY_get_bits(pkey);
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        alg = PIGEON_DKIM_RSA_SHA256;
        if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "an RSA key of %d bits: DKIM needs 1024 to 4096 (2048 recommended)", bits);
            say(why, whylen, msg);
            EVP_PKEY_free(pkey);
            return PIGEON_ERR_INVALID;
        }
    } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
        alg = PIGEON_DKIM_ED25519_SHA256;
    } else {
        say(why, whylen, "not an RSA or Ed25519 key: DKIM has no algorithm for this key type");
        EVP_PKEY_free(pkey);
        return PIGEON_ERR_UNSUPPORTED;
    }
    if ((k = OPENSSL_zalloc(sizeof *k)) == NULL) {
        EVP_PKEY_free(pkey);
        return PIGEON_ERR_NOMEM;
    }
    k->pkey = pkey;
    k->alg = alg;
    k->bits = (unsigned)bits;
    pg_dkim_ed25519_prepare(k);
    *out = k;
    return PIGEON_OK;
}

/* Nonzero if text occurs in data. */
static int has_text(const char *data, size_t len, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(data + i, text, n) == 0)
            return 1;
    return 0;
}

/* dkimpy's dknewkey --ktype ed25519 writes the 32-byte seed in base64 on one line. */
static EVP_PKEY *bare_seed(const char *data, size_t len)
{
    pg_buf raw;
    EVP_PKEY *pkey = NULL;
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
        len--;
    if (len != 44)
        return NULL;
    pg_buf_init(&raw);
    if (pg_b64_decode(&raw, data, len) == PIGEON_OK && raw.len == 32)
        pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, (unsigned char *)raw.data, 32);
    pg_buf_wipe_cleanup(&raw);
    return pkey;
}

pigeon_err pigeon_dkim_key_parse(const void *data, size_t len, pigeon_dkim_key **out, char *why,
                                 size_t whylen)
{
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (data == NULL || len == 0 || len > 64 * 1024) {
        say(why, whylen, len == 0 ? "the key file is empty" : "the key file is too large");
        return PIGEON_ERR_INVALID;
    }
    EVP_PKEY *pkey = bare_seed((const char *)data, len);
    if (pkey == NULL) {
        if (has_text((const char *)data, len, "ENCRYPTED")) {
            say(why, whylen,
                "the key is encrypted: pigeon needs it unencrypted (protect it "
                "with file permissions, chmod 600)");
            return PIGEON_ERR_INVALID;
        }
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        if (bio == NULL)
            return PIGEON_ERR_NOMEM;
        /* An empty passphrase callback result: an encrypted key fails instead of prompting. */
        pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
        BIO_free(bio);
        ERR_clear_error();
    }
    if (pkey == NULL) {
        say(why, whylen,
            "not a PEM private key (\"-----BEGIN PRIVATE KEY-----\" or \"-----BEGIN "
            "RSA PRIVATE KEY-----\"); make one with pigeon dkim keygen");
        return PIGEON_ERR_INVALID;
    }
    return adopt(pkey, out, why, whylen);
}

pigeon_err pigeon_dkim_key_generate(pigeon_dkim_alg alg, unsigned bits, pigeon_dkim_key **out)
{
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    EVP_PKEY *pkey = NULL;
    if (alg == PIGEON_DKIM_ED25519_SHA256) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    } else if (alg == PIGEON_DKIM_RSA_SHA256) {
        if (bits == 0)
            bits = 2048;
        if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
            return PIGEON_ERR_INVALID;
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    } else {
        return PIGEON_ERR_INVALID;
    }
    if (pkey == NULL)
        return PIGEON_ERR_NOMEM;
    return adopt(pkey, out, NULL, 0);
}

pigeon_err pigeon_dkim_key_private_pem(const pigeon_dkim_key *key, char **pem, size_t *len)
{
    if (key == NULL || pem == NULL)
        return PIGEON_ERR_INVALID;
    *pem = NULL;
    BIO *bio = BIO_new(BIO_s_secmem());
    pigeon_err err = PIGEON_ERR_NOMEM;
    char *data;
    if (bio == NULL)
        return err;
    if (PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) == 1) {
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0 && (*pem = malloc((size_t)n + 1)) != NULL) {
            memcpy(*pem, data, (size_t)n);
            (*pem)[n] = '\0';
            if (len != NULL)
                *len = (size_t)n;
            err = PIGEON_OK;
        }
    }
    BIO_free(bio);
    return err;
}

pigeon_err pigeon_dkim_key_dns_value(const pigeon_dkim_key *key, char **out)
{
    if (key == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    unsigned char *der = NULL;
    unsigned char raw[32];
    size_t rawlen = sizeof raw;
    int derlen = 0;
    pg_buf v;
    pg_buf_init(&v);
    if (key->alg == PIGEON_DKIM_ED25519_SHA256) {
        /* RFC 8463 4: p= is the 32-byte public key itself, not a SubjectPublicKeyInfo. */
        if (EVP_PKEY_get_raw_public_key(key->pkey, raw, &rawlen) != 1)
            return PIGEON_ERR_INVALID;
        pg_buf_puts(&v, "v=DKIM1; k=ed25519; p=");
        pg_b64_encode(&v, raw, rawlen);
    } else {
        /* RFC 6376 3.6.1: an RSA p= is the DER SubjectPublicKeyInfo. */
        if ((derlen = i2d_PUBKEY(key->pkey, &der)) <= 0)
            return PIGEON_ERR_INVALID;
        pg_buf_puts(&v, "v=DKIM1; k=rsa; p=");
        pg_b64_encode(&v, der, (size_t)derlen);
        OPENSSL_free(der);
    }
    if (v.err != PIGEON_OK) {
        pg_buf_cleanup(&v);
        return PIGEON_ERR_NOMEM;
    }
    *out = pg_buf_detach(&v, NULL);
    return PIGEON_OK;
}

pigeon_dkim_alg pigeon_dkim_key_alg(const pigeon_dkim_key *key)
{
    return key != NULL ? key->alg : PIGEON_DKIM_RSA_SHA256;
}

unsigned pigeon_dkim_key_bits(const pigeon_dkim_key *key)
{
    return key != NULL ? key->bits : 0;
}

const char *pigeon_dkim_alg_name(pigeon_dkim_alg alg)
{
    return alg == PIGEON_DKIM_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

void pigeon_dkim_key_free(pigeon_dkim_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    OPENSSL_clear_free(key, sizeof *key);
}

pigeon_err pigeon_dkim_key_dup(const pigeon_dkim_key *key, pigeon_dkim_key **out)
{
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (key == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_dkim_key *k = malloc(sizeof *k);
    if (k == NULL)
        return PIGEON_ERR_NOMEM;
    *k = *key;
    if (EVP_PKEY_up_ref(k->pkey) != 1) {
        free(k);
        return PIGEON_ERR_NOMEM;
    }
    *out = k;
    return PIGEON_OK;
}

int pigeon_dkim_domain_covers(const char *parent, const char *child)
{
    if (parent == NULL || child == NULL || parent[0] == '\0')
        return 0;
    size_t pl = strlen(parent), cl = strlen(child);
    if (pl > 0 && parent[pl - 1] == '.')
        pl--;
    if (cl > 0 && child[cl - 1] == '.')
        cl--;
    if (pl > cl || strncasecmp(child + cl - pl, parent, pl) != 0)
        return 0;
    return pl == cl || child[cl - pl - 1] == '.';
}
