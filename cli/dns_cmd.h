/*
 * dns_cmd.h - `pigeon dns check DOMAIN`, the deliverability doctor: what its files share.
 *
 * dns.c parses the options, runs the checks and prints the report; dns_checks.c holds the
 * record checks (MX, SPF, DKIM, DMARC and alignment, MTA-STS, TLS-RPT, BIMI);
 * dns_lists.c the blocklist lookups (DNSBL for the sending addresses, DBL/URIBL for the
 * From domain and a message's link domains). Each check adds items with a verdict.
 */
#ifndef PIGEON_CLI_DNS_CMD_H
#define PIGEON_CLI_DNS_CMD_H

#include <stddef.h>

#include "cli.h"
#include "pigeon/dns.h"

/* A verdict; the exit status is the worst one (info does not count). */
typedef enum dns_verdict { DNS_PASS = 0, DNS_INFO, DNS_WARN, DNS_FAIL } dns_verdict;

#define DNS_MAX_ITEMS 256 /* items in one report */
#define DNS_MAX_IPS   16  /* sending addresses checked */

/* One finding. */
typedef struct dns_item {
    char check[16];    /* "mx", "spf", "dkim", "dmarc", "dnsbl", ... */
    dns_verdict v;     /* the verdict */
    char summary[600]; /* what was found, one line */
    char fix[400];     /* the fix in one line, or "" */
    char *detail;      /* more lines (the SPF chain), malloc'd, or NULL */
} dns_item;

/* The doctor's inputs and findings. */
typedef struct dns_doctor {
    pigeon_dns *r;                 /* the resolver */
    const char *domain;            /* the From domain checked (A-labels) */
    char domain_ascii[256];        /* the A-label form of an internationalized domain */
    const char *selector;          /* DKIM selector, or NULL */
    const char *dkim_domain;       /* DKIM d=, or NULL for domain */
    const char *dkim_key;          /* --dkim-key private key file, or NULL */
    const char *mail_from;         /* the envelope sender, or NULL */
    const char *provider;          /* the provider preset name, or NULL */
    const char *host;              /* the account's submission host, or NULL */
    const char *message;           /* --message file, or NULL */
    int default_lists;             /* query the built-in blocklist zones */
    cli_strv dnsbl;                /* --dnsbl zones */
    cli_strv dbl;                  /* --dbl zones */
    char *ips[DNS_MAX_IPS];        /* sending addresses, malloc'd */
    int ip_given[DNS_MAX_IPS];     /* the address came from --ip (else the account host) */
    int nips;                      /* number of addresses */
    char spf_includes[1024];       /* include/redirect domains of the SPF walk */
    int spf_found;                 /* an SPF record exists */
    dns_item items[DNS_MAX_ITEMS]; /* findings */
    int nitems;                    /* number of findings */
    int dropped;                   /* findings past DNS_MAX_ITEMS, not kept */
    dns_verdict dropped_worst;     /* the worst verdict among them (still sets the exit) */
} dns_doctor;

/* Adds a finding (summary formatted); returns it (fix and detail may be set after), or a
 * static spare when the report is full. */
dns_item *dns_add(dns_doctor *d, const char *check, dns_verdict v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sets an item's fix (formatted). */
void dns_fix(dns_item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The checks (dns_checks.c). */
void dns_check_mx(dns_doctor *d);
void dns_check_spf(dns_doctor *d);
void dns_check_dkim(dns_doctor *d);
void dns_check_dmarc(dns_doctor *d);
void dns_check_policies(dns_doctor *d);
/* The blocklists (dns_lists.c). */
void dns_check_lists(dns_doctor *d);

/* Fetches the TXT records of name starting with prefix (case-insensitive) into ans
 * (other records dropped); returns the DNS status. */
pigeon_dns_status dns_txt_with(dns_doctor *d, const char *name, int (*is)(const char *, size_t),
                               pigeon_dns_answer *ans);

#endif
