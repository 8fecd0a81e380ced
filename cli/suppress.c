/*
 * suppress.c - `pigeon suppress list|add|remove|check|import|export`: the suppression
 * list kept in the spool (pigeon/suppress.h).
 *
 * Entries belong to an account, or to the global list ("*") that applies to every
 * account; without --account, add, remove and import work on the global list and list
 * and export show every account. Import and export use CSV (RFC 4180, header
 * address,account,reason,status,diagnostic,queue_id,created); list prints a table, or
 * with --json one JSON object per line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "cli.h"
#include "deliver.h"
#include "json.h"
#include "queue.h"
#include "suppress.h"

enum { OPT_ACCOUNT = 0x400, OPT_REASON, OPT_STATUS, OPT_DIAG, OPT_JSON, OPT_SPOOL };

static const struct option longopts[] = {
    {"account", required_argument, NULL, OPT_ACCOUNT},
    {"reason", required_argument, NULL, OPT_REASON},
    {"status", required_argument, NULL, OPT_STATUS},
    {"diagnostic", required_argument, NULL, OPT_DIAG},
    {"json", no_argument, NULL, OPT_JSON},
    {"spool", required_argument, NULL, OPT_SPOOL},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The command line of one run. */
typedef struct sup_args {
    const char *verb;              /* list, add, remove, check, import, export */
    const char *account;           /* --account, or NULL */
    pigeon_suppress_reason reason; /* --reason, or NONE */
    const char *status;            /* --status, or NULL */
    const char *diagnostic;        /* --diagnostic, or NULL */
    int json;                      /* --json */
    const char *spool;             /* --spool, or NULL */
    char **rest;                   /* the operands after the verb */
    int nrest;                     /* their number */
} sup_args;

#define CONTINUE (-1)

static int parse_args(int argc, char **argv, sup_args *a)
{
    char quoted[256];
    int opt;
    opterr = 0;
    optind = 2; /* argv[1] is the verb */
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            cli_suppress_usage(stdout);
            return 0;
        }
        cli_error("suppress: which? list, add, remove, check, import or export (see pigeon "
                  "help suppress)");
        return EX_USAGE;
    }
    a->verb = argv[1];
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_ACCOUNT:
            a->account = optarg;
            break;
        case OPT_REASON:
            if (pigeon_suppress_reason_parse(optarg, &a->reason) != PIGEON_OK) {
                cli_error("suppress: --reason %s: expected hard-bounce, complaint, soft-bounce, "
                          "manual or unsubscribe",
                          cli_shorten(optarg, quoted, sizeof quoted));
                return EX_USAGE;
            }
            break;
        case OPT_STATUS:
            a->status = optarg;
            break;
        case OPT_DIAG:
            a->diagnostic = optarg;
            break;
        case OPT_JSON:
            a->json = 1;
            break;
        case OPT_SPOOL:
            a->spool = optarg;
            break;
        case 'h':
            cli_suppress_usage(stdout);
            return 0;
        case ':':
            cli_error("suppress: %s needs a value", cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        default:
            cli_error("suppress: unknown option %s (see pigeon help suppress)",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        }
    }
    a->rest = argv + optind;
    a->nrest = argc - optind;
    return CONTINUE;
}

/* Opens the spool for reading; *spool NULL (status 0) when there is none yet. */
static int open_read(const sup_args *a, pigeon_spool **spool)
{
    char path[1024];
    *spool = NULL;
    int status = queue_spool_path(a->spool, 0, path, sizeof path);
    if (status != 0)
        return status;
    /* A PostgreSQL URL: no file to look for; a database without the spool's tables yet
     * holds no list either. */
    if (strstr(path, "://") != NULL) {
        char err[512];
        pigeon_err e = pigeon_spool_open(path, PIGEON_SPOOL_READONLY | PIGEON_SPOOL_NO_CHECK, spool,
                                         err, sizeof err);
        if (e == PIGEON_OK || e == PIGEON_ERR_NOTFOUND)
            return 0;
        if (e == PIGEON_ERR_STATE) { /* an older schema: no suppression tables yet */
            cli_error("suppress: %s", err);
            return 0;
        }
        cli_error("cannot open the spool (PostgreSQL): %s", err);
        return e == PIGEON_ERR_TIMEOUT ? EX_TEMPFAIL : cli_exit_status(e);
    }
    if (access(path, F_OK) != 0)
        return 0;
    return queue_spool_open(a->spool, PIGEON_SPOOL_READONLY | PIGEON_SPOOL_NO_CHECK, spool);
}

static int fail(pigeon_spool *spool, pigeon_err err)
{
    cli_error("%s", pigeon_spool_error(spool));
    return err == PIGEON_ERR_TIMEOUT ? EX_TEMPFAIL : cli_exit_status(err);
}

/* ---- list and export ---- */

/* Where list and export write, and how. */
typedef struct lister {
    FILE *out;   /* the stream */
    int mode;    /* 0 table, 1 JSON lines, 2 CSV */
    size_t rows; /* entries written */
} lister;

static void iso_day(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, n, "?");
}

static int list_one(void *ctx, const pigeon_suppress_entry *e)
{
    lister *l = ctx;
    char when[32], line[2600];
    iso_day(e->created_ms, when, sizeof when);
    l->rows++;
    if (l->mode == 2) {
        size_t n = pigeon_suppress_csv_format(e, line, sizeof line);
        fwrite(line, 1, n < sizeof line ? n : sizeof line - 1, l->out);
    } else if (l->mode == 1) {
        json_writer w;
        json_init(&w, l->out);
        json_object_begin(&w);
        json_kv_string(&w, "address", e->address);
        json_kv_string(&w, "account", e->account);
        json_kv_string(&w, "reason", pigeon_suppress_reason_name(e->reason));
        json_kv_string(&w, "status", e->status);
        json_kv_string(&w, "diagnostic", e->diagnostic);
        json_kv_string(&w, "queue_id", e->queue_id);
        json_kv_int(&w, "created_ms", e->created_ms);
        json_kv_string(&w, "created", when);
        json_object_end(&w);
        json_finish(&w);
    } else {
        fprintf(l->out, "%-36s %-10s %-12s %-9s %s  %s\n", e->address, e->account,
                pigeon_suppress_reason_name(e->reason), e->status[0] ? e->status : "-", when,
                e->diagnostic);
    }
    return ferror(l->out) ? 1 : 0;
}

static int run_list(const sup_args *a, int export)
{
    pigeon_spool *spool = NULL;
    FILE *out = stdout;
    int status = 0;
    if (a->nrest > (export ? 1 : 0)) {
        cli_error("suppress: %s: unexpected argument %s", a->verb, a->rest[export ? 1 : 0]);
        return EX_USAGE;
    }
    if ((status = open_read(a, &spool)) != 0)
        return status;
    if (export && a->nrest == 1 && strcmp(a->rest[0], "-") != 0 &&
        (out = fopen(a->rest[0], "w")) == NULL) {
        cli_error("suppress: cannot write %s: %s", a->rest[0], strerror(errno));
        pigeon_spool_close(spool);
        return EX_CANTCREAT;
    }
    lister l = {out, export ? (a->json ? 1 : 2) : (a->json ? 1 : 0), 0};
    if (l.mode == 2)
        fputs(PIGEON_SUPPRESS_CSV_HEADER, out);
    pigeon_err err = spool == NULL
                         ? PIGEON_OK
                         : pigeon_suppress_list(spool, a->account, a->reason, list_one, &l);
    if (err != PIGEON_OK)
        status = fail(spool, err);
    else if (l.mode == 0 && l.rows == 0)
        fprintf(stderr, "pigeon: suppress: the list is empty\n");
    if ((fflush(out) != 0 || ferror(out)) && status == 0) {
        cli_error("suppress: writing the list failed");
        status = EX_IOERR;
    }
    if (out != stdout && fclose(out) != 0 && status == 0)
        status = EX_IOERR;
    pigeon_spool_close(spool);
    return status;
}

/* ---- add, remove, check ---- */

/* The soft-bounce policy of --account from the configuration (defaults without one). */
static int policy_of(const sup_args *a, pigeon_suppress_policy *p)
{
    cfg_settings cfg;
    char err[600];
    memset(&cfg, 0, sizeof cfg);
    const char *acc = a->account;
    int status = 0;
    if (acc != NULL && acc[0] != '\0' && strcmp(acc, PIGEON_SUPPRESS_GLOBAL) != 0)
        status = settings_load(&cfg, acc, err, sizeof err);
    if (status != 0)
        cli_error("suppress: %s", err);
    cli_suppress_policy(&cfg, p);
    cfg_cleanup(&cfg);
    return status;
}

/* Strips the angle brackets a user may copy along with an address. */
static const char *bare(const char *s, char *out, size_t n)
{
    size_t len = strlen(s);
    if (len >= 2 && s[0] == '<' && s[len - 1] == '>' && len - 1 < n) {
        memcpy(out, s + 1, len - 2);
        out[len - 2] = '\0';
        return out;
    }
    return s;
}

static int run_add(const sup_args *a)
{
    pigeon_spool *spool = NULL;
    pigeon_suppress_policy policy = {PIGEON_SUPPRESS_SOFT_LIMIT, PIGEON_SUPPRESS_SOFT_DAYS};
    char buf[PIGEON_SUPPRESS_ADDR_MAX + 3];
    if (a->nrest == 0) {
        cli_error("suppress: add: which address? (pigeon suppress add ADDRESS...)");
        return EX_USAGE;
    }
    pigeon_suppress_reason reason = a->reason ? a->reason : PIGEON_SUPPRESS_MANUAL;
    int status = reason == PIGEON_SUPPRESS_SOFT_BOUNCE ? policy_of(a, &policy) : 0;
    if (status == 0)
        status = queue_spool_open(a->spool, PIGEON_SPOOL_CREATE | PIGEON_SPOOL_NO_CHECK, &spool);
    for (int i = 0; status == 0 && i < a->nrest; i++) {
        const char *addr = bare(a->rest[i], buf, sizeof buf);
        pigeon_suppress_entry e = {
            a->account, addr, reason, a->status, a->diagnostic, NULL, pigeon_spool_now_ms()};
        int now = 0;
        pigeon_err err = pigeon_suppress_add(spool, &e, &policy, &now);
        if (err != PIGEON_OK) {
            status = fail(spool, err);
            break;
        }
        const char *acc = a->account && a->account[0] ? a->account : PIGEON_SUPPRESS_GLOBAL;
        if (now)
            printf("suppressed %s (%s, account %s)\n", addr, pigeon_suppress_reason_name(reason),
                   acc);
        else
            printf("soft bounce recorded for %s (account %s): suppressed after %d within %d "
                   "days\n",
                   addr, acc, policy.soft_bounce_limit, policy.soft_bounce_days);
    }
    pigeon_spool_close(spool);
    return status;
}

static int run_remove(const sup_args *a)
{
    pigeon_spool *spool = NULL;
    char buf[PIGEON_SUPPRESS_ADDR_MAX + 3];
    if (a->nrest == 0) {
        cli_error("suppress: remove: which address? (pigeon suppress remove ADDRESS...)");
        return EX_USAGE;
    }
    int status = queue_spool_open(a->spool, PIGEON_SPOOL_NO_CHECK, &spool);
    for (int i = 0; status == 0 && i < a->nrest; i++) {
        const char *addr = bare(a->rest[i], buf, sizeof buf);
        pigeon_err err = pigeon_suppress_remove(spool, a->account, addr);
        if (err == PIGEON_ERR_NOTFOUND) {
            cli_error("%s", pigeon_spool_error(spool));
            status = EX_NOUSER;
        } else if (err != PIGEON_OK) {
            status = fail(spool, err);
        } else {
            printf("removed %s\n", addr);
        }
    }
    pigeon_spool_close(spool);
    return status;
}

/* Exit 0 when no address is suppressed for --account, 1 when some is (each printed). */
static int run_check(const sup_args *a)
{
    if (a->nrest == 0) {
        cli_error("suppress: check: which address?");
        return EX_USAGE;
    }
    pigeon_suppress_hit *hits = calloc((size_t)a->nrest, sizeof *hits);
    size_t count = 0;
    if (hits == NULL)
        return EX_OSERR;
    int status = cli_suppress_lookup(a->spool, a->account, (const char *const *)a->rest,
                                     (size_t)a->nrest, hits, &count);
    for (int i = 0; status == 0 && i < a->nrest; i++) {
        char why[160];
        if (hits[i].reason != PIGEON_SUPPRESS_NONE)
            printf("%s: %s (%s)\n", a->rest[i], CLI_SUPPRESSED,
                   cli_suppress_why(&hits[i], why, sizeof why));
        else
            printf("%s: ok\n", a->rest[i]);
    }
    free(hits);
    return status != 0 ? status : count > 0 ? 1 : 0;
}

/* ---- import ---- */

static int fd_reader(void *ctx, void *buf, size_t cap, size_t *n)
{
    int fd = *(int *)ctx;
    ssize_t r;
    do
        r = read(fd, buf, cap);
    while (r < 0 && errno == EINTR);
    *n = r > 0 ? (size_t)r : 0;
    return r < 0 ? -1 : 0;
}

static int run_import(const sup_args *a)
{
    if (a->nrest != 1) {
        cli_error("suppress: import: one file, or - for standard input");
        return EX_USAGE;
    }
    const char *file = a->rest[0];
    int fd = strcmp(file, "-") == 0 ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cli_error("suppress: cannot open %s: %s", file, strerror(errno));
        return EX_NOINPUT;
    }
    pigeon_spool *spool = NULL;
    int status = queue_spool_open(a->spool, PIGEON_SPOOL_CREATE | PIGEON_SPOOL_NO_CHECK, &spool);
    if (status == 0) {
        pigeon_suppress_entry d = {
            a->account, NULL, a->reason, a->status, a->diagnostic, NULL, pigeon_spool_now_ms()};
        size_t count = 0, bad = 0;
        char why[512];
        pigeon_err err =
            pigeon_suppress_import(spool, fd_reader, &fd, &d, &count, &bad, why, sizeof why);
        if (err == PIGEON_OK) {
            printf("imported %zu entr%s\n", count, count == 1 ? "y" : "ies");
        } else {
            if (bad > 0)
                cli_error("suppress: %s:%zu: %s (nothing imported)", file, bad, why);
            else
                cli_error("suppress: %s: %s (nothing imported)", file, why);
            status = err == PIGEON_ERR_INVALID || err == PIGEON_ERR_ADDRESS ||
                             err == PIGEON_ERR_TOO_LARGE
                         ? EX_DATAERR
                         : cli_exit_status(err);
        }
    }
    pigeon_spool_close(spool);
    if (fd != STDIN_FILENO)
        close(fd);
    return status;
}

int cli_suppress_run(int argc, char **argv)
{
    sup_args a;
    memset(&a, 0, sizeof a);
    int status = parse_args(argc, argv, &a);
    if (status != CONTINUE)
        return status;
    if (strcmp(a.verb, "list") == 0)
        return run_list(&a, 0);
    if (strcmp(a.verb, "export") == 0)
        return run_list(&a, 1);
    if (strcmp(a.verb, "add") == 0)
        return run_add(&a);
    if (strcmp(a.verb, "remove") == 0)
        return run_remove(&a);
    if (strcmp(a.verb, "check") == 0)
        return run_check(&a);
    if (strcmp(a.verb, "import") == 0)
        return run_import(&a);
    char quoted[128];
    cli_error("suppress: unknown action \"%s\" (list, add, remove, check, import, export)",
              cli_shorten(a.verb, quoted, sizeof quoted));
    return EX_USAGE;
}

void cli_suppress_usage(FILE *out)
{
    fputs("usage: pigeon suppress list [--account NAME] [--reason R] [--json]\n"
          "       pigeon suppress add ADDRESS... [--account NAME] [--reason R]\n"
          "                           [--status CODE] [--diagnostic TEXT]\n"
          "       pigeon suppress remove ADDRESS... [--account NAME]\n"
          "       pigeon suppress check ADDRESS... [--account NAME]\n"
          "       pigeon suppress import FILE|- [--account NAME] [--reason R]\n"
          "       pigeon suppress export [FILE|-] [--account NAME] [--reason R] [--json]\n"
          "\n"
          "The suppression list: addresses that send, sendmail, the mail merge, serve and the\n"
          "daemon skip (and report as suppressed). Entries belong to an account or, with\n"
          "--account '*' or without --account for add, remove and import, to the global\n"
          "list that applies to every account. Addresses compare with the domain\n"
          "lower-cased in A-labels and the local part case-insensitively.\n"
          "\n"
          "  --account NAME      the account's list ('*': the global list); list and export\n"
          "                      show every account without it\n"
          "  --reason R          hard-bounce, complaint, soft-bounce, manual (add's default)\n"
          "                      or unsubscribe; a filter for list and export. A soft bounce\n"
          "                      suppresses after soft_bounce_limit (3) within\n"
          "                      soft_bounce_days (7) (pigeon.conf(5))\n"
          "  --status CODE       the status code to keep (5.1.1)\n"
          "  --diagnostic TEXT   the server's text to keep\n"
          "  --json              list: one JSON object per line; export: the same\n"
          "  --spool PATH        the spool file\n"
          "\n"
          "Import and export use CSV (RFC 4180) with the header\n"
          "address,account,reason,status,diagnostic,queue_id,created; an import line may be\n"
          "a bare address, and one bad line imports nothing (its line number is named).\n"
          "check exits 1 when an address is suppressed. Exit status (sysexits.h): 64 usage,\n"
          "65 a bad address or line, 66 no such file, 67 remove: not on the list, 74 I/O.\n",
          out);
}
