/*
 * spoolpath.c - where the spool lives, and storing messages in it for `pigeon send
 * --queue` and `pigeon sendmail` (see queue.h).
 *
 * The default path follows the XDG Base Directory specification: the queue is state
 * (it should survive reboots but is not configuration), so $XDG_STATE_HOME/pigeon/spool.db,
 * else ~/.local/state/pigeon/spool.db. Directories we create are 0700: queued mail is
 * private.
 *
 * The spool may also be a PostgreSQL database, named by a URL
 * (postgresql://user@host:port/db?...), for several hosts sharing one queue. Where it is:
 * --spool, else $PIGEON_SPOOL, else `spool = ...` in the defaults section of the
 * configuration file, else the default file. A URL on the command line may not carry a
 * password (ps shows argv to every user): libpq reads it from ~/.pgpass or $PGPASSFILE.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "cli.h"
#include "deliver.h"
#include "json.h"
#include "queue.h"

/* Largest Message-ID kept for display (with its angle brackets). */
#define MSGID_MAX 1000

static int make_dirs(char *path);
static int config_spool(char *out, size_t n);

/* Nonzero for a PostgreSQL URL. */
static int is_url(const char *s)
{
    return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

/* Nonzero when a URL carries a password ("user:secret@" or "password="). */
static int url_has_password(const char *s)
{
    const char *auth = strstr(s, "://");
    if (auth == NULL)
        return 0;
    auth += 3;
    size_t end = strcspn(auth, "/?");
    const char *at = memchr(auth, '@', end);
    return (at != NULL && memchr(auth, ':', (size_t)(at - auth)) != NULL) ||
           strstr(s, "password=") != NULL;
}

/* What to add to a spool error when the disk is full: the spool is as it was. */
static const char *nospace_hint(pigeon_err e)
{
    return e == PIGEON_ERR_NOSPACE ? "; nothing was queued, the spool is intact: free some space "
                                     "and try again"
                                   : "";
}

int queue_spool_path(const char *opt, int create, char *out, size_t n)
{
    if (opt != NULL && opt[0] != '\0') {
        if (is_url(opt) && url_has_password(opt)) {
            cli_error("--spool: no password on the command line (every user can read it with "
                      "ps); put it in ~/.pgpass or the file $PGPASSFILE names");
            return EX_USAGE;
        }
        if (snprintf(out, n, "%s", opt) >= (int)n) {
            cli_error("--spool path too long");
            return EX_USAGE;
        }
        return 0;
    }
    const char *env = getenv("PIGEON_SPOOL");
    if (env != NULL && env[0] != '\0') {
        if (snprintf(out, n, "%s", env) >= (int)n) {
            cli_error("$PIGEON_SPOOL too long");
            return EX_USAGE;
        }
        return 0;
    }
    if (config_spool(out, n))
        return 0;
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int len;
    if (state != NULL && state[0] == '/')
        len = snprintf(out, n, "%s/pigeon/spool.db", state);
    else if (home != NULL && home[0] != '\0')
        len = snprintf(out, n, "%s/.local/state/pigeon/spool.db", home);
    else {
        cli_error("no spool path: set HOME or XDG_STATE_HOME, or give --spool PATH");
        return EX_CONFIG;
    }
    if (len < 0 || (size_t)len >= n) {
        cli_error("spool path too long");
        return EX_CONFIG;
    }
    if (!create)
        return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    if (make_dirs(dir) != 0) {
        cli_error("cannot create the spool directory %s: %s", dir, strerror(errno));
        return EX_CANTCREAT;
    }
    return 0;
}

/* The value of `spool = ...` before the first section of the configuration file (the
 * file's other keys are checked by cfg_load; this one applies to every command). */
static int config_spool(char *out, size_t n)
{
    char path[4096], line[4096];
    if (cfg_find_file(path, sizeof path) != 1)
        return 0;
    FILE *f = fopen(path, "r");
    int found = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        char *p = line + strspn(line, " \t");
        if (*p == '[')
            break;
        if (strncmp(p, "spool", 5) != 0 || (p[5] != ' ' && p[5] != '\t' && p[5] != '='))
            continue;
        p += 5 + strspn(p + 5, " \t");
        if (*p != '=')
            continue;
        p += 1 + strspn(p + 1, " \t");
        size_t len = strcspn(p, "\r\n");
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len >= 2 && p[0] == '"' && p[len - 1] == '"')
            p++, len -= 2;
        found = len > 0 && len < n;
        if (found)
            snprintf(out, n, "%.*s", (int)len, p);
    }
    if (f != NULL)
        fclose(f);
    return found;
}

/* mkdir -p with mode 0700 for the directories it creates. */
static int make_dirs(char *path)
{
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int queue_spool_open(const char *opt, unsigned flags, pigeon_spool **out)
{
    char path[4096];
    char err[512];
    *out = NULL;
    int rc = queue_spool_path(opt, (flags & PIGEON_SPOOL_CREATE) != 0, path, sizeof path);
    if (rc != 0)
        return rc;
    pigeon_err e = pigeon_spool_open(path, flags, out, err, sizeof err);
    /* A URL is shown as the library shows it (its password, if any, masked). */
    const char *shown = is_url(path) ? "(PostgreSQL)" : path;
    if (e == PIGEON_ERR_NOTFOUND) {
        cli_error("no spool at %s (nothing was queued yet)", is_url(path) ? err : path);
        return EX_NOINPUT;
    }
    if (e != PIGEON_OK) {
        cli_error("cannot open the spool %s: %s%s", shown, err, nospace_hint(e));
        return e == PIGEON_ERR_TIMEOUT ? EX_TEMPFAIL : cli_exit_status(e);
    }
    return 0;
}

int queue_account_of(const cfg_settings *cfg, char *account, size_t n, char *err, size_t errlen)
{
    for (int k = 0; k < K_COUNT; k++) {
        if (cfg->v[k].source == CFG_CLI) {
            snprintf(err, errlen,
                     "%s cannot be queued: the daemon sends with the account's settings; put "
                     "%s in the account (pigeon.conf(5)) instead",
                     cfg->v[k].origin, cfg_key_name((enum cfg_key)k));
            return EX_USAGE;
        }
    }
    if (cfg->account[0] == '\0') {
        snprintf(err, errlen,
                 "queueing needs an account in the configuration file ([account NAME], "
                 "pigeon.conf(5)): the daemon reads its settings when it delivers");
        return EX_CONFIG;
    }
    snprintf(account, n, "%s", cfg->account);
    return 0;
}

/* pigeon_read_fn over a composed message's stream. */
static int message_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    return pigeon_message_stream_read(ctx, buf, cap, n) == PIGEON_OK ? 0 : -1;
}

/* The bare address of a mailbox for the envelope: A-labels, or UTF-8 when the local part
 * needs it (RFC 6531). NULL when out of memory. */
static char *path_of(const pigeon_mailbox *mb)
{
    char *out = NULL;
    pigeon_err e = pigeon_mailbox_addr_spec(mb, 0, &out);
    if (e == PIGEON_ERR_ADDRESS)
        e = pigeon_mailbox_addr_spec(mb, 1, &out);
    return e == PIGEON_OK ? out : NULL;
}

/* Prints the queue id once the message is durable. */
static void report_queued(const char *id, const char *message_id, int json)
{
    if (json) {
        json_writer w;
        json_init(&w, stdout);
        json_object_begin(&w);
        json_kv_string(&w, "status", "queued");
        json_kv_string(&w, "queue_id", id);
        json_kv_string(&w, "message_id", message_id);
        json_object_end(&w);
        json_finish(&w);
    } else {
        printf("queued %s%s%s\n", id, message_id ? " " : "", message_id ? message_id : "");
    }
    fflush(stdout);
}

int queue_store_message(const char *spool_opt, const char *account, pigeon_message *msg, int json)
{
    int status = EX_OSERR;
    size_t n = pigeon_message_rcpt_count(msg);
    const pigeon_mailbox *from = pigeon_message_envelope_from(msg);
    char **rcpts = calloc(n ? n : 1, sizeof *rcpts);
    char *from_path = from != NULL ? path_of(from) : NULL;
    pigeon_message_stream *stream = NULL;
    pigeon_spool *spool = NULL;
    char msgid[MSGID_MAX + 3];
    char id[PIGEON_SPOOL_ID_LEN + 1];
    if (rcpts == NULL || from_path == NULL)
        goto nomem;
    for (size_t i = 0; i < n; i++)
        if ((rcpts[i] = path_of(pigeon_message_rcpt(msg, i))) == NULL)
            goto nomem;
    const char *mid = pigeon_message_get_message_id(msg);
    if (mid != NULL)
        snprintf(msgid, sizeof msgid, "<%.*s>", MSGID_MAX, mid);
    pigeon_err e = pigeon_message_stream_open(msg, NULL, &stream);
    if (e != PIGEON_OK) {
        cli_error("cannot write the message: %s", pigeon_message_error(msg));
        status = cli_exit_status(e);
        goto done;
    }
    if ((status =
             queue_spool_open(spool_opt, PIGEON_SPOOL_CREATE | PIGEON_SPOOL_NO_CHECK, &spool)) != 0)
        goto done;
    pigeon_spool_envelope env = {account, from_path, (const char *const *)rcpts, n,
                                 mid ? msgid : NULL};
    e = pigeon_spool_enqueue_stream(spool, &env, message_read, stream, pigeon_spool_now_ms(), id);
    if (e != PIGEON_OK) {
        cli_error("cannot queue the message: %s%s", pigeon_spool_error(spool), nospace_hint(e));
        status = e == PIGEON_ERR_TIMEOUT ? EX_TEMPFAIL : cli_exit_status(e);
        goto done;
    }
    report_queued(id, mid ? msgid : NULL, json);
    status = 0;
    goto done;
nomem:
    cli_error("out of memory");
done:
    pigeon_spool_close(spool);
    pigeon_message_stream_free(stream);
    for (size_t i = 0; rcpts != NULL && i < n; i++)
        free(rcpts[i]);
    free(rcpts);
    free(from_path);
    return status;
}

int queue_store_raw(const char *spool_opt, const char *account, const char *from,
                    const char *const *rcpts, size_t n, const char *message_id, pigeon_read_fn read,
                    void *ctx, char id[PIGEON_SPOOL_ID_LEN + 1])
{
    pigeon_spool *spool = NULL;
    int status = queue_spool_open(spool_opt, PIGEON_SPOOL_CREATE | PIGEON_SPOOL_NO_CHECK, &spool);
    if (status != 0)
        return status;
    pigeon_spool_envelope env = {account, from, rcpts, n, message_id};
    pigeon_err e = pigeon_spool_enqueue_stream(spool, &env, read, ctx, pigeon_spool_now_ms(), id);
    if (e != PIGEON_OK) {
        cli_error("cannot queue the message: %s%s", pigeon_spool_error(spool), nospace_hint(e));
        status = e == PIGEON_ERR_TIMEOUT ? EX_TEMPFAIL : cli_exit_status(e);
    }
    pigeon_spool_close(spool);
    return status;
}
