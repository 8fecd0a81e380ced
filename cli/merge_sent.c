/*
 * merge_sent.c - the mail merge's copies in Sent over one IMAP connection (RFC 9051
 * 6.3.12 APPEND with \Seen; the folder marked \Sent, RFC 6154, or the one named).
 *
 * Each copy is the message written as the SMTP engine writes it for a server (CRLF, 7-bit
 * safe encodings; the composed message gives the same bytes each time it is written),
 * with the Bcc field on top (sent_copy.h). A failure drops the connection; the copy waits
 * in an unlinked temporary file for one more try at the end of the run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dkim.h"
#include "mailbox_conn.h"
#include "merge_sent.h"
#include "pigeon/mailbox.h"
#include "sent_copy.h"

/* Copies waiting for the retry at the end, at most this many (the rest are reported). */
#define PENDING_MAX 1024

struct merge_sent {
    cfg_settings *cfg;         /* the settings (borrowed) */
    const deliver_opts *o;     /* reporting options (borrowed) */
    const char *folder;        /* save_sent's folder, "" for the one marked \Sent */
    mailbox_plan plan;         /* the connection's options, once made */
    int planned;               /* plan is set */
    pigeon_imap *m;            /* the connection, or NULL */
    char *found;               /* the \Sent folder's name, once found */
    int pending[PENDING_MAX];  /* fds of the copies to try again */
    char *bcc[PENDING_MAX];    /* their Bcc fields */
    size_t npending;           /* how many */
    unsigned long saved, lost; /* counts */
};

merge_sent *merge_sent_open(cfg_settings *cfg, const deliver_opts *o)
{
    const char *folder = sent_copy_folder(cfg);
    if (folder == NULL)
        return NULL;
    merge_sent *ms = calloc(1, sizeof *ms);
    if (ms == NULL) {
        cli_error("warning: out of memory: no copies will be saved in Sent");
        return NULL;
    }
    ms->cfg = cfg;
    ms->o = o;
    ms->folder = folder;
    return ms;
}

static void disconnect(merge_sent *ms)
{
    pigeon_imap_free(ms->m);
    ms->m = NULL;
}

/* APPENDs the copy in fd (from its start) with the Bcc prefix; returns 0 or -1 with the
 * reason in why. */
static int append(merge_sent *ms, int fd, const char *bcc, char *why, size_t n)
{
    struct stat st;
    pigeon_err err = PIGEON_OK;
    if (!ms->planned) {
        if (mailbox_plan_init(&ms->plan, ms->cfg, ms->o, 0) != 0) {
            snprintf(why, n, "the account's mailbox settings are incomplete");
            return -1;
        }
        ms->planned = 1;
    }
    if (fstat(fd, &st) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
        snprintf(why, n, "cannot read the copy back: %s", strerror(errno));
        return -1;
    }
    if (ms->m == NULL)
        err = pigeon_imap_connect(&ms->plan.opts, &ms->m);
    const char *folder = *ms->folder ? ms->folder : ms->found;
    if (err == PIGEON_OK && folder == NULL &&
        (err = pigeon_imap_find_special(ms->m, "\\Sent", &ms->found)) == PIGEON_OK)
        folder = ms->found;
    sent_copy_src src = {bcc, strlen(bcc), 0, fd};
    uint32_t uid = 0;
    if (err == PIGEON_OK)
        err = pigeon_imap_append(ms->m, folder, "\\Seen", sent_copy_src_read, &src,
                                 (uint64_t)src.len + (uint64_t)st.st_size, &uid);
    if (err == PIGEON_OK)
        return 0;
    snprintf(why, n, "%s", ms->m != NULL ? pigeon_imap_error(ms->m) : pigeon_strerror(err));
    disconnect(ms); /* a fresh connection for the next copy */
    return -1;
}

void merge_sent_save(merge_sent *ms, pigeon_message *msg, const cli_compose *c, const char *who)
{
    char why[600];
    if (ms == NULL)
        return;
    char *bcc = sent_copy_bcc_field(c);
    int fd = cli_temp_file("sent");
    if (bcc == NULL || fd < 0 || pigeon_message_write_fd(msg, NULL, fd) != PIGEON_OK) {
        cli_error("warning: %s: sent, but no copy was saved in Sent: cannot write it", who);
        ms->lost++;
        free(bcc);
        if (fd >= 0)
            close(fd);
        return;
    }
    if (append(ms, fd, bcc, why, sizeof why) == 0) {
        ms->saved++;
        free(bcc);
        close(fd);
        return;
    }
    if (ms->npending < PENDING_MAX) {
        cli_error("warning: %s: sent, but no copy was saved in Sent yet (%s): tried again at "
                  "the end",
                  who, why);
        ms->pending[ms->npending] = fd;
        ms->bcc[ms->npending++] = bcc;
        return;
    }
    cli_error("warning: %s: sent, but no copy was saved in Sent: %s", who, why);
    ms->lost++;
    free(bcc);
    close(fd);
}

void merge_sent_close(merge_sent *ms)
{
    char why[600] = "";
    if (ms == NULL)
        return;
    for (size_t i = 0; i < ms->npending; i++) {
        if (append(ms, ms->pending[i], ms->bcc[i], why, sizeof why) == 0)
            ms->saved++;
        else
            ms->lost++;
        close(ms->pending[i]);
        free(ms->bcc[i]);
    }
    if (ms->lost > 0)
        cli_error("warning: %lu cop%s not saved in Sent (the messages were sent)%s%s", ms->lost,
                  ms->lost == 1 ? "y was" : "ies were", why[0] ? ": " : "", why);
    if (ms->m != NULL)
        pigeon_imap_logout(ms->m);
    disconnect(ms);
    if (ms->planned)
        mailbox_plan_cleanup(&ms->plan);
    free(ms->found);
    free(ms);
}
