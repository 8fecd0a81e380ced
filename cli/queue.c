/*
 * queue.c - `pigeon queue`: look at and manage the spool (pigeon/spool.h).
 *
 *   pigeon queue list [--account NAME]   one line per message (or a JSON array)
 *   pigeon queue show ID                 the message and each recipient's state
 *   pigeon queue retry ID | --all        deferred recipients become due now
 *                                        (--include-failed: failed ones too)
 *   pigeon queue delete ID               removes a message, whatever its state
 *   pigeon queue purge --failed          removes finished messages with failed recipients
 *   pigeon queue stats                   recipients per state, oldest pending age
 *
 * Every subcommand takes --spool PATH and --json. Reading commands open the spool
 * read-only. Times are printed in RFC 3339 UTC.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "cli.h"
#include "json.h"
#include "queue.h"
#include "queue_transfer.h"

/* getopt_long values of queue's options. */
enum queue_opt {
    OPT_JSON = 0x400,
    OPT_ACCOUNT,
    OPT_ALL,
    OPT_FAILED,
    OPT_INCLUDE_FAILED,
};

/* The parsed command line of `pigeon queue SUB ...`. */
typedef struct queue_args {
    const char *sub;     /* the subcommand ("list", "show", ...) */
    const char *id;      /* the queue id argument, or NULL */
    const char *spool;   /* --spool PATH, or NULL */
    const char *account; /* --account NAME (list), or NULL */
    int json;            /* --json */
    int all;             /* --all (retry) */
    int failed;          /* --failed (purge) */
    int include_failed;  /* --include-failed (retry) */
} queue_args;

/* A subcommand's implementation. */
typedef int (*queue_fn)(pigeon_spool *spool, const queue_args *a);

static const struct option longopts[] = {
    {"spool", required_argument, NULL, CLI_OPT_SPOOL},
    {"json", no_argument, NULL, OPT_JSON},
    {"account", required_argument, NULL, OPT_ACCOUNT},
    {"all", no_argument, NULL, OPT_ALL},
    {"failed", no_argument, NULL, OPT_FAILED},
    {"include-failed", no_argument, NULL, OPT_INCLUDE_FAILED},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_args(int argc, char **argv, queue_args *a);
static int run_sub(const queue_args *a);

int cli_queue_run(int argc, char **argv)
{
    queue_args a;
    memset(&a, 0, sizeof a);
    int status = parse_args(argc, argv, &a);
    if (status >= 0)
        return status;
    return run_sub(&a);
}

/* Returns -1 to go on, or an exit status (usage printed). */
static int parse_args(int argc, char **argv, queue_args *a)
{
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case CLI_OPT_SPOOL:
            a->spool = optarg;
            break;
        case OPT_JSON:
            a->json = 1;
            break;
        case OPT_ACCOUNT:
            a->account = optarg;
            break;
        case OPT_ALL:
            a->all = 1;
            break;
        case OPT_FAILED:
            a->failed = 1;
            break;
        case OPT_INCLUDE_FAILED:
            a->include_failed = 1;
            break;
        case 'h':
            cli_queue_usage(stdout);
            return 0;
        default:
            cli_error("queue: %s %s (see pigeon help queue)", argv[optind - 1],
                      opt == ':' ? "needs a value" : "is not a known option");
            return EX_USAGE;
        }
    }
    if (optind >= argc) {
        cli_error("queue: missing subcommand: list, show, retry, delete, purge, stats, export "
                  "or import");
        return EX_USAGE;
    }
    a->sub = argv[optind++];
    if (optind < argc)
        a->id = argv[optind++];
    if (optind < argc) {
        char quoted[256];
        cli_error("queue: unexpected argument \"%s\"",
                  cli_shorten(argv[optind], quoted, sizeof quoted));
        return EX_USAGE;
    }
    return -1;
}

/* RFC 3339 UTC with milliseconds, or "-" for 0. */
static const char *fmt_time(int64_t ms, char *out, size_t n)
{
    if (ms <= 0)
        return "-";
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char secs_text[32];
    if (strftime(secs_text, sizeof secs_text, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        return "-";
    snprintf(out, n, "%s.%03dZ", secs_text, (int)(ms % 1000));
    return out;
}

static void json_kv_time(json_writer *w, const char *key, int64_t ms)
{
    char t[48];
    json_kv_string(w, key, ms > 0 ? fmt_time(ms, t, sizeof t) : NULL);
}

static void json_counts(json_writer *w, const size_t *count)
{
    json_key(w, "counts");
    json_object_begin(w);
    for (int s = 0; s < PIGEON_SPOOL_NSTATES; s++)
        json_kv_int(w, pigeon_spool_state_name((pigeon_spool_state)s), (int64_t)count[s]);
    json_object_end(w);
}

/* The fields every view of a message shares. */
static void json_entry(json_writer *w, const pigeon_spool_entry *e)
{
    json_kv_string(w, "queue_id", e->queue_id);
    json_kv_string(w, "message_id", e->message_id[0] ? e->message_id : NULL);
    json_kv_string(w, "account", e->account);
    json_kv_string(w, "mail_from", e->mail_from);
    json_kv_int(w, "size", e->size);
    json_kv_time(w, "created", e->created_ms);
    json_kv_time(w, "next_attempt", e->next_ms);
    json_counts(w, e->count);
}

/* ---- list ---- */

/* State of a listing in progress. */
typedef struct list_ctx {
    json_writer w; /* --json output */
    int json;      /* --json */
    size_t n;      /* messages listed */
} list_ctx;

static int list_one(void *ctx, const pigeon_spool_entry *e)
{
    list_ctx *lc = ctx;
    char created[48], next[48]; /* one buffer each: both are used in one printf */
    lc->n++;
    if (lc->json) {
        json_object_begin(&lc->w);
        json_entry(&lc->w, e);
        json_object_end(&lc->w);
        return 0;
    }
    printf("%s  %s  %-12s %8" PRId64 "  <%s>  q=%zu i=%zu d=%zu ok=%zu f=%zu  next %s\n",
           e->queue_id, fmt_time(e->created_ms, created, sizeof created), e->account, e->size,
           e->mail_from, e->count[PIGEON_SPOOL_QUEUED], e->count[PIGEON_SPOOL_INFLIGHT],
           e->count[PIGEON_SPOOL_DEFERRED], e->count[PIGEON_SPOOL_DELIVERED],
           e->count[PIGEON_SPOOL_FAILED],
           e->next_ms > 0 ? fmt_time(e->next_ms, next, sizeof next) : "-");
    return 0;
}

static int q_list(pigeon_spool *spool, const queue_args *a)
{
    list_ctx lc = {.json = a->json};
    if (a->json) {
        json_init(&lc.w, stdout);
        json_array_begin(&lc.w);
    }
    pigeon_err e = pigeon_spool_list(spool, a->account, list_one, &lc);
    if (a->json) {
        json_array_end(&lc.w);
        json_finish(&lc.w);
    } else if (e == PIGEON_OK && lc.n == 0) {
        printf("the queue is empty\n");
    }
    if (e != PIGEON_OK) {
        cli_error("queue list: %s", pigeon_spool_error(spool));
        return cli_exit_status(e);
    }
    return 0;
}

/* ---- show ---- */

static void show_json(const pigeon_spool_entry *e)
{
    json_writer w;
    json_init(&w, stdout);
    json_object_begin(&w);
    json_entry(&w, e);
    json_key(&w, "recipients");
    json_array_begin(&w);
    for (size_t i = 0; i < e->rcpt_count; i++) {
        const pigeon_spool_rcpt *r = &e->rcpts[i];
        json_object_begin(&w);
        json_kv_string(&w, "address", r->address);
        json_kv_string(&w, "state", pigeon_spool_state_name(r->state));
        json_kv_int(&w, "attempts", r->attempts);
        json_kv_time(&w, "next_attempt", r->next_ms);
        json_kv_string(&w, "lease_owner", r->lease_owner);
        json_key(&w, "code");
        if (r->smtp_code != 0)
            json_int(&w, r->smtp_code);
        else
            json_null(&w);
        json_kv_string(&w, "enhanced_code", r->enhanced_code);
        json_kv_string(&w, "text", r->text);
        json_kv_string(&w, "error", r->last_err != PIGEON_OK ? pigeon_strerror(r->last_err) : NULL);
        json_kv_time(&w, "updated", r->updated_ms);
        json_object_end(&w);
    }
    json_array_end(&w);
    json_object_end(&w);
    json_finish(&w);
}

static void show_text(const pigeon_spool_entry *e)
{
    char t[48];
    printf("queue id:   %s\nmessage id: %s\naccount:    %s\nfrom:       <%s>\nsize:       %" PRId64
           "\ncreated:    %s\n",
           e->queue_id, e->message_id[0] ? e->message_id : "-", e->account, e->mail_from, e->size,
           fmt_time(e->created_ms, t, sizeof t));
    for (size_t i = 0; i < e->rcpt_count; i++) {
        const pigeon_spool_rcpt *r = &e->rcpts[i];
        printf("  %-9s %s  attempts %d", pigeon_spool_state_name(r->state), r->address,
               r->attempts);
        if (r->next_ms > 0)
            printf("  %s %s", r->state == PIGEON_SPOOL_INFLIGHT ? "lease until" : "next",
                   fmt_time(r->next_ms, t, sizeof t));
        if (r->smtp_code != 0)
            printf("  %d %s %s", r->smtp_code, r->enhanced_code ? r->enhanced_code : "",
                   r->text ? r->text : "");
        else if (r->text != NULL)
            printf("  %s", r->text);
        putchar('\n');
    }
}

static int need_id(const queue_args *a)
{
    if (a->id == NULL) {
        cli_error("queue %s: missing the queue id (see pigeon queue list)", a->sub);
        return EX_USAGE;
    }
    return 0;
}

/* The exit status for a spool error, with the reason printed. */
static int spool_failed(pigeon_spool *spool, const queue_args *a, pigeon_err e)
{
    char quoted[256];
    if (e == PIGEON_ERR_NOTFOUND && a->id != NULL)
        cli_error("queue %s: no message %s in the spool", a->sub,
                  cli_shorten(a->id, quoted, sizeof quoted));
    else
        cli_error("queue %s: %s", a->sub, pigeon_spool_error(spool));
    return e == PIGEON_ERR_NOTFOUND ? EX_NOINPUT : cli_exit_status(e);
}

static int q_show(pigeon_spool *spool, const queue_args *a)
{
    pigeon_spool_entry *e = NULL;
    int status = need_id(a);
    if (status != 0)
        return status;
    pigeon_err err = pigeon_spool_show(spool, a->id, &e);
    if (err != PIGEON_OK)
        return spool_failed(spool, a, err);
    if (a->json)
        show_json(e);
    else
        show_text(e);
    pigeon_spool_entry_free(e);
    return 0;
}

/* ---- retry, delete, purge ---- */

/* Reports a change: "N recipients made due" or {"changed": N}. */
static void report_count(const queue_args *a, const char *what, size_t n)
{
    if (a->json) {
        json_writer w;
        json_init(&w, stdout);
        json_object_begin(&w);
        json_kv_string(&w, "action", a->sub);
        json_kv_string(&w, "queue_id", a->id);
        json_kv_int(&w, "count", (int64_t)n);
        json_object_end(&w);
        json_finish(&w);
    } else {
        printf("%zu %s\n", n, what);
    }
}

static int q_retry(pigeon_spool *spool, const queue_args *a)
{
    if ((a->id == NULL) == (a->all == 0)) {
        cli_error("queue retry: give a queue id or --all (not both)");
        return EX_USAGE;
    }
    size_t n = 0;
    pigeon_err e = pigeon_spool_retry(spool, a->id, a->include_failed, pigeon_spool_now_ms(), &n);
    if (e != PIGEON_OK)
        return spool_failed(spool, a, e);
    report_count(a, n == 1 ? "recipient made due now" : "recipients made due now", n);
    return 0;
}

static int q_delete(pigeon_spool *spool, const queue_args *a)
{
    int status = need_id(a);
    if (status != 0)
        return status;
    pigeon_err e = pigeon_spool_delete(spool, a->id);
    if (e != PIGEON_OK)
        return spool_failed(spool, a, e);
    report_count(a, "message deleted", 1);
    return 0;
}

static int q_purge(pigeon_spool *spool, const queue_args *a)
{
    if (!a->failed || a->id != NULL) {
        cli_error("queue purge: only --failed is supported (to remove one message: "
                  "pigeon queue delete ID)");
        return EX_USAGE;
    }
    size_t n = 0;
    pigeon_err e = pigeon_spool_purge_failed(spool, &n);
    if (e != PIGEON_OK)
        return spool_failed(spool, a, e);
    report_count(a, n == 1 ? "failed message purged" : "failed messages purged", n);
    return 0;
}

/* ---- stats ---- */

static int q_stats(pigeon_spool *spool, const queue_args *a)
{
    pigeon_spool_stats st;
    int64_t now = pigeon_spool_now_ms();
    pigeon_err e = pigeon_spool_stats_get(spool, now, &st);
    if (e != PIGEON_OK)
        return spool_failed(spool, a, e);
    double age = st.oldest_pending_ms > 0 ? (double)(now - st.oldest_pending_ms) / 1000.0 : 0;
    if (a->json) {
        json_writer w;
        json_init(&w, stdout);
        json_object_begin(&w);
        json_kv_int(&w, "messages", (int64_t)st.messages);
        json_key(&w, "recipients");
        json_object_begin(&w);
        for (int s = 0; s < PIGEON_SPOOL_NSTATES; s++)
            json_kv_int(&w, pigeon_spool_state_name((pigeon_spool_state)s), (int64_t)st.rcpts[s]);
        json_object_end(&w);
        json_kv_int(&w, "stale_leases", (int64_t)st.stale_leases);
        json_kv_int(&w, "throttled_accounts", (int64_t)st.throttled_accounts);
        json_kv_time(&w, "oldest_pending", st.oldest_pending_ms);
        json_key(&w, "oldest_pending_age_seconds");
        json_double(&w, age);
        json_kv_int(&w, "bytes", st.bytes);
        json_object_end(&w);
        json_finish(&w);
        return 0;
    }
    printf("messages: %zu (%" PRId64 " bytes)\n", st.messages, st.bytes);
    for (int s = 0; s < PIGEON_SPOOL_NSTATES; s++)
        printf("%-10s %zu\n", pigeon_spool_state_name((pigeon_spool_state)s), st.rcpts[s]);
    printf("stale leases: %zu\nthrottled accounts: %zu\noldest pending: %.0f s\n", st.stale_leases,
           st.throttled_accounts, age);
    return 0;
}

/* Opening with PIGEON_SPOOL_CREATE created the spool or brought its schema to this
 * pigeon's version (a newer one was refused before): nothing is left to do. */
static int q_migrate(pigeon_spool *spool, const queue_args *a)
{
    (void)spool;
    if (a->json)
        printf("{\"status\":\"current\"}\n");
    else
        printf("the spool's schema is current\n");
    return 0;
}

/* ---- dispatch ---- */

static const struct {
    const char *name; /* the subcommand */
    queue_fn fn;      /* its implementation */
    int writes;       /* opens the spool for writing */
} subs[] = {
    {"list", q_list, 0},       {"show", q_show, 0},     {"stats", q_stats, 0},
    {"retry", q_retry, 1},     {"delete", q_delete, 1}, {"purge", q_purge, 1},
    {"migrate", q_migrate, 2},
};

static int run_sub(const queue_args *a)
{
    if (strcmp(a->sub, "export") == 0) /* queue_transfer.c: two handles, or creates */
        return cli_queue_export(a->spool, a->account, a->id);
    if (strcmp(a->sub, "import") == 0)
        return cli_queue_import(a->spool, a->id, a->json);
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(subs[i].name, a->sub) != 0)
            continue;
        pigeon_spool *spool = NULL;
        unsigned flags = PIGEON_SPOOL_NO_CHECK | (subs[i].writes ? 0 : PIGEON_SPOOL_READONLY) |
                         (subs[i].writes == 2 ? PIGEON_SPOOL_CREATE : 0);
        int status = queue_spool_open(a->spool, flags, &spool);
        if (status != 0)
            return status;
        status = subs[i].fn(spool, a);
        pigeon_spool_close(spool);
        return status;
    }
    char quoted[256];
    cli_error("queue: unknown subcommand \"%s\" (list, show, retry, delete, purge, stats, "
              "export, import, migrate)",
              cli_shorten(a->sub, quoted, sizeof quoted));
    return EX_USAGE;
}

void cli_queue_usage(FILE *out)
{
    fputs("usage: pigeon queue list [--account NAME]\n"
          "       pigeon queue show ID\n"
          "       pigeon queue retry ID | --all [--include-failed]\n"
          "       pigeon queue delete ID\n"
          "       pigeon queue purge --failed\n"
          "       pigeon queue stats\n"
          "       pigeon queue export [FILE] [--account NAME]\n"
          "       pigeon queue import [FILE]\n"
          "       pigeon queue migrate\n"
          "\n"
          "Looks at and manages the spool that `pigeon send --queue` and `pigeon sendmail`\n"
          "fill and `pigeon daemon` drains. retry makes deferred recipients due now (the\n"
          "daemon's next pass, or `pigeon daemon --once`, tries them); delivered\n"
          "recipients are never sent again. export writes the spool (bodies and each\n"
          "recipient's state) as JSON Lines to FILE or stdout; import reads it into this\n"
          "spool, skipping queue ids already present (safe to run again). migrate creates\n"
          "the spool, or brings its schema up to this pigeon's version (done on open by\n"
          "send, serve and daemon too).\n"
          "\n"
          "Options:\n"
          "  --spool PATH|URL   the spool file (default $PIGEON_SPOOL, else `spool =` in the\n"
          "                     configuration, else $XDG_STATE_HOME/pigeon/spool.db), or\n"
          "                     a PostgreSQL URL postgresql://user@host:port/db (the\n"
          "                     password from ~/.pgpass or $PGPASSFILE)\n"
          "  --json             machine-readable output (one JSON value)\n"
          "  -h, --help         show this help\n"
          "\n"
          "Exit status: 0 done, 64 usage error, 65 bad import input, 66 no such message or\n"
          "no spool, 74 the spool cannot be read or written, 75 the spool stayed locked.\n",
          out);
}
