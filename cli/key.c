/*
 * key.c - `pigeon key create|list|revoke`: API keys of `pigeon serve`.
 *
 * A key is "pgk_<id>_<secret>": 16 hex characters of id, 64 of secret (256 random bits
 * from the CSPRNG). It is printed once, by create; the spool keeps the id and the
 * SHA-256 of the secret. A running `pigeon serve` picks up new and revoked keys within
 * two seconds.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cli.h"
#include "queue.h"
#include "spool/spool_api.h"
#include "secret.h"
#include "util/random.h"
#include "webhook.h"

enum {
    OPT_ACCOUNT = 0x400,
    OPT_DOMAIN,
    OPT_SCOPE,
    OPT_RATE,
    OPT_SPOOL,
    OPT_WEBHOOK,
    OPT_WEBHOOK_SECRET_FILE,
    OPT_WEBHOOK_EVENTS
};

static const struct option longopts[] = {
    {"account", required_argument, NULL, OPT_ACCOUNT},
    {"from-domain", required_argument, NULL, OPT_DOMAIN},
    {"scope", required_argument, NULL, OPT_SCOPE},
    {"rate", required_argument, NULL, OPT_RATE},
    {"spool", required_argument, NULL, OPT_SPOOL},
    {"webhook", required_argument, NULL, OPT_WEBHOOK},
    {"webhook-secret-file", required_argument, NULL, OPT_WEBHOOK_SECRET_FILE},
    {"webhook-events", required_argument, NULL, OPT_WEBHOOK_EVENTS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Each scope one of send, read, cancel. */
static int valid_scopes(const char *s)
{
    char copy[64];
    if (strlen(s) >= sizeof copy || s[0] == '\0')
        return 0;
    snprintf(copy, sizeof copy, "%s", s);
    for (char *p = copy; p != NULL;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (strcmp(p, "send") != 0 && strcmp(p, "read") != 0 && strcmp(p, "cancel") != 0)
            return 0;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return 1;
}

/* "N/s" or "N" requests a second. */
static int parse_rate(const char *s, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !(v > 0) || v > 1e6 || (*end != '\0' && strcmp(end, "/s") != 0))
        return 0;
    *out = v;
    return 1;
}

static int add_domain(pg_spool_key *k, const char *d)
{
    size_t used = strlen(k->domains), n = strlen(d);
    if (n == 0 || strchr(d, ',') != NULL || strchr(d, '@') != NULL ||
        used + n + 2 > sizeof k->domains)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)d[i] <= 0x20 || d[i] == 0x7f)
            return 0;
    }
    snprintf(k->domains + used, sizeof k->domains - used, "%s%s", used ? "," : "", d);
    return 1;
}

static int key_create(int argc, char **argv)
{
    pg_spool_key k;
    const char *spool_opt = NULL, *scopes = "send,read,cancel";
    const char *hook[3] = {NULL, NULL, NULL}; /* --webhook, its secret file, its events */
    char *hook_secret = NULL;
    char quoted[256];
    int opt;
    memset(&k, 0, sizeof k);
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_ACCOUNT:
            snprintf(k.account, sizeof k.account, "%s", optarg);
            break;
        case OPT_DOMAIN:
            if (!add_domain(&k, optarg)) {
                cli_error("key: --from-domain \"%s\" is not a domain",
                          cli_shorten(optarg, quoted, sizeof quoted));
                return EX_USAGE;
            }
            break;
        case OPT_SCOPE:
            if (!valid_scopes(optarg)) {
                cli_error("key: --scope is a comma-separated list of send, read, cancel");
                return EX_USAGE;
            }
            scopes = optarg;
            break;
        case OPT_RATE:
            if (!parse_rate(optarg, &k.rate)) {
                cli_error("key: --rate is a number of requests a second, like 100/s");
                return EX_USAGE;
            }
            break;
        case OPT_SPOOL:
            spool_opt = optarg;
            break;
        case OPT_WEBHOOK:
        case OPT_WEBHOOK_SECRET_FILE:
        case OPT_WEBHOOK_EVENTS:
            hook[opt - OPT_WEBHOOK] = optarg;
            break;
        case 'h':
            cli_key_usage(stdout);
            return 0;
        default:
            cli_error("key create: unknown option or missing value %s",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        }
    }
    if (k.account[0] == '\0' || optind < argc) {
        cli_error("key create: --account NAME is required (and nothing else)");
        return EX_USAGE;
    }
    snprintf(k.scopes, sizeof k.scopes, "%s", scopes);
    unsigned char id[PG_SPOOL_KEY_ID_LEN / 2], secret[32];
    char secret_hex[65];
    if (pg_random_bytes(id, sizeof id) != PIGEON_OK ||
        pg_random_bytes(secret, sizeof secret) != PIGEON_OK) {
        cli_error("key: no randomness available");
        return EX_OSERR;
    }
    hex(id, sizeof id, k.id);
    hex(secret, sizeof secret, secret_hex);
    unsigned int hlen = 0;
    EVP_Digest(secret_hex, 64, k.hash, &hlen, EVP_sha256(), NULL);
    k.created_ms = pigeon_spool_now_ms();
    pigeon_spool *spool = NULL;
    int status = queue_spool_open(spool_opt, PIGEON_SPOOL_CREATE | PIGEON_SPOOL_NO_CHECK, &spool);
    if (status == 0 && pg_spool_key_add(spool, &k) != PIGEON_OK) {
        cli_error("key: cannot store the key: %s", pigeon_spool_error(spool));
        status = EX_IOERR;
    }
    /* Its webhook (cli/webhook.c): the key's events go there. */
    if (status == 0 && hook[0] != NULL)
        status = webhook_key_attach(spool, k.id, hook[0], hook[1], hook[2], &hook_secret);
    pigeon_spool_close(spool);
    if (status == 0)
        printf("pgk_%s_%s\n", k.id, secret_hex);
    if (status == 0 && hook_secret != NULL)
        printf("%s\n", hook_secret); /* the webhook's signing secret, shown once */
    secret_free(hook_secret);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(secret_hex, sizeof secret_hex);
    return status;
}

static int print_key(void *ctx, const pg_spool_key *k)
{
    (void)ctx;
    char created[32];
    time_t t = (time_t)(k->created_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%s  %-8s  account=%s  scopes=%s  from-domains=%s  rate=%s%g  created=%s\n", k->id,
           k->revoked_ms ? "revoked" : "live", k->account, k->scopes,
           k->domains[0] ? k->domains : "*", k->rate > 0 ? "" : "unlimited:", k->rate, created);
    return 0;
}

static int spool_option(int argc, char **argv, const char **spool_opt)
{
    int opt;
    char quoted[256];
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (opt == OPT_SPOOL) {
            *spool_opt = optarg;
            continue;
        }
        if (opt == 'h') {
            cli_key_usage(stdout);
            return -1;
        }
        cli_error("key: unknown option %s", cli_typed_option(argv, quoted, sizeof quoted));
        return EX_USAGE;
    }
    return 0;
}

static int key_list(int argc, char **argv)
{
    const char *spool_opt = NULL;
    int status = spool_option(argc, argv, &spool_opt);
    if (status != 0)
        return status < 0 ? 0 : status;
    pigeon_spool *spool = NULL;
    if ((status = queue_spool_open(spool_opt, PIGEON_SPOOL_NO_CHECK, &spool)) != 0)
        return status;
    if (pg_spool_key_list(spool, print_key, NULL) != PIGEON_OK) {
        cli_error("key: %s", pigeon_spool_error(spool));
        status = EX_IOERR;
    }
    pigeon_spool_close(spool);
    return status;
}

static int key_revoke(int argc, char **argv)
{
    const char *spool_opt = NULL;
    int status = spool_option(argc, argv, &spool_opt);
    if (status != 0)
        return status < 0 ? 0 : status;
    if (optind + 1 != argc) {
        cli_error("key revoke: give one key id (see pigeon key list)");
        return EX_USAGE;
    }
    pigeon_spool *spool = NULL;
    if ((status = queue_spool_open(spool_opt, PIGEON_SPOOL_NO_CHECK, &spool)) != 0)
        return status;
    pigeon_err e = pg_spool_key_revoke(spool, argv[optind], pigeon_spool_now_ms());
    if (e != PIGEON_OK) {
        cli_error("key revoke: %s",
                  e == PIGEON_ERR_INVALID ? "not a key id" : pigeon_spool_error(spool));
        status = e == PIGEON_ERR_NOTFOUND || e == PIGEON_ERR_INVALID ? EX_DATAERR : EX_IOERR;
    } else {
        printf("revoked %s\n", argv[optind]);
    }
    pigeon_spool_close(spool);
    return status;
}

int cli_key_run(int argc, char **argv)
{
    if (argc < 2) {
        cli_key_usage(stderr);
        return EX_USAGE;
    }
    if (strcmp(argv[1], "create") == 0)
        return key_create(argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return key_list(argc - 1, argv + 1);
    if (strcmp(argv[1], "revoke") == 0)
        return key_revoke(argc - 1, argv + 1);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        cli_key_usage(stdout);
        return 0;
    }
    cli_error("key: unknown subcommand (create, list, revoke)");
    return EX_USAGE;
}

void cli_key_usage(FILE *out)
{
    fputs("usage: pigeon key create --account NAME [--from-domain D]... [--scope LIST]\n"
          "                         [--rate N/s] [--spool PATH]\n"
          "                         [--webhook URL [--webhook-secret-file F]\n"
          "                          [--webhook-events LIST]]\n"
          "       pigeon key list [--spool PATH]\n"
          "       pigeon key revoke ID [--spool PATH]\n"
          "\n"
          "API keys for `pigeon serve`. create prints the new key once (the spool keeps\n"
          "only its hash); a key sends only through its account, only From its domains\n"
          "(all when none given), within its scopes (send,read,cancel: all by default) and\n"
          "its rate; it sees and cancels only its own messages. With --webhook, the events\n"
          "of its messages (those of --webhook-events, default all) are POSTed to URL, signed\n"
          "with the secret of --webhook-secret-file, else a new one printed once on the\n"
          "line after the key (see pigeon webhook).\n",
          out);
}
