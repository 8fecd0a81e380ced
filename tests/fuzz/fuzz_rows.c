/*
 * fuzz_rows.c - libFuzzer target for the merge-list reader (lib/template/rows.c), CSV and
 * JSON Lines, fed in small reads so records cross chunk boundaries.
 *
 * Invariants: no out-of-bounds access or leak (ASan); rows are objects; line numbers
 * never go backwards; every bad row has a reason; a final error stays final; the reader
 * ends (bounded number of calls).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/template.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    pigeon_rows_format fmt = (data[0] & 1) ? PIGEON_ROWS_JSONL : PIGEON_ROWS_CSV;
    feed f = {data + 1, size - 1, 0, (size_t)(data[0] >> 1) + 1};
    pigeon_rows *r = pigeon_rows_new(fmt, feed_read, &f);
    if (r == NULL)
        return 0;
    unsigned long last = 0;
    for (size_t calls = 0; calls <= size + 2; calls++) {
        const pigeon_vars *row = NULL;
        unsigned long line = 0;
        pigeon_err e = pigeon_rows_next(r, &row, &line);
        if (e == PIGEON_ERR_CORRUPT || e == PIGEON_ERR_IO || e == PIGEON_ERR_NOMEM) {
            if (pigeon_rows_next(r, &row, &line) == PIGEON_OK)
                abort();
            break;
        }
        if (e != PIGEON_OK) {
            if (pigeon_rows_error(r)[0] == '\0' || row != NULL)
                abort();
        } else if (row == NULL) {
            break;
        } else if (pigeon_vars_type(row) != PIGEON_VAR_OBJECT) {
            abort();
        }
        if (line != 0 && line < last)
            abort();
        if (line != 0)
            last = line;
        if (calls == size + 2)
            abort(); /* more rows than bytes: the reader does not end */
    }
    pigeon_rows_free(r);
    return 0;
}
