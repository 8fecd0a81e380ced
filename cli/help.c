/*
 * help.c - `pigeon help [COMMAND]` and `pigeon --help`: the usage texts.
 *
 * Usage goes to standard output with status 0 when asked for; an unknown command is a
 * usage error (one line on standard error, EX_USAGE).
 */
#include <string.h>
#include <sysexits.h>

#include "cli.h"

void cli_help_overview(FILE *out)
{
    fputs("usage: pigeon COMMAND [OPTIONS]\n"
          "       pigeon help [COMMAND]\n"
          "       pigeon --version\n"
          "\n"
          "pigeon composes Internet mail (MIME, RFC 5322) and sends it over SMTP.\n"
          "\n"
          "Commands:\n",
          out);
    cli_command_list(out);
    fputs("\n", out);
    cli_send_usage(out);
}

void cli_help_usage(FILE *out)
{
    fputs("usage: pigeon help [COMMAND]\n"
          "\n"
          "Shows the overview of pigeon, or the usage of one command with every option.\n",
          out);
}

int cli_help_run(int argc, char **argv)
{
    if (argc < 2) {
        cli_help_overview(stdout);
        return 0;
    }
    if (argc > 2) {
        cli_error("help: takes one command name (see pigeon --help)");
        return EX_USAGE;
    }
    const cli_command *cmd = cli_command_find(argv[1]);
    if (cmd == NULL) {
        char quoted[256];
        cli_error("help: unknown command \"%s\" (see pigeon --help)",
                  cli_shorten(argv[1], quoted, sizeof quoted));
        return EX_USAGE;
    }
    cmd->usage(stdout);
    return 0;
}
