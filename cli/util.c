/*
 * util.c - small utilities of the pigeon command: one-line error messages, the mapping of
 * library errors to sysexits.h statuses, and reading a whole input with a size bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "util/utf8.h"

/* Longest message cli_error() formats; longer ones are cut (they quote shortened values
 * anyway, see cli_shorten()). */
#define ERROR_MAX 1024
/* Characters of a user's value quoted in a message. */
#define SHORTEN_MAX 60

static void put_escaped(FILE *out, const unsigned char *s, size_t n);

int cli_strv_push(cli_strv *v, const char *s)
{
    if (v->count == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        const char **grown = realloc(v->items, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        v->items = grown;
        v->cap = cap;
    }
    v->items[v->count++] = s;
    return 0;
}

void cli_strv_cleanup(cli_strv *v)
{
    if (v == NULL)
        return;
    free(v->items);
    memset(v, 0, sizeof *v);
}

/* Writes s[0..n) with everything that could end or hide a line escaped. */
static void put_escaped(FILE *out, const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp = 0;
        size_t len = pg_utf8_decode(s + i, n - i, &cp);
        if (len == 0) {
            fprintf(out, "\\x%02x", s[i++]); /* not UTF-8: show the byte */
            continue;
        }
        if (cp == '\r')
            fputs("\\r", out);
        else if (cp == '\n')
            fputs("\\n", out);
        else if (cp == '\t')
            fputs("\\t", out);
        else if (cp < 0x20 || cp == 0x7f)
            fprintf(out, "\\x%02x", (unsigned)cp);
        else if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029)
            fprintf(out, "\\u%04x", (unsigned)cp); /* C1 controls and line separators */
        else
            fwrite(s + i, 1, len, out);
        i += len;
    }
}

void cli_error(const char *fmt, ...)
{
    char line[ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    fputs("pigeon: ", stderr);
    put_escaped(stderr, (const unsigned char *)line, len);
    fputc('\n', stderr);
    fflush(stderr);
}

const char *cli_shorten(const char *s, char *out, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s), pos = 0, chars = 0;
    while (pos < len && chars < SHORTEN_MAX) {
        uint32_t cp;
        size_t step = pg_utf8_decode(u + pos, len - pos, &cp);
        pos += step ? step : 1;
        chars++;
    }
    /* Leave room for "..." and the NUL. */
    if (pos + 4 > n)
        pos = n > 4 ? n - 4 : 0;
    while (pos > 0 && pos < len && (u[pos] & 0xc0) == 0x80)
        pos--;
    memcpy(out, s, pos);
    if (pos < len)
        memcpy(out + pos, "...", 3), pos += 3;
    out[pos] = '\0';
    return out;
}

int cli_exit_status(pigeon_err err)
{
    switch (err) {
    case PIGEON_OK:
        return EX_OK;
    case PIGEON_ERR_INVALID:
        return EX_USAGE; /* a bad option value reached the library */
    case PIGEON_ERR_ADDRESS:
    case PIGEON_ERR_HEADER:
    case PIGEON_ERR_CHARSET:
    case PIGEON_ERR_TOO_LARGE:
        return EX_DATAERR;
    case PIGEON_ERR_NOTFOUND:
        return EX_NOINPUT;
    case PIGEON_ERR_IO:
    case PIGEON_ERR_CORRUPT:
        /* A damaged spool (or one from a newer pigeon) is a fault of a local file, not a
         * transient one (75 would have cron and MTAs retry forever) nor a bug (70):
         * EX_IOERR, as pigeon(1) documents. */
        return EX_IOERR;
    case PIGEON_ERR_NOMEM:
        return EX_OSERR;
    case PIGEON_ERR_NETWORK:
    case PIGEON_ERR_DEFERRED:
    case PIGEON_ERR_TIMEOUT:
    case PIGEON_ERR_NOSPACE: /* disk full: nothing was stored; room may come back */
        return EX_TEMPFAIL;  /* sendmail(8) convention: the caller may try again later */
    case PIGEON_ERR_TLS:
    case PIGEON_ERR_REJECTED:
    case PIGEON_ERR_UNSUPPORTED:
        return EX_UNAVAILABLE;
    case PIGEON_ERR_AUTH:
        return EX_NOPERM;
    case PIGEON_ERR_PROTOCOL:
        return EX_PROTOCOL;
    case PIGEON_ERR_CONFIG:
        return EX_CONFIG;
    case PIGEON_ERR_STATE:
        return EX_SOFTWARE; /* a call out of order: a bug in pigeon */
    }
    return EX_SOFTWARE;
}

const char *cli_base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL && slash[1] != '\0' ? slash + 1 : path;
}

static int is_directory(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Appends everything fd holds to *buf (capacity *cap, length *len), at most cap_max. */
static pigeon_err read_all(int fd, size_t cap_max, char **buf, size_t *cap, size_t *len)
{
    for (;;) {
        if (*cap - *len < 2) {
            size_t grown_cap = *cap ? *cap * 2 : 64 * 1024;
            char *grown = realloc(*buf, grown_cap);
            if (grown == NULL)
                return PIGEON_ERR_NOMEM;
            *buf = grown;
            *cap = grown_cap;
        }
        ssize_t r = read(fd, *buf + *len, *cap - *len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return PIGEON_ERR_IO;
        if (r == 0)
            return PIGEON_OK;
        *len += (size_t)r;
        if (*len > cap_max)
            return PIGEON_ERR_TOO_LARGE;
    }
}

pigeon_err cli_read_input(const char *path, size_t cap, char **out, size_t *len)
{
    char *buf = NULL;
    size_t size = 0, used = 0;
    int is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    pigeon_err err;
    *out = NULL;
    *len = 0;
    if (fd < 0)
        return PIGEON_ERR_NOTFOUND;
    if (!is_stdin && is_directory(fd)) {
        close(fd);
        errno = EISDIR;
        return PIGEON_ERR_NOTFOUND;
    }
    err = read_all(fd, cap, &buf, &size, &used);
    if (!is_stdin) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    if (err != PIGEON_OK)
        goto fail;
    if (buf == NULL && (buf = malloc(1)) == NULL) {
        err = PIGEON_ERR_NOMEM;
        goto fail;
    }
    buf[used] = '\0';
    *out = buf;
    *len = used;
    return PIGEON_OK;
fail:
    free(buf);
    return err;
}

const char *cli_typed_option(char **argv, char *out, size_t n)
{
    if (optopt > 0 && optopt < 0x80) {
        snprintf(out, n, "-%c", optopt);
        return out;
    }
    return cli_shorten(optind > 0 ? argv[optind - 1] : "?", out, n);
}

int cli_temp_file(const char *what)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    int n = snprintf(path, sizeof path, "%s/pigeon-%s-XXXXXX", dir, what);
    int fd = n > 0 && (size_t)n < sizeof path ? mkstemp(path) : -1;
    if (fd >= 0)
        unlink(path);
    return fd;
}

int cli_secret_key_read(const char *who, const char *what, const char *path, size_t min, char **key,
                        size_t *len)
{
    char quoted[256];
    char *k = NULL;
    size_t n = 0;
    pigeon_err e = cli_read_input(path, 4096, &k, &n);
    if (e != PIGEON_OK) {
        cli_error("%s: cannot read the %s %s: %s", who, what,
                  cli_shorten(path, quoted, sizeof quoted), pigeon_strerror(e));
        return -1;
    }
    while (n > 0 && (k[n - 1] == '\n' || k[n - 1] == '\r'))
        n--;
    if (n < min) {
        OPENSSL_cleanse(k, n);
        free(k);
        cli_error("%s: the %s in %s is shorter than %zu octets", who, what,
                  cli_shorten(path, quoted, sizeof quoted), min);
        return -1;
    }
    *key = k;
    *len = n;
    return 0;
}
