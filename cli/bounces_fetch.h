/*
 * bounces_fetch.h - `pigeon bounces fetch` (bounces_fetch.c), dispatched by bounces.c.
 */
#ifndef PIGEON_CLI_BOUNCES_FETCH_H
#define PIGEON_CLI_BOUNCES_FETCH_H

#include <stdio.h>

/* argv[0] is "fetch". Returns a sysexits code. */
int cli_bounces_fetch(int argc, char **argv);
void cli_bounces_fetch_usage(FILE *out);

#endif
