/*
 * deliver.h - the one place in the command that sends mail.
 *
 * `pigeon send`, `pigeon sendmail` and the queue hand a composed message (or a raw one)
 * and the effective settings (cfg_settings: command line > account > preset > defaults)
 * to these functions. They resolve the secret, connect, send, print the result (text, or
 * one JSON object with --json), and return the exit code (sysexits.h):
 * 0 all recipients accepted, 69 permanent rejection, 75 temporary failure, 76 protocol
 * error, 77 authentication failed, 78 configuration error, 65 bad input.
 */
#ifndef PIGEON_CLI_DELIVER_H
#define PIGEON_CLI_DELIVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <getopt.h>
#include <stdio.h>

#include "config.h"
#include "pigeon/message.h"
#include "pigeon/smtp.h"

/* How to report and retry (from the command line). */
typedef struct deliver_opts {
    int verbose;                  /* -v: the masked SMTP transcript on stderr */
    int json;                     /* --json: one JSON object on stdout */
    int quiet;                    /* no success line on stdout */
    int retry_for;                /* --retry-for SECONDS: quick retries of temporary failures */
    const char *password_file;    /* --password-file PATH, or NULL */
    const char *password_command; /* --password-command CMD, or NULL */
    const char *message_id;       /* for reports of raw messages: their Message-ID, or NULL */
    int raw_8bit;                 /* a raw message holds 8-bit octets (BODY=8BITMIME) */
    const atomic_int *cancel;     /* if not NULL, a password command is stopped (and the
                                     secret refused) once it becomes nonzero: the daemon's
                                     SIGTERM */
    unsigned char *rcpt_deferred; /* deliver_raw: if not NULL, nrcpts flags set to 1 for
                                     each recipient neither accepted nor refused for good
                                     (what the queue may still deliver), else 0 */
} deliver_opts;

/* getopt_long values of the connection options shared by send, sendmail and check. */
enum cli_conn_opt {
    CLI_OPT_PROVIDER = 0x200,
    CLI_OPT_ACCOUNT,
    CLI_OPT_HOST,
    CLI_OPT_PORT,
    CLI_OPT_TLS,
    CLI_OPT_CA_FILE,
    CLI_OPT_TLS_FINGERPRINT,
    CLI_OPT_INSECURE,
    CLI_OPT_USER,
    CLI_OPT_AUTH,
    CLI_OPT_TIMEOUT,
    CLI_OPT_CONNECT_TIMEOUT,
    CLI_OPT_HELO,
    CLI_OPT_PASSWORD_FILE,
    CLI_OPT_PASSWORD_COMMAND,
    CLI_OPT_PASSWORD, /* refused: secrets never come from the command line */
    CLI_OPT_JSON,
    CLI_OPT_RETRY_FOR,
    CLI_OPT_VERBOSE,
    CLI_OPT_DKIM_KEY, /* DKIM (cli/dkim.h) */
    CLI_OPT_DKIM_SELECTOR,
    CLI_OPT_DKIM_DOMAIN,
    CLI_OPT_DKIM_ALGORITHM,
    CLI_OPT_DKIM_CANON,
    CLI_OPT_CONN_END /* first value free for a subcommand's own options */
};

/* The connection options as struct option initializers. */
#define CLI_CONN_LONGOPTS                                                                          \
    {"provider", required_argument, NULL, CLI_OPT_PROVIDER},                                       \
        {"account", required_argument, NULL, CLI_OPT_ACCOUNT},                                     \
        {"host", required_argument, NULL, CLI_OPT_HOST},                                           \
        {"port", required_argument, NULL, CLI_OPT_PORT},                                           \
        {"tls", required_argument, NULL, CLI_OPT_TLS},                                             \
        {"ca-file", required_argument, NULL, CLI_OPT_CA_FILE},                                     \
        {"tls-fingerprint", required_argument, NULL, CLI_OPT_TLS_FINGERPRINT},                     \
        {"insecure", no_argument, NULL, CLI_OPT_INSECURE},                                         \
        {"user", required_argument, NULL, CLI_OPT_USER},                                           \
        {"auth", required_argument, NULL, CLI_OPT_AUTH},                                           \
        {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT},                                     \
        {"connect-timeout", required_argument, NULL, CLI_OPT_CONNECT_TIMEOUT},                     \
        {"helo", required_argument, NULL, CLI_OPT_HELO},                                           \
        {"password-file", required_argument, NULL, CLI_OPT_PASSWORD_FILE},                         \
        {"password-command", required_argument, NULL, CLI_OPT_PASSWORD_COMMAND},                   \
        {"password", optional_argument, NULL, CLI_OPT_PASSWORD},                                   \
        {"json", no_argument, NULL, CLI_OPT_JSON},                                                 \
        {"retry-for", required_argument, NULL, CLI_OPT_RETRY_FOR},                                 \
        {"dkim-key", required_argument, NULL, CLI_OPT_DKIM_KEY},                                   \
        {"dkim-selector", required_argument, NULL, CLI_OPT_DKIM_SELECTOR},                         \
        {"dkim-domain", required_argument, NULL, CLI_OPT_DKIM_DOMAIN},                             \
        {"dkim-algorithm", required_argument, NULL, CLI_OPT_DKIM_ALGORITHM},                       \
        {"dkim-canonicalization", required_argument, NULL, CLI_OPT_DKIM_CANON},                    \
    {                                                                                              \
        "verbose", no_argument, NULL, CLI_OPT_VERBOSE                                              \
    }

/*
 * Stores one getopt_long result of the connection options ('v' counts as --verbose) into
 * cfg (with source CFG_CLI), *account and o. Returns -1 if opt is not a connection option,
 * 0 when stored, or an exit status with a one-line reason printed (EX_USAGE: a bad value,
 * or --password, which is refused because argv is visible to every user).
 */
int cli_conn_option(cfg_settings *cfg, const char **account, deliver_opts *o, int opt,
                    const char *arg);

/* Writes the option lines of the connection options, for usage texts. */
void cli_conn_usage(FILE *out);

/*
 * Turns the effective settings into SMTP options (host, port, TLS mode, CA file, pin,
 * HELO, user, AUTH mechanism, timeouts with a 10-minute total default) and resolves the
 * secret (o's --password-file / --password-command, then $PIGEON_PASSWORD, then the
 * account's sources) into *secret (wipe with secret_free(); NULL when no AUTH). Strings in
 * *so are borrowed from cfg and *secret. No transcript is set. Returns 0, or a sysexits
 * code (78) with a one-line reason printed; *secret is then NULL.
 */
int deliver_plan_opts(cfg_settings *cfg, const deliver_opts *o, pigeon_smtp_opts *so,
                      char **secret);

/* Sends a composed message with the settings in cfg. Returns a sysexits code. */
int deliver_message(cfg_settings *cfg, pigeon_message *msg, const deliver_opts *o);

/* Sends a raw message (already formatted, CRLF or LF) from a reader to the given envelope.
 * size is the message size if known, else -1. Returns a sysexits code. */
int deliver_raw(cfg_settings *cfg, const char *envelope_from, const char *const *rcpts,
                size_t nrcpts, pigeon_read_fn read, void *read_ctx, int64_t size,
                const deliver_opts *o);

/*
 * Fills in the settings not given on the command line, in two steps, because the From
 * address (needed to pick a preset) may itself come from the account:
 *  - settings_load: the configuration file ($PIGEON_CONFIG, XDG, /etc), the account
 *    (--account NAME, or the file's default; NULL for the default);
 *  - settings_finish: the provider preset (provider = NAME, or auto from from_domain, the
 *    From address's domain or NULL), then built-in defaults (port 465 -> implicit TLS,
 *    else starttls; port 465 when only implicit TLS is known, else 587) and the login
 *    (from_addr, the From address, when a secret is configured but no user).
 * settings_resolve does both. Each returns 0, or a sysexits code (78, configuration
 * error) with a one-line reason in err.
 */
int settings_load(cfg_settings *cfg, const char *account, char *err, size_t errlen);
int settings_finish(cfg_settings *cfg, const char *from_domain, const char *from_addr, char *err,
                    size_t errlen);
int settings_resolve(cfg_settings *cfg, const char *account, const char *from_domain, char *err,
                     size_t errlen);

#endif
