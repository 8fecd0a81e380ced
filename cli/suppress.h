/*
 * suppress.h - the command's side of the suppression list (pigeon/suppress.h): the
 * `pigeon suppress` subcommand (suppress.c) and the checks every sending path makes
 * (suppress_check.c): send, sendmail, the mail merge, serve and the daemon skip a
 * suppressed recipient and say so, naming it and why.
 */
#ifndef PIGEON_CLI_SUPPRESS_H
#define PIGEON_CLI_SUPPRESS_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "pigeon/message.h"
#include "pigeon/spool.h"
#include "pigeon/suppress.h"

/* The outcome text a suppressed recipient is recorded with in the queue and reported
 * with by every path ("suppressed: hard-bounce 5.1.1 since 2026-11-30"). */
#define CLI_SUPPRESSED "suppressed"

/* The soft-bounce policy of the account in cfg (soft_bounce_limit, soft_bounce_days;
 * defaults 3 and 7). */
void cli_suppress_policy(const cfg_settings *cfg, pigeon_suppress_policy *p);

/* "hard-bounce 5.1.1 since 2026-11-30 (global list)" into out (n bytes); returns out. */
const char *cli_suppress_why(const pigeon_suppress_hit *hit, char *out, size_t n);

/* Prints "pigeon: WHO: ADDRESS is suppressed (WHY): not sent" on standard error. */
void cli_suppress_warn(const char *who, const char *address, const pigeon_suppress_hit *hit);

/*
 * Checks n bare addresses against the list of account (NULL or "": the global list only)
 * in the spool at spool_opt (NULL: the default path). No spool file yet means nothing is
 * suppressed. hits[i] for rcpts[i]; *count suppressed. Returns 0, or a sysexits code
 * with the reason printed (a spool that cannot be read: the caller must not send
 * blindly).
 */
int cli_suppress_lookup(const char *spool_opt, const char *account, const char *const *rcpts,
                        size_t n, pigeon_suppress_hit *hits, size_t *count);

/* A handle for many checks (the mail merge): the spool opened once. */
typedef struct cli_suppressor {
    pigeon_spool *spool; /* the spool, or NULL when there is none (nothing suppressed) */
    int own;             /* the handle was opened here (closed by cli_suppressor_close) */
    const char *account; /* the account checked (borrowed) */
} cli_suppressor;

/* Opens the checks of account: through shared (borrowed; e.g. the merge's batch) when not
 * NULL, else by opening the spool at spool_opt read-only. Returns 0 or a sysexits code
 * (printed). */
int cli_suppressor_open(cli_suppressor *s, const char *spool_opt, pigeon_spool *shared,
                        const char *account);
void cli_suppressor_close(cli_suppressor *s);

/*
 * Takes the suppressed recipients out of msg's envelope (each warned about as who, unless
 * quiet), and writes "ADDRESS is suppressed (WHY)" of the first into why (may be NULL).
 * Returns 0, or a sysexits code (printed). *dropped the number taken out; when it equals
 * the count before, the envelope was left untouched and nothing may be sent.
 */
int cli_suppressor_filter(cli_suppressor *s, pigeon_message *msg, const char *who, int quiet,
                          size_t *dropped, char *why, size_t whylen);

/*
 * Takes the suppressed recipients out of msg's envelope, printing one warning line for
 * each (who: "send"). Returns 0, EX_DATAERR when every recipient is suppressed (printed:
 * nothing is sent), or a sysexits code from the lookup. *dropped (may be NULL) the
 * number taken out.
 */
int cli_suppress_message(const char *spool_opt, const char *account, pigeon_message *msg,
                         const char *who, size_t *dropped);

#endif
