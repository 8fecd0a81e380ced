/*
 * mime_testutil.h - a small, independent MIME reader for the message/mime unit tests.
 *
 * It splits what the composer wrote the way a receiving client would (RFC 5322 2.2 header
 * fields with unfolding, RFC 2046 5.1.1 boundary delimiter lines, RFC 2045 6 decoding)
 * so tests can assert on what a recipient reads back, not on internals. Test code only:
 * it aborts (cmocka assertion) on anything malformed.
 */
#ifndef MIME_TESTUTIL_H
#define MIME_TESTUTIL_H

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"
#include "codec/encode.h"

#define TPART_MAX_KIDS 16

/* One parsed entity. */
typedef struct tpart {
    const char *hdr;                    /* header block (borrowed from the message) */
    size_t hdr_len;                     /* its length, without the empty line */
    const char *body;                   /* the body as written (encoded) */
    size_t body_len;                    /* its length */
    char ctype[128];                    /* "type/subtype", lower case ("text/plain" default) */
    char boundary[80];                  /* multipart boundary or "" */
    struct tpart *kids[TPART_MAX_KIDS]; /* multipart children */
    int nkids;                          /* number of kids */
} tpart;

/* The unfolded value of the first field named name (index: which occurrence), malloc'd,
 * or NULL. Leading white space is stripped. */
static inline char *tp_field(const char *hdr, size_t len, const char *name, int index)
{
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        /* A field runs until a CRLF not followed by WSP. */
        while (end < len && !(hdr[end] == '\r' &&
                              (end + 2 >= len || (hdr[end + 2] != ' ' && hdr[end + 2] != '\t'))))
            end++;
        if (end - i > nlen && hdr[i + nlen] == ':' && strncasecmp(hdr + i, name, nlen) == 0 &&
            index-- == 0) {
            size_t v = i + nlen + 1;
            char *out = malloc(end - v + 1);
            size_t o = 0;
            while (v < end && (hdr[v] == ' ' || hdr[v] == '\t'))
                v++;
            for (; v < end; v++) {
                if (hdr[v] == '\r' || hdr[v] == '\n')
                    continue; /* unfolding: CRLF removed, the WSP kept */
                out[o++] = hdr[v];
            }
            out[o] = '\0';
            return out;
        }
        i = end + 2;
    }
    return NULL;
}

/* The value of parameter name in a field value ("multipart/mixed; boundary=\"x\""). */
static inline void tp_param(const char *value, const char *name, char *out, size_t cap)
{
    const char *p = value;
    size_t nlen = strlen(name);
    out[0] = '\0';
    while ((p = strchr(p, ';')) != NULL) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == '=') {
            p += nlen + 1;
            size_t o = 0;
            if (*p == '"') {
                p++;
                while (*p && *p != '"' && o + 1 < cap)
                    out[o++] = *p++;
            } else {
                while (*p && *p != ';' && *p != ' ' && o + 1 < cap)
                    out[o++] = *p++;
            }
            out[o] = '\0';
            return;
        }
    }
}

static inline void tp_free(tpart *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < t->nkids; i++)
        tp_free(t->kids[i]);
    free(t);
}

static inline tpart *tp_parse(const char *p, size_t n);

/* Splits a multipart body at its delimiter lines. */
static inline void tp_split(tpart *t)
{
    char delim[100];
    size_t dlen = (size_t)snprintf(delim, sizeof delim, "--%s", t->boundary);
    const char *b = t->body, *end = t->body + t->body_len;
    const char *part_start = NULL;
    const char *line = b;
    while (line < end) {
        const char *eol = line;
        while (eol + 1 < end && !(eol[0] == '\r' && eol[1] == '\n'))
            eol++;
        if (eol + 1 >= end)
            eol = end;
        size_t llen = (size_t)(eol - line);
        if (llen >= dlen && memcmp(line, delim, dlen) == 0) {
            int closing = llen >= dlen + 2 && memcmp(line + dlen, "--", 2) == 0;
            if (part_start != NULL) {
                /* The CRLF before the delimiter belongs to the delimiter. */
                const char *pend = line - 2;
                assert_true(t->nkids < TPART_MAX_KIDS);
                t->kids[t->nkids++] = tp_parse(part_start, (size_t)(pend - part_start));
            }
            if (closing)
                return;
            part_start = eol + 2;
        }
        line = eol + 2;
    }
    fail_msg("multipart without a closing delimiter --%s--", t->boundary);
}

/* Parses an entity: header fields, an empty line, the body. */
static inline tpart *tp_parse(const char *p, size_t n)
{
    tpart *t = calloc(1, sizeof *t);
    const char *sep = NULL;
    assert_non_null(t);
    if (n >= 2 && p[0] == '\r' && p[1] == '\n') {
        sep = p; /* no header fields at all */
        t->hdr_len = 0;
    } else {
        for (size_t i = 0; i + 4 <= n; i++) {
            if (memcmp(p + i, "\r\n\r\n", 4) == 0) {
                sep = p + i + 2;
                break;
            }
        }
        if (sep == NULL && n >= 2 && memcmp(p + n - 2, "\r\n", 2) == 0)
            sep = p + n; /* headers only, no empty line */
        assert_non_null(sep);
        t->hdr_len = (size_t)(sep - p);
    }
    t->hdr = p;
    t->body = sep + 2 <= p + n ? sep + 2 : p + n;
    t->body_len = (size_t)(p + n - t->body);
    char *ct = tp_field(p, t->hdr_len, "Content-Type", 0);
    snprintf(t->ctype, sizeof t->ctype, "%s", ct ? ct : "text/plain");
    for (char *c = t->ctype; *c; c++) {
        if (*c == ';' || *c == ' ') {
            *c = '\0';
            break;
        }
        *c = (char)tolower((unsigned char)*c);
    }
    if (ct != NULL && strncmp(t->ctype, "multipart/", 10) == 0) {
        tp_param(ct, "boundary", t->boundary, sizeof t->boundary);
        assert_true(t->boundary[0] != '\0');
        tp_split(t);
    }
    free(ct);
    return t;
}

/* The decoded body of a leaf (base64, quoted-printable or as is), malloc'd, *len set. */
static inline char *tp_decode(const tpart *t, size_t *len)
{
    char *cte = tp_field(t->hdr, t->hdr_len, "Content-Transfer-Encoding", 0);
    pg_buf out;
    pg_buf_init(&out);
    if (cte != NULL && strcasecmp(cte, "base64") == 0)
        assert_int_equal(pg_b64_decode(&out, t->body, t->body_len), PIGEON_OK);
    else if (cte != NULL && strcasecmp(cte, "quoted-printable") == 0)
        assert_int_equal(pg_qp_decode(&out, t->body, t->body_len), PIGEON_OK);
    else
        pg_buf_append(&out, t->body, t->body_len);
    free(cte);
    pg_buf_putc(&out, '\0');
    out.len--;
    return pg_buf_detach(&out, len);
}

/* Asserts the RFC 5322 2.1.1 / 2.3 line rules on a whole message: CRLF only, no line over
 * 998 octets, and no header line over max_header. */
static inline void tp_check_lines(const char *p, size_t n, size_t max_header)
{
    size_t line = 0;
    int in_header = 1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r') {
            assert_true(i + 1 < n && p[i + 1] == '\n');
            if (in_header && line == 0)
                in_header = 0;
            if (in_header && line > max_header)
                fail_msg("header line of %zu chars: %.80s", line, p + i - line);
            i++;
            line = 0;
            continue;
        }
        assert_true(p[i] != '\n');
        assert_true(p[i] != '\0');
        line++;
        assert_true(line <= 998);
    }
    assert_int_equal(line, 0); /* ends with CRLF */
}

#endif
