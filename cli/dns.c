/*
 * dns.c - `pigeon dns check DOMAIN`: a deliverability doctor for a sending domain.
 *
 * Asks DNS (the system's resolvers, or --dns-server) about everything receivers look at:
 * MX, SPF (evaluated for the sending addresses, with the lookup limits), the DKIM key,
 * DMARC and alignment, MTA-STS, TLS-RPT, BIMI, and blocklists. Each finding gets a verdict
 * and a one-line fix. Being meant for CI, the exit status is the worst verdict (0 all
 * pass, 1 warnings, 2 failures) instead of sysexits; usage errors are still 64 and
 * configuration errors 78.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sysexits.h>

#include "config.h"
#include "deliver.h"
#include "dns_cmd.h"
#include "json.h"

static const char *const verdict_names[] = {"pass", "info", "warn", "fail"};

dns_item *dns_add(dns_doctor *d, const char *check, dns_verdict v, const char *fmt, ...)
{
    static dns_item spare;
    dns_item *it = d->nitems < DNS_MAX_ITEMS ? &d->items[d->nitems++] : &spare;
    va_list ap;
    if (it == &spare) {
        /* The report is full: the finding is dropped, and so is a detail left on it. */
        free(spare.detail);
        d->dropped++;
        if (v > d->dropped_worst)
            d->dropped_worst = v;
    }
    memset(it, 0, sizeof *it);
    snprintf(it->check, sizeof it->check, "%s", check);
    it->v = v;
    va_start(ap, fmt);
    vsnprintf(it->summary, sizeof it->summary, fmt, ap);
    va_end(ap);
    return it;
}

void dns_fix(dns_item *it, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->fix, sizeof it->fix, fmt, ap);
    va_end(ap);
}

void cli_dns_usage(FILE *out)
{
    fputs("usage: pigeon dns check DOMAIN [options]\n"
          "\n"
          "Checks what receivers look up about a sending domain: MX (null MX), SPF (one\n"
          "record, syntax, at most 10 DNS lookups and 2 void lookups, include/redirect chain,\n"
          "the sending addresses, the provider's include), the DKIM key, DMARC (falling back\n"
          "to the organizational domain) and alignment, MTA-STS, TLS-RPT, BIMI, and DNS\n"
          "blocklists. Each item gets pass/warn/fail and a one-line fix.\n"
          "\n"
          "  --dns-server HOST[:PORT]  ask this server instead of /etc/resolv.conf's\n"
          "  --timeout SECONDS         per-query timeout (default 2, two tries)\n"
          "  --ip ADDR                 a sending address to evaluate SPF for and look up in\n"
          "                            the DNSBLs (repeatable; default: the account's host)\n"
          "  --account NAME            the account (provider, host, from, dkim_selector)\n"
          "  --provider NAME           the provider preset (knows its SPF include)\n"
          "  --host HOST               the submission host whose addresses are checked\n"
          "  --mail-from ADDR          the envelope sender (SPF alignment)\n"
          "  --selector S              the DKIM selector (S._domainkey.DOMAIN)\n"
          "  --dkim-domain D           the DKIM d= domain (default DOMAIN)\n"
          "  --dkim-key FILE           check that the published key matches this private key\n"
          "  --dnsbl ZONE              another DNSBL for the addresses (repeatable)\n"
          "  --dbl ZONE                another domain blocklist (repeatable)\n"
          "  --no-default-lists        skip the built-in lists (zen.spamhaus.org,\n"
          "                            bl.spamcop.net, b.barracudacentral.org,\n"
          "                            dbl.spamhaus.org, multi.uribl.com)\n"
          "  --message FILE            also look up the message's link domains\n"
          "  --json                    one JSON object on standard output\n"
          "\n"
          "Exit status: 0 every item passes, 1 warnings, 2 failures; 64 usage, 78 config.\n",
          out);
}

/* Splits HOST[:PORT] and makes HOST numeric ("name" is resolved by the system). */
static int server_address(const char *arg, char *out, size_t outlen)
{
    char host[256];
    const char *port = NULL;
    if (arg[0] == '[') {
        const char *end = strchr(arg, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return -1;
        snprintf(host, sizeof host, "%.*s", (int)(end - arg - 1), arg + 1);
        port = end[1] == ':' ? end + 2 : NULL;
    } else if (strchr(arg, ':') != NULL && strchr(arg, ':') == strrchr(arg, ':')) {
        snprintf(host, sizeof host, "%.*s", (int)(strchr(arg, ':') - arg), arg);
        port = strchr(arg, ':') + 1;
    } else {
        snprintf(host, sizeof host, "%s", arg);
    }
    if (port != NULL) {
        char *end = NULL;
        long p = strtol(port, &end, 10);
        if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
            return -1;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_DGRAM;
    if (host[0] == '\0' || getaddrinfo(host, NULL, &hints, &res) != 0)
        return -1;
    char num[64];
    int rc = getnameinfo(res->ai_addr, res->ai_addrlen, num, sizeof num, NULL, 0, NI_NUMERICHOST);
    int v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    if (rc != 0)
        return -1;
    if (port != NULL)
        snprintf(out, outlen, v6 ? "[%s]:%s" : "%s:%s", num, port);
    else
        snprintf(out, outlen, "%s", num);
    return 0;
}

static int add_ip(dns_doctor *d, const char *ip, int given)
{
    unsigned char bin[16];
    if (inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1)
        return -1;
    for (int i = 0; i < d->nips; i++) {
        if (strcmp(d->ips[i], ip) == 0)
            return 0;
    }
    if (d->nips >= DNS_MAX_IPS)
        return 0;
    d->ips[d->nips] = strdup(ip);
    if (d->ips[d->nips] == NULL)
        return -1;
    d->ip_given[d->nips++] = given;
    return 0;
}

/* The account host's addresses, through the same resolver. */
static void host_addresses(dns_doctor *d)
{
    pigeon_dns_answer a, aaaa;
    if (d->host == NULL || d->nips > 0)
        return;
    pigeon_dns_submit(d->r, d->host, PIGEON_DNS_A, &a);
    pigeon_dns_submit(d->r, d->host, PIGEON_DNS_AAAA, &aaaa);
    pigeon_dns_run(d->r);
    for (size_t i = 0; a.status == PIGEON_DNS_OK && i < a.count; i++)
        add_ip(d, a.records[i].text, 0);
    for (size_t i = 0; aaaa.status == PIGEON_DNS_OK && i < aaaa.count; i++)
        add_ip(d, aaaa.records[i].text, 0);
    if (d->nips == 0) {
        dns_item *it = dns_add(d, "host", DNS_WARN, "the account's host %s has no address (%s)",
                               d->host, pigeon_dns_status_name(a.status));
        dns_fix(it, "check the host name, or give the sending addresses with --ip");
    } else {
        dns_add(d, "host", DNS_INFO, "sending through %s (%d address%s)", d->host, d->nips,
                d->nips == 1 ? "" : "es");
    }
    pigeon_dns_answer_cleanup(&a);
    pigeon_dns_answer_cleanup(&aaaa);
}

static dns_verdict worst(const dns_doctor *d)
{
    dns_verdict w = d->dropped_worst;
    for (int i = 0; i < d->nitems; i++) {
        if (d->items[i].v > w)
            w = d->items[i].v;
    }
    return w == DNS_INFO ? DNS_PASS : w;
}

static void report_text(const dns_doctor *d, const char *server)
{
    static const char *const tags[] = {"PASS", "INFO", "WARN", "FAIL"};
    int counts[4] = {0};
    printf("pigeon dns check %s (DNS: %s)\n", d->domain, server ? server : "system resolvers");
    for (int i = 0; i < d->nitems; i++) {
        const dns_item *it = &d->items[i];
        counts[it->v]++;
        printf("%s  %-12s %s\n", tags[it->v], it->check, it->summary);
        if (it->fix[0] && it->v != DNS_PASS)
            printf("      %-12s fix: %s\n", "", it->fix);
        for (const char *l = it->detail; l != NULL && *l != '\0';) {
            const char *nl = strchr(l, '\n');
            int n = nl ? (int)(nl - l) : (int)strlen(l);
            printf("      %-12s | %.*s\n", "", n, l);
            l = nl ? nl + 1 : l + n;
        }
    }
    dns_verdict w = worst(d);
    printf("verdict: %s (%d pass, %d warn, %d fail)\n", verdict_names[w], counts[DNS_PASS],
           counts[DNS_WARN], counts[DNS_FAIL]);
    if (d->dropped > 0)
        printf("(%d more findings not shown: the report holds %d)\n", d->dropped, DNS_MAX_ITEMS);
}

static void report_json(const dns_doctor *d, const char *server)
{
    json_writer w;
    json_init(&w, stdout);
    json_object_begin(&w);
    json_kv_string(&w, "domain", d->domain);
    json_kv_string(&w, "dns_server", server);
    json_key(&w, "checks");
    json_array_begin(&w);
    for (int i = 0; i < d->nitems; i++) {
        const dns_item *it = &d->items[i];
        json_object_begin(&w);
        json_kv_string(&w, "check", it->check);
        json_kv_string(&w, "verdict", verdict_names[it->v]);
        json_kv_string(&w, "summary", it->summary);
        json_kv_string(&w, "fix", it->fix[0] ? it->fix : NULL);
        if (it->detail != NULL) {
            json_key(&w, "detail");
            json_array_begin(&w);
            for (const char *l = it->detail; *l != '\0';) {
                const char *nl = strchr(l, '\n');
                size_t n = nl ? (size_t)(nl - l) : strlen(l);
                char line[600];
                snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1),
                         l);
                json_string(&w, line);
                l = nl ? nl + 1 : l + n;
            }
            json_array_end(&w);
        }
        json_object_end(&w);
    }
    json_array_end(&w);
    dns_verdict v = worst(d);
    json_kv_string(&w, "verdict", verdict_names[v]);
    json_kv_int(&w, "exit", v == DNS_FAIL ? 2 : v == DNS_WARN ? 1 : 0);
    json_object_end(&w);
    json_finish(&w);
}

/* The account's settings: provider, host, envelope sender, DKIM keys when configured. */
static int load_account(dns_doctor *d, cfg_settings *cfg, const char *account)
{
    char err[600];
    if (settings_load(cfg, account, err, sizeof err) != 0) {
        cli_error("%s", err);
        return EX_CONFIG;
    }
    if (d->provider == NULL)
        d->provider = cfg_get(cfg, K_PROVIDER);
    if (d->host == NULL)
        d->host = cfg_get(cfg, K_HOST);
    if (d->host == NULL && d->provider != NULL) {
        static char hostbuf[96];
        pigeon_provider p;
        if (pigeon_provider_lookup(d->provider, &p, hostbuf, sizeof hostbuf) == 0)
            d->host = p.host;
    }
    if (d->mail_from == NULL)
        d->mail_from = cfg_get(cfg, K_FROM);
    const char *user = cfg_get(cfg, K_USER);
    if (d->mail_from == NULL && user != NULL && strchr(user, '@') != NULL)
        d->mail_from = user;
    /* The DKIM keys of the account, when this build's configuration knows them. */
    int k = cfg_key_lookup("dkim_selector");
    if (d->selector == NULL && k >= 0)
        d->selector = cfg_get(cfg, (enum cfg_key)k);
    k = cfg_key_lookup("dkim_domain");
    if (d->dkim_domain == NULL && k >= 0)
        d->dkim_domain = cfg_get(cfg, (enum cfg_key)k);
    k = cfg_key_lookup("dkim_key");
    if (d->dkim_key == NULL && k >= 0)
        d->dkim_key = cfg_get(cfg, (enum cfg_key)k);
    return 0;
}

enum {
    OPT_SERVER = 0x100,
    OPT_TIMEOUT,
    OPT_IP,
    OPT_ACCOUNT,
    OPT_PROVIDER,
    OPT_HOST,
    OPT_MAIL_FROM,
    OPT_SELECTOR,
    OPT_DKIM_DOMAIN,
    OPT_DKIM_KEY,
    OPT_DNSBL,
    OPT_DBL,
    OPT_NO_DEFAULT,
    OPT_MESSAGE,
    OPT_JSON,
};

/* Stores one option. Returns 0 or EX_USAGE (printed). */
static int take_option(dns_doctor *d, int opt, const char *arg, const char **server,
                       int *timeout_ms, const char **account, int *json)
{
    char q[96];
    switch (opt) {
    case OPT_SERVER:
        *server = arg;
        return 0;
    case OPT_TIMEOUT: {
        char *end = NULL;
        double s = strtod(arg, &end);
        if (*arg == '\0' || *end != '\0' || !(s > 0 && s <= 60)) {
            cli_error("--timeout \"%s\": give seconds from 0.1 to 60",
                      cli_shorten(arg, q, sizeof q));
            return EX_USAGE;
        }
        *timeout_ms = (int)(s * 1000);
        return 0;
    }
    case OPT_IP:
        if (add_ip(d, arg, 1) != 0) {
            cli_error("--ip \"%s\" is not an IPv4 or IPv6 address", cli_shorten(arg, q, sizeof q));
            return EX_USAGE;
        }
        return 0;
    case OPT_ACCOUNT:
        *account = arg;
        return 0;
    case OPT_PROVIDER:
        d->provider = arg;
        return 0;
    case OPT_HOST:
        d->host = arg;
        return 0;
    case OPT_MAIL_FROM:
        d->mail_from = arg;
        return 0;
    case OPT_SELECTOR:
        d->selector = arg;
        return 0;
    case OPT_DKIM_DOMAIN:
        d->dkim_domain = arg;
        return 0;
    case OPT_DKIM_KEY:
        d->dkim_key = arg;
        return 0;
    case OPT_DNSBL:
    case OPT_DBL:
        return cli_strv_push(opt == OPT_DNSBL ? &d->dnsbl : &d->dbl, arg) == 0 ? 0 : EX_OSERR;
    case OPT_NO_DEFAULT:
        d->default_lists = 0;
        return 0;
    case OPT_MESSAGE:
        d->message = arg;
        return 0;
    case OPT_JSON:
        *json = 1;
        return 0;
    default:
        return EX_USAGE;
    }
}

/* An internationalized domain is looked up in its A-label form (IDNA2008, RFC 5891),
 * through the address parser that already knows it. */
static int idn_domain(dns_doctor *d)
{
    int ascii = 1;
    for (const char *p = d->domain; *p; p++)
        ascii &= (unsigned char)*p < 0x80;
    if (ascii)
        return 0;
    char addr[320];
    pigeon_mailbox mb;
    snprintf(addr, sizeof addr, "postmaster@%s", d->domain);
    if (pigeon_mailbox_parse(addr, &mb, NULL, 0) != PIGEON_OK)
        return -1;
    snprintf(d->domain_ascii, sizeof d->domain_ascii, "%s", mb.domain_ascii);
    pigeon_mailbox_cleanup(&mb);
    d->domain = d->domain_ascii;
    return 0;
}

static int valid_domain(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253 || s[0] == '.' || strstr(s, "..") != NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return strchr(s, '.') != NULL;
}

/* valid_domain, or a domain with non-ASCII labels (checked by idn_domain). */
static int plausible_domain(const char *s)
{
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p >= 0x80)
            return strchr(s, '.') != NULL && strchr(s, ' ') == NULL;
    }
    return valid_domain(s);
}

static void doctor_cleanup(dns_doctor *d)
{
    for (int i = 0; i < d->nitems; i++)
        free(d->items[i].detail);
    for (int i = 0; i < d->nips; i++)
        free(d->ips[i]);
    cli_strv_cleanup(&d->dnsbl);
    cli_strv_cleanup(&d->dbl);
    pigeon_dns_free(d->r);
}

int cli_dns_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dns-server", required_argument, NULL, OPT_SERVER},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"ip", required_argument, NULL, OPT_IP},
        {"account", required_argument, NULL, OPT_ACCOUNT},
        {"provider", required_argument, NULL, OPT_PROVIDER},
        {"host", required_argument, NULL, OPT_HOST},
        {"mail-from", required_argument, NULL, OPT_MAIL_FROM},
        {"selector", required_argument, NULL, OPT_SELECTOR},
        {"dkim-domain", required_argument, NULL, OPT_DKIM_DOMAIN},
        {"dkim-key", required_argument, NULL, OPT_DKIM_KEY},
        {"dnsbl", required_argument, NULL, OPT_DNSBL},
        {"dbl", required_argument, NULL, OPT_DBL},
        {"no-default-lists", no_argument, NULL, OPT_NO_DEFAULT},
        {"message", required_argument, NULL, OPT_MESSAGE},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    dns_doctor *d = calloc(1, sizeof *d);
    cfg_settings cfg;
    const char *server = NULL, *account = NULL;
    char server_num[128], q[96];
    int timeout_ms = 2000, json = 0, status = EX_USAGE, opt;
    memset(&cfg, 0, sizeof cfg);
    if (d == NULL) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    d->default_lists = 1;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            cli_dns_usage(stdout);
            status = 0;
            goto done;
        }
        if (opt == '?' || opt == ':') {
            cli_error("%s \"%s\" (see pigeon help dns)",
                      opt == ':' ? "missing value for" : "unknown option",
                      cli_typed_option(argv, q, sizeof q));
            goto done;
        }
        if ((status = take_option(d, opt, optarg, &server, &timeout_ms, &account, &json)) != 0)
            goto done;
    }
    status = EX_USAGE;
    if (optind >= argc || strcmp(argv[optind], "check") != 0) {
        cli_error("usage: pigeon dns check DOMAIN [options] (see pigeon help dns)");
        goto done;
    }
    if (optind + 2 != argc || !plausible_domain(argv[optind + 1])) {
        cli_error(optind + 2 != argc ? "pigeon dns check takes one DOMAIN"
                                     : "\"%s\" is not a domain name",
                  optind + 2 < argc ? "" : cli_shorten(argv[argc - 1], q, sizeof q));
        goto done;
    }
    d->domain = argv[optind + 1];
    if (idn_domain(d) != 0) {
        cli_error("\"%s\" is not a domain name", cli_shorten(argv[optind + 1], q, sizeof q));
        goto done;
    }
    if (server != NULL && server_address(server, server_num, sizeof server_num) != 0) {
        cli_error("--dns-server \"%s\": give HOST or HOST:PORT", cli_shorten(server, q, sizeof q));
        goto done;
    }
    if ((status = load_account(d, &cfg, account)) != 0)
        goto done;
    pigeon_dns_opts o = {server ? server_num : NULL, timeout_ms, 2};
    pigeon_err err = pigeon_dns_new(&o, &d->r);
    if (err != PIGEON_OK) {
        cli_error("cannot start the DNS resolver: %s", pigeon_strerror(err));
        status = err == PIGEON_ERR_UNSUPPORTED ? EX_UNAVAILABLE : EX_OSERR;
        goto done;
    }
    host_addresses(d);
    dns_check_mx(d);
    dns_check_spf(d);
    dns_check_dkim(d);
    dns_check_dmarc(d);
    dns_check_policies(d);
    dns_check_lists(d);
    if (json)
        report_json(d, server ? server_num : NULL);
    else
        report_text(d, server ? server_num : NULL);
    dns_verdict w = worst(d);
    status = w == DNS_FAIL ? 2 : w == DNS_WARN ? 1 : 0;
done:
    doctor_cleanup(d);
    free(d);
    cfg_cleanup(&cfg);
    return status;
}
