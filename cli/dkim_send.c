/*
 * dkim_send.c - where the command signs (see dkim.h): `pigeon send` (the composed message
 * goes once through the signer into an unlinked temporary file, then from the file to the
 * server behind its DKIM-Signature fields), the daemon's hook for spooled messages, and
 * the DKIM options shared by send and sendmail.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"
#include "dkim.h"
#include "util/fdio.h"

int cli_tee_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    cli_tee *t = ctx;
    if (pigeon_message_stream_read(t->stream, buf, cap, n) != PIGEON_OK)
        return -1;
    return pg_write_all(t->fd, buf, *n);
}

int cli_fd_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        *n = (size_t)r;
        return 0;
    }
}

/* The signed message on standard output (--dry-run). */
static int dry_run_out(const char *fields, size_t len, int fd)
{
    char buf[65536];
    size_t n = 0;
    if (pg_write_all(STDOUT_FILENO, fields, len) != 0)
        return EX_IOERR;
    while (cli_fd_read(&fd, buf, sizeof buf, &n) == 0 && n > 0)
        if (pg_write_all(STDOUT_FILENO, buf, n) != 0)
            return EX_IOERR;
    return 0;
}

/* The envelope of msg as bare addresses, malloc'd. */
static int envelope_of(pigeon_message *msg, char **from, char ***rcpts, size_t *n)
{
    const pigeon_mailbox *f = pigeon_message_envelope_from(msg);
    *n = pigeon_message_rcpt_count(msg);
    *rcpts = calloc(*n ? *n : 1, sizeof **rcpts);
    if (f == NULL || *rcpts == NULL || pigeon_mailbox_addr_spec(f, 0, from) != PIGEON_OK)
        return EX_OSERR;
    for (size_t i = 0; i < *n; i++)
        if (pigeon_mailbox_addr_spec(pigeon_message_rcpt(msg, i), 0, &(*rcpts)[i]) != PIGEON_OK)
            return EX_OSERR;
    return 0;
}

static int send_signed(cfg_settings *cfg, pigeon_message *msg, const deliver_opts *o,
                       const char *fields, size_t len, int fd, int is_8bit)
{
    char *from = NULL, **rcpts = NULL;
    size_t n = 0;
    struct stat st;
    int status = envelope_of(msg, &from, &rcpts, &n);
    if (status == 0 && fstat(fd, &st) != 0)
        status = EX_IOERR;
    if (status == 0) {
        char id[1024];
        const char *mid = pigeon_message_get_message_id(msg);
        snprintf(id, sizeof id, "<%s>", mid != NULL ? mid : "");
        deliver_opts raw = *o;
        raw.raw_8bit = is_8bit;
        raw.message_id = mid != NULL ? id : NULL;
        cli_dkim_reader r = {fields, len, 0, cli_fd_read, &fd};
        status = deliver_raw(cfg, from, (const char *const *)rcpts, n, cli_dkim_read, &r,
                             (int64_t)len + (int64_t)st.st_size, &raw);
    } else {
        cli_error("out of memory");
    }
    for (size_t i = 0; rcpts != NULL && i < n; i++)
        free(rcpts[i]);
    free(rcpts);
    free(from);
    return status;
}

int cli_dkim_send(cfg_settings *cfg, pigeon_message *msg, const deliver_opts *o, int dry_run)
{
    char err[700];
    cli_dkim *d = NULL;
    pigeon_message_stream *stream = NULL;
    char *fields = NULL;
    size_t len = 0;
    int fd = -1;
    int status = cli_dkim_load(cfg, 1, &d, err, sizeof err);
    if (status != 0 || d == NULL) {
        if (status != 0)
            cli_error("%s", err);
        return status != 0 ? status : -1;
    }
    /* 7-bit-safe (the default options): a signature over 8-bit text would break at the
     * first relay that downgrades it (RFC 6376 5.3). */
    if (pigeon_message_stream_open(msg, NULL, &stream) != PIGEON_OK) {
        cli_error("cannot write the message: %s", pigeon_message_error(msg));
        status = EX_DATAERR;
        goto done;
    }
    if ((fd = cli_temp_file("dkim")) < 0) {
        cli_error("cannot create a temporary file to sign the message: %s", strerror(errno));
        status = EX_CANTCREAT;
        goto done;
    }
    const pigeon_mailbox *from = pigeon_message_envelope_from(msg);
    cli_tee t = {stream, fd};
    status = cli_dkim_sign(d, from != NULL ? from->domain_ascii : NULL, cli_tee_read, &t, &fields,
                           &len, err, sizeof err);
    if (status != 0) {
        cli_error("%s", err);
        goto done;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        status = EX_IOERR;
        goto done;
    }
    status = dry_run
                 ? dry_run_out(fields, len, fd)
                 : send_signed(cfg, msg, o, fields, len, fd, pigeon_message_stream_is_8bit(stream));
done:
    if (fd >= 0)
        close(fd);
    free(fields);
    pigeon_message_stream_free(stream);
    cli_dkim_free(d);
    return status;
}

/* ---- the daemon's hook ---- */

/* The bytes a batch claim carried (job->body), read in place. */
typedef struct mem_reader {
    const char *data; /* the message */
    size_t len;       /* its length */
    size_t pos;       /* bytes read */
} mem_reader;

static int mem_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    mem_reader *m = ctx;
    size_t left = m->len - m->pos;
    *n = left < cap ? left : cap;
    memcpy(buf, m->data + m->pos, *n);
    m->pos += *n;
    return 0;
}

const char *cli_dkim_spooled(const cfg_settings *cfg, pigeon_spool *spool,
                             const pigeon_spool_entry *job, char **fields, size_t *len)
{
    static _Thread_local char err[700];
    cli_dkim *d = NULL;
    pigeon_spool_body *body = NULL;
    int64_t size = 0;
    *fields = NULL;
    if (cli_dkim_load(cfg, 0, &d, err, sizeof err) != 0)
        return err;
    if (d == NULL)
        return NULL;
    int status = 0;
    if (job->body != NULL && job->size >= 0) {
        /* The claim carried the bytes: signed in place, without the SHA-256 check of a
         * spool reader. That check still runs on the copy that is sent, and a body that
         * fails it is not sent, its signature with it. */
        mem_reader m = {job->body, (size_t)job->size, 0};
        status = cli_dkim_sign(d, NULL, mem_read, &m, fields, len, err, sizeof err);
    } else if (pigeon_spool_job_body(spool, job, &body, &size) != PIGEON_OK) {
        snprintf(err, sizeof err, "cannot read the stored message to DKIM-sign it");
        status = EX_IOERR;
    } else {
        status = cli_dkim_sign(d, NULL, pigeon_spool_body_read, body, fields, len, err, sizeof err);
    }
    pigeon_spool_body_close(body);
    cli_dkim_free(d);
    return status != 0 ? err : NULL;
}

/* ---- options ---- */

int cli_dkim_option(cfg_settings *cfg, int opt, const char *arg)
{
    static const struct {
        int opt;
        enum cfg_key key;
        const char *flag;
    } map[] = {
        {CLI_OPT_DKIM_KEY, K_DKIM_KEY, "--dkim-key"},
        {CLI_OPT_DKIM_SELECTOR, K_DKIM_SELECTOR, "--dkim-selector"},
        {CLI_OPT_DKIM_DOMAIN, K_DKIM_DOMAIN, "--dkim-domain"},
        {CLI_OPT_DKIM_ALGORITHM, K_DKIM_ALGORITHM, "--dkim-algorithm"},
        {CLI_OPT_DKIM_CANON, K_DKIM_CANONICALIZATION, "--dkim-canonicalization"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (map[i].opt != opt)
            continue;
        if (cfg_set(cfg, map[i].key, arg, CFG_CLI, map[i].flag) != 0) {
            cli_error("out of memory");
            return EX_OSERR;
        }
        return 0;
    }
    return -1;
}

void cli_dkim_usage(FILE *out)
{
    fputs("DKIM signing (or dkim_* in the account; pigeon dkim keygen makes a key):\n"
          "  --dkim-key PATH[,PATH]  private key file(s), mode 600: one RSA and/or Ed25519\n"
          "  --dkim-selector S[,S]   the selector of each key (S._domainkey.DOMAIN)\n"
          "  --dkim-domain DOMAIN    d= (default: the From domain); From must be within it\n"
          "  --dkim-algorithm ALG    rsa-sha256, ed25519-sha256 or both (default: each key)\n"
          "  --dkim-canonicalization C  relaxed (default), simple, or HEADER/BODY\n",
          out);
}

int cli_dkim_sign_stream(const cfg_settings *cfg, const char *from_domain, pigeon_read_fn read,
                         void *ctx, char **fields, size_t *len)
{
    char err[700];
    cli_dkim *d = NULL;
    *fields = NULL;
    *len = 0;
    int status = cli_dkim_load(cfg, 1, &d, err, sizeof err);
    if (status == 0 && d != NULL)
        status = cli_dkim_sign(d, from_domain, read, ctx, fields, len, err, sizeof err);
    if (status != 0)
        cli_error("%s", err);
    cli_dkim_free(d);
    return status;
}
