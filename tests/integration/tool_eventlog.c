/*
 * tool_eventlog.c - writes structured events (cli/eventlog.c) for test_eventlog_parse.py.
 *
 * Usage: tool_eventlog <json|logfmt> <dest>   (dest: a file path, "-" or "syslog")
 * Reads one event per stdin line: space-separated fields "<type>:<key hex>:<value>", with
 * type s (string, value hex), x (secret string, value hex), i (integer), d (double),
 * t (time, milliseconds since the epoch); the event's name is "test" and its level info.
 * Answers "OK" or "ERR <PIGEON_ERR_NAME>" after each line. SIGHUP asks for a reopen the
 * way the daemon will: the handler only calls eventlog_request_reopen().
 * The module belongs to the command, not the library, so it is compiled in here.
 */
#include "../../cli/eventlog.c"

#include <signal.h>

#define LINE_MAX_LEN 65536

static eventlog *the_log;

static void on_hup(int sig)
{
    (void)sig;
    eventlog_request_reopen(the_log);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes lowercase hex in place; 0 if malformed. */
static int unhex(char *s)
{
    size_t n = strlen(s), o = 0;
    if (n % 2 != 0)
        return 0;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        s[o++] = (char)(hi * 16 + lo);
    }
    s[o] = '\0';
    return 1;
}

/* Adds one "<type>:<key hex>:<value>" item; the strings stay in the line buffer. */
static int add_item(eventlog_event *e, char *item)
{
    char *key = strchr(item, ':');
    char *val = key != NULL ? strchr(key + 1, ':') : NULL;
    if (val == NULL || key != item + 1)
        return 0;
    *key++ = '\0';
    *val++ = '\0';
    if (!unhex(key))
        return 0;
    switch (item[0]) {
    case 's':
    case 'x':
        if (!unhex(val))
            return 0;
        (item[0] == 's' ? eventlog_add_str : eventlog_add_secret)(e, key, val);
        return 1;
    case 'i':
        eventlog_add_int(e, key, strtoll(val, NULL, 10));
        return 1;
    case 'd':
        eventlog_add_double(e, key, strtod(val, NULL));
        return 1;
    case 't':
        eventlog_add_time_ms(e, key, strtoll(val, NULL, 10));
        return 1;
    default:
        return 0;
    }
}

static pigeon_err handle(char *line)
{
    eventlog_event e;
    eventlog_event_init(&e, EVENTLOG_INFO, "test");
    for (char *item = line; *item != '\0';) {
        char *end = item + strcspn(item, " ");
        int last = *end == '\0';
        *end = '\0';
        if (*item != '\0' && !add_item(&e, item))
            return PIGEON_ERR_INVALID;
        item = last ? end : end + 1;
    }
    return eventlog_write(the_log, &e);
}

int main(int argc, char **argv)
{
    eventlog_format format;
    pigeon_err err = PIGEON_ERR_INVALID;
    if (argc != 3 || !eventlog_parse_format(argv[1], &format) ||
        (the_log = eventlog_open(argv[2], format, &err)) == NULL) {
        printf("ERR %s\n", pigeon_err_name(err));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hup;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    printf("READY\n");
    fflush(stdout);
    static char line[LINE_MAX_LEN];
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        err = handle(line);
        if (err == PIGEON_OK)
            printf("OK\n");
        else
            printf("ERR %s\n", pigeon_err_name(err));
        fflush(stdout);
    }
    eventlog_close(the_log);
    return 0;
}
