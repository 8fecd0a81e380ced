/*
 * mailbox_conn.h - the account's own mailbox (IMAP or POP3, include/pigeon/mailbox.h) for
 * the commands that read or file mail in it: `pigeon send --save-sent` (sent_copy.c) and
 * `pigeon bounces fetch` (bounces_fetch.c).
 *
 * Where the mailbox is: imap_host / imap_port, pop3_host / pop3_port (command line >
 * account > defaults), else the provider preset's IMAP and POP3 servers
 * (pigeon_store_preset_lookup), implicit TLS on 993 and 995, STARTTLS on any other port.
 * The login and password are the account's (the same sources as for SMTP, secret.h);
 * ca_file and insecure apply too; tls_fingerprint does not (it pins the SMTP server).
 */
#ifndef PIGEON_CLI_MAILBOX_CONN_H
#define PIGEON_CLI_MAILBOX_CONN_H

#include "config.h"
#include "deliver.h"
#include "pigeon/mailbox.h"

/* The options of a connection and the secret they borrow. */
typedef struct mailbox_plan {
    pigeon_store_opts opts; /* for pigeon_imap_connect / pigeon_pop3_connect */
    char *secret;           /* the password (wiped and freed by mailbox_plan_cleanup) */
    char host[256];         /* the host chosen */
    int verbose;            /* -v: the transcript on stderr */
} mailbox_plan;

/* Fills plan for IMAP (pop3 zero) or POP3 from the resolved settings (settings_finish done).
 * Returns 0, or a sysexits code with the reason printed (78: no host known, no login). */
int mailbox_plan_init(mailbox_plan *plan, cfg_settings *cfg, const deliver_opts *o, int pop3);
void mailbox_plan_cleanup(mailbox_plan *plan);

/* The exit status (sysexits.h) for a mailbox failure: 77 login refused, 75 network or
 * timeout, 69 TLS or refused, 76 protocol, 78 configuration, 65 bad argument. */
int mailbox_exit_status(pigeon_err err);

#endif
