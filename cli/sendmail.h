/*
 * sendmail.h - `pigeon sendmail`, also run when the command is invoked as "sendmail".
 */
#ifndef PIGEON_CLI_SENDMAIL_H
#define PIGEON_CLI_SENDMAIL_H

#include <stdio.h>

/* Reads a message on standard input and sends it (sendmail(8) command line). argv[0] is
 * "sendmail" either way. Returns a sysexits.h status. */
int cmd_sendmail(int argc, char **argv);

/* Writes the usage text of `pigeon sendmail`. */
void cmd_sendmail_usage(FILE *out);

#endif
