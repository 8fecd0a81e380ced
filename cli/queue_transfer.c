/*
 * queue_transfer.c - `pigeon queue export [FILE]` and `pigeon queue import [FILE]`:
 * moving a spool between backends and hosts in the JSON Lines format of
 * lib/transfer/transfer.h.
 *
 * Export reads through two handles on the spool (one lists, the other reads each
 * message as the listing goes), so memory stays bounded. Import stores each message
 * atomically with its recipients' states; one already present (same queue id) is skipped
 * and counted, so an import can be run again after an interruption. Bad input stops the
 * import at that line with its number and reason (exit 65); what came before it stays
 * stored, nothing queued before is touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"
#include "queue.h"
#include "queue_transfer.h"
#include "transfer/transfer.h"
#include "spool/spool_backend.h"

/* The longest line import accepts: a message of 256 MiB in base64, with its envelope. */
#define MAX_LINE ((size_t)360 * 1024 * 1024)

/* pg_transfer_write_fn over a file descriptor (every byte, or nonzero). */
static int write_fd(void *ctx, const void *data, size_t len)
{
    int fd = *(int *)ctx;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* pigeon_read_fn over a file descriptor. */
static int read_fd(void *ctx, void *buf, size_t cap, size_t *n)
{
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t got = read(fd, buf, cap);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return PIGEON_ERR_IO;
        *n = (size_t)got;
        return 0;
    }
}

static int is_stdio(const char *file)
{
    return file == NULL || strcmp(file, "-") == 0;
}

int cli_queue_export(const char *spool_opt, const char *account, const char *file)
{
    pigeon_spool *list = NULL, *read = NULL;
    pg_transfer_stats st;
    char err[512], quoted[256];
    int fd = STDOUT_FILENO, status;
    unsigned flags = PIGEON_SPOOL_READONLY | PIGEON_SPOOL_NO_CHECK;
    if ((status = queue_spool_open(spool_opt, flags, &list)) != 0 ||
        (status = queue_spool_open(spool_opt, flags, &read)) != 0)
        goto done;
    if (!is_stdio(file)) {
        /* The export holds queued mail: private like the spool. */
        fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            cli_error("queue export: cannot create %s: %s",
                      cli_shorten(file, quoted, sizeof quoted), strerror(errno));
            status = EX_CANTCREAT;
            goto done;
        }
    }
    const pg_spool_ops *ops = NULL;
    pg_spool_backend(list, &ops);
    pigeon_err e = pg_transfer_export(list, read, account, ops->name, pigeon_spool_now_ms(),
                                      write_fd, &fd, &st, err, sizeof err);
    if (e == PIGEON_OK && fd != STDOUT_FILENO && fsync(fd) != 0)
        e = PIGEON_ERR_IO, snprintf(err, sizeof err, "flushing the export: %s", strerror(errno));
    if (e != PIGEON_OK) {
        cli_error("queue export: %s", err);
        status = e == PIGEON_ERR_IO ? EX_IOERR : cli_exit_status(e);
        goto done;
    }
    fprintf(stderr, "pigeon: exported %zu messages (%lld bytes)%s\n", st.messages,
            (long long)st.bytes, st.vanished > 0 ? "; some were delivered meanwhile" : "");
    status = 0;
done:
    if (fd != STDOUT_FILENO && fd >= 0 && close(fd) != 0 && status == 0) {
        cli_error("queue export: closing the file: %s", strerror(errno));
        status = EX_IOERR;
    }
    pigeon_spool_close(read);
    pigeon_spool_close(list);
    return status;
}

static void report_import(const pg_transfer_stats *st, int json)
{
    if (json)
        printf("{\"imported\":%zu,\"present\":%zu,\"finished\":%zu,\"bytes\":%lld}\n", st->messages,
               st->present, st->finished, (long long)st->bytes);
    else
        printf("%zu messages imported (%lld bytes), %zu already present, %zu already "
               "delivered\n",
               st->messages, (long long)st->bytes, st->present, st->finished);
}

int cli_queue_import(const char *spool_opt, const char *file, int json)
{
    pigeon_spool *spool = NULL;
    pg_transfer_stats st;
    char err[512], quoted[256];
    int fd = STDIN_FILENO, status;
    if (!is_stdio(file)) {
        fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            cli_error("queue import: cannot open %s: %s", cli_shorten(file, quoted, sizeof quoted),
                      strerror(errno));
            return EX_NOINPUT;
        }
    }
    status = queue_spool_open(spool_opt, PIGEON_SPOOL_CREATE | PIGEON_SPOOL_NO_CHECK, &spool);
    if (status != 0)
        goto done;
    pigeon_err e = pg_transfer_import(spool, read_fd, &fd, MAX_LINE, &st, err, sizeof err);
    report_import(&st, json);
    if (e != PIGEON_OK) {
        cli_error("queue import: %s", err);
        status = e == PIGEON_ERR_INVALID   ? EX_DATAERR
                 : e == PIGEON_ERR_TIMEOUT ? EX_TEMPFAIL
                                           : cli_exit_status(e);
        goto done;
    }
    status = 0;
done:
    if (fd != STDIN_FILENO)
        close(fd);
    pigeon_spool_close(spool);
    return status;
}
