/*
 * rawmsg.c - reading an existing message for sendmail mode: splitting the input into
 * header block and body, parsing the header fields (RFC 5322 2.2 and 2.2.3 unfolding,
 * 3.6.2 originator and 3.6.3 destination fields) and writing the header block that goes out
 * (Bcc removed as RFC 5322 3.6.3 lets the sender do, Date 3.3 and Message-ID 3.6.4 added
 * when missing). See rawmsg.h for the bounds and the choices.
 */
#include "mime/rawmsg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address/address_int.h"
#include "util/random.h"

/* Random characters on the left of a generated Message-ID: 24 of [0-9A-Za-z] hold
 * about 143 bits, more than enough to never collide (RFC 5322 3.6.4 wants uniqueness). */
#define MSGID_RANDOM 24

static pigeon_err reader_put(pg_rawmsg_reader *r, pg_buf *body, const char *s, size_t n);
static pigeon_err reader_end_line(pg_rawmsg_reader *r, pg_buf *body);
static size_t line_end(const char *in, size_t len, size_t pos, size_t *next);
static pigeon_err set_error(char *err, size_t errlen, pigeon_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static pigeon_err parse_line(pg_rawmsg *m, size_t lineno, size_t pos, size_t end, size_t next,
                             char *err, size_t errlen);
static pigeon_err new_field(pg_rawmsg *m, size_t lineno, size_t pos, size_t end, size_t next,
                            char *err, size_t errlen);
static pigeon_err fill_values(pg_rawmsg *m);
static int name_is(const pg_rawmsg_field *f, const char *name);
static int is_destination(const pg_rawmsg_field *f);
static void put_crlf(pg_buf *out, const char *s, size_t n);
static void put_date(pg_buf *out, time_t when, int utc_offset);
static pigeon_err put_message_id(pg_buf *out, const pg_rawmsg *m, const pg_rawmsg_out_opts *o);

/* ---- reader ---- */

void pg_rawmsg_reader_init(pg_rawmsg_reader *r, int dot_ends)
{
    memset(r, 0, sizeof *r);
    pg_buf_init(&r->header);
    r->header.max = PG_RAWMSG_HEADER_MAX;
    r->dot_ends = dot_ends != 0;
}

void pg_rawmsg_reader_cleanup(pg_rawmsg_reader *r)
{
    if (r == NULL)
        return;
    pg_buf_cleanup(&r->header);
    memset(r, 0, sizeof *r);
}

/* Whether a complete line read in the header block belongs there: a field ("Name:",
 * obs-optional white space before the colon allowed), a continuation (not on the first
 * line), or the mbox "From " line first. Malformed fields with a valid name stay in the
 * header so that the parser reports them (NUL, stray CR). */
static int header_line_ok(const char *s, size_t n, int first)
{
    if (n == 0)
        return 1;
    if (s[0] == ' ' || s[0] == '\t')
        return !first;
    if (first && n >= 5 && memcmp(s, "From ", 5) == 0)
        return 1;
    const char *colon = memchr(s, ':', n);
    if (colon == NULL)
        return 0;
    size_t name = (size_t)(colon - s);
    while (name > 0 && (s[name - 1] == ' ' || s[name - 1] == '\t'))
        name--;
    if (name == 0)
        return 0;
    for (size_t i = 0; i < name; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126)
            return 0;
    }
    return 1;
}

/* Appends bytes of the current line to the header block or to the body. */
static pigeon_err reader_put(pg_rawmsg_reader *r, pg_buf *body, const char *s, size_t n)
{
    r->line_len += n;
    r->line_nul |= memchr(s, '\0', n) != NULL;
    return pg_buf_append(r->in_body ? body : &r->header, s, n);
}

/* A line break: a held "." alone ends the message, an empty line in the header block ends
 * the header block (the empty line itself is the writer's to add), else CRLF. */
static pigeon_err reader_end_line(pg_rawmsg_reader *r, pg_buf *body)
{
    pigeon_err err = PIGEON_OK;
    if (r->dot_held) {
        r->dot_held = 0;
        r->done = 1;
        return PIGEON_OK;
    }
    if (!r->in_body && r->line_len == 0) {
        r->in_body = 1;
    } else if (!r->in_body && !header_line_ok(r->header.data + r->line_start,
                                              r->header.len - r->line_start, r->line_start == 0)) {
        /* Not a header line: the header block ended before it, and it is the body's first
         * line (sendmail and Postfix read input without a header block this way). */
        r->in_body = 1;
        err = pg_buf_append(body, r->header.data + r->line_start, r->header.len - r->line_start);
        r->header.len = r->line_start;
        r->header.data[r->header.len] = '\0';
        if (err == PIGEON_OK)
            err = pg_buf_append(body, "\r\n", 2);
    } else {
        err = pg_buf_append(r->in_body ? body : &r->header, "\r\n", 2);
        r->line_start = r->header.len;
    }
    r->lineno++;
    /* RFC 5322 2.1.1 (998 octets a line) and 2.3 (no NUL): the first offenders of the body
     * are remembered for the caller to refuse; the header block's are the parser's. */
    if (r->in_body && r->line_nul && r->nul_line == 0)
        r->nul_line = r->lineno;
    if (r->in_body && r->line_len > PG_RAWMSG_LINE_MAX && r->long_line == 0)
        r->long_line = r->lineno;
    r->line_len = 0;
    r->line_nul = 0;
    return err;
}

pigeon_err pg_rawmsg_reader_feed(pg_rawmsg_reader *r, const void *in, size_t n, pg_buf *body)
{
    const char *p = in;
    size_t i = 0;
    pigeon_err err = PIGEON_OK;
    while (i < n && !r->done && err == PIGEON_OK) {
        char c = p[i];
        if (r->pending_cr) {
            r->pending_cr = 0;
            if (c == '\n') { /* the LF of a CRLF already counted */
                i++;
                continue;
            }
        }
        if (c == '\r' || c == '\n') {
            /* CRLF, LF and a lone CR are all line breaks, as pg_dotstuff treats them, so
             * that the size measured here is the size sent. */
            r->pending_cr = c == '\r';
            i++;
            err = reader_end_line(r, body);
            continue;
        }
        if (r->dot_ends && r->line_len == 0 && !r->dot_held && c == '.') {
            r->dot_held = 1; /* "." alone ends the message; known at the line break */
            i++;
            continue;
        }
        if (r->dot_held) {
            r->dot_held = 0;
            if ((err = reader_put(r, body, ".", 1)) != PIGEON_OK)
                break;
        }
        size_t j = i;
        unsigned char high = 0;
        while (j < n && p[j] != '\r' && p[j] != '\n')
            high |= (unsigned char)p[j++];
        r->has_8bit |= high >= 0x80;
        err = reader_put(r, body, p + i, j - i);
        i = j;
    }
    return err;
}

pigeon_err pg_rawmsg_reader_finish(pg_rawmsg_reader *r, pg_buf *body)
{
    if (r->done)
        return PIGEON_OK;
    if (r->dot_held) {
        r->dot_held = 0;
        r->done = 1;
        return PIGEON_OK;
    }
    if (r->line_len > 0)
        return reader_end_line(r, body);
    return PIGEON_OK;
}

/* ---- parser ---- */

static pigeon_err set_error(char *err, size_t errlen, pigeon_err code, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* The end of the line starting at pos (before its CRLF or LF); *next is where the next
 * line starts. A line without a line break runs to the end of the input. */
static size_t line_end(const char *in, size_t len, size_t pos, size_t *next)
{
    const char *lf = memchr(in + pos, '\n', len - pos);
    if (lf == NULL) {
        *next = len;
        return len;
    }
    size_t end = (size_t)(lf - in);
    *next = end + 1;
    if (end > pos && in[end - 1] == '\r')
        end--;
    return end;
}

/* RFC 5322 2.2: a field name is printable US-ASCII but ':'. */
static int name_valid(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126 || c == ':')
            return 0;
    }
    return 1;
}

/* Starts a field at a line that does not begin with white space. */
static pigeon_err new_field(pg_rawmsg *m, size_t lineno, size_t pos, size_t end, size_t next,
                            char *err, size_t errlen)
{
    const char *line = m->base + pos;
    const char *colon = memchr(line, ':', end - pos);
    if (colon == NULL)
        return set_error(err, errlen, PIGEON_ERR_HEADER,
                         "header line %zu is not a field \"Name: value\" (no colon before the "
                         "empty line that ends the header)",
                         lineno);
    size_t name_len = (size_t)(colon - line);
    /* RFC 5322 4.5.8 obs-optional: white space may come between the name and the colon. */
    while (name_len > 0 && (line[name_len - 1] == ' ' || line[name_len - 1] == '\t'))
        name_len--;
    if (!name_valid(line, name_len))
        return set_error(err, errlen, PIGEON_ERR_HEADER,
                         "header line %zu has an invalid field name (RFC 5322 2.2: printable "
                         "ASCII, no spaces)",
                         lineno);
    if (m->count == PG_RAWMSG_FIELDS_MAX)
        return set_error(err, errlen, PIGEON_ERR_TOO_LARGE, "more than %d header fields",
                         PG_RAWMSG_FIELDS_MAX);
    if (m->count == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        pg_rawmsg_field *grown = realloc(m->fields, cap * sizeof *grown);
        if (grown == NULL)
            return PIGEON_ERR_NOMEM;
        m->fields = grown;
        m->cap = cap;
    }
    pg_rawmsg_field *f = &m->fields[m->count];
    memset(f, 0, sizeof *f);
    f->offset = pos;
    f->length = next - pos;
    if ((f->name = strndup(line, name_len)) == NULL)
        return PIGEON_ERR_NOMEM;
    m->count++;
    return PIGEON_OK;
}

/* The mbox separator "From sender date" (not a field "From : x" with obs-optional space
 * before the colon, RFC 5322 4.5.8). */
static int is_mbox_from_line(const char *line, size_t n)
{
    size_t i = 4;
    if (n < 5 || memcmp(line, "From ", 5) != 0)
        return 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i < n && line[i] != ':';
}

/* One non-empty line of the header block: a new field, a continuation (RFC 5322 2.2.3:
 * it starts with white space) or the mbox "From " line. */
static pigeon_err parse_line(pg_rawmsg *m, size_t lineno, size_t pos, size_t end, size_t next,
                             char *err, size_t errlen)
{
    const char *line = m->base + pos;
    if (memchr(line, '\0', end - pos) != NULL)
        return set_error(err, errlen, PIGEON_ERR_HEADER, "header line %zu contains a NUL byte",
                         lineno);
    if (memchr(line, '\r', end - pos) != NULL)
        return set_error(err, errlen, PIGEON_ERR_HEADER,
                         "header line %zu contains a CR that does not end the line", lineno);
    int long_line = end - pos > PG_RAWMSG_LINE_MAX;
    m->long_lines += (size_t)long_line;
    if (line[0] == ' ' || line[0] == '\t') {
        if (m->count == 0)
            return set_error(err, errlen, PIGEON_ERR_HEADER,
                             "header line %zu starts with white space but continues no field",
                             lineno);
        pg_rawmsg_field *f = &m->fields[m->count - 1];
        f->length = next - f->offset;
        f->long_line |= long_line;
        return PIGEON_OK;
    }
    if (lineno == 1 && is_mbox_from_line(line, end - pos)) {
        m->mbox_from_line = 1;
        return PIGEON_OK;
    }
    pigeon_err e = new_field(m, lineno, pos, end, next, err, errlen);
    if (e == PIGEON_OK)
        m->fields[m->count - 1].long_line = long_line;
    return e;
}

/* Each field's value: the octets after the colon with every CR and LF removed (only line
 * breaks remain in the block, so this is RFC 5322 2.2.3 unfolding), then trimmed. */
static pigeon_err fill_values(pg_rawmsg *m)
{
    for (size_t i = 0; i < m->count; i++) {
        pg_rawmsg_field *f = &m->fields[i];
        const char *s = m->base + f->offset;
        const char *colon = memchr(s, ':', f->length);
        size_t start = (size_t)(colon - s) + 1, stop = f->length;
        char *v = malloc(stop - start + 1);
        if (v == NULL)
            return PIGEON_ERR_NOMEM;
        size_t n = 0;
        for (size_t k = start; k < stop; k++) {
            if (s[k] != '\r' && s[k] != '\n')
                v[n++] = s[k];
        }
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        size_t lead = 0;
        while (lead < n && (v[lead] == ' ' || v[lead] == '\t'))
            lead++;
        memmove(v, v + lead, n - lead);
        v[n - lead] = '\0';
        f->value = v;
    }
    return PIGEON_OK;
}

pigeon_err pg_rawmsg_parse(pg_rawmsg *m, const char *in, size_t len, char *err, size_t errlen)
{
    pigeon_err e = PIGEON_OK;
    size_t pos = 0, lineno = 0;
    memset(m, 0, sizeof *m);
    m->base = in;
    m->header_len = m->body_offset = len;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    while (pos < len) {
        size_t next, end = line_end(in, len, pos, &next);
        lineno++;
        if (end == pos) { /* the empty line: the body follows */
            m->has_separator = 1;
            m->header_len = pos;
            m->body_offset = next;
            break;
        }
        if (end > PG_RAWMSG_HEADER_MAX) {
            e = set_error(err, errlen, PIGEON_ERR_TOO_LARGE,
                          "the header block is larger than %zu octets (no empty line before "
                          "the body?)",
                          PG_RAWMSG_HEADER_MAX);
            goto fail;
        }
        if ((e = parse_line(m, lineno, pos, end, next, err, errlen)) != PIGEON_OK)
            goto fail;
        pos = next;
    }
    if ((e = fill_values(m)) != PIGEON_OK)
        goto fail;
    return PIGEON_OK;
fail:
    pg_rawmsg_cleanup(m);
    return e;
}

void pg_rawmsg_cleanup(pg_rawmsg *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->count; i++) {
        free(m->fields[i].name);
        free(m->fields[i].value);
    }
    free(m->fields);
    memset(m, 0, sizeof *m);
}

/* RFC 5322 1.2.2: field names are case-insensitive. */
static int name_is(const pg_rawmsg_field *f, const char *name)
{
    return strcasecmp(f->name, name) == 0;
}

size_t pg_rawmsg_count(const pg_rawmsg *m, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < m->count; i++)
        n += (size_t)name_is(&m->fields[i], name);
    return n;
}

const pg_rawmsg_field *pg_rawmsg_find(const pg_rawmsg *m, const char *name, size_t nth)
{
    for (size_t i = 0; i < m->count; i++) {
        if (name_is(&m->fields[i], name) && nth-- == 0)
            return &m->fields[i];
    }
    return NULL;
}

/* ---- addresses ---- */

static int is_destination(const pg_rawmsg_field *f)
{
    return name_is(f, "To") || name_is(f, "Cc") || name_is(f, "Bcc");
}

/* Parses an unfolded field value as an address list. The address parser refuses HTAB (it
 * reads what users type); in a message it is folding white space, the same as a space. */
static pigeon_err parse_list(const pg_rawmsg_field *f, pigeon_address_list *list, char *err,
                             size_t errlen)
{
    char reason[256] = "";
    char *copy = strdup(f->value);
    if (copy == NULL)
        return PIGEON_ERR_NOMEM;
    for (char *p = copy; *p != '\0'; p++) {
        if (*p == '\t')
            *p = ' ';
    }
    pigeon_err e = pigeon_address_list_parse(copy, list, reason, sizeof reason);
    free(copy);
    if (e == PIGEON_ERR_ADDRESS)
        return set_error(err, errlen, e, "%s: %s", f->name, reason);
    return e;
}

pigeon_err pg_rawmsg_recipients(const pg_rawmsg *m, pigeon_address_list *out, char *err,
                                size_t errlen)
{
    for (size_t i = 0; i < m->count; i++) {
        const pg_rawmsg_field *f = &m->fields[i];
        if (!is_destination(f) || f->value[0] == '\0')
            continue;
        pigeon_address_list list = {0};
        pigeon_err e = parse_list(f, &list, err, errlen);
        if (e == PIGEON_OK)
            e = pigeon_address_list_append(out, &list);
        pigeon_address_list_cleanup(&list);
        if (e != PIGEON_OK)
            return e;
    }
    return PIGEON_OK;
}

pigeon_err pg_rawmsg_from(const pg_rawmsg *m, pigeon_mailbox *out, char *err, size_t errlen)
{
    const pg_rawmsg_field *f = pg_rawmsg_find(m, "From", 0);
    if (f == NULL)
        return PIGEON_ERR_NOTFOUND;
    pigeon_address_list list = {0};
    pigeon_err e = parse_list(f, &list, err, errlen);
    if (e == PIGEON_OK && list.count == 0)
        e = set_error(err, errlen, PIGEON_ERR_ADDRESS, "From: no mailbox");
    if (e == PIGEON_OK)
        e = pigeon_mailbox_copy(out, &list.items[0]);
    pigeon_address_list_cleanup(&list);
    return e;
}

/* ---- writer ---- */

/* Appends s with every lone LF made CRLF, ending with CRLF (bare CRs were refused by the
 * parser, so every CR in s is already part of a CRLF). */
static void put_crlf(pg_buf *out, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) {
            pg_buf_append(out, s + run, i - run);
            pg_buf_append(out, "\r\n", 2);
            run = i + 1;
        }
    }
    pg_buf_append(out, s + run, n - run);
    if (n == 0 || s[n - 1] != '\n')
        pg_buf_append(out, "\r\n", 2);
}

/* RFC 5322 3.3 date-time with a numeric zone: the wall-clock time at utc_offset minutes
 * east of UTC, then "+hhmm" or "-hhmm". */
static void put_date(pg_buf *out, time_t when, int utc_offset)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    time_t local = when + (time_t)utc_offset * 60;
    if (utc_offset < -1439 || utc_offset > 1439 || gmtime_r(&local, &tm) == NULL) {
        out->err = out->err ? out->err : PIGEON_ERR_INVALID;
        return;
    }
    int zone = utc_offset < 0 ? -utc_offset : utc_offset;
    pg_buf_printf(out, "Date: %s, %d %s %04d %02d:%02d:%02d %c%02d%02d\r\n", days[tm.tm_wday],
                  tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec, utc_offset < 0 ? '-' : '+', zone / 60, zone % 60);
}

/* RFC 5322 3.6.4: "<" random "@" domain ">", the domain being the sender's, so that the
 * id is unique and says whose it is. */
static pigeon_err put_message_id(pg_buf *out, const pg_rawmsg *m, const pg_rawmsg_out_opts *o)
{
    char token[MSGID_RANDOM + 1];
    pigeon_mailbox from = {0};
    const char *domain = o->msgid_domain;
    if (domain == NULL && pg_rawmsg_from(m, &from, NULL, 0) == PIGEON_OK)
        domain = from.domain_ascii;
    if (domain == NULL && o->from != NULL)
        domain = o->from->domain_ascii;
    pigeon_err e = domain == NULL ? PIGEON_ERR_HEADER : pg_random_token(token, MSGID_RANDOM);
    if (e == PIGEON_OK)
        e = pg_buf_printf(out, "Message-ID: <%s@%s>\r\n", token, domain);
    pigeon_mailbox_cleanup(&from);
    return e;
}

/* Whether the bytes hold something other than white space. */
static int has_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return 1;
    return 0;
}

/*
 * RFC 5322 2.2.3: a line over PG_RAWMSG_LINE_MAX octets is folded by putting CRLF before a
 * white space character, which unfolding removes again, so the field means the same. Each
 * fold is at the last white space that keeps the line within the limit and leaves text on
 * the line before it and after it (a line of white space only is not a fold, 3.2.2).
 * Writes the line
 * and its CRLF to out when out is not NULL; returns -1 when there is no such place.
 */
static int fold_line(pg_buf *out, const char *s, size_t n, size_t body)
{
    while (n > PG_RAWMSG_LINE_MAX) {
        size_t cut = PG_RAWMSG_LINE_MAX;
        while (cut > body && !((s[cut] == ' ' || s[cut] == '\t') && has_text(s + 1, cut - 1) &&
                               has_text(s + cut, n - cut)))
            cut--;
        if (cut <= body)
            return -1;
        body = 1;
        if (out != NULL) {
            pg_buf_append(out, s, cut);
            pg_buf_append(out, "\r\n", 2);
        }
        s += cut;
        n -= cut;
    }
    if (out != NULL) {
        pg_buf_append(out, s, n);
        pg_buf_append(out, "\r\n", 2);
    }
    return 0;
}

/* Writes (out not NULL) or checks (out NULL) a field line by line, folding long lines.
 * The first line folds only after the colon: white space between the name and the colon
 * (RFC 5322 4.5, obsolete) is not FWS, and a fold there would cut the name off. */
static int fold_field(pg_buf *out, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    size_t body = colon != NULL ? (size_t)(colon - s) + 1 : n;
    while (n > 0) {
        const char *lf = memchr(s, '\n', n);
        size_t line = lf != NULL ? (size_t)(lf - s) : n;
        size_t next = lf != NULL ? line + 1 : n;
        size_t text = line > 0 && s[line - 1] == '\r' ? line - 1 : line;
        if (fold_line(out, s, text, body) != 0)
            return -1;
        body = 1; /* continuation lines fold anywhere after their leading white space */
        s += next;
        n -= next;
    }
    return 0;
}

/* Bcc (RFC 5322 3.6.3) and Resent-Bcc (3.6.6) never leave. */
static int is_removed(const pg_rawmsg_field *f)
{
    return name_is(f, "Bcc") || name_is(f, "Resent-Bcc");
}

const pg_rawmsg_field *pg_rawmsg_unfoldable(const pg_rawmsg *m)
{
    for (size_t i = 0; i < m->count; i++) {
        const pg_rawmsg_field *f = &m->fields[i];
        if (f->long_line && !is_removed(f) && fold_field(NULL, m->base + f->offset, f->length))
            return f;
    }
    return NULL;
}

pigeon_err pg_rawmsg_write_header(const pg_rawmsg *m, const pg_rawmsg_out_opts *o, pg_buf *out)
{
    for (size_t i = 0; i < m->count; i++) {
        const pg_rawmsg_field *f = &m->fields[i];
        if (f->long_line && !is_removed(f)) {
            if (fold_field(out, m->base + f->offset, f->length) != 0)
                return PIGEON_ERR_HEADER;
            continue;
        }
        /* RFC 5322 3.6.3: the Bcc line is removed; 3.6.6: Resent-Bcc is Bcc's resent
         * form, removed the same way (Postfix and Sendmail drop both). */
        if (!is_removed(f))
            put_crlf(out, m->base + f->offset, f->length);
    }
    if (pg_rawmsg_count(m, "From") == 0) {
        size_t col = 6;
        if (o->from == NULL)
            return PIGEON_ERR_HEADER;
        pg_buf_puts(out, "From: ");
        pigeon_err e = pg_mailbox_format(out, &col, o->from, 0);
        if (e != PIGEON_OK)
            return e;
        pg_buf_append(out, "\r\n", 2);
    }
    if (pg_rawmsg_count(m, "Date") == 0)
        put_date(out, o->date, o->utc_offset);
    if (pg_rawmsg_count(m, "Message-ID") == 0) {
        pigeon_err e = put_message_id(out, m, o);
        if (e != PIGEON_OK)
            return e;
    }
    pg_buf_append(out, "\r\n", 2);
    return out->err;
}
