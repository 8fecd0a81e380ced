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

#include <stdatomic.h>
#include <stddef.h>

/* Reads the first line of a file (without its line ending) into a malloc'd string.
 * Returns NULL with a one-line reason in err. The file must not be group/world-readable
 * when strict is nonzero (the chmod that fixes it is in the reason). */
char *secret_from_file(const char *path, int strict, char *err, size_t errlen);

/* The deadline of a password command when none is configured (password_command_timeout). */
#define SECRET_COMMAND_TIMEOUT_MS 30000

/*
 * Runs cmd with /bin/sh -c in its own process group, standard input from /dev/null, and
 * returns the first line of its output (malloc'd; what follows is never read). Errors
 * (NULL, with a one-line reason naming the command in err): it printed nothing, exited
 * non-zero or was killed (death by SIGPIPE after its first line is fine: we stopped
 * reading), a first line over 8 KiB, no line and exit within timeout_ms (<= 0: 30 s) or
 * *cancel (may be NULL) became nonzero: the whole group is then killed (SIGTERM, then
 * SIGKILL). Its stderr passes through. Safe to call from a thread of a process that
 * blocks signals (the child's mask and dispositions are reset).
 */
char *secret_from_command(const char *cmd, int timeout_ms, const atomic_int *cancel, char *err,
                          size_t errlen);

/* Wipes and frees. NULL is a no-op. */
void secret_free(char *secret);

#endif
