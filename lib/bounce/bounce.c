/*
 * bounce.c - pigeon_bounce_parse() (pigeon/bounce.h): what a received message is and whom
 * it is about.
 *
 * The order of evidence: a machine-readable report part (RFC 6522 multipart/report with
 * an RFC 5965 feedback-report, an RFC 3798 disposition-notification or an RFC 3464
 * delivery-status, in that order) decides; without one, a notice whose text, subject or
 * sender marks it as a delivery failure is read line by line (notice.c); then an
 * auto-reply (RFC 3834 Auto-Submitted: auto-replied, X-Autoreply, an auto-reply subject);
 * anything else is ordinary mail. Bounces carry Auto-Submitted too (Postfix writes
 * auto-replied on its bounces), which is why report parts and notice markers come first.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bounce/classify.h"
#include "bounce/dsn.h"
#include "bounce/hdr.h"
#include "bounce/notice.h"
#include "bounce/report.h"
#include "bounce/walk.h"
#include "util/buf.h"

/* Defaults of pigeon_bounce_opts. */
#define DEFAULT_MAX_SIZE  ((size_t)32 * 1024 * 1024)
#define DEFAULT_MAX_DEPTH 32
/* Most MIME parts visited. */
#define MAX_PARTS 1000
/* Most octets of decoded text kept for the notice reader, per kind (plain, HTML). */
#define TEXT_KEEP ((size_t)256 * 1024)
/* Most octets of one report part decoded. */
#define REPORT_KEEP ((size_t)1024 * 1024)

/* What the walk over the parts collected. */
typedef struct scan {
    pigeon_bounce_report *r; /* the report being filled */
    pg_buf plain;            /* text/plain parts, UTF-8 */
    pg_buf html;             /* text/html parts as text, UTF-8 */
    pg_buf part;             /* scratch for one decoded part */
    int dsn;                 /* a delivery-status part was read */
    int arf;                 /* a feedback-report part was read */
    int mdn;                 /* a disposition-notification part was read */
    int nomem;               /* an allocation failed */
} scan;

/* The message's own header fields of interest. */
typedef struct top {
    char to[PG_BHDR_VALUE_MAX];           /* To */
    char delivered_to[PG_BHDR_VALUE_MAX]; /* Delivered-To (the first) */
    char original_to[PG_BHDR_VALUE_MAX];  /* X-Original-To */
    char failed[PG_BHDR_VALUE_MAX];       /* X-Failed-Recipients (Exim) */
    char in_reply_to[PG_BHDR_VALUE_MAX];  /* In-Reply-To, else the last References id */
    char received_by[256];                /* the "by" host of the last (lowest) Received */
    int autoreply;                        /* RFC 3834 auto-replied, X-Autoreply... */
} top;

static void on_part(void *ctx, const pg_bwalk_part *p)
{
    scan *s = ctx;
    pigeon_bounce_report *r = s->r;
    const char *t = p->type;
    int is_text = strcmp(t, "text/plain") == 0, is_html = strcmp(t, "text/html") == 0;
    if (s->nomem)
        return;
    pg_buf_reset(&s->part);
    if (is_text || is_html) {
        if ((is_text ? s->plain.len : s->html.len) >= TEXT_KEEP)
            return;
        pg_bwalk_decode(p, &s->part, TEXT_KEEP, 1);
        if (is_text) {
            pg_buf_append(&s->plain, s->part.data != NULL ? s->part.data : "", s->part.len);
            pg_buf_putc(&s->plain, '\n');
        } else {
            pg_bwalk_html_text(&s->html, s->part.data != NULL ? s->part.data : "", s->part.len,
                               TEXT_KEEP);
            pg_buf_putc(&s->html, '\n');
        }
        s->nomem |= s->plain.err != PIGEON_OK || s->html.err != PIGEON_OK;
        return;
    }
    int dsn = strcmp(t, "message/delivery-status") == 0 ||
              strcmp(t, "message/global-delivery-status") == 0;
    int arf = strcmp(t, "message/feedback-report") == 0;
    int mdn = strcmp(t, "message/disposition-notification") == 0 ||
              strcmp(t, "message/global-disposition-notification") == 0;
    int orig = strcmp(t, "message/rfc822") == 0 || strcmp(t, "message/global") == 0 ||
               strcmp(t, "text/rfc822-headers") == 0 || strcmp(t, "message/rfc822-headers") == 0 ||
               strcmp(t, "message/global-headers") == 0;
    if (!dsn && !arf && !mdn && !orig)
        return;
    pg_bwalk_decode(p, &s->part, REPORT_KEEP, 0);
    if (s->part.err != PIGEON_OK) {
        s->nomem = 1;
        return;
    }
    const char *b = s->part.data != NULL ? s->part.data : "";
    if (dsn) {
        pg_bounce_dsn(r, b, s->part.len, &s->nomem);
        s->dsn = 1;
    } else if (arf) {
        pg_bounce_arf(r, b, s->part.len, &s->nomem);
        s->arf = 1;
    } else if (mdn) {
        pg_bounce_mdn(r, b, s->part.len, &s->nomem);
        s->mdn = 1;
    } else {
        pg_bounce_original(r, b, s->part.len, &s->nomem);
    }
}

/* The "by" host of a Received field (RFC 5321 4.4). */
static void received_by(const char *v, char *out, size_t cap)
{
    const char *p = v;
    while ((p = strstr(p, "by ")) != NULL) {
        if (p == v || p[-1] == ' ' || p[-1] == ')') {
            p += 3;
            size_t n = strcspn(p, " ;()");
            if (n > 0 && n < cap) {
                memcpy(out, p, n);
                out[n] = '\0';
            }
            return;
        }
        p += 3;
    }
}

static int header_yes(const char *v)
{
    return strncasecmp(v, "no", 2) != 0 && v[0] != '\0';
}

static void read_top(pigeon_bounce_report *r, const char *in, size_t len, top *t, int *nomem)
{
    pg_bhdr_iter it;
    pg_bhdr_field f;
    char v[PG_BHDR_VALUE_MAX];
    pg_bhdr_begin(&it, in, len);
    while (pg_bhdr_next(&it, &f) && !*nomem) {
        pg_bhdr_unfold(f.value, f.vlen, v, sizeof v);
        if (pg_bhdr_is(&f, "Subject") && r->subject == NULL) {
            pg_buf b;
            pg_buf_init(&b);
            pg_bhdr_decode_words(&b, v);
            *nomem |= b.err != PIGEON_OK || pg_bounce_set(&r->subject, b.data, b.len, 0);
            pg_buf_cleanup(&b);
        } else if (pg_bhdr_is(&f, "From") && r->from == NULL) {
            *nomem |= pg_bounce_take(&r->from, pg_bhdr_addr(v, strlen(v)), 0);
        } else if (pg_bhdr_is(&f, "To") && t->to[0] == '\0') {
            memcpy(t->to, v, sizeof v);
        } else if (pg_bhdr_is(&f, "Delivered-To") && t->delivered_to[0] == '\0') {
            memcpy(t->delivered_to, v, sizeof v);
        } else if (pg_bhdr_is(&f, "X-Original-To") && t->original_to[0] == '\0') {
            memcpy(t->original_to, v, sizeof v);
        } else if (pg_bhdr_is(&f, "X-Failed-Recipients") && t->failed[0] == '\0') {
            memcpy(t->failed, v, sizeof v);
        } else if (pg_bhdr_is(&f, "In-Reply-To")) {
            memcpy(t->in_reply_to, v, sizeof v);
        } else if (pg_bhdr_is(&f, "References") && t->in_reply_to[0] == '\0') {
            const char *last = strrchr(v, '<');
            snprintf(t->in_reply_to, sizeof t->in_reply_to, "%s", last != NULL ? last : v);
        } else if (pg_bhdr_is(&f, "Received")) {
            received_by(v, t->received_by, sizeof t->received_by);
        } else if (pg_bhdr_is(&f, "Auto-Submitted")) {
            t->autoreply |= strncasecmp(v, "auto-replied", 12) == 0;
        } else if (pg_bhdr_is(&f, "X-Autoreply") || pg_bhdr_is(&f, "X-Autorespond") ||
                   pg_bhdr_is(&f, "X-Auto-Reply")) {
            t->autoreply |= header_yes(v);
        } else if (pg_bhdr_is(&f, "Precedence")) {
            t->autoreply |= strncasecmp(v, "auto_reply", 10) == 0;
        }
    }
}

/* to: the first address holding a '+' among To, Delivered-To, X-Original-To, else the
 * first present; verp: what follows its first '+' in the local part. */
static void set_to(pigeon_bounce_report *r, const top *t, int *nomem)
{
    const char *cands[] = {t->to, t->delivered_to, t->original_to};
    char *chosen = NULL;
    for (size_t i = 0; i < 3 && !*nomem; i++) {
        char *a = pg_bhdr_addr(cands[i], strlen(cands[i]));
        const char *at = a != NULL ? strrchr(a, '@') : NULL;
        const char *plus = a != NULL ? strchr(a, '+') : NULL;
        if (a != NULL && plus != NULL && at != NULL && plus < at) {
            free(chosen);
            chosen = a;
            *nomem |= pg_bounce_set(&r->verp, plus + 1, (size_t)(at - plus - 1), 1);
            break;
        }
        if (chosen == NULL)
            chosen = a;
        else
            free(a);
    }
    *nomem |= pg_bounce_take(&r->to, chosen, 1);
}

/* X-Failed-Recipients: a comma-separated list (Exim). */
static void failed_recipients(pigeon_bounce_report *r, const char *v, int *nomem)
{
    const char *p = v;
    while (*p != '\0' && !*nomem) {
        size_t n = strcspn(p, ",");
        char *a = pg_bhdr_addr(p, n);
        if (a != NULL && pg_bounce_rcpt_find(r, a) == NULL) {
            pigeon_bounce_rcpt *rc = pg_bounce_rcpt_add(r, nomem);
            if (rc != NULL) {
                *nomem |= pg_bounce_take(&rc->rcpt, a, 1);
                a = NULL;
                *nomem |= pg_bounce_set(&rc->action, "failed", 6, 1);
                pg_bounce_rcpt_classify(rc);
            }
        }
        free(a);
        p += n + (p[n] == ',');
    }
}

/* The notice text: plain parts, else the HTML parts' text. */
static const pg_buf *notice_text(const scan *s)
{
    return s->plain.len > 16 || s->html.len == 0 ? &s->plain : &s->html;
}

static void decide(pigeon_bounce_report *r, scan *s, const top *t)
{
    const pg_buf *text = notice_text(s);
    const char *tx = text->data != NULL ? text->data : "";
    const char *dialect = pg_bounce_notice_dialect(tx, text->len, r->from, r->subject);
    int nomem = 0;
    if (s->arf) {
        r->kind = PIGEON_BOUNCE_KIND_COMPLAINT;
        r->format = "arf";
        if (r->count == 0 && r->orig_to != NULL) { /* RFC 5965 3.2: Original-Rcpt-To is optional */
            pigeon_bounce_rcpt *rc = pg_bounce_rcpt_add(r, &nomem);
            if (rc != NULL) {
                nomem |= pg_bounce_set(&rc->rcpt, r->orig_to, strlen(r->orig_to), 1);
                rc->cls = PIGEON_BOUNCE_COMPLAINT;
                rc->reason = "complaint";
            }
        }
    } else if (s->mdn) {
        r->kind = PIGEON_BOUNCE_KIND_RECEIPT;
        r->format = "mdn";
    } else if (s->dsn && r->count > 0) {
        r->kind = PIGEON_BOUNCE_KIND_BOUNCE;
        r->format = dialect != NULL ? dialect : "rfc3464";
    } else if (pg_bounce_notice_marker(tx, text->len) || t->failed[0] != '\0' || s->dsn ||
               (!t->autoreply && pg_bounce_notice_subject(r->subject))) {
        r->kind = PIGEON_BOUNCE_KIND_BOUNCE;
        r->format = dialect != NULL ? dialect : "other";
        pg_bounce_notice(r, tx, text->len, &nomem);
        if (t->failed[0] != '\0')
            failed_recipients(r, t->failed, &nomem);
        if (r->count == 0) { /* a failure naming nobody: its reason all the same */
            pigeon_bounce_rcpt *rc = pg_bounce_rcpt_add(r, &nomem);
            if (rc != NULL) {
                nomem |= pg_bounce_set(&rc->action, "failed", 6, 1);
                rc->cls = PIGEON_BOUNCE_UNDETERMINED;
            }
        }
    } else if (t->autoreply || pg_bounce_autoreply_subject(r->subject)) {
        r->kind = PIGEON_BOUNCE_KIND_AUTOREPLY;
        r->format = "autoreply";
    }
    if (r->kind == PIGEON_BOUNCE_KIND_BOUNCE || r->kind == PIGEON_BOUNCE_KIND_COMPLAINT) {
        /* Exchange and Gmail refer to the original in the notice's own In-Reply-To. */
        const char *id = t->in_reply_to[0] == '<' ? t->in_reply_to + 1 : t->in_reply_to;
        nomem |= pg_bounce_set(&r->orig_message_id, id, strcspn(id, "> "), 0);
        if (r->reporting_mta == NULL && t->received_by[0] != '\0')
            nomem |= pg_bounce_set(&r->reporting_mta, t->received_by, strlen(t->received_by), 0);
    }
    s->nomem |= nomem;
}

/* "Generating server: host" (Exchange) and "This is the mail system at host X." (Postfix)
 * name the reporting MTA in the text. */
static void text_mta(pigeon_bounce_report *r, const pg_buf *text, int *nomem)
{
    static const char *const labels[] = {"Generating server: ", "This is the mail system at host ",
                                         "Reporting-MTA: dns; ", "Reporting-MTA: dns;"};
    for (size_t i = 0; text->data != NULL && i < sizeof labels / sizeof labels[0]; i++) {
        const char *p = strstr(text->data, labels[i]);
        if (p != NULL) {
            p += strlen(labels[i]);
            size_t n = strcspn(p, " \r\n");
            while (n > 0 && p[n - 1] == '.')
                n--;
            *nomem |= pg_bounce_set(&r->reporting_mta, p, n, 0);
            return;
        }
    }
}

pigeon_err pigeon_bounce_parse(const char *in, size_t len, const pigeon_bounce_opts *opts,
                               pigeon_bounce_report *out)
{
    scan s;
    top *t = NULL;
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (in == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    out->format = "other";
    size_t max_size = opts != NULL && opts->max_size != 0 ? opts->max_size : DEFAULT_MAX_SIZE;
    unsigned depth = opts != NULL && opts->max_depth != 0 ? opts->max_depth : DEFAULT_MAX_DEPTH;
    if (len > max_size) {
        len = max_size;
        out->truncated = 1;
    }
    memset(&s, 0, sizeof s);
    s.r = out;
    pg_buf_init(&s.plain);
    pg_buf_init(&s.html);
    pg_buf_init(&s.part);
    pg_bwalk_pin_converters();
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        s.nomem = 1;
        goto done;
    }
    read_top(out, in, len, t, &s.nomem);
    set_to(out, t, &s.nomem);
    if (s.nomem)
        goto done;
    if (pg_bwalk(in, len, depth, MAX_PARTS, on_part, &s))
        out->truncated = 1;
    if (s.nomem)
        goto done;
    decide(out, &s, t);
    if (out->kind == PIGEON_BOUNCE_KIND_BOUNCE)
        text_mta(out, notice_text(&s), &s.nomem);
done:
    free(t);
    pg_buf_cleanup(&s.plain);
    pg_buf_cleanup(&s.html);
    pg_buf_cleanup(&s.part);
    return s.nomem ? PIGEON_ERR_NOMEM : PIGEON_OK;
}

void pigeon_bounce_report_cleanup(pigeon_bounce_report *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->count; i++) {
        pigeon_bounce_rcpt *rc = &r->rcpts[i];
        free(rc->rcpt);
        free(rc->original_rcpt);
        free(rc->action);
        free(rc->diagnostic);
        free(rc->remote_mta);
    }
    free(r->rcpts);
    char **strs[] = {&r->subject,
                     &r->from,
                     &r->to,
                     &r->verp,
                     &r->reporting_mta,
                     &r->envelope_id,
                     &r->orig_message_id,
                     &r->orig_from,
                     &r->orig_to,
                     &r->orig_subject,
                     &r->orig_envelope_from,
                     &r->feedback_type,
                     &r->user_agent};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    memset(r, 0, sizeof *r);
}
