/*
 * verp.h - sending with VERP (verp.c): `pigeon send --verp`, the mail merge, sendmail and
 * the daemon make the envelope sender of each recipient user+<token>@domain
 * (pigeon_bounce_verp_encode, the token authenticated with the account's VERP key), so
 * that `pigeon bounces fetch` matches a bounce to its recipient even when the bounce's
 * body names none. The From header is unchanged; each recipient gets its own SMTP
 * transaction (pigeon_smtp_sender_fn).
 */
#ifndef PIGEON_CLI_VERP_H
#define PIGEON_CLI_VERP_H

#include <stddef.h>

#include "config.h"
#include "pigeon/smtp.h"

/* Stores --verp (is_key_file 0, arg NULL) or --verp-key-file PATH (is_key_file 1) with the
 * command line's precedence. Returns 0, or -1 with the reason printed. */
int cli_verp_option(cfg_settings *cfg, int is_key_file, const char *arg);

/*
 * When the settings ask for VERP (verp = yes, or --verp), sets so's rcpt_sender to the
 * VERP encoder keyed with verp_key_file's key (at least 16 octets, read as
 * `bounces fetch --verp-key-file` reads it). Keys stay loaded for the life of the process
 * (one per file, shared by the daemon's threads, wiped at exit). Returns 0 (also when VERP
 * is off), or EX_CONFIG with the reason printed (no key file, unreadable, too short).
 */
int cli_verp_plan(const cfg_settings *cfg, pigeon_smtp_opts *so);

/* The account's VERP key (verp_key_file) for matching bounces, when the command line gave
 * none: 0 with *key NULL when none is configured, 0 with a malloc'd copy in *key / *len
 * (wipe with OPENSSL_cleanse before free), or EX_CONFIG with the reason printed. */
int cli_verp_account_key(const cfg_settings *cfg, const char *who, char **key, size_t *len);

#endif
