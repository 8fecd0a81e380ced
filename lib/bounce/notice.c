/*
 * notice.c - the human-readable bounces without a delivery-status part (see notice.h).
 *
 * There is no standard to follow, only habits: a notice names each failed address on a
 * line of its own (Exim indents it, qmail writes "<addr>:", Exchange "addr (addr)"), or
 * after a label ("收件人：", "Recipient:"), or in "RCPT TO:<addr>"; the lines after it
 * give the reason, often the remote server's reply ("Remote host said: 550 5.1.1 ...",
 * "Remote Server returned '550 5.1.1 ...'"). A line announcing a copy of the original
 * ends the notice proper; the original's header follows it.
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
#include "util/buf.h"

/* Most reason lines taken for one recipient. */
#define REASON_LINES 8
/* Longest line examined. */
#define LINE_MAX 1000

static const char *const body_markers[] = {
    "this is the qmail-send program",
    "created automatically by mail delivery software",
    "delivery has failed to these recipients",
    "your message couldn't be delivered",
    "your message wasn't delivered",
    "delivery to the following recipient failed",
    "delivery to the following recipients failed",
    "remote server returned '",
    "this is the mail system at host",
    "i'm sorry to have to inform you that your message could not",
    "sorry, we were unable to deliver your message",
    "could not be delivered to one or more recipients",
    "the following addresses had permanent fatal errors",
    "系统退信",
    "退信原因",
    "投递失败",
    "邮件被退回",
    "您发送的邮件",
    "无法送达",
};

static const char *const subject_markers[] = {
    "undelivered mail",
    "undeliverable",
    "undelivered",
    "delivery status notification",
    "delivery failure",
    "delivery failed",
    "mail delivery failed",
    "failure notice",
    "returned mail",
    "delivery has failed",
    "could not be delivered",
    "nondeliverable",
    "non-deliverable",
    "address not found",
    "message not delivered",
    "mail system error",
    "退信",
    "投递失败",
    "发送失败",
    "未送达",
    "无法送达",
    "退回",
};

static const char *const autoreply_subjects[] = {
    "auto:",
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "out of office",
    "out of the office",
    "vacation",
    "自动回复",
    "自動回覆",
    "休假",
    "réponse automatique",
    "abwesenheit",
};

/* Lines that announce the copy of the original message. */
static const char *const original_markers[] = {
    "copy of the message",
    "original message follows",
    "original message headers",
    "original message -----",
    "-----original message",
    "undelivered message headers",
    "headers of the original message",
    "原始邮件",
    "原邮件头",
};

/* Labels that put the failed address after them on the same line. */
static const char *const rcpt_labels[] = {
    "收件人",     "收信人",      "recipient",  "failed address", "delivered to",
    "deliver to", "delivery to", "message to", "address:",
};

/* Phrases that introduce the reason (the text after them, or the next line). */
static const char *const reason_labels[] = {
    "remote server returned",
    "remote host said",
    "response from the remote server",
    "the error that the other server returned",
    "smtp error",
    "退信原因",
    "失败原因",
    "错误原因",
    "原因",
    "reason:",
    "diagnostic",
};

/* Case-insensitive (ASCII) substring search within n octets. */
static const char *find_ci(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    if (k == 0 || k > n)
        return k == 0 ? s : NULL;
    /* The needles are lower case: look for the first byte in either case with memchr,
     * then compare the rest. */
    unsigned char first = (unsigned char)needle[0];
    unsigned char upper = first >= 'a' && first <= 'z' ? (unsigned char)(first - 32) : first;
    for (size_t i = 0; i <= n - k;) {
        const char *a = memchr(s + i, first, n - k + 1 - i);
        const char *b = upper != first ? memchr(s + i, upper, n - k + 1 - i) : NULL;
        const char *p = a == NULL ? b : b == NULL || a < b ? a : b;
        if (p == NULL)
            return NULL;
        if (strncasecmp(p + 1, needle + 1, k - 1) == 0)
            return p;
        i = (size_t)(p - s) + 1;
    }
    return NULL;
}

static int any_of(const char *s, size_t n, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (find_ci(s, n, list[i]) != NULL)
            return 1;
    }
    return 0;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

int pg_bounce_notice_marker(const char *text, size_t n)
{
    return text != NULL && any_of(text, n, body_markers, COUNT(body_markers));
}

int pg_bounce_notice_subject(const char *subject)
{
    return subject != NULL &&
           any_of(subject, strlen(subject), subject_markers, COUNT(subject_markers));
}

int pg_bounce_autoreply_subject(const char *subject)
{
    return subject != NULL &&
           any_of(subject, strlen(subject), autoreply_subjects, COUNT(autoreply_subjects));
}

/* Whether the address's domain is domain or a subdomain of it. */
static int from_domain(const char *from, const char *domain)
{
    const char *at = from != NULL ? strrchr(from, '@') : NULL;
    if (at == NULL)
        return 0;
    size_t n = strlen(at + 1), k = strlen(domain);
    return n >= k && strcasecmp(at + 1 + n - k, domain) == 0 &&
           (n == k || at[1 + n - k - 1] == '.');
}

const char *pg_bounce_notice_dialect(const char *text, size_t n, const char *from,
                                     const char *subject)
{
    if (from_domain(from, "qq.com") || find_ci(text, n, "exmail.qq.com") != NULL)
        return "qq";
    if (from_domain(from, "163.com") || from_domain(from, "126.com") ||
        from_domain(from, "yeah.net") || from_domain(from, "netease.com"))
        return "163";
    if (from_domain(from, "google.com") || from_domain(from, "googlemail.com") ||
        from_domain(from, "gmail.com"))
        return "gmail";
    if (from_domain(from, "yahoo.com") || from_domain(from, "yahoo.co.jp") ||
        from_domain(from, "yahoodns.net"))
        return "yahoo";
    if (find_ci(text, n, "qmail-send program") != NULL)
        return "qmail";
    if (find_ci(text, n, "delivery has failed to these recipients") != NULL ||
        find_ci(text, n, "remote server returned '") != NULL ||
        find_ci(text, n, "your message couldn't be delivered") != NULL ||
        from_domain(from, "outlook.com") || from_domain(from, "office365.com"))
        return "exchange";
    if (find_ci(text, n, "mail delivery software") != NULL)
        return "exim";
    if (find_ci(text, n, "this is the mail system at host") != NULL ||
        (subject != NULL && strcasecmp(subject, "Undelivered Mail Returned to Sender") == 0))
        return "postfix";
    return NULL;
}

/* The reasons collected per recipient while the text is read. */
typedef struct reasons {
    pg_buf *text;  /* one buffer per recipient of r, same index */
    size_t cap;    /* buffers allocated */
    pg_buf global; /* a reason that names no recipient */
} reasons;

static pg_buf *reason_of(reasons *rs, size_t i, int *nomem)
{
    if (i >= rs->cap) {
        size_t cap = rs->cap != 0 ? rs->cap * 2 : 8;
        while (cap <= i)
            cap *= 2;
        pg_buf *n = realloc(rs->text, cap * sizeof *n);
        if (n == NULL) {
            *nomem = 1;
            return NULL;
        }
        for (size_t k = rs->cap; k < cap; k++)
            pg_buf_init(&n[k]);
        rs->text = n;
        rs->cap = cap;
    }
    return &rs->text[i];
}

/* Whether the line is an address alone: optional "<>", ":" or "(...)" around it. */
static char *lone_address(const char *line, size_t n)
{
    size_t s = 0;
    while (s < n && (line[s] == ' ' || line[s] == '\t' || line[s] == '*' || line[s] == '-'))
        s++;
    if (s == n)
        return NULL;
    size_t e = s;
    while (e < n && line[e] != ' ' && line[e] != '\t')
        e++;
    /* What follows the address may be "(addr)", "(generated from x)", or ":" only. */
    size_t rest = e;
    while (rest < n && (line[rest] == ' ' || line[rest] == '\t'))
        rest++;
    const char *w = line + s;
    size_t wl = e - s;
    /* Postfix's and qmail's "<addr>: reason" keep the reason on the line. */
    int bracketed = wl > 3 && w[0] == '<' && w[wl - 2] == '>' && w[wl - 1] == ':';
    if (!bracketed && rest < n && line[rest] != '(' && line[rest] != ':')
        return NULL;
    while (wl > 0 && w[wl - 1] == ':')
        wl--;
    if (wl > 2 && w[0] == '<' && w[wl - 1] == '>')
        w++, wl -= 2;
    const char *at = memchr(w, '@', wl);
    if (at == NULL || at == w || at == w + wl - 1 || memchr(at + 1, '@', w + wl - at - 1))
        return NULL;
    for (size_t i = 0; i < wl; i++) {
        if (w[i] == '<' || w[i] == '>' || w[i] == '"' || w[i] == ',' || w[i] == ';')
            return NULL;
        /* A full-width mark ("收件人：a@b") makes it a labelled address, not a lone one. */
        if (i + 1 < wl &&
            (((unsigned char)w[i] == 0xef && ((unsigned char)w[i + 1] & 0xfe) == 0xbc) ||
             ((unsigned char)w[i] == 0xe3 && (unsigned char)w[i + 1] == 0x80)))
            return NULL;
    }
    if (memchr(at, '.', (size_t)(w + wl - at)) == NULL)
        return NULL;
    return strndup(w, wl);
}

/* The address after a recipient label, or in "RCPT TO:<addr>". */
static char *labelled_address(const char *line, size_t n)
{
    const char *p = find_ci(line, n, "rcpt to:");
    if (p != NULL)
        return pg_bhdr_addr(p, (size_t)(line + n - p));
    for (size_t i = 0; i < COUNT(rcpt_labels); i++) {
        p = find_ci(line, n, rcpt_labels[i]);
        if (p != NULL && (size_t)(p - line) < 40) {
            char *a = pg_bhdr_addr(p, (size_t)(line + n - p));
            if (a != NULL)
                return a;
        }
    }
    return NULL;
}

/* Whether the address is the notice's own (its From or To) or a daemon's. */
static int own_address(const pigeon_bounce_report *r, const char *a)
{
    if ((r->from != NULL && strcasecmp(a, r->from) == 0) ||
        (r->to != NULL && strcasecmp(a, r->to) == 0))
        return 1;
    return strncasecmp(a, "mailer-daemon@", 14) == 0;
}

static void add_line(pg_buf *b, const char *line, size_t n)
{
    if (b->len > 2 * LINE_MAX)
        return;
    if (b->len > 0)
        pg_buf_putc(b, ' ');
    pg_buf_append(b, line, n);
}

/* Whether the line carries a reply: an SMTP code with a status, or a reason label. */
static int reason_line(const char *line, size_t n)
{
    char status[16], tmp[LINE_MAX + 1];
    int code;
    snprintf(tmp, sizeof tmp, "%.*s", (int)n, line);
    pg_bounce_codes(tmp, status, &code);
    return (code != 0 && status[0] != '\0') || any_of(line, n, reason_labels, COUNT(reason_labels));
}

/* Where the original's header starts after the marker line at pos: the first line that
 * looks like a field. */
static void read_original(pigeon_bounce_report *r, const char *text, size_t n, size_t pos,
                          int *nomem)
{
    while (pos < n) {
        const char *nl = memchr(text + pos, '\n', n - pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : n;
        const char *colon = memchr(text + pos, ':', end - pos);
        if (colon != NULL && colon > text + pos && text[pos] != ' ' && text[pos] != '\t' &&
            memchr(text + pos, ' ', (size_t)(colon - text - pos)) == NULL) {
            pg_bounce_original(r, text + pos, n - pos, nomem);
            return;
        }
        pos = nl != NULL ? end + 1 : n;
    }
}

/* Starts or resumes the recipient named addr (taking it); returns its index or -1. */
static long take_rcpt(pigeon_bounce_report *r, char *addr, int *nomem)
{
    pigeon_bounce_rcpt *rc = pg_bounce_rcpt_find(r, addr);
    if (rc == NULL && own_address(r, addr)) {
        free(addr);
        return -1;
    }
    if (rc == NULL) {
        rc = pg_bounce_rcpt_add(r, nomem);
        if (rc == NULL) {
            free(addr);
            return -1;
        }
        *nomem |= pg_bounce_take(&rc->rcpt, addr, 1);
    } else {
        free(addr);
    }
    return (long)(rc - r->rcpts);
}

static void finish(pigeon_bounce_report *r, size_t first, reasons *rs, int *nomem)
{
    for (size_t i = first; i < r->count; i++) {
        pigeon_bounce_rcpt *rc = &r->rcpts[i];
        pg_buf *b = i < rs->cap ? &rs->text[i] : NULL;
        pigeon_bounce_class cls;
        const char *why;
        char status[16];
        int code;
        const char *own = b != NULL && b->len > 0 ? b->data : NULL;
        pg_bounce_codes(own, status, &code);
        /* A recipient without a reason of its own takes the notice's. */
        if (own == NULL || (status[0] == '\0' && code == 0 && !pg_bounce_keywords(own, &cls, &why)))
            if (rs->global.len > 0 && b != NULL)
                add_line(b, rs->global.data, rs->global.len);
        if (b != NULL && b->err != PIGEON_OK)
            *nomem = 1;
        if (b != NULL && b->len > 0)
            *nomem |= pg_bounce_set(&rc->diagnostic, b->data, b->len, 1);
        if (rc->action == NULL)
            *nomem |= pg_bounce_set(&rc->action, "failed", 6, 1);
        pg_bounce_rcpt_classify(rc);
    }
}

size_t pg_bounce_notice(pigeon_bounce_report *r, const char *text, size_t n, int *nomem)
{
    reasons rs = {NULL, 0, {0}};
    size_t first = r->count, pos = 0;
    long cur = -1;
    int lines_for_cur = 0, want_next_global = 0;
    pg_buf_init(&rs.global);
    while (pos < n && !*nomem) {
        const char *nl = memchr(text + pos, '\n', n - pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : n, next = nl != NULL ? end + 1 : n;
        const char *line = text + pos;
        size_t len = end - pos;
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
            len--;
        if (len > LINE_MAX)
            len = LINE_MAX;
        size_t lead = 0;
        while (lead < len && (line[lead] == ' ' || line[lead] == '\t'))
            lead++;
        if (len == lead) { /* an empty line ends a recipient's reason block */
            if (cur >= 0 && lines_for_cur > 0)
                cur = -1;
            pos = next;
            continue;
        }
        if (any_of(line, len, original_markers, COUNT(original_markers))) {
            read_original(r, text, n, next, nomem);
            break;
        }
        char *addr = lone_address(line, len);
        if (addr == NULL)
            addr = labelled_address(line, len);
        if (addr != NULL) {
            long idx = take_rcpt(r, addr, nomem);
            if (idx >= 0 && idx != cur) {
                cur = idx;
                lines_for_cur = 0;
            }
            /* "RCPT TO:<a>: 550 ..." or "收件人：a 原因：..." keep their reason. */
            if (cur >= 0 && reason_line(line, len)) {
                pg_buf *b = reason_of(&rs, (size_t)cur, nomem);
                if (b != NULL)
                    add_line(b, line + lead, len - lead);
            }
        } else if (cur >= 0 && lines_for_cur < REASON_LINES) {
            pg_buf *b = reason_of(&rs, (size_t)cur, nomem);
            if (b != NULL)
                add_line(b, line + lead, len - lead);
            lines_for_cur++;
            /* Exim: "host mx.example.net [192.0.2.1]" names the remote MTA. */
            if (len - lead > 5 && strncmp(line + lead, "host ", 5) == 0)
                *nomem |= pg_bounce_set(&r->rcpts[cur].remote_mta, line + lead + 5,
                                        strcspn(line + lead + 5, " \r\n"), 0);
        } else if (want_next_global || reason_line(line, len)) {
            if (rs.global.len < LINE_MAX)
                add_line(&rs.global, line + lead, len - lead);
            want_next_global = 0;
        }
        /* "The response from the remote server was:" puts the reply on the next line. */
        if (len > 0 && line[len - 1] == ':' && reason_line(line, len))
            want_next_global = 1;
        pos = next;
    }
    if (rs.global.err != PIGEON_OK)
        *nomem = 1;
    /* A notice that gives a reason but names nobody still reports the failure. */
    if (!*nomem && r->count == first && rs.global.len > 0 && pg_bounce_rcpt_add(r, nomem) != NULL)
        reason_of(&rs, first, nomem);
    if (!*nomem)
        finish(r, first, &rs, nomem);
    for (size_t i = 0; i < rs.cap; i++)
        pg_buf_cleanup(&rs.text[i]);
    free(rs.text);
    pg_buf_cleanup(&rs.global);
    return r->count - first;
}
