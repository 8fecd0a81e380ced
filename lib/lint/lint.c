/*
 * lint.c - the message lint (see pigeon/lint.h): a walk over the MIME tree (RFC 2045,
 * RFC 2046 5.1 multipart bodies split at their boundary lines), then checks on the top
 * header, the text and HTML parts and what the HTML links to.
 *
 * Thresholds, and where they come from:
 *   - Gmail clips a message whose HTML is over 102 KB ("[Message clipped]"), hiding what
 *     follows, the unsubscribe link included.
 *   - Gmail and Yahoo (February 2024) require bulk senders to DKIM-sign aligned with the
 *     From domain (DMARC, RFC 7489 3.1.1) and to offer one-click unsubscribe (RFC 8058).
 *   - SpamAssassin scores base64 text that is plain ASCII (MIME_BASE64_TEXT), subjects in
 *     capitals (SUBJ_ALL_CAPS) and exclamation marks, image-heavy HTML (HTML_IMAGE_ONLY_*),
 *     and URL shorteners (URI_*SHORT*).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/encode.h"
#include "dkim/dkim_tags.h"
#include "lint/lint_html.h"
#include "mime/rawmsg.h"
#include "pigeon/dkim.h"
#include "pigeon/lint.h"

/* Gmail's clipping threshold. */
#define HTML_CLIP_BYTES (102 * 1024)
/* Visible characters under which HTML with images counts as image-only or nearly. */
#define IMAGE_ONLY_TEXT 200
/* Bounds of the MIME walk. */
#define DEPTH_MAX      20
#define PARTS_MAX      500
#define HTML_PARTS_MAX 4
#define CIDS_MAX       64

static const char *const shorteners[] = {
    "bit.ly",     "t.co",    "tinyurl.com", "goo.gl",      "ow.ly",  "is.gd",  "buff.ly",
    "rebrand.ly", "cutt.ly", "t.ly",        "shorturl.at", "rb.gy",  "s.id",   "tiny.cc",
    "bl.ink",     "dwz.cn",  "url.cn",      "t.cn",        "suo.im", "mrw.so", NULL,
};

/* What the walk has seen. */
typedef struct walk {
    pigeon_lint_report *r;             /* findings */
    int has_text;                      /* a text/plain part that is not an attachment */
    int has_html;                      /* a text/html part */
    size_t html_bytes;                 /* decoded HTML octets, all parts */
    pg_lint_html html[HTML_PARTS_MAX]; /* the scanned HTML parts */
    size_t nhtml;                      /* number of them */
    char *cids[CIDS_MAX];              /* Content-IDs of the parts, without <> */
    size_t ncids;                      /* number of them */
    size_t parts;                      /* parts seen */
    int nomem;                         /* an allocation failed */
} walk;

static void add(walk *w, pigeon_lint_severity sev, const char *code, const char *fix,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add(walk *w, pigeon_lint_severity sev, const char *code, const char *fix,
                const char *fmt, ...)
{
    pigeon_lint_report *r = w->r;
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        pigeon_lint_finding *items = realloc(r->items, cap * sizeof *items);
        if (items == NULL) {
            w->nomem = 1;
            return;
        }
        r->items = items;
        r->cap = cap;
    }
    char reason[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    pigeon_lint_finding *f = &r->items[r->count];
    f->severity = sev;
    f->code = code;
    f->reason = strdup(reason);
    f->fix = strdup(fix);
    if (f->reason == NULL || f->fix == NULL) {
        free(f->reason);
        free(f->fix);
        w->nomem = 1;
        return;
    }
    r->count++;
}

/* The value of a header parameter (RFC 2045 5.1), unquoted, into out; 0 if absent. */
static int param(const char *v, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strchr(v, ';'); p != NULL; p = strchr(p + 1, ';')) {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncasecmp(q, name, nl) != 0 || q[nl] != '=')
            continue;
        q += nl + 1;
        size_t k = 0;
        if (*q == '"') {
            for (q++; *q && *q != '"' && k + 1 < cap; q++)
                out[k++] = *q == '\\' && q[1] ? *++q : *q;
        } else {
            for (; *q && *q != ';' && *q != ' ' && *q != '\t' && k + 1 < cap; q++)
                out[k++] = *q;
        }
        out[k] = '\0';
        return k > 0;
    }
    return 0;
}

/* "type/subtype" of a Content-Type value, lower case, into out. */
static void media_type(const char *v, char *out, size_t cap)
{
    size_t k = 0;
    while (*v == ' ' || *v == '\t')
        v++;
    for (; *v && *v != ';' && *v != ' ' && *v != '\t' && k + 1 < cap; v++)
        out[k++] = (*v >= 'A' && *v <= 'Z') ? (char)(*v + 32) : *v;
    out[k] = '\0';
}

static const char *field(const pg_rawmsg *m, const char *name)
{
    const pg_rawmsg_field *f = pg_rawmsg_find(m, name, 0);
    return f != NULL ? f->value : NULL;
}

static void part(walk *w, const char *p, size_t len, int depth, int top, pg_rawmsg *keep);

/* Is the line at l (n octets, no line end) the delimiter "--boundary" or the close? */
static int delimiter(const char *l, size_t n, const char *b, size_t bl, int *close)
{
    while (n > 0 && (l[n - 1] == ' ' || l[n - 1] == '\t'))
        n--; /* RFC 2046 5.1.1: transport padding */
    if (n < bl + 2 || l[0] != '-' || l[1] != '-' || memcmp(l + 2, b, bl) != 0)
        return 0;
    if (n == bl + 2) {
        *close = 0;
        return 1;
    }
    if (n == bl + 4 && l[bl + 2] == '-' && l[bl + 3] == '-') {
        *close = 1;
        return 1;
    }
    return 0;
}

/* RFC 2046 5.1.1: the body parts between delimiter lines; the line end before a delimiter
 * belongs to it. */
static void multipart(walk *w, const char *body, size_t len, const char *boundary, int depth)
{
    size_t bl = strlen(boundary);
    const char *p = body, *end = body + len, *start = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        size_t n = (size_t)(le - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        int close = 0;
        if (delimiter(p, n, boundary, bl, &close)) {
            if (start != NULL) {
                const char *stop = p;
                if (stop > start && stop[-1] == '\n')
                    stop--;
                if (stop > start && stop[-1] == '\r')
                    stop--;
                part(w, start, (size_t)(stop - start), depth + 1, 0, NULL);
            }
            if (close)
                return;
            start = nl != NULL ? nl + 1 : end;
        }
        p = nl != NULL ? nl + 1 : end;
    }
    if (start != NULL && start < end) /* no closing delimiter: the rest is the last part */
        part(w, start, (size_t)(end - start), depth + 1, 0, NULL);
}

/* Decodes a part body per its Content-Transfer-Encoding into out. */
static void decode(const char *cte, const char *body, size_t len, pg_buf *out)
{
    if (cte != NULL && strcasecmp(cte, "base64") == 0 && pg_b64_decode(out, body, len) == PIGEON_OK)
        return;
    if (cte != NULL && strcasecmp(cte, "quoted-printable") == 0 &&
        pg_qp_decode(out, body, len) == PIGEON_OK)
        return;
    pg_buf_reset(out);
    pg_buf_append(out, body, len);
}

static int all_ascii(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return 0;
    return 1;
}

/* A leaf part: text, HTML, image, anything else. */
static void leaf(walk *w, const pg_rawmsg *m, const char *type, const char *body, size_t len)
{
    const char *cte = field(m, "Content-Transfer-Encoding");
    const char *disp = field(m, "Content-Disposition");
    int attachment = disp != NULL && strncasecmp(disp, "attachment", 10) == 0;
    const char *cid = field(m, "Content-ID");
    if (cid != NULL && w->ncids < CIDS_MAX) {
        size_t n = strlen(cid);
        if (n >= 2 && cid[0] == '<' && cid[n - 1] == '>')
            w->cids[w->ncids] = strndup(cid + 1, n - 2);
        else
            w->cids[w->ncids] = strdup(cid);
        w->nomem |= w->cids[w->ncids] == NULL;
        w->ncids += w->cids[w->ncids] != NULL;
    }
    int is_text = strcmp(type, "text/plain") == 0, is_html = strcmp(type, "text/html") == 0;
    if (attachment || (!is_text && !is_html))
        return;
    pg_buf dec;
    pg_buf_init(&dec);
    decode(cte, body, len, &dec);
    const char *d = dec.data ? dec.data : "";
    if (cte != NULL && strcasecmp(cte, "base64") == 0 && all_ascii(d, dec.len))
        add(w, PIGEON_LINT_WARNING, "base64_text",
            "send plain-ASCII text as 7bit or quoted-printable (pigeon send does)",
            "a %s part is base64-encoded although it is plain ASCII (SpamAssassin "
            "MIME_BASE64_TEXT)",
            type);
    if (is_text) {
        w->has_text = 1;
    } else {
        w->has_html = 1;
        w->html_bytes += dec.len;
        if (w->nhtml < HTML_PARTS_MAX &&
            pg_lint_html_scan(d, dec.len, &w->html[w->nhtml++]) != PIGEON_OK)
            w->nomem = 1;
    }
    pg_buf_cleanup(&dec);
}

static void part(walk *w, const char *p, size_t len, int depth, int top, pg_rawmsg *keep)
{
    pg_rawmsg m;
    char err[200];
    if (depth > DEPTH_MAX || ++w->parts > PARTS_MAX)
        return;
    if (pg_rawmsg_parse(&m, p, len, err, sizeof err) != PIGEON_OK) {
        add(w, top ? PIGEON_LINT_ERROR : PIGEON_LINT_WARNING, "header_invalid",
            "write every header line as \"Name: value\" (RFC 5322 2.2)",
            "the %s header does not parse: %s", top ? "message" : "MIME part", err);
        return;
    }
    const char *ct = field(&m, "Content-Type");
    char type[128], boundary[256];
    media_type(ct != NULL ? ct : "text/plain", type, sizeof type);
    const char *body = p + m.body_offset;
    size_t blen = len - m.body_offset;
    if (strncmp(type, "multipart/", 10) == 0) {
        if (ct != NULL && param(ct, "boundary", boundary, sizeof boundary))
            multipart(w, body, blen, boundary, depth);
        else
            add(w, PIGEON_LINT_ERROR, "mime_no_boundary",
                "give the multipart Content-Type a boundary parameter (RFC 2046 5.1.1)",
                "a %s part has no boundary: clients show it as one blob", type);
    } else {
        leaf(w, &m, type, body, blen);
    }
    if (keep != NULL)
        *keep = m;
    else
        pg_rawmsg_cleanup(&m);
}

/* ---- checks on the top header ---- */

static void check_subject(walk *w, const pg_rawmsg *m)
{
    const char *raw = field(m, "Subject");
    if (raw == NULL) {
        add(w, PIGEON_LINT_WARNING, "no_subject", "give the message a Subject",
            "the message has no Subject (filters score it, readers skip it)");
        return;
    }
    pg_buf s;
    pg_buf_init(&s);
    if (pg_ew_decode(&s, raw, strlen(raw)) != PIGEON_OK) {
        pg_buf_reset(&s);
        pg_buf_puts(&s, raw);
    }
    size_t letters = 0, upper = 0, bangs = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.data[i];
        letters += (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        upper += c >= 'A' && c <= 'Z';
        bangs += c == '!';
        /* U+FF01 FULLWIDTH EXCLAMATION MARK, EF BC 81 in UTF-8. */
        if (c == 0xEF && i + 2 < s.len && (unsigned char)s.data[i + 1] == 0xBC &&
            (unsigned char)s.data[i + 2] == 0x81)
            bangs++;
    }
    if (letters >= 8 && upper * 10 >= letters * 7)
        add(w, PIGEON_LINT_WARNING, "subject_caps", "write the Subject in sentence case",
            "the Subject is in capitals (%zu of %zu letters; SpamAssassin SUBJ_ALL_CAPS)", upper,
            letters);
    if (bangs >= 2)
        add(w, PIGEON_LINT_WARNING, "subject_exclamation", "use at most one exclamation mark",
            "the Subject has %zu exclamation marks", bangs);
    pg_buf_cleanup(&s);
}

/* The d= of each DKIM-Signature, or the configured one; aligned with From? */
static void check_alignment(walk *w, const pg_rawmsg *m, const pigeon_lint_opts *o)
{
    pigeon_mailbox from = {0};
    char err[200];
    if (pg_rawmsg_from(m, &from, err, sizeof err) != PIGEON_OK) {
        add(w, PIGEON_LINT_ERROR, "from_invalid", "give the message one From with an address",
            "the From field is missing or does not parse%s%s", err[0] ? ": " : "", err);
        return;
    }
    size_t nsig = pg_rawmsg_count(m, "DKIM-Signature");
    int aligned = 0;
    char d[256] = "";
    for (size_t i = 0; i < nsig; i++) {
        const char *v = pg_rawmsg_find(m, "DKIM-Signature", i)->value, *dv;
        size_t dl;
        if (pg_dkim_tag_find(v, strlen(v), "d", &dv, &dl) && dl < sizeof d) {
            memcpy(d, dv, dl);
            d[dl] = '\0';
            aligned |= pigeon_dkim_domain_covers(d, from.domain_ascii) ||
                       pigeon_dkim_domain_covers(from.domain_ascii, d);
        }
    }
    if (nsig == 0 && o->dkim_domain != NULL) {
        snprintf(d, sizeof d, "%s", o->dkim_domain);
        aligned = pigeon_dkim_domain_covers(d, from.domain_ascii) ||
                  pigeon_dkim_domain_covers(from.domain_ascii, d);
    }
    if (d[0] != '\0' && !aligned)
        add(w, PIGEON_LINT_ERROR, "dkim_not_aligned",
            "sign with d= the From domain or its parent (dkim_domain)",
            "the From domain %s is not aligned with the DKIM d=%s: DMARC fails, Gmail and Yahoo "
            "reject or junk it",
            from.domain_ascii, d);
    pigeon_mailbox_cleanup(&from);
}

static void check_bulk(walk *w, const pg_rawmsg *m, const pigeon_lint_opts *o)
{
    const char *prec = field(m, "Precedence");
    int bulk = o->bulk ||
               (prec != NULL && (strcasecmp(prec, "bulk") == 0 || strcasecmp(prec, "list") == 0));
    const char *lu = field(m, "List-Unsubscribe");
    if (bulk && lu == NULL)
        add(w, PIGEON_LINT_ERROR, "no_unsubscribe",
            "add List-Unsubscribe and List-Unsubscribe-Post (pigeon send --unsubscribe URL)",
            "bulk mail without List-Unsubscribe: Gmail and Yahoo require one-click "
            "unsubscribe (RFC 8058)");
    else if (lu != NULL && strstr(lu, "<https://") != NULL &&
             field(m, "List-Unsubscribe-Post") == NULL)
        add(w, PIGEON_LINT_WARNING, "no_one_click",
            "add List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058)",
            "List-Unsubscribe has an https URL but no List-Unsubscribe-Post");
}

/* ---- checks on the HTML: links and images ---- */

/* The host of an http(s) URL, lower case, "www." dropped, into out; 0 if none. */
static int url_host(const char *url, char *out, size_t cap)
{
    const char *p = url;
    if (strncasecmp(p, "http://", 7) == 0)
        p += 7;
    else if (strncasecmp(p, "https://", 8) == 0)
        p += 8;
    else
        return 0;
    const char *end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at != NULL)
        p = at + 1; /* userinfo: the host is after it */
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (colon != NULL)
        end = colon;
    size_t n = (size_t)(end - p);
    if (n == 0 || n >= cap)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == ' ' || c == '"' || c == '<' || c == '>' || c == '\\')
            return 0;
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    out[n] = '\0';
    if (strncmp(out, "www.", 4) == 0)
        memmove(out, out + 4, n - 3);
    return strchr(out, '.') != NULL;
}

/* A domain the link text shows ("example.com", "https://www.example.com/x"), or 0. */
static int text_domain(const char *text, char *out, size_t cap)
{
    char url[600];
    while (*text == ' ')
        text++;
    if (strchr(text, ' ') != NULL || strchr(text, '.') == NULL || strchr(text, '@') != NULL)
        return 0;
    if (strncasecmp(text, "http://", 7) == 0 || strncasecmp(text, "https://", 8) == 0)
        snprintf(url, sizeof url, "%s", text);
    else
        snprintf(url, sizeof url, "http://%s", text);
    if (!url_host(url, out, cap))
        return 0;
    /* The last label must look like a TLD: letters only, two or more. */
    const char *tld = strrchr(out, '.') + 1;
    size_t tl = strlen(tld);
    if (tl < 2)
        return 0;
    for (size_t i = 0; i < tl; i++)
        if (!((tld[i] >= 'a' && tld[i] <= 'z') || (tld[i] == '-' && i > 0)))
            return 0;
    return 1;
}

static int is_shortener(const char *host)
{
    for (size_t i = 0; shorteners[i] != NULL; i++)
        if (strcmp(host, shorteners[i]) == 0)
            return 1;
    return 0;
}

static void check_links(walk *w, const pg_lint_html *h)
{
    char host[256], shown[256];
    for (size_t i = 0; i < h->nlinks; i++) {
        const pg_lint_link *l = &h->links[i];
        if (l->href == NULL || !url_host(l->href, host, sizeof host))
            continue;
        if (is_shortener(host))
            add(w, PIGEON_LINT_WARNING, "url_shortener", "link to the full URL on your own domain",
                "a link goes through the URL shortener %s (filters list shortened URLs)", host);
        if (l->text != NULL && text_domain(l->text, shown, sizeof shown) &&
            !pigeon_dkim_domain_covers(shown, host) && !pigeon_dkim_domain_covers(host, shown))
            add(w, PIGEON_LINT_ERROR, "link_mismatch",
                "make the link text show the domain the link goes to",
                "a link shows %s but goes to %s (the mark of phishing)", shown, host);
    }
}

static int has_cid(const walk *w, const char *id)
{
    for (size_t i = 0; i < w->ncids; i++)
        if (strcmp(w->cids[i], id) == 0)
            return 1;
    return 0;
}

static void check_images(walk *w, const pg_lint_html *h)
{
    char host[256];
    for (size_t i = 0; i < h->nimages; i++) {
        const char *src = h->images[i];
        if (src == NULL)
            continue;
        if (strncasecmp(src, "cid:", 4) == 0) {
            if (!has_cid(w, src + 4))
                add(w, PIGEON_LINT_ERROR, "image_invalid",
                    "attach the image inline with that Content-ID (pigeon send --inline)",
                    "an image refers to %.200s but no part has that Content-ID", src);
        } else if (strncasecmp(src, "https://", 8) == 0 && url_host(src, host, sizeof host)) {
            continue;
        } else if (strncasecmp(src, "http://", 7) == 0 && url_host(src, host, sizeof host)) {
            add(w, PIGEON_LINT_WARNING, "image_insecure",
                "serve images over https (clients block or flag http: images)",
                "an image is loaded over plain http: %.200s", src);
        } else if (strncasecmp(src, "data:", 5) == 0) {
            add(w, PIGEON_LINT_WARNING, "image_data_uri",
                "attach the image inline (cid:) or link it over https",
                "an image is a data: URI, which Gmail and Outlook do not show");
        } else {
            add(w, PIGEON_LINT_ERROR, "image_invalid",
                "use an absolute https:// URL or cid: for every image",
                "an image source is not a valid URL: \"%.200s\"", src);
        }
    }
}

static void check_parts(walk *w)
{
    size_t images = 0, text = 0;
    if (w->has_html && !w->has_text)
        add(w, PIGEON_LINT_WARNING, "no_text_part",
            "add a text/plain alternative (pigeon send --text-file, or both bodies)",
            "the message has HTML but no plain-text part (filters score HTML-only mail)");
    if (!w->has_html && !w->has_text)
        add(w, PIGEON_LINT_WARNING, "no_text", "give the message a text body",
            "the message has no text or HTML body");
    if (w->html_bytes > HTML_CLIP_BYTES)
        add(w, PIGEON_LINT_WARNING, "html_clipped",
            "trim the HTML under 102 KB (inline CSS once, drop comments and unused markup)",
            "the HTML is %zu KB: Gmail clips it after 102 KB, hiding the rest and the "
            "unsubscribe link",
            (w->html_bytes + 1023) / 1024);
    for (size_t i = 0; i < w->nhtml; i++) {
        images += w->html[i].nimages;
        text += w->html[i].text_chars;
        check_links(w, &w->html[i]);
        check_images(w, &w->html[i]);
    }
    if (images > 0 && text < IMAGE_ONLY_TEXT)
        add(w, PIGEON_LINT_WARNING, "image_only",
            "put the message in text, with images as illustration (at least a few sentences)",
            "the HTML is %s: %zu image%s and %zu characters of text",
            text == 0 ? "images only" : "nearly all images", images, images == 1 ? "" : "s", text);
}

pigeon_err pigeon_lint_message(const char *in, size_t len, const pigeon_lint_opts *opts,
                               pigeon_lint_report *out)
{
    static const pigeon_lint_opts none = {NULL, 0};
    walk *w = calloc(1, sizeof *w);
    pg_rawmsg top;
    memset(&top, 0, sizeof top);
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    if (w == NULL)
        return PIGEON_ERR_NOMEM;
    w->r = out;
    if (opts == NULL)
        opts = &none;
    part(w, in != NULL ? in : "", in != NULL ? len : 0, 0, 1, &top);
    if (top.fields != NULL || top.count > 0 || top.body_offset > 0) {
        if (field(&top, "Date") == NULL)
            add(w, PIGEON_LINT_ERROR, "no_date", "add a Date field (pigeon send adds one)",
                "the message has no Date (RFC 5322 3.6 requires it; filters score its absence)");
        if (field(&top, "Message-ID") == NULL)
            add(w, PIGEON_LINT_WARNING, "no_message_id",
                "add a Message-ID on your own domain (pigeon send adds one)",
                "the message has no Message-ID (Gmail and SpamAssassin MISSING_MID score it)");
        check_subject(w, &top);
        check_alignment(w, &top, opts);
        check_bulk(w, &top, opts);
        check_parts(w);
    }
    pg_rawmsg_cleanup(&top);
    for (size_t i = 0; i < w->nhtml; i++)
        pg_lint_html_cleanup(&w->html[i]);
    for (size_t i = 0; i < w->ncids; i++)
        free(w->cids[i]);
    int nomem = w->nomem;
    free(w);
    if (nomem) {
        pigeon_lint_report_cleanup(out);
        return PIGEON_ERR_NOMEM;
    }
    return PIGEON_OK;
}

int pigeon_lint_worst(const pigeon_lint_report *r)
{
    int worst = 0;
    for (size_t i = 0; r != NULL && i < r->count; i++)
        if ((int)r->items[i].severity > worst)
            worst = (int)r->items[i].severity;
    return worst;
}

void pigeon_lint_report_cleanup(pigeon_lint_report *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->count; i++) {
        free(r->items[i].reason);
        free(r->items[i].fix);
    }
    free(r->items);
    memset(r, 0, sizeof *r);
}
