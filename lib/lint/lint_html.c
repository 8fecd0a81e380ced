/*
 * lint_html.c - the lint's HTML scanner (see lint_html.h): one pass over the markup, a
 * state per construct (text, tag, comment, raw text of script/style), collecting <a href>
 * with its text and <img src>, and counting visible characters.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lint/lint_html.h"
#include "util/buf.h"

/* Longest link text kept (enough to see a domain in it). */
#define LINK_TEXT_MAX 512
/* Longest attribute value kept. */
#define ATTR_MAX 4096

/* The scanner's cursor and what it has found. */
typedef struct scan {
    const char *p;     /* next byte */
    const char *end;   /* end of input */
    pg_lint_html *out; /* the results */
    pg_buf link_text;  /* text of the <a> being read */
    int in_link;       /* inside <a href> */
    int nomem;         /* an allocation failed */
} scan;

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f';
}

/* Copies v[0..n) decoding the few entities URLs carry (&amp; &quot; &#NN;). */
static char *attr_copy(const char *v, size_t n)
{
    if (n > ATTR_MAX)
        n = ATTR_MAX;
    char *o = malloc(n + 1);
    size_t k = 0;
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '&' && n - i >= 5 && strncasecmp(v + i, "&amp;", 5) == 0) {
            o[k++] = '&';
            i += 4;
        } else if (v[i] == '&' && n - i >= 6 && strncasecmp(v + i, "&quot;", 6) == 0) {
            o[k++] = '"';
            i += 5;
        } else {
            o[k++] = v[i];
        }
    }
    while (k > 0 && is_space(o[k - 1]))
        k--;
    size_t lead = 0;
    while (lead < k && is_space(o[lead]))
        lead++;
    memmove(o, o + lead, k - lead);
    o[k - lead] = '\0';
    return o;
}

/* Visible text: counted, and kept while inside a link. */
static void text(scan *s, const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        int space = is_space((char)c);
        if (!space && (c & 0xC0) != 0x80)
            s->out->text_chars++;
        if (s->in_link && s->link_text.len < LINK_TEXT_MAX) {
            if (space) {
                if (s->link_text.len > 0 && s->link_text.data[s->link_text.len - 1] != ' ')
                    pg_buf_putc(&s->link_text, ' ');
            } else {
                pg_buf_putc(&s->link_text, (char)c);
            }
        }
    }
}

/* An entity in text: &nbsp; is space, any other one character. */
static void entity(scan *s)
{
    const char *q = s->p + 1;
    while (q < s->end && q - s->p < 12 && (isalnum((unsigned char)*q) || *q == '#'))
        q++;
    if (q < s->end && *q == ';') {
        size_t n = (size_t)(q - s->p) + 1;
        if (n == 6 && strncasecmp(s->p, "&nbsp;", 6) == 0)
            text(s, " ", 1);
        else if (n == 5 && strncasecmp(s->p, "&amp;", 5) == 0)
            text(s, "&", 1);
        else if (n == 5 && strncmp(s->p, "&#46;", 5) == 0)
            text(s, ".", 1);
        else
            text(s, "x", 1);
        s->p = q + 1;
        return;
    }
    text(s, "&", 1);
    s->p++;
}

/* Skips to just after needle (case-insensitive), or to the end. */
static void skip_past(scan *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; s->p + n <= s->end; s->p++)
        if (strncasecmp(s->p, needle, n) == 0) {
            s->p += n;
            return;
        }
    s->p = s->end;
}

/* Reads one attribute at s->p; sets name/value spans (value may be empty). Returns 0 at
 * the end of the tag. */
static int attribute(scan *s, const char **name, size_t *nlen, const char **val, size_t *vlen)
{
    while (s->p < s->end && (is_space(*s->p) || *s->p == '/'))
        s->p++;
    if (s->p >= s->end || *s->p == '>')
        return 0;
    *name = s->p;
    while (s->p < s->end && !is_space(*s->p) && *s->p != '=' && *s->p != '>' && *s->p != '/')
        s->p++;
    *nlen = (size_t)(s->p - *name);
    *val = s->p;
    *vlen = 0;
    while (s->p < s->end && is_space(*s->p))
        s->p++;
    if (s->p >= s->end || *s->p != '=')
        return 1;
    s->p++;
    while (s->p < s->end && is_space(*s->p))
        s->p++;
    if (s->p < s->end && (*s->p == '"' || *s->p == '\'')) {
        char q = *s->p++;
        *val = s->p;
        while (s->p < s->end && *s->p != q)
            s->p++;
        *vlen = (size_t)(s->p - *val);
        if (s->p < s->end)
            s->p++;
    } else {
        *val = s->p;
        while (s->p < s->end && !is_space(*s->p) && *s->p != '>')
            s->p++;
        *vlen = (size_t)(s->p - *val);
    }
    return 1;
}

static void end_link(scan *s)
{
    if (!s->in_link)
        return;
    pg_lint_link *l = &s->out->links[s->out->nlinks - 1];
    l->text = attr_copy(s->link_text.data ? s->link_text.data : "", s->link_text.len);
    s->nomem |= l->text == NULL;
    pg_buf_reset(&s->link_text);
    s->in_link = 0;
}

/* A start or end tag at s->p (just after '<'). */
static void tag(scan *s)
{
    int closing = s->p < s->end && *s->p == '/';
    if (closing)
        s->p++;
    const char *name = s->p;
    while (s->p < s->end && isalnum((unsigned char)*s->p))
        s->p++;
    size_t nl = (size_t)(s->p - name);
    int is_a = nl == 1 && (*name == 'a' || *name == 'A');
    int is_img = nl == 3 && strncasecmp(name, "img", 3) == 0;
    if (closing) {
        if (is_a)
            end_link(s);
        skip_past(s, ">");
        return;
    }
    const char *an, *av;
    size_t anl, avl;
    while (attribute(s, &an, &anl, &av, &avl)) {
        if (is_a && anl == 4 && strncasecmp(an, "href", 4) == 0 &&
            s->out->nlinks < PG_LINT_HTML_MAX) {
            end_link(s);
            pg_lint_link *l = &s->out->links[s->out->nlinks++];
            l->href = attr_copy(av, avl);
            s->nomem |= l->href == NULL;
            s->in_link = 1;
        } else if (is_img && anl == 3 && strncasecmp(an, "src", 3) == 0 &&
                   s->out->nimages < PG_LINT_HTML_MAX) {
            char *src = attr_copy(av, avl);
            s->nomem |= src == NULL;
            s->out->images[s->out->nimages++] = src;
        }
    }
    if (s->p < s->end)
        s->p++; /* '>' */
    /* Raw text: nothing inside script or style is markup or visible. */
    if (nl == 6 && strncasecmp(name, "script", 6) == 0) {
        skip_past(s, "</script");
        skip_past(s, ">");
    } else if (nl == 5 && strncasecmp(name, "style", 5) == 0) {
        skip_past(s, "</style");
        skip_past(s, ">");
    }
}

pigeon_err pg_lint_html_scan(const char *html, size_t len, pg_lint_html *out)
{
    scan s = {html, html + len, out, {0}, 0, 0};
    memset(out, 0, sizeof *out);
    pg_buf_init(&s.link_text);
    while (s.p < s.end) {
        const char *lt = memchr(s.p, '<', (size_t)(s.end - s.p));
        const char *stop = lt != NULL ? lt : s.end;
        const char *amp = memchr(s.p, '&', (size_t)(stop - s.p));
        if (amp != NULL) {
            text(&s, s.p, (size_t)(amp - s.p));
            s.p = amp;
            entity(&s);
            continue;
        }
        text(&s, s.p, (size_t)(stop - s.p));
        s.p = stop;
        if (s.p >= s.end)
            break;
        s.p++; /* '<' */
        if (s.end - s.p >= 3 && strncmp(s.p, "!--", 3) == 0)
            skip_past(&s, "-->");
        else if (s.p < s.end && (*s.p == '!' || *s.p == '?'))
            skip_past(&s, ">");
        else if (s.p < s.end && (isalpha((unsigned char)*s.p) || *s.p == '/'))
            tag(&s);
        else
            text(&s, "<", 1);
    }
    end_link(&s);
    pg_buf_cleanup(&s.link_text);
    return s.nomem ? PIGEON_ERR_NOMEM : PIGEON_OK;
}

void pg_lint_html_cleanup(pg_lint_html *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->nlinks; i++) {
        free(h->links[i].href);
        free(h->links[i].text);
    }
    for (size_t i = 0; i < h->nimages; i++)
        free(h->images[i]);
    memset(h, 0, sizeof *h);
}
