/*
 * bench_dkim.c - the cost of DKIM-signing the shared 7.4 KB sample (bench/sample.h) beside
 * the bare OpenSSL signature of the same key type, same process: RSA-2048 (PKCS#1 v1.5 of
 * a SHA-256 digest, what `openssl speed rsa2048` times) and Ed25519 (one signature over a
 * 32-byte input, as DKIM's Ed25519 signs the header hash). pigeon's figure includes
 * everything: header block kept, body canonicalized and hashed, h= chosen, header
 * canonicalized and hashed, the signature, the field folded. Times are CPU time of the
 * process (as `openssl speed` reports), so that other load on the machine does not count.
 *
 *   bench_dkim [SECONDS]          signatures/s and the ratio of costs (default 2 s each)
 *   bench_dkim --write FILE KEYDIR   writes the sample message and the two keys (PEM) for
 *                                    the peers (bench/dkim.sh)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "dkim/dkim_key.h"
#include "pigeon/dkim.h"
#include "pigeon/message.h"
#include "sample.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *sample_message(size_t *len)
{
    pigeon_message *msg = pigeon_message_new();
    char *text = sample_text(), *html = sample_html(), *out = NULL;
    pigeon_message_set_from(msg, SAMPLE_FROM);
    pigeon_message_add_to(msg, SAMPLE_TO);
    pigeon_message_set_subject(msg, SAMPLE_SUBJECT);
    pigeon_message_set_text(msg, text, (size_t)-1);
    pigeon_message_set_html(msg, html, (size_t)-1);
    if (pigeon_message_write_buffer(msg, NULL, &out, len) != PIGEON_OK)
        out = NULL;
    pigeon_message_free(msg);
    free(text);
    free(html);
    return out;
}

/* Signatures per second of pigeon's signer over msg. */
static double pigeon_rate(const pigeon_dkim_key *key, const char *msg, size_t len, double secs)
{
    pigeon_dkim_opts o;
    memset(&o, 0, sizeof o);
    o.domain = "example.com";
    o.selector = "bench";
    o.key = key;
    pigeon_dkim_signer *s = NULL;
    if (pigeon_dkim_signer_new(&o, &s, NULL, 0) != PIGEON_OK)
        return 0;
    long n = 0;
    double start = now(), t;
    do {
        char *fields = NULL;
        size_t fl = 0;
        pigeon_dkim_signer_update(s, msg, len);
        if (pigeon_dkim_signer_final(s, 1700000000, &fields, &fl) != PIGEON_OK)
            return 0;
        free(fields);
        n++;
    } while ((t = now() - start) < secs);
    pigeon_dkim_signer_free(s);
    return (double)n / t;
}

/* Signatures per second of bare OpenSSL: one signature of a 32-byte digest. */
static double openssl_rate(const pigeon_dkim_key *key, double secs)
{
    unsigned char digest[32] = {1, 2, 3}, sig[512];
    long n = 0;
    double start = now(), t;
    int rsa = key->alg == PIGEON_DKIM_RSA_SHA256;
    EVP_PKEY_CTX *pctx = rsa ? EVP_PKEY_CTX_new(key->pkey, NULL) : NULL;
    /* As `openssl speed` does: the context is made once, then signs in a loop. */
    EVP_MD_CTX *md = rsa ? NULL : EVP_MD_CTX_new();
    if (rsa &&
        (EVP_PKEY_sign_init(pctx) != 1 || EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) != 1))
        return 0;
    if (!rsa && EVP_DigestSignInit(md, NULL, NULL, NULL, key->pkey) != 1)
        return 0;
    do {
        size_t sl = sizeof sig;
        if (rsa) {
            EVP_PKEY_sign(pctx, sig, &sl, digest, sizeof digest);
        } else {
            EVP_DigestSign(md, sig, &sl, digest, sizeof digest);
        }
        n++;
    } while ((t = now() - start) < secs);
    EVP_PKEY_CTX_free(pctx);
    EVP_MD_CTX_free(md);
    return (double)n / t;
}

static int write_files(const char *msgpath, const char *keydir, const char *msg, size_t len,
                       pigeon_dkim_key *const keys[2])
{
    static const char *const names[] = {"rsa.pem", "ed25519.pem"};
    FILE *f = fopen(msgpath, "wb");
    if (f == NULL || fwrite(msg, 1, len, f) != len || fclose(f) != 0)
        return 1;
    for (int i = 0; i < 2; i++) {
        char path[1024], *pem = NULL, *txt = NULL;
        size_t pl = 0;
        snprintf(path, sizeof path, "%s/%s", keydir, names[i]);
        if (pigeon_dkim_key_private_pem(keys[i], &pem, &pl) != PIGEON_OK ||
            (f = fopen(path, "wb")) == NULL)
            return 1;
        fwrite(pem, 1, pl, f);
        fclose(f);
        free(pem);
        snprintf(path, sizeof path, "%s/%s.txt", keydir, names[i]);
        if (pigeon_dkim_key_dns_value(keys[i], &txt) != PIGEON_OK || (f = fopen(path, "w")) == NULL)
            return 1;
        fputs(txt, f);
        fclose(f);
        free(txt);
    }
    /* dkimpy reads an Ed25519 key as the base64 of its 32-byte seed. */
    unsigned char seed[32];
    size_t sl = sizeof seed;
    char b64[64], path[1024];
    if (EVP_PKEY_get_raw_private_key(keys[1]->pkey, seed, &sl) != 1)
        return 1;
    EVP_EncodeBlock((unsigned char *)b64, seed, 32);
    snprintf(path, sizeof path, "%s/ed25519.seed", keydir);
    if ((f = fopen(path, "w")) == NULL)
        return 1;
    fprintf(f, "%s\n", b64);
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    size_t len = 0;
    char *msg = sample_message(&len);
    pigeon_dkim_key *keys[2] = {NULL, NULL};
    if (msg == NULL ||
        pigeon_dkim_key_generate(PIGEON_DKIM_RSA_SHA256, 2048, &keys[0]) != PIGEON_OK ||
        pigeon_dkim_key_generate(PIGEON_DKIM_ED25519_SHA256, 0, &keys[1]) != PIGEON_OK) {
        fprintf(stderr, "bench_dkim: setup failed\n");
        return 1;
    }
    if (argc == 4 && strcmp(argv[1], "--write") == 0)
        return write_files(argv[2], argv[3], msg, len, keys);
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    if (secs <= 0)
        secs = 2.0;
    printf("message: %zu bytes (bench/sample.h), relaxed/relaxed, %.1f s per figure\n", len, secs);
    printf("%-16s %14s %14s %12s\n", "key", "pigeon sig/s", "openssl sig/s", "cost ratio");
    for (int i = 0; i < 2; i++) {
        /* Interleaved rounds, best of each: the machine is shared. */
        double p = 0, o = 0;
        for (int r = 0; r < 3; r++) {
            double pr = pigeon_rate(keys[i], msg, len, secs / 3);
            double orate = openssl_rate(keys[i], secs / 3);
            p = pr > p ? pr : p;
            o = orate > o ? orate : o;
        }
        printf("%-16s %14.0f %14.0f %11.3fx\n", i == 0 ? "rsa-2048" : "ed25519", p, o,
               p > 0 ? o / p : 0);
    }
    pigeon_dkim_key_free(keys[0]);
    pigeon_dkim_key_free(keys[1]);
    free(msg);
    return 0;
}
