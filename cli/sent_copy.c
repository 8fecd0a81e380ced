/*
 * sent_copy.c - `pigeon send --save-sent[=FOLDER]` (per account: save_sent = yes|FOLDER):
 * a copy of the message in the account's Sent folder after delivery.
 *
 * The composed message is written once into an unlinked temporary file (DKIM-signed on
 * the way when the account signs, as dkim_send.c does), sent from that file, and, once
 * the server accepted it, the same bytes are APPENDed over IMAP with \Seen (RFC 9051
 * 6.3.12) to the folder marked \Sent (RFC 6154) or the one named. The Bcc recipients,
 * which the message itself never shows (pigeon/message.h), are added as a Bcc field at
 * the top of the sender's copy only (RFC 5322 3.6.3 leaves this to the sender).
 *
 * A failure to save never makes the message be sent again: it is reported as a warning on
 * stderr ("sent, but no copy in Sent: ...") and the exit status stays the delivery's.
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
#include "mailbox_conn.h"
#include "sent_copy.h"
#include "util/fdio.h"

/* The bytes of the copy: an optional prefix (Bcc, DKIM fields) then the file. */
struct copy_reader {
    const char *prefix; /* bytes before the file */
    size_t len;         /* their length */
    size_t pos;         /* how many were read */
    int fd;             /* the file, read from its start */
};

static int copy_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    struct copy_reader *r = ctx;
    if (r->pos < r->len) {
        size_t k = r->len - r->pos < cap ? r->len - r->pos : cap;
        memcpy(buf, r->prefix + r->pos, k);
        r->pos += k;
        *n = k;
        return 0;
    }
    return cli_fd_read(&r->fd, buf, cap, n);
}

const char *sent_copy_folder(const cfg_settings *cfg)
{
    const char *v = cfg_get(cfg, K_SAVE_SENT);
    int on = 0;
    if (v == NULL || (cfg_bool(v, &on) == 0 && !on))
        return NULL;
    return cfg_bool(v, &on) == 0 ? "" : v;
}

int sent_copy_option(cfg_settings *cfg, enum cfg_key k, const char *arg)
{
    char why[200], quoted[128];
    const char *flag = k == K_SAVE_SENT   ? "--save-sent"
                       : k == K_IMAP_HOST ? "--imap-host"
                                          : "--imap-port";
    if (arg == NULL)
        arg = "yes";
    if (cfg_check(k, arg, why, sizeof why) != 0) {
        cli_error("invalid %s \"%s\": %s", flag, cli_shorten(arg, quoted, sizeof quoted), why);
        return -1;
    }
    if (cfg_set(cfg, k, arg, CFG_CLI, flag) != 0) {
        cli_error("out of memory");
        return -1;
    }
    return 0;
}

char *sent_copy_bcc_field(const cli_compose *c)
{
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; c != NULL && i < c->bcc.count; i++) {
        pigeon_address_list list = {0};
        if (pigeon_address_list_parse(c->bcc.items[i], &list, NULL, 0) != PIGEON_OK)
            continue;
        for (size_t k = 0; k < list.count; k++) {
            char *spec = NULL;
            if (pigeon_mailbox_addr_spec(&list.items[k], 0, &spec) != PIGEON_OK)
                continue;
            size_t need = len + strlen(spec) + 16;
            if (need > cap) {
                char *grown = realloc(out, need * 2);
                if (grown == NULL) {
                    free(spec);
                    continue;
                }
                out = grown;
                cap = need * 2;
            }
            len += (size_t)snprintf(out + len, cap - len, "%s%s", len == 0 ? "Bcc: " : ", ", spec);
            free(spec);
        }
        pigeon_address_list_cleanup(&list);
    }
    if (len > 0 && len + 3 <= cap)
        memcpy(out + len, "\r\n", 3);
    return out;
}

/* APPENDs the copy; a failure is a warning. */
static void save_copy(cfg_settings *cfg, const deliver_opts *o, const char *folder,
                      const char *prefix, size_t prefix_len, int fd)
{
    mailbox_plan plan;
    pigeon_imap *m = NULL;
    char *found = NULL;
    struct stat st;
    const char *why = NULL;
    pigeon_err err = PIGEON_OK;
    if (mailbox_plan_init(&plan, cfg, o, 0) != 0) {
        fprintf(stderr, "pigeon: warning: the message was sent, but no copy was saved in Sent "
                        "(see above)\n");
        return;
    }
    if (fstat(fd, &st) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
        why = "cannot read the sent message back";
        goto done;
    }
    if ((err = pigeon_imap_connect(&plan.opts, &m)) != PIGEON_OK)
        goto done;
    if (*folder == '\0') {
        if ((err = pigeon_imap_find_special(m, "\\Sent", &found)) != PIGEON_OK)
            goto done;
        folder = found;
    }
    struct copy_reader r = {prefix, prefix_len, 0, fd};
    uint32_t uid = 0;
    err = pigeon_imap_append(m, folder, "\\Seen", copy_read, &r,
                             (uint64_t)prefix_len + (uint64_t)st.st_size, &uid);
    if (err == PIGEON_OK && o->verbose)
        fprintf(stderr, "pigeon: saved a copy in \"%s\" on %s\n", folder, plan.host);
    pigeon_imap_logout(m);
done:
    if (why != NULL || err != PIGEON_OK) {
        cli_error("warning: the message was sent, but no copy was saved in %s%s%s: %s",
                  *folder ? "\"" : "Sent", *folder ? folder : "", *folder ? "\"" : "",
                  why != NULL ? why : pigeon_imap_error(m));
    }
    free(found);
    pigeon_imap_free(m);
    mailbox_plan_cleanup(&plan);
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

/* Writes the message (signed when DKIM is configured) to fd; *fields gets the DKIM
 * fields (malloc'd) or NULL. */
static int write_message(cfg_settings *cfg, pigeon_message *msg, int fd, char **fields, size_t *len,
                         int *is_8bit)
{
    char err[700];
    cli_dkim *d = NULL;
    pigeon_message_stream *stream = NULL;
    int status = cli_dkim_load(cfg, 1, &d, err, sizeof err);
    if (status != 0) {
        cli_error("%s", err);
        return status;
    }
    if (pigeon_message_stream_open(msg, NULL, &stream) != PIGEON_OK) {
        cli_error("cannot write the message: %s", pigeon_message_error(msg));
        cli_dkim_free(d);
        return EX_DATAERR;
    }
    cli_tee t = {stream, fd};
    if (d != NULL) {
        const pigeon_mailbox *from = pigeon_message_envelope_from(msg);
        status = cli_dkim_sign(d, from != NULL ? from->domain_ascii : NULL, cli_tee_read, &t,
                               fields, len, err, sizeof err);
        if (status != 0)
            cli_error("%s", err);
    } else {
        char buf[65536];
        size_t n = 0;
        do {
            if (cli_tee_read(&t, buf, sizeof buf, &n) != 0) {
                cli_error("cannot write the message: %s", strerror(errno));
                status = EX_IOERR;
                break;
            }
        } while (n > 0);
    }
    *is_8bit = pigeon_message_stream_is_8bit(stream);
    pigeon_message_stream_free(stream);
    cli_dkim_free(d);
    return status;
}

int sent_copy_send(cfg_settings *cfg, pigeon_message *msg, const cli_compose *c,
                   const deliver_opts *o, const char *folder)
{
    char *fields = NULL, *from = NULL, **rcpts = NULL, *bcc = NULL, *prefix = NULL;
    size_t flen = 0, n = 0;
    int is_8bit = 0;
    struct stat st;
    int fd = cli_temp_file("sent");
    int status = 0;
    if (fd < 0) {
        cli_error("cannot create a temporary file for the sent copy: %s", strerror(errno));
        return EX_CANTCREAT;
    }
    if ((status = write_message(cfg, msg, fd, &fields, &flen, &is_8bit)) != 0)
        goto done;
    if ((status = envelope_of(msg, &from, &rcpts, &n)) != 0 || fstat(fd, &st) != 0 ||
        lseek(fd, 0, SEEK_SET) != 0) {
        cli_error("cannot prepare the message for sending");
        status = status ? status : EX_IOERR;
        goto done;
    }
    char id[1024];
    const char *mid = pigeon_message_get_message_id(msg);
    snprintf(id, sizeof id, "<%s>", mid != NULL ? mid : "");
    deliver_opts raw = *o;
    raw.raw_8bit = is_8bit;
    raw.message_id = mid != NULL ? id : NULL;
    cli_dkim_reader r = {fields, flen, 0, cli_fd_read, &fd};
    status = deliver_raw(
        cfg, from, (const char *const *)rcpts, n, fields != NULL ? cli_dkim_read : cli_fd_read,
        fields != NULL ? (void *)&r : (void *)&fd, (int64_t)flen + (int64_t)st.st_size, &raw);
    if (status != 0)
        goto done; /* not delivered: nothing to file */
    /* The copy: Bcc first (only here), then the DKIM fields and the message as sent. */
    bcc = sent_copy_bcc_field(c);
    size_t blen = bcc != NULL ? strlen(bcc) : 0;
    prefix = malloc(blen + flen + 1);
    if (prefix == NULL) {
        cli_error("warning: the message was sent, but no copy was saved: out of memory");
        goto done;
    }
    if (blen > 0)
        memcpy(prefix, bcc, blen);
    if (flen > 0)
        memcpy(prefix + blen, fields, flen);
    save_copy(cfg, o, folder, prefix, blen + flen, fd);
done:
    for (size_t i = 0; rcpts != NULL && i < n; i++)
        free(rcpts[i]);
    free(rcpts);
    free(from);
    free(fields);
    free(bcc);
    free(prefix);
    close(fd);
    return status;
}

int sent_copy_src_read(void *ctx, void *buf, size_t cap, size_t *n)
{
    sent_copy_src *c = ctx;
    if (c->pos < c->len) {
        *n = c->len - c->pos < cap ? c->len - c->pos : cap;
        memcpy(buf, c->prefix + c->pos, *n);
        c->pos += *n;
        return 0;
    }
    return cli_fd_read(&c->fd, buf, cap, n);
}
