/*
 * main.c - the pigeon command: dispatch to subcommands.
 *
 * `pigeon COMMAND [OPTIONS]` runs the entry of the table below; each subcommand lives in
 * its own file and parses its own options. Invoked under another name (a symlink called
 * "sendmail"), the name selects the command instead, as sendmail(8) front ends expect.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"
#include "lazy/lazy.h"
#include "sendmail.h"

/* Every subcommand, in the order `pigeon --help` lists them. */
static const cli_command commands[] = {
    {"send", "compose a message and send it (or print it with --dry-run)", cli_send_run,
     cli_send_usage},
    {"sendmail", "read a message on stdin and send it, like sendmail(8)", cmd_sendmail,
     cmd_sendmail_usage},
    {"check", "diagnose the connection to a server: TLS, capabilities, AUTH", cli_check_run,
     cli_check_usage},
    {"dns", "check a sending domain's DNS: MX, SPF, DKIM, DMARC, blocklists", cli_dns_run,
     cli_dns_usage},
    {"providers", "list the built-in provider presets", cli_providers_run, cli_providers_usage},
    {"config", "show the effective settings and where each came from", cli_config_run,
     cli_config_usage},
    {"queue", "list, show, retry, delete or count the messages in the spool", cli_queue_run,
     cli_queue_usage},
    {"daemon", "deliver the spool's messages: workers, retries, rate limits, metrics",
     cli_daemon_run, cli_daemon_usage},
    {"serve", "take messages over HTTP into the spool (JSON API, keys, group commit)",
     cli_serve_run, cli_serve_usage},
    {"key", "create, list or revoke the API keys of pigeon serve", cli_key_run, cli_key_usage},
    {"webhook", "test a webhook receiver; list the webhooks and their pending events",
     cli_webhook_run, cli_webhook_usage},
    {"dkim", "make a DKIM key and print the DNS record to publish", cli_dkim_run,
     cli_dkim_usage_cmd},
    {"lint", "check a message for what spam filters and mail clients dislike", cli_lint_run,
     cli_lint_usage},
    {"suppress", "list, add, remove, import or export suppressed addresses", cli_suppress_run,
     cli_suppress_usage},
    {"bounces", "classify bounces, complaints and auto-replies (DSN, ARF, NDRs)", cli_bounces_run,
     cli_bounces_usage},
    {"help", "show the usage of pigeon or of one command", cli_help_run, cli_help_usage},
};

/* Program names that select a command by themselves (argv[0]'s base name -> command). */
static const struct {
    const char *argv0;   /* the name we are invoked as */
    const char *command; /* the command it runs, with the whole argv */
} aliases[] = {
    {"sendmail", "sendmail"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const cli_command *cli_command_find(const char *name)
{
    for (size_t i = 0; i < COUNT(commands); i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

void cli_command_list(FILE *out)
{
    for (size_t i = 0; i < COUNT(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

/* A command's status, after saying which optional library it could not load if one
 * failed where the library's call could only return "not supported" (lib/lazy/lazy.h:
 * libpq, gumbo, cmark-gfm, c-ares and libidn2 are loaded by the feature that needs them). */
static int finish(int status)
{
    const char *failure = pg_lazy_unreported();
    if (failure[0] != '\0' && status != 0)
        cli_error("%s", failure);
    return status;
}

/* A library call whose library cannot be loaded (lib/lazy: libcrypto for a digest or a
 * key, where the call has no error to return): said, and the command stops with 69, as
 * when a feature's hook fails. */
static void lazy_fatal(const char *message)
{
    cli_error("%s", message);
    exit(EX_UNAVAILABLE);
}

/* Runs the command an alias names; argv is passed whole (argv[0] is the alias). */
static int run_alias(const char *command, int argc, char **argv)
{
    const cli_command *cmd = cli_command_find(command);
    if (cmd == NULL) {
        cli_error("%s mode is not available in this build yet", command);
        return EX_UNAVAILABLE;
    }
    pg_lazy_set_fatal(lazy_fatal);
    return finish(cmd->run(argc, argv));
}

int main(int argc, char **argv)
{
    const char *self = argc > 0 ? cli_base_name(argv[0]) : "pigeon";
    for (size_t i = 0; i < COUNT(aliases); i++) {
        if (strcmp(self, aliases[i].argv0) == 0)
            return run_alias(aliases[i].command, argc, argv);
    }
    if (argc < 2) {
        cli_error("missing command (see pigeon --help)");
        return EX_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cli_help_overview(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("pigeon %s\n", PIGEON_VERSION);
        return 0;
    }
    const cli_command *cmd = cli_command_find(argv[1]);
    if (cmd == NULL) {
        char quoted[256];
        cli_error("unknown %s \"%s\" (see pigeon --help)", argv[1][0] == '-' ? "option" : "command",
                  cli_shorten(argv[1], quoted, sizeof quoted));
        return EX_USAGE;
    }
    pg_lazy_set_fatal(lazy_fatal);
    return finish(cmd->run(argc - 1, argv + 1));
}
