/*
 * html_images.c - local and data: images become inline parts referenced as cid: (RFC 2392).
 *
 * Mail clients do not fetch file paths, and Gmail and Outlook block data: URIs, so an
 * image must travel in the message (multipart/related, RFC 2387) for the HTML to show it.
 * This pass rewrites <img src>, the background attribute and url() in style attributes
 * (after inlining, so stylesheet backgrounds are covered) and lists each image once,
 * whatever the number of references. http(s): and other absolute URLs, protocol-relative
 * //host paths, fragments and cid: are left alone.
 */
#include <stdlib.h>
#include <string.h>

#include "codec/encode.h"
#include "html/html_int.h"

/* Largest number of distinct images one message may carry. */
#define MAX_IMAGES 1000

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void percent_decode(pg_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < n && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
            (l = hexval((unsigned char)s[i + 2])) >= 0) {
            pg_buf_putc(out, (char)(h * 16 + l));
            i += 2;
        } else {
            pg_buf_putc(out, s[i]);
        }
    }
}

/* What a URL refers to. */
enum url_kind { URL_LEAVE, URL_LOCAL, URL_DATA };

static enum url_kind classify(const char *u, size_t n)
{
    if (n == 0 || u[0] == '#' || (n >= 2 && u[0] == '/' && u[1] == '/'))
        return URL_LEAVE;
    if (n >= 5 && strncasecmp(u, "data:", 5) == 0)
        return URL_DATA;
    /* RFC 3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    size_t i = 0;
    if ((u[0] | 0x20) >= 'a' && (u[0] | 0x20) <= 'z') {
        while (i < n && (((u[i] | 0x20) >= 'a' && (u[i] | 0x20) <= 'z') ||
                         (u[i] >= '0' && u[i] <= '9') || strchr("+-.", u[i]) != NULL))
            i++;
        if (i < n && u[i] == ':' && i > 1)
            return URL_LEAVE; /* a one-letter "scheme" is a Windows drive: a local path */
    }
    return URL_LOCAL;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* A data: URI (RFC 2397) decoded; returns 0 or -1 when it is not one we can use. */
static int parse_data(const char *u, size_t n, pg_buf *bytes, char **type)
{
    const char *comma = memchr(u, ',', n);
    if (comma == NULL)
        return -1;
    const char *meta = u + 5;
    size_t mlen = (size_t)(comma - meta);
    int b64 = mlen >= 7 && strncasecmp(comma - 7, ";base64", 7) == 0;
    size_t tlen = strcspn(meta, ";,");
    if (tlen > mlen)
        tlen = mlen;
    const char *body = comma + 1;
    size_t blen = n - (size_t)(body - u);
    if (b64) {
        pg_buf enc;
        pg_buf_init(&enc);
        percent_decode(&enc, body, blen);
        pigeon_err err =
            enc.err ? enc.err : pg_b64_decode(bytes, enc.data ? enc.data : "", enc.len);
        pg_buf_cleanup(&enc);
        if (err != PIGEON_OK)
            return -1;
    } else {
        percent_decode(bytes, body, blen);
    }
    *type = NULL;
    if (tlen > 0 && tlen < 128 && memchr(meta, '/', tlen) != NULL &&
        strspn(meta, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&^_.+-/") >=
            tlen)
        *type = dup_n(meta, tlen);
    return bytes->err == PIGEON_OK ? 0 : -1;
}

/* The cid: for a new image: "img<N>.<name>@pigeon", the name reduced to safe characters. */
static char *make_cid(size_t n, const char *path)
{
    pg_buf b;
    pg_buf_init(&b);
    pg_buf_printf(&b, "img%zu", n + 1);
    if (path != NULL) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        pg_buf_putc(&b, '.');
        for (size_t i = 0; base[i] && i < 40; i++) {
            char c = base[i];
            int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '-' || c == '_';
            pg_buf_putc(&b, ok ? c : '_');
        }
    }
    pg_buf_puts(&b, "@pigeon");
    size_t len;
    return pg_buf_detach(&b, &len);
}

/* The image for url, added on first use; returns its cid or NULL (left alone / error). */
static const char *image_for(pigeon_html_result *res, const char *u, size_t n, pigeon_err *err)
{
    enum url_kind kind = classify(u, n);
    if (kind == URL_LEAVE)
        return NULL;
    pg_buf bytes;
    char *type = NULL;
    pg_buf_init(&bytes);
    if (kind == URL_DATA) {
        if (parse_data(u, n, &bytes, &type) != 0) {
            pg_buf_cleanup(&bytes);
            return NULL;
        }
    } else {
        size_t end = strcspn(u, "?#");
        percent_decode(&bytes, u, end < n ? end : n);
        if (bytes.len == 0 || memchr(bytes.data, '\0', bytes.len) != NULL) {
            pg_buf_cleanup(&bytes);
            return NULL;
        }
    }
    for (size_t i = 0; i < res->nimages; i++) {
        pigeon_html_image *im = &res->images[i];
        int same = kind == URL_DATA
                       ? im->data != NULL && im->len == bytes.len &&
                             memcmp(im->data, bytes.data ? bytes.data : "", bytes.len) == 0
                       : im->path != NULL && strcmp(im->path, bytes.data) == 0;
        if (same) {
            pg_buf_cleanup(&bytes);
            free(type);
            return im->cid;
        }
    }
    pigeon_html_image *grown = NULL;
    if (res->nimages < MAX_IMAGES)
        grown = realloc(res->images, (res->nimages + 1) * sizeof *grown);
    if (grown == NULL) {
        *err = res->nimages < MAX_IMAGES ? PIGEON_ERR_NOMEM : PIGEON_ERR_TOO_LARGE;
        pg_buf_cleanup(&bytes);
        free(type);
        return NULL;
    }
    res->images = grown;
    pigeon_html_image *im = &res->images[res->nimages];
    memset(im, 0, sizeof *im);
    size_t len;
    char *s = pg_buf_detach(&bytes, &len);
    if (kind == URL_DATA) {
        im->data = s;
        im->len = len;
        im->content_type = type;
    } else {
        im->path = s;
    }
    im->cid = make_cid(res->nimages, im->path);
    if (s == NULL || im->cid == NULL) {
        free(s);
        free(im->cid);
        free(type);
        *err = PIGEON_ERR_NOMEM;
        return NULL;
    }
    res->nimages++;
    return im->cid;
}

static void set(pg_html_el *el, int slot, pg_buf *v, pigeon_err *err)
{
    size_t len;
    char *s = pg_buf_detach(v, &len);
    if (s == NULL) {
        *err = PIGEON_ERR_NOMEM;
        return;
    }
    free(el->set[slot]);
    el->set[slot] = s;
}

/* Rewrites the url() values of a style attribute; returns 1 if anything changed. */
static int rewrite_css(const char *css, pg_buf *out, pigeon_html_result *res, pigeon_err *err)
{
    pg_css_lexer lx;
    pg_css_tok t;
    size_t copied = 0;
    int changed = 0;
    pg_buf raw;
    pg_buf_init(&raw);
    pg_css_lexer_init(&lx, css, strlen(css));
    for (int in_url = 0;;) {
        pg_css_next(&lx, &t);
        if (t.type == PG_CSS_EOF)
            break;
        int is_url = t.type == PG_CSS_URL || (in_url && t.type == PG_CSS_STRING);
        in_url =
            t.type == PG_CSS_FUNCTION && t.vlen == 3 && strncasecmp(css + t.vstart, "url", 3) == 0;
        if (!is_url)
            continue;
        pg_buf_reset(&raw);
        pg_css_unescape(css + t.vstart, t.vlen, &raw);
        const char *cid = raw.len ? image_for(res, raw.data, raw.len, err) : NULL;
        if (cid == NULL)
            continue;
        pg_buf_append(out, css + copied, t.vstart - copied);
        pg_buf_printf(out, "cid:%s", cid);
        copied = t.vstart + t.vlen;
        changed = 1;
    }
    pg_buf_append(out, css + copied, strlen(css) - copied);
    pg_buf_cleanup(&raw);
    return changed;
}

/* Rewrites one attribute holding a URL. */
static void rewrite_attr(pg_html_el *el, int slot, pigeon_html_result *res, pigeon_err *err)
{
    const char *v = pg_html_attr_now(el, pg_html_slot_names[slot]);
    if (v == NULL)
        return;
    size_t a = 0, b = strlen(v);
    while (a < b && strchr(" \t\r\n\f", v[a]))
        a++;
    while (b > a && strchr(" \t\r\n\f", v[b - 1]))
        b--;
    const char *cid = image_for(res, v + a, b - a, err);
    if (cid == NULL)
        return;
    pg_buf out;
    pg_buf_init(&out);
    pg_buf_printf(&out, "cid:%s", cid);
    set(el, slot, &out, err);
}

pigeon_err pg_html_images(pg_html_doc *doc, pigeon_html_result *res)
{
    pigeon_err err = PIGEON_OK;
    pg_buf css;
    pg_buf_init(&css);
    for (size_t i = 0; i < doc->count && err == PIGEON_OK; i++) {
        pg_html_el *el = &doc->els[i];
        if (strcmp(el->tag, "img") == 0)
            rewrite_attr(el, PG_SLOT_SRC, res, &err);
        rewrite_attr(el, PG_SLOT_BACKGROUND, res, &err);
        const char *style = pg_html_attr_now(el, "style");
        pg_buf_reset(&css);
        if (style != NULL && strstr(style, "url") != NULL && rewrite_css(style, &css, res, &err))
            set(el, PG_SLOT_STYLE, &css, &err);
    }
    pg_buf_cleanup(&css);
    return err;
}

void pg_html_images_free(pigeon_html_image *images, size_t n)
{
    if (images == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(images[i].cid);
        free(images[i].path);
        free(images[i].data);
        free(images[i].content_type);
    }
    free(images);
}
