/*
 * rows.c - the rows of a mail merge, streamed: RFC 4180 CSV with a header row, or JSON
 * Lines (one JSON object per line, https://jsonlines.org).
 *
 * CSV (RFC 4180 2): records end with CRLF (LF and a lone CR are accepted too); fields are
 * separated by commas; a field in double quotes may hold commas, line breaks and doubled
 * quotes. A leading UTF-8 byte order mark (what spreadsheets write) is skipped. Errors
 * are per record: a quote inside an unquoted field, text after a closing quote, a record
 * with more or fewer fields than the header, invalid UTF-8, a record over 1 MiB. The
 * parser reads on to the end of the bad record and the next call starts afresh, so one
 * bad row never hides the others. Blank lines are skipped.
 *
 * Memory: the input chunk, the current record and its row object; never the whole file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/vars.h"
#include "util/buf.h"
#include "util/utf8.h"

#define CHUNK       (64 * 1024)
#define RECORD_MAX  ((size_t)1 << 20)
#define COLUMNS_MAX 1024

/* Where the CSV scanner is within a record. */
typedef enum csv_state {
    CSV_FIELD_START, /* at the start of a field */
    CSV_UNQUOTED,    /* inside an unquoted field */
    CSV_QUOTED,      /* inside a quoted field */
    CSV_QUOTE,       /* just after a quote inside a quoted field: "" or the end */
} csv_state;

struct pigeon_rows {
    pigeon_rows_format format; /* CSV or JSON Lines */
    pigeon_read_fn read;       /* the input */
    void *ctx;                 /* for read */
    char chunk[CHUNK];         /* bytes read, not yet scanned */
    size_t have, at;           /* bytes in chunk, next to scan */
    int eof;                   /* read gave 0 */
    int started;               /* the BOM check is done */
    int failed;                /* a final error happened */
    unsigned long line;        /* the line of the next byte, from 1 */
    pg_buf record;             /* CSV: the current record's fields; JSONL: the line */
    size_t *ends;              /* CSV: offset in record just after each field */
    size_t nfields, fields_cap;
    char **header; /* CSV: the column names */
    size_t ncols;
    pigeon_vars *row; /* the last row returned (owned) */
    char error[256];  /* the last error */
};

pigeon_rows *pigeon_rows_new(pigeon_rows_format format, pigeon_read_fn read, void *ctx)
{
    pigeon_rows *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->format = format;
    r->read = read;
    r->ctx = ctx;
    r->line = 1;
    pg_buf_init(&r->record);
    return r;
}

void pigeon_rows_free(pigeon_rows *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->ncols; i++)
        free(r->header[i]);
    free(r->header);
    free(r->ends);
    pg_buf_cleanup(&r->record);
    pigeon_vars_free(r->row);
    free(r);
}

const char *pigeon_rows_error(const pigeon_rows *r)
{
    return r != NULL ? r->error : "";
}

/* The next input byte, or -1 at the end (-2 on a read error). */
static int next_byte(pigeon_rows *r)
{
    if (r->at == r->have) {
        if (r->eof)
            return -1;
        size_t n = 0;
        if (r->read(r->ctx, r->chunk, sizeof r->chunk, &n) != 0)
            return -2;
        r->have = n;
        r->at = 0;
        if (n == 0) {
            r->eof = 1;
            return -1;
        }
        if (!r->started) {
            r->started = 1;
            if (n >= 3 && memcmp(r->chunk, "\xEF\xBB\xBF", 3) == 0)
                r->at = 3;
            if (r->at == r->have)
                return next_byte(r);
        }
    }
    return (unsigned char)r->chunk[r->at++];
}

static int peek_byte(pigeon_rows *r)
{
    int c = next_byte(r);
    if (c >= 0)
        r->at--;
    return c;
}

static pigeon_err end_field(pigeon_rows *r)
{
    if (r->nfields == r->fields_cap) {
        size_t cap = r->fields_cap ? r->fields_cap * 2 : 16;
        size_t *e = realloc(r->ends, cap * sizeof *e);
        if (e == NULL)
            return PIGEON_ERR_NOMEM;
        r->ends = e;
        r->fields_cap = cap;
    }
    r->ends[r->nfields++] = r->record.len;
    return PIGEON_OK;
}

/* Consumes a line break whose first byte c was read (CRLF counts once). */
static void line_break(pigeon_rows *r, int c)
{
    if (c == '\r' && peek_byte(r) == '\n')
        next_byte(r);
    r->line++;
}

/*
 * Scans one CSV record into r->record / r->ends. Returns PIGEON_OK with *got 1, or *got 0
 * at the end of input; a bad record is still read to its end and reported in r->error.
 */
static pigeon_err scan_record(pigeon_rows *r, int *got, unsigned long *first_line)
{
    csv_state st = CSV_FIELD_START;
    pigeon_err bad = PIGEON_OK;
    pg_buf_reset(&r->record);
    r->nfields = 0;
    *got = 0;
    *first_line = r->line;
    for (;;) {
        int c = next_byte(r);
        if (c == -2) {
            snprintf(r->error, sizeof r->error, "read error at line %lu", r->line);
            return PIGEON_ERR_IO;
        }
        if (c == -1 || ((c == '\n' || c == '\r') && st != CSV_QUOTED)) {
            if (c == -1 && st == CSV_QUOTED && bad == PIGEON_OK) {
                snprintf(r->error, sizeof r->error,
                         "a quoted field opened on line %lu is never closed", *first_line);
                bad = PIGEON_ERR_INVALID;
            }
            if (c == -1 && st == CSV_FIELD_START && r->nfields == 0)
                return PIGEON_OK; /* end of input, no record */
            if (c >= 0)
                line_break(r, c);
            if (st == CSV_FIELD_START && r->nfields == 0) {
                *first_line = r->line; /* a blank line: skip it */
                continue;
            }
            if (end_field(r) != PIGEON_OK)
                return PIGEON_ERR_NOMEM;
            *got = 1;
            return bad;
        }
        switch (st) {
        case CSV_FIELD_START:
            if (c == '"') {
                st = CSV_QUOTED;
                continue;
            }
            st = CSV_UNQUOTED;
            /* fall through */
        case CSV_UNQUOTED:
            if (c == ',') {
                if (end_field(r) != PIGEON_OK)
                    return PIGEON_ERR_NOMEM;
                st = CSV_FIELD_START;
                continue;
            }
            if (c == '"' && bad == PIGEON_OK) {
                snprintf(r->error, sizeof r->error,
                         "line %lu: a quote inside an unquoted field (quote the whole field "
                         "and double the quote: \"a \"\"b\"\"\")",
                         r->line);
                bad = PIGEON_ERR_INVALID;
            }
            break;
        case CSV_QUOTED:
            if (c == '"') {
                st = CSV_QUOTE;
                continue;
            }
            if (c == '\n' || (c == '\r' && peek_byte(r) != '\n'))
                r->line++;
            break;
        case CSV_QUOTE:
            if (c == '"') {
                st = CSV_QUOTED;
                break;
            }
            if (c == ',') {
                if (end_field(r) != PIGEON_OK)
                    return PIGEON_ERR_NOMEM;
                st = CSV_FIELD_START;
                continue;
            }
            if (bad == PIGEON_OK) {
                snprintf(r->error, sizeof r->error, "line %lu: text after a closing quote",
                         r->line);
                bad = PIGEON_ERR_INVALID;
            }
            st = CSV_UNQUOTED;
            break;
        }
        if (r->record.len >= RECORD_MAX) {
            if (bad == PIGEON_OK) {
                snprintf(r->error, sizeof r->error, "the record at line %lu is over 1 MiB",
                         *first_line);
                bad = PIGEON_ERR_TOO_LARGE;
            }
            continue;
        }
        pg_buf_putc(&r->record, (char)c);
        if (r->record.err != PIGEON_OK)
            return PIGEON_ERR_NOMEM;
    }
}

static const char *field(const pigeon_rows *r, size_t i, size_t *len)
{
    size_t start = i ? r->ends[i - 1] : 0;
    *len = r->ends[i] - start;
    return r->record.data ? r->record.data + start : "";
}

/* The first record: the column names, trimmed, unique and not empty. */
static pigeon_err read_header(pigeon_rows *r)
{
    int got;
    unsigned long line;
    pigeon_err e = scan_record(r, &got, &line);
    if (e == PIGEON_OK && !got)
        snprintf(r->error, sizeof r->error, "no header row (the file is empty)");
    if (e != PIGEON_OK || !got || r->nfields > COLUMNS_MAX)
        goto bad;
    if ((r->header = calloc(r->nfields, sizeof *r->header)) == NULL)
        return PIGEON_ERR_NOMEM;
    for (size_t i = 0; i < r->nfields; i++) {
        size_t n;
        const char *s = field(r, i, &n);
        /* A byte order mark split across reads arrives as part of the first name. */
        if (i == 0 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
            s += 3, n -= 3;
        while (n > 0 && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n == 0 || !pg_utf8_valid(s, n) || memchr(s, '\0', n) != NULL) {
            snprintf(r->error, sizeof r->error, "header column %zu is empty or not UTF-8", i + 1);
            goto bad;
        }
        if ((r->header[i] = malloc(n + 1)) == NULL)
            return PIGEON_ERR_NOMEM;
        memcpy(r->header[i], s, n);
        r->header[i][n] = '\0';
        r->ncols = i + 1;
        for (size_t k = 0; k < i; k++)
            if (strcmp(r->header[k], r->header[i]) == 0) {
                snprintf(r->error, sizeof r->error, "header column \"%.64s\" appears twice",
                         r->header[i]);
                goto bad;
            }
    }
    return PIGEON_OK;
bad:
    if (e == PIGEON_OK && r->error[0] == '\0')
        snprintf(r->error, sizeof r->error, "the header row cannot be read");
    else if (e != PIGEON_OK && e != PIGEON_ERR_IO && e != PIGEON_ERR_NOMEM)
        e = PIGEON_OK;
    return e == PIGEON_OK ? PIGEON_ERR_CORRUPT : e;
}

static pigeon_err csv_next(pigeon_rows *r, unsigned long *line)
{
    int got;
    pigeon_err e;
    if (r->header == NULL && (e = read_header(r)) != PIGEON_OK)
        return e;
    if ((e = scan_record(r, &got, line)) != PIGEON_OK || !got)
        return e;
    if (r->nfields != r->ncols) {
        snprintf(r->error, sizeof r->error, "line %lu: %zu fields where the header has %zu", *line,
                 r->nfields, r->ncols);
        return PIGEON_ERR_INVALID;
    }
    if ((r->row = pg_vars_new(PIGEON_VAR_OBJECT)) == NULL)
        return PIGEON_ERR_NOMEM;
    for (size_t i = 0; i < r->nfields; i++) {
        size_t n;
        const char *s = field(r, i, &n);
        if (!pg_utf8_valid(s, n)) {
            snprintf(r->error, sizeof r->error, "line %lu: column \"%.64s\" is not valid UTF-8",
                     *line, r->header[i]);
            return PIGEON_ERR_CHARSET;
        }
        pigeon_vars *v = pg_vars_new_text(PIGEON_VAR_STRING, s, n);
        if (v == NULL || pg_vars_add(r->row, r->header[i], strlen(r->header[i]), v) != PIGEON_OK)
            return PIGEON_ERR_NOMEM;
    }
    return PIGEON_OK;
}

/* One JSON Lines row: the next non-blank line, which must hold one object. */
static pigeon_err jsonl_next(pigeon_rows *r, unsigned long *line)
{
    int too_long = 0;
    for (;;) {
        pg_buf_reset(&r->record);
        *line = r->line;
        int c;
        while ((c = next_byte(r)) >= 0 && c != '\n') {
            if (r->record.len < RECORD_MAX)
                pg_buf_putc(&r->record, (char)c);
            else
                too_long = 1;
        }
        if (c == -2) {
            snprintf(r->error, sizeof r->error, "read error at line %lu", r->line);
            return PIGEON_ERR_IO;
        }
        if (r->record.err != PIGEON_OK)
            return PIGEON_ERR_NOMEM;
        if (c == '\n')
            r->line++;
        size_t n = r->record.len;
        const char *s = r->record.data ? r->record.data : "";
        while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        size_t b = 0;
        while (b < n && (s[b] == ' ' || s[b] == '\t'))
            b++;
        if (too_long) {
            snprintf(r->error, sizeof r->error, "line %lu is over 1 MiB", *line);
            return PIGEON_ERR_TOO_LARGE;
        }
        if (b < n)
            break;
        if (c == -1)
            return PIGEON_OK;
    }
    pigeon_json_error je;
    pigeon_err e = pigeon_vars_parse_json(r->record.data, r->record.len, NULL, &r->row, &je);
    if (e != PIGEON_OK) {
        snprintf(r->error, sizeof r->error, "line %lu: invalid JSON at column %zu: %s", *line,
                 je.offset + 1, je.message);
        return e == PIGEON_ERR_NOMEM ? e : e == PIGEON_ERR_CHARSET ? e : PIGEON_ERR_INVALID;
    }
    if (r->row->type != PIGEON_VAR_OBJECT) {
        snprintf(r->error, sizeof r->error, "line %lu: not a JSON object", *line);
        return PIGEON_ERR_INVALID;
    }
    return PIGEON_OK;
}

pigeon_err pigeon_rows_next(pigeon_rows *r, const pigeon_vars **row, unsigned long *line)
{
    unsigned long at = 0;
    if (row != NULL)
        *row = NULL;
    if (r == NULL || row == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_vars_free(r->row);
    r->row = NULL;
    r->error[0] = '\0';
    if (r->failed) {
        snprintf(r->error, sizeof r->error, "the input cannot be read on");
        return PIGEON_ERR_CORRUPT;
    }
    pigeon_err e = r->format == PIGEON_ROWS_JSONL ? jsonl_next(r, &at) : csv_next(r, &at);
    if (line != NULL)
        *line = at;
    if (e == PIGEON_ERR_IO || e == PIGEON_ERR_CORRUPT || e == PIGEON_ERR_NOMEM)
        r->failed = 1;
    if (e != PIGEON_OK) {
        pigeon_vars_free(r->row);
        r->row = NULL;
        return e;
    }
    *row = r->row;
    return PIGEON_OK;
}
