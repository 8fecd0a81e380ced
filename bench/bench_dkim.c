/*
 * bench_dkim.c - the cost of DKIM-signing the shared 7.4 KB sample (bench/sample.h) beside
 * the bare OpenSSL signing of the same key type, same process, in two forms: the signature
 * of a 32-byte digest alone (what `openssl speed rsa2048|ed25519` times), and SHA-256 over
 * the whole message followed by that signature (what `openssl dgst -sha256 -sign` does:
 * the least any DKIM signer must do, since DKIM hashes the whole body). pigeon's figure
 * includes everything: header block kept, body canonicalized and hashed, h= chosen, header
 * canonicalized and hashed, the signature, the field folded. Times are CPU time of the
 * process (as `openssl speed` reports), so that other load on the machine does not count.
 *
 *   bench_dkim [SECONDS]          signatures/s and the ratios of costs (default 2 s each)
 *   bench_dkim --pigeon SECONDS   pigeon's signatures/s alone, per key type (bench/dkim.sh)
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

/* Alternated rounds per figure. */
#define ROUNDS 5

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

/*
 * Signatures per second of bare OpenSSL, its contexts made once (as `openssl speed` does):
 *  - whole == 0: one signature of a 32-byte digest, what `openssl speed` times;
 *  - whole != 0: SHA-256 over the whole message, then the signature of that digest: the
 *    least any DKIM signer of this message must do (RSA: what `openssl dgst -sha256 -sign`
 *    does; Ed25519: DKIM signs a SHA-256 digest, RFC 8463 3, so the same hash-then-sign).
 */
static double openssl_rate(const pigeon_dkim_key *key, const char *msg, size_t len, int whole,
                           double secs)
{
    unsigned char digest[32] = {1, 2, 3}, sig[512];
    long n = 0;
    double start = now(), t;
    int rsa = key->alg == PIGEON_DKIM_RSA_SHA256;
    EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *hash = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = rsa ? EVP_PKEY_CTX_new(key->pkey, NULL) : NULL;
    EVP_MD_CTX *md = rsa ? NULL : EVP_MD_CTX_new();
    if (rsa && (EVP_PKEY_sign_init(pctx) != 1 || EVP_PKEY_CTX_set_signature_md(pctx, sha256) != 1))
        return 0;
    if (!rsa && EVP_DigestSignInit(md, NULL, NULL, NULL, key->pkey) != 1)
        return 0;
    do {
        size_t sl = sizeof sig;
        unsigned dl = 0;
        if (whole &&
            (EVP_DigestInit_ex(hash, sha256, NULL) != 1 || EVP_DigestUpdate(hash, msg, len) != 1 ||
             EVP_DigestFinal_ex(hash, digest, &dl) != 1))
            return 0;
        if (rsa) {
            EVP_PKEY_sign(pctx, sig, &sl, digest, sizeof digest);
        } else {
            EVP_DigestSign(md, sig, &sl, digest, sizeof digest);
        }
        n++;
    } while ((t = now() - start) < secs);
    EVP_PKEY_CTX_free(pctx);
    EVP_MD_CTX_free(md);
    EVP_MD_CTX_free(hash);
    EVP_MD_free(sha256);
    return (double)n / t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
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
    if (argc == 3 && strcmp(argv[1], "--pigeon") == 0) { /* one round beside the peers */
        double secs = atof(argv[2]) > 0 ? atof(argv[2]) : 1.0;
        printf("rsa-2048 %.0f\ned25519 %.0f\n", pigeon_rate(keys[0], msg, len, secs),
               pigeon_rate(keys[1], msg, len, secs));
        return 0;
    }
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    if (secs <= 0)
        secs = 2.0;
    printf("message: %zu bytes (bench/sample.h), relaxed/relaxed, %.1f s per figure, medians of "
           "%d alternated rounds\n",
           len, secs, ROUNDS);
    printf("openssl/digest: one signature of a 32-byte digest (openssl speed); openssl/message: "
           "SHA-256 of the\nwhole message, then that signature (openssl dgst -sha256 -sign)\n");
    printf("%-10s %12s %15s %16s %11s %11s\n", "key", "pigeon sig/s", "openssl/digest",
           "openssl/message", "vs digest", "vs message");
    for (int i = 0; i < 2; i++) {
        /* Alternated rounds, the ratio of each round's pair, the median: the machine is
         * shared, and a pair measured side by side shares its moment's load. */
        double p[ROUNDS], od[ROUNDS], om[ROUNDS], rd[ROUNDS], rm[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            p[r] = pigeon_rate(keys[i], msg, len, secs / ROUNDS);
            od[r] = openssl_rate(keys[i], msg, len, 0, secs / ROUNDS);
            om[r] = openssl_rate(keys[i], msg, len, 1, secs / ROUNDS);
            rd[r] = p[r] > 0 ? od[r] / p[r] : 0;
            rm[r] = p[r] > 0 ? om[r] / p[r] : 0;
        }
        printf("%-10s %12.0f %15.0f %16.0f %10.3fx %10.3fx\n", i == 0 ? "rsa-2048" : "ed25519",
               median(p, ROUNDS), median(od, ROUNDS), median(om, ROUNDS), median(rd, ROUNDS),
               median(rm, ROUNDS));
    }
    pigeon_dkim_key_free(keys[0]);
    pigeon_dkim_key_free(keys[1]);
    free(msg);
    return 0;
}
