/*
 * lint.c - `pigeon lint FILE.eml` (and the report of `pigeon send --lint`): the findings
 * of pigeon_lint_message() with their reasons and fixes, and with --spamassassin the
 * score and rule names of `spamassassin -L -t` (local tests only: no network, no DNS
 * blocklists), run on a private temporary copy of the message.
 *
 * Exit status: 0 clean, 1 warnings, 2 errors; 64 usage, 66 the file cannot be read,
 * 69 spamassassin is not installed or fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"
#include "lint.h"
#include "util/fdio.h"

/* Largest message read (bodies of that size are never sensible to lint past this). */
#define LINT_MAX ((size_t)256 * 1024 * 1024)
/* Largest spamassassin output kept (the message comes back with its report). */
#define SA_OUT_MAX ((size_t)64 * 1024 * 1024)

enum lint_opt {
    OPT_BULK = 0x100,
    OPT_DKIM_DOMAIN,
    OPT_SPAMASSASSIN,
    OPT_JSON,
};

static const struct option longopts[] = {
    {"bulk", no_argument, NULL, OPT_BULK},
    {"dkim-domain", required_argument, NULL, OPT_DKIM_DOMAIN},
    {"spamassassin", no_argument, NULL, OPT_SPAMASSASSIN},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* SpamAssassin's verdict. */
typedef struct sa_result {
    int ran;          /* spamassassin ran and reported */
    double score;     /* score= */
    double required;  /* required= */
    char rules[4096]; /* tests=, comma-separated */
} sa_result;

/* Runs spamassassin with the message (a temporary file) on stdin; its output in *out. */
static int run_spamassassin(const char *msg, size_t len, char **out, size_t *outlen)
{
    int in = cli_temp_file("lint"), pipefd[2] = {-1, -1};
    if (in < 0)
        return -1;
    if (pg_write_all(in, msg, len) != 0 || lseek(in, 0, SEEK_SET) != 0 || pipe(pipefd) != 0) {
        close(in);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in, STDIN_FILENO);
        dup2(pipefd[1], STDOUT_FILENO);
        int devnull = open("/dev/null", O_WRONLY); /* its chatter ("created user_prefs") */
        if (devnull >= 0)
            dup2(devnull, STDERR_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        close(in);
        execlp("spamassassin", "spamassassin", "-L", "-t", (char *)NULL);
        _exit(127);
    }
    close(in);
    close(pipefd[1]);
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (ssize_t r = 1; buf != NULL && r > 0;) {
        if (n + 1 >= cap && cap < SA_OUT_MAX) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                break;
            buf = nb, cap *= 2;
        }
        r = read(pipefd[0], buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            r = 1;
        else if (r > 0)
            n += (size_t)r;
        if (n + 1 >= cap && cap >= SA_OUT_MAX)
            break;
    }
    close(pipefd[0]);
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0 || buf == NULL || !WIFEXITED(st) || WEXITSTATUS(st) == 127) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    return 0;
}

/* Reads X-Spam-Status (folded) from spamassassin's output. */
static int parse_status(const char *out, sa_result *sa)
{
    const char *h = strstr(out, "X-Spam-Status:");
    if (h == NULL)
        return -1;
    char status[8192];
    size_t k = 0;
    for (const char *p = h + 14; *p && k + 1 < sizeof status; p++) {
        if (*p == '\r')
            continue;
        if (*p == '\n') {
            if (p[1] != ' ' && p[1] != '\t')
                break;
            continue;
        }
        status[k++] = *p == '\t' ? ' ' : *p;
    }
    status[k] = '\0';
    const char *s = strstr(status, "score="), *r = strstr(status, "required="),
               *t = strstr(status, "tests=");
    if (s == NULL || r == NULL)
        return -1;
    sa->score = strtod(s + 6, NULL);
    sa->required = strtod(r + 9, NULL);
    /* tests=A,B,<fold>C autolearn=...: the list may be folded after a comma. */
    k = 0;
    for (t = t != NULL ? t + 6 : ""; *t && k + 1 < sizeof sa->rules; t++) {
        if (*t == ' ' && (k == 0 || sa->rules[k - 1] != ','))
            break;
        if (*t != ' ')
            sa->rules[k++] = *t;
    }
    sa->rules[k] = '\0';
    sa->ran = 1;
    return 0;
}

static const char *severity_name(pigeon_lint_severity s)
{
    return s == PIGEON_LINT_ERROR ? "error" : "warning";
}

static void print_json(const pigeon_lint_report *r, const sa_result *sa, int worst)
{
    json_writer w;
    json_init(&w, stdout);
    json_object_begin(&w);
    json_kv_string(&w, "result", worst == 0 ? "clean" : worst == 1 ? "warnings" : "errors");
    json_key(&w, "findings");
    json_array_begin(&w);
    for (size_t i = 0; i < r->count; i++) {
        json_object_begin(&w);
        json_kv_string(&w, "severity", severity_name(r->items[i].severity));
        json_kv_string(&w, "code", r->items[i].code);
        json_kv_string(&w, "reason", r->items[i].reason);
        json_kv_string(&w, "fix", r->items[i].fix);
        json_object_end(&w);
    }
    json_array_end(&w);
    if (sa->ran) {
        json_key(&w, "spamassassin");
        json_object_begin(&w);
        json_key(&w, "score");
        json_double(&w, sa->score);
        json_key(&w, "required");
        json_double(&w, sa->required);
        json_key(&w, "rules");
        json_array_begin(&w);
        char rule[256];
        for (const char *t = sa->rules; *t != '\0';) {
            size_t n = strcspn(t, ",");
            snprintf(rule, sizeof rule, "%.*s", (int)(n < 255 ? n : 255), t);
            if (n > 0)
                json_string(&w, rule);
            t += n + (t[n] == ',');
        }
        json_array_end(&w);
        json_object_end(&w);
    }
    json_object_end(&w);
    json_finish(&w);
}

static void print_text(const pigeon_lint_report *r, const sa_result *sa)
{
    for (size_t i = 0; i < r->count; i++)
        printf("%s: %s: %s\n  fix: %s\n", severity_name(r->items[i].severity), r->items[i].code,
               r->items[i].reason, r->items[i].fix);
    if (sa->ran)
        printf("spamassassin: score %.1f (spam at %.1f); rules: %s\n", sa->score, sa->required,
               sa->rules[0] ? sa->rules : "none");
    if (r->count == 0)
        printf("clean: no findings\n");
}

/* Adds SpamAssassin's verdict to the report as a finding when it is high. */
static int spam_finding(pigeon_lint_report *r, const sa_result *sa)
{
    if (sa->score < sa->required / 2)
        return 0;
    char reason[700];
    snprintf(reason, sizeof reason, "SpamAssassin scores it %.1f (spam at %.1f): %.500s", sa->score,
             sa->required, sa->rules);
    pigeon_lint_finding *items = realloc(r->items, (r->count + 1) * sizeof *items);
    if (items == NULL)
        return -1;
    r->items = items;
    r->cap = r->count + 1;
    pigeon_lint_finding *f = &r->items[r->count];
    f->severity = sa->score >= sa->required ? PIGEON_LINT_ERROR : PIGEON_LINT_WARNING;
    f->code = "spamassassin";
    f->reason = strdup(reason);
    f->fix = strdup("see each rule at https://spamassassin.apache.org/tests.html");
    if (f->reason == NULL || f->fix == NULL) {
        free(f->reason);
        free(f->fix);
        return -1;
    }
    r->count++;
    return 0;
}

int cli_lint_check(const char *msg, size_t len, const cli_lint_opts *o)
{
    pigeon_lint_report r;
    sa_result sa;
    memset(&sa, 0, sizeof sa);
    if (pigeon_lint_message(msg, len, &o->lint, &r) != PIGEON_OK) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    if (o->spamassassin) {
        char *out = NULL;
        size_t outlen = 0;
        if (run_spamassassin(msg, len, &out, &outlen) != 0 || parse_status(out, &sa) != 0) {
            free(out);
            pigeon_lint_report_cleanup(&r);
            cli_error("lint: cannot run spamassassin -L -t (install the spamassassin package)");
            return EX_UNAVAILABLE;
        }
        free(out);
        if (spam_finding(&r, &sa) != 0) {
            pigeon_lint_report_cleanup(&r);
            cli_error("out of memory");
            return EX_OSERR;
        }
    }
    int worst = pigeon_lint_worst(&r);
    if (o->json)
        print_json(&r, &sa, worst);
    else
        print_text(&r, &sa);
    pigeon_lint_report_cleanup(&r);
    return worst;
}

int cli_lint_send(pigeon_message *msg, const char *dkim_domain)
{
    char *data = NULL;
    size_t len = 0;
    cli_lint_opts o;
    memset(&o, 0, sizeof o);
    o.lint.dkim_domain = dkim_domain;
    if (pigeon_message_write_buffer(msg, NULL, &data, &len) != PIGEON_OK) {
        cli_error("cannot write the message: %s", pigeon_message_error(msg));
        return EX_DATAERR;
    }
    int status = cli_lint_check(data, len, &o);
    free(data);
    return status;
}

int cli_lint_run(int argc, char **argv)
{
    cli_lint_opts o;
    char quoted[256];
    int opt;
    memset(&o, 0, sizeof o);
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_BULK:
            o.lint.bulk = 1;
            break;
        case OPT_DKIM_DOMAIN:
            o.lint.dkim_domain = optarg;
            break;
        case OPT_SPAMASSASSIN:
            o.spamassassin = 1;
            break;
        case OPT_JSON:
            o.json = 1;
            break;
        case 'h':
            cli_lint_usage(stdout);
            return 0;
        case ':':
            cli_error("lint: %s needs a value", cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        default:
            cli_error("lint: unknown option %s (see pigeon help lint)",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        }
    }
    if (optind + 1 != argc) {
        cli_error("lint: give one message file (\"-\" for standard input)");
        return EX_USAGE;
    }
    char *msg = NULL;
    size_t len = 0;
    pigeon_err e = cli_read_input(argv[optind], LINT_MAX, &msg, &len);
    if (e != PIGEON_OK) {
        cli_error("lint: cannot read %s: %s", cli_shorten(argv[optind], quoted, sizeof quoted),
                  e == PIGEON_ERR_NOTFOUND ? strerror(errno) : pigeon_strerror(e));
        return e == PIGEON_ERR_NOTFOUND ? EX_NOINPUT : cli_exit_status(e);
    }
    int status = cli_lint_check(msg, len, &o);
    free(msg);
    return status;
}

void cli_lint_usage(FILE *out)
{
    fputs("usage: pigeon lint [--bulk] [--dkim-domain D] [--spamassassin] [--json] FILE.eml\n"
          "\n"
          "Checks a message for what spam filters and mail clients dislike, and says why\n"
          "and how to fix each finding: no text part, image-only HTML, HTML over 102 KB\n"
          "(Gmail clips it), no Date or Message-ID, a From not aligned with the DKIM d=,\n"
          "link text showing another domain than the link, URL shorteners, an all-caps or\n"
          "exclamation-heavy Subject, bulk mail without List-Unsubscribe, http: or invalid\n"
          "image URLs, plain-ASCII text sent as base64. FILE \"-\" is standard input.\n"
          "\n"
          "  --bulk                  bulk or merged mail (also: Precedence: bulk or list)\n"
          "  --dkim-domain D         the d= it will be signed with (when not signed yet)\n"
          "  --spamassassin          add SpamAssassin's score and rules (spamassassin -L -t,\n"
          "                          offline)\n"
          "  --json                  one JSON object on stdout\n"
          "\n"
          "Exit status: 0 clean, 1 warnings, 2 errors, 64 usage error, 66 the file cannot\n"
          "be read, 69 spamassassin cannot be run.\n",
          out);
}
