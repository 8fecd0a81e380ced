/*
 * fuzz_suppress_csv.c - libFuzzer target for the suppression list's import format
 * (lib/spool/spool_suppress_csv.c) and address normalization (spool_suppress.c).
 *
 * The first byte picks the mode:
 *  - even: each line of the rest is parsed as one CSV record; a record that parses is
 *    written back with pigeon_suppress_csv_format and parsed again, and must give the
 *    same fields (RFC 4180 quoting round trip); its first field is normalized (twice:
 *    normalizing a normal form changes nothing).
 *  - odd: the rest is imported into a scratch spool in small reads (records crossing
 *    read boundaries); a failure names a line within the input and stores nothing.
 * Invariants beyond those: no out-of-bounds access or leak (ASan), no UB (UBSan).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pigeon/suppress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct feed {
    const uint8_t *data; /* the input */
    size_t size, at;     /* its size, bytes given */
    size_t step;         /* most bytes per read */
} feed;

static int feed_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    feed *f = ctx;
    size_t k = f->size - f->at;
    if (k > cap)
        k = cap;
    if (k > f->step)
        k = f->step;
    memcpy(buf, f->data + f->at, k);
    f->at += k;
    *n = k;
    return 0;
}

static void check_normalize(const char *address)
{
    char a[PIGEON_SUPPRESS_ADDR_MAX + 1], b[PIGEON_SUPPRESS_ADDR_MAX + 1];
    if (pigeon_suppress_normalize(address, 0, a, sizeof a, NULL, 0) != PIGEON_OK)
        return;
    if (pigeon_suppress_normalize(a, 0, b, sizeof b, NULL, 0) != PIGEON_OK || strcmp(a, b) != 0)
        abort();
}

static void round_trip(const pigeon_suppress_csv_row *row)
{
    pigeon_suppress_entry e = {0};
    const char *const *f = row->fields;
    /* Only the text fields go back verbatim (reason and time are formatted). */
    e.address = f[0];
    e.account = f[1] && f[1][0] ? f[1] : "*";
    e.reason = PIGEON_SUPPRESS_MANUAL;
    e.status = f[3];
    e.diagnostic = f[4];
    e.queue_id = f[5];
    size_t need = pigeon_suppress_csv_format(&e, NULL, 0) + 1;
    char *line = malloc(need), *scratch = malloc(need + 8);
    if (line == NULL || scratch == NULL || pigeon_suppress_csv_format(&e, line, need) + 1 != need)
        abort();
    pigeon_suppress_csv_row back;
    if (pigeon_suppress_csv_parse(line, need - 3, scratch, need + 8, &back, NULL, 0) != PIGEON_OK ||
        back.nfields != 7 || strcmp(back.fields[0], e.address) != 0 ||
        strcmp(back.fields[4], e.diagnostic ? e.diagnostic : "") != 0)
        abort();
    free(line);
    free(scratch);
}

static void parse_lines(const uint8_t *data, size_t size)
{
    char *scratch = malloc(size + 8);
    if (scratch == NULL)
        return;
    for (size_t at = 0; at <= size;) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t len = nl != NULL ? (size_t)(nl - (data + at)) : size - at;
        pigeon_suppress_csv_row row;
        char why[128];
        pigeon_err e = pigeon_suppress_csv_parse((const char *)data + at, len, scratch, size + 8,
                                                 &row, why, sizeof why);
        if (e == PIGEON_OK) {
            if (row.nfields < 1 || row.nfields > 7)
                abort();
            check_normalize(row.fields[0]);
            round_trip(&row);
        } else if (e != PIGEON_ERR_INVALID || why[0] == '\0') {
            abort();
        }
        at += len + 1;
    }
    free(scratch);
}

static pigeon_spool *s; /* the scratch spool, opened once */
static char path[64];   /* its file */

/* The scratch spool goes with the process. */
static void remove_spool(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[80];
    pigeon_spool_close(s);
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
}

static pigeon_spool *scratch_spool(void)
{
    if (s == NULL) {
        snprintf(path, sizeof path, "/tmp/fuzz-suppress-%d.db", (int)getpid());
        if (pigeon_spool_open(path,
                              PIGEON_SPOOL_CREATE | PIGEON_SPOOL_NO_CHECK | PIGEON_SPOOL_DEFER_SYNC,
                              &s, NULL, 0) != PIGEON_OK)
            abort();
        atexit(remove_spool);
    }
    return s;
}

static void import(const uint8_t *data, size_t size, size_t step)
{
    pigeon_spool *spool = scratch_spool();
    feed f = {data, size, 0, step};
    size_t count = 0, bad = 0, lines = 1;
    char why[256];
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    pigeon_suppress_entry d = {"fuzz", NULL, PIGEON_SUPPRESS_NONE, NULL, NULL, NULL, 1};
    pigeon_err e = pigeon_suppress_import(spool, feed_read, &f, &d, &count, &bad, why, sizeof why);
    if (e != PIGEON_OK && (count != 0 || bad > lines || why[0] == '\0'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    if (data[0] & 1)
        import(data + 1, size - 1, 1 + data[0] / 2);
    else
        parse_lines(data + 1, size - 1);
    return 0;
}
