/*
 * http_response.c - the pure parts of the HTTP client (see http_client.h): URLs
 * (RFC 3986 3, http and https only) and response heads (RFC 9112 4 status line, 5 fields,
 * 6.3 body length).
 */
#include <stdio.h>
#include <string.h>

#include "http/http_client.h"

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* RFC 9110 5.6.2: tchar. */
static int tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int fail(char *why, size_t cap, const char *text)
{
    snprintf(why, cap, "%s", text);
    return -1;
}

/* Splits "host[:port]" or "[v6][:port]" into out. */
static int url_authority(const char *a, size_t n, pg_http_url *out, char *why, size_t cap)
{
    const char *host = a, *port = NULL;
    size_t hlen = n;
    if (n > 0 && a[0] == '[') {
        const char *end = memchr(a, ']', n);
        if (end == NULL)
            return fail(why, cap, "an IPv6 host without its closing bracket");
        host = a + 1;
        hlen = (size_t)(end - a) - 1;
        if ((size_t)(end - a) + 1 < n) {
            if (end[1] != ':')
                return fail(why, cap, "junk after the IPv6 host");
            port = end + 2;
        }
    } else {
        const char *colon = memchr(a, ':', n);
        if (colon != NULL) {
            hlen = (size_t)(colon - a);
            port = colon + 1;
        }
    }
    if (hlen == 0 || hlen >= sizeof out->host)
        return fail(why, cap, "an empty or too long host");
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!(c == '-' || c == '.' || c == '_' || c == ':' || (c >= '0' && c <= '9') ||
              (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return fail(why, cap, "a host with characters a host name cannot have");
    }
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    if (port != NULL) {
        size_t plen = n - (size_t)(port - a);
        unsigned long v = 0;
        if (plen == 0 || plen > 5)
            return fail(why, cap, "a bad port");
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9')
                return fail(why, cap, "a bad port");
            v = v * 10 + (unsigned long)(port[i] - '0');
        }
        if (v == 0 || v > 65535)
            return fail(why, cap, "a port out of range (1-65535)");
        out->port = (uint16_t)v;
    }
    snprintf(out->authority, sizeof out->authority, "%.*s", (int)n, a);
    return 0;
}

int pg_http_url_parse(const char *url, pg_http_url *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (url == NULL)
        return fail(why, cap, "no URL");
    size_t len = strlen(url);
    if (len > 2000)
        return fail(why, cap, "a URL over 2000 octets");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f)
            return fail(why, cap, "a space, control or non-ASCII character (percent-encode it)");
    }
    const char *rest;
    if (strncmp(url, "https://", 8) == 0) {
        out->tls = 1;
        out->port = 443;
        rest = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        out->port = 80;
        rest = url + 7;
    } else
        return fail(why, cap, "not an http:// or https:// URL");
    if (strchr(rest, '#') != NULL)
        return fail(why, cap, "a fragment (#...), which is never sent");
    size_t alen = strcspn(rest, "/?");
    if (memchr(rest, '@', alen) != NULL)
        return fail(why, cap, "user:password@ in the URL: put the secret in the config instead");
    if (url_authority(rest, alen, out, why, cap) != 0)
        return -1;
    const char *path = rest + alen;
    if (strlen(path) + 2 > sizeof out->path)
        return fail(why, cap, "a path too long");
    snprintf(out->path, sizeof out->path, "%s%s", path[0] == '/' ? "" : "/", path);
    return 0;
}

/* Parses the status line ending at eol; 0 or -1. */
static int status_line(const char *p, size_t n, pg_http_response_head *out)
{
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    for (int i = 9; i < 12; i++)
        if (p[i] < '0' || p[i] > '9')
            return -1;
    out->minor = p[7] - '0';
    out->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (out->status < 100 || (n > 12 && p[12] != ' '))
        return -1;
    out->reason = n > 13 ? p + 13 : p + n;
    out->reason_len = n > 13 ? n - 13 : 0;
    for (size_t i = 0; i < out->reason_len; i++) {
        unsigned char c = (unsigned char)out->reason[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -1;
    }
    out->keep_alive = out->minor == 1;
    return 0;
}

/* Applies one field (name, value trimmed); 0 or -1. */
static int field(const char *name, size_t nlen, const char *v, size_t vlen,
                 pg_http_response_head *out)
{
    if (ieq(name, nlen, "content-length")) {
        uint64_t x = 0;
        if (vlen == 0 || vlen > 18)
            return -1;
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return -1;
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        if (out->has_length && out->content_length != x)
            return -1; /* two lengths: which one ends the response? */
        out->content_length = x;
        out->has_length = 1;
    } else if (ieq(name, nlen, "transfer-encoding")) {
        if (!ieq(v, vlen, "chunked") || out->chunked)
            return -1;
        out->chunked = 1;
    } else if (ieq(name, nlen, "connection")) {
        if (ieq(v, vlen, "close"))
            out->keep_alive = 0;
        else if (ieq(v, vlen, "keep-alive") && out->minor == 0)
            out->keep_alive = 1;
    } else if (ieq(name, nlen, "location")) {
        out->location = v;
        out->location_len = vlen;
    }
    return 0;
}

/* Parses one field line [p, p+n) (without CRLF); 0 or -1. */
static int field_line(const char *p, size_t n, pg_http_response_head *out)
{
    size_t i = 0;
    while (i < n && tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i >= n || p[i] != ':')
        return -1; /* no name, or white space before the colon (RFC 9112 5.1) */
    size_t vs = i + 1, ve = n;
    while (vs < ve && (p[vs] == ' ' || p[vs] == '\t'))
        vs++;
    while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
        ve--;
    for (size_t k = vs; k < ve; k++) {
        unsigned char c = (unsigned char)p[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -1;
    }
    return field(p, i, p + vs, ve - vs, out);
}

long pg_http_parse_response(const char *buf, size_t len, size_t max_head,
                            pg_http_response_head *out)
{
    size_t max = max_head > 0 ? max_head : 32768, off = 0;
    int fields = 0;
    memset(out, 0, sizeof *out);
    for (int line = 0;; line++) {
        const char *lf = memchr(buf + off, '\n', len - off);
        if (lf == NULL)
            return len > max ? -2 : 0;
        size_t end = (size_t)(lf - buf);
        if (end + 1 > max)
            return -2;
        if (end == off || buf[end - 1] != '\r')
            return -1; /* a bare LF */
        size_t n = end - 1 - off;
        if (memchr(buf + off, '\r', n) != NULL)
            return -1; /* a bare CR */
        if (line == 0) {
            if (status_line(buf + off, n, out) != 0)
                return -1;
        } else if (n == 0) {
            if (out->chunked && out->has_length)
                return -1; /* both: a smuggling shape (RFC 9112 6.1) */
            return (long)(end + 1);
        } else if (buf[off] == ' ' || buf[off] == '\t' || ++fields > 100 ||
                   field_line(buf + off, n, out) != 0)
            return fields > 100 ? -2 : -1; /* obsolete line folding (RFC 9112 5.2) */
        off = end + 1;
    }
}
