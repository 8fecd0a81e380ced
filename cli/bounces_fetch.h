/*
 * bounces_fetch.h - `pigeon bounces fetch` (bounces_fetch.c), dispatched by bounces.c.
 */
#ifndef PIGEON_CLI_BOUNCES_FETCH_H
#define PIGEON_CLI_BOUNCES_FETCH_H

#include <stdio.h>

/* argv[0] is "fetch". Returns a sysexits code. */
int cli_bounces_fetch(int argc, char **argv);
void cli_bounces_fetch_usage(FILE *out);

/* What one read of a mailbox found. */
typedef struct bounces_fetch_counts {
    unsigned long read;       /* messages read */
    unsigned long bounces;    /* bounces and complaints among them */
    unsigned long matched;    /* about messages of ours */
    unsigned long suppressed; /* addresses now suppressed */
} bounces_fetch_counts;

/* The daemon's bounce_check: reads the account's IMAP inbox (messages not read before),
 * records the bounces of ours, prints nothing but errors. spool_path may be NULL for the
 * default. Returns a sysexits code; out (may be NULL) gets the counts. */
int bounces_fetch_account(const char *account, const char *spool_path, bounces_fetch_counts *out);

#endif
