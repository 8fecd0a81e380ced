/*
 * dkim.h - DKIM in the pigeon command: the settings (dkim_domain, dkim_selector, dkim_key,
 * dkim_algorithm, dkim_canonicalization, dkim_expire and their options), and signing what
 * send, sendmail and the daemon put on the wire (dkim_sign.c); `pigeon dkim keygen`
 * (dkim.c).
 *
 * The signature is computed over exactly the bytes that are sent: the message is read once
 * through the signer (a composed message is written to an unlinked temporary file meanwhile,
 * a spooled one is read from the spool), then sent as a raw stream behind its
 * DKIM-Signature fields. Memory stays bounded whatever the size.
 */
#ifndef PIGEON_CLI_DKIM_H
#define PIGEON_CLI_DKIM_H

#include <stddef.h>

#include "config.h"
#include "deliver.h"
#include "pigeon/dkim.h"
#include "pigeon/message.h"
#include "pigeon/spool.h"

/* The loaded DKIM settings: keys, selectors, domain. */
typedef struct cli_dkim cli_dkim;

/*
 * Reads the DKIM settings of cfg. Returns 0 with *out NULL when DKIM is not configured
 * (no dkim_key), 0 with *out set, or EX_CONFIG with the reason and its fix in err: a key
 * file group or others can read, a key that does not parse, a selector missing, an
 * algorithm that no key provides. warn: print a warning for an RSA key under 2048 bits.
 */
int cli_dkim_load(const cfg_settings *cfg, int warn, cli_dkim **out, char *err, size_t errlen);
void cli_dkim_free(cli_dkim *d);

/*
 * Reads a whole message from read(ctx) and writes its DKIM-Signature fields (malloc'd) to
 * *fields. from_domain: the d= when dkim_domain is unset (NULL: the From field's domain). Returns
 * 0, or an exit status with the reason in err: EX_CONFIG (d= not the From domain nor a parent),
 * EX_DATAERR (no From), EX_IOERR (a read failed).
 */
int cli_dkim_sign(cli_dkim *d, const char *from_domain, pigeon_read_fn read, void *ctx,
                  char **fields, size_t *len, char *err, size_t errlen);

/* A reader of prefix, then of read(ctx): the signature fields in front of the message. */
/* A composed message's stream copied to a file as it is read (the signer's pass reads
 * it once; the send then reads the file): cli_tee_read is a reader on a cli_tee, and
 * cli_fd_read one on an int * descriptor (EINTR retried). Both return 0 or -1. */
typedef struct cli_tee {
    pigeon_message_stream *stream; /* the composed message */
    int fd;                        /* the temporary file */
} cli_tee;
int cli_tee_read(void *ctx, void *buf, size_t cap, size_t *n);
int cli_fd_read(void *ctx, void *buf, size_t cap, size_t *n);

typedef struct cli_dkim_reader {
    const char *prefix;  /* the DKIM-Signature fields (borrowed) */
    size_t len;          /* their length */
    size_t pos;          /* bytes of prefix already read */
    pigeon_read_fn read; /* the message */
    void *ctx;           /* for read */
} cli_dkim_reader;
int cli_dkim_read(void *ctx, void *buf, size_t cap, size_t *n);

/* The DKIM options (--dkim-key, --dkim-selector, --dkim-domain, --dkim-algorithm,
 * --dkim-canonicalization) into cfg; returns -1 for another option, 0, or an exit status
 * (usage error printed). */
int cli_dkim_option(cfg_settings *cfg, int opt, const char *arg);
void cli_dkim_usage(FILE *out);

/* `pigeon send`: signs and delivers msg when DKIM is configured (else deliver_message());
 * dry_run: writes the signed message to standard output instead. */
int cli_dkim_send(cfg_settings *cfg, pigeon_message *msg, const deliver_opts *o, int dry_run);

/* sendmail: the DKIM-Signature fields for the message read(ctx) gives (*fields NULL when
 * DKIM is not configured). Returns 0 or an exit status (the reason printed). */
int cli_dkim_sign_stream(const cfg_settings *cfg, const char *from_domain, pigeon_read_fn read,
                         void *ctx, char **fields, size_t *len);

/* The daemon's hook: the DKIM-Signature fields for a spooled job, signed now with the
 * account's current key (*fields NULL when DKIM is not configured). Returns NULL, or the
 * reason it failed (valid until the thread's next call). */
const char *cli_dkim_spooled(const cfg_settings *cfg, pigeon_spool *spool,
                             const pigeon_spool_entry *job, char **fields, size_t *len);

#endif
