/*
 * dsn.c - the machine-readable report parts (see dsn.h).
 *
 * RFC 3464 2.1: the fields of a delivery-status body have header syntax; a typed value
 * ("rfc822; user@example.com", "dns; mx.example.com", "smtp; 550 ...") names its type
 * before a ';' (2.1.2), which is dropped here. Field names are case-insensitive.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounce/classify.h"
#include "bounce/dsn.h"
#include "bounce/hdr.h"
#include "bounce/report.h"
#include "util/buf.h"

/* The value after an RFC 3464 2.1.2 type ("rfc822;"), or the value when it has none. */
static const char *untyped(const char *v)
{
    const char *semi = strchr(v, ';');
    if (semi == NULL)
        return v;
    for (const char *p = v; p < semi; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != ' ')
            return v; /* not an atom before the ';': no type */
    }
    semi++;
    while (*semi == ' ')
        semi++;
    return semi;
}

/* Sets *dst to the addr-spec in v (brackets removed), or to v itself when no '@'. */
static int set_addr(char **dst, const char *v, int replace)
{
    char *a = pg_bhdr_addr(v, strlen(v));
    if (a == NULL && (v[0] == '\0' || strcmp(v, "<>") == 0))
        return 0; /* the null reverse-path (RFC 5321 4.5.5) names nobody */
    if (a == NULL)
        return pg_bounce_set(dst, v, strlen(v), replace);
    return pg_bounce_take(dst, a, replace);
}

static void lower(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* One per-recipient block (RFC 3464 2.3). Returns 1 if it named a recipient. */
static int dsn_rcpt_block(pigeon_bounce_report *r, pg_bhdr_iter *it, int *nomem)
{
    pg_bhdr_field f;
    char v[PG_BHDR_VALUE_MAX];
    pigeon_bounce_rcpt tmp;
    int named = 0, fail = 0;
    memset(&tmp, 0, sizeof tmp);
    while (pg_bhdr_next(it, &f)) {
        pg_bhdr_unfold(f.value, f.vlen, v, sizeof v);
        if (pg_bhdr_is(&f, "Final-Recipient")) {
            fail |= set_addr(&tmp.rcpt, untyped(v), 1);
            named = 1;
        } else if (pg_bhdr_is(&f, "Original-Recipient")) {
            fail |= set_addr(&tmp.original_rcpt, untyped(v), 1);
            named = 1;
        } else if (pg_bhdr_is(&f, "Action")) {
            lower(v);
            fail |= pg_bounce_set(&tmp.action, v, strcspn(v, " ("), 1);
        } else if (pg_bhdr_is(&f, "Status")) {
            snprintf(tmp.status, sizeof tmp.status, "%.*s", (int)strcspn(v, " ("), v);
        } else if (pg_bhdr_is(&f, "Remote-MTA")) {
            fail |= pg_bounce_set(&tmp.remote_mta, untyped(v), strlen(untyped(v)), 1);
        } else if (pg_bhdr_is(&f, "Diagnostic-Code")) {
            fail |= pg_bounce_set(&tmp.diagnostic, untyped(v), strlen(untyped(v)), 1);
        }
    }
    pigeon_bounce_rcpt *rc = named && !fail ? pg_bounce_rcpt_add(r, nomem) : NULL;
    if (rc == NULL) {
        free(tmp.rcpt);
        free(tmp.original_rcpt);
        free(tmp.action);
        free(tmp.remote_mta);
        free(tmp.diagnostic);
        *nomem |= fail;
        return 0;
    }
    *rc = tmp;
    if (rc->rcpt == NULL && rc->original_rcpt != NULL)
        rc->rcpt = strdup(rc->original_rcpt);
    pg_bounce_rcpt_classify(rc);
    return 1;
}

size_t pg_bounce_dsn(pigeon_bounce_report *r, const char *in, size_t n, int *nomem)
{
    pg_bhdr_iter it;
    pg_bhdr_field f;
    char v[PG_BHDR_VALUE_MAX];
    size_t added = 0, pos = 0;
    /* Leading empty lines, which some MTAs write, are skipped. */
    while (pos < n && (in[pos] == '\r' || in[pos] == '\n'))
        pos++;
    /* The per-message block (RFC 3464 2.2). A block that already names a recipient (no
     * empty line after the per-message fields) is read as a recipient block. */
    pg_bhdr_begin(&it, in + pos, n - pos);
    int rcpt_in_first = 0;
    while (pg_bhdr_next(&it, &f)) {
        pg_bhdr_unfold(f.value, f.vlen, v, sizeof v);
        if (pg_bhdr_is(&f, "Reporting-MTA"))
            *nomem |= pg_bounce_set(&r->reporting_mta, untyped(v), strlen(untyped(v)), 0);
        else if (pg_bhdr_is(&f, "Original-Envelope-Id"))
            *nomem |= pg_bounce_set(&r->envelope_id, v, strlen(v), 0);
        else if (pg_bhdr_is(&f, "Final-Recipient") || pg_bhdr_is(&f, "Original-Recipient"))
            rcpt_in_first = 1;
    }
    if (rcpt_in_first) {
        pg_bhdr_begin(&it, in + pos, n - pos);
        added += (size_t)dsn_rcpt_block(r, &it, nomem);
    }
    pos += it.pos;
    while (pos < n && !*nomem && r->count < PG_BOUNCE_RCPTS_MAX) {
        while (pos < n && (in[pos] == '\r' || in[pos] == '\n'))
            pos++;
        if (pos >= n)
            break;
        pg_bhdr_begin(&it, in + pos, n - pos);
        added += (size_t)dsn_rcpt_block(r, &it, nomem);
        if (it.pos == 0)
            break;
        pos += it.pos;
    }
    if (pos < n && r->count >= PG_BOUNCE_RCPTS_MAX)
        r->truncated = 1;
    return added;
}

size_t pg_bounce_arf(pigeon_bounce_report *r, const char *in, size_t n, int *nomem)
{
    pg_bhdr_iter it;
    pg_bhdr_field f;
    char v[PG_BHDR_VALUE_MAX];
    size_t seen = 0;
    while (n > 0 && (*in == '\r' || *in == '\n'))
        in++, n--;
    pg_bhdr_begin(&it, in, n);
    while (pg_bhdr_next(&it, &f) && !*nomem) {
        pg_bhdr_unfold(f.value, f.vlen, v, sizeof v);
        if (pg_bhdr_is(&f, "Feedback-Type")) {
            lower(v);
            *nomem |= pg_bounce_set(&r->feedback_type, v, strlen(v), 0);
        } else if (pg_bhdr_is(&f, "User-Agent")) {
            *nomem |= pg_bounce_set(&r->user_agent, v, strlen(v), 0);
        } else if (pg_bhdr_is(&f, "Reporting-MTA")) {
            *nomem |= pg_bounce_set(&r->reporting_mta, untyped(v), strlen(untyped(v)), 0);
        } else if (pg_bhdr_is(&f, "Original-Mail-From")) {
            *nomem |= set_addr(&r->orig_envelope_from, v, 1);
        } else if (pg_bhdr_is(&f, "Original-Envelope-Id")) {
            *nomem |= pg_bounce_set(&r->envelope_id, v, strlen(v), 0);
        } else if (pg_bhdr_is(&f, "Original-Rcpt-To")) {
            char *a = pg_bhdr_addr(v, strlen(v));
            pigeon_bounce_rcpt *rc = NULL;
            if (a != NULL && pg_bounce_rcpt_find(r, a) == NULL)
                rc = pg_bounce_rcpt_add(r, nomem);
            if (rc != NULL) {
                *nomem |= pg_bounce_take(&rc->rcpt, a, 1);
                a = NULL;
                rc->cls = PIGEON_BOUNCE_COMPLAINT;
                rc->reason = "complaint";
            }
            free(a);
        } else {
            continue;
        }
        seen++;
    }
    return seen;
}

size_t pg_bounce_mdn(pigeon_bounce_report *r, const char *in, size_t n, int *nomem)
{
    pg_bhdr_iter it;
    pg_bhdr_field f;
    char v[PG_BHDR_VALUE_MAX];
    size_t seen = 0;
    while (n > 0 && (*in == '\r' || *in == '\n'))
        in++, n--;
    pg_bhdr_begin(&it, in, n);
    while (pg_bhdr_next(&it, &f) && !*nomem) {
        pg_bhdr_unfold(f.value, f.vlen, v, sizeof v);
        if (pg_bhdr_is(&f, "Final-Recipient")) {
            pigeon_bounce_rcpt *rc = pg_bounce_rcpt_add(r, nomem);
            if (rc != NULL) {
                *nomem |= set_addr(&rc->rcpt, untyped(v), 1);
                rc->cls = PIGEON_BOUNCE_NONE;
                rc->reason = "not_a_bounce";
            }
        } else if (pg_bhdr_is(&f, "Original-Message-ID")) {
            *nomem |= pg_bounce_set(&r->orig_message_id, v + (v[0] == '<'),
                                    strcspn(v + (v[0] == '<'), ">"), 0);
        } else if (pg_bhdr_is(&f, "Reporting-UA")) {
            *nomem |= pg_bounce_set(&r->reporting_mta, v, strcspn(v, ";"), 0);
        } else if (pg_bhdr_is(&f, "Disposition")) {
            if (r->count > 0) {
                const char *d = untyped(v);
                *nomem |= pg_bounce_set(&r->rcpts[r->count - 1].action, d, strlen(d), 0);
            }
        } else {
            continue;
        }
        seen++;
    }
    return seen;
}

size_t pg_bounce_original(pigeon_bounce_report *r, const char *in, size_t n, int *nomem)
{
    pg_bhdr_iter it;
    pg_bhdr_field f;
    char v[PG_BHDR_VALUE_MAX];
    size_t seen = 0;
    pg_bhdr_begin(&it, in, n);
    while (pg_bhdr_next(&it, &f) && !*nomem) {
        pg_bhdr_unfold(f.value, f.vlen, v, sizeof v);
        if (pg_bhdr_is(&f, "Message-ID")) {
            const char *id = v[0] == '<' ? v + 1 : v;
            *nomem |= pg_bounce_set(&r->orig_message_id, id, strcspn(id, "> "), 0);
        } else if (pg_bhdr_is(&f, "From")) {
            *nomem |= set_addr(&r->orig_from, v, 0);
        } else if (pg_bhdr_is(&f, "To")) {
            *nomem |= set_addr(&r->orig_to, v, 0);
        } else if (pg_bhdr_is(&f, "Subject")) {
            pg_buf b;
            pg_buf_init(&b);
            pg_bhdr_decode_words(&b, v);
            *nomem |= b.err != PIGEON_OK || pg_bounce_set(&r->orig_subject, b.data, b.len, 0);
            pg_buf_cleanup(&b);
        } else if (pg_bhdr_is(&f, "Return-Path")) {
            *nomem |= set_addr(&r->orig_envelope_from, v, 0);
        } else {
            continue;
        }
        seen++;
    }
    return seen;
}
