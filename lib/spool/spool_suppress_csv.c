/*
 * spool_suppress_csv.c - the suppression list's import and export format: CSV as RFC 4180
 * 2 describes it (fields separated by commas, a field with a comma, a quote or a line
 * break in double quotes, a quote inside doubled; records end in CRLF, LF accepted).
 *
 * The parser is a pure core on (buf, len) (fuzzed by tests/fuzz/fuzz_suppress_csv.c); the
 * import reads a stream record by record in bounded memory and stores every record in one
 * spool transaction, so that a bad line stores nothing.
 */
#include "pigeon/suppress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spool/spool_backend.h"
#include "spool/spool_suppress.h"

#define MAX_RECORD (8 * 1024) /* octets of one record on import */
#define NFIELDS    7

static void set_why(char *why, size_t whylen, const char *fmt, size_t at)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, fmt, at);
}

/* One quoted field from line[*i] (at the opening quote) into out; *i past the closing one. */
static pigeon_err quoted(const char *line, size_t len, size_t *i, char **out, char *why,
                         size_t whylen)
{
    size_t p = *i + 1;
    for (;;) {
        if (p >= len) {
            set_why(why, whylen, "a quote opened at column %zu is never closed", *i + 1);
            return PIGEON_ERR_INVALID;
        }
        unsigned char c = (unsigned char)line[p];
        if (c == '"') {
            if (p + 1 < len && line[p + 1] == '"') {
                *(*out)++ = '"';
                p += 2;
                continue;
            }
            *i = p + 1;
            return PIGEON_OK;
        }
        /* RFC 4180 2.6: line breaks may be quoted; other controls are refused. */
        if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f) {
            set_why(why, whylen, "a control character at column %zu", p + 1);
            return PIGEON_ERR_INVALID;
        }
        *(*out)++ = (char)c;
        p++;
    }
}

/* One unquoted field from line[*i] to the next comma, spaces around it trimmed. */
static pigeon_err bare(const char *line, size_t len, size_t *i, char **out, char *why,
                       size_t whylen)
{
    size_t p = *i;
    while (p < len && line[p] == ' ')
        p++;
    char *start = *out;
    for (; p < len && line[p] != ','; p++) {
        unsigned char c = (unsigned char)line[p];
        if (c == '"') {
            set_why(why, whylen, "a stray quote at column %zu", p + 1);
            return PIGEON_ERR_INVALID;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            set_why(why, whylen, "a control character at column %zu", p + 1);
            return PIGEON_ERR_INVALID;
        }
        *(*out)++ = (char)c;
    }
    while (*out > start && (*out)[-1] == ' ')
        (*out)--;
    *i = p;
    return PIGEON_OK;
}

pigeon_err pigeon_suppress_csv_parse(const char *line, size_t len, char *scratch, size_t cap,
                                     pigeon_suppress_csv_row *row, char *why, size_t whylen)
{
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if ((line == NULL && len > 0) || scratch == NULL || row == NULL || cap < len + NFIELDS + 1)
        return PIGEON_ERR_INVALID;
    memset(row, 0, sizeof *row);
    char *out = scratch;
    size_t i = 0;
    for (;;) {
        if (row->nfields == NFIELDS) {
            set_why(why, whylen, "more than 7 fields (column %zu)", i);
            return PIGEON_ERR_INVALID;
        }
        row->fields[row->nfields++] = out;
        size_t p = i;
        while (p < len && line[p] == ' ')
            p++;
        pigeon_err err = (p < len && line[p] == '"')
                             ? (i = p, quoted(line, len, &i, &out, why, whylen))
                             : bare(line, len, &i, &out, why, whylen);
        if (err != PIGEON_OK)
            return err;
        *out++ = '\0';
        while (i < len && line[i] == ' ')
            i++;
        if (i >= len)
            return PIGEON_OK;
        if (line[i] != ',') {
            set_why(why, whylen, "text after a closing quote at column %zu", i + 1);
            return PIGEON_ERR_INVALID;
        }
        i++;
    }
}

/* Appends s to out as a CSV field, quoted when it must be. Returns the octets it needs. */
static size_t field(const char *s, char *out, size_t size, size_t at)
{
    s = s != NULL ? s : "";
    int quote =
        s[0] == ' ' || (s[0] != '\0' && s[strlen(s) - 1] == ' ') || strpbrk(s, ",\"\r\n") != NULL;
    size_t n = at;
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (n + 1 < size)                                                                          \
            out[n] = (c);                                                                          \
        n++;                                                                                       \
    } while (0)
    if (quote)
        PUT('"');
    for (; *s != '\0'; s++) {
        if (*s == '"')
            PUT('"');
        PUT(*s);
    }
    if (quote)
        PUT('"');
#undef PUT
    return n;
}

size_t pigeon_suppress_csv_format(const pigeon_suppress_entry *e, char *out, size_t size)
{
    char created[24];
    if (e == NULL)
        return 0;
    snprintf(created, sizeof created, "%lld", (long long)e->created_ms);
    const char *acc = (e->account == NULL || e->account[0] == '\0') ? "*" : e->account;
    const char *f[NFIELDS] = {e->address, acc,           pigeon_suppress_reason_name(e->reason),
                              e->status,  e->diagnostic, e->queue_id,
                              created};
    size_t n = 0;
    for (size_t i = 0; i < NFIELDS; i++) {
        if (i > 0) {
            if (n + 1 < size)
                out[n] = ',';
            n++;
        }
        n = field(f[i], out, size, n);
    }
    if (n + 2 < size) {
        out[n] = '\r';
        out[n + 1] = '\n';
    }
    n += 2;
    if (size > 0)
        out[n < size ? n : size - 1] = '\0';
    return n;
}

/* ---- import ---- */

/* The reader's state: a window over the stream. */
typedef struct importer {
    pigeon_read_fn read; /* the stream */
    void *ctx;           /* its context */
    char buf[2 * MAX_RECORD];
    size_t start, end; /* unconsumed octets are buf[start, end) */
    int eof;           /* the stream reported its end */
    size_t line;       /* physical line number of the next record, from 1 */
} importer;

/* The next record: *rec and *len (line break excluded), *lines the physical lines it
 * spans. 0 at the end, -1 for a read error, -2 for a record over MAX_RECORD. */
static int next_record(importer *im, const char **rec, size_t *len, size_t *lines)
{
    for (;;) {
        int inq = 0;
        size_t nl = 0;
        for (size_t p = im->start; p < im->end; p++) {
            char c = im->buf[p];
            if (c == '"')
                inq = !inq;
            else if (c == '\n' && inq)
                nl++;
            else if (c == '\n') {
                *rec = im->buf + im->start;
                *len = p - im->start;
                if (*len > 0 && (*rec)[*len - 1] == '\r')
                    (*len)--;
                *lines = nl + 1;
                im->start = p + 1;
                return 1;
            }
            if (p - im->start >= MAX_RECORD)
                return -2;
        }
        if (im->eof) {
            if (im->start == im->end)
                return 0;
            *rec = im->buf + im->start;
            *len = im->end - im->start;
            *lines = nl + 1;
            im->start = im->end;
            return 1;
        }
        memmove(im->buf, im->buf + im->start, im->end - im->start);
        im->end -= im->start;
        im->start = 0;
        size_t got = 0;
        if (im->read(im->ctx, im->buf + im->end, sizeof im->buf - im->end, &got) != 0)
            return -1;
        im->end += got;
        im->eof = got == 0;
    }
}

/* A created time: digits only, or the default when empty. */
static int parse_ms(const char *s, int64_t dflt, int64_t *out)
{
    if (s == NULL || s[0] == '\0') {
        *out = dflt;
        return 1;
    }
    int64_t v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 1;
}

/* Strips one pair of angle brackets around an address (exports of other tools). */
static const char *unangle(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
        s[n - 1] = '\0';
        return s + 1;
    }
    return s;
}

/* Stores one parsed row; a soft-bounce row is stored as a suppression. */
static pigeon_err import_row(pigeon_spool *spool, pigeon_suppress_csv_row *row,
                             const pigeon_suppress_entry *d, char *why, size_t whylen)
{
    const char *const *f = row->fields;
    pigeon_suppress_entry e = *d;
    if (e.reason == PIGEON_SUPPRESS_NONE)
        e.reason = PIGEON_SUPPRESS_MANUAL;
    e.address = unangle((char *)f[0]);
    if (f[1] != NULL && f[1][0] != '\0')
        e.account = f[1];
    if (f[2] != NULL && f[2][0] != '\0' &&
        pigeon_suppress_reason_parse(f[2], &e.reason) != PIGEON_OK) {
        snprintf(why, whylen, "unknown reason \"%.40s\"", f[2]);
        return PIGEON_ERR_INVALID;
    }
    e.status = f[3];
    e.diagnostic = f[4];
    e.queue_id = f[5];
    if (!parse_ms(f[6], d->created_ms, &e.created_ms)) {
        snprintf(why, whylen, "bad created time \"%.40s\"", f[6]);
        return PIGEON_ERR_INVALID;
    }
    /* A soft-bounce row of an export is a suppression already: a limit of 1 lists it. */
    pigeon_suppress_policy once = {1, 1};
    pigeon_err err = pigeon_suppress_add(spool, &e, &once, NULL);
    if (err != PIGEON_OK)
        snprintf(why, whylen, "%s", pigeon_spool_error(spool));
    return err;
}

/* Whether a parsed record is the header line or carries nothing. */
static int skip_row(const char *rec, size_t len, const pigeon_suppress_csv_row *row)
{
    if (len == 0 || rec[0] == '#')
        return 1;
    if (row->nfields == 1 && row->fields[0][0] == '\0')
        return 1;
    return strcasecmp(row->fields[0], "address") == 0;
}

static pigeon_err import_all(pigeon_spool *spool, importer *im, const pigeon_suppress_entry *d,
                             size_t *count, size_t *bad_line, char *why, size_t whylen)
{
    char *tmp = malloc(MAX_RECORD + NFIELDS + 1);
    if (tmp == NULL)
        return PIGEON_ERR_NOMEM;
    pigeon_err err = PIGEON_OK;
    const char *rec = NULL;
    size_t len = 0, lines = 0;
    int r;
    while ((r = next_record(im, &rec, &len, &lines)) == 1) {
        pigeon_suppress_csv_row row;
        *bad_line = im->line;
        im->line += lines;
        err = pigeon_suppress_csv_parse(rec, len, tmp, MAX_RECORD + NFIELDS + 1, &row, why, whylen);
        if (err == PIGEON_OK && !skip_row(rec, len, &row)) {
            err = import_row(spool, &row, d, why, whylen);
            *count += err == PIGEON_OK;
        }
        if (err != PIGEON_OK)
            break;
    }
    free(tmp);
    if (err == PIGEON_OK && r < 0) {
        *bad_line = im->line;
        snprintf(why, whylen, "%s", r == -1 ? "reading the input failed" : "a line over 8 KiB");
        err = r == -1 ? PIGEON_ERR_IO : PIGEON_ERR_TOO_LARGE;
    }
    if (err == PIGEON_OK)
        *bad_line = 0;
    return err;
}

pigeon_err pigeon_suppress_import(pigeon_spool *spool, pigeon_read_fn read, void *ctx,
                                  const pigeon_suppress_entry *defaults, size_t *count,
                                  size_t *bad_line, char *why, size_t whylen)
{
    char whybuf[256];
    size_t n = 0, bad = 0;
    if (why == NULL || whylen == 0) {
        why = whybuf;
        whylen = sizeof whybuf;
    }
    why[0] = '\0';
    if (count != NULL)
        *count = 0;
    if (bad_line != NULL)
        *bad_line = 0;
    if (spool == NULL || read == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_suppress_entry d = {0};
    if (defaults != NULL)
        d = *defaults;
    importer *im = calloc(1, sizeof *im);
    if (im == NULL)
        return PIGEON_ERR_NOMEM;
    im->read = read;
    im->ctx = ctx;
    im->line = 1;
    pigeon_err err = pigeon_spool_begin(spool);
    if (err == PIGEON_OK) {
        err = import_all(spool, im, &d, &n, &bad, why, whylen);
        pigeon_err end =
            err == PIGEON_OK ? pigeon_spool_commit(spool) : pigeon_spool_rollback(spool);
        if (err == PIGEON_OK && end != PIGEON_OK) {
            err = end;
            snprintf(why, whylen, "%s", pigeon_spool_error(spool));
            n = 0;
        }
    } else {
        snprintf(why, whylen, "%s", pigeon_spool_error(spool));
    }
    free(im);
    if (err != PIGEON_OK)
        n = 0;
    if (count != NULL)
        *count = n;
    if (bad_line != NULL)
        *bad_line = bad;
    return err;
}
