/*
 * reply.c - the SMTP reply parser: RFC 5321 4.2 (reply lines, multi-line replies) and
 * 4.5.3.1.5 (line length), RFC 3463 / RFC 2034 (enhanced status codes).
 *
 * Pure and bounded: input is (buf, len), storage is the fixed pg_reply, and every rule
 * a peer can break is a PG_REPLY_ERROR with a static reason, never an out-of-bounds read.
 */
#include "smtp/reply.h"

#include <string.h>

static size_t strip_eol(const char *line, size_t len);
static int parse_code(const char *line, size_t len);
static size_t digits(const char *s, size_t n, size_t max);
static void append_text(pg_reply *r, const char *s, size_t n);
static pg_reply_status fail(pg_reply *r, const char *why);

void pg_reply_init(pg_reply *r)
{
    r->code = 0;
    r->enhanced[0] = '\0';
    r->text[0] = '\0';
    r->text_len = 0;
    r->lines = 0;
    r->truncated = 0;
    r->done = 0;
    r->why = NULL;
}

static pg_reply_status fail(pg_reply *r, const char *why)
{
    r->why = why;
    return PG_REPLY_ERROR;
}

/* Length of the line without its CRLF (or bare LF). */
static size_t strip_eol(const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    return len;
}

/* RFC 5321 4.2: the first digit is 2-5, the second 0-5, the third 0-9. Returns the code or
 * -1. */
static int parse_code(const char *line, size_t len)
{
    if (len < 3)
        return -1;
    if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' || line[2] < '0' ||
        line[2] > '9')
        return -1;
    return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

/* Number of leading decimal digits in s[0..n), or 0 if more than max. */
static size_t digits(const char *s, size_t n, size_t max)
{
    size_t i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i > max ? 0 : i;
}

size_t pg_enhanced_code_parse(const char *s, size_t n, int expect_class, char out[16])
{
    out[0] = '\0';
    /* RFC 3463 2: class is 2, 4 or 5; subject and detail are 1-3 digits each. */
    if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    if (expect_class != 0 && s[0] - '0' != expect_class)
        return 0;
    size_t i = 2;
    size_t d = digits(s + i, n - i, 3);
    if (d == 0 || i + d >= n || s[i + d] != '.')
        return 0;
    i += d + 1;
    d = digits(s + i, n - i, 3);
    if (d == 0)
        return 0;
    i += d;
    if (i < n && s[i] != ' ')
        return 0;
    memcpy(out, s, i);
    out[i] = '\0';
    return i;
}

/* Appends one line's text, control characters made harmless, within the fixed bound. */
static void append_text(pg_reply *r, const char *s, size_t n)
{
    size_t room = sizeof r->text - 1 - r->text_len;
    if (r->lines > 1) {
        if (room == 0) {
            r->truncated = 1;
            return;
        }
        r->text[r->text_len++] = '\n';
        room--;
    }
    if (n > room) {
        n = room;
        r->truncated = 1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* The text reaches logs and terminals: no control characters (UTF-8 passes). */
        r->text[r->text_len++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    r->text[r->text_len] = '\0';
}

pg_reply_status pg_reply_feed(pg_reply *r, const char *line, size_t len)
{
    if (r->why != NULL)
        return PG_REPLY_ERROR;
    if (r->done)
        return fail(r, "reply line after the final line of the reply");
    len = strip_eol(line, len);
    if (len > PG_REPLY_LINE_MAX)
        return fail(r, "reply line too long");
    if (++r->lines > PG_REPLY_LINES_MAX)
        return fail(r, "too many lines in one reply");
    int code = parse_code(line, len);
    if (code < 0)
        return fail(r, "reply line does not start with a valid three-digit code");
    if (len > 3 && line[3] != ' ' && line[3] != '-')
        return fail(r, "reply code not followed by a space or '-'");
    if (r->lines == 1)
        r->code = code;
    else if (code != r->code)
        return fail(r, "multi-line reply with mismatched codes");
    const char *text = len > 4 ? line + 4 : line + len;
    size_t tlen = len > 4 ? len - 4 : 0;
    if (r->lines == 1) {
        char enh[16];
        if (pg_enhanced_code_parse(text, tlen, code / 100, enh) > 0)
            memcpy(r->enhanced, enh, sizeof r->enhanced);
    }
    append_text(r, text, tlen);
    if (len > 3 && line[3] == '-')
        return PG_REPLY_MORE;
    r->done = 1;
    return PG_REPLY_DONE;
}

pg_reply_status pg_reply_parse(pg_reply *r, const char *buf, size_t len, size_t *consumed)
{
    size_t pos = 0;
    pg_reply_status st = r->why != NULL ? PG_REPLY_ERROR : PG_REPLY_MORE;
    while (st == PG_REPLY_MORE && pos < len) {
        const char *lf = memchr(buf + pos, '\n', len - pos);
        if (lf == NULL) {
            if (len - pos > PG_REPLY_LINE_MAX + 2)
                st = fail(r, "reply line too long");
            break;
        }
        size_t n = (size_t)(lf - (buf + pos)) + 1;
        st = pg_reply_feed(r, buf + pos, n);
        pos += n;
    }
    *consumed = pos;
    return st;
}

int pg_reply_class(const pg_reply *r)
{
    return r->code / 100;
}

int pg_reply_next_line(const pg_reply *r, size_t *pos, const char **line, size_t *len)
{
    if (r->lines == 0 || *pos > r->text_len)
        return 0;
    const char *start = r->text + *pos;
    const char *nl = memchr(start, '\n', r->text_len - *pos);
    size_t n = nl != NULL ? (size_t)(nl - start) : r->text_len - *pos;
    *line = start;
    *len = n;
    *pos += n + 1;
    return 1;
}
