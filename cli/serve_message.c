/*
 * serve_message.c - a JSON message of the HTTP API composed with the library, as
 * `pigeon send` composes its options: the same builder, the same validators (addresses,
 * CR/LF/NUL in headers, UTF-8), so anything that reaches the spool is what the command
 * would have queued. Each refusal names its field as a JSON Pointer (RFC 6901) in an
 * RFC 9457 detail: "/to/3: not an address".
 *
 * The message object: from (required), to, cc, bcc, reply_to (a string or an array of
 * strings, each an RFC 5322 address list), subject, text, html, headers (an object of
 * name: value), attachments (an array of {content: base64, filename, type, content_id}),
 * account, tags (an array of strings, carried in an X-Pigeon-Tags header), markdown (the
 * body from Markdown, as `pigeon send --markdown-file`: rendered to HTML with its CSS
 * inlined, the Markdown itself the text part unless text is given), vars (an object:
 * subject, text, html and markdown are then Mustache templates, as with `pigeon send
 * --vars`; HTML-escaped in html, refused with CR or LF in the subject), send_at (RFC 3339:
 * the message is due no earlier). Unknown members are refused, so that a misspelt "bc"
 * is not silently dropped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "codec/encode.h"
#include "json.h"
#include "pigeon/address.h"
#include "pigeon/html.h"
#include "pigeon/message.h"
#include "pigeon/template.h"
#include "serve.h"
#include "util/buf.h"

#define MAX_TAGS 32

static int problem(serve_item *item, int status, const char *prefix, const char *field,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int problem(serve_item *item, int status, const char *prefix, const char *field,
                   const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    item->problem.status = status;
    if (prefix[0] == '\0' && field[0] == '\0')
        snprintf(item->problem.detail, sizeof item->problem.detail, "%s", why);
    else
        snprintf(item->problem.detail, sizeof item->problem.detail, "%.40s%.48s: %s", prefix, field,
                 why);
    return -1;
}

static const char *const known[] = {"from",     "to",   "cc",       "bcc",     "reply_to",
                                    "subject",  "text", "html",     "headers", "attachments",
                                    "account",  "tags", "markdown", "vars",    "send_at",
                                    "template", NULL};

static int check_members(const pg_json_value *v, const char *prefix, serve_item *item)
{
    char esc[96];
    for (const pg_json_value *m = v->head; m != NULL; m = m->next) {
        size_t i = 0;
        while (known[i] != NULL && strcmp(known[i], m->key) != 0)
            i++;
        if (known[i] == NULL) {
            pg_json_pointer_escape(m->key, esc + 1, sizeof esc - 1);
            esc[0] = '/';
            return problem(item, 400, prefix, esc, "unknown field");
        }
    }
    return 0;
}

/* A string member, or NULL when absent; a problem when present but not a string or
 * holding NUL. */
static int get_string(const pg_json_value *v, const char *name, const char *prefix,
                      serve_item *item, const char **out)
{
    char field[64];
    const pg_json_value *m = pg_json_get(v, name);
    *out = NULL;
    if (m == NULL || m->type == PG_JSON_NULL)
        return 0;
    snprintf(field, sizeof field, "/%s", name);
    if (m->type != PG_JSON_STRING)
        return problem(item, 400, prefix, field, "must be a string");
    if (strlen(m->str) != m->len)
        return problem(item, 400, prefix, field, "contains a NUL character");
    *out = m->str;
    return 0;
}

typedef pigeon_err (*list_setter)(pigeon_message *, const char *);

/* An address field: a string, or an array of strings; each is one address list. */
static int add_addresses(pigeon_message *msg, const pg_json_value *v, const char *name,
                         list_setter set, const char *prefix, serve_item *item)
{
    char field[64];
    const pg_json_value *m = pg_json_get(v, name);
    if (m == NULL || m->type == PG_JSON_NULL)
        return 0;
    snprintf(field, sizeof field, "/%s", name);
    if (m->type == PG_JSON_STRING) {
        if (strlen(m->str) != m->len || set(msg, m->str) != PIGEON_OK)
            return problem(item, 400, prefix, field, "not an address: %s",
                           pigeon_message_error(msg));
        return 0;
    }
    if (m->type != PG_JSON_ARRAY)
        return problem(item, 400, prefix, field, "must be a string or an array of strings");
    size_t i = 0;
    for (const pg_json_value *e = m->head; e != NULL; e = e->next, i++) {
        snprintf(field, sizeof field, "/%s/%zu", name, i);
        if (e->type != PG_JSON_STRING)
            return problem(item, 400, prefix, field, "must be a string");
        if (strlen(e->str) != e->len || set(msg, e->str) != PIGEON_OK)
            return problem(item, 400, prefix, field, "not an address: %s",
                           pigeon_message_error(msg));
    }
    return 0;
}

static int add_headers(pigeon_message *msg, const pg_json_value *v, const char *prefix,
                       serve_item *item)
{
    char field[160], esc[128];
    const pg_json_value *m = pg_json_get(v, "headers");
    if (m == NULL || m->type == PG_JSON_NULL)
        return 0;
    if (m->type != PG_JSON_OBJECT)
        return problem(item, 400, prefix, "/headers", "must be an object");
    for (const pg_json_value *h = m->head; h != NULL; h = h->next) {
        snprintf(field, sizeof field, "/headers/%s",
                 pg_json_pointer_escape(h->key, esc, sizeof esc));
        if (h->type != PG_JSON_STRING)
            return problem(item, 400, prefix, field, "must be a string");
        if (strlen(h->key) != h->key_len || strlen(h->str) != h->len ||
            pigeon_message_add_header(msg, h->key, h->str) != PIGEON_OK)
            return problem(item, 400, prefix, field, "refused: %s", pigeon_message_error(msg));
    }
    return 0;
}

static int add_attachment(pigeon_message *msg, const pg_json_value *a, const char *field,
                          const char *prefix, serve_item *item)
{
    char sub[96];
    const char *filename = NULL, *type = NULL, *cid = NULL, *content = NULL;
    if (a->type != PG_JSON_OBJECT)
        return problem(item, 400, prefix, field, "must be an object");
    for (const pg_json_value *m = a->head; m != NULL; m = m->next) {
        if (strcmp(m->key, "content") != 0 && strcmp(m->key, "filename") != 0 &&
            strcmp(m->key, "type") != 0 && strcmp(m->key, "content_id") != 0) {
            snprintf(sub, sizeof sub, "%s/%s", field, m->key);
            return problem(item, 400, prefix, sub, "unknown field");
        }
    }
    snprintf(sub, sizeof sub, "%s", prefix);
    char pfx[128];
    snprintf(pfx, sizeof pfx, "%s%s", prefix, field);
    if (get_string(a, "content", pfx, item, &content) ||
        get_string(a, "filename", pfx, item, &filename) ||
        get_string(a, "type", pfx, item, &type) || get_string(a, "content_id", pfx, item, &cid))
        return -1;
    if (content == NULL)
        return problem(item, 400, pfx, "/content", "required");
    pg_buf raw;
    pg_buf_init(&raw);
    if (pg_b64_decode(&raw, content, strlen(content)) != PIGEON_OK) {
        pg_buf_cleanup(&raw);
        return problem(item, 400, pfx, "/content", "not base64");
    }
    pigeon_part_opts po = {.filename = filename, .content_type = type, .content_id = cid};
    pigeon_err e = pigeon_message_attach_buffer(msg, raw.data ? raw.data : "", raw.len, &po);
    pg_buf_cleanup(&raw);
    if (e != PIGEON_OK)
        return problem(item, 400, pfx, "", "refused: %s", pigeon_message_error(msg));
    return 0;
}

static int add_attachments(pigeon_message *msg, const pg_json_value *v, const char *prefix,
                           serve_item *item)
{
    char field[64];
    const pg_json_value *m = pg_json_get(v, "attachments");
    if (m == NULL || m->type == PG_JSON_NULL)
        return 0;
    if (m->type != PG_JSON_ARRAY)
        return problem(item, 400, prefix, "/attachments", "must be an array");
    size_t i = 0;
    for (const pg_json_value *a = m->head; a != NULL; a = a->next, i++) {
        snprintf(field, sizeof field, "/attachments/%zu", i);
        if (add_attachment(msg, a, field, prefix, item) != 0)
            return -1;
    }
    return 0;
}

/* Tags ride in one header: letters, digits and "-_.:", comma-separated. */
static int add_tags(pigeon_message *msg, const pg_json_value *v, const char *prefix,
                    serve_item *item)
{
    char field[64];
    const pg_json_value *m = pg_json_get(v, "tags");
    if (m == NULL || m->type == PG_JSON_NULL)
        return 0;
    if (m->type != PG_JSON_ARRAY || m->count > MAX_TAGS)
        return problem(item, 400, prefix, "/tags", "must be an array of at most %d strings",
                       MAX_TAGS);
    pg_buf b;
    pg_buf_init(&b);
    size_t i = 0;
    for (const pg_json_value *t = m->head; t != NULL; t = t->next, i++) {
        snprintf(field, sizeof field, "/tags/%zu", i);
        int ok = t->type == PG_JSON_STRING && t->len > 0 && t->len <= 64;
        for (size_t k = 0; ok && k < t->len; k++) {
            char c = t->str[k];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.' || c == ':';
        }
        if (!ok) {
            pg_buf_cleanup(&b);
            return problem(item, 400, prefix, field, "a tag is 1-64 of A-Z a-z 0-9 - _ . :");
        }
        pg_buf_printf(&b, "%s%s", i ? ", " : "", t->str);
    }
    pigeon_err e = b.len > 0 ? pigeon_message_add_header(msg, "X-Pigeon-Tags", b.data) : PIGEON_OK;
    pg_buf_cleanup(&b);
    return e == PIGEON_OK ? 0 : problem(item, 400, prefix, "/tags", "refused");
}

/* The key's From domains ("" = any), comma-separated, compared without case. */
int serve_domain_allowed(const pg_spool_key *key, const char *domain)
{
    if (key == NULL || key->domains[0] == '\0')
        return 1;
    size_t n = strlen(domain);
    for (const char *p = key->domains; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncasecmp(p, domain, n) == 0)
            return 1;
        p += len + (comma != NULL);
    }
    return 0;
}

static char *addr_of(const pigeon_mailbox *mb)
{
    char *out = NULL;
    pigeon_err e = pigeon_mailbox_addr_spec(mb, 0, &out);
    if (e == PIGEON_ERR_ADDRESS)
        e = pigeon_mailbox_addr_spec(mb, 1, &out);
    return e == PIGEON_OK ? out : NULL;
}

/* The envelope and the written bytes. */
static int finish(pigeon_message *msg, const serve_compose_opts *opts, const char *prefix,
                  serve_item *item)
{
    const pigeon_mailbox *from = pigeon_message_envelope_from(msg);
    size_t n = pigeon_message_rcpt_count(msg);
    if (n == 0)
        return problem(item, 400, prefix, "/to", "at least one recipient (to, cc or bcc)");
    if (!serve_domain_allowed(opts->key, from->domain) &&
        !serve_domain_allowed(opts->key, from->domain_ascii))
        return problem(item, 403, prefix, "/from", "this key may not send from %s", from->domain);
    item->rcpts = calloc(n, sizeof *item->rcpts);
    item->mail_from = addr_of(from);
    if (item->rcpts == NULL || item->mail_from == NULL)
        return problem(item, 503, prefix, "", "out of memory");
    item->nrcpts = n;
    for (size_t i = 0; i < n; i++) {
        if ((item->rcpts[i] = addr_of(pigeon_message_rcpt(msg, i))) == NULL)
            return problem(item, 503, prefix, "", "out of memory");
    }
    const char *mid = pigeon_message_get_message_id(msg);
    if (mid != NULL) {
        size_t len = strlen(mid) + 3;
        if ((item->message_id = malloc(len)) != NULL)
            snprintf(item->message_id, len, "<%s>", mid);
    }
    pigeon_err e = pigeon_message_write_buffer(msg, NULL, &item->data, &item->len);
    if (e != PIGEON_OK)
        return problem(item, 400, prefix, "", "cannot write the message: %s",
                       pigeon_message_error(msg));
    if (item->len > opts->max_message)
        return problem(item, 413, prefix, "", "the message is %zu bytes, over the %zu allowed",
                       item->len, opts->max_message);
    return 0;
}

/* Writes a JSON value back as text (for pigeon_vars_parse_json). */
static void write_value(json_writer *w, const pg_json_value *v)
{
    switch (v->type) {
    case PG_JSON_OBJECT:
        json_object_begin(w);
        for (const pg_json_value *m = v->head; m != NULL; m = m->next) {
            json_key(w, m->key);
            write_value(w, m);
        }
        json_object_end(w);
        break;
    case PG_JSON_ARRAY:
        json_array_begin(w);
        for (const pg_json_value *m = v->head; m != NULL; m = m->next)
            write_value(w, m);
        json_array_end(w);
        break;
    case PG_JSON_STRING:
        json_string(w, v->str);
        break;
    case PG_JSON_NUMBER:
        json_double(w, v->num);
        break;
    case PG_JSON_TRUE:
    case PG_JSON_FALSE:
        json_bool(w, v->type == PG_JSON_TRUE);
        break;
    default:
        json_null(w);
        break;
    }
}

/* The "vars" object as template variables; *out stays NULL without it. */
static int read_vars(const pg_json_value *v, const char *prefix, serve_item *item,
                     pigeon_vars **out)
{
    const pg_json_value *m = pg_json_get(v, "vars");
    *out = NULL;
    if (m == NULL || m->type == PG_JSON_NULL)
        return 0;
    if (m->type != PG_JSON_OBJECT)
        return problem(item, 400, prefix, "/vars", "must be an object");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return problem(item, 503, prefix, "", "out of memory");
    json_writer w;
    json_init(&w, f);
    write_value(&w, m);
    json_finish(&w);
    fclose(f);
    pigeon_json_error jerr;
    pigeon_err e = pigeon_vars_parse_json(text, len, NULL, out, &jerr);
    free(text);
    if (e != PIGEON_OK)
        return problem(item, 400, prefix, "/vars", "not usable: %s", jerr.message);
    return 0;
}

/* Expands *field (a template) with vars into *owned; *field then points there. */
static int expand(const pigeon_vars *vars, const char *name, pigeon_template_mode mode,
                  const char **field, char **owned, const char *prefix, serve_item *item)
{
    pigeon_template *t = NULL;
    pigeon_template_error terr;
    size_t len = 0;
    char where[32];
    if (vars == NULL || *field == NULL)
        return 0;
    snprintf(where, sizeof where, "/%s", name);
    if (pigeon_template_compile(*field, strlen(*field), &t, &terr) != PIGEON_OK)
        return problem(item, 400, prefix, where, "%s", terr.message);
    const pigeon_vars *scopes[1] = {vars};
    pigeon_err e = pigeon_template_render(t, scopes, 1, mode, 0, owned, &len, &terr);
    pigeon_template_free(t);
    if (e != PIGEON_OK)
        return problem(item, 400, prefix, where, "%s", terr.message);
    *field = *owned;
    return 0;
}

/* "markdown": rendered to HTML with the default stylesheet inlined (no image files are
 * read: a server has none to attach); the Markdown is the text part unless text is set. */
static int add_markdown(pigeon_message *msg, const char *md, int has_text, const char *prefix,
                        serve_item *item)
{
    char *html = NULL;
    size_t html_len = 0;
    pigeon_html_result res;
    pigeon_html_opts ho = {.no_text = 1, .no_images = 1};
    memset(&res, 0, sizeof res);
    pigeon_err e = pigeon_html_from_markdown(md, strlen(md), NULL, &html, &html_len);
    if (e == PIGEON_OK)
        e = pigeon_html_prepare(html, html_len, &ho, &res);
    free(html);
    if (e != PIGEON_OK)
        return problem(item, 400, prefix, "/markdown", "cannot render: %s", pigeon_strerror(e));
    int rc = 0;
    if (pigeon_message_set_html(msg, res.html, res.html_len) != PIGEON_OK ||
        (!has_text && pigeon_message_set_text(msg, md, strlen(md)) != PIGEON_OK))
        rc = problem(item, 400, prefix, "/markdown", "refused: %s", pigeon_message_error(msg));
    pigeon_html_result_cleanup(&res);
    return rc;
}

/* RFC 3339 5.6: "2026-12-02T15:04:05Z" or with "+01:00"; fractions ignored. */
static int parse_send_at(const char *s, int64_t *out_ms)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19 || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || sec < 0 || sec > 60)
        return -1;
    const char *p = s + n;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    long off = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = 0, om = 0;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 || oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off = (*p == '-' ? -1 : 1) * (oh * 3600L + om * 60L);
    } else {
        return -1;
    }
    /* Days from the civil date (proleptic Gregorian), without the local time zone. */
    int64_t yy = y - (mo <= 2), era = yy / 400;
    int64_t yoe = yy - era * 400, mp = (mo + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d - 1, doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + (sec > 59 ? 59 : sec) - off;
    if (secs < 0)
        return -1;
    *out_ms = secs * 1000;
    return 0;
}

static int read_send_at(const pg_json_value *v, const char *prefix, serve_item *item)
{
    const char *when = NULL;
    if (get_string(v, "send_at", prefix, item, &when) != 0)
        return -1;
    if (when != NULL && parse_send_at(when, &item->send_at_ms) != 0)
        return problem(item, 400, prefix, "/send_at",
                       "not an RFC 3339 date-time (2026-12-24T09:00:00Z)");
    return 0;
}

static int compose_fields(pigeon_message *msg, const pg_json_value *v, const pg_json_value *c,
                          const char *prefix, const serve_compose_opts *opts, serve_item *item,
                          const pigeon_vars *vars, const char *markdown, char *owned[4])
{
    const char *from = NULL, *subject = NULL, *text = NULL, *html = NULL, *account = NULL;
    if (get_string(v, "from", prefix, item, &from) ||
        get_string(c, "subject", prefix, item, &subject) ||
        get_string(c, "text", prefix, item, &text) || get_string(c, "html", prefix, item, &html) ||
        get_string(v, "account", prefix, item, &account) ||
        expand(vars, "subject", PIGEON_TEMPLATE_HEADER, &subject, &owned[0], prefix, item) ||
        expand(vars, "text", PIGEON_TEMPLATE_TEXT, &text, &owned[1], prefix, item) ||
        expand(vars, "html", PIGEON_TEMPLATE_HTML, &html, &owned[2], prefix, item) ||
        expand(vars, "markdown", PIGEON_TEMPLATE_TEXT, &markdown, &owned[3], prefix, item))
        return -1;
    if (from == NULL)
        return problem(item, 400, prefix, "/from", "required");
    if (pigeon_message_set_from(msg, from) != PIGEON_OK)
        return problem(item, 400, prefix, "/from", "not an address: %s", pigeon_message_error(msg));
    if (add_addresses(msg, v, "to", pigeon_message_add_to, prefix, item) ||
        add_addresses(msg, v, "cc", pigeon_message_add_cc, prefix, item) ||
        add_addresses(msg, v, "bcc", pigeon_message_add_bcc, prefix, item) ||
        add_addresses(msg, v, "reply_to", pigeon_message_add_reply_to, prefix, item))
        return -1;
    if (subject != NULL && pigeon_message_set_subject(msg, subject) != PIGEON_OK)
        return problem(item, 400, prefix, "/subject", "refused: %s", pigeon_message_error(msg));
    if (text != NULL && pigeon_message_set_text(msg, text, strlen(text)) != PIGEON_OK)
        return problem(item, 400, prefix, "/text", "refused: %s", pigeon_message_error(msg));
    if (html != NULL && pigeon_message_set_html(msg, html, strlen(html)) != PIGEON_OK)
        return problem(item, 400, prefix, "/html", "refused: %s", pigeon_message_error(msg));
    if (markdown != NULL && add_markdown(msg, markdown, text != NULL, prefix, item) != 0)
        return -1;
    if (add_headers(msg, v, prefix, item) || add_attachments(msg, v, prefix, item) ||
        add_tags(msg, v, prefix, item))
        return -1;
    /* The key decides the account; a request may name it only to say the same. */
    if (opts->key != NULL && account != NULL && strcmp(account, opts->key->account) != 0)
        return problem(item, 403, prefix, "/account", "this key sends only through %s",
                       opts->key->account);
    const char *acct = opts->key != NULL ? opts->key->account : account ? account : opts->account;
    if (acct == NULL || acct[0] == '\0')
        return problem(item, 400, prefix, "/account", "required (no default account)");
    if ((item->account = strdup(acct)) == NULL)
        return problem(item, 503, prefix, "", "out of memory");
    return finish(msg, opts, prefix, item);
}

/* "template": the named template's document in *doc (its subject, text, html and
 * markdown replace the request's, which may then give none of them). */
static int read_template(const pg_json_value *v, const char *prefix, const serve_compose_opts *opts,
                         serve_item *item, pg_json_doc **doc)
{
    static const char *const content[] = {"subject", "text", "html", "markdown"};
    const char *name = NULL;
    serve_problem why;
    *doc = NULL;
    if (get_string(v, "template", prefix, item, &name) != 0 || name == NULL)
        return item->problem.status != 0 ? -1 : 0;
    for (size_t i = 0; i < 4; i++) {
        if (pg_json_get(v, content[i]) != NULL)
            return problem(item, 400, prefix, "/template", "give a template or %s, not both",
                           content[i]);
    }
    if (serve_template_load(opts->templates, name, doc, &why) != 0)
        return problem(item, why.status, prefix, "", "%s", why.detail);
    return 0;
}

static int compose(pigeon_message *msg, const pg_json_value *v, const char *prefix,
                   const serve_compose_opts *opts, serve_item *item)
{
    const char *markdown = NULL, *html = NULL;
    pigeon_vars *vars = NULL;
    pg_json_doc *tpl = NULL;
    char *owned[4] = {NULL, NULL, NULL, NULL};
    if (v->type != PG_JSON_OBJECT)
        return problem(item, 400, prefix, "", "a message must be a JSON object");
    if (check_members(v, prefix, item) || read_template(v, prefix, opts, item, &tpl))
        return -1;
    /* The content: the template's members, or the request's own. */
    const pg_json_value *c = tpl != NULL ? pg_json_root(tpl) : v;
    int rc = -1;
    if (get_string(c, "markdown", prefix, item, &markdown) ||
        get_string(c, "html", prefix, item, &html) || read_send_at(v, prefix, item))
        goto done;
    if (markdown != NULL && html != NULL) {
        problem(item, 400, prefix, "/markdown", "give html or markdown, not both");
        goto done;
    }
    if (read_vars(v, prefix, item, &vars) != 0)
        goto done;
    /* A template is always a template: without vars, {{name}} is a missing variable. */
    pigeon_json_error jerr;
    if (tpl != NULL && vars == NULL && pigeon_vars_parse_json("{}", 2, NULL, &vars, &jerr) != 0) {
        problem(item, 503, prefix, "", "out of memory");
        goto done;
    }
    rc = compose_fields(msg, v, c, prefix, opts, item, vars, markdown, owned);
done:
    pigeon_vars_free(vars);
    pg_json_free(tpl);
    for (size_t i = 0; i < 4; i++)
        free(owned[i]);
    return rc;
}

void serve_compose(const pg_json_value *v, const char *prefix, const serve_compose_opts *opts,
                   serve_item *item)
{
    pigeon_message *msg = pigeon_message_new();
    if (msg == NULL) {
        problem(item, 503, prefix, "", "out of memory");
        return;
    }
    compose(msg, v, prefix, opts, item);
    pigeon_message_free(msg);
}

void serve_item_cleanup(serve_item *item)
{
    if (item == NULL)
        return;
    free(item->data);
    free(item->account);
    free(item->mail_from);
    for (size_t i = 0; item->rcpts != NULL && i < item->nrcpts; i++)
        free(item->rcpts[i]);
    free(item->rcpts);
    free(item->message_id);
    free(item->idem);
    free(item->suppressed);
    memset(item, 0, sizeof *item);
}
