/*
 * spf_eval.c - SPF evaluation: check_host() (RFC 7208 4), with the processing limits of
 * 4.6.4 and macro expansion (7), on the asynchronous resolver.
 *
 * Written here rather than taken from libspf2 because a diagnosis needs what libspf2 does
 * not report: the lookup and void-lookup counts, the include/redirect chain with each
 * step's record, and the DNS outcome (timeout, SERVFAIL) behind a temperror. The same code
 * walks a record with no client address, every mechanism evaluated and none matching, to
 * give the cost a receiver pays for a sender the record does not list.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pigeon/dns.h"
#include "util/buf.h"

#define SPF_MAX_LOOKUPS 10 /* RFC 7208 4.6.4: DNS-querying terms per evaluation */
#define SPF_MAX_VOID    2  /* RFC 7208 4.6.4: lookups returning no record */
#define SPF_MAX_NAMES   10 /* RFC 7208 4.6.4: MX or PTR names looked at per mechanism */
#define SPF_MAX_DEPTH   12 /* nesting kept for loop detection (the lookup limit bounds it) */

/* The state of one evaluation. */
struct spf_ctx {
    pigeon_dns *r;                    /* the resolver */
    int family;                       /* AF_INET, AF_INET6, or 0: match no address */
    unsigned char ip[16];             /* the client address */
    char ip_text[64];                 /* the same in text */
    char sender[320];                 /* "local@domain" */
    pigeon_spf_eval *ev;              /* counts and reason */
    pg_buf trace;                     /* the explanation */
    const char *stack[SPF_MAX_DEPTH]; /* domains being evaluated, outermost first */
    int depth;                        /* entries in stack */
    int in_include; /* include: evaluations under way: their non-pass results are not ours (5.2) */
};

/* A mechanism's outcome: match, no match, or an error result that ends evaluation. */
enum { NO_MATCH = 0, MATCH = 1, ERROR = 2 };

static pigeon_spf_result check_host(struct spf_ctx *c, const char *domain);

static void trace(struct spf_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct spf_ctx *c, const char *fmt, ...)
{
    va_list ap;
    for (int i = 1; i < c->depth; i++)
        pg_buf_puts(&c->trace, "  ");
    va_start(ap, fmt);
    pg_buf_vprintf(&c->trace, fmt, ap);
    va_end(ap);
    pg_buf_putc(&c->trace, '\n');
}

static pigeon_spf_result fail_with(struct spf_ctx *c, pigeon_spf_result res, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static pigeon_spf_result fail_with(struct spf_ctx *c, pigeon_spf_result res, const char *fmt, ...)
{
    va_list ap;
    if (c->ev->reason[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(c->ev->reason, sizeof c->ev->reason, fmt, ap);
        va_end(ap);
        trace(c, "!! %s: %s", pigeon_spf_result_name(res), c->ev->reason);
    }
    return res;
}

static int is_dns_error(pigeon_dns_status st)
{
    return st != PIGEON_DNS_OK && st != PIGEON_DNS_NXDOMAIN && st != PIGEON_DNS_NODATA;
}

/* ---- macros (RFC 7208 7) ---- */

/* The value of one macro letter. */
static void macro_value(struct spf_ctx *c, char letter, const char *domain, char *out, size_t n)
{
    const char *at = strrchr(c->sender, '@');
    switch (tolower((unsigned char)letter)) {
    case 's':
        snprintf(out, n, "%s", c->sender);
        break;
    case 'l':
        snprintf(out, n, "%.*s", at ? (int)(at - c->sender) : 0, c->sender);
        break;
    case 'o':
        snprintf(out, n, "%s", at ? at + 1 : c->sender);
        break;
    case 'd':
    case 'h':
        snprintf(out, n, "%s", domain);
        break;
    case 'i':
        if (c->family == AF_INET6) {
            /* 7.3: IPv6 as dot-separated nibbles. */
            size_t k = 0;
            for (int i = 0; i < 16 && k + 4 < n; i++) {
                k += (size_t)snprintf(out + k, n - k, "%x.%x%s", c->ip[i] >> 4, c->ip[i] & 15,
                                      i < 15 ? "." : "");
            }
        } else {
            snprintf(out, n, "%s", c->family ? c->ip_text : "0.0.0.0");
        }
        break;
    case 'v':
        snprintf(out, n, "%s", c->family == AF_INET6 ? "ip6" : "in-addr");
        break;
    default: /* p (discouraged, 7.3), and c, r, t (exp only) */
        snprintf(out, n, "unknown");
    }
}

/* Applies the transformers: split on delims, optionally reverse, keep the rightmost
 * keep parts (0 = all), join with dots. */
static void transform(char *value, size_t n, int keep, int reverse, const char *delims)
{
    char *parts[128];
    int np = 0;
    char copy[512];
    snprintf(copy, sizeof copy, "%s", value);
    char *p = copy;
    parts[np++] = p;
    for (; *p && np < 128; p++) {
        if (strchr(delims, *p) != NULL) {
            *p = '\0';
            parts[np++] = p + 1;
        }
    }
    if (reverse) {
        for (int i = 0; i < np / 2; i++) {
            char *t = parts[i];
            parts[i] = parts[np - 1 - i];
            parts[np - 1 - i] = t;
        }
    }
    int first = keep > 0 && keep < np ? np - keep : 0;
    size_t k = 0;
    value[0] = '\0';
    for (int i = first; i < np && k < n; i++)
        k += (size_t)snprintf(value + k, n - k, "%s%s", i > first ? "." : "", parts[i]);
}

/* Expands a domain-spec into out. Returns 0, or -1 when it cannot be expanded. */
static int expand(struct spf_ctx *c, const char *spec, const char *domain, char *out, size_t n)
{
    size_t k = 0;
    for (const char *s = spec; *s != '\0' && k + 1 < n; s++) {
        if (*s != '%') {
            out[k++] = *s;
            continue;
        }
        s++;
        if (*s == '%' || *s == '_' || *s == '-') {
            const char *lit = *s == '%' ? "%" : *s == '_' ? " " : "%20";
            k += (size_t)snprintf(out + k, n - k, "%s", lit);
            continue;
        }
        if (*s != '{')
            return -1;
        char letter = s[1], value[512], delims[8] = "";
        int keep = 0, reverse = 0;
        s += 2;
        while (isdigit((unsigned char)*s))
            keep = keep * 10 + (*s++ - '0');
        if (*s == 'r' || *s == 'R') {
            reverse = 1;
            s++;
        }
        size_t nd = 0;
        while (*s != '}' && *s != '\0' && nd + 1 < sizeof delims)
            delims[nd++] = *s++;
        delims[nd] = '\0';
        if (*s != '}')
            return -1;
        macro_value(c, letter, domain, value, sizeof value);
        transform(value, sizeof value, keep, reverse, nd ? delims : ".");
        k += (size_t)snprintf(out + k, n - k, "%s", value);
    }
    if (k >= n)
        k = n - 1;
    out[k] = '\0';
    /* 7.3: an expansion over 253 characters loses labels from the left. */
    char *p = out;
    while (strlen(p) > 253 && strchr(p, '.') != NULL)
        p = strchr(p, '.') + 1;
    if (p != out)
        memmove(out, p, strlen(p) + 1);
    return 0;
}

/* The target domain of a term: its expanded domain-spec, or the current domain. */
static int target_of(struct spf_ctx *c, const pigeon_spf_term *t, const char *domain, char *out,
                     size_t n)
{
    if (t->domain[0] == '\0') {
        snprintf(out, n, "%s", domain);
        return 0;
    }
    return expand(c, t->domain, domain, out, n);
}

/* ---- matching ---- */

static int in_network(const struct spf_ctx *c, const unsigned char *net, int family, int cidr)
{
    if (c->family != family)
        return 0;
    int bytes = cidr / 8, bits = cidr % 8;
    if (memcmp(c->ip, net, (size_t)bytes) != 0)
        return 0;
    if (bits == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - bits));
    return (c->ip[bytes] & mask) == (net[bytes] & mask);
}

static int addr_matches(const struct spf_ctx *c, const char *text, int cidr4, int cidr6)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, text, a) == 1)
        return in_network(c, a, AF_INET, cidr4);
    if (inet_pton(AF_INET6, text, a) == 1)
        return in_network(c, a, AF_INET6, cidr6);
    return 0;
}

/* Counts a DNS-querying term (4.6.4). Returns 0, or -1 past the limit. */
static int count_lookup(struct spf_ctx *c, const pigeon_spf_term *t)
{
    if (++c->ev->lookups > SPF_MAX_LOOKUPS) {
        fail_with(c, PIGEON_SPF_PERMERROR, "more than %d DNS lookups (%s is number %d)",
                  SPF_MAX_LOOKUPS, t->text, c->ev->lookups);
        return -1;
    }
    return 0;
}

/* Looks up name, counting a void answer. Returns the status, or -1 after an error
 * result was recorded in *res. */
static int lookup(struct spf_ctx *c, const char *name, pigeon_dns_type type, pigeon_dns_answer *ans,
                  pigeon_spf_result *res)
{
    pigeon_dns_status st = pigeon_dns_query(c->r, name, type, ans);
    if (is_dns_error(st)) {
        *res = fail_with(c, PIGEON_SPF_TEMPERROR, "DNS %s for %s %s", pigeon_dns_status_name(st),
                         type == PIGEON_DNS_MX    ? "MX"
                         : type == PIGEON_DNS_TXT ? "TXT"
                                                  : "address",
                         name);
        return -1;
    }
    if (st != PIGEON_DNS_OK && ++c->ev->void_lookups > SPF_MAX_VOID) {
        *res = fail_with(c, PIGEON_SPF_PERMERROR, "more than %d void lookups (%s: %s)",
                         SPF_MAX_VOID, name, pigeon_dns_status_name(st));
        return -1;
    }
    return (int)st;
}

static pigeon_dns_type addr_type(const struct spf_ctx *c)
{
    return c->family == AF_INET6 ? PIGEON_DNS_AAAA : PIGEON_DNS_A;
}

static int match_a(struct spf_ctx *c, const pigeon_spf_term *t, const char *target,
                   pigeon_spf_result *res)
{
    pigeon_dns_answer ans;
    int st = lookup(c, target, addr_type(c), &ans, res);
    int m = st < 0 ? ERROR : NO_MATCH;
    for (size_t i = 0; st == PIGEON_DNS_OK && i < ans.count && m == NO_MATCH; i++)
        m = addr_matches(c, ans.records[i].text, t->cidr4, t->cidr6) ? MATCH : NO_MATCH;
    pigeon_dns_answer_cleanup(&ans);
    return m;
}

static int match_mx(struct spf_ctx *c, const pigeon_spf_term *t, const char *target,
                    pigeon_spf_result *res)
{
    pigeon_dns_answer mx;
    int st = lookup(c, target, PIGEON_DNS_MX, &mx, res);
    int m = st < 0 ? ERROR : NO_MATCH;
    if (st == PIGEON_DNS_OK && mx.count > SPF_MAX_NAMES) {
        *res = fail_with(c, PIGEON_SPF_PERMERROR, "%s has %zu MX records (more than %d)", target,
                         mx.count, SPF_MAX_NAMES);
        m = ERROR;
    }
    for (size_t i = 0; m == NO_MATCH && st == PIGEON_DNS_OK && i < mx.count; i++) {
        pigeon_dns_answer ans;
        if (mx.records[i].text[0] == '\0')
            continue; /* null MX */
        if (pigeon_dns_query(c->r, mx.records[i].text, addr_type(c), &ans) == PIGEON_DNS_OK) {
            for (size_t j = 0; j < ans.count && m == NO_MATCH; j++)
                m = addr_matches(c, ans.records[j].text, t->cidr4, t->cidr6) ? MATCH : NO_MATCH;
        }
        pigeon_dns_answer_cleanup(&ans);
    }
    pigeon_dns_answer_cleanup(&mx);
    return m;
}

/* 5.5: validated names of the client address that are target or under it. */
static int match_ptr(struct spf_ctx *c, const char *target, pigeon_spf_result *res)
{
    char rev[128];
    pigeon_dns_answer names;
    if (c->family == 0 ||
        pigeon_dns_reverse_name(c->ip_text, c->family == AF_INET6 ? "ip6.arpa" : "in-addr.arpa",
                                rev, sizeof rev) != 0)
        return NO_MATCH;
    /* 5.5: a DNS error here is no match, not a temperror. */
    if (pigeon_dns_query(c->r, rev, PIGEON_DNS_PTR, &names) != PIGEON_DNS_OK) {
        pigeon_dns_answer_cleanup(&names);
        return NO_MATCH;
    }
    int m = NO_MATCH;
    size_t tl = strlen(target);
    for (size_t i = 0; i < names.count && i < SPF_MAX_NAMES && m == NO_MATCH; i++) {
        const char *name = names.records[i].text;
        size_t nl = strlen(name);
        int under = nl >= tl && strcasecmp(name + nl - tl, target) == 0 &&
                    (nl == tl || name[nl - tl - 1] == '.');
        pigeon_dns_answer ans;
        if (!under || pigeon_dns_query(c->r, name, addr_type(c), &ans) != PIGEON_DNS_OK) {
            if (under)
                pigeon_dns_answer_cleanup(&ans);
            continue;
        }
        for (size_t j = 0; j < ans.count && m == NO_MATCH; j++)
            m = addr_matches(c, ans.records[j].text, 32, 128) ? MATCH : NO_MATCH;
        pigeon_dns_answer_cleanup(&ans);
    }
    (void)res;
    pigeon_dns_answer_cleanup(&names);
    return m;
}

static int match_include(struct spf_ctx *c, const char *target, pigeon_spf_result *res)
{
    size_t used = strlen(c->ev->includes);
    if (used + strlen(target) + 2 < sizeof c->ev->includes)
        snprintf(c->ev->includes + used, sizeof c->ev->includes - used, "%s%s", used ? " " : "",
                 target);
    c->in_include++;
    pigeon_spf_result r = check_host(c, target);
    c->in_include--;
    switch (r) {
    case PIGEON_SPF_PASS:
        return MATCH;
    case PIGEON_SPF_FAIL:
    case PIGEON_SPF_SOFTFAIL:
    case PIGEON_SPF_NEUTRAL:
        return NO_MATCH;
    case PIGEON_SPF_TEMPERROR:
        *res = r;
        return ERROR;
    default:
        /* 5.2: an include whose target has no SPF record is a permerror. */
        *res = fail_with(c, PIGEON_SPF_PERMERROR, "include:%s has no SPF record", target);
        *res = PIGEON_SPF_PERMERROR;
        return ERROR;
    }
}

/* Evaluates one mechanism. */
static int match(struct spf_ctx *c, const pigeon_spf_term *t, const char *domain,
                 pigeon_spf_result *res)
{
    char target[512];
    switch (t->kind) {
    case PIGEON_SPF_ALL:
        return MATCH;
    case PIGEON_SPF_IP4:
        return in_network(c, t->ip, AF_INET, t->cidr4) ? MATCH : NO_MATCH;
    case PIGEON_SPF_IP6:
        return in_network(c, t->ip, AF_INET6, t->cidr6) ? MATCH : NO_MATCH;
    default:
        break;
    }
    if (count_lookup(c, t) != 0) {
        *res = PIGEON_SPF_PERMERROR;
        return ERROR;
    }
    if (target_of(c, t, domain, target, sizeof target) != 0) {
        *res = fail_with(c, PIGEON_SPF_PERMERROR, "cannot expand %s", t->text);
        return ERROR;
    }
    switch (t->kind) {
    case PIGEON_SPF_INCLUDE:
        return match_include(c, target, res);
    case PIGEON_SPF_A:
        return match_a(c, t, target, res);
    case PIGEON_SPF_MX:
        return match_mx(c, t, target, res);
    case PIGEON_SPF_PTR:
        return match_ptr(c, target, res);
    case PIGEON_SPF_EXISTS: {
        pigeon_dns_answer ans;
        int st = lookup(c, target, PIGEON_DNS_A, &ans, res);
        pigeon_dns_answer_cleanup(&ans);
        return st < 0 ? ERROR : st == PIGEON_DNS_OK ? MATCH : NO_MATCH;
    }
    default:
        return NO_MATCH;
    }
}

static pigeon_spf_result qualifier_result(char q)
{
    switch (q) {
    case '-':
        return PIGEON_SPF_FAIL;
    case '~':
        return PIGEON_SPF_SOFTFAIL;
    case '?':
        return PIGEON_SPF_NEUTRAL;
    default:
        return PIGEON_SPF_PASS;
    }
}

/* Fetches and parses the one SPF record of domain (4.4, 4.5). Returns 0 with rec filled,
 * or -1 with *res set. */
static int fetch_record(struct spf_ctx *c, const char *domain, pigeon_spf_record *rec,
                        pigeon_spf_result *res)
{
    pigeon_dns_answer ans;
    pigeon_dns_status st = pigeon_dns_query(c->r, domain, PIGEON_DNS_TXT, &ans);
    int rc = -1;
    if (is_dns_error(st)) {
        *res = fail_with(c, PIGEON_SPF_TEMPERROR, "DNS %s for TXT %s", pigeon_dns_status_name(st),
                         domain);
        goto done;
    }
    const pigeon_dns_record *found = NULL;
    int n = 0;
    for (size_t i = 0; i < ans.count; i++) {
        if (pigeon_spf_is_record(ans.records[i].text, ans.records[i].len)) {
            found = &ans.records[i];
            n++;
        }
    }
    if (n == 0) {
        trace(c, "%s: no SPF record (%s)", domain,
              st == PIGEON_DNS_OK ? "no TXT record starts with v=spf1"
                                  : pigeon_dns_status_name(st));
        *res = PIGEON_SPF_NONE;
        goto done;
    }
    if (n > 1) {
        *res =
            fail_with(c, PIGEON_SPF_PERMERROR, "%s has %d SPF records (4.5 allows one)", domain, n);
        goto done;
    }
    trace(c, "%s: \"%.*s\"", domain, (int)(found->len > 400 ? 400 : found->len), found->text);
    if (pigeon_spf_parse(found->text, found->len, rec) != PIGEON_OK) {
        *res = fail_with(c, PIGEON_SPF_PERMERROR, "syntax error in the record of %s: %s", domain,
                         rec->error);
        goto done;
    }
    rc = 0;
done:
    pigeon_dns_answer_cleanup(&ans);
    return rc;
}

/* The mechanisms in order (4.6.2); then redirect= (6.1). */
static pigeon_spf_result evaluate(struct spf_ctx *c, const pigeon_spf_record *rec,
                                  const char *domain)
{
    pigeon_spf_result res = PIGEON_SPF_NEUTRAL;
    for (int i = 0; i < rec->count; i++) {
        const pigeon_spf_term *t = &rec->terms[i];
        if (t->kind >= PIGEON_SPF_REDIRECT)
            continue;
        if (t->kind == PIGEON_SPF_PTR)
            trace(c, "  %s (ptr is slow and discouraged, RFC 7208 5.5)", t->text);
        else if (t->kind == PIGEON_SPF_INCLUDE)
            trace(c, "  %s (lookup %d)", t->text, c->ev->lookups + 1);
        int m = match(c, t, domain, &res);
        if (m == ERROR)
            return res;
        if (m == MATCH) {
            res = qualifier_result(t->qualifier);
            if (c->in_include == 0 || res == PIGEON_SPF_PASS)
                snprintf(c->ev->reason, sizeof c->ev->reason, "%s matched in %s", t->text, domain);
            trace(c, "  = %s (%s)", pigeon_spf_result_name(res), t->text);
            return res;
        }
    }
    if (rec->redirect < 0) {
        trace(c, "  = neutral (nothing matched)");
        return PIGEON_SPF_NEUTRAL;
    }
    const pigeon_spf_term *t = &rec->terms[rec->redirect];
    char target[512];
    trace(c, "  %s (lookup %d)", t->text, c->ev->lookups + 1);
    if (count_lookup(c, t) != 0)
        return PIGEON_SPF_PERMERROR;
    if (target_of(c, t, domain, target, sizeof target) != 0)
        return fail_with(c, PIGEON_SPF_PERMERROR, "cannot expand %s", t->text);
    size_t used = strlen(c->ev->includes);
    if (used + strlen(target) + 2 < sizeof c->ev->includes)
        snprintf(c->ev->includes + used, sizeof c->ev->includes - used, "%s%s", used ? " " : "",
                 target);
    res = check_host(c, target);
    /* 6.1: a redirect to a domain without a record is a permerror. */
    if (res == PIGEON_SPF_NONE)
        return fail_with(c, PIGEON_SPF_PERMERROR, "redirect=%s has no SPF record", target);
    return res;
}

static pigeon_spf_result check_host(struct spf_ctx *c, const char *domain)
{
    for (int i = 0; i < c->depth; i++) {
        if (strcasecmp(c->stack[i], domain) == 0) {
            char chain[256] = "";
            size_t k = 0;
            for (int j = i; j < c->depth && k < sizeof chain; j++)
                k += (size_t)snprintf(chain + k, sizeof chain - k, "%s -> ", c->stack[j]);
            return fail_with(c, PIGEON_SPF_PERMERROR, "include loop: %s%s", chain, domain);
        }
    }
    if (c->depth >= SPF_MAX_DEPTH)
        return fail_with(c, PIGEON_SPF_PERMERROR, "includes nested too deep at %s", domain);
    pigeon_spf_record *rec = malloc(sizeof *rec);
    if (rec == NULL)
        return fail_with(c, PIGEON_SPF_TEMPERROR, "out of memory");
    c->stack[c->depth++] = domain;
    pigeon_spf_result res;
    if (fetch_record(c, domain, rec, &res) == 0)
        res = evaluate(c, rec, domain);
    c->depth--;
    free(rec);
    return res;
}

pigeon_spf_result pigeon_spf_check_host(pigeon_dns *r, const char *ip, const char *domain,
                                        const char *sender, pigeon_spf_eval *ev)
{
    struct spf_ctx c;
    memset(&c, 0, sizeof c);
    if (ev == NULL)
        return PIGEON_SPF_PERMERROR;
    memset(ev, 0, sizeof *ev);
    c.r = r;
    c.ev = ev;
    pg_buf_init(&c.trace);
    c.trace.max = 64 * 1024;
    if (ip != NULL && inet_pton(AF_INET, ip, c.ip) == 1)
        c.family = AF_INET;
    else if (ip != NULL && inet_pton(AF_INET6, ip, c.ip) == 1)
        c.family = AF_INET6;
    if (c.family)
        inet_ntop(c.family, c.ip, c.ip_text, sizeof c.ip_text);
    if (sender != NULL && strchr(sender, '@') != NULL)
        snprintf(c.sender, sizeof c.sender, "%s", sender);
    else
        snprintf(c.sender, sizeof c.sender, "postmaster@%s", domain ? domain : "");
    if (r == NULL || domain == NULL || domain[0] == '\0' || strlen(domain) > 253) {
        ev->result = PIGEON_SPF_NONE;
        snprintf(ev->reason, sizeof ev->reason, "no domain to check");
    } else {
        ev->result = check_host(&c, domain);
    }
    if (ev->reason[0] == '\0' && ev->result == PIGEON_SPF_NONE)
        snprintf(ev->reason, sizeof ev->reason, "%s publishes no SPF record", domain ? domain : "");
    ev->trace = pg_buf_detach(&c.trace, NULL);
    return ev->result;
}

void pigeon_spf_eval_cleanup(pigeon_spf_eval *ev)
{
    if (ev == NULL)
        return;
    free(ev->trace);
    memset(ev, 0, sizeof *ev);
}
