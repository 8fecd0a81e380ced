/*
 * spf.c - the SPF record parser (RFC 7208 4.5, 4.6.1, 5, 6, 7.1), on (buf, len).
 *
 * The record is split into terms on spaces; each is a directive (an optional qualifier
 * and a mechanism) or a modifier (name=value). Mechanism names are case-insensitive
 * (4.6.1). Domain-specs are kept unexpanded and their macros checked against the grammar
 * of 7.1, so that a record a receiver would reject as a permerror is rejected here too.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pigeon/dns.h"

int pigeon_spf_is_record(const char *buf, size_t len)
{
    /* RFC 7208 4.5: "v=spf1" (case-insensitive) followed by a space or the end. */
    return buf != NULL && len >= 6 && strncasecmp(buf, "v=spf1", 6) == 0 &&
           (len == 6 || buf[6] == ' ');
}

/* How much of the rest of a term to quote in an error: the input is not NUL-terminated. */
static int shown(size_t left)
{
    return left > 12 ? 12 : (int)left;
}

/* Checks a macro-string (7.1): '%' only as %%, %_, %- or %{letter digits [r] delims}.
 * Returns 0, or -1 with why written. Sets *macro when it holds an expansion. */
static int check_macro_string(const char *s, size_t n, int *macro, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            snprintf(why, whylen, "byte 0x%02x is not allowed in a domain-spec", c);
            return -1;
        }
        if (c != '%')
            continue;
        if (i + 1 >= n) {
            snprintf(why, whylen, "a lone %% at the end of a macro-string");
            return -1;
        }
        char k = s[i + 1];
        if (k == '%' || k == '_' || k == '-') {
            i++;
            continue;
        }
        if (k != '{' || i + 2 >= n || strchr("slodiphcrtvSLODIPHCRTV", s[i + 2]) == NULL) {
            snprintf(why, whylen, "a bad macro at \"%.*s\" (RFC 7208 7.1)", shown(n - i), s + i);
            return -1;
        }
        size_t j = i + 3;
        while (j < n && isdigit((unsigned char)s[j]))
            j++;
        if (j < n && (s[j] == 'r' || s[j] == 'R'))
            j++;
        while (j < n && strchr(".-+,/_=", s[j]) != NULL)
            j++;
        if (j >= n || s[j] != '}') {
            snprintf(why, whylen, "an unterminated or bad macro at \"%.*s\"", shown(n - i), s + i);
            return -1;
        }
        *macro = 1;
        i = j;
    }
    return 0;
}

/* Checks and stores a domain-spec (4.6.1: domain-end is a toplabel or a macro). */
static int set_domain(pigeon_spf_term *t, const char *s, size_t n, char *why, size_t whylen)
{
    if (n == 0 || n >= sizeof t->domain) {
        snprintf(why, whylen, "%s domain-spec", n == 0 ? "an empty" : "a too long");
        return -1;
    }
    if (check_macro_string(s, n, &t->has_macro, why, whylen) != 0)
        return -1;
    if (s[n - 1] != '}') {
        /* The last label must be a toplabel: alphanumeric with at least one letter. */
        size_t end = s[n - 1] == '.' ? n - 1 : n, start = end;
        while (start > 0 && s[start - 1] != '.')
            start--;
        int alpha = 0, ok = end > start;
        for (size_t i = start; i < end; i++) {
            alpha |= isalpha((unsigned char)s[i]);
            ok &= isalnum((unsigned char)s[i]) || s[i] == '-';
        }
        if (!ok || !alpha || start == 0) {
            snprintf(why, whylen, "\"%.*s\" is not a domain name", (int)(n > 60 ? 60 : n), s);
            return -1;
        }
    }
    memcpy(t->domain, s, n);
    t->domain[n] = '\0';
    return 0;
}

/* Parses "/N" with max m. Returns the length consumed or -1. */
static int parse_cidr(const char *s, size_t n, int max, int *out)
{
    if (n < 2 || s[0] != '/' || !isdigit((unsigned char)s[1]))
        return -1;
    int v = 0;
    size_t i = 1;
    while (i < n && isdigit((unsigned char)s[i]) && i < 4)
        v = v * 10 + (s[i++] - '0');
    /* RFC 7208 5.6: no leading zeros, at most the address width. */
    if (v > max || (s[1] == '0' && i > 2))
        return -1;
    *out = v;
    return (int)i;
}

/* Parses the optional dual-cidr-length of a and mx ("/24", "//64", "/24//64"). */
static int parse_dual_cidr(pigeon_spf_term *t, const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && !(n - i >= 2 && s[i + 1] == '/')) {
        int c = parse_cidr(s + i, n - i, 32, &t->cidr4);
        if (c < 0)
            return -1;
        i += (size_t)c;
    }
    if (i < n) {
        if (n - i < 3 || s[i] != '/' || s[i + 1] != '/')
            return -1;
        int c = parse_cidr(s + i + 1, n - i - 1, 128, &t->cidr6);
        if (c < 0)
            return -1;
        i += (size_t)c + 1;
    }
    return i == n ? 0 : -1;
}

/* The end of the domain-spec part: the first '/' outside a macro. */
static size_t domain_end(const char *s, size_t n)
{
    int in_macro = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '{' && i > 0 && s[i - 1] == '%')
            in_macro = 1;
        else if (s[i] == '}')
            in_macro = 0;
        else if (s[i] == '/' && !in_macro)
            return i;
    }
    return n;
}

static int parse_ip(pigeon_spf_term *t, const char *s, size_t n, char *why, size_t whylen)
{
    char addr[64];
    size_t slash = 0;
    while (slash < n && s[slash] != '/')
        slash++;
    int v6 = t->kind == PIGEON_SPF_IP6;
    if (slash == 0 || slash >= sizeof addr ||
        (memcpy(addr, s, slash), addr[slash] = '\0',
         inet_pton(v6 ? AF_INET6 : AF_INET, addr, t->ip) != 1)) {
        snprintf(why, whylen, "\"%.*s\" is not an IPv%d address", (int)(n > 50 ? 50 : n), s,
                 v6 ? 6 : 4);
        return -1;
    }
    if (slash < n) {
        int *cidr = v6 ? &t->cidr6 : &t->cidr4;
        int c = parse_cidr(s + slash, n - slash, v6 ? 128 : 32, cidr);
        if (c < 0 || slash + (size_t)c != n) {
            snprintf(why, whylen, "bad prefix length in \"%.*s\"", (int)(n > 50 ? 50 : n), s);
            return -1;
        }
    }
    return 0;
}

/* Parses one mechanism (after its qualifier). */
static int parse_mechanism(pigeon_spf_term *t, const char *s, size_t n, char *why, size_t whylen)
{
    static const struct {
        const char *name;
        pigeon_spf_kind kind;
    } mechs[] = {
        {"all", PIGEON_SPF_ALL}, {"include", PIGEON_SPF_INCLUDE}, {"a", PIGEON_SPF_A},
        {"mx", PIGEON_SPF_MX},   {"ptr", PIGEON_SPF_PTR},         {"ip4", PIGEON_SPF_IP4},
        {"ip6", PIGEON_SPF_IP6}, {"exists", PIGEON_SPF_EXISTS},
    };
    size_t name_len = 0;
    while (name_len < n && s[name_len] != ':' && s[name_len] != '/')
        name_len++;
    size_t k;
    for (k = 0; k < sizeof mechs / sizeof mechs[0]; k++) {
        if (strlen(mechs[k].name) == name_len && strncasecmp(s, mechs[k].name, name_len) == 0)
            break;
    }
    if (k == sizeof mechs / sizeof mechs[0]) {
        snprintf(why, whylen, "unknown mechanism \"%.*s\"", (int)(n > 40 ? 40 : n), s);
        return -1;
    }
    t->kind = mechs[k].kind;
    const char *rest = s + name_len;
    size_t rlen = n - name_len;
    int needs_arg = t->kind == PIGEON_SPF_INCLUDE || t->kind == PIGEON_SPF_EXISTS ||
                    t->kind == PIGEON_SPF_IP4 || t->kind == PIGEON_SPF_IP6;
    int has_arg = rlen > 0 && rest[0] == ':';
    if ((needs_arg && !has_arg) || (t->kind == PIGEON_SPF_ALL && rlen > 0)) {
        snprintf(why, whylen, "\"%.*s\": %s", (int)(n > 40 ? 40 : n), s,
                 needs_arg ? "needs a \":\" argument" : "takes no argument");
        return -1;
    }
    if (t->kind == PIGEON_SPF_IP4 || t->kind == PIGEON_SPF_IP6)
        return parse_ip(t, rest + 1, rlen - 1, why, whylen);
    if (has_arg) {
        rest++;
        rlen--;
    }
    size_t dend = has_arg ? domain_end(rest, rlen) : 0;
    if (has_arg && set_domain(t, rest, dend, why, whylen) != 0)
        return -1;
    if (dend < rlen) {
        if ((t->kind != PIGEON_SPF_A && t->kind != PIGEON_SPF_MX) ||
            parse_dual_cidr(t, rest + dend, rlen - dend) != 0) {
            snprintf(why, whylen, "bad prefix length in \"%.*s\"", (int)(n > 50 ? 50 : n), s);
            return -1;
        }
    }
    return 0;
}

/* Parses one modifier "name=value". */
static int parse_modifier(pigeon_spf_record *rec, pigeon_spf_term *t, const char *s, size_t eq,
                          size_t n, char *why, size_t whylen)
{
    for (size_t i = 0; i < eq; i++) {
        /* 6: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
        if (!(isalpha((unsigned char)s[i]) ||
              (i > 0 && (isdigit((unsigned char)s[i]) || strchr("-_.", s[i]) != NULL)))) {
            snprintf(why, whylen, "\"%.*s\" is not a modifier name", (int)(eq > 40 ? 40 : eq), s);
            return -1;
        }
    }
    int redirect = eq == 8 && strncasecmp(s, "redirect", 8) == 0;
    int exp = eq == 3 && strncasecmp(s, "exp", 3) == 0;
    if (!redirect && !exp) {
        int macro = 0;
        t->kind = PIGEON_SPF_UNKNOWN;
        return check_macro_string(s + eq + 1, n - eq - 1, &macro, why, whylen);
    }
    int *slot = redirect ? &rec->redirect : &rec->exp;
    if (*slot >= 0) {
        /* 6: redirect and exp may each appear at most once. */
        snprintf(why, whylen, "%s= appears twice", redirect ? "redirect" : "exp");
        return -1;
    }
    *slot = rec->count;
    t->kind = redirect ? PIGEON_SPF_REDIRECT : PIGEON_SPF_EXP;
    return set_domain(t, s + eq + 1, n - eq - 1, why, whylen);
}

static int parse_term(pigeon_spf_record *rec, const char *s, size_t n)
{
    if (rec->count >= PIGEON_SPF_MAX_TERMS) {
        snprintf(rec->error, sizeof rec->error, "more than %d terms", PIGEON_SPF_MAX_TERMS);
        return -1;
    }
    pigeon_spf_term *t = &rec->terms[rec->count];
    memset(t, 0, sizeof *t);
    t->cidr4 = 32;
    t->cidr6 = 128;
    snprintf(t->text, sizeof t->text, "%.*s", (int)(n > 95 ? 95 : n), s);
    /* A modifier has '=' before any ':' or '/'. */
    size_t eq = 0;
    while (eq < n && s[eq] != '=' && s[eq] != ':' && s[eq] != '/')
        eq++;
    int rc;
    char why[128];
    if (eq < n && s[eq] == '=') {
        rc = parse_modifier(rec, t, s, eq, n, why, sizeof why);
    } else {
        t->qualifier = '+';
        if (strchr("+-~?", s[0]) != NULL) {
            t->qualifier = s[0];
            s++;
            n--;
        }
        rc = n == 0 ? (snprintf(why, sizeof why, "a qualifier without a mechanism"), -1)
                    : parse_mechanism(t, s, n, why, sizeof why);
        if (rc == 0 && t->kind == PIGEON_SPF_ALL && rec->all < 0)
            rec->all = rec->count;
    }
    if (rc != 0) {
        snprintf(rec->error, sizeof rec->error, "%s", why);
        return -1;
    }
    rec->count++;
    return 0;
}

pigeon_err pigeon_spf_parse(const char *buf, size_t len, pigeon_spf_record *out)
{
    if (buf == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    memset(out, 0, sizeof *out);
    out->redirect = out->exp = out->all = -1;
    if (!pigeon_spf_is_record(buf, len)) {
        snprintf(out->error, sizeof out->error, "the record does not start with \"v=spf1 \"");
        return PIGEON_ERR_PROTOCOL;
    }
    size_t i = 6;
    while (i < len) {
        if (buf[i] == ' ') {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && buf[j] != ' ')
            j++;
        if (parse_term(out, buf + i, j - i) != 0)
            return PIGEON_ERR_PROTOCOL;
        i = j;
    }
    return PIGEON_OK;
}

const char *pigeon_spf_result_name(pigeon_spf_result r)
{
    static const char *const names[] = {"none",     "neutral",   "pass",     "fail",
                                        "softfail", "temperror", "permerror"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "permerror";
}
