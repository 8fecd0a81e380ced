/*
 * daemon_sent.h - the daemon's copy in Sent (daemon_sent.c): for an account with
 * save_sent = yes|FOLDER, each delivered message (the exact bytes sent, DKIM fields
 * included; its Bcc recipients in a Bcc field of this copy only) is APPENDed with \Seen
 * to the account's Sent folder over IMAP after delivery. The copy goes first into a
 * durable outbox beside the spool (SPOOL.sent/, or $XDG_STATE_HOME/pigeon/sent-outbox for a
 * PostgreSQL spool); a saver thread files it and deletes it once the server took it. A
 * failure to save is logged ("sent_copy" warning) and retried with backoff, across
 * restarts; it never makes a message be sent again.
 */
#ifndef PIGEON_CLI_DAEMON_SENT_H
#define PIGEON_CLI_DAEMON_SENT_H

#include <pthread.h>

#include "daemon.h"

typedef struct daemon_sent_tee daemon_sent_tee;

/* Called as msg is handed to the SMTP engine: when the account saves copies and none of
 * the message's recipients was delivered before (one copy per message), msg's reader is
 * wrapped so that the bytes sent also go to a file of the outbox. *tee stays NULL when
 * off (no cost beyond a look at the setting). */
void daemon_sent_begin(daemon_state *d, const daemon_conf *conf, const pigeon_spool_entry *job,
                       pigeon_smtp_raw *msg, daemon_sent_tee **tee);

/* Called once the message's outcomes are recorded: when a recipient was accepted and the
 * whole message went out, the copy is made durable in the outbox and the saver woken;
 * otherwise it is dropped. *tee is freed and set to NULL (NULL: nothing to do). */
void daemon_sent_end(daemon_state *d, daemon_sent_tee **tee, const pigeon_send_result *res,
                     const pigeon_spool_entry *job);

/* Starts the saver thread (it files what the outbox holds, now and as copies come, until
 * the daemon stops). Returns 0, or -1 (nothing started). */
int daemon_sent_start(daemon_state *d, pthread_t *thread);

/* Wakes the saver at once: a copy came, or the daemon is stopping (daemon_stop). */
void daemon_sent_wake(void);

/* Files what the outbox holds now, once (--once, after the workers). */
void daemon_sent_pass(daemon_state *d);

#endif
