/*
 * merge_sent.h - the mail merge's copies in Sent (`pigeon send --to-file ... --save-sent`,
 * or save_sent = yes): each row's message, once the server accepted it, is APPENDed with
 * \Seen to the account's Sent folder over one IMAP connection kept for the run
 * (merge_sent.c). A copy that cannot be filed is kept (in an unlinked temporary file) and
 * tried again at the end of the run over a new connection; what still fails is reported,
 * never sent again.
 */
#ifndef PIGEON_CLI_MERGE_SENT_H
#define PIGEON_CLI_MERGE_SENT_H

#include "cli.h"
#include "config.h"
#include "deliver.h"
#include "pigeon/message.h"

typedef struct merge_sent merge_sent;

/* NULL when the settings do not ask for copies (save_sent unset or no). The settings must
 * be finished (settings_finish). */
merge_sent *merge_sent_open(cfg_settings *cfg, const deliver_opts *o);

/* Files the copy of msg (its bytes as sent, with c's Bcc field on top). who names the row
 * in warnings. A NULL ms is a no-op. */
void merge_sent_save(merge_sent *ms, pigeon_message *msg, const cli_compose *c, const char *who);

/* Tries the copies that failed once more, reports what could not be saved, closes and
 * frees. NULL is a no-op. */
void merge_sent_close(merge_sent *ms);

#endif
