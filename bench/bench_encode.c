/*
 * bench_encode.c - throughput of the transfer encoders beside OpenSSL, same data, same
 * process: base64 (raw, and wrapped at 76 columns through the streaming encoder) against
 * EVP_EncodeBlock and EVP_EncodeUpdate, and quoted-printable, on 64 MiB of random bytes
 * and 64 MiB of mostly-ASCII text. One line per encoder: MB/s (10^6 input bytes per
 * second, best of interleaved rounds) and the ratio to EVP_EncodeBlock on the same data.
 *
 *   bench_encode [MiB]     (default 64)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "codec/encode.h"

#define RUNS  5
#define CHUNK (64 * 1024) /* streaming chunk, as a body would arrive from a file */

/* One data set and its reference speed. */
typedef struct dataset {
    const char *name;     /* "random" or "mostly-ascii" */
    uint8_t *data;        /* the input */
    size_t len;           /* its length */
    double evp_block_mbs; /* EVP_EncodeBlock on it, the ratio's denominator */
} dataset;

typedef void (*encoder_fn)(const dataset *ds, void *scratch);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng() >> 24);
}

/* Text lines of 40..90 characters ending in CRLF; about 2% of characters are UTF-8
 * accented letters (the "mostly" in mostly-ASCII). */
static void fill_text(uint8_t *p, size_t n)
{
    static const char words[] = "the quick brown fox jumps over a lazy dog while mail flows ";
    size_t i = 0, col = 0, limit = 40 + rng() % 50;
    while (i < n) {
        if (col >= limit && i + 2 <= n) {
            p[i++] = '\r';
            p[i++] = '\n';
            col = 0;
            limit = 40 + rng() % 50;
        } else if (rng() % 100 < 1 && i + 2 <= n) {
            p[i++] = 0xc3;
            p[i++] = 0xa9;
            col++;
        } else {
            p[i] = (uint8_t)words[(i * 7 + col) % (sizeof words - 1)];
            i++;
            col++;
        }
    }
}

static void run_evp_block(const dataset *ds, void *scratch)
{
    EVP_EncodeBlock(scratch, ds->data, (int)ds->len);
}

static void run_pg_raw(const dataset *ds, void *scratch)
{
    pg_b64_encode_raw(ds->data, ds->len, scratch);
}

/* OpenSSL's streaming, wrapped encoder (64 columns, LF) fed in chunks. */
static void run_evp_update(const dataset *ds, void *scratch)
{
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    unsigned char *out = scratch;
    int outl = 0;
    EVP_EncodeInit(ctx);
    for (size_t off = 0; off < ds->len; off += CHUNK) {
        size_t take = ds->len - off < CHUNK ? ds->len - off : CHUNK;
        EVP_EncodeUpdate(ctx, out, &outl, ds->data + off, (int)take);
    }
    EVP_EncodeFinal(ctx, out, &outl);
    EVP_ENCODE_CTX_free(ctx);
}

/* Ours, wrapped at 76 with CRLF, fed in chunks; the output buffer is drained after each
 * chunk as a writer to a socket would, so memory stays bounded. */
static void run_pg_stream(const dataset *ds, void *scratch)
{
    (void)scratch;
    pg_b64_stream st;
    pg_buf out;
    pg_buf_init(&out);
    pg_b64_stream_init(&st, 76);
    for (size_t off = 0; off < ds->len; off += CHUNK) {
        size_t take = ds->len - off < CHUNK ? ds->len - off : CHUNK;
        pg_b64_stream_update(&st, &out, ds->data + off, take);
        pg_buf_reset(&out);
    }
    pg_b64_stream_final(&st, &out);
    pg_buf_cleanup(&out);
}

static void run_pg_qp(const dataset *ds, void *scratch)
{
    pg_buf *out = scratch;
    pg_buf_reset(out);
    pg_qp_encode(out, (const char *)ds->data, ds->len);
}

/* The encoders timed on each data set, in report order. */
static const struct {
    const char *name; /* what the report line says */
    encoder_fn fn;    /* runs it once over the whole data set */
    int qp;           /* takes the pg_buf scratch instead of the raw one */
} encoders[] = {
    {"base64 EVP_EncodeBlock (OpenSSL, unwrapped)", run_evp_block, 0},
    {"base64 pg_b64_encode_raw (unwrapped)", run_pg_raw, 0},
    {"base64 EVP_EncodeUpdate (OpenSSL, 64 col)", run_evp_update, 0},
    {"base64 pg_b64_stream (76 col CRLF, chunks)", run_pg_stream, 0},
    {"quoted-printable pg_qp_encode", run_pg_qp, 1},
};
#define NENCODERS (sizeof encoders / sizeof encoders[0])

/* Best time of each encoder over RUNS rounds; each round runs every encoder once, so a
 * busy machine slows them alike and the ratios stay fair. Returns MB/s in mbs[]. */
static void measure_all(const dataset *ds, void *scratch, pg_buf *qp_out, double *mbs)
{
    double best[NENCODERS];
    for (size_t e = 0; e < NENCODERS; e++)
        best[e] = 1e30;
    for (int r = 0; r < RUNS; r++) {
        for (size_t e = 0; e < NENCODERS; e++) {
            double t0 = now();
            encoders[e].fn(ds, encoders[e].qp ? (void *)qp_out : scratch);
            double t = now() - t0;
            if (t < best[e])
                best[e] = t;
        }
    }
    for (size_t e = 0; e < NENCODERS; e++)
        mbs[e] = (double)ds->len / 1e6 / best[e];
}

static void report(const char *encoder, const dataset *ds, double mbs)
{
    printf("%-44s %-13s %9.1f MB/s  %5.2fx EVP_EncodeBlock\n", encoder, ds->name, mbs,
           mbs / ds->evp_block_mbs);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    if (mib == 0 || mib > 1024) {
        fprintf(stderr, "usage: %s [MiB (1..1024)]\n", argv[0]);
        return 2;
    }
    size_t len = mib << 20;
    dataset sets[2] = {{"random", malloc(len), len, 0}, {"mostly-ascii", malloc(len), len, 0}};
    char *scratch = malloc(len / 3 * 4 + len / 48 * 2 + 1024);
    pg_buf qp_out;
    pg_buf_init(&qp_out);
    if (sets[0].data == NULL || sets[1].data == NULL || scratch == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    fill_random(sets[0].data, len);
    fill_text(sets[1].data, len);
    /* Fault the output pages in and let the clock settle before the first timing. */
    memset(scratch, 0, len / 3 * 4 + len / 48 * 2 + 1024);
    run_evp_block(&sets[0], scratch);
    printf("bench_encode: %zu MiB per data set, best of %d runs\n", mib, RUNS);
    for (int i = 0; i < 2; i++) {
        double mbs[NENCODERS];
        measure_all(&sets[i], scratch, &qp_out, mbs);
        sets[i].evp_block_mbs = mbs[0]; /* encoders[0] is EVP_EncodeBlock */
        for (size_t e = 0; e < NENCODERS; e++)
            report(encoders[e].name, &sets[i], mbs[e]);
    }
    pg_buf_cleanup(&qp_out);
    free(scratch);
    free(sets[0].data);
    free(sets[1].data);
    return 0;
}
