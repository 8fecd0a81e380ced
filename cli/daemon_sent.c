/*
 * daemon_sent.c - the daemon's copy in Sent: a tee of the bytes sent into a durable outbox,
 * and a saver thread that APPENDs them over IMAP (RFC 9051 6.3.12, \Seen; the folder
 * marked \Sent, RFC 6154, or the one named by save_sent).
 *
 * The outbox is a directory of pairs: ID.meta (account, folder, the Bcc field's value, one
 * per line) and ID.eml (the exact bytes the SMTP server received, before dot-stuffing).
 * The worker writes ID.part while the message goes out; after the outcomes are recorded
 * it writes and syncs ID.meta, syncs the .part and renames it to ID.eml: a copy is only
 * ever picked up whole. The saver deletes both once the server answered the APPEND with
 * OK. A crash between the delivery and the rename loses that one copy, never a message;
 * a crash after an APPEND but before the delete files the copy twice (the duplicate
 * RFC 5321 6.1 accepts for messages applies to their copies too).
 *
 * Bcc: a queued message holds no Bcc field (pigeon/message.h), so the recipients of the
 * envelope that its To and Cc fields do not name are the Bcc recipients; the sender's
 * copy gets them in a Bcc field at its top (RFC 5322 3.6.3), as `send --save-sent` does.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "daemon_sent.h"
#include "deliver.h"
#include "dkim.h"
#include "mailbox_conn.h"
#include "pigeon/address.h"
#include "pigeon/mailbox.h"
#include "sent_copy.h"
#include "util/buf.h"
#include "util/fdio.h"
#include "util/random.h"

/* How much of a copy's header is read to find its To and Cc fields. */
#define HEADER_MAX (256 * 1024)
/* Copies the saver remembers a backoff for; beyond, they are simply tried every pass. */
#define SLOTS 256
/* The backoff of a copy that could not be filed: 5 s doubling up to 10 minutes. */
#define BACKOFF_MIN_MS 5000
#define BACKOFF_MAX_MS (10 * 60 * 1000)

struct daemon_sent_tee {
    pigeon_read_fn read; /* the message's own reader */
    void *read_ctx;      /* its context */
    int fd;              /* the .part file */
    int eof;             /* the reader reached the end (the whole message went out) */
    int failed;          /* a write to the .part failed: no copy */
    char account[64];    /* the account */
    char folder[256];    /* save_sent's folder, "" for the one marked \Sent */
    char path[4200];     /* the .part file's path, without ".part" */
};

/* A copy's backoff. */
struct slot {
    char name[96];   /* its ID */
    int64_t next_ms; /* not tried before */
    int tries;       /* failures so far */
};

static pthread_mutex_t saver_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t saver_cond = PTHREAD_COND_INITIALIZER;
static int saver_kick;                 /* a copy came: look now */
static struct slot saver_slots[SLOTS]; /* backoffs (the saver thread's, or --once's pass) */

/* The outbox of the spool: SPOOL.sent beside a spool file, else the state directory. */
static int outbox_dir(const daemon_state *d, char *out, size_t n)
{
    const char *p = d->spool_path;
    if (strstr(p, "://") == NULL && strncmp(p, "postgres", 8) != 0)
        return snprintf(out, n, "%s.sent", p) < (int)n ? 0 : -1;
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int k = state != NULL && *state == '/'
                ? snprintf(out, n, "%s/pigeon/sent-outbox", state)
                : snprintf(out, n, "%s/.local/state/pigeon/sent-outbox", home ? home : "/tmp");
    return k < (int)n ? 0 : -1;
}

/* mkdir -p with mode 0700 for the last parts. */
static int make_dir(const char *dir)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static void log_copy(daemon_state *d, eventlog_level level, const char *account,
                     const char *queue_id, const char *folder, const char *error)
{
    eventlog_event e;
    eventlog_event_init(&e, level, "sent_copy");
    eventlog_add_str(&e, "account", account);
    if (queue_id != NULL)
        eventlog_add_str(&e, "queue_id", queue_id);
    eventlog_add_str(&e, "folder", folder[0] ? folder : "\\Sent");
    eventlog_add_str(&e, "status", error == NULL ? "saved" : "not_saved");
    if (error != NULL)
        eventlog_add_str(&e, "error", error);
    eventlog_write(d->log, &e);
}

/* ---- the tee (worker threads) ---- */

static int tee_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    daemon_sent_tee *t = ctx;
    int rc = t->read(t->read_ctx, buf, cap, n);
    if (rc == 0 && *n == 0)
        t->eof = 1;
    if (rc == 0 && *n > 0 && !t->failed && pg_write_all(t->fd, buf, *n) != 0)
        t->failed = 1;
    return rc;
}

void daemon_sent_begin(daemon_state *d, const daemon_conf *conf, const pigeon_spool_entry *job,
                       pigeon_smtp_raw *msg, daemon_sent_tee **tee)
{
    *tee = NULL;
    const char *folder = sent_copy_folder(&conf->cfg);
    if (folder == NULL || job->count[PIGEON_SPOOL_DELIVERED] > 0)
        return; /* off, or a copy was filed at the first delivery */
    char dir[4096], id[24];
    daemon_sent_tee *t = calloc(1, sizeof *t);
    if (t == NULL || outbox_dir(d, dir, sizeof dir) != 0 || make_dir(dir) != 0 ||
        pg_random_token(id, 12) != PIGEON_OK || strlen(job->account) >= sizeof t->account ||
        strpbrk(job->account, "\r\n") != NULL || strlen(folder) >= sizeof t->folder) {
        log_copy(d, EVENTLOG_WARNING, job->account, job->queue_id, folder ? folder : "",
                 "cannot prepare the copy (outbox directory or settings)");
        free(t);
        return;
    }
    snprintf(t->path, sizeof t->path, "%s/%lld-%s-%s", dir, (long long)daemon_now_ms(),
             job->queue_id, id);
    char part[4300];
    snprintf(part, sizeof part, "%s.part", t->path);
    t->fd = open(part, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (t->fd < 0) {
        log_copy(d, EVENTLOG_WARNING, job->account, job->queue_id, folder, strerror(errno));
        free(t);
        return;
    }
    snprintf(t->account, sizeof t->account, "%s", job->account);
    snprintf(t->folder, sizeof t->folder, "%s", folder);
    t->read = msg->read;
    t->read_ctx = msg->read_ctx;
    msg->read = tee_read;
    msg->read_ctx = t;
    *tee = t;
}

/* Appends the addr-specs (lower case) of the To or Cc field value v to set. */
static void add_named(pg_buf *set, const char *v)
{
    pigeon_address_list list = {0};
    if (pigeon_address_list_parse(v, &list, NULL, 0) != PIGEON_OK)
        return;
    for (size_t k = 0; k < list.count; k++) {
        char *spec = NULL;
        if (pigeon_mailbox_addr_spec(&list.items[k], 1, &spec) != PIGEON_OK)
            continue;
        for (char *p = spec; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        pg_buf_printf(set, "\n%s\n", spec);
        free(spec);
    }
    pigeon_address_list_cleanup(&list);
}

/* The addresses the header of the file at fd names in To and Cc, as "\na\n\nb\n". */
static void named_in_header(int fd, pg_buf *set)
{
    char *h = malloc(HEADER_MAX + 1);
    ssize_t got = h != NULL ? pread(fd, h, HEADER_MAX, 0) : -1;
    if (got <= 0) {
        free(h);
        return;
    }
    h[got] = '\0';
    pg_buf field;
    pg_buf_init(&field);
    for (char *line = h; *line != '\0' && *line != '\r' && *line != '\n';) {
        char *end = line + strcspn(line, "\n");
        int is_cont = *line == ' ' || *line == '\t';
        if (!is_cont) {
            if (field.len > 0)
                add_named(set, field.data);
            pg_buf_reset(&field);
            if (strncasecmp(line, "To:", 3) == 0 || strncasecmp(line, "Cc:", 3) == 0)
                pg_buf_append(&field, line + 3, (size_t)(end - line - 3));
        } else if (field.len > 0) {
            pg_buf_append(&field, line, (size_t)(end - line)); /* unfolded (RFC 5322 2.2.3) */
        }
        for (size_t i = 0; i < field.len; i++)
            if (field.data[i] == '\r')
                field.data[i] = ' ';
        if (*end == '\0')
            break;
        line = end + 1;
    }
    if (field.len > 0)
        add_named(set, field.data);
    pg_buf_cleanup(&field);
    free(h);
}

/* The Bcc field's value: the job's recipients that To and Cc do not name. */
static void bcc_of(int fd, const pigeon_spool_entry *job, pg_buf *bcc)
{
    pg_buf named;
    pg_buf_init(&named);
    named_in_header(fd, &named);
    for (size_t k = 0; k < job->rcpt_count; k++) {
        const char *a = job->rcpts[k].address;
        char key[600];
        int n = snprintf(key, sizeof key, "\n%s\n", a);
        if (n <= 0 || (size_t)n >= sizeof key || strpbrk(a, "\r\n") != NULL)
            continue;
        for (char *p = key; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        if (named.data == NULL || strstr(named.data, key) == NULL)
            pg_buf_printf(bcc, "%s%s", bcc->len ? ", " : "", a);
    }
    pg_buf_cleanup(&named);
}

/* Writes path.meta durably: account, folder and the Bcc value, one per line. */
static int write_meta(const daemon_sent_tee *t, const char *bcc)
{
    char tmp[4300], meta[4300];
    snprintf(tmp, sizeof tmp, "%s.meta.tmp", t->path);
    snprintf(meta, sizeof meta, "%s.meta", t->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    pg_buf b;
    pg_buf_init(&b);
    pg_buf_printf(&b, "%s\n%s\n%s\n", t->account, t->folder, bcc);
    int rc = b.err == PIGEON_OK && pg_write_all(fd, b.data, b.len) == 0 && fsync(fd) == 0 ? 0 : -1;
    pg_buf_cleanup(&b);
    close(fd);
    if (rc == 0 && rename(tmp, meta) != 0)
        rc = -1;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

void daemon_sent_end(daemon_state *d, daemon_sent_tee **tee, const pigeon_send_result *res,
                     const pigeon_spool_entry *job)
{
    daemon_sent_tee *t = *tee;
    if (t == NULL)
        return;
    *tee = NULL;
    int accepted = 0;
    for (size_t i = 0; i < res->rcpt_count; i++)
        accepted |= res->rcpts[i].status == PIGEON_RCPT_ACCEPTED;
    char part[4300], eml[4300];
    snprintf(part, sizeof part, "%s.part", t->path);
    snprintf(eml, sizeof eml, "%s.eml", t->path);
    const char *why = NULL;
    if (accepted && (!t->eof || t->failed))
        why = t->failed ? "cannot write the copy to the outbox" : "the copy is incomplete";
    if (accepted && why == NULL) {
        pg_buf bcc;
        pg_buf_init(&bcc);
        bcc_of(t->fd, job, &bcc);
        if (bcc.err != PIGEON_OK || fsync(t->fd) != 0 ||
            write_meta(t, bcc.data != NULL ? bcc.data : "") != 0 || rename(part, eml) != 0)
            why = strerror(errno ? errno : EIO);
        pg_buf_cleanup(&bcc);
    }
    close(t->fd);
    if (!accepted || why != NULL)
        unlink(part);
    if (why != NULL)
        log_copy(d, EVENTLOG_WARNING, t->account, job->queue_id, t->folder, why);
    if (accepted && why == NULL)
        daemon_sent_wake();
    free(t);
}

/* ---- the saver ---- */

/* The copy's backoff slot (a free one when new); NULL when all are taken. */
static struct slot *slot_of(const char *id, int create)
{
    struct slot *free_slot = NULL;
    for (size_t i = 0; i < SLOTS; i++) {
        if (strcmp(saver_slots[i].name, id) == 0)
            return &saver_slots[i];
        if (saver_slots[i].name[0] == '\0' && free_slot == NULL)
            free_slot = &saver_slots[i];
    }
    if (create && free_slot != NULL) {
        snprintf(free_slot->name, sizeof free_slot->name, "%s", id);
        free_slot->tries = 0;
        free_slot->next_ms = 0;
    }
    return create ? free_slot : NULL;
}

/* Reads ID.meta: account, folder, Bcc. Returns 0 or -1. */
static int read_meta(const char *path, char *account, size_t an, char *folder, size_t fn,
                     char **bcc)
{
    char *data = NULL;
    size_t len = 0;
    if (cli_read_input(path, 64 * 1024, &data, &len) != PIGEON_OK)
        return -1;
    char *a = data, *f = strchr(a, '\n'), *b = f ? strchr(f + 1, '\n') : NULL;
    char *e = b ? strchr(b + 1, '\n') : NULL;
    if (e == NULL) {
        free(data);
        return -1;
    }
    *f = *b = *e = '\0';
    snprintf(account, an, "%s", a);
    snprintf(folder, fn, "%s", f + 1);
    *bcc = strdup(b + 1);
    free(data);
    return *bcc != NULL ? 0 : -1;
}

/* The account's resolved settings (the From gives the preset when provider = auto). */
static int account_settings(cfg_settings *cfg, const char *account, char *err, size_t n)
{
    int status = settings_load(cfg, account, err, n);
    if (status == 0) {
        pigeon_mailbox from = {0};
        const char *f = cfg_get(cfg, K_FROM);
        char *addr = NULL;
        if (f != NULL && pigeon_mailbox_parse(f, &from, NULL, 0) == PIGEON_OK)
            pigeon_mailbox_addr_spec(&from, 1, &addr);
        status = settings_finish(cfg, from.domain, addr, err, n);
        free(addr);
        pigeon_mailbox_cleanup(&from);
    }
    return status;
}

/* APPENDs one copy. Returns NULL when filed, else why not (static or in err). */
static const char *file_copy(daemon_state *d, const char *eml, const char *account,
                             const char *folder, const char *bcc, char *err, size_t errn)
{
    cfg_settings cfg;
    mailbox_plan plan;
    deliver_opts o;
    pigeon_imap *m = NULL;
    char *found = NULL, *prefix = NULL;
    const char *why = NULL;
    struct stat st;
    memset(&cfg, 0, sizeof cfg);
    memset(&plan, 0, sizeof plan);
    memset(&o, 0, sizeof o);
    o.quiet = 1;
    o.cancel = &d->stopping;
    int fd = open(eml, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        why = "cannot read the copy in the outbox";
        goto done;
    }
    if (account_settings(&cfg, account, err, errn) != 0) {
        why = err;
        goto done;
    }
    if (mailbox_plan_init(&plan, &cfg, &o, 0) != 0) {
        why = "the account's mailbox settings are incomplete (see the daemon's stderr)";
        goto done;
    }
    pigeon_err e = pigeon_imap_connect(&plan.opts, &m);
    if (e == PIGEON_OK && *folder == '\0' &&
        (e = pigeon_imap_find_special(m, "\\Sent", &found)) == PIGEON_OK)
        folder = found;
    size_t plen = 0;
    if (e == PIGEON_OK && *bcc != '\0') {
        plen = strlen(bcc) + 7;
        if ((prefix = malloc(plen + 1)) == NULL)
            e = PIGEON_ERR_NOMEM;
        else
            snprintf(prefix, plen + 1, "Bcc: %s\r\n", bcc);
    }
    sent_copy_src src = {prefix ? prefix : "", prefix ? plen : 0, 0, fd};
    uint32_t uid = 0;
    if (e == PIGEON_OK)
        e = pigeon_imap_append(m, folder, "\\Seen", sent_copy_src_read, &src,
                               (uint64_t)src.len + (uint64_t)st.st_size, &uid);
    if (e == PIGEON_OK)
        pigeon_imap_logout(m);
    else {
        snprintf(err, errn, "%s", m != NULL ? pigeon_imap_error(m) : pigeon_strerror(e));
        why = err;
    }
done:
    if (fd >= 0)
        close(fd);
    free(found);
    free(prefix);
    pigeon_imap_free(m);
    mailbox_plan_cleanup(&plan);
    cfg_cleanup(&cfg);
    return why;
}

/* Files the copy ID of the outbox unless it waits for its backoff. */
static void pass_one(daemon_state *d, const char *dir, const char *id)
{
    char eml[4300], meta[4300], account[64], folder[256], err[600];
    char *bcc = NULL;
    int64_t now = daemon_now_ms();
    struct slot *s = slot_of(id, 0);
    if (s != NULL && s->next_ms > now)
        return;
    snprintf(eml, sizeof eml, "%s/%s.eml", dir, id);
    snprintf(meta, sizeof meta, "%s/%s.meta", dir, id);
    const char *qid = strchr(id, '-') ? strchr(id, '-') + 1 : id;
    char queue_id[64];
    snprintf(queue_id, sizeof queue_id, "%.*s", (int)strcspn(qid, "-"), qid);
    const char *why = NULL;
    if (read_meta(meta, account, sizeof account, folder, sizeof folder, &bcc) != 0) {
        snprintf(account, sizeof account, "?");
        folder[0] = '\0';
        why = "the copy's .meta is missing or damaged (left in the outbox)";
    } else {
        why = file_copy(d, eml, account, folder, bcc, err, sizeof err);
    }
    free(bcc);
    log_copy(d, why ? EVENTLOG_WARNING : EVENTLOG_INFO, account, queue_id, folder, why);
    if (why == NULL) {
        unlink(eml);
        unlink(meta);
        if (s != NULL)
            s->name[0] = '\0';
        return;
    }
    if ((s = slot_of(id, 1)) != NULL) {
        int64_t wait = (int64_t)BACKOFF_MIN_MS << (s->tries < 7 ? s->tries : 7);
        s->tries++;
        s->next_ms = now + (wait < BACKOFF_MAX_MS ? wait : BACKOFF_MAX_MS);
    }
}

void daemon_sent_pass(daemon_state *d)
{
    char dir[4096];
    if (outbox_dir(d, dir, sizeof dir) != 0)
        return;
    DIR *dh = opendir(dir);
    if (dh == NULL)
        return;
    struct dirent *de;
    /* Names first: filing renames nothing, but the directory changes as copies come. */
    pg_buf names;
    pg_buf_init(&names);
    while ((de = readdir(dh)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n > 4 && n < 90 && strcmp(de->d_name + n - 4, ".eml") == 0)
            pg_buf_printf(&names, "%.*s\n", (int)(n - 4), de->d_name);
    }
    closedir(dh);
    for (char *p = names.data; p != NULL && *p != '\0' && !atomic_load(&d->stopping);) {
        char *nl = strchr(p, '\n');
        *nl = '\0';
        pass_one(d, dir, p);
        p = nl + 1;
    }
    pg_buf_cleanup(&names);
}

void daemon_sent_wake(void)
{
    pthread_mutex_lock(&saver_lock);
    saver_kick = 1;
    pthread_cond_signal(&saver_cond);
    pthread_mutex_unlock(&saver_lock);
}

static void *saver_main(void *arg)
{
    daemon_state *d = arg;
    while (!atomic_load(&d->stopping)) {
        daemon_sent_pass(d);
        /* Woken by a new copy, else every second for the backoffs and SIGTERM. */
        pthread_mutex_lock(&saver_lock);
        if (!saver_kick) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&saver_cond, &saver_lock, &until);
        }
        saver_kick = 0;
        pthread_mutex_unlock(&saver_lock);
    }
    return NULL;
}

int daemon_sent_start(daemon_state *d, pthread_t *thread)
{
    return pthread_create(thread, NULL, saver_main, d) == 0 ? 0 : -1;
}
