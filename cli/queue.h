/*
 * queue.h - the command's side of the spool (pigeon/spool.h): where the spool file lives,
 * putting messages in it (`pigeon send --queue`, `pigeon sendmail` when the server cannot
 * be reached), and the shared pieces of `pigeon queue` and `pigeon daemon`.
 *
 * A queued message carries the name of the account it is sent with, not the settings: the
 * daemon reads the account from the configuration file when it delivers, so a password
 * change or a new server takes effect for mail already queued (after SIGHUP).
 */
#ifndef PIGEON_CLI_QUEUE_H
#define PIGEON_CLI_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "pigeon/message.h"
#include "pigeon/spool.h"

/* getopt_long value of --spool, shared by send, sendmail, queue and daemon. */
#define CLI_OPT_SPOOL 0x300

/*
 * Writes the spool file's path to out (n bytes): opt when given, else
 * $XDG_STATE_HOME/pigeon/spool.db, else $HOME/.local/state/pigeon/spool.db. With create,
 * missing directories of the default path are created with mode 0700 (the spool holds
 * mail). Returns 0, or a sysexits code with a one-line reason printed.
 */
int queue_spool_path(const char *opt, int create, char *out, size_t n);

/* Opens the spool (path as above; flags of pigeon_spool_open()). Returns 0 with *out set,
 * or a sysexits code with the reason printed (EX_NOINPUT: no spool yet). */
int queue_spool_open(const char *opt, unsigned flags, pigeon_spool **out);

/*
 * Checks that a message may be queued for later delivery with cfg's settings: the
 * settings must come from an account of the configuration file (the daemon reads them
 * again by name), not from the command line. Writes the account name to account (n
 * bytes). Returns 0, or EX_USAGE / EX_CONFIG with a one-line reason in err.
 */
int queue_account_of(const cfg_settings *cfg, char *account, size_t n, char *err, size_t errlen);

/*
 * Stores a composed message (its envelope: the Sender or From, and every To, Cc and Bcc)
 * for account, and only after the store is durable reports its queue id: "queued ID
 * <message-id>" on stdout, or {"status":"queued","queue_id":...,"message_id":...} with
 * json. Returns 0 or a sysexits code (printed).
 */
int queue_store_message(const char *spool_opt, const char *account, pigeon_message *msg, int json);

/*
 * Stores a formatted message read from read(ctx) until the end, for account, to the
 * envelope from (bare address, "" for <>) and rcpts (n >= 1 bare addresses). message_id
 * (may be NULL) is kept for display. The id is written to id once durable. Returns 0 or
 * a sysexits code (printed).
 */
int queue_store_raw(const char *spool_opt, const char *account, const char *from,
                    const char *const *rcpts, size_t n, const char *message_id, pigeon_read_fn read,
                    void *ctx, char id[PIGEON_SPOOL_ID_LEN + 1]);

#endif
