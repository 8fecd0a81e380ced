/*
 * dns_checks.c - the record checks of `pigeon dns check`: MX (RFC 7505 null MX), SPF
 * (RFC 7208: one record, syntax, limits, the sending addresses, the provider's include),
 * DKIM key (RFC 6376 3.6.1, RFC 8463), DMARC (RFC 7489) with identifier alignment (3.1),
 * MTA-STS (RFC 8461), TLS-RPT (RFC 8460) and BIMI.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dns_cmd.h"

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

/* Adds the finding for a DNS failure: a timeout or SERVFAIL is not "no record". */
static void dns_failure(dns_doctor *d, const char *check, const char *type, const char *name,
                        pigeon_dns_status st)
{
    dns_item *it = dns_add(d, check, DNS_WARN, "cannot tell: DNS %s for %s %s",
                           pigeon_dns_status_name(st), type, name);
    dns_fix(it, "the answer is unknown, not absent: check the domain's name servers (or "
                "--dns-server) and run again");
}

static int dns_failed(pigeon_dns_status st)
{
    return st != PIGEON_DNS_OK && st != PIGEON_DNS_NXDOMAIN && st != PIGEON_DNS_NODATA;
}

pigeon_dns_status dns_txt_with(dns_doctor *d, const char *name, int (*is)(const char *, size_t),
                               pigeon_dns_answer *ans)
{
    pigeon_dns_status st = pigeon_dns_query(d->r, name, PIGEON_DNS_TXT, ans);
    size_t kept = 0;
    for (size_t i = 0; i < ans->count; i++) {
        if (is == NULL || is(ans->records[i].text, ans->records[i].len))
            ans->records[kept++] = ans->records[i];
        else
            free(ans->records[i].text);
    }
    ans->count = kept;
    return st;
}

/* ---- MX ---- */

void dns_check_mx(dns_doctor *d)
{
    pigeon_dns_answer ans;
    pigeon_dns_status st = pigeon_dns_query(d->r, d->domain, PIGEON_DNS_MX, &ans);
    if (st == PIGEON_DNS_NXDOMAIN) {
        dns_item *it = dns_add(d, "mx", DNS_FAIL, "%s does not exist (NXDOMAIN)", d->domain);
        dns_fix(it, "register the domain or check its spelling");
    } else if (st == PIGEON_DNS_NODATA) {
        dns_item *it = dns_add(d, "mx", DNS_WARN,
                               "%s has no MX record (mail to it falls back to its address, "
                               "RFC 5321 5.1)",
                               d->domain);
        dns_fix(it, "publish an MX record so that replies and bounces reach you");
    } else if (dns_failed(st)) {
        dns_failure(d, "mx", "MX", d->domain, st);
    } else if (ans.count == 1 && ans.records[0].text[0] == '\0') {
        dns_item *it = dns_add(d, "mx", DNS_FAIL,
                               "%s publishes a null MX (RFC 7505): it receives no mail, and "
                               "receivers may refuse mail from it",
                               d->domain);
        dns_fix(it, "send from a domain that receives mail, or replace the null MX with real MX "
                    "records");
    } else {
        char list[400] = "";
        size_t k = 0;
        for (size_t i = 0; i < ans.count && k < sizeof list; i++)
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%u %s", i ? ", " : "",
                                  ans.records[i].pref,
                                  ans.records[i].text[0] ? ans.records[i].text : ".");
        dns_add(d, "mx", DNS_PASS, "%s receives mail: %s", d->domain, list);
    }
    pigeon_dns_answer_cleanup(&ans);
}

/* ---- SPF ---- */

/* The record to suggest when none is published. */
static void spf_suggestion(dns_doctor *d, char *out, size_t n)
{
    const char *inc = pigeon_dns_provider_spf_include(d->provider);
    size_t k = (size_t)snprintf(out, n, "v=spf1");
    if (inc != NULL)
        k += (size_t)snprintf(out + k, n - k, " include:%s", inc);
    for (int i = 0; i < d->nips && k < n; i++) {
        if (d->ip_given[i])
            k += (size_t)snprintf(out + k, n - k, " %s:%s", strchr(d->ips[i], ':') ? "ip6" : "ip4",
                                  d->ips[i]);
    }
    if (inc == NULL && k == 6 && k < n)
        k += (size_t)snprintf(out + k, n - k, " ip4:YOUR-SENDING-IP");
    if (k < n)
        snprintf(out + k, n - k, " ~all");
}

/* The all qualifier of the published record (RFC 7208 5.1). */
static void spf_all(dns_doctor *d, const pigeon_dns_record *rec)
{
    pigeon_spf_record *p = malloc(sizeof *p);
    if (p == NULL || pigeon_spf_parse(rec->text, rec->len, p) != PIGEON_OK) {
        free(p);
        return; /* the walk reports the syntax error */
    }
    if (p->all >= 0) {
        char q = p->terms[p->all].qualifier;
        if (q == '+') {
            dns_item *it = dns_add(d, "spf-all", DNS_FAIL,
                                   "the record ends with +all: anyone may send as %s", d->domain);
            dns_fix(it, "end the record with -all or ~all");
        } else if (q == '?') {
            dns_item *it = dns_add(d, "spf-all", DNS_WARN,
                                   "the record ends with ?all (neutral): it "
                                   "protects nothing");
            dns_fix(it, "end the record with ~all, then -all");
        } else {
            dns_add(d, "spf-all", DNS_PASS, "the record ends with %call (%s)", q,
                    q == '-' ? "fail" : "softfail");
        }
    } else if (p->redirect < 0) {
        dns_item *it = dns_add(d, "spf-all", DNS_WARN,
                               "the record has no all mechanism: unlisted senders get neutral");
        dns_fix(it, "end the record with ~all or -all");
    }
    free(p);
}

/* The record's whole walk: syntax, lookups, void lookups, loops. */
static void spf_walk(dns_doctor *d)
{
    pigeon_spf_eval ev;
    pigeon_spf_check_host(d->r, NULL, d->domain, d->mail_from, &ev);
    snprintf(d->spf_includes, sizeof d->spf_includes, "%s", ev.includes);
    dns_item *it;
    if (ev.result == PIGEON_SPF_PERMERROR) {
        it = dns_add(d, "spf", DNS_FAIL, "permerror: %s (%d DNS lookups, %d void)", ev.reason,
                     ev.lookups, ev.void_lookups);
        if (strstr(ev.reason, "DNS lookups") != NULL)
            dns_fix(it, "flatten includes into ip4:/ip6: ranges or drop unused ones: at most 10 "
                        "lookups (RFC 7208 4.6.4)");
        else if (strstr(ev.reason, "void") != NULL)
            dns_fix(it, "remove the mechanisms that name domains without records");
        else if (strstr(ev.reason, "loop") != NULL)
            dns_fix(it, "remove the include that points back into the chain");
        else if (strstr(ev.reason, "SPF records") != NULL)
            dns_fix(it, "merge them into one TXT record: receivers treat two as an error");
        else
            dns_fix(it, "correct the record (RFC 7208): receivers treat it as a permerror");
    } else if (ev.result == PIGEON_SPF_TEMPERROR) {
        it = dns_add(d, "spf", DNS_WARN, "cannot tell: %s", ev.reason);
        dns_fix(it, "the answer is unknown, not absent: check the name servers of the domains "
                    "in the chain");
    } else {
        it = dns_add(d, "spf", ev.lookups >= 9 ? DNS_WARN : DNS_PASS,
                     "the record is valid: %d of 10 DNS lookups, %d of 2 void lookups", ev.lookups,
                     ev.void_lookups);
        if (ev.lookups >= 9)
            dns_fix(it, "close to the limit of 10 lookups: one more include breaks SPF");
    }
    if (ev.trace != NULL && strstr(ev.trace, "(ptr is slow") != NULL) {
        dns_item *p = dns_add(d, "spf-ptr", DNS_WARN,
                              "the SPF chain uses ptr, which RFC 7208 "
                              "5.5 says not to use");
        dns_fix(p, "replace ptr with ip4:/ip6: or a: mechanisms");
    }
    it->detail = ev.trace;
    ev.trace = NULL;
    pigeon_spf_eval_cleanup(&ev);
}

/* One sending address against the record. */
static void spf_address(dns_doctor *d, int i)
{
    pigeon_spf_eval ev;
    pigeon_spf_result res = pigeon_spf_check_host(d->r, d->ips[i], d->domain, d->mail_from, &ev);
    const char *res_name = pigeon_spf_result_name(res);
    dns_item *it;
    if (res == PIGEON_SPF_PASS) {
        it = dns_add(d, "spf-ip", DNS_PASS, "%s: pass (%s)", d->ips[i], ev.reason);
    } else if (res == PIGEON_SPF_TEMPERROR) {
        it = dns_add(d, "spf-ip", DNS_WARN, "%s: cannot tell: %s", d->ips[i], ev.reason);
    } else {
        /* An address of the account's host is the submission server, which is not always
         * the one that delivers: a miss there is a warning. */
        it = dns_add(d, "spf-ip", d->ip_given[i] ? DNS_FAIL : DNS_WARN, "%s: %s (%s)%s", d->ips[i],
                     res_name, ev.reason, d->ip_given[i] ? "" : " [address of the account's host]");
        const char *inc = pigeon_dns_provider_spf_include(d->provider);
        if (inc != NULL && !d->ip_given[i])
            dns_fix(it, "add include:%s before the all mechanism", inc);
        else
            dns_fix(it, "add %s:%s before the all mechanism",
                    strchr(d->ips[i], ':') ? "ip6" : "ip4", d->ips[i]);
    }
    pigeon_spf_eval_cleanup(&ev);
}

/* Whether the provider's published include is reached by the record. */
static void spf_provider(dns_doctor *d)
{
    const char *inc = pigeon_dns_provider_spf_include(d->provider);
    if (inc == NULL)
        return;
    char padded[1100], want[300];
    snprintf(padded, sizeof padded, " %s ", d->spf_includes);
    snprintf(want, sizeof want, " %s ", inc);
    if (contains_ci(padded, want)) {
        dns_add(d, "spf-provider", DNS_PASS, "the record includes %s (provider %s)", inc,
                d->provider);
    } else {
        dns_item *it = dns_add(d, "spf-provider", DNS_FAIL,
                               "the record does not include %s, which provider %s publishes "
                               "for its servers",
                               inc, d->provider);
        dns_fix(it, "add include:%s before the all mechanism", inc);
    }
}

void dns_check_spf(dns_doctor *d)
{
    pigeon_dns_answer ans;
    pigeon_dns_status st = dns_txt_with(d, d->domain, pigeon_spf_is_record, &ans);
    char suggestion[400];
    spf_suggestion(d, suggestion, sizeof suggestion);
    if (dns_failed(st)) {
        dns_failure(d, "spf", "TXT", d->domain, st);
    } else if (ans.count == 0) {
        dns_item *it = dns_add(d, "spf", DNS_FAIL, "%s publishes no SPF record (%s)", d->domain,
                               st == PIGEON_DNS_OK ? "no TXT record starts with v=spf1"
                                                   : pigeon_dns_status_name(st));
        dns_fix(it, "publish TXT \"%s\" at %s", suggestion, d->domain);
    } else {
        d->spf_found = 1;
        spf_walk(d);
        if (ans.count == 1)
            spf_all(d, &ans.records[0]);
        for (int i = 0; i < d->nips; i++)
            spf_address(d, i);
        spf_provider(d);
    }
    pigeon_dns_answer_cleanup(&ans);
}

/* ---- DKIM ---- */

/* Decodes base64 with whitespace into a malloc'd buffer. Returns its length or -1. */
static long b64_decode(const char *in, size_t n, unsigned char **out)
{
    char *clean = malloc(n + 1);
    unsigned char *bin = malloc(n + 1);
    size_t k = 0;
    long len = -1;
    if (clean == NULL || bin == NULL)
        goto done;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != ' ' && in[i] != '\t' && in[i] != '\r' && in[i] != '\n')
            clean[k++] = in[i];
    }
    if (k % 4 != 0)
        goto done;
    int m = EVP_DecodeBlock(bin, (const unsigned char *)clean, (int)k);
    if (m < 0)
        goto done;
    /* EVP_DecodeBlock counts the padding's zero bytes. */
    while (k > 0 && clean[k - 1] == '=' && m > 0) {
        k--;
        m--;
    }
    len = m;
    *out = bin;
    bin = NULL;
done:
    free(clean);
    free(bin);
    return len;
}

/* The public key of a record: RSA as SubjectPublicKeyInfo (RFC 6376 3.6.1), Ed25519 as
 * the raw 32 bytes (RFC 8463 4.2). NULL when it does not decode. */
static EVP_PKEY *record_key(const pigeon_dns_dkim_record *k)
{
    unsigned char *bin = NULL;
    long n = b64_decode(k->p, k->p_len, &bin);
    EVP_PKEY *key = NULL;
    if (n > 0 && strcmp(k->k, "ed25519") == 0) {
        if (n == 32)
            key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, bin, 32);
    } else if (n > 0) {
        const unsigned char *p = bin;
        key = d2i_PUBKEY(NULL, &p, n);
        if (key != NULL && p != bin + n) {
            EVP_PKEY_free(key);
            key = NULL;
        }
    }
    free(bin);
    return key;
}

/* Compares the published key with the private key file (--dkim-key). */
static void dkim_match(dns_doctor *d, EVP_PKEY *pub)
{
    FILE *f = fopen(d->dkim_key, "r");
    if (f == NULL) {
        dns_item *it = dns_add(d, "dkim-key", DNS_FAIL, "cannot open %s", d->dkim_key);
        dns_fix(it, "give the private key's path with --dkim-key");
        return;
    }
    EVP_PKEY *priv = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (priv == NULL) {
        dns_item *it = dns_add(d, "dkim-key", DNS_FAIL, "%s is not a PEM private key", d->dkim_key);
        dns_fix(it, "give the PEM private key the signer uses");
        return;
    }
    if (EVP_PKEY_eq(pub, priv) == 1) {
        dns_add(d, "dkim-key", DNS_PASS, "the published key matches %s", d->dkim_key);
    } else {
        dns_item *it =
            dns_add(d, "dkim-key", DNS_FAIL,
                    "the published key does not match %s: signatures will fail", d->dkim_key);
        dns_fix(it,
                "publish the public key of %s (pigeon dkim keygen prints the record), or "
                "sign with the key that is published",
                d->dkim_key);
    }
    EVP_PKEY_free(priv);
}

static void dkim_key(dns_doctor *d, const char *name, const pigeon_dns_dkim_record *k)
{
    if (k->p_len == 0) {
        dns_item *it = dns_add(d, "dkim", DNS_FAIL, "the key at %s is revoked (empty p=)", name);
        dns_fix(it, "publish a new key under a new selector and sign with it");
        return;
    }
    EVP_PKEY *pub = record_key(k);
    if (pub == NULL) {
        dns_item *it = dns_add(d, "dkim", DNS_FAIL,
                               "the %s key at %s does not decode (%zu base64 characters): "
                               "truncated or damaged",
                               k->k, name, k->p_len);
        dns_fix(it, "publish the whole key; a TXT record over 255 bytes must be split into "
                    "several strings, not cut");
        return;
    }
    int bits = EVP_PKEY_get_bits(pub);
    dns_item *it;
    if (strcmp(k->k, "rsa") == 0 && bits < 1024) {
        it = dns_add(d, "dkim", DNS_FAIL, "%s: RSA key of %d bits (receivers ignore < 1024)", name,
                     bits);
        dns_fix(it, "publish a 2048-bit RSA key (pigeon dkim keygen)");
    } else if (strcmp(k->k, "rsa") == 0 && bits < 2048) {
        it = dns_add(d, "dkim", DNS_WARN, "%s: RSA key of %d bits", name, bits);
        dns_fix(it, "move to a 2048-bit RSA key (RFC 8301 recommends at least 2048)");
    } else if (k->testing) {
        it = dns_add(d, "dkim", DNS_WARN, "%s: %s key of %d bits in testing mode (t=y)", name, k->k,
                     bits);
        dns_fix(it, "remove t=y once signing works: receivers may ignore test signatures");
    } else if (strcmp(k->k, "ed25519") == 0) {
        dns_add(d, "dkim", DNS_PASS, "%s: ed25519 key (RFC 8463)", name);
    } else {
        dns_add(d, "dkim", DNS_PASS, "%s: %s key of %d bits", name, k->k, bits);
    }
    if (d->dkim_key != NULL)
        dkim_match(d, pub);
    EVP_PKEY_free(pub);
}

void dns_check_dkim(dns_doctor *d)
{
    if (d->selector == NULL) {
        dns_item *it = dns_add(d, "dkim", DNS_INFO, "no DKIM selector given: key not checked");
        dns_fix(it, "pass --selector (or set dkim_selector in the account)");
        return;
    }
    char name[300];
    snprintf(name, sizeof name, "%s._domainkey.%s", d->selector,
             d->dkim_domain ? d->dkim_domain : d->domain);
    pigeon_dns_answer ans;
    pigeon_dns_status st = pigeon_dns_query(d->r, name, PIGEON_DNS_TXT, &ans);
    if (dns_failed(st)) {
        dns_failure(d, "dkim", "TXT", name, st);
    } else if (ans.count == 0) {
        dns_item *it = dns_add(d, "dkim", DNS_FAIL, "no DKIM key at %s (%s)", name,
                               pigeon_dns_status_name(st));
        dns_fix(it, "publish the record `pigeon dkim keygen` prints, at %s", name);
    } else if (ans.count > 1) {
        dns_item *it = dns_add(d, "dkim", DNS_FAIL,
                               "%zu TXT records at %s: verifiers may pick "
                               "either",
                               ans.count, name);
        dns_fix(it, "keep one key record per selector");
    } else {
        pigeon_dns_dkim_record k;
        if (pigeon_dns_dkim_record_parse(ans.records[0].text, ans.records[0].len, &k) !=
            PIGEON_OK) {
            dns_item *it =
                dns_add(d, "dkim", DNS_FAIL, "the key record at %s is invalid: %s", name, k.error);
            dns_fix(it, "publish a record of the form \"v=DKIM1; k=rsa; p=BASE64\"");
        } else {
            dkim_key(d, name, &k);
        }
    }
    pigeon_dns_answer_cleanup(&ans);
}

/* ---- DMARC and alignment ---- */

static const char *policy_name(pigeon_dmarc_policy p)
{
    static const char *const names[] = {"(none given)", "none", "quarantine", "reject"};
    return names[p];
}

/* Whether an identifier domain aligns with the From domain (RFC 7489 3.1). */
static int aligned(const char *id, const char *from, char mode)
{
    char a[256], b[256];
    if (id == NULL)
        return 0;
    if (mode == 's')
        return strcasecmp(id, from) == 0;
    return pigeon_dns_org_domain(id, a, sizeof a) == 0 &&
           pigeon_dns_org_domain(from, b, sizeof b) == 0 && strcmp(a, b) == 0;
}

static void dmarc_alignment(dns_doctor *d, const pigeon_dmarc_record *rec)
{
    const char *dkim_d = d->dkim_domain ? d->dkim_domain : d->selector ? d->domain : NULL;
    const char *at = d->mail_from ? strrchr(d->mail_from, '@') : NULL;
    const char *env = at ? at + 1 : d->domain;
    int dk = aligned(dkim_d, d->domain, rec->adkim), sp = aligned(env, d->domain, rec->aspf);
    char what[300];
    snprintf(what, sizeof what, "DKIM d=%s %s (adkim=%c), envelope sender domain %s %s (aspf=%c)",
             dkim_d ? dkim_d : "(not signing)", dk ? "aligns" : "does not align", rec->adkim, env,
             sp ? "aligns" : "does not align", rec->aspf);
    if (dk && sp) {
        dns_add(d, "alignment", DNS_PASS, "%s", what);
    } else if (dk || sp) {
        dns_item *it = dns_add(d, "alignment", DNS_WARN, "%s", what);
        dns_fix(it,
                dk ? "DMARC rests on DKIM alone: a custom MAIL FROM (return path) under %s "
                     "aligns SPF too"
                   : "sign with DKIM d=%s: DMARC then survives forwarding",
                d->domain);
    } else {
        dns_item *it = dns_add(d, "alignment", DNS_FAIL, "%s: DMARC fails", what);
        dns_fix(it, "sign with DKIM d=%s (--selector, dkim_domain)", d->domain);
    }
}

static void dmarc_verdict(dns_doctor *d, const char *where, const pigeon_dmarc_record *rec)
{
    dns_item *it;
    if (rec->errors > 0) {
        it = dns_add(d, "dmarc", DNS_FAIL, "%s: syntax errors (%d): %s", where, rec->errors,
                     rec->error);
        dns_fix(it, "correct the record, e.g. \"v=DMARC1; p=quarantine; rua=mailto:dmarc@%s\"",
                d->domain);
    } else if (rec->p == PIGEON_DMARC_NONE || rec->pct < 100) {
        it = dns_add(d, "dmarc", DNS_WARN, "%s: p=%s pct=%d (monitoring only)", where,
                     policy_name(rec->p), rec->pct);
        dns_fix(it, "once the rua reports show your mail aligned, raise to p=quarantine pct=100");
    } else {
        it = dns_add(d, "dmarc", DNS_PASS, "%s: p=%s%s%s pct=%d adkim=%c aspf=%c", where,
                     policy_name(rec->p), rec->sp ? " sp=" : "",
                     rec->sp ? policy_name(rec->sp) : "", rec->pct, rec->adkim, rec->aspf);
    }
    if (rec->rua[0] == '\0') {
        it = dns_add(d, "dmarc-rua", DNS_WARN, "%s: no valid rua= (no aggregate reports)", where);
        dns_fix(it, "add rua=mailto:dmarc-reports@%s to see who sends as you", d->domain);
    } else {
        dns_add(d, "dmarc-rua", DNS_PASS, "reports go to %s%s%s", rec->rua,
                rec->ruf[0] ? "; failure reports to " : "", rec->ruf);
    }
    dmarc_alignment(d, rec);
}

/* Looks for the record at _dmarc.NAME. Returns 1 found (rec filled), 0 none, -1 DNS error
 * (reported) or several records (reported). */
static int dmarc_at(dns_doctor *d, const char *domain, pigeon_dmarc_record *rec, char *where,
                    size_t wlen)
{
    char name[300];
    snprintf(name, sizeof name, "_dmarc.%s", domain);
    snprintf(where, wlen, "%s", name);
    pigeon_dns_answer ans;
    pigeon_dns_status st = dns_txt_with(d, name, pigeon_dmarc_is_record, &ans);
    int rc = 0;
    if (dns_failed(st)) {
        dns_failure(d, "dmarc", "TXT", name, st);
        rc = -1;
    } else if (ans.count > 1) {
        /* RFC 7489 6.6.3: several records mean no DMARC at all. */
        dns_item *it = dns_add(d, "dmarc", DNS_FAIL,
                               "%s has %zu DMARC records: receivers "
                               "ignore all",
                               name, ans.count);
        dns_fix(it, "keep one v=DMARC1 record");
        rc = -1;
    } else if (ans.count == 1) {
        pigeon_dmarc_parse(ans.records[0].text, ans.records[0].len, rec);
        rc = 1;
    }
    pigeon_dns_answer_cleanup(&ans);
    return rc;
}

void dns_check_dmarc(dns_doctor *d)
{
    pigeon_dmarc_record rec;
    char where[300], org[256];
    snprintf(org, sizeof org, "%s", d->domain);
    int rc = dmarc_at(d, d->domain, &rec, where, sizeof where);
    if (rc == 0 && pigeon_dns_org_domain(d->domain, org, sizeof org) == 0 &&
        strcasecmp(org, d->domain) != 0) {
        /* RFC 7489 6.6.3: fall back to the organizational domain (by our suffix rule). */
        rc = dmarc_at(d, org, &rec, where, sizeof where);
        if (rc == 1) {
            size_t n = strlen(where);
            snprintf(where + n, sizeof where - n, " (organizational domain of %s; sp= applies)",
                     d->domain);
            if (rec.sp != PIGEON_DMARC_UNSET)
                rec.p = rec.sp;
        }
    }
    if (rc == 0) {
        dns_item *it = dns_add(d, "dmarc", DNS_FAIL, "no DMARC record at _dmarc.%s%s%s", d->domain,
                               strcasecmp(org, d->domain) ? " nor _dmarc." : "",
                               strcasecmp(org, d->domain) ? org : "");
        dns_fix(it, "publish TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@%s\" at _dmarc.%s",
                d->domain, d->domain);
    } else if (rc == 1) {
        dmarc_verdict(d, where, &rec);
    }
}

/* ---- MTA-STS, TLS-RPT, BIMI ---- */

static void policy_record(dns_doctor *d, const char *check, const char *prefix, const char *version,
                          const char *what, const char *fix)
{
    char name[300];
    snprintf(name, sizeof name, "%s.%s", prefix, d->domain);
    pigeon_dns_answer ans;
    pigeon_dns_status st = pigeon_dns_query(d->r, name, PIGEON_DNS_TXT, &ans);
    size_t vlen = strlen(version) + 2;
    const pigeon_dns_record *found = NULL;
    for (size_t i = 0; i < ans.count; i++) {
        if (ans.records[i].len > vlen && strncmp(ans.records[i].text, "v=", 2) == 0 &&
            strncmp(ans.records[i].text + 2, version, vlen - 2) == 0)
            found = &ans.records[i];
    }
    if (dns_failed(st)) {
        dns_failure(d, check, "TXT", name, st);
    } else if (found == NULL) {
        dns_item *it = dns_add(d, check, DNS_INFO, "no %s record at %s", what, name);
        dns_fix(it, "%s", fix);
    } else {
        pigeon_tagrec t;
        if (pigeon_tagrec_parse(found->text, found->len, version, &t) != PIGEON_OK) {
            dns_item *it =
                dns_add(d, check, DNS_WARN, "%s record at %s is invalid: %s", what, name, t.error);
            dns_fix(it, "%s", fix);
        } else {
            dns_add(d, check, DNS_PASS, "%s record at %s%s%s%s%s%s%s", what, name,
                    t.id[0] ? ": id=" : "", t.id, t.rua[0] ? ": rua=" : "", t.rua,
                    t.l[0] ? ": logo " : "", t.l);
        }
    }
    pigeon_dns_answer_cleanup(&ans);
}

void dns_check_policies(dns_doctor *d)
{
    policy_record(d, "mta-sts", "_mta-sts", "STSv1", "MTA-STS",
                  "to require TLS for mail to you, publish \"v=STSv1; id=1\" and the policy file "
                  "(RFC 8461)");
    policy_record(d, "tls-rpt", "_smtp._tls", "TLSRPTv1", "TLS-RPT",
                  "publish \"v=TLSRPTv1; rua=mailto:tls-reports@DOMAIN\" to hear of TLS failures");
    policy_record(d, "bimi", "default._bimi", "BIMI1", "BIMI",
                  "optional: a BIMI record shows your logo where DMARC is enforced");
}
