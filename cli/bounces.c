/*
 * bounces.c - `pigeon bounces SUBCOMMAND`: reading bounces, complaints and auto-replies.
 *
 *   parse FILE|DIR|-   classifies the messages of an mbox file, a maildir (cur/ and new/),
 *                      a directory of .eml files, or one message (a file or standard
 *                      input) with pigeon_bounce_parse(); one line (or one JSON object with
 *                      --json) per affected recipient, one per message naming none.
 *
 * The subcommands are a table so that `bounces fetch` (reading an account's mailbox over
 * IMAP or POP3, in its own file) slots in beside `parse`.
 *
 * Exit status: 0 when every input was read (whatever it held), 64 usage, 66 an input
 * cannot be read, 71 out of memory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "bounces_fetch.h"
#include "cli.h"
#include "json.h"
#include "pigeon/bounce.h"

/* Largest single message read from standard input. */
#define STDIN_MAX ((size_t)256 * 1024 * 1024)
/* Most files read from one directory. */
#define DIR_FILES_MAX 1000000

static int bounces_parse(int argc, char **argv);

/* The subcommands of `pigeon bounces`. */
static const struct {
    const char *name;                  /* the word after "bounces" */
    const char *summary;               /* one line for the usage */
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand's name */
} subcommands[] = {
    {"parse", "classify bounces in an mbox, a maildir, a directory or a message", bounces_parse},
    {"fetch", "read bounces from an account's mailbox (IMAP, POP3)", cli_bounces_fetch},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* How to print. */
typedef struct out_opts {
    int json;           /* JSON Lines */
    char *verp_key;     /* the VERP key (--verp-key-file), or NULL: tokens are not checked */
    size_t verp_keylen; /* its length */
    unsigned long msgs; /* messages read */
    unsigned long hits; /* recipients printed */
} out_opts;

static void free_key(out_opts *o);

enum bounces_opt {
    OPT_JSON = 0x100,
    OPT_VERP_KEY_FILE,
};

static const struct option parse_longopts[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"verp-key-file", required_argument, NULL, OPT_VERP_KEY_FILE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What the VERP token of the notice's address says, checked with the key: "valid" with
 * the recipient (or the reference), "forged", or "none" (no token, or no key). */
typedef struct verp_check {
    const char *state; /* "valid", "forged", "none" */
    char *rcpt;        /* the recipient the token names (inline form), malloc'd */
    char *ref;         /* the caller's reference (reference form), malloc'd */
} verp_check;

static verp_check check_verp(const pigeon_bounce_report *r, const out_opts *o)
{
    verp_check v = {"none", NULL, NULL};
    if (o->verp_key == NULL || r->to == NULL || r->verp == NULL)
        return v;
    pigeon_err e =
        pigeon_bounce_verp_decode(r->to, NULL, o->verp_key, o->verp_keylen, &v.rcpt, &v.ref);
    v.state = e == PIGEON_OK ? "valid" : e == PIGEON_ERR_AUTH ? "forged" : "none";
    return v;
}

static void print_json(const pigeon_bounce_report *r, const pigeon_bounce_rcpt *rc,
                       const char *source, const verp_check *v)
{
    json_writer w;
    json_init(&w, stdout);
    json_object_begin(&w);
    json_kv_string(&w, "source", source);
    json_kv_string(&w, "kind", pigeon_bounce_kind_name(r->kind));
    json_kv_string(&w, "format", r->format);
    json_kv_string(&w, "rcpt", rc != NULL ? rc->rcpt : NULL);
    json_kv_string(&w, "class",
                   pigeon_bounce_class_name(rc != NULL ? rc->cls : PIGEON_BOUNCE_NONE));
    json_kv_string(&w, "reason", rc != NULL ? rc->reason : "not_a_bounce");
    json_kv_string(&w, "status", rc != NULL && rc->status[0] != '\0' ? rc->status : NULL);
    json_key(&w, "smtp_code");
    if (rc != NULL && rc->smtp_code != 0)
        json_int(&w, rc->smtp_code);
    else
        json_null(&w);
    json_kv_string(&w, "action", rc != NULL ? rc->action : NULL);
    json_kv_string(&w, "diagnostic", rc != NULL ? rc->diagnostic : NULL);
    json_kv_string(&w, "remote_mta", rc != NULL ? rc->remote_mta : NULL);
    json_kv_string(&w, "original_rcpt", rc != NULL ? rc->original_rcpt : NULL);
    json_kv_string(&w, "reporting_mta", r->reporting_mta);
    json_kv_string(&w, "orig_message_id", r->orig_message_id);
    json_kv_string(&w, "orig_from", r->orig_from);
    json_kv_string(&w, "orig_to", r->orig_to);
    json_kv_string(&w, "orig_subject", r->orig_subject);
    json_kv_string(&w, "orig_envelope_from", r->orig_envelope_from);
    json_kv_string(&w, "envelope_id", r->envelope_id);
    json_kv_string(&w, "feedback_type", r->feedback_type);
    json_kv_string(&w, "from", r->from);
    json_kv_string(&w, "to", r->to);
    json_kv_string(&w, "verp", r->verp);
    json_kv_string(&w, "verp_state", v->state);
    json_kv_string(&w, "verp_rcpt", v->rcpt);
    json_kv_string(&w, "verp_ref", v->ref);
    json_kv_string(&w, "subject", r->subject);
    json_kv_bool(&w, "truncated", r->truncated);
    json_object_end(&w);
    json_finish(&w);
}

static void print_row(const pigeon_bounce_report *r, const pigeon_bounce_rcpt *rc,
                      const char *source)
{
    const char *diag = rc != NULL && rc->diagnostic != NULL ? rc->diagnostic
                       : r->subject != NULL                 ? r->subject
                                                            : "";
    printf("%-12s %-9s %-12s %-6s %-32s %-16s %.70s\n", source, pigeon_bounce_kind_name(r->kind),
           pigeon_bounce_class_name(rc != NULL ? rc->cls : PIGEON_BOUNCE_NONE),
           rc != NULL && rc->status[0] != '\0' ? rc->status : "-",
           rc != NULL && rc->rcpt != NULL ? rc->rcpt : "-", rc != NULL ? rc->reason : "-", diag);
}

/* Classifies one message and prints its lines. Returns 0 or EX_OSERR (out of memory). */
static int one_message(const char *msg, size_t len, const char *source, out_opts *o)
{
    pigeon_bounce_report r;
    pigeon_err e = pigeon_bounce_parse(msg, len, NULL, &r);
    o->msgs++;
    if (e != PIGEON_OK) {
        pigeon_bounce_report_cleanup(&r);
        cli_error("bounces: %s: %s", source, pigeon_strerror(e));
        return cli_exit_status(e);
    }
    verp_check v = check_verp(&r, o);
    for (size_t i = 0; i < r.count || (i == 0 && r.count == 0); i++) {
        const pigeon_bounce_rcpt *rc = r.count > 0 ? &r.rcpts[i] : NULL;
        if (o->json)
            print_json(&r, rc, source, &v);
        else
            print_row(&r, rc, source);
        o->hits++;
    }
    free(v.rcpt);
    free(v.ref);
    pigeon_bounce_report_cleanup(&r);
    return 0;
}

/* An mbox (RFC 4155): messages start at lines "From " at the start of the file or after
 * a line break; each message's "From " line is left out. */
static int read_mbox(const char *buf, size_t len, const char *name, out_opts *o)
{
    size_t pos = 0, index = 0;
    char source[64];
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t start = nl != NULL ? (size_t)(nl - buf) + 1 : len, end = start;
        while (end < len && !(len - end >= 5 && memcmp(buf + end, "From ", 5) == 0)) {
            const char *p = memchr(buf + end, '\n', len - end);
            end = p != NULL ? (size_t)(p - buf) + 1 : len;
        }
        snprintf(source, sizeof source, "%.40s#%zu", cli_base_name(name), ++index);
        int st = one_message(buf + start, end - start, source, o);
        if (st != 0)
            return st;
        pos = end;
    }
    return 0;
}

/* A whole file: an mbox when it starts with "From ", else one message. */
static int read_file(const char *path, out_opts *o)
{
    char quoted[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        cli_error("bounces: cannot read %s: %s", cli_shorten(path, quoted, sizeof quoted),
                  strerror(errno));
        if (fd >= 0)
            close(fd);
        return EX_NOINPUT;
    }
    if (st.st_size == 0) {
        close(fd);
        return one_message("", 0, cli_base_name(path), o);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        cli_error("bounces: cannot read %s: %s", cli_shorten(path, quoted, sizeof quoted),
                  strerror(errno));
        return EX_NOINPUT;
    }
    const char *buf = map;
    size_t len = (size_t)st.st_size;
    int status = len >= 5 && memcmp(buf, "From ", 5) == 0
                     ? read_mbox(buf, len, path, o)
                     : one_message(buf, len, cli_base_name(path), o);
    munmap(map, len);
    return status;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order (maildir names start with the time). */
static int read_dir(const char *dir, out_opts *o)
{
    char **names = NULL;
    size_t count = 0, cap = 0;
    DIR *d = opendir(dir);
    int status = 0;
    if (d == NULL)
        return 0;
    for (struct dirent *de; (de = readdir(d)) != NULL && count < DIR_FILES_MAX;) {
        char path[4096];
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (count == cap) {
            char **n = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *n);
            if (n == NULL) {
                status = EX_OSERR;
                break;
            }
            names = n;
        }
        if ((names[count] = strdup(path)) == NULL) {
            status = EX_OSERR;
            break;
        }
        count++;
    }
    closedir(d);
    if (count > 0)
        qsort(names, count, sizeof names[0], by_name);
    for (size_t i = 0; i < count; i++) {
        if (status == 0)
            status = read_file(names[i], o);
        free(names[i]);
    }
    free(names);
    if (status == EX_OSERR)
        cli_error("bounces: out of memory");
    return status;
}

/* A maildir (cur/ and new/) or a directory of messages. */
static int read_input(const char *path, out_opts *o)
{
    struct stat st;
    char quoted[256], sub[4096];
    if (strcmp(path, "-") == 0) {
        char *msg = NULL;
        size_t len = 0;
        pigeon_err e = cli_read_input("-", STDIN_MAX, &msg, &len);
        if (e != PIGEON_OK) {
            cli_error("bounces: cannot read standard input: %s", pigeon_strerror(e));
            return cli_exit_status(e);
        }
        int status = len >= 5 && memcmp(msg, "From ", 5) == 0 ? read_mbox(msg, len, "stdin", o)
                                                              : one_message(msg, len, "stdin", o);
        free(msg);
        return status;
    }
    if (stat(path, &st) != 0) {
        cli_error("bounces: cannot read %s: %s", cli_shorten(path, quoted, sizeof quoted),
                  strerror(errno));
        return EX_NOINPUT;
    }
    if (!S_ISDIR(st.st_mode))
        return read_file(path, o);
    snprintf(sub, sizeof sub, "%s/cur", path);
    if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
        int status = read_dir(sub, o);
        snprintf(sub, sizeof sub, "%s/new", path);
        return status != 0 ? status : read_dir(sub, o);
    }
    return read_dir(path, o);
}

/* Reads the VERP key: the file's bytes, a final line break dropped; at least 16 octets.
 * A key is never taken on the command line (it would show in ps). */
static int read_key(const char *path, out_opts *o)
{
    char *key = NULL;
    size_t len = 0;
    if (cli_secret_key_read("bounces", "VERP key", path, 16, &key, &len) != 0)
        return -1;
    free_key(o);
    o->verp_key = key;
    o->verp_keylen = len;
    return 0;
}

static void free_key(out_opts *o)
{
    if (o->verp_key != NULL)
        OPENSSL_cleanse(o->verp_key, o->verp_keylen);
    free(o->verp_key);
    o->verp_key = NULL;
}

static int bounces_parse(int argc, char **argv)
{
    out_opts o = {0};
    char quoted[256];
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", parse_longopts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON:
            o.json = 1;
            break;
        case OPT_VERP_KEY_FILE:
            if (read_key(optarg, &o) != 0)
                return EX_NOINPUT;
            break;
        case 'h':
            free_key(&o);
            cli_bounces_usage(stdout);
            return 0;
        case ':':
            free_key(&o);
            cli_error("bounces parse: %s needs a value",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        default:
            free_key(&o);
            cli_error("bounces parse: unknown option %s (see pigeon help bounces)",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        }
    }
    if (optind >= argc) {
        free_key(&o);
        cli_error("bounces parse: give an mbox, a maildir, a directory or a message file "
                  "(\"-\" for standard input)");
        return EX_USAGE;
    }
    if (!o.json)
        printf("%-12s %-9s %-12s %-6s %-32s %-16s %s\n", "SOURCE", "KIND", "CLASS", "STATUS",
               "RECIPIENT", "REASON", "DIAGNOSTIC");
    for (int i = optind; i < argc; i++) {
        int status = read_input(argv[i], &o);
        if (status != 0) {
            free_key(&o);
            return status;
        }
    }
    free_key(&o);
    fflush(stdout);
    return ferror(stdout) ? EX_IOERR : 0;
}

int cli_bounces_run(int argc, char **argv)
{
    char quoted[256];
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cli_bounces_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EX_USAGE : 0;
    }
    for (size_t i = 0; i < COUNT(subcommands); i++) {
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    }
    cli_error("bounces: unknown subcommand \"%s\" (see pigeon help bounces)",
              cli_shorten(argv[1], quoted, sizeof quoted));
    return EX_USAGE;
}

void cli_bounces_usage(FILE *out)
{
    fputs("usage: pigeon bounces parse [--json] [--verp-key-file F] FILE|DIR|-...\n"
          "\n"
          "Reads bounces (RFC 3464 DSNs and the non-standard notices of Postfix, Exim,\n"
          "qmail, Exchange, Gmail, Yahoo, QQ Mail and 163), complaints (RFC 5965 ARF), read\n"
          "receipts and auto-replies, and prints per affected recipient the class (hard,\n"
          "soft, block, complaint, none, undetermined), the RFC 3463 status, the reason and\n"
          "the remote server's reply, with the original message's Message-ID, From and To.\n"
          "A FILE starting with \"From \" is an mbox; a DIR is a maildir (cur/, new/) or a\n"
          "directory of messages; \"-\" is standard input.\n"
          "\n"
          "  --json                  one JSON object per line (per recipient)\n"
          "  --verp-key-file F       check the VERP token of each notice's address with the\n"
          "                          key in F (JSON: verp_state valid|forged|none, verp_rcpt)\n"
          "\n"
          "Subcommands:\n",
          out);
    for (size_t i = 0; i < COUNT(subcommands); i++)
        fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fputs("\nExit status: 0 all inputs read, 64 usage error, 66 an input cannot be read.\n\n", out);
    cli_bounces_fetch_usage(out);
}
