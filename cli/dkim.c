/*
 * dkim.c - `pigeon dkim keygen`: makes a DKIM key pair, writes the private key (mode 0600,
 * never over an existing file) and prints the TXT record to publish at
 * SELECTOR._domainkey.DOMAIN, its value split into strings of at most 255 octets (RFC 1035
 * 3.3.14: a character-string is at most 255; RFC 6376 3.6.2.2: they are concatenated).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "pigeon/dkim.h"

/* The longest character-string of a TXT record (RFC 1035 3.3.14). */
#define TXT_STRING_MAX 255

enum keygen_opt {
    OPT_DOMAIN = 0x100,
    OPT_SELECTOR,
    OPT_TYPE,
    OPT_BITS,
    OPT_OUT,
};

/* What keygen was asked for. Strings are borrowed from argv. */
typedef struct keygen_args {
    const char *domain;   /* --domain */
    const char *selector; /* --selector */
    pigeon_dkim_alg alg;  /* --type (default rsa) */
    unsigned bits;        /* --bits (RSA; 0 = 2048) */
    const char *out;      /* --out, or NULL for SELECTOR.DOMAIN.pem */
} keygen_args;

static const struct option longopts[] = {
    {"domain", required_argument, NULL, OPT_DOMAIN},
    {"selector", required_argument, NULL, OPT_SELECTOR},
    {"type", required_argument, NULL, OPT_TYPE},
    {"bits", required_argument, NULL, OPT_BITS},
    {"out", required_argument, NULL, OPT_OUT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int name_ok(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 253)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == '_'))
            return 0;
    return 1;
}

static int parse_args(int argc, char **argv, keygen_args *a)
{
    char quoted[256];
    int opt;
    opterr = 0;
    optind = 2; /* argv[1] is "keygen" */
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_DOMAIN:
            a->domain = optarg;
            break;
        case OPT_SELECTOR:
            a->selector = optarg;
            break;
        case OPT_TYPE:
            if (strcasecmp(optarg, "ed25519") == 0)
                a->alg = PIGEON_DKIM_ED25519_SHA256;
            else if (strcasecmp(optarg, "rsa") == 0)
                a->alg = PIGEON_DKIM_RSA_SHA256;
            else {
                cli_error("dkim keygen: --type must be rsa or ed25519");
                return EX_USAGE;
            }
            break;
        case OPT_BITS: {
            char *end = NULL;
            long b = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || b < 1024 || b > 4096) {
                cli_error("dkim keygen: --bits must be 1024 to 4096 (2048 recommended)");
                return EX_USAGE;
            }
            a->bits = (unsigned)b;
            break;
        }
        case OPT_OUT:
            a->out = optarg;
            break;
        case 'h':
            cli_dkim_usage_cmd(stdout);
            return 0;
        case ':':
            cli_error("dkim keygen: %s needs a value",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        default:
            cli_error("dkim keygen: unknown option %s (see pigeon help dkim)",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        }
    }
    if (!name_ok(a->domain) || !name_ok(a->selector)) {
        cli_error("dkim keygen: give --domain DOMAIN and --selector NAME (letters, digits, '-', "
                  "'.', '_')");
        return EX_USAGE;
    }
    if (optind < argc) {
        cli_error("dkim keygen: unexpected argument \"%s\"",
                  cli_shorten(argv[optind], quoted, sizeof quoted));
        return EX_USAGE;
    }
    return -1;
}

/* Writes the PEM to a new file of mode 0600 (O_EXCL: an existing key is never replaced). */
static int write_key(const char *path, const char *pem, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        cli_error("cannot create %s: %s%s", path, strerror(errno),
                  errno == EEXIST ? " (a key is never overwritten: remove it or use --out)" : "");
        return errno == EEXIST ? EX_CANTCREAT : EX_CANTCREAT;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, pem + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            cli_error("cannot write %s: %s", path, strerror(errno));
            close(fd);
            unlink(path);
            return EX_IOERR;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        cli_error("cannot write %s: %s", path, strerror(errno));
        unlink(path);
        return EX_IOERR;
    }
    return 0;
}

/* The record as a zone-file line: NAME IN TXT ( "..." "..." ). */
static void print_record(const keygen_args *a, const char *value)
{
    size_t n = strlen(value);
    printf("%s._domainkey.%s. IN TXT (", a->selector, a->domain);
    for (size_t i = 0; i < n; i += TXT_STRING_MAX) {
        size_t k = n - i < TXT_STRING_MAX ? n - i : TXT_STRING_MAX;
        printf(" \"%.*s\"", (int)k, value + i);
    }
    printf(" )\n");
}

static int keygen(int argc, char **argv)
{
    keygen_args a = {NULL, NULL, PIGEON_DKIM_RSA_SHA256, 0, NULL};
    int status = parse_args(argc, argv, &a);
    if (status >= 0)
        return status;
    char path[1024];
    if (a.out == NULL) {
        snprintf(path, sizeof path, "%s.%s.pem", a.selector, a.domain);
        a.out = path;
    }
    pigeon_dkim_key *key = NULL;
    char *pem = NULL, *value = NULL;
    size_t len = 0;
    pigeon_err e = pigeon_dkim_key_generate(a.alg, a.bits, &key);
    if (e == PIGEON_OK)
        e = pigeon_dkim_key_private_pem(key, &pem, &len);
    if (e == PIGEON_OK)
        e = pigeon_dkim_key_dns_value(key, &value);
    if (e != PIGEON_OK) {
        cli_error("dkim keygen: cannot make the key: %s", pigeon_strerror(e));
        status = EX_SOFTWARE;
    } else if ((status = write_key(a.out, pem, len)) == 0) {
        fprintf(stderr, "pigeon: wrote the private key to %s (mode 600); publish this record:\n",
                a.out);
        print_record(&a, value);
        fprintf(stderr,
                "pigeon: then set dkim_key = %s, dkim_selector = %s, dkim_domain = %s in the "
                "account\n",
                a.out, a.selector, a.domain);
    }
    if (pem != NULL)
        OPENSSL_cleanse(pem, len);
    free(pem);
    free(value);
    pigeon_dkim_key_free(key);
    return status;
}

int cli_dkim_run(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
        return keygen(argc, argv);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        cli_dkim_usage_cmd(stdout);
        return 0;
    }
    cli_error("dkim: expected \"keygen\" (see pigeon help dkim)");
    return EX_USAGE;
}

void cli_dkim_usage_cmd(FILE *out)
{
    fputs("usage: pigeon dkim keygen --domain DOMAIN --selector NAME [--type rsa|ed25519]\n"
          "                          [--bits N] [--out FILE]\n"
          "\n"
          "Makes a DKIM key pair, writes the private key to FILE (default\n"
          "NAME.DOMAIN.pem; mode 600, never over an existing file) and prints the TXT record\n"
          "to publish at NAME._domainkey.DOMAIN, split into strings of 255 octets.\n"
          "\n"
          "  --type rsa|ed25519      rsa (default; what every receiver checks) or ed25519\n"
          "                          (RFC 8463; sign with both during the transition)\n"
          "  --bits N                RSA size, 1024 to 4096 (default 2048)\n"
          "\n"
          "Then set dkim_key, dkim_selector and dkim_domain in the account (pigeon.conf(5)).\n"
          "Exit status: 0 done, 64 usage error, 73 the file exists or cannot be created,\n"
          "74 I/O error.\n",
          out);
}
