/*
 * send.c - `pigeon send`: compose a message from options and send it, or with --dry-run
 * write it to standard output (CRLF, as it would go after DATA, RFC 5321 4.1.1.4, before
 * dot-stuffing) and send nothing.
 *
 * The flow is parse options -> settings from the configuration file (which may give the
 * From) -> compose (compose.c) -> settings completed from the From domain (preset,
 * defaults) -> deliver_message() (deliver.c), which reports and picks the exit status.
 *
 * With --queue the composed message is stored in the spool instead (spoolpath.c) with
 * its envelope and account name, and the queue id is printed only once the store is
 * durable; `pigeon daemon` delivers it later with the account's settings.
 */
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"
#include "deliver.h"
#include "merge.h"
#include "dkim.h"
#include "lint.h"
#include "queue.h"
#include "sent_copy.h"
#include "suppress.h"
#include "tpl.h"
#include "verp.h"

/* getopt_long values of send's own options. */
enum send_opt {
    OPT_DRY_RUN = CLI_OPT_CONN_END,
    OPT_QUEUE,
    OPT_LINT,
    OPT_IGNORE_SUPPRESSION,
    OPT_SAVE_SENT, /* --save-sent[=FOLDER], --imap-host, --imap-port (sent_copy.h) */
    OPT_IMAP_HOST,
    OPT_IMAP_PORT,
    OPT_VERP, /* --verp, --verp-key-file (verp.h) */
    OPT_VERP_KEY_FILE,
};

/* How to send, beyond what the message is. */
typedef struct send_opts {
    int dry_run;                /* --dry-run: write the message to stdout, send nothing */
    int queue;                  /* --queue: store in the spool for `pigeon daemon` */
    int lint;                   /* --lint: check the message (cli/lint.c), send nothing */
    int ignore_suppression;     /* --ignore-suppression: mail suppressed recipients too */
    const char *spool;          /* --spool PATH, or NULL for the default */
    cfg_settings cfg;           /* connection settings: command line, then file, preset, defaults */
    const char *account;        /* --account NAME, or NULL for the default account */
    deliver_opts deliver;       /* reporting and secret options */
    cli_tpl tpl;                /* templates: --var, --vars, --unsubscribe (tpl.h) */
    merge_opts merge;           /* mail merge: --to-file and its options (merge.h) */
    const cli_compose *compose; /* the message options (Bcc for the sent copy) */
} send_opts;

/* Returned by parse_args when the command should go on. */
#define CONTINUE (-1)

static const struct option longopts[] = {
    CLI_COMPOSE_LONGOPTS,
    CLI_CONN_LONGOPTS,
    CLI_TPL_LONGOPTS,
    CLI_MERGE_LONGOPTS,
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"queue", no_argument, NULL, OPT_QUEUE},
    {"lint", no_argument, NULL, OPT_LINT},
    {"ignore-suppression", no_argument, NULL, OPT_IGNORE_SUPPRESSION},
    {"save-sent", optional_argument, NULL, OPT_SAVE_SENT},
    {"imap-host", required_argument, NULL, OPT_IMAP_HOST},
    {"imap-port", required_argument, NULL, OPT_IMAP_PORT},
    {"verp", no_argument, NULL, OPT_VERP},
    {"verp-key-file", required_argument, NULL, OPT_VERP_KEY_FILE},
    {"spool", required_argument, NULL, CLI_OPT_SPOOL},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_args(int argc, char **argv, cli_compose *c, send_opts *so);
static int write_dry_run(pigeon_message *msg);
static int send_message(pigeon_message *msg, send_opts *so);
static int queue_message(pigeon_message *msg, send_opts *so);

int cli_send_run(int argc, char **argv)
{
    cli_compose c;
    send_opts so;
    pigeon_message *msg = NULL;
    char err[600];
    memset(&so, 0, sizeof so);
    cli_compose_init(&c);
    cli_tpl_init(&so.tpl);
    c.tpl = &so.tpl;
    so.compose = &c;
    int status = parse_args(argc, argv, &c, &so);
    if (status != CONTINUE)
        goto done;
    /* The account may supply the From address, so the file is read before composing. */
    if ((status = settings_load(&so.cfg, so.account, err, sizeof err)) != 0) {
        cli_error("%s", err);
        goto done;
    }
    if (c.from == NULL)
        c.from = cfg_get(&so.cfg, K_FROM);
    if (so.merge.to_file != NULL) {
        merge_env env = {&c,       &so.tpl,  &so.cfg,    &so.deliver,
                         so.spool, so.queue, so.dry_run, so.ignore_suppression};
        status = merge_run(&so.merge, &env);
        goto done;
    }
    if ((status = cli_compose_build(&c, &msg)) != 0)
        goto done;
    /* Suppressed recipients leave the envelope, each named on stderr (suppress.h). */
    if (!so.lint && !so.dry_run && !so.ignore_suppression &&
        (status = cli_suppress_message(so.spool, so.cfg.account, msg, "send", NULL)) != 0)
        goto done;
    if (so.lint)
        status = cli_lint_send(msg, cfg_get(&so.cfg, K_DKIM_DOMAIN));
    else if (so.dry_run && (status = cli_dkim_send(&so.cfg, msg, &so.deliver, 1)) < 0)
        status = write_dry_run(msg); /* -1: no DKIM configured */
    else if (so.dry_run)
        ;
    else if (so.queue)
        status = queue_message(msg, &so);
    else
        status = send_message(msg, &so);
done:
    pigeon_message_free(msg);
    cli_compose_cleanup(&c);
    cli_tpl_cleanup(&so.tpl);
    cfg_cleanup(&so.cfg);
    return status;
}

/* Reads the options into c and so; returns CONTINUE, or an exit status (help printed:
 * 0; usage error printed: EX_USAGE). */
static int parse_args(int argc, char **argv, cli_compose *c, send_opts *so)
{
    char quoted[256];
    int opt;
    opterr = 0; /* our own one-line messages, with "pigeon:" rather than argv[0] */
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":hv", longopts, NULL)) != -1) {
        int status = cli_compose_option(c, opt, optarg);
        if (status < 0)
            status = cli_conn_option(&so->cfg, &so->account, &so->deliver, opt, optarg);
        if (status < 0)
            status = cli_tpl_option(&so->tpl, opt, optarg);
        if (status < 0)
            status = merge_option(&so->merge, opt, optarg);
        if (status > 0)
            return status;
        if (status == 0)
            continue;
        switch (opt) {
        case OPT_DRY_RUN:
            so->dry_run = 1;
            break;
        case OPT_QUEUE:
            so->queue = 1;
            break;
        case OPT_LINT:
            so->lint = 1;
            break;
        case OPT_SAVE_SENT:
        case OPT_IMAP_HOST:
        case OPT_IMAP_PORT:
            if (sent_copy_option(&so->cfg,
                                 opt == OPT_SAVE_SENT   ? K_SAVE_SENT
                                 : opt == OPT_IMAP_HOST ? K_IMAP_HOST
                                                        : K_IMAP_PORT,
                                 optarg) != 0)
                return EX_USAGE;
            break;
        case OPT_VERP:
        case OPT_VERP_KEY_FILE:
            if (cli_verp_option(&so->cfg, opt == OPT_VERP_KEY_FILE, optarg) != 0)
                return EX_USAGE;
            break;
        case OPT_IGNORE_SUPPRESSION:
            so->ignore_suppression = 1;
            break;
        case CLI_OPT_SPOOL:
            so->spool = optarg;
            break;
        case 'h':
            cli_send_usage(stdout);
            return 0;
        case ':':
            cli_error("send: %s needs a value (see pigeon help send)",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        default:
            cli_error("send: unknown option %s (see pigeon help send)",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("send: unexpected argument \"%s\" (recipients go in --to, --cc, --bcc)",
                  cli_shorten(argv[optind], quoted, sizeof quoted));
        return EX_USAGE;
    }
    merge_env env = {c,         &so->tpl,  &so->cfg,    &so->deliver,
                     so->spool, so->queue, so->dry_run, so->ignore_suppression};
    int status = merge_check(&so->merge, &env);
    return status != 0 ? status : CONTINUE;
}

static int write_dry_run(pigeon_message *msg)
{
    pigeon_err err = pigeon_message_write_fd(msg, NULL, STDOUT_FILENO);
    if (err != PIGEON_OK) {
        cli_error("cannot write the message: %s", pigeon_message_error(msg));
        return cli_exit_status(err);
    }
    return 0;
}

/* Completes the settings (preset, defaults) from the From address and sends. */
static int send_message(pigeon_message *msg, send_opts *so)
{
    char err[600];
    char *from_addr = NULL;
    const pigeon_mailbox *from = pigeon_message_envelope_from(msg);
    if (from != NULL && pigeon_mailbox_addr_spec(from, 1, &from_addr) != PIGEON_OK)
        from_addr = NULL;
    int status = settings_finish(&so->cfg, from ? from->domain : NULL, from_addr, err, sizeof err);
    free(from_addr);
    if (status != 0) {
        cli_error("%s", err);
        return status;
    }
    const char *folder = sent_copy_folder(&so->cfg);
    if (folder != NULL)
        return sent_copy_send(&so->cfg, msg, so->compose, &so->deliver, folder);
    status = cli_dkim_send(&so->cfg, msg, &so->deliver, 0); /* -1: no DKIM configured */
    return status >= 0 ? status : deliver_message(&so->cfg, msg, &so->deliver);
}

/* Stores the message for `pigeon daemon`; the account's settings are read again then. */
static int queue_message(pigeon_message *msg, send_opts *so)
{
    if (so->cfg.v[K_SAVE_SENT].source == CFG_CLI)
        cli_error("warning: --save-sent applies to messages sent now; the daemon files copies "
                  "of queued ones for accounts with save_sent = yes");
    if (so->cfg.v[K_VERP].source == CFG_CLI || so->cfg.v[K_VERP_KEY_FILE].source == CFG_CLI)
        cli_error("warning: --verp applies to messages sent now; the daemon sends queued ones "
                  "with the account's verp and verp_key_file");
    char err[600];
    char account[sizeof so->cfg.account];
    if (so->deliver.password_file != NULL || so->deliver.password_command != NULL) {
        cli_error("send: --password-file and --password-command cannot be queued: the daemon "
                  "uses the account's password source");
        return EX_USAGE;
    }
    int status = queue_account_of(&so->cfg, account, sizeof account, err, sizeof err);
    if (status == 0) {
        /* Resolving now catches a broken account before the message waits in the spool. */
        const pigeon_mailbox *from = pigeon_message_envelope_from(msg);
        status = settings_finish(&so->cfg, from ? from->domain : NULL, NULL, err, sizeof err);
    }
    if (status != 0) {
        cli_error("send: %s", err);
        return status;
    }
    return queue_store_message(so->spool, account, msg, so->deliver.json);
}

void cli_send_usage(FILE *out)
{
    fputs("usage: pigeon send --from ADDRESS --to LIST [OPTIONS]\n"
          "       pigeon send --from ADDRESS --to-file LIST.csv [OPTIONS]\n"
          "\n"
          "Composes a message and sends it; with --dry-run writes it to standard output\n"
          "(CRLF line endings) and sends nothing. Bcc recipients never appear in it.\n"
          "\n",
          out);
    cli_compose_usage(out);
    cli_tpl_usage(out);
    merge_usage(out);
    cli_conn_usage(out);
    fputs("Sending:\n"
          "  --dry-run               write the message to standard output, send nothing\n"
          "  --lint                  check the message instead of sending it (see pigeon\n"
          "                          help lint; exit 0 clean, 1 warnings, 2 errors)\n"
          "  --queue                 store it in the spool and print its queue id (once it\n"
          "                          is on disk); `pigeon daemon` sends it later with the\n"
          "                          account's settings (needs an account; no connection\n"
          "                          options besides --account)\n"
          "  --ignore-suppression    mail recipients on the suppression list too (see\n"
          "                          pigeon help suppress); without it each is left out\n"
          "                          of the envelope with a warning, and when all are,\n"
          "                          nothing is sent (exit 65)\n"
          "  --save-sent[=FOLDER]    after delivery, put the exact bytes sent (with the\n"
          "                          Bcc field, in this copy only) in the account's Sent\n"
          "                          folder over IMAP, flagged \\Seen: the folder marked\n"
          "                          \\Sent (RFC 6154), or FOLDER (save_sent = yes|FOLDER);\n"
          "                          a failure to save is a warning, never a resend\n"
          "  --verp                  VERP: the envelope sender of each recipient becomes\n"
          "                          user+<token>@domain (the From stays), each recipient\n"
          "                          in its own SMTP transaction, so that bounces fetch\n"
          "                          matches a bounce to its recipient (verp = yes)\n"
          "  --verp-key-file F       the token's HMAC key, at least 16 octets\n"
          "                          (verp_key_file; the same as bounces fetch's)\n"
          "  --imap-host HOST, --imap-port PORT\n"
          "                          the account's IMAP server (default: the preset's,\n"
          "                          port 993 implicit TLS, else STARTTLS)\n"
          "  --spool PATH            the spool file (default\n"
          "                          $XDG_STATE_HOME/pigeon/spool.db, ~/.local/state/...)\n"
          "  -h, --help              show this help\n"
          "\n"
          "Exit status (sysexits.h): 0 every recipient accepted (or written), 64 usage\n"
          "error, 65 invalid input (address, header, CR/LF injection, invalid UTF-8),\n"
          "66 an input file cannot be opened, 69 rejected permanently, 74 I/O error,\n"
          "75 temporary failure (4xx, timeout, connection refused: try again later),\n"
          "76 protocol error, 77 authentication failed, 78 configuration error.\n",
          out);
}
