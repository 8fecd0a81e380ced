/*
 * queue_transfer.h - `pigeon queue export` and `pigeon queue import` (queue_transfer.c),
 * dispatched from queue.c.
 */
#ifndef PIGEON_CLI_QUEUE_TRANSFER_H
#define PIGEON_CLI_QUEUE_TRANSFER_H

/* Writes the spool (spool: --spool or NULL; account: --account or NULL) to file (NULL or
 * "-": stdout). Returns a sysexits status (the reason printed). */
int cli_queue_export(const char *spool, const char *account, const char *file);

/* Reads an export from file (NULL or "-": stdin) into the spool (created if missing).
 * json: the summary as one JSON object. Returns a sysexits status: 65 for bad input. */
int cli_queue_import(const char *spool, const char *file, int json);

#endif
