/*
 * sent_copy.h - `pigeon send --save-sent`: deliver, then file the exact bytes sent in the
 * account's Sent folder over IMAP (sent_copy.c).
 */
#ifndef PIGEON_CLI_SENT_COPY_H
#define PIGEON_CLI_SENT_COPY_H

#include "cli.h"
#include "config.h"
#include "deliver.h"

/* The folder to save in from save_sent (command line > account): NULL when off ("no" or
 * unset), "" for the folder found by its \Sent attribute ("yes"), else the name. */
const char *sent_copy_folder(const cfg_settings *cfg);

/* Stores --save-sent[=FOLDER] (arg NULL: "yes"), --imap-host or --imap-port (key k) with
 * the command line's precedence, checked as the file's values are. Returns 0, or -1 with
 * the reason printed. */
int sent_copy_option(cfg_settings *cfg, enum cfg_key k, const char *arg);

/* "Bcc: a@x, b@y" CRLF for the sender's copy (addr-specs, ASCII domains), or "", from
 * c's --bcc (c may be NULL); malloc'd, or NULL without memory. */
char *sent_copy_bcc_field(const cli_compose *c);

/* The bytes of a copy for pigeon_imap_append's reader: prefix (the Bcc field, or ""),
 * then the file fd (the daemon's and the merge's copies in Sent). */
typedef struct sent_copy_src {
    const char *prefix;
    size_t len, pos; /* prefix's length, and how much of it was read */
    int fd;
} sent_copy_src;

/* Reads the next bytes of a sent_copy_src (ctx). Returns 0 or -1, as cli_fd_read. */
int sent_copy_src_read(void *ctx, void *buf, size_t cap, size_t *n);

/* Sends msg (DKIM-signed when configured) and, once delivered, saves the copy (Bcc from c,
 * which may be NULL). Returns the delivery's sysexits code: a failure to save is only a
 * warning on stderr. */
int sent_copy_send(cfg_settings *cfg, pigeon_message *msg, const cli_compose *c,
                   const deliver_opts *o, const char *folder);

#endif
