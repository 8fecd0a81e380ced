/*
 * merge_out.c - what a mail merge writes besides mail: the per-row report (JSON Lines),
 * the rows a --resume skips (read back from that report), the progress display and the
 * --dry-run folder or mbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "merge.h"

int64_t merge_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- report ---- */

int merge_report_open(merge_report *r, const char *path, int append, int staged)
{
    memset(r, 0, sizeof *r);
    if (path == NULL)
        return 0;
    if ((r->out = fopen(path, append ? "a" : "w")) == NULL) {
        cli_error("cannot open --report \"%s\": %s", path, strerror(errno));
        return EX_CANTCREAT;
    }
    if (staged && (r->stage = tmpfile()) == NULL) {
        cli_error("cannot create a temporary file: %s", strerror(errno));
        fclose(r->out);
        r->out = NULL;
        return EX_CANTCREAT;
    }
    return 0;
}

void merge_report_write(merge_report *r, const merge_outcome *o)
{
    FILE *f = r->stage ? r->stage : r->out;
    if (f == NULL)
        return;
    json_writer w;
    json_init(&w, f);
    json_object_begin(&w);
    json_kv_int(&w, "row", (int64_t)o->row);
    json_kv_int(&w, "line", (int64_t)o->line);
    json_kv_string(&w, "address", o->address);
    json_kv_string(&w, "status", o->status);
    json_key(&w, "code");
    if (o->code)
        json_int(&w, o->code);
    else
        json_null(&w);
    json_kv_string(&w, "message_id", o->message_id);
    if (o->queue_id != NULL)
        json_kv_string(&w, "queue_id", o->queue_id);
    if (o->error != NULL)
        json_kv_string(&w, "error", o->error);
    json_object_end(&w);
    json_finish(&w);
    if (f == r->out)
        fflush(f); /* each row's line is out before the next message goes */
}

int merge_report_publish(merge_report *r)
{
    char buf[8192];
    size_t n;
    if (r->stage == NULL)
        return 0;
    rewind(r->stage);
    while ((n = fread(buf, 1, sizeof buf, r->stage)) > 0)
        if (fwrite(buf, 1, n, r->out) != n)
            break;
    fclose(r->stage);
    r->stage = NULL;
    if (fflush(r->out) != 0) {
        cli_error("cannot write the report: %s", strerror(errno));
        return EX_IOERR;
    }
    return 0;
}

void merge_report_discard(merge_report *r)
{
    if (r->stage != NULL)
        fclose(r->stage);
    r->stage = NULL;
}

int merge_report_close(merge_report *r)
{
    int status = 0;
    merge_report_discard(r);
    if (r->out != NULL && (ferror(r->out) || fclose(r->out) != 0)) {
        cli_error("cannot write the report: %s", strerror(errno));
        status = EX_IOERR;
    }
    r->out = NULL;
    return status;
}

/* ---- rows already done ---- */

static int done_set(merge_done *d, unsigned long row)
{
    size_t byte = row / 8;
    if (byte >= d->nbytes) {
        size_t n = d->nbytes ? d->nbytes : 1024;
        while (n <= byte)
            n *= 2;
        unsigned char *b = realloc(d->bits, n);
        if (b == NULL)
            return -1;
        memset(b + d->nbytes, 0, n - d->nbytes);
        d->bits = b;
        d->nbytes = n;
    }
    if (!(d->bits[byte] & (1u << (row % 8))))
        d->count++;
    d->bits[byte] |= (unsigned char)(1u << (row % 8));
    return 0;
}

int merge_done_has(const merge_done *d, unsigned long row)
{
    return row / 8 < d->nbytes && (d->bits[row / 8] & (1u << (row % 8)));
}

void merge_done_cleanup(merge_done *d)
{
    free(d->bits);
    memset(d, 0, sizeof *d);
}

/* A report line's row when its status says the row needs no second go. */
static unsigned long done_row(const char *line, size_t len)
{
    pigeon_vars *v = NULL;
    unsigned long row = 0;
    if (pigeon_vars_parse_json(line, len, NULL, &v, NULL) != PIGEON_OK)
        return 0;
    const char *status = pigeon_vars_text(pigeon_vars_get(v, "status"), NULL);
    const char *n = pigeon_vars_text(pigeon_vars_get(v, "row"), NULL);
    if (status != NULL && n != NULL &&
        (strcmp(status, "sent") == 0 || strcmp(status, "queued") == 0 ||
         strcmp(status, "written") == 0))
        row = strtoul(n, NULL, 10);
    pigeon_vars_free(v);
    return row;
}

int merge_done_load(merge_done *d, const char *path)
{
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return errno == ENOENT
                   ? 0
                   : (cli_error("cannot read --report \"%s\": %s", path, strerror(errno)),
                      EX_NOINPUT);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int status = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        unsigned long row = done_row(line, (size_t)n);
        if (row > 0 && row < 100000000ul && done_set(d, row) != 0) {
            cli_error("out of memory");
            status = EX_OSERR;
            break;
        }
    }
    free(line);
    fclose(f);
    return status;
}

/* ---- progress ---- */

void merge_progress_init(merge_progress *p, unsigned long total)
{
    memset(p, 0, sizeof *p);
    p->tty = isatty(STDERR_FILENO);
    p->total = total;
    p->start_ms = p->last_ms = merge_now_ms();
}

void merge_progress_tick(merge_progress *p, int final)
{
    int64_t now = merge_now_ms();
    double secs = (double)(now - p->start_ms) / 1000.0;
    double rate = secs > 0 ? (double)p->done / secs : 0;
    if (p->tty) {
        if (!final && now - p->last_ms < 100)
            return;
        p->last_ms = now;
        if (p->total > 0) {
            double left = rate > 0 ? (double)(p->total - p->done) / rate : 0;
            fprintf(stderr, "\r\033[K%lu/%lu  %3.0f%%  %.0f msg/s  ETA %d:%02d", p->done, p->total,
                    100.0 * (double)p->done / (double)p->total, rate, (int)left / 60,
                    (int)left % 60);
        } else {
            fprintf(stderr, "\r\033[K%lu  %.0f msg/s", p->done, rate);
        }
        /* The cursor goes back to the start of the line, so that an error printed meanwhile
         * overwrites the progress text rather than running on after it. */
        fputc(final ? '\n' : '\r', stderr);
        return;
    }
    /* Not a terminal: a plain line per tenth of the list (per 1000 rows if unknown). */
    unsigned long step = p->total ? p->done * 10 / p->total : p->done / 1000;
    if (step == p->last_step && (!final || p->last_done == p->done))
        return;
    p->last_done = p->done;
    p->last_step = step;
    if (p->total > 0)
        fprintf(stderr, "pigeon: %lu/%lu rows, %.0f msg/s\n", p->done, p->total, rate);
    else
        fprintf(stderr, "pigeon: %lu rows, %.0f msg/s\n", p->done, rate);
}

/* ---- dry-run output ---- */

int merge_sink_open(merge_sink *s, const char *dir, const char *mbox)
{
    memset(s, 0, sizeof *s);
    s->dir = dir;
    if (dir != NULL) {
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            cli_error("cannot create --dry-run-dir \"%s\": %s", dir, strerror(errno));
            return EX_CANTCREAT;
        }
        return 0;
    }
    if (mbox == NULL) {
        s->mbox = stdout;
        return 0;
    }
    if ((s->mbox = fopen(mbox, "w")) == NULL) {
        cli_error("cannot create --mbox \"%s\": %s", mbox, strerror(errno));
        return EX_CANTCREAT;
    }
    s->own = 1;
    return 0;
}

/* mboxrd: LF line endings, "From " lines (after any '>') get one more '>'. */
static void write_mbox(FILE *f, const char *data, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    char date[64];
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
    fprintf(f, "From MAILER-DAEMON %s\n", date);
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - data) : len, n = end - at;
        if (n > 0 && data[at + n - 1] == '\r')
            n--;
        size_t q = at;
        while (q < at + n && data[q] == '>')
            q++;
        if (at + n - q >= 5 && memcmp(data + q, "From ", 5) == 0)
            fputc('>', f);
        fwrite(data + at, 1, n, f);
        fputc('\n', f);
        at = end + 1;
    }
    fputc('\n', f);
}

int merge_sink_write(merge_sink *s, unsigned long row, pigeon_message *msg)
{
    char *data = NULL;
    size_t len = 0;
    pigeon_err e = pigeon_message_write_buffer(msg, NULL, &data, &len);
    if (e != PIGEON_OK) {
        cli_error("cannot write the message: %s", pigeon_message_error(msg));
        return cli_exit_status(e);
    }
    int status = 0;
    if (s->dir != NULL) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%06lu.eml", s->dir, row);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
            cli_error("cannot write \"%s\": %s", path, strerror(errno));
            status = EX_IOERR;
        }
        if (fd >= 0)
            close(fd);
    } else {
        write_mbox(s->mbox, data, len);
        if (ferror(s->mbox)) {
            cli_error("cannot write the mbox: %s", strerror(errno));
            status = EX_IOERR;
        }
    }
    free(data);
    return status;
}

int merge_sink_close(merge_sink *s)
{
    int status = 0;
    if (s->mbox != NULL && (fflush(s->mbox) != 0 || (s->own && fclose(s->mbox) != 0))) {
        cli_error("cannot write the mbox: %s", strerror(errno));
        status = EX_IOERR;
    }
    s->mbox = NULL;
    return status;
}
