/*
 * sendmail.c - `pigeon sendmail`, and the command invoked as "sendmail" (a symlink): the
 * sendmail(8) interface that cron (MAILTO), git send-email --sendmail-cmd, mutt and PHP's
 * mail() call. It reads one whole message on standard input, takes the envelope from the
 * command line (and with -t from the header), completes the header (Date, Message-ID,
 * From when missing; Bcc removed) and hands the message to deliver_raw() with the default
 * account (or --account).
 *
 * Command line, as Sendmail 8, Postfix sendmail(1) and msmtp accept it:
 *   -t            recipients from To, Cc and Bcc too. Addresses given as arguments are
 *                 added to them, as Postfix and msmtp do (Sendmail 8 instead removes them);
 *                 duplicates are sent once.
 *   -f ADDR, -r ADDR, -fADDR   the envelope sender (MAIL FROM). Without it: the From
 *                 field's address, else the account's from. An empty one ("<>") counts as
 *                 not given: a submission server would refuse a null sender anyway.
 *   -F NAME       the display name of the From that is added when the message has none
 *                 (an existing From is never changed).
 *   -i, -oi, -O IgnoreDots   a line with a single "." does not end the input. Without them
 *                 it does, as in traditional sendmail (the rest of the input is ignored).
 *   -v            the SMTP transcript on standard error.
 *   accepted and ignored: -bm (the default), -B TYPE, -N DSN, -R RET, -V ENVID, -X FILE,
 *                 -h HOPS, -L TAG, -A X, -e X, -d X, -U, -G, -n, -m, every other -oX/-OX.
 *   refused (64): -bs, -bp, -bd and the other modes, -q (queue runs), -C FILE.
 *   --account NAME and the other connection options of `pigeon send` (pigeon's own).
 *
 * The message: fields up to the first empty line, then the body. A message of headers
 * only is valid; a line before the empty line that is not a field, a NUL anywhere, a body
 * line over 998 octets, a header line over 998 octets without white space to fold it at
 * (longer ones are folded) or a header block over 1 MiB is refused (65). The body is stored in an
 * unlinked temporary file
 * ($TMPDIR, else /tmp, mode 0600) with CRLF line endings, so any size streams through and
 * its exact size is known before sending (RFC 1870 SIZE).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "deliver.h"
#include "dkim.h"
#include "queue.h"
#include "mime/rawmsg.h"
#include "sendmail.h"
#include "suppress.h"
#include "util/fdio.h"

/* Bytes read from standard input at a time. */
#define READ_CHUNK ((size_t)64 * 1024)
/* Buffer size for a value quoted in a message (see cli_shorten()). */
#define QUOTE_MAX 256
/* The reason given when there is nobody to send to. */
#define NO_RECIPIENTS "no recipients: give them as arguments, or use -t to read To, Cc and Bcc"
/* Returned by parse_args when the command should go on. */
#define CONTINUE (-1)

/* getopt_long values of sendmail's own long options. */
enum sendmail_opt {
    OPT_HELP = CLI_OPT_CONN_END,
};

/* What the command line asks for. Strings are borrowed from argv. */
typedef struct sendmail_args {
    int extract;           /* -t: recipients from To, Cc and Bcc */
    int ignore_dots;       /* -i, -oi: a lone "." does not end the input */
    const char *sender;    /* -f / -r, or NULL */
    const char *full_name; /* -F, or NULL */
    const char *account;   /* --account, or NULL (the default account) */
    const char *spool;     /* --spool PATH (where to queue on a temporary failure), or NULL */
    cli_strv rcpts;        /* recipient arguments, each an address list */
    cfg_settings cfg;      /* connection options given on the command line */
    deliver_opts deliver;  /* -v, --json, --retry-for, password sources */
} sendmail_args;

/* The message read from standard input. */
typedef struct spooled_msg {
    pg_rawmsg_reader reader; /* holds the header block as read */
    int body_fd;             /* unlinked temporary file holding the body (CRLF), or -1 */
    uint64_t body_len;       /* octets in it */
    pg_rawmsg header;        /* the parsed header block (points into reader.header) */
    pg_buf out_header;       /* the header block that is sent */
    char *message_id;        /* its Message-ID (kept or added), for the report, or NULL */
} spooled_msg;

/* The envelope (RFC 5321 3.3). */
typedef struct envelope {
    pigeon_mailbox sender;     /* MAIL FROM, and the From added when the message has none */
    int has_sender;            /* sender is set */
    pigeon_address_list rcpts; /* every recipient, duplicates included */
    char *sender_path;         /* sender as it goes in MAIL FROM, malloc'd */
    char **rcpt_paths;         /* distinct recipients as they go in RCPT TO, malloc'd */
    size_t nrcpt;              /* number of rcpt_paths */
} envelope;

/* deliver_raw()'s reader over the outgoing header block, then the body file. */
typedef struct raw_source {
    const pg_buf *header; /* the outgoing header block (borrowed) */
    size_t header_pos;    /* bytes of it already read */
    int body_fd;          /* the body file, read from its start (borrowed) */
} raw_source;

static const struct option longopts[] = {
    CLI_CONN_LONGOPTS,
    {"help", no_argument, NULL, OPT_HELP},
    {"spool", required_argument, NULL, CLI_OPT_SPOOL},
    {NULL, 0, NULL, 0},
};

/* Sendmail's one-letter options; those with ':' take a value, attached or separate. */
static const char shortopts[] = ":tivUGnmf:F:r:o:O:b:B:N:R:V:X:h:L:A:e:d:C:q::";

static int parse_args(int argc, char **argv, sendmail_args *a);
static int read_message(spooled_msg *m, int ignore_dots);
static int parse_message(spooled_msg *m, int verbose);
static int check_body(const pg_rawmsg_reader *r);
static int build_envelope(envelope *env, const sendmail_args *a, const spooled_msg *m);
static int resolve(sendmail_args *a, envelope *env);
static int complete_header(spooled_msg *m, const sendmail_args *a, const envelope *env);
static int find_message_id(spooled_msg *m);
static int envelope_paths(envelope *env);
static int send_spooled(sendmail_args *a, envelope *env, spooled_msg *m);
static int queue_instead(sendmail_args *a, envelope *env, spooled_msg *m,
                         const unsigned char *deferred);
static void envelope_cleanup(envelope *env);

int cmd_sendmail(int argc, char **argv)
{
    sendmail_args a;
    spooled_msg m;
    envelope env;
    memset(&a, 0, sizeof a);
    memset(&m, 0, sizeof m);
    memset(&env, 0, sizeof env);
    m.body_fd = -1;
    pg_rawmsg_reader_init(&m.reader, 0);
    pg_buf_init(&m.out_header);
    int status = parse_args(argc, argv, &a);
    if (status != CONTINUE)
        goto done;
    if (!a.extract && a.rcpts.count == 0) { /* say so before waiting for the input */
        cli_error(NO_RECIPIENTS);
        status = EX_USAGE;
        goto done;
    }
    if ((status = read_message(&m, a.ignore_dots)) != 0)
        goto done;
    if ((status = parse_message(&m, a.deliver.verbose)) != 0)
        goto done;
    if ((status = build_envelope(&env, &a, &m)) != 0)
        goto done;
    if ((status = resolve(&a, &env)) != 0)
        goto done;
    if ((status = complete_header(&m, &a, &env)) != 0)
        goto done;
    status = send_spooled(&a, &env, &m);
done:
    envelope_cleanup(&env);
    pg_buf_cleanup(&m.out_header);
    pg_rawmsg_cleanup(&m.header);
    pg_rawmsg_reader_cleanup(&m.reader);
    free(m.message_id);
    if (m.body_fd >= 0)
        close(m.body_fd);
    cli_strv_cleanup(&a.rcpts);
    cfg_cleanup(&a.cfg);
    return status;
}

/* ---- the command line ---- */

/* -O Option[=value]: only IgnoreDots means something to us (sendmail.cf's long name of
 * -oi); its value is true unless it says false. */
static void long_form_option(sendmail_args *a, const char *arg)
{
    size_t n = strlen("IgnoreDots");
    if (strncasecmp(arg, "IgnoreDots", n) != 0 || (arg[n] != '\0' && arg[n] != '='))
        return;
    const char *v = arg[n] == '=' ? arg + n + 1 : "true";
    a->ignore_dots = v[0] == '\0' || strchr("FfNn0", v[0]) == NULL;
}

/* An empty sender ("", "<>") is treated as none given (see the file comment). */
static const char *sender_value(const char *arg)
{
    return arg[0] == '\0' || strcmp(arg, "<>") == 0 ? NULL : arg;
}

/* The modes and options of sendmail that pigeon does not implement: 64, one line. */
static int unsupported(int opt, const char *arg)
{
    char quoted[QUOTE_MAX];
    if (opt == 'b')
        cli_error("sendmail: -b%s is not supported: pigeon only sends a message read from "
                  "standard input (-bm)",
                  cli_shorten(arg, quoted, sizeof quoted));
    else if (opt == 'q')
        cli_error("sendmail: -q (processing the queue) is not supported");
    else
        cli_error("sendmail: -C is not supported; choose the account with --account NAME or "
                  "the file with PIGEON_CONFIG");
    return EX_USAGE;
}

/* One sendmail option; returns 0, or an exit status with the reason printed. */
static int short_option(sendmail_args *a, int opt, const char *arg)
{
    switch (opt) {
    case 't':
        a->extract = 1;
        return 0;
    case 'i':
        a->ignore_dots = 1;
        return 0;
    case 'f':
    case 'r':
        a->sender = sender_value(arg);
        return 0;
    case 'F':
        a->full_name = arg;
        return 0;
    case 'o':
        if (strcmp(arg, "i") == 0)
            a->ignore_dots = 1;
        return 0; /* -oem, -odi, -oQ... mean nothing without a local MTA */
    case 'O':
        long_form_option(a, arg);
        return 0;
    case 'b':
        return strcmp(arg, "m") == 0 ? 0 : unsupported(opt, arg);
    case 'q':
    case 'C':
        return unsupported(opt, arg);
    default:
        return 0; /* -B -N -R -V -X -h -L -A -e -d -U -G -n -m: accepted, no effect */
    }
}

/* Reads the options into a; returns CONTINUE, or an exit status (help printed: 0; usage
 * error printed: EX_USAGE). */
static int parse_args(int argc, char **argv, sendmail_args *a)
{
    char quoted[QUOTE_MAX];
    int opt;
    opterr = 0; /* our own one-line messages */
    optind = 1;
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        int status = cli_conn_option(&a->cfg, &a->account, &a->deliver, opt, optarg);
        if (status >= 0) {
            if (status > 0)
                return status;
            continue;
        }
        if (opt == OPT_HELP) {
            cmd_sendmail_usage(stdout);
            return 0;
        }
        if (opt == CLI_OPT_SPOOL) {
            a->spool = optarg;
            continue;
        }
        if (opt == ':' || opt == '?') {
            cli_error("sendmail: %s %s (see pigeon help sendmail)",
                      cli_typed_option(argv, quoted, sizeof quoted),
                      opt == ':' ? "needs a value" : "is not a known option");
            return EX_USAGE;
        }
        if ((status = short_option(a, opt, optarg)) != 0)
            return status;
    }
    for (int i = optind; i < argc; i++) {
        if (cli_strv_push(&a->rcpts, argv[i]) != 0) {
            cli_error("out of memory");
            return EX_OSERR;
        }
    }
    return CONTINUE;
}

/* ---- reading the message ---- */

/* An unlinked temporary file for the body: it disappears with the process, whatever
 * happens, and only we can read it (mkstemp creates it 0600). */
static int open_body_file(void)
{
    int fd = cli_temp_file("sendmail");
    if (fd < 0) {
        const char *dir = getenv("TMPDIR");
        cli_error("cannot create a temporary file in %s: %s", dir != NULL && dir[0] ? dir : "/tmp",
                  strerror(errno));
    }
    return fd;
}

/* Stores what the reader handed over as body, and empties the buffer. */
static int store_body(spooled_msg *m, pg_buf *body)
{
    if (body->len == 0)
        return 0;
    if (pg_write_all(m->body_fd, body->data, body->len) != 0) {
        cli_error("cannot store the message in a temporary file: %s", strerror(errno));
        return EX_IOERR;
    }
    m->body_len += body->len;
    pg_buf_reset(body);
    return 0;
}

/* Maps a reader error to a one-line reason and a status. */
static int reader_failed(pigeon_err err)
{
    if (err == PIGEON_ERR_TOO_LARGE) {
        cli_error("the message header is larger than %zu octets (is there an empty line "
                  "between header and body?)",
                  PG_RAWMSG_HEADER_MAX);
        return EX_DATAERR;
    }
    cli_error("out of memory");
    return EX_OSERR;
}

/* Reads standard input to its end (or to a lone "." without -i). */
static int read_message(spooled_msg *m, int ignore_dots)
{
    char *chunk = malloc(READ_CHUNK);
    pg_buf body;
    int status = 0;
    pg_buf_init(&body);
    m->reader.dot_ends = !ignore_dots;
    if (chunk == NULL) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    if ((m->body_fd = open_body_file()) < 0) {
        status = EX_CANTCREAT;
        goto done;
    }
    while (status == 0 && !m->reader.done) {
        ssize_t r = read(STDIN_FILENO, chunk, READ_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            cli_error("cannot read the message from standard input: %s", strerror(errno));
            status = EX_IOERR;
            break;
        }
        pigeon_err err = r == 0 ? pg_rawmsg_reader_finish(&m->reader, &body)
                                : pg_rawmsg_reader_feed(&m->reader, chunk, (size_t)r, &body);
        status = err != PIGEON_OK ? reader_failed(err) : store_body(m, &body);
        if (r == 0)
            break;
    }
done:
    pg_buf_cleanup(&body);
    free(chunk);
    return status;
}

/* Parses the header block the reader kept. */
static int parse_message(spooled_msg *m, int verbose)
{
    char reason[256];
    const pg_buf *h = &m->reader.header;
    pigeon_err err =
        pg_rawmsg_parse(&m->header, h->data != NULL ? h->data : "", h->len, reason, sizeof reason);
    if (err == PIGEON_ERR_NOMEM) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    if (err != PIGEON_OK) {
        cli_error("invalid message on standard input: %s", reason);
        return EX_DATAERR;
    }
    const pg_rawmsg_field *f = pg_rawmsg_unfoldable(&m->header);
    if (f != NULL) {
        char quoted[QUOTE_MAX];
        cli_error("invalid message on standard input: the %s field has a line over %d octets "
                  "with no white space to fold it at (RFC 5322 2.1.1, 2.2.3); nothing was sent",
                  cli_shorten(f->name, quoted, sizeof quoted), PG_RAWMSG_LINE_MAX);
        return EX_DATAERR;
    }
    if (verbose && m->header.long_lines > 0)
        cli_error("note: %zu header line(s) longer than %d octets folded (RFC 5322 2.2.3)",
                  m->header.long_lines, PG_RAWMSG_LINE_MAX);
    return check_body(&m->reader);
}

/* RFC 5322 2.3 and 2.1.1, RFC 5321 4.5.3.1.6: no NUL, no line over 998 octets. A body
 * cannot be re-encoded safely here (it may be MIME, signed, or already encoded), so such a
 * message is refused with the line to fix rather than sent broken or changed. */
static int check_body(const pg_rawmsg_reader *r)
{
    if (r->nul_line != 0) {
        cli_error("invalid message on standard input: line %zu holds a NUL byte, which a "
                  "message may not contain (RFC 5322 2.3); nothing was sent",
                  r->nul_line);
        return EX_DATAERR;
    }
    if (r->long_line != 0) {
        cli_error("invalid message on standard input: line %zu is longer than %d octets "
                  "(RFC 5322 2.1.1); encode the body (quoted-printable or base64) before "
                  "sending it; nothing was sent",
                  r->long_line, PG_RAWMSG_LINE_MAX);
        return EX_DATAERR;
    }
    return 0;
}

/* ---- the envelope ---- */

/* Adds the addresses of one recipient argument (which may be a list). */
static int add_rcpt_arg(envelope *env, const char *arg)
{
    char reason[256], quoted[QUOTE_MAX];
    pigeon_address_list list = {0};
    pigeon_err err = pigeon_address_list_parse(arg, &list, reason, sizeof reason);
    if (err == PIGEON_OK)
        err = pigeon_address_list_append(&env->rcpts, &list);
    pigeon_address_list_cleanup(&list);
    if (err == PIGEON_ERR_ADDRESS && strchr(arg, '@') == NULL) {
        cli_error("recipient \"%s\" has no domain: pigeon sends through a mail server, so "
                  "give a full address (for cron: MAILTO=you@example.com)",
                  cli_shorten(arg, quoted, sizeof quoted));
        return EX_DATAERR;
    }
    if (err != PIGEON_OK) {
        cli_error("invalid recipient \"%s\": %s", cli_shorten(arg, quoted, sizeof quoted),
                  err == PIGEON_ERR_ADDRESS ? reason : pigeon_strerror(err));
        return cli_exit_status(err);
    }
    return 0;
}

/* The sender from -f, else from the From field; none is not an error yet (the account's
 * from comes later). */
static int find_sender(envelope *env, const sendmail_args *a, const spooled_msg *m)
{
    char reason[256], quoted[QUOTE_MAX];
    pigeon_err err;
    if (a->sender != NULL) {
        err = pigeon_mailbox_parse(a->sender, &env->sender, reason, sizeof reason);
        if (err != PIGEON_OK) {
            cli_error("invalid -f \"%s\": %s", cli_shorten(a->sender, quoted, sizeof quoted),
                      err == PIGEON_ERR_ADDRESS ? reason : pigeon_strerror(err));
            return cli_exit_status(err);
        }
    } else {
        err = pg_rawmsg_from(&m->header, &env->sender, reason, sizeof reason);
        if (err == PIGEON_ERR_NOTFOUND)
            return 0;
        if (err != PIGEON_OK) {
            cli_error("invalid message on standard input: %s",
                      err == PIGEON_ERR_ADDRESS ? reason : pigeon_strerror(err));
            return cli_exit_status(err);
        }
    }
    env->has_sender = 1;
    return 0;
}

static int build_envelope(envelope *env, const sendmail_args *a, const spooled_msg *m)
{
    char reason[256];
    int status;
    for (size_t i = 0; i < a->rcpts.count; i++) {
        if ((status = add_rcpt_arg(env, a->rcpts.items[i])) != 0)
            return status;
    }
    if (a->extract) {
        pigeon_err err = pg_rawmsg_recipients(&m->header, &env->rcpts, reason, sizeof reason);
        if (err != PIGEON_OK) {
            cli_error("invalid recipient in the message: %s",
                      err == PIGEON_ERR_ADDRESS ? reason : pigeon_strerror(err));
            return cli_exit_status(err);
        }
    }
    if (env->rcpts.count == 0) {
        cli_error(NO_RECIPIENTS);
        return EX_USAGE;
    }
    return find_sender(env, a, m);
}

/* Settings of the account (and preset); then the account's from if no sender yet. */
static int resolve(sendmail_args *a, envelope *env)
{
    char reason[256], quoted[QUOTE_MAX];
    int status =
        settings_resolve(&a->cfg, a->account, env->has_sender ? env->sender.domain_ascii : NULL,
                         reason, sizeof reason);
    if (status != 0) {
        cli_error("%s", reason);
        return status;
    }
    if (env->has_sender)
        return 0;
    const char *from = cfg_get(&a->cfg, K_FROM);
    if (from == NULL) {
        cli_error("no sender: give -f ADDRESS, a From: line in the message, or set from = in "
                  "the configuration (see pigeon.conf(5))");
        return EX_CONFIG;
    }
    if (pigeon_mailbox_parse(from, &env->sender, reason, sizeof reason) != PIGEON_OK) {
        cli_error("invalid from \"%s\" in the configuration: %s",
                  cli_shorten(from, quoted, sizeof quoted), reason);
        return EX_CONFIG;
    }
    env->has_sender = 1;
    return 0;
}

/* The addr-spec for an SMTP path: A-labels, unless the local part is UTF-8 (then only a
 * server with SMTPUTF8 can take it, and the domain may as well stay in U-labels). */
static char *path_of(const pigeon_mailbox *mb)
{
    char *out = NULL;
    if (pigeon_mailbox_addr_spec(mb, 0, &out) == PIGEON_ERR_ADDRESS)
        pigeon_mailbox_addr_spec(mb, 1, &out);
    return out;
}

/* The envelope as strings, each recipient once (sendmail discards duplicates too). */
static int envelope_paths(envelope *env)
{
    if ((env->sender_path = path_of(&env->sender)) == NULL)
        goto nomem;
    if ((env->rcpt_paths = calloc(env->rcpts.count, sizeof *env->rcpt_paths)) == NULL)
        goto nomem;
    for (size_t i = 0; i < env->rcpts.count; i++) {
        char *p = path_of(&env->rcpts.items[i]);
        if (p == NULL)
            goto nomem;
        int seen = 0;
        for (size_t j = 0; j < env->nrcpt && !seen; j++)
            seen = strcmp(env->rcpt_paths[j], p) == 0;
        if (seen)
            free(p);
        else
            env->rcpt_paths[env->nrcpt++] = p;
    }
    return 0;
nomem:
    cli_error("out of memory");
    return EX_OSERR;
}

static void envelope_cleanup(envelope *env)
{
    for (size_t i = 0; i < env->nrcpt; i++)
        free(env->rcpt_paths[i]);
    free(env->rcpt_paths);
    free(env->sender_path);
    pigeon_mailbox_cleanup(&env->sender);
    pigeon_address_list_cleanup(&env->rcpts);
    memset(env, 0, sizeof *env);
}

/* ---- completing the header and sending ---- */

/* Minutes east of UTC of the local time zone now (the command may read TZ; the library
 * does not). */
static int local_utc_offset(time_t now)
{
    struct tm tm;
    if (localtime_r(&now, &tm) == NULL)
        return 0;
    long minutes = tm.tm_gmtoff / 60;
    return minutes < -1439 || minutes > 1439 ? 0 : (int)minutes;
}

/* The From written when the message has none: the sender, named by -F if given. */
static int added_from(const sendmail_args *a, const envelope *env, pigeon_mailbox *out)
{
    if (pigeon_mailbox_copy(out, &env->sender) != PIGEON_OK)
        return EX_OSERR;
    if (a->full_name != NULL) {
        char *name = a->full_name[0] != '\0' ? strdup(a->full_name) : NULL;
        if (a->full_name[0] != '\0' && name == NULL)
            return EX_OSERR;
        free(out->display_name);
        out->display_name = name;
    }
    return 0;
}

/* The Message-ID of the outgoing header block, kept or added, for deliver_raw()'s report. */
static int find_message_id(spooled_msg *m)
{
    pg_rawmsg sent;
    if (pg_rawmsg_parse(&sent, m->out_header.data, m->out_header.len, NULL, 0) != PIGEON_OK) {
        cli_error("out of memory"); /* the block was just written from parsed fields */
        return EX_OSERR;
    }
    const pg_rawmsg_field *f = pg_rawmsg_find(&sent, "Message-ID", 0);
    int status = 0;
    if (f != NULL && f->value[0] != '\0' && (m->message_id = strdup(f->value)) == NULL) {
        cli_error("out of memory");
        status = EX_OSERR;
    }
    pg_rawmsg_cleanup(&sent);
    return status;
}

static int complete_header(spooled_msg *m, const sendmail_args *a, const envelope *env)
{
    pigeon_mailbox from = {0};
    time_t now = time(NULL);
    int status = added_from(a, env, &from);
    if (status != 0) {
        cli_error("out of memory");
        goto done;
    }
    pg_rawmsg_out_opts o = {&from, now, local_utc_offset(now), NULL};
    pigeon_err err = pg_rawmsg_write_header(&m->header, &o, &m->out_header);
    if (err != PIGEON_OK) {
        char quoted[QUOTE_MAX];
        if (a->full_name != NULL && err != PIGEON_ERR_NOMEM)
            cli_error("cannot write the From line with -F \"%s\": %s",
                      cli_shorten(a->full_name, quoted, sizeof quoted), pigeon_strerror(err));
        else
            cli_error("cannot complete the message header: %s", pigeon_strerror(err));
        status = cli_exit_status(err);
    }
    if (status == 0)
        status = find_message_id(m);
done:
    pigeon_mailbox_cleanup(&from);
    return status;
}

/* pigeon_read_fn over the header block, then the body file. */
static int raw_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    raw_source *src = ctx;
    size_t left = src->header->len - src->header_pos;
    if (left > 0) {
        *n = left < cap ? left : cap;
        memcpy(buf, src->header->data + src->header_pos, *n);
        src->header_pos += *n;
        return 0;
    }
    for (;;) {
        ssize_t r = read(src->body_fd, buf, cap);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        *n = (size_t)r;
        return 0;
    }
}

/*
 * Sendmail's fallback when the server cannot be reached (issue 5): after a temporary
 * failure (EX_TEMPFAIL: unreachable, 4xx, timeout) the message (m->out_header then the
 * body file) is stored in the spool for the recipients that were neither accepted nor
 * refused for good, and the command exits 0, so that cron, git and PHP do not lose it;
 * `pigeon daemon` delivers it later. Queueing needs the settings to come from an account
 * of the configuration file (the daemon reads them again by name); otherwise, or when the
 * spool cannot be written, the failure is reported as it is (exit 75) and nothing is kept.
 */
static int queue_instead(sendmail_args *a, envelope *env, spooled_msg *m,
                         const unsigned char *deferred)
{
    char err[600];
    char account[sizeof a->cfg.account];
    char id[PIGEON_SPOOL_ID_LEN + 1];
    if (a->deliver.password_file != NULL || a->deliver.password_command != NULL ||
        queue_account_of(&a->cfg, account, sizeof account, err, sizeof err) != 0) {
        cli_error("not queued: the settings do not come from an account of the configuration "
                  "file");
        return EX_TEMPFAIL;
    }
    const char **rcpts = calloc(env->nrcpt, sizeof *rcpts);
    size_t n = 0;
    if (rcpts == NULL)
        return EX_TEMPFAIL;
    for (size_t i = 0; i < env->nrcpt; i++)
        if (deferred[i])
            rcpts[n++] = env->rcpt_paths[i];
    int status = EX_TEMPFAIL;
    if (n > 0 && lseek(m->body_fd, 0, SEEK_SET) == 0) {
        raw_source src = {&m->out_header, 0, m->body_fd};
        status = queue_store_raw(a->spool, account, env->sender_path, rcpts, n, m->message_id,
                                 raw_read, &src, id);
        if (status == 0)
            fprintf(stderr,
                    "pigeon: queued as %s for %zu recipient%s; `pigeon daemon` will "
                    "deliver it\n",
                    id, n, n == 1 ? "" : "s");
        else
            status = EX_TEMPFAIL;
    }
    free(rcpts);
    return status;
}

/* sendmail_suppression = skip (the default): suppressed recipients leave the envelope,
 * each named on stderr; when all are, nothing is sent (65). ignore: no check. */
static int drop_suppressed(sendmail_args *a, envelope *env)
{
    const char *mode = cfg_get(&a->cfg, K_SENDMAIL_SUPPRESSION);
    if (mode != NULL && strcasecmp(mode, "ignore") == 0)
        return 0;
    pigeon_suppress_hit *hits = calloc(env->nrcpt ? env->nrcpt : 1, sizeof *hits);
    size_t count = 0, kept = 0;
    if (hits == NULL)
        return EX_OSERR;
    int status = cli_suppress_lookup(a->spool, a->cfg.account, (const char *const *)env->rcpt_paths,
                                     env->nrcpt, hits, &count);
    for (size_t i = 0; status == 0 && count > 0 && count < env->nrcpt && i < env->nrcpt; i++) {
        if (hits[i].reason == PIGEON_SUPPRESS_NONE) {
            env->rcpt_paths[kept++] = env->rcpt_paths[i];
            continue;
        }
        cli_suppress_warn("sendmail", env->rcpt_paths[i], &hits[i]);
        free(env->rcpt_paths[i]);
    }
    if (status == 0 && count > 0 && count < env->nrcpt)
        env->nrcpt = kept;
    else if (status == 0 && count > 0) {
        for (size_t i = 0; i < env->nrcpt; i++)
            cli_suppress_warn("sendmail", env->rcpt_paths[i], &hits[i]);
        cli_error("sendmail: every recipient is suppressed: nothing sent (pigeon suppress "
                  "list; sendmail_suppression = ignore sends anyway)");
        status = EX_DATAERR;
    }
    free(hits);
    return status;
}

static int send_spooled(sendmail_args *a, envelope *env, spooled_msg *m)
{
    int status = envelope_paths(env);
    if (status == 0)
        status = drop_suppressed(a, env);
    if (status != 0)
        return status;
    if (lseek(m->body_fd, 0, SEEK_SET) != 0) {
        cli_error("cannot read back the stored message: %s", strerror(errno));
        return EX_IOERR;
    }
    /* DKIM (cli/dkim_send.c): the header block and body file are read once to sign them,
     * then sent behind the signatures; a queued copy stays unsigned for the daemon. */
    char *dkim = NULL;
    size_t dkim_len = 0;
    raw_source src = {&m->out_header, 0, m->body_fd};
    status = cli_dkim_sign_stream(&a->cfg, NULL, raw_read, &src, &dkim, &dkim_len);
    src.header_pos = 0;
    if (status == 0 && lseek(m->body_fd, 0, SEEK_SET) != 0)
        status = EX_IOERR;
    if (status != 0)
        return status;
    cli_dkim_reader signed_src = {dkim, dkim_len, 0, raw_read, &src};
    int64_t size = (int64_t)dkim_len + (int64_t)m->out_header.len + (int64_t)m->body_len;
    /* Like sendmail(8), say nothing on success: cron mails whatever a job prints. */
    a->deliver.quiet = 1;
    a->deliver.raw_8bit = m->reader.has_8bit;
    a->deliver.message_id = m->message_id;
    unsigned char *deferred = calloc(env->nrcpt ? env->nrcpt : 1, 1);
    if (deferred == NULL) {
        free(dkim);
        cli_error("out of memory");
        return EX_OSERR;
    }
    a->deliver.rcpt_deferred = deferred;
    status = deliver_raw(&a->cfg, env->sender_path, (const char *const *)env->rcpt_paths,
                         env->nrcpt, cli_dkim_read, &signed_src, size, &a->deliver);
    a->deliver.rcpt_deferred = NULL;
    free(dkim);
    if (status == EX_TEMPFAIL)
        status = queue_instead(a, env, m, deferred);
    free(deferred);
    return status;
}

void cmd_sendmail_usage(FILE *out)
{
    fputs("usage: pigeon sendmail [OPTIONS] [RECIPIENT...] < MESSAGE\n"
          "       sendmail [OPTIONS] [RECIPIENT...] < MESSAGE   (pigeon linked as sendmail)\n"
          "\n"
          "Reads a whole message (header fields, an empty line, the body) on standard input\n"
          "and sends it with the default account, as sendmail(8) does for cron, git\n"
          "send-email, mutt and PHP's mail(). Bcc fields are removed; Date, Message-ID and\n"
          "From are added when missing.\n"
          "\n"
          "Sendmail options:\n"
          "  -t                      also send to the To, Cc and Bcc of the message\n"
          "                          (recipient arguments are added, as with Postfix)\n"
          "  -f ADDRESS, -r ADDRESS  envelope sender (default: the From address, else the\n"
          "                          account's from)\n"
          "  -F NAME                 display name of the From added when there is none\n"
          "  -i, -oi                 a line with a single \".\" does not end the message\n"
          "                          (without -i it does, as in traditional sendmail)\n"
          "  -v                      the SMTP transcript on stderr\n"
          "  -bm -B -N -R -V -X -h -L -U -G -n -m -oX -OX   accepted, no effect\n"
          "  -bs -bp -bd ... -q -C   not supported (exit 64)\n"
          "  --spool PATH            where to queue the message when the server cannot be\n"
          "                          reached (default ~/.local/state/pigeon/spool.db)\n"
          "  --help                  show this help\n"
          "\n",
          out);
    cli_conn_usage(out);
    fputs("\n"
          "Exit status: 0 sent, 64 usage error or no recipients, 65 invalid message (a NUL,\n"
          "a body line over 998 octets) or address, 69 refused by the server, 73 no\n"
          "temporary file, 74 I/O error, 75 temporary failure (try again later), 76 protocol\n"
          "error, 77 authentication failed, 78 configuration error. Recipients on the\n"
          "suppression list are left out, each named on stderr (65 when all are;\n"
          "sendmail_suppression = ignore in pigeon.conf(5) turns this off). After a temporary\n"
          "failure the message is queued for `pigeon daemon` (and the exit status is 0)\n"
          "when the settings come from an account of the configuration file.\n",
          out);
}
