/*
 * lint.h - `pigeon lint` and `pigeon send --lint` (cli/lint.c): the library's findings
 * (pigeon/lint.h) printed with their fixes, optionally with SpamAssassin's score.
 */
#ifndef PIGEON_CLI_LINT_H
#define PIGEON_CLI_LINT_H

#include <stddef.h>

#include "pigeon/lint.h"
#include "pigeon/message.h"

/* How to check and report. */
typedef struct cli_lint_opts {
    pigeon_lint_opts lint; /* bulk, the d= to expect */
    int json;              /* one JSON object on stdout */
    int spamassassin;      /* also run spamassassin -L -t */
} cli_lint_opts;

/* Checks msg[0..len) and prints the findings. Returns 0 (clean), 1 (warnings), 2 (errors),
 * or a sysexits.h status (69 when spamassassin cannot be run, 71 out of memory). */
int cli_lint_check(const char *msg, size_t len, const cli_lint_opts *o);

/* `pigeon send --lint`: checks the composed message (dkim_domain: the configured d=, or
 * NULL); returns as cli_lint_check(). */
int cli_lint_send(pigeon_message *msg, const char *dkim_domain);

#endif
