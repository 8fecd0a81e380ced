/*
 * bench_compose.c - how fast libpigeon composes messages (RFC 5322 + MIME) in memory.
 *
 * Two workloads, each a fresh pigeon_message per iteration (new, set From/To/Subject,
 * bodies, write_buffer, free), so that the figure is what an application pays per mail:
 *   sample  the 7.4 KB bilingual text + HTML multipart/alternative message of
 *           /work/shared/bench/sample.py (read from --text/--html files that bench/compose.sh
 *           writes from sample.py, else built in with the same content);
 *   1mb     a short text with a 1 MiB binary attachment (base64 on the fly).
 * Output, one line per workload:  NAME N SECONDS MSGS_PER_S BYTES_PER_MSG
 *
 * Usage: bench_compose [-n N] [-m N_1MB] [--text FILE] [--html FILE]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pigeon/pigeon.h"
#include "sample.h"

#define ATTACH_SIZE (1024 * 1024)

/* What one workload composes. */
typedef struct workload {
    const char *name;                /* printed first on its line */
    const char *text;                /* the text body (UTF-8) */
    const char *html;                /* the HTML body, or NULL */
    const unsigned char *attachment; /* attachment bytes, or NULL */
    size_t attachment_len;           /* their length */
} workload;

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    if (f == NULL) {
        fprintf(stderr, "bench_compose: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    do {
        if (cap - len < 4096) {
            char *grown = realloc(buf, cap + 65536);
            if (grown == NULL)
                break;
            buf = grown;
            cap += 65536;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

/* Composes one message; returns its size, or 0 on failure (reason printed). */
static size_t compose_once(const workload *w)
{
    pigeon_message *msg = pigeon_message_new();
    char *out = NULL;
    size_t len = 0;
    pigeon_part_opts opts = {"report.bin", "application/octet-stream", NULL};
    if (msg == NULL)
        return 0;
    pigeon_message_set_from(msg, SAMPLE_FROM);
    pigeon_message_add_to(msg, SAMPLE_TO);
    pigeon_message_set_subject(msg, SAMPLE_SUBJECT);
    pigeon_message_set_text(msg, w->text, (size_t)-1);
    if (w->html != NULL)
        pigeon_message_set_html(msg, w->html, (size_t)-1);
    if (w->attachment != NULL)
        pigeon_message_attach_buffer(msg, w->attachment, w->attachment_len, &opts);
    if (pigeon_message_write_buffer(msg, NULL, &out, &len) != PIGEON_OK) {
        fprintf(stderr, "bench_compose: %s\n", pigeon_message_error(msg));
        len = 0;
    }
    free(out);
    pigeon_message_free(msg);
    return len;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(const workload *w, long n)
{
    size_t size = compose_once(w); /* warm-up, and the size printed */
    if (size == 0)
        return 1;
    double start = now();
    for (long i = 0; i < n; i++) {
        if (compose_once(w) == 0)
            return 1;
    }
    double secs = now() - start;
    printf("%s %ld %.4f %.0f %zu\n", w->name, n, secs, (double)n / secs, size);
    return 0;
}

static int parse_count(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    long n = 20000, n_big = 200;
    const char *text_path = NULL, *html_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = next == NULL;
        if (!bad && strcmp(argv[i], "-n") == 0)
            bad = parse_count(next, &n);
        else if (!bad && strcmp(argv[i], "-m") == 0)
            bad = parse_count(next, &n_big);
        else if (!bad && strcmp(argv[i], "--text") == 0)
            text_path = next;
        else if (!bad && strcmp(argv[i], "--html") == 0)
            html_path = next;
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "usage: bench_compose [-n N] [-m N_1MB] [--text FILE] [--html FILE]\n");
            return 2;
        }
        i++;
    }
    char *text = text_path ? read_file(text_path) : sample_text();
    char *html = html_path ? read_file(html_path) : sample_html();
    unsigned char *blob = malloc(ATTACH_SIZE);
    int rc = 1;
    if (text == NULL || html == NULL || blob == NULL)
        goto done;
    uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift: incompressible, reproducible bytes */
    for (size_t i = 0; i < ATTACH_SIZE; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        blob[i] = (unsigned char)x;
    }
    workload sample = {"sample", text, html, NULL, 0};
    workload big = {"1mb", "see the attachment\n", NULL, blob, ATTACH_SIZE};
    rc = run(&sample, n) || run(&big, n_big);
done:
    free(text);
    free(html);
    free(blob);
    return rc;
}
