/*
 * merge.h - mail merge: `pigeon send --to-file LIST` sends (or queues, or writes) one
 * personalized message per row of a CSV or JSON Lines list.
 *
 * merge.c runs the rows (compose, then send over reused connections, queue in one spool
 * batch, or write for --dry-run); merge_out.c holds what it writes besides mail: the
 * per-row report, the set of rows a --resume skips, the progress line, the dry-run
 * folder or mbox.
 */
#ifndef PIGEON_CLI_MERGE_H
#define PIGEON_CLI_MERGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "config.h"
#include "deliver.h"
#include "tpl.h"

/* getopt_long values of the merge options. */
enum merge_opt {
    CLI_OPT_TO_FILE = 0x440,
    CLI_OPT_TO_FORMAT,
    CLI_OPT_RATE,
    CLI_OPT_REPORT,
    CLI_OPT_RESUME,
    CLI_OPT_STRICT,
    CLI_OPT_DRY_RUN_DIR,
    CLI_OPT_MBOX,
};

#define CLI_MERGE_LONGOPTS                                                                         \
    {"to-file", required_argument, NULL, CLI_OPT_TO_FILE},                                         \
        {"to-format", required_argument, NULL, CLI_OPT_TO_FORMAT},                                 \
        {"rate", required_argument, NULL, CLI_OPT_RATE},                                           \
        {"report", required_argument, NULL, CLI_OPT_REPORT},                                       \
        {"resume", no_argument, NULL, CLI_OPT_RESUME},                                             \
        {"strict", no_argument, NULL, CLI_OPT_STRICT},                                             \
        {"dry-run-dir", required_argument, NULL, CLI_OPT_DRY_RUN_DIR},                             \
    {                                                                                              \
        "mbox", required_argument, NULL, CLI_OPT_MBOX                                              \
    }

/* The merge options (strings borrowed from argv). */
typedef struct merge_opts {
    const char *to_file;     /* --to-file PATH ("-" = stdin), or NULL: no merge */
    const char *format;      /* --to-format csv|jsonl, or NULL: by extension */
    double rate;             /* --rate: most messages per second, 0 = no limit */
    const char *report;      /* --report FILE, or NULL */
    int resume;              /* --resume: skip rows the report says are done */
    int strict;              /* --strict: check every row first, send nothing if one is bad */
    const char *dry_run_dir; /* --dry-run-dir DIR, or NULL */
    const char *mbox;        /* --mbox FILE, or NULL */
} merge_opts;

/* What the merge needs from `pigeon send`. */
typedef struct merge_env {
    cli_compose *compose;        /* the message options (To is set per row) */
    cli_tpl *tpl;                /* templates (the row is set per row) */
    cfg_settings *cfg;           /* connection settings (loaded, not finished) */
    const deliver_opts *deliver; /* reporting options */
    const char *spool;           /* --spool, or NULL */
    int queue;                   /* --queue */
    int dry_run;                 /* --dry-run */
    int ignore_suppression;      /* --ignore-suppression: mail suppressed rows too */
} merge_env;

/* Stores one getopt_long result. Returns -1 if not a merge option, 0, or an exit status
 * (printed). */
int merge_option(merge_opts *m, int opt, const char *arg);

/* Checks the options together (after parsing). Returns 0 or EX_USAGE (printed). */
int merge_check(const merge_opts *m, const merge_env *env);

/* Runs the merge. Returns the exit status: 0 every row done; 65 some rows were bad (and
 * skipped); 69/75 some deliveries failed; 130 interrupted (the way to resume printed). */
int merge_run(const merge_opts *m, merge_env *env);

void merge_usage(FILE *out);

/* ---- merge_out.c ---- */

/* The outcome of one row, for the report. */
typedef struct merge_outcome {
    unsigned long row;      /* the row's number among the data rows, from 1 */
    unsigned long line;     /* its first line in the list */
    const char *address;    /* the recipient, or NULL */
    const char *status;     /* "sent", "queued", "written", "failed", "deferred", "invalid" */
    int code;               /* the SMTP reply code, 0 if none */
    const char *message_id; /* "<...>", or NULL */
    const char *queue_id;   /* with --queue, or NULL */
    const char *error;      /* why it failed, or NULL */
} merge_outcome;

/* The report file: one JSON object per line, written (and flushed) per row. With
 * staging, lines wait in a temporary file until merge_report_publish() (the queue
 * writes them only once the batch is durable). */
typedef struct merge_report {
    FILE *out;   /* the report, or NULL */
    FILE *stage; /* staged lines, or NULL */
} merge_report;

/* Opens path for appending (resume) or truncating. Returns 0 or an exit status. */
int merge_report_open(merge_report *r, const char *path, int append, int staged);
void merge_report_write(merge_report *r, const merge_outcome *o);
/* Moves the staged lines to the report. Returns 0 or an exit status (printed). */
int merge_report_publish(merge_report *r);
/* Drops the staged lines (the batch was rolled back). */
void merge_report_discard(merge_report *r);
/* Closes; returns 0 or EX_IOERR (printed) when the report could not be written. */
int merge_report_close(merge_report *r);

/* The rows a --resume skips: those the report says were sent, queued or written. */
typedef struct merge_done {
    unsigned char *bits; /* bit n set: row n is done */
    size_t nbytes;       /* size of bits */
    unsigned long count; /* rows done */
} merge_done;

/* Reads the report at path (a missing file is no rows). Returns 0 or an exit status. */
int merge_done_load(merge_done *d, const char *path);
int merge_done_has(const merge_done *d, unsigned long row);
void merge_done_cleanup(merge_done *d);

/* The progress display on standard error. */
typedef struct merge_progress {
    int tty;                 /* a terminal: one line redrawn; else a plain line now and then */
    unsigned long total;     /* rows in the list, 0 if unknown */
    unsigned long done;      /* rows handled */
    int64_t start_ms;        /* when the run started */
    int64_t last_ms;         /* the last redraw */
    unsigned long last_step; /* the last plain line's tenth */
    unsigned long last_done; /* rows done at the last plain line */
} merge_progress;

void merge_progress_init(merge_progress *p, unsigned long total);
void merge_progress_tick(merge_progress *p, int final);

/* Where --dry-run writes: a folder of ROW.eml files, an mbox (mboxrd), or stdout as an
 * mbox. */
typedef struct merge_sink {
    const char *dir; /* the folder, or NULL */
    FILE *mbox;      /* the mbox, or NULL */
    int own;         /* mbox is ours to close */
} merge_sink;

int merge_sink_open(merge_sink *s, const char *dir, const char *mbox);
/* Writes one message for row. Returns 0 or an exit status (printed). */
int merge_sink_write(merge_sink *s, unsigned long row, pigeon_message *msg);
int merge_sink_close(merge_sink *s);

int64_t merge_now_ms(void);

#endif
