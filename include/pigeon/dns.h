/*
 * pigeon/dns.h - DNS for deliverability: an asynchronous resolver on c-ares, parsers for the
 * mail-authentication records, and an SPF evaluator.
 *
 * The resolver distinguishes every outcome a diagnosis needs (records, NXDOMAIN, NODATA,
 * SERVFAIL, timeout, truncation, refusal), so that a failing server is never mistaken for
 * a missing record. The parsers are pure functions on (buf, len) for SPF (RFC 7208),
 * DMARC (RFC 7489 6.3), DKIM key records (RFC 6376 3.6.1) and the small tag-list records
 * of MTA-STS (RFC 8461 3.1), TLS-RPT (RFC 8460 3) and BIMI. The SPF evaluator implements
 * check_host() (RFC 7208 4.6) with the processing limits of 4.6.4 and a trace of the
 * include/redirect chain.
 *
 * Thread safety: a resolver handle is used by one thread at a time; the parsers are
 * reentrant.
 */
#ifndef PIGEON_DNS_H
#define PIGEON_DNS_H

#include <stddef.h>

#include "pigeon/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the resolver ---- */

/* The outcome of one query. */
typedef enum pigeon_dns_status {
    PIGEON_DNS_OK = 0,        /* NOERROR with at least one record of the type asked */
    PIGEON_DNS_NXDOMAIN = 1,  /* the name does not exist (RCODE 3) */
    PIGEON_DNS_NODATA = 2,    /* the name exists, but has no record of that type */
    PIGEON_DNS_SERVFAIL = 3,  /* the server failed (RCODE 2) */
    PIGEON_DNS_TIMEOUT = 4,   /* no answer within the timeout */
    PIGEON_DNS_TRUNCATED = 5, /* the answer was truncated and TCP did not complete it */
    PIGEON_DNS_REFUSED = 6,   /* the server refused to answer (RCODE 5) */
    PIGEON_DNS_ERROR = 7,     /* anything else: a malformed answer, a bad name, no memory */
} pigeon_dns_status;

/* The record types the resolver decodes. */
typedef enum pigeon_dns_type {
    PIGEON_DNS_A = 1,
    PIGEON_DNS_PTR = 12,
    PIGEON_DNS_MX = 15,
    PIGEON_DNS_TXT = 16,
    PIGEON_DNS_AAAA = 28,
} pigeon_dns_type;

/* One record of an answer. */
typedef struct pigeon_dns_record {
    char *text;    /* TXT: the strings concatenated (RFC 7208 3.3); MX and PTR: the host name
                      ("" for a null MX); A and AAAA: the address in text form. NUL-terminated,
                      owned by the answer */
    size_t len;    /* bytes in text (a TXT record may hold NUL bytes) */
    unsigned pref; /* MX: the preference; 0 otherwise */
} pigeon_dns_record;

/* The answer to one query, filled by the resolver. */
typedef struct pigeon_dns_answer {
    pigeon_dns_status status;   /* the outcome; records are set only for PIGEON_DNS_OK */
    pigeon_dns_record *records; /* the records (MX sorted by preference), or NULL */
    size_t count;               /* number of records */
    int done;                   /* set when the query has completed */
} pigeon_dns_answer;

/* Options of a resolver. Zero fields take the defaults. */
typedef struct pigeon_dns_opts {
    const char *server; /* "IP", "IP:PORT" or "[IPv6]:PORT" to ask instead of the system's
                           resolvers (/etc/resolv.conf), or NULL */
    int timeout_ms;     /* per-try timeout, default 2000 */
    int tries;          /* tries per query, default 2 */
} pigeon_dns_opts;

typedef struct pigeon_dns pigeon_dns;

/* Creates a resolver. Returns PIGEON_ERR_INVALID for a server that is not a numeric
 * address with an optional port, PIGEON_ERR_NETWORK if c-ares cannot start (no
 * resolv.conf), PIGEON_ERR_NOMEM, PIGEON_ERR_UNSUPPORTED in a build without c-ares. */
pigeon_err pigeon_dns_new(const pigeon_dns_opts *opts, pigeon_dns **out);
void pigeon_dns_free(pigeon_dns *r);

/* Starts a query; ans (which must live until it is done) is zeroed now and filled when the
 * answer arrives during pigeon_dns_run. */
pigeon_err pigeon_dns_submit(pigeon_dns *r, const char *name, pigeon_dns_type type,
                             pigeon_dns_answer *ans);
/* Runs until every submitted query has completed (each bounded by timeout x tries). */
void pigeon_dns_run(pigeon_dns *r);
/* Submits and runs one query; returns ans->status. */
pigeon_dns_status pigeon_dns_query(pigeon_dns *r, const char *name, pigeon_dns_type type,
                                   pigeon_dns_answer *ans);
/* Frees the records and zeroes the answer. NULL is a no-op. */
void pigeon_dns_answer_cleanup(pigeon_dns_answer *ans);
/* "NOERROR", "NXDOMAIN", "NODATA", "SERVFAIL", "timeout", "truncated", "REFUSED", "error". */
const char *pigeon_dns_status_name(pigeon_dns_status st);
/* Writes the reverse-lookup name of a numeric address under zone ("2.0.0.127.zen.spamhaus.org",
 * nibbles for IPv6; zone "in-addr.arpa"/"ip6.arpa" for PTR). Returns 0, or -1 for a bad
 * address or a name that does not fit. */
int pigeon_dns_reverse_name(const char *ip, const char *zone, char *out, size_t outlen);

/* ---- record parsers: pure, on (buf, len) ---- */

#define PIGEON_SPF_MAX_TERMS 64 /* terms kept per record; more is a permerror */

/* SPF terms (RFC 7208 5 and 6). */
typedef enum pigeon_spf_kind {
    PIGEON_SPF_ALL,
    PIGEON_SPF_INCLUDE,
    PIGEON_SPF_A,
    PIGEON_SPF_MX,
    PIGEON_SPF_PTR,
    PIGEON_SPF_IP4,
    PIGEON_SPF_IP6,
    PIGEON_SPF_EXISTS,
    PIGEON_SPF_REDIRECT, /* modifier */
    PIGEON_SPF_EXP,      /* modifier */
    PIGEON_SPF_UNKNOWN,  /* an unknown modifier (ignored, RFC 7208 6) */
} pigeon_spf_kind;

typedef struct pigeon_spf_term {
    pigeon_spf_kind kind; /* what it is */
    char qualifier;       /* '+', '-', '~' or '?' (mechanisms; '+' when omitted) */
    char domain[256];     /* the domain-spec, macros unexpanded, or "" for none */
    int has_macro;        /* domain holds a macro (%{...}) */
    unsigned char ip[16]; /* ip4/ip6: the network (4 or 16 bytes) */
    int cidr4;            /* IPv4 prefix length (ip4, a, mx), 32 when absent */
    int cidr6;            /* IPv6 prefix length (ip6, a, mx), 128 when absent */
    char text[96];        /* the term as written (shortened), for explanations */
} pigeon_spf_term;

typedef struct pigeon_spf_record {
    pigeon_spf_term terms[PIGEON_SPF_MAX_TERMS]; /* mechanisms and modifiers, in order */
    int count;                                   /* number of terms */
    int redirect;                                /* index of redirect=, or -1 */
    int exp;                                     /* index of exp=, or -1 */
    int all;                                     /* index of the first all, or -1 */
    char error[160];                             /* the syntax error, or "" */
} pigeon_spf_record;

/* Whether a TXT record is an SPF record: "v=spf1" then a space or the end (4.5). */
int pigeon_spf_is_record(const char *buf, size_t len);
/* Parses an SPF record. Returns PIGEON_OK, or PIGEON_ERR_PROTOCOL with out->error set
 * (a permerror: RFC 7208 4.6). */
pigeon_err pigeon_spf_parse(const char *buf, size_t len, pigeon_spf_record *out);

/* DMARC policies (RFC 7489 6.3). */
typedef enum pigeon_dmarc_policy {
    PIGEON_DMARC_UNSET = 0,
    PIGEON_DMARC_NONE,
    PIGEON_DMARC_QUARANTINE,
    PIGEON_DMARC_REJECT,
} pigeon_dmarc_policy;

typedef struct pigeon_dmarc_record {
    pigeon_dmarc_policy p;  /* requested policy */
    pigeon_dmarc_policy sp; /* subdomain policy, UNSET when absent (p applies) */
    int pct;                /* percentage, 100 when absent */
    char rua[512];          /* aggregate report URIs, or "" */
    char ruf[512];          /* failure report URIs, or "" */
    char adkim;             /* 'r' or 's' */
    char aspf;              /* 'r' or 's' */
    char fo[16];            /* failure reporting options, "0" when absent */
    long ri;                /* report interval, 86400 when absent */
    char error[200];        /* the first syntax error, or "" */
    int errors;             /* number of syntax errors */
} pigeon_dmarc_record;

/* Whether a TXT record at _dmarc is a DMARC record ("v=DMARC1" first, 6.6.3). */
int pigeon_dmarc_is_record(const char *buf, size_t len);
/* Parses a DMARC record. Returns PIGEON_OK (out->errors may still count ignored bad tags),
 * or PIGEON_ERR_PROTOCOL when the record is unusable (no v=DMARC1 first, no valid p=). */
pigeon_err pigeon_dmarc_parse(const char *buf, size_t len, pigeon_dmarc_record *out);

typedef struct pigeon_dns_dkim_record {
    char k[16];      /* key type ("rsa" when absent, "ed25519") */
    char h[64];      /* acceptable hashes, or "" for any */
    char s[64];      /* service types, "*" when absent */
    char t[32];      /* flags ("y" testing, "s" strict), or "" */
    const char *p;   /* the base64 public key, whitespace included (points into buf) */
    size_t p_len;    /* its length; 0 = revoked (RFC 6376 3.6.1) */
    int testing;     /* t=y */
    char error[160]; /* the syntax error, or "" */
} pigeon_dns_dkim_record;

/* Parses a DKIM key record. Returns PIGEON_OK, or PIGEON_ERR_PROTOCOL with out->error set.
 * out->p points into buf. */
pigeon_err pigeon_dns_dkim_record_parse(const char *buf, size_t len, pigeon_dns_dkim_record *out);

/* A simple tag-list record: MTA-STS ("v=STSv1; id=..."), TLS-RPT ("v=TLSRPTv1; rua=...")
 * or BIMI ("v=BIMI1; l=...; a=..."). */
typedef struct pigeon_tagrec {
    char version[16]; /* the v= value */
    char id[64];      /* MTA-STS id= */
    char rua[512];    /* TLS-RPT rua= */
    char l[512];      /* BIMI l= (logo URL) */
    char a[512];      /* BIMI a= (authority evidence URL) */
    char error[160];  /* the syntax error, or "" */
} pigeon_tagrec;

/* Parses one of those records; want_version is "STSv1", "TLSRPTv1" or "BIMI1", which must
 * be the first tag. Returns PIGEON_OK or PIGEON_ERR_PROTOCOL with out->error set. */
pigeon_err pigeon_tagrec_parse(const char *buf, size_t len, const char *want_version,
                               pigeon_tagrec *out);

/* The organizational domain (RFC 7489 3.2) by a small rule instead of the Public Suffix
 * List: the last two labels, or three when the last two are a known second-level suffix
 * (com.cn, co.uk, ...). Writes it to out; returns 0, or -1 if it does not fit. */
int pigeon_dns_org_domain(const char *domain, char *out, size_t outlen);

/* Receives the host of one link (not NUL-terminated; within the scanned buffer). */
typedef void (*pigeon_dns_link_fn)(void *ctx, const char *host, size_t len);
/* Calls fn for the host of every http:// or https:// URL in a message (HTML or text), in
 * order, repeats included. */
void pigeon_dns_scan_links(const char *buf, size_t len, pigeon_dns_link_fn fn, void *ctx);

/* ---- SPF evaluation (RFC 7208 4.6) ---- */

typedef enum pigeon_spf_result {
    PIGEON_SPF_NONE = 0,
    PIGEON_SPF_NEUTRAL,
    PIGEON_SPF_PASS,
    PIGEON_SPF_FAIL,
    PIGEON_SPF_SOFTFAIL,
    PIGEON_SPF_TEMPERROR,
    PIGEON_SPF_PERMERROR,
} pigeon_spf_result;

/* What an evaluation did. */
typedef struct pigeon_spf_eval {
    pigeon_spf_result result; /* the result */
    int lookups;              /* DNS-querying terms counted (limit 10, 4.6.4) */
    int void_lookups;         /* lookups that returned no record (limit 2) */
    char reason[256];         /* why: the matching term, or the error */
    char *trace;              /* the include/redirect chain, one line per step, indented by
                                 depth; malloc'd, freed by pigeon_spf_eval_cleanup */
    char includes[1024];      /* every include:/redirect= domain reached, space-separated */
} pigeon_spf_eval;

/* Evaluates SPF for a client address ip ("192.0.2.1", "2001:db8::1", or NULL to walk the
 * whole record without matching any address: the cost of the record for a sender it does
 * not list), domain, and sender ("user@domain", for macros; NULL = postmaster@domain).
 * Always fills ev (cleanup with pigeon_spf_eval_cleanup); returns ev->result. */
pigeon_spf_result pigeon_spf_check_host(pigeon_dns *r, const char *ip, const char *domain,
                                        const char *sender, pigeon_spf_eval *ev);
void pigeon_spf_eval_cleanup(pigeon_spf_eval *ev);
/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror". */
const char *pigeon_spf_result_name(pigeon_spf_result r);

/* The SPF include a provider preset (pigeon_provider name: "qq", "ses-eu-west-1", ...)
 * publishes for its outgoing servers, or NULL when none is known. */
const char *pigeon_dns_provider_spf_include(const char *provider);

#ifdef __cplusplus
}
#endif
#endif
