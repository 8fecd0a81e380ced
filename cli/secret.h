/*
 * secret.h - getting the password (or OAuth token) without it ever being on a command line.
 *
 * Sources, in the order `pigeon send` consults them: --password-file PATH,
 * --password-command CMD (its first output line, like msmtp's passwordeval), the
 * $PIGEON_PASSWORD environment variable, then the account's password / password_file /
 * password_command. The secret is kept in memory only as long as needed and wiped.
 */
#ifndef PIGEON_CLI_SECRET_H
#define PIGEON_CLI_SECRET_H

#include <stddef.h>

/* Reads the first line of a file (without its line ending) into a malloc'd string.
 * Returns NULL with a one-line reason in err. The file must not be group/world-readable
 * when strict is nonzero (the chmod that fixes it is in the reason). */
char *secret_from_file(const char *path, int strict, char *err, size_t errlen);

/* Runs cmd with /bin/sh -c, returns the first line of its output (malloc'd). A command
 * that fails (nonzero exit) or prints nothing is an error. Its stderr passes through. */
char *secret_from_command(const char *cmd, char *err, size_t errlen);

/* Wipes and frees. NULL is a no-op. */
void secret_free(char *secret);

#endif
