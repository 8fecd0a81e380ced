/*
 * tool_bigattach.c - writes a message with one big file attachment to /dev/null through
 * the pull stream and reports memory use, for tests/integration/test_bigattach.py.
 *
 * usage: tool_bigattach FILE
 * prints one line: "baseline_kb=N peak_kb=N bytes=N size=N" where baseline is VmRSS just
 * before the write, peak the VmHWM after it (the peak is reset first, Linux clear_refs 5,
 * so whatever the process did before does not count), bytes what the stream produced and
 * size what pigeon_message_stream_size announced.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pigeon/message.h"

/* A field of /proc/self/status in kB ("VmRSS:", "VmHWM:"), -1 if absent. */
static long status_kb(const char *name)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, name, strlen(name)) == 0)
            kb = strtol(line + strlen(name), NULL, 10);
    }
    fclose(f);
    return kb;
}

static int reset_peak(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    int ok = fd >= 0 && write(fd, "5", 1) == 1;
    if (fd >= 0)
        close(fd);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    static char block[65536];
    pigeon_message *msg = NULL;
    pigeon_message_stream *s = NULL;
    long long bytes = 0;
    int rc = 1;
    if (argc != 2) {
        fprintf(stderr, "usage: tool_bigattach FILE\n");
        return 2;
    }
    int out = open("/dev/null", O_WRONLY);
    msg = pigeon_message_new();
    if (out < 0 || msg == NULL || pigeon_message_set_from(msg, "a@example.com") != PIGEON_OK ||
        pigeon_message_add_to(msg, "b@example.org") != PIGEON_OK ||
        pigeon_message_set_text(msg, "big file attached\n", (size_t)-1) != PIGEON_OK ||
        pigeon_message_attach_file(msg, argv[1], NULL) != PIGEON_OK)
        goto fail;
    if (reset_peak() != 0) {
        fprintf(stderr, "cannot reset the peak RSS (/proc/self/clear_refs)\n");
        goto fail;
    }
    long baseline = status_kb("VmRSS:");
    if (pigeon_message_stream_open(msg, NULL, &s) != PIGEON_OK)
        goto fail;
    for (;;) {
        size_t n;
        if (pigeon_message_stream_read(s, block, sizeof block, &n) != PIGEON_OK)
            goto fail;
        if (n == 0)
            break;
        if (write(out, block, n) != (ssize_t)n)
            goto fail;
        bytes += (long long)n;
    }
    printf("baseline_kb=%ld peak_kb=%ld bytes=%lld size=%lld\n", baseline, status_kb("VmHWM:"),
           bytes, (long long)pigeon_message_stream_size(s));
    rc = 0;
fail:
    if (rc != 0)
        fprintf(stderr, "tool_bigattach: %s\n", msg ? pigeon_message_error(msg) : "no memory");
    pigeon_message_stream_free(s);
    pigeon_message_free(msg);
    if (out >= 0)
        close(out);
    return rc;
}
