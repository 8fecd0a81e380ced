/*
 * connopt.c - the connection options shared by send, sendmail and check.
 *
 * Values are checked here, where the user can be told which option is wrong, and stored
 * in the settings with the command line as their origin (it beats the configuration file
 * and the provider preset).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "cli.h"
#include "deliver.h"
#include "dkim.h"

/* Parses a decimal integer in [min, max]; returns 0 or -1. */
static int parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int store(cfg_settings *cfg, enum cfg_key k, const char *v, const char *flag)
{
    if (cfg_set(cfg, k, v, CFG_CLI, flag) != 0) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    return 0;
}

/* Checks the value with the validator the configuration file uses too (config_check.c),
 * then stores it. */
static int checked_store(cfg_settings *cfg, enum cfg_key k, const char *v, const char *flag)
{
    char why[200], quoted[128];
    if (cfg_check(k, v, why, sizeof why) != 0) {
        cli_error("invalid %s \"%s\": %s", flag, cli_shorten(v, quoted, sizeof quoted), why);
        return EX_USAGE;
    }
    return store(cfg, k, v, flag);
}

int cli_conn_option(cfg_settings *cfg, const char **account, deliver_opts *o, int opt,
                    const char *arg)
{
    char quoted[128];
    long n;
    switch (opt) {
    case CLI_OPT_PROVIDER:
        return checked_store(cfg, K_PROVIDER, arg, "--provider");
    case CLI_OPT_ACCOUNT:
        *account = arg;
        return 0;
    case CLI_OPT_HOST:
        return checked_store(cfg, K_HOST, arg, "--host");
    case CLI_OPT_PORT:
        return checked_store(cfg, K_PORT, arg, "--port");
    case CLI_OPT_TLS:
        return checked_store(cfg, K_TLS, arg, "--tls");
    case CLI_OPT_CA_FILE:
        return checked_store(cfg, K_CA_FILE, arg, "--ca-file");
    case CLI_OPT_TLS_FINGERPRINT:
        return checked_store(cfg, K_TLS_FINGERPRINT, arg, "--tls-fingerprint");
    case CLI_OPT_INSECURE:
        return store(cfg, K_INSECURE, "yes", "--insecure");
    case CLI_OPT_USER:
        return checked_store(cfg, K_USER, arg, "--user");
    case CLI_OPT_AUTH:
        return checked_store(cfg, K_AUTH, arg, "--auth");
    case CLI_OPT_TIMEOUT:
        return checked_store(cfg, K_TIMEOUT, arg, "--timeout");
    case CLI_OPT_CONNECT_TIMEOUT:
        return checked_store(cfg, K_CONNECT_TIMEOUT, arg, "--connect-timeout");
    case CLI_OPT_HELO:
        return checked_store(cfg, K_HELO, arg, "--helo");
    case CLI_OPT_PASSWORD_FILE:
        o->password_file = arg;
        return 0;
    case CLI_OPT_PASSWORD_COMMAND:
        o->password_command = arg;
        return 0;
    case CLI_OPT_PASSWORD:
        cli_error("--password is not accepted: the command line is visible to every user "
                  "of this machine; use PIGEON_PASSWORD, --password-file or "
                  "--password-command");
        return EX_USAGE;
    case CLI_OPT_JSON:
        o->json = 1;
        return 0;
    case CLI_OPT_RETRY_FOR:
        if (parse_long(arg, 0, 86400, &n) != 0) {
            cli_error("invalid --retry-for \"%s\": expected seconds (0-86400)",
                      cli_shorten(arg, quoted, sizeof quoted));
            return EX_USAGE;
        }
        o->retry_for = (int)n;
        return 0;
    case CLI_OPT_VERBOSE:
    case 'v':
        o->verbose++;
        return 0;
    default:
        return cli_dkim_option(cfg, opt, arg);
    }
}

void cli_conn_usage(FILE *out)
{
    fputs("Server (command line > account > provider preset > defaults):\n"
          "  --provider NAME         a preset (pigeon providers), or auto from --from\n"
          "  --account NAME          an account of the configuration file\n"
          "  --host HOST             the submission server\n"
          "  --port PORT             its port (465: implicit TLS; else STARTTLS)\n"
          "  --tls MODE              implicit, starttls or none (none refuses AUTH)\n"
          "  --ca-file PATH          trust these CA certificates (PEM)\n"
          "  --tls-fingerprint HEX   also require this SHA-256 certificate fingerprint\n"
          "  --insecure              skip certificate verification (says so loudly)\n"
          "  --user LOGIN            the login, usually the full address\n"
          "  --auth MECH             plain, login, cram-md5, xoauth2 (default: strongest)\n"
          "  --password-file PATH    read the password from this file's first line\n"
          "  --password-command CMD  run CMD, use its first output line as the password\n"
          "                          (or set PIGEON_PASSWORD; never on the command line)\n"
          "  --timeout SECONDS       overall deadline\n"
          "  --connect-timeout SECS  deadline of each TCP connect\n"
          "  --helo NAME             the name sent in EHLO\n"
          "Reporting:\n"
          "  -v, --verbose           the SMTP transcript on stderr, credentials masked\n"
          "  --json                  one JSON object with the result on stdout\n"
          "  --retry-for SECONDS     retry temporary failures for up to SECONDS\n",
          out);
    cli_dkim_usage(out);
}
