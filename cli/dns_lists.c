/*
 * dns_lists.c - blocklists for `pigeon dns check`: the sending addresses in DNSBLs
 * (RFC 5782 2.1: the reversed address under the zone, A 127.0.0.x when listed, the reason
 * in TXT) and domains in domain blocklists (RFC 5782 2.3: DBL, URIBL), the From domain and
 * the link domains of a message. All queries of a round go out at once.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns_cmd.h"

#define MAX_LINK_DOMAINS 32 /* link domains checked per message */

static const char *const default_dnsbl[] = {"zen.spamhaus.org", "bl.spamcop.net",
                                            "b.barracudacentral.org"};
static const char *const default_dbl[] = {"dbl.spamhaus.org", "multi.uribl.com"};

/* One lookup of the round. */
struct lookup {
    char name[300];        /* the query name */
    const char *subject;   /* the address or domain looked up */
    const char *zone;      /* the list */
    int domain_list;       /* a domain blocklist (else a DNSBL) */
    pigeon_dns_answer a;   /* the A answer */
    pigeon_dns_answer txt; /* the TXT answer (reason), when listed */
};

/* Whether needle occurs in hay, ignoring ASCII case. */
static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay != '\0'; hay++) {
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    }
    return n == 0;
}

/* Whether an answer is the list refusing the query rather than a listing: Spamhaus
 * answers 127.255.255.252-255 to public resolvers and unregistered users, URIBL 127.0.0.1. */
static int refused_answer(const struct lookup *l)
{
    for (size_t i = 0; i < l->a.count; i++) {
        const char *t = l->a.records[i].text;
        if (strncmp(t, "127.255.255.", 12) == 0)
            return 1;
        if (contains_ci(l->zone, "uribl") && strcmp(t, "127.0.0.1") == 0)
            return 1;
    }
    return 0;
}

static void report(dns_doctor *d, struct lookup *l)
{
    const char *check = l->domain_list ? "dbl" : "dnsbl";
    pigeon_dns_status st = l->a.status;
    if (st == PIGEON_DNS_NXDOMAIN || st == PIGEON_DNS_NODATA) {
        return; /* summed up per subject by report_clean */
    } else if (st != PIGEON_DNS_OK) {
        dns_item *it = dns_add(d, check, DNS_WARN, "cannot tell: DNS %s for %s in %s",
                               pigeon_dns_status_name(st), l->subject, l->zone);
        dns_fix(it, "the answer is unknown, not absent: try again or with another resolver");
    } else if (refused_answer(l)) {
        dns_item *it = dns_add(d, check, DNS_WARN,
                               "%s refused the query for %s (answer %s): the list does not "
                               "answer public or unregistered resolvers; not a listing",
                               l->zone, l->subject, l->a.records[0].text);
        dns_fix(it, "query through your own recursive resolver (--dns-server) or the list's "
                    "registered access");
    } else {
        char reason[300] = "no reason published";
        if (l->txt.status == PIGEON_DNS_OK && l->txt.count > 0)
            snprintf(reason, sizeof reason, "%.290s", l->txt.records[0].text);
        dns_item *it = dns_add(d, check, DNS_FAIL, "%s is listed in %s (%s): %s", l->subject,
                               l->zone, l->a.records[0].text, reason);
        dns_fix(it,
                l->domain_list ? "remove what got the domain listed, then request delisting "
                                 "from %s"
                               : "stop what got the address listed, then request delisting "
                                 "from %s (or send through another server)",
                l->zone);
    }
}

static int clean(const struct lookup *l)
{
    return l->a.status == PIGEON_DNS_NXDOMAIN || l->a.status == PIGEON_DNS_NODATA;
}

/* One line per subject for the lists that do not list it, at the subject's first lookup. */
static void report_clean(dns_doctor *d, const struct lookup *ls, int n, int i)
{
    for (int j = 0; j < i; j++) {
        if (ls[j].subject == ls[i].subject)
            return;
    }
    char zones[600] = "";
    size_t k = 0;
    for (int j = i; j < n && k < sizeof zones; j++) {
        if (ls[j].subject == ls[i].subject && clean(&ls[j]))
            k += (size_t)snprintf(zones + k, sizeof zones - k, "%s%s", k ? ", " : "", ls[j].zone);
    }
    if (k > 0)
        dns_add(d, ls[i].domain_list ? "dbl" : "dnsbl", DNS_PASS, "%s is not listed in %s",
                ls[i].subject, zones);
}

/* Lower-cases and appends a domain to the set unless present. */
static void add_domain(char set[][256], int *n, const char *s, size_t len)
{
    char dom[256], org[256];
    if (len == 0 || len >= sizeof dom || *n >= MAX_LINK_DOMAINS)
        return;
    for (size_t i = 0; i < len; i++)
        dom[i] = (char)tolower((unsigned char)s[i]);
    dom[len] = '\0';
    if (strchr(dom, '.') == NULL || pigeon_dns_org_domain(dom, org, sizeof org) != 0)
        return;
    /* DBL and URIBL list registrable domains; numeric hosts are not domains. */
    if (strspn(org, "0123456789.") == strlen(org))
        return;
    for (int i = 0; i < *n; i++) {
        if (strcmp(set[i], org) == 0)
            return;
    }
    snprintf(set[(*n)++], 256, "%s", org);
}

/* The set of link domains being collected. */
struct link_set {
    char (*set)[256]; /* org domains */
    int *n;           /* how many */
};

static void on_link(void *ctx, const char *host, size_t len)
{
    struct link_set *ls = ctx;
    add_domain(ls->set, ls->n, host, len);
}

/* Runs the round: every A query, then TXT for the listed ones. */
static void run_round(dns_doctor *d, struct lookup *ls, int n)
{
    for (int i = 0; i < n; i++)
        pigeon_dns_submit(d->r, ls[i].name, PIGEON_DNS_A, &ls[i].a);
    pigeon_dns_run(d->r);
    for (int i = 0; i < n; i++) {
        if (ls[i].a.status == PIGEON_DNS_OK && !refused_answer(&ls[i]))
            pigeon_dns_submit(d->r, ls[i].name, PIGEON_DNS_TXT, &ls[i].txt);
    }
    pigeon_dns_run(d->r);
    for (int i = 0; i < n; i++) {
        report(d, &ls[i]);
        report_clean(d, ls, n, i);
    }
    for (int i = 0; i < n; i++) {
        pigeon_dns_answer_cleanup(&ls[i].a);
        pigeon_dns_answer_cleanup(&ls[i].txt);
    }
}

/* Every zone of a kind: the defaults (unless turned off) then the user's. */
static int zones(const dns_doctor *d, int domain_list, const char **out, int max)
{
    int n = 0;
    const char *const *defs = domain_list ? default_dbl : default_dnsbl;
    int ndefs = domain_list ? 2 : 3;
    for (int i = 0; d->default_lists && i < ndefs && n < max; i++)
        out[n++] = defs[i];
    const cli_strv *extra = domain_list ? &d->dbl : &d->dnsbl;
    for (size_t i = 0; i < extra->count && n < max; i++)
        out[n++] = extra->items[i];
    return n;
}

static void check_addresses(dns_doctor *d)
{
    const char *zs[32];
    int nz = zones(d, 0, zs, 32);
    if (d->nips == 0) {
        dns_item *it = dns_add(d, "dnsbl", DNS_INFO, "no sending address to look up");
        dns_fix(it, "give --ip ADDR (or an account whose host resolves)");
        return;
    }
    struct lookup *ls = calloc((size_t)(d->nips * nz) + 1, sizeof *ls);
    int n = 0;
    if (ls == NULL)
        return;
    for (int i = 0; i < d->nips; i++) {
        for (int z = 0; z < nz; z++) {
            if (pigeon_dns_reverse_name(d->ips[i], zs[z], ls[n].name, sizeof ls[n].name) != 0)
                continue;
            ls[n].subject = d->ips[i];
            ls[n].zone = zs[z];
            n++;
        }
    }
    run_round(d, ls, n);
    free(ls);
}

static void check_domains(dns_doctor *d)
{
    const char *zs[32];
    int nz = zones(d, 1, zs, 32), nd = 0;
    char(*set)[256] = calloc(MAX_LINK_DOMAINS, 256);
    if (set == NULL)
        return;
    add_domain(set, &nd, d->domain, strlen(d->domain));
    if (d->message != NULL) {
        char *msg = NULL;
        size_t len = 0;
        if (cli_read_input(d->message, CLI_BODY_MAX, &msg, &len) != PIGEON_OK) {
            dns_item *it =
                dns_add(d, "dbl", DNS_WARN, "cannot read %s: links not checked", d->message);
            dns_fix(it, "give a readable message file with --message");
        } else {
            struct link_set links = {set, &nd};
            pigeon_dns_scan_links(msg, len, on_link, &links);
            dns_add(d, "links", DNS_INFO, "%d link domain%s in %s", nd - 1, nd == 2 ? "" : "s",
                    d->message);
        }
        free(msg);
    }
    struct lookup *ls = calloc((size_t)(nd * nz) + 1, sizeof *ls);
    int n = 0;
    for (int i = 0; ls != NULL && i < nd; i++) {
        for (int z = 0; z < nz; z++) {
            snprintf(ls[n].name, sizeof ls[n].name, "%s.%s", set[i], zs[z]);
            ls[n].subject = set[i];
            ls[n].zone = zs[z];
            ls[n].domain_list = 1;
            n++;
        }
    }
    if (ls != NULL)
        run_round(d, ls, n);
    free(ls);
    free(set);
}

void dns_check_lists(dns_doctor *d)
{
    check_addresses(d);
    check_domains(d);
}
