/*
 * walk.c - a lenient, bounded MIME walker for bounces (see walk.h).
 *
 * RFC 2046 5.1.1: a boundary delimiter line is CRLF "--" boundary, optionally followed by
 * white space; the close delimiter adds "--". Text before the first delimiter (the
 * preamble) and after the close (the epilogue) is ignored. The walker is iterative over
 * the parts of one multipart and recursive only into nested multiparts, so its stack
 * depth is bounded by max_depth.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <iconv.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "bounce/hdr.h"
#include "bounce/walk.h"

typedef struct walker {
    pg_bwalk_fn fn;     /* the caller's callback */
    void *ctx;          /* its context */
    unsigned max_depth; /* deepest level descended into */
    size_t max_parts;   /* most parts visited */
    size_t parts;       /* parts visited so far */
    size_t budget;      /* octets the boundary search may still scan: nested multiparts
                           rescan their content, so a bound keeps the time linear */
    int truncated;      /* a bound was hit */
} walker;

static void walk_part(walker *w, const char *in, size_t len, unsigned depth, const char *report);

/* Finds the next delimiter line "--boundary" at or after pos; returns its offset (at the
 * dashes) or len, and sets *close for "--boundary--" and *next to the line after it. */
static size_t find_delim(const char *in, size_t len, size_t pos, const char *b, size_t blen,
                         int *close, size_t *next)
{
    while (pos + 2 + blen <= len) {
        if (in[pos] == '-' && in[pos + 1] == '-' && memcmp(in + pos + 2, b, blen) == 0) {
            size_t e = pos + 2 + blen;
            *close = e + 1 < len && in[e] == '-' && in[e + 1] == '-';
            const char *nl = memchr(in + e, '\n', len - e);
            *next = nl != NULL ? (size_t)(nl - in) + 1 : len;
            return pos;
        }
        const char *nl = memchr(in + pos, '\n', len - pos);
        if (nl == NULL)
            break;
        pos = (size_t)(nl - in) + 1;
    }
    *close = 1;
    *next = len;
    return len;
}

/* The end of the part's content before the delimiter at d: the CRLF before the dashes
 * belongs to the delimiter (RFC 2046 5.1.1). */
static size_t content_end(const char *in, size_t start, size_t d)
{
    if (d > start && in[d - 1] == '\n')
        d--;
    if (d > start && in[d - 1] == '\r')
        d--;
    return d;
}

static void walk_multipart(walker *w, const char *body, size_t len, const char *boundary,
                           unsigned depth, const char *report)
{
    size_t blen = strlen(boundary), next;
    int close;
    if (w->budget < len) {
        w->truncated = 1;
        return;
    }
    w->budget -= len; /* the delimiter searches below scan the content once */
    size_t d = find_delim(body, len, 0, boundary, blen, &close, &next);
    while (d < len && !close) {
        size_t start = next;
        size_t d2 = find_delim(body, len, start, boundary, blen, &close, &next);
        if (w->parts >= w->max_parts) {
            w->truncated = 1;
            return;
        }
        walk_part(w, body + start, content_end(body, start, d2) - start, depth + 1, report);
        d = d2;
    }
}

static pg_bwalk_cte parse_cte(const char *v)
{
    if (strncasecmp(v, "base64", 6) == 0)
        return PG_BWALK_BASE64;
    if (strncasecmp(v, "quoted-printable", 16) == 0)
        return PG_BWALK_QP;
    return PG_BWALK_IDENTITY;
}

static void walk_part(walker *w, const char *in, size_t len, unsigned depth, const char *report)
{
    pg_bwalk_part p;
    pg_bhdr_iter it;
    pg_bhdr_field f;
    char value[PG_BHDR_VALUE_MAX], boundary[200] = "";
    memset(&p, 0, sizeof p);
    p.index = w->parts++;
    p.depth = depth;
    p.header = in;
    snprintf(p.report, sizeof p.report, "%s", report);
    pg_bhdr_begin(&it, in, len);
    while (pg_bhdr_next(&it, &f)) {
        if (pg_bhdr_is(&f, "Content-Type")) {
            pg_bhdr_unfold(f.value, f.vlen, value, sizeof value);
            pg_bhdr_mediatype(value, p.type, sizeof p.type);
            pg_bhdr_param(value, "charset", p.charset, sizeof p.charset, 1);
            if (!pg_bhdr_param(value, "boundary", boundary, sizeof boundary, 0))
                boundary[0] = '\0';
            if (strcmp(p.type, "multipart/report") == 0 &&
                !pg_bhdr_param(value, "report-type", p.report, sizeof p.report, 1))
                p.report[0] = '\0';
        } else if (pg_bhdr_is(&f, "Content-Transfer-Encoding")) {
            pg_bhdr_unfold(f.value, f.vlen, value, sizeof value);
            p.cte = parse_cte(value);
        }
    }
    size_t body = pg_bhdr_body(in, len);
    p.header_len = body;
    p.body = in + body;
    p.body_len = len - body;
    /* RFC 2045 5.2: no Content-Type is text/plain; us-ascii. */
    if (p.type[0] == '\0' || strchr(p.type, '/') == NULL)
        snprintf(p.type, sizeof p.type, "text/plain");
    if (strncmp(p.type, "multipart/", 10) == 0) {
        int close;
        size_t next;
        if (boundary[0] != '\0' && find_delim(p.body, p.body_len, 0, boundary, strlen(boundary),
                                              &close, &next) < p.body_len) {
            if (depth + 1 > w->max_depth) {
                w->truncated = 1;
                return;
            }
            walk_multipart(w, p.body, p.body_len, boundary, depth, p.report);
            return;
        }
        /* No usable boundary: the body is read as text. */
        snprintf(p.type, sizeof p.type, "text/plain");
    }
    w->fn(w->ctx, &p);
}

int pg_bwalk(const char *in, size_t len, unsigned max_depth, size_t max_parts, pg_bwalk_fn fn,
             void *ctx)
{
    /* Eight passes over the input in all (and 1 MiB), whatever the nesting: real
     * messages nest a few levels whose contents shrink inward. */
    size_t budget = len <= SIZE_MAX / 8 - (1 << 20) ? len * 8 + (1 << 20) : SIZE_MAX;
    walker w = {fn, ctx, max_depth, max_parts, 0, budget, 0};
    walk_part(&w, in, len, 0, "");
    return w.truncated;
}

/* RFC 4648 4 values, -1 for characters outside the alphabet. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Lenient base64: characters outside the alphabet are skipped (RFC 2045 6.8 says to
 * ignore them), decoding stops at padding. */
static void b64_lenient(pg_buf *out, const char *in, size_t n, size_t max)
{
    unsigned acc = 0, bits = 0;
    for (size_t i = 0; i < n && out->len < max; i++) {
        if (in[i] == '=')
            break;
        int v = b64_value((unsigned char)in[i]);
        if (v < 0)
            continue;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            pg_buf_putc(out, (char)(acc >> bits & 0xff));
        }
    }
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Lenient quoted-printable: a '=' not followed by two hex digits or a line break is kept
 * as it is (RFC 2045 6.7 note (2) suggests exactly that). */
static void qp_lenient(pg_buf *out, const char *in, size_t n, size_t max)
{
    for (size_t i = 0; i < n && out->len < max; i++) {
        if (in[i] != '=') {
            pg_buf_putc(out, in[i]);
            continue;
        }
        size_t j = i + 1;
        while (j < n && (in[j] == ' ' || in[j] == '\t'))
            j++;
        if (j < n && (in[j] == '\r' || in[j] == '\n')) { /* soft line break */
            i = in[j] == '\r' && j + 1 < n && in[j + 1] == '\n' ? j + 1 : j;
            continue;
        }
        int hi = i + 1 < n ? hexval((unsigned char)in[i + 1]) : -1;
        int lo = i + 2 < n ? hexval((unsigned char)in[i + 2]) : -1;
        if (hi >= 0 && lo >= 0) {
            pg_buf_putc(out, (char)(hi << 4 | lo));
            i += 2;
        } else {
            pg_buf_putc(out, '=');
        }
    }
}

/* Charsets copied as they are: ASCII is UTF-8, and so is an unlabelled part. */
static int is_utf8_compatible(const char *cs)
{
    return cs[0] == '\0' || strcmp(cs, "utf-8") == 0 || strcmp(cs, "utf8") == 0 ||
           strcmp(cs, "us-ascii") == 0 || strcmp(cs, "ascii") == 0;
}

/* glibc loads a converter module on iconv_open() and unloads it on the last
 * iconv_close(): a dlopen and dlclose per message. One descriptor per common mail
 * charset, opened once per process and never closed, keeps those modules loaded (for the
 * RFC 2047 decoder too). Thread-safe through pthread_once. */
static pthread_once_t pins_once = PTHREAD_ONCE_INIT;

/* The pinned descriptors, kept reachable (they are not a leak: they live as long as the
 * process by design). */
static iconv_t pins[10];

static void pin_converters(void)
{
    static const char *const common[] = {"GB18030",     "GB2312",       "GBK",       "BIG5",
                                         "ISO-8859-1",  "WINDOWS-1252", "SHIFT_JIS", "EUC-KR",
                                         "ISO-2022-JP", "KOI8-R"};
    for (size_t i = 0; i < sizeof common / sizeof common[0] && i < sizeof pins / sizeof pins[0];
         i++)
        pins[i] = iconv_open("UTF-8", common[i]);
}

void pg_bwalk_pin_converters(void)
{
    pthread_once(&pins_once, pin_converters);
}

pigeon_err pg_bwalk_to_utf8(pg_buf *out, const char *charset, const char *in, size_t n, size_t max)
{
    char cs[40];
    snprintf(cs, sizeof cs, "%s", charset);
    for (char *c = cs; *c != '\0'; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    /* GB2312 and GBK mail is often written by encoders of GB18030, their superset. */
    if (strcmp(cs, "gb2312") == 0 || strcmp(cs, "gbk") == 0 || strcmp(cs, "x-gbk") == 0 ||
        strcmp(cs, "cp936") == 0)
        snprintf(cs, sizeof cs, "gb18030");
    if (!is_utf8_compatible(cs))
        pg_bwalk_pin_converters();
    iconv_t cd = is_utf8_compatible(cs) ? (iconv_t)-1 : iconv_open("UTF-8", cs);
    if (cd == (iconv_t)-1) {
        size_t room = out->len < max ? max - out->len : 0;
        pg_buf_append(out, in, n < room ? n : room);
        return out->err;
    }
    char chunk[4096];
    char *src = (char *)in;
    size_t left = n;
    while (left > 0 && out->len < max && out->err == PIGEON_OK) {
        char *dst = chunk;
        size_t room = sizeof chunk;
        size_t r = iconv(cd, &src, &left, &dst, &room);
        pg_buf_append(out, chunk, sizeof chunk - room);
        if (r == (size_t)-1 && errno != E2BIG) {
            /* EILSEQ or EINVAL: a byte the charset cannot read is dropped. */
            src++;
            left--;
        }
    }
    iconv_close(cd);
    return out->err;
}

pigeon_err pg_bwalk_decode(const pg_bwalk_part *part, pg_buf *out, size_t max, int utf8)
{
    pg_buf raw;
    const char *src = part->body;
    size_t n = part->body_len;
    pg_buf_init(&raw);
    if (part->cte != PG_BWALK_IDENTITY) {
        if (part->cte == PG_BWALK_BASE64)
            b64_lenient(&raw, part->body, part->body_len, max);
        else
            qp_lenient(&raw, part->body, part->body_len, max);
        if (raw.err != PIGEON_OK) {
            out->err = raw.err;
            pg_buf_cleanup(&raw);
            return out->err;
        }
        src = raw.data != NULL ? raw.data : "";
        n = raw.len;
    }
    size_t limit = out->len + max;
    if (utf8) {
        pg_bwalk_to_utf8(out, part->charset, src, n, limit);
    } else {
        pg_buf_append(out, src, n < max ? n : max);
    }
    pg_buf_cleanup(&raw);
    return out->err;
}

/* Whether the tag starting after '<' (name at s) ends a block of text. */
static int block_tag(const char *s, size_t n)
{
    static const char *const tags[] = {"br", "p",  "div", "tr", "li",    "h1", "h2",
                                       "h3", "h4", "h5",  "h6", "table", "td"};
    if (n > 0 && *s == '/')
        s++, n--;
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        size_t k = strlen(tags[i]);
        if (n >= k && strncasecmp(s, tags[i], k) == 0 &&
            (n == k || !((s[k] | 0x20) >= 'a' && (s[k] | 0x20) <= 'z')))
            return strcmp(tags[i], "td") == 0 ? 2 : 1;
    }
    return 0;
}

/* Appends the UTF-8 form of code point cp (invalid ones as '?'). */
static void put_cp(pg_buf *out, unsigned long cp)
{
    char u[4];
    if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        cp = '?';
    if (cp < 0x80) {
        pg_buf_putc(out, (char)cp);
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f));
        pg_buf_append(out, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        pg_buf_append(out, u, 3);
    } else {
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f));
        pg_buf_append(out, u, 4);
    }
}

/* Decodes the entity at s ('&' ...); returns the octets it used (1 when it is not one). */
static size_t entity(pg_buf *out, const char *s, size_t n)
{
    static const struct {
        const char *name;
        unsigned long cp;
    } named[] = {{"amp;", '&'},   {"lt;", '<'},   {"gt;", '>'},  {"quot;", '"'},
                 {"apos;", '\''}, {"nbsp;", ' '}, {"#39;", '\''}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        size_t k = strlen(named[i].name);
        if (n > k && strncasecmp(s + 1, named[i].name, k) == 0) {
            put_cp(out, named[i].cp);
            return k + 1;
        }
    }
    if (n > 3 && s[1] == '#') {
        int hex = s[2] == 'x' || s[2] == 'X';
        size_t j = 2 + (size_t)hex;
        unsigned long cp = 0;
        size_t digits = 0;
        while (j < n && digits < 7 &&
               (hex ? isxdigit((unsigned char)s[j]) : isdigit((unsigned char)s[j]))) {
            cp = cp * (hex ? 16 : 10) + (unsigned long)hexval((unsigned char)s[j]);
            j++, digits++;
        }
        if (digits > 0 && j < n && s[j] == ';') {
            put_cp(out, cp);
            return j + 1;
        }
    }
    pg_buf_putc(out, '&');
    return 1;
}

void pg_bwalk_html_text(pg_buf *out, const char *html, size_t n, size_t max)
{
    size_t limit = out->len + max;
    for (size_t i = 0; i < n && out->len < limit && out->err == PIGEON_OK;) {
        if (html[i] == '<') {
            const char *gt = memchr(html + i, '>', n - i);
            size_t tl = gt != NULL ? (size_t)(gt - html) - i - 1 : n - i - 1;
            int b = block_tag(html + i + 1, tl);
            /* Style and script content is not text. */
            if (tl >= 5 && (strncasecmp(html + i + 1, "style", 5) == 0 ||
                            strncasecmp(html + i + 1, "script", 6) == 0)) {
                const char *close = NULL;
                for (size_t j = i + 1; j + 1 < n && close == NULL; j++)
                    close = html[j] == '<' && html[j + 1] == '/' ? html + j : NULL;
                gt = close != NULL ? memchr(close, '>', (size_t)(html + n - close)) : NULL;
            }
            if (b != 0)
                pg_buf_putc(out, b == 2 ? ' ' : '\n');
            i = gt != NULL ? (size_t)(gt - html) + 1 : n;
        } else if (html[i] == '&') {
            i += entity(out, html + i, n - i);
        } else if (html[i] == '\r' || html[i] == '\n') {
            pg_buf_putc(out, ' ');
            i++;
        } else {
            pg_buf_putc(out, html[i]);
            i++;
        }
    }
}
