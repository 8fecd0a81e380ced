/*
 * bounces_fetch.c - `pigeon bounces fetch`: reads the account's mailbox over IMAP (or POP3
 * with --pop3), hands each message to the bounce parser (pigeon/bounce.h), keeps the
 * bounces and complaints about messages we sent, and records them in the suppression list
 * (pigeon/suppress.h): hard bounces and complaints at once, soft bounces by the account's
 * soft-bounce policy; policy blocks and undetermined failures are reported only.
 *
 * "Ours" (anyone can send a message that looks like a bounce, naming any address): the
 * original's Message-ID is one of the account's messages in the spool, or a message in the
 * account's Sent folder (where --save-sent files every message sent directly). A bounce
 * that matches neither suppresses nothing and stays where it is.
 *
 * IMAP: the folder (INBOX) is selected, messages not yet read by this command (without
 * the $PigeonBounceRead keyword; --all reads them again) are fetched with BODY.PEEK[]
 * (never marked \Seen), then flagged $PigeonBounceRead so that a soft bounce is not counted
 * twice; matched bounces are moved (--move FOLDER: UID MOVE, RFC 6851) or deleted
 * (--delete). POP3: every message is read (RFC 1939 has no flags); --delete removes the
 * matched ones at QUIT.
 *
 * Exit status: 0 when the mailbox was read (whatever it held), 64 usage, 77 login refused,
 * 75 network or timeout, 69 TLS or refused, 76 protocol error, 78 configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>

#include <openssl/crypto.h>

#include "bounces_fetch.h"
#include "cli.h"
#include "deliver.h"
#include "json.h"
#include "mailbox_conn.h"
#include "pigeon/bounce.h"
#include "pigeon/suppress.h"
#include "queue.h"
#include "spool/spool_hooks.h"
#include "suppress.h"
#include "verp.h"

/* Largest message read (the bounce parser reads 32 MiB at most). */
#define MESSAGE_MAX ((size_t)32 * 1024 * 1024)
/* The keyword of messages this command has read (RFC 9051 2.3.2 keywords). */
#define READ_KEYWORD "$PigeonBounceRead"

enum fetch_opt {
    OPT_POP3 = 0x400,
    OPT_FOLDER,
    OPT_MOVE,
    OPT_DELETE,
    OPT_SINCE,
    OPT_ALL,
    OPT_IMAP_HOST,
    OPT_IMAP_PORT,
    OPT_POP3_HOST,
    OPT_POP3_PORT,
    OPT_VERP_KEY_FILE,
};

static const struct option longopts[] = {
    {"account", required_argument, NULL, CLI_OPT_ACCOUNT},
    {"pop3", no_argument, NULL, OPT_POP3},
    {"folder", required_argument, NULL, OPT_FOLDER},
    {"move", required_argument, NULL, OPT_MOVE},
    {"delete", no_argument, NULL, OPT_DELETE},
    {"since", required_argument, NULL, OPT_SINCE},
    {"all", no_argument, NULL, OPT_ALL},
    {"json", no_argument, NULL, CLI_OPT_JSON},
    {"spool", required_argument, NULL, CLI_OPT_SPOOL},
    {"imap-host", required_argument, NULL, OPT_IMAP_HOST},
    {"imap-port", required_argument, NULL, OPT_IMAP_PORT},
    {"pop3-host", required_argument, NULL, OPT_POP3_HOST},
    {"pop3-port", required_argument, NULL, OPT_POP3_PORT},
    {"verp-key-file", required_argument, NULL, OPT_VERP_KEY_FILE},
    {"password-file", required_argument, NULL, CLI_OPT_PASSWORD_FILE},
    {"password-command", required_argument, NULL, CLI_OPT_PASSWORD_COMMAND},
    {"verbose", no_argument, NULL, CLI_OPT_VERBOSE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One Message-ID of ours and the queue id it was stored under ("" when from Sent). */
struct our_id {
    char *message_id;  /* without angle brackets */
    char queue_id[40]; /* the spool's id */
};

/* What the command was asked and what it holds while it runs. */
typedef struct fetch_ctx {
    const char *account;           /* --account, or NULL for the default */
    int pop3;                      /* --pop3 */
    const char *folder;            /* --folder (INBOX) */
    const char *move;              /* --move FOLDER, or NULL */
    int delete;                    /* --delete */
    char since[16];                /* --since as an IMAP date ("1-Dec-2026"), or "" */
    int all;                       /* --all: read messages already read too */
    int quiet;                     /* the daemon's check: print nothing, count only */
    char *verp_key;                /* --verp-key-file's key, or NULL */
    size_t verp_keylen;            /* its length */
    char *verp_rcpt;               /* the recipient a valid VERP token of this message names */
    const char *spool_opt;         /* --spool */
    cfg_settings cfg;              /* the account's settings */
    deliver_opts o;                /* -v, --json, password options */
    pigeon_spool *spool;           /* the spool (ours list, suppression list) */
    struct our_id *ids;            /* the account's Message-IDs in the spool */
    size_t nids;                   /* their number */
    size_t ids_cap;                /* allocated */
    pigeon_imap *sent;             /* a second IMAP session on the Sent folder, or NULL */
    int sent_failed;               /* the Sent folder could not be opened: not tried again */
    mailbox_plan sent_plan;        /* its settings */
    pigeon_suppress_policy policy; /* soft bounces */
    unsigned long read;            /* messages read */
    unsigned long bounces;         /* bounces and complaints among them */
    unsigned long matched;         /* of ours */
    unsigned long suppressed;      /* addresses now suppressed */
} fetch_ctx;

/* A message read into memory. */
struct msgbuf {
    char *data;  /* the bytes */
    size_t len;  /* how many */
    size_t cap;  /* allocated */
    int too_big; /* over MESSAGE_MAX: the rest was dropped */
};

static int msg_sink(void *ctx, const void *data, size_t n)
{
    struct msgbuf *b = ctx;
    if (b->len + n > MESSAGE_MAX) {
        b->too_big = 1;
        n = MESSAGE_MAX - b->len;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *grown = realloc(b->data, cap);
        if (grown == NULL)
            return -1;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

static int collect_id(void *vctx, const pigeon_spool_entry *e)
{
    fetch_ctx *fc = vctx;
    if (e->message_id == NULL || e->message_id[0] == '\0')
        return 0;
    if (fc->nids == fc->ids_cap) {
        size_t cap = fc->ids_cap ? fc->ids_cap * 2 : 64;
        struct our_id *grown = realloc(fc->ids, cap * sizeof *grown);
        if (grown == NULL)
            return 1;
        fc->ids = grown;
        fc->ids_cap = cap;
    }
    const char *id = e->message_id;
    size_t n = strlen(id);
    if (n >= 2 && id[0] == '<' && id[n - 1] == '>') {
        id++;
        n -= 2;
    }
    struct our_id *o = &fc->ids[fc->nids];
    o->message_id = strndup(id, n);
    snprintf(o->queue_id, sizeof o->queue_id, "%s", e->queue_id);
    if (o->message_id != NULL)
        fc->nids++;
    return 0;
}

/* The spool's entry for a Message-ID (without brackets), or NULL. */
static const struct our_id *in_spool(const fetch_ctx *fc, const char *msgid)
{
    for (size_t i = 0; i < fc->nids; i++)
        if (strcmp(fc->ids[i].message_id, msgid) == 0)
            return &fc->ids[i];
    return NULL;
}

/* Whether the account's Sent folder holds a message with this Message-ID. */
static int in_sent(fetch_ctx *fc, const char *msgid)
{
    if (fc->sent_failed)
        return 0;
    if (fc->sent == NULL) {
        char *name = NULL;
        pigeon_err err = PIGEON_ERR_CONFIG;
        if (mailbox_plan_init(&fc->sent_plan, &fc->cfg, &fc->o, 0) == 0 &&
            (err = pigeon_imap_connect(&fc->sent_plan.opts, &fc->sent)) == PIGEON_OK &&
            (err = pigeon_imap_find_special(fc->sent, "\\Sent", &name)) == PIGEON_OK)
            err = pigeon_imap_select(fc->sent, name, 1, NULL);
        free(name);
        if (err != PIGEON_OK) {
            if (fc->sent != NULL)
                cli_error("warning: cannot search the Sent folder for the bounced messages: %s",
                          pigeon_imap_error(fc->sent));
            fc->sent_failed = 1;
            return 0;
        }
    }
    char value[1024];
    uint32_t *uids = NULL;
    size_t n = 0;
    snprintf(value, sizeof value, "<%s>", msgid);
    pigeon_err err = pigeon_imap_uid_search_header(fc->sent, "Message-ID", value, &uids, &n);
    free(uids);
    return err == PIGEON_OK && n > 0;
}

static pigeon_suppress_reason reason_of(pigeon_bounce_class cls)
{
    switch (cls) {
    case PIGEON_BOUNCE_HARD:
        return PIGEON_SUPPRESS_HARD_BOUNCE;
    case PIGEON_BOUNCE_SOFT:
        return PIGEON_SUPPRESS_SOFT_BOUNCE;
    case PIGEON_BOUNCE_COMPLAINT:
        return PIGEON_SUPPRESS_COMPLAINT;
    default: /* a policy block is about us, not the address; undetermined says nothing */
        return PIGEON_SUPPRESS_NONE;
    }
}

static void print_record(fetch_ctx *fc, const char *where, const pigeon_bounce_report *r,
                         const pigeon_bounce_rcpt *rc, const char *matched_by, int suppressed,
                         const char *action)
{
    if (fc->quiet)
        return;
    if (fc->o.json) {
        json_writer w;
        json_init(&w, stdout);
        json_object_begin(&w);
        json_kv_string(&w, "message", where);
        json_kv_string(&w, "kind", pigeon_bounce_kind_name(r->kind));
        json_kv_string(&w, "format", r->format);
        json_kv_string(&w, "rcpt", rc != NULL ? rc->rcpt : NULL);
        json_kv_string(&w, "class",
                       pigeon_bounce_class_name(rc != NULL ? rc->cls : PIGEON_BOUNCE_NONE));
        json_kv_string(&w, "reason", rc != NULL ? rc->reason : NULL);
        json_kv_string(&w, "status", rc != NULL && rc->status[0] ? rc->status : NULL);
        json_kv_string(&w, "diagnostic", rc != NULL ? rc->diagnostic : NULL);
        json_kv_string(&w, "message_id", r->orig_message_id);
        json_kv_bool(&w, "matched", matched_by != NULL);
        json_kv_string(&w, "matched_by", matched_by);
        json_kv_bool(&w, "suppressed", suppressed);
        json_kv_string(&w, "action", action);
        json_object_end(&w);
        json_finish(&w);
        return;
    }
    printf("%s %s %s %s <%s> %s%s%s%s\n", where, pigeon_bounce_kind_name(r->kind),
           pigeon_bounce_class_name(rc != NULL ? rc->cls : PIGEON_BOUNCE_NONE),
           rc != NULL && rc->rcpt != NULL ? rc->rcpt : "-",
           r->orig_message_id != NULL ? r->orig_message_id : "",
           matched_by != NULL ? "ours" : "not-ours (ignored)", suppressed ? " suppressed" : "",
           action != NULL ? " " : "", action != NULL ? action : "");
}

/*
 * Parses one message into r and matches it: 2 when it is a bounce or complaint about a
 * message in the spool, 1 about one in the Sent folder, 0 otherwise.
 */
static int handle_message(fetch_ctx *fc, const struct msgbuf *b, pigeon_bounce_report *r)
{
    fc->read++;
    if (pigeon_bounce_parse(b->data != NULL ? b->data : "", b->len, NULL, r) != PIGEON_OK)
        return 0;
    if (r->kind != PIGEON_BOUNCE_KIND_BOUNCE && r->kind != PIGEON_BOUNCE_KIND_COMPLAINT)
        return 0;
    fc->bounces++;
    const char *matched_by = NULL;
    const struct our_id *ours = NULL;
    free(fc->verp_rcpt);
    fc->verp_rcpt = NULL;
    if (r->orig_message_id != NULL) {
        if ((ours = in_spool(fc, r->orig_message_id)) != NULL)
            matched_by = "spool";
        else if (in_sent(fc, r->orig_message_id))
            matched_by = "sent";
    }
    /* A VERP token whose tag verifies names the recipient even when the notice does not
     * (pigeon/bounce.h); a forged one matches nothing. */
    if (fc->verp_key != NULL && r->to != NULL && r->verp != NULL) {
        char *rcpt = NULL, *ref = NULL;
        if (pigeon_bounce_verp_decode(r->to, NULL, fc->verp_key, fc->verp_keylen, &rcpt, &ref) ==
            PIGEON_OK) {
            fc->verp_rcpt = rcpt;
            rcpt = NULL;
            if (matched_by == NULL)
                matched_by = "verp";
        }
        free(rcpt);
        free(ref);
    }
    if (matched_by != NULL)
        fc->matched++;
    if (matched_by == NULL)
        return 0;
    return ours != NULL ? 2 : strcmp(matched_by, "sent") == 0 ? 1 : 3;
}

/* Tells the application (webhooks, cli/webhook.h): a "bounced" or "complained" event for
 * a matched recipient, through the spool's outbox, which stores nothing when no webhook is
 * configured. A backend without an outbox has no webhooks to tell. */
static int hook_event(fetch_ctx *fc, const pigeon_bounce_rcpt *rc, const char *queue_id)
{
    pg_spool_hook_event ev = {
        .type = rc->cls == PIGEON_BOUNCE_COMPLAINT ? PG_HOOK_COMPLAINED : PG_HOOK_BOUNCED,
        .queue_id = queue_id,
        .rcpt = rc->rcpt,
        .account = fc->cfg.account,
        .smtp_code = rc->smtp_code,
        .enhanced = rc->status[0] ? rc->status : NULL,
        .text = rc->diagnostic,
        .at_ms = pigeon_spool_now_ms(),
    };
    pigeon_err err = pg_spool_hook_add(fc->spool, &ev);
    if (err == PIGEON_OK || err == PIGEON_ERR_UNSUPPORTED)
        return 0;
    cli_error("cannot record the webhook event of %s: %s", rc->rcpt, pigeon_spool_error(fc->spool));
    return cli_exit_status(err);
}

/* Records the recipients of a matched report; prints every recipient. */
static int record(fetch_ctx *fc, const char *where, const pigeon_bounce_report *r, int matched,
                  const char *queue_id, const char *action)
{
    const char *by = matched == 2 ? "spool" : matched == 1 ? "sent" : matched == 3 ? "verp" : NULL;
    if (r->count == 0)
        print_record(fc, where, r, NULL, by, 0, action);
    for (size_t i = 0; i < r->count; i++) {
        pigeon_bounce_rcpt named = r->rcpts[i];
        if (fc->verp_rcpt != NULL && (named.rcpt == NULL || matched == 3))
            named.rcpt = fc->verp_rcpt; /* the token is authenticated; the text is not */
        const pigeon_bounce_rcpt *rc = &named;
        int suppressed = 0;
        pigeon_suppress_reason why = reason_of(rc->cls);
        if (by != NULL && rc->rcpt != NULL && why != PIGEON_SUPPRESS_NONE) {
            pigeon_suppress_entry e = {
                .account = fc->cfg.account,
                .address = rc->rcpt,
                .reason = why,
                .status = rc->status[0] ? rc->status : NULL,
                .diagnostic = rc->diagnostic,
                .queue_id = queue_id,
                .created_ms = pigeon_spool_now_ms(),
            };
            pigeon_err err = pigeon_suppress_add(fc->spool, &e, &fc->policy, &suppressed);
            if (err == PIGEON_ERR_ADDRESS) {
                suppressed = 0;
            } else if (err != PIGEON_OK) {
                cli_error("cannot record the bounce of %s: %s", rc->rcpt,
                          pigeon_spool_error(fc->spool));
                return cli_exit_status(err);
            }
            fc->suppressed += (unsigned long)suppressed;
        }
        if (by != NULL && rc->rcpt != NULL && rc->cls != PIGEON_BOUNCE_NONE) {
            int status = hook_event(fc, rc, queue_id);
            if (status != 0)
                return status;
        }
        print_record(fc, where, r, rc, by, suppressed, action);
    }
    return 0;
}

static int run_imap(fetch_ctx *fc, mailbox_plan *plan)
{
    pigeon_imap *m = NULL;
    uint32_t *uids = NULL;
    size_t n = 0;
    int status = 0;
    char criteria[64];
    pigeon_err err = pigeon_imap_connect(&plan->opts, &m);
    if (err == PIGEON_OK)
        err = pigeon_imap_select(m, fc->folder, 0, NULL);
    snprintf(criteria, sizeof criteria, "%s%s%s", fc->all ? "ALL" : "UNKEYWORD " READ_KEYWORD,
             fc->since[0] ? " SINCE " : "", fc->since);
    if (err == PIGEON_OK)
        err = pigeon_imap_uid_search(m, criteria, &uids, &n);
    for (size_t i = 0; err == PIGEON_OK && status == 0 && i < n; i++) {
        struct msgbuf b = {0};
        pigeon_bounce_report r = {0};
        char where[32];
        snprintf(where, sizeof where, "uid:%u", (unsigned)uids[i]);
        err = pigeon_imap_uid_fetch(m, uids[i], msg_sink, &b, NULL);
        if (err == PIGEON_ERR_NOTFOUND) { /* expunged meanwhile */
            err = PIGEON_OK;
            free(b.data);
            continue;
        }
        const char *action = NULL;
        int ours = err == PIGEON_OK ? handle_message(fc, &b, &r) : 0;
        if (err == PIGEON_OK && r.kind != PIGEON_BOUNCE_KIND_OTHER && fc->move != NULL && ours) {
            err = pigeon_imap_uid_move(m, uids[i], fc->move);
            action = "moved";
        } else if (err == PIGEON_OK && fc->delete &&ours) {
            err = pigeon_imap_uid_delete(m, uids[i]);
            action = "deleted";
        } else if (err == PIGEON_OK) {
            /* Read once: a soft bounce read again must not count twice. */
            err = pigeon_imap_uid_add_flags(m, uids[i], READ_KEYWORD);
            if (err == PIGEON_ERR_REJECTED) {
                /* A server without keywords (PERMANENTFLAGS lacks \*): read again next
                 * time, which only a soft bounce minds. */
                err = PIGEON_OK;
            }
        }
        if (err == PIGEON_OK &&
            (r.kind == PIGEON_BOUNCE_KIND_BOUNCE || r.kind == PIGEON_BOUNCE_KIND_COMPLAINT)) {
            const struct our_id *id = r.orig_message_id ? in_spool(fc, r.orig_message_id) : NULL;
            status = record(fc, where, &r, ours, id != NULL ? id->queue_id : NULL, action);
        }
        pigeon_bounce_report_cleanup(&r);
        free(b.data);
    }
    free(uids);
    if (err != PIGEON_OK) {
        cli_error("bounces fetch: %s", pigeon_imap_error(m));
        status = mailbox_exit_status(err);
    } else {
        pigeon_imap_logout(m);
    }
    pigeon_imap_free(m);
    return status;
}

struct pop3_list {
    unsigned *numbers; /* message numbers */
    size_t n;          /* how many */
    size_t cap;        /* allocated */
};

static int pop3_collect(void *ctx, unsigned number, const char *uid)
{
    (void)uid;
    struct pop3_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        unsigned *grown = realloc(l->numbers, cap * sizeof *grown);
        if (grown == NULL)
            return 1;
        l->numbers = grown;
        l->cap = cap;
    }
    l->numbers[l->n++] = number;
    return 0;
}

static int run_pop3(fetch_ctx *fc, mailbox_plan *plan)
{
    pigeon_pop3 *p = NULL;
    struct pop3_list list = {0};
    int status = 0;
    pigeon_err err = pigeon_pop3_connect(&plan->opts, &p);
    if (err == PIGEON_OK)
        err = pigeon_pop3_uidl(p, pop3_collect, &list);
    for (size_t i = 0; err == PIGEON_OK && status == 0 && i < list.n; i++) {
        struct msgbuf b = {0};
        pigeon_bounce_report r = {0};
        char where[32];
        snprintf(where, sizeof where, "pop3:%u", list.numbers[i]);
        err = pigeon_pop3_retr(p, list.numbers[i], msg_sink, &b, NULL);
        const char *action = NULL;
        int ours = err == PIGEON_OK ? handle_message(fc, &b, &r) : 0;
        if (err == PIGEON_OK && fc->delete &&ours) {
            err = pigeon_pop3_dele(p, list.numbers[i]);
            action = "deleted";
        }
        if (err == PIGEON_OK &&
            (r.kind == PIGEON_BOUNCE_KIND_BOUNCE || r.kind == PIGEON_BOUNCE_KIND_COMPLAINT)) {
            const struct our_id *id = r.orig_message_id ? in_spool(fc, r.orig_message_id) : NULL;
            status = record(fc, where, &r, ours, id != NULL ? id->queue_id : NULL, action);
        }
        pigeon_bounce_report_cleanup(&r);
        free(b.data);
    }
    free(list.numbers);
    /* RFC 1939 6: the deletions take effect only at QUIT. */
    if (err == PIGEON_OK)
        err = pigeon_pop3_quit(p);
    if (err != PIGEON_OK) {
        cli_error("bounces fetch: %s", pigeon_pop3_error(p));
        status = mailbox_exit_status(err);
    }
    pigeon_pop3_free(p);
    return status;
}

/* The VERP key: the file's bytes without a final line break, at least 16 octets. */
static int read_verp_key(fetch_ctx *fc, const char *path)
{
    char *key = NULL;
    size_t len = 0;
    if (cli_secret_key_read("bounces fetch", "VERP key", path, 16, &key, &len) != 0)
        return -1;
    free(fc->verp_key);
    fc->verp_key = key;
    fc->verp_keylen = len;
    return 0;
}

/* --since YYYY-MM-DD -> "D-Mon-YYYY" (RFC 9051 9 date). */
static int since_date(const char *s, char *out, size_t n)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int y = 0, mo = 0, d = 0;
    char tail = 0;
    if (sscanf(s, "%4d-%2d-%2d%c", &y, &mo, &d, &tail) != 3 || y < 1970 || y > 9999 || mo < 1 ||
        mo > 12 || d < 1 || d > 31)
        return -1;
    snprintf(out, n, "%d-%s-%04d", d, months[mo - 1], y);
    return 0;
}

static int parse_args(fetch_ctx *fc, int argc, char **argv)
{
    char quoted[128];
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":hv", longopts, NULL)) != -1) {
        enum cfg_key k = K_COUNT;
        switch (opt) {
        case CLI_OPT_ACCOUNT:
            fc->account = optarg;
            break;
        case OPT_POP3:
            fc->pop3 = 1;
            break;
        case OPT_FOLDER:
            fc->folder = optarg;
            break;
        case OPT_MOVE:
            fc->move = optarg;
            break;
        case OPT_DELETE:
            fc->delete = 1;
            break;
        case OPT_ALL:
            fc->all = 1;
            break;
        case OPT_SINCE:
            if (since_date(optarg, fc->since, sizeof fc->since) != 0) {
                cli_error("bounces fetch: invalid --since \"%s\": expected YYYY-MM-DD",
                          cli_shorten(optarg, quoted, sizeof quoted));
                return EX_USAGE;
            }
            break;
        case CLI_OPT_JSON:
            fc->o.json = 1;
            break;
        case CLI_OPT_SPOOL:
            fc->spool_opt = optarg;
            break;
        case CLI_OPT_PASSWORD_FILE:
            fc->o.password_file = optarg;
            break;
        case CLI_OPT_PASSWORD_COMMAND:
            fc->o.password_command = optarg;
            break;
        case CLI_OPT_VERBOSE:
        case 'v':
            fc->o.verbose++;
            break;
        case OPT_VERP_KEY_FILE:
            if (read_verp_key(fc, optarg) != 0)
                return EX_NOINPUT;
            break;
        case OPT_IMAP_HOST:
            k = K_IMAP_HOST;
            break;
        case OPT_IMAP_PORT:
            k = K_IMAP_PORT;
            break;
        case OPT_POP3_HOST:
            k = K_POP3_HOST;
            break;
        case OPT_POP3_PORT:
            k = K_POP3_PORT;
            break;
        case 'h':
            cli_bounces_fetch_usage(stdout);
            return 0;
        case ':':
            cli_error("bounces fetch: %s needs a value",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        default:
            cli_error("bounces fetch: unknown option %s (see pigeon help bounces)",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        }
        if (k != K_COUNT) {
            char why[200];
            if (cfg_check(k, optarg, why, sizeof why) != 0) {
                cli_error("bounces fetch: invalid --%s \"%s\": %s", cfg_key_name(k),
                          cli_shorten(optarg, quoted, sizeof quoted), why);
                return EX_USAGE;
            }
            cfg_set(&fc->cfg, k, optarg, CFG_CLI, "command line");
        }
    }
    if (optind < argc) {
        cli_error("bounces fetch: unexpected argument \"%s\"",
                  cli_shorten(argv[optind], quoted, sizeof quoted));
        return EX_USAGE;
    }
    if (fc->move != NULL && fc->delete) {
        cli_error("bounces fetch: --move and --delete exclude each other");
        return EX_USAGE;
    }
    if (fc->pop3 && (fc->move != NULL || strcasecmp(fc->folder, "INBOX") != 0)) {
        cli_error("bounces fetch: POP3 has only the inbox: --move and --folder need IMAP");
        return EX_USAGE;
    }
    return -1;
}

/* Settings of the account (the From gives the preset when provider = auto). */
static int load_settings(fetch_ctx *fc)
{
    char err[600];
    int status = settings_load(&fc->cfg, fc->account, err, sizeof err);
    if (status == 0) {
        pigeon_mailbox from = {0};
        const char *f = cfg_get(&fc->cfg, K_FROM);
        char *addr = NULL;
        if (f != NULL && pigeon_mailbox_parse(f, &from, NULL, 0) == PIGEON_OK)
            pigeon_mailbox_addr_spec(&from, 1, &addr);
        status = settings_finish(&fc->cfg, from.domain, addr, err, sizeof err);
        free(addr);
        pigeon_mailbox_cleanup(&from);
    }
    if (status != 0)
        cli_error("bounces fetch: %s", err);
    return status;
}

/* Reads the mailbox of fc's account; returns a sysexits code (printed). */
static int fetch_run(fetch_ctx *fc)
{
    mailbox_plan plan;
    memset(&plan, 0, sizeof plan);
    int status = load_settings(fc);
    if (status == 0 && fc->verp_key == NULL) /* the account's verp_key_file (verp.h) */
        status = cli_verp_account_key(&fc->cfg, "bounces fetch", &fc->verp_key, &fc->verp_keylen);
    if (status != 0)
        goto done;
    if (fc->cfg.account[0] == '\0') {
        cli_error("bounces fetch: needs an account of the configuration file (--account NAME): "
                  "the suppression list is kept per account");
        status = EX_USAGE;
        goto done;
    }
    cli_suppress_policy(&fc->cfg, &fc->policy);
    if ((status = queue_spool_open(fc->spool_opt, PIGEON_SPOOL_CREATE, &fc->spool)) != 0)
        goto done;
    if (pigeon_spool_list(fc->spool, fc->cfg.account, collect_id, fc) != PIGEON_OK) {
        cli_error("bounces fetch: cannot read the spool: %s", pigeon_spool_error(fc->spool));
        status = EX_IOERR;
        goto done;
    }
    if ((status = mailbox_plan_init(&plan, &fc->cfg, &fc->o, fc->pop3)) != 0)
        goto done;
    status = fc->pop3 ? run_pop3(fc, &plan) : run_imap(fc, &plan);
    if (status == 0 && !fc->o.json && !fc->quiet)
        fprintf(stderr,
                "pigeon: %lu message%s read, %lu bounce%s or complaint%s, %lu of ours, %lu "
                "address%s suppressed\n",
                fc->read, fc->read == 1 ? "" : "s", fc->bounces, fc->bounces == 1 ? "" : "s",
                fc->bounces == 1 ? "" : "s", fc->matched, fc->suppressed,
                fc->suppressed == 1 ? "" : "es");
done:
    if (fc->sent != NULL)
        pigeon_imap_logout(fc->sent);
    pigeon_imap_free(fc->sent);
    fc->sent = NULL;
    mailbox_plan_cleanup(&fc->sent_plan);
    mailbox_plan_cleanup(&plan);
    for (size_t i = 0; i < fc->nids; i++)
        free(fc->ids[i].message_id);
    free(fc->ids);
    fc->ids = NULL;
    fc->nids = 0;
    pigeon_spool_close(fc->spool);
    fc->spool = NULL;
    cfg_cleanup(&fc->cfg);
    if (fc->verp_key != NULL)
        OPENSSL_cleanse(fc->verp_key, fc->verp_keylen);
    free(fc->verp_key);
    fc->verp_key = NULL;
    free(fc->verp_rcpt);
    fc->verp_rcpt = NULL;
    return status;
}

int cli_bounces_fetch(int argc, char **argv)
{
    fetch_ctx fc;
    memset(&fc, 0, sizeof fc);
    fc.folder = "INBOX";
    int status = parse_args(&fc, argc, argv);
    if (status >= 0) {
        cfg_cleanup(&fc.cfg);
        return status;
    }
    return fetch_run(&fc);
}

int bounces_fetch_account(const char *account, const char *spool_path, bounces_fetch_counts *out)
{
    fetch_ctx fc;
    memset(&fc, 0, sizeof fc);
    fc.folder = "INBOX";
    fc.account = account;
    fc.spool_opt = spool_path;
    fc.quiet = 1;
    int status = fetch_run(&fc);
    if (out != NULL) {
        out->read = fc.read;
        out->bounces = fc.bounces;
        out->matched = fc.matched;
        out->suppressed = fc.suppressed;
    }
    return status;
}

void cli_bounces_fetch_usage(FILE *out)
{
    fputs("usage: pigeon bounces fetch --account NAME [--pop3] [--folder INBOX]\n"
          "                            [--move FOLDER | --delete] [--since YYYY-MM-DD]\n"
          "                            [--all] [--json] [--spool PATH] [-v]\n"
          "\n"
          "Reads the account's mailbox (IMAP: imap_host, else the provider preset's, port\n"
          "993; --pop3: pop3_host, port 995), finds bounces and complaints about messages\n"
          "we sent (their Message-ID is in the spool, or in the Sent folder where\n"
          "--save-sent files them) and records them: hard bounces and complaints put the\n"
          "address on the account's suppression list, soft bounces count toward\n"
          "soft_bounce_limit; blocks and undetermined failures are only reported. A bounce\n"
          "about a message we never sent suppresses nothing and is left alone.\n"
          "\n"
          "  --folder NAME           the IMAP folder to read (default INBOX)\n"
          "  --move FOLDER           move the bounces of ours there (IMAP)\n"
          "  --delete                delete the bounces of ours\n"
          "  --since YYYY-MM-DD      only messages received since (IMAP)\n"
          "  --all                   read again messages already read (IMAP marks them\n"
          "                          $PigeonBounceRead; they are never marked \\Seen)\n"
          "  --verp-key-file F       also match bounces by their VERP token (the HMAC key\n"
          "                          in F, as for bounces parse): a valid token names the\n"
          "                          recipient; a forged one matches nothing\n"
          "  --imap-host, --imap-port, --pop3-host, --pop3-port  override the account\n"
          "  --json                  one JSON object per recipient on stdout\n"
          "  -v                      the IMAP/POP3 transcript on stderr (password masked)\n"
          "\n"
          "Exit status: 0 read (whatever it held), 64 usage, 75 network or timeout,\n"
          "76 protocol error, 77 login refused, 78 configuration error.\n",
          out);
}
