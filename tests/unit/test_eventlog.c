/*
 * test_eventlog.c - the structured event log (cli/eventlog.c): JSON lines (RFC 8259),
 * logfmt quoting, RFC 3339 times, redaction of secrets, the file sink's reopen after a
 * rename (log rotation), syslog messages, and whole lines under concurrent writers.
 *
 * The module is part of the command, not the library, so it is compiled into this test;
 * syslog is captured by defining the hooks eventlog.c reads before it is included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

static void capture_openlog(const char *ident, int option, int facility);
static void capture_syslog(int priority, const char *fmt, ...);
static void capture_closelog(void);
#define EVENTLOG_OPENLOG  capture_openlog
#define EVENTLOG_SYSLOG   capture_syslog
#define EVENTLOG_CLOSELOG capture_closelog
#include "../../cli/eventlog.c"

/* What the syslog hooks saw. */
static struct {
    char ident[32];    /* openlog ident */
    int facility;      /* openlog facility */
    int open;          /* openlog called and closelog not yet */
    int priority;      /* last syslog priority */
    char message[512]; /* last syslog message */
} sys;

static void capture_openlog(const char *ident, int option, int facility)
{
    (void)option;
    snprintf(sys.ident, sizeof sys.ident, "%s", ident);
    sys.facility = facility;
    sys.open = 1;
}

static void capture_syslog(int priority, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sys.priority = priority;
    vsnprintf(sys.message, sizeof sys.message, fmt, ap);
    va_end(ap);
}

static void capture_closelog(void)
{
    sys.open = 0;
}

/* 2026-11-26T08:43:17.123Z */
static const struct timespec fixed_time = {.tv_sec = 1795682597, .tv_nsec = 123999999};

/* An event with a fixed time, so lines can be compared whole. */
static void event_at(eventlog_event *e, eventlog_level level, const char *name)
{
    eventlog_event_init(e, level, name);
    e->fields[0].v.t = fixed_time;
}

static char *format(eventlog_format f, const eventlog_event *e)
{
    pg_buf b;
    pg_buf_init(&b);
    eventlog_format_event(&b, f, e);
    assert_int_equal(b.err, PIGEON_OK);
    return pg_buf_detach(&b, NULL);
}

static void assert_line(eventlog_format f, const eventlog_event *e, const char *expected)
{
    char *line = format(f, e);
    if (strcmp(line, expected) != 0)
        print_error("got:      %s\nexpected: %s\n", line, expected);
    assert_string_equal(line, expected);
    free(line);
}

static void delivery_event(eventlog_event *e)
{
    event_at(e, EVENTLOG_WARNING, "delivery");
    eventlog_add_str(e, "queue_id", "01JDX8Q4ZB7M3K9V0T2C5R6N8P");
    eventlog_add_str(e, "rcpt", "bob@example.org");
    eventlog_add_str(e, "result", "deferred");
    eventlog_add_int(e, "code", 451);
    eventlog_add_str(e, "enhanced_code", "4.7.1");
    eventlog_add_int(e, "attempt", 3);
    eventlog_add_time_ms(e, "next_attempt", 1795683197000LL);
    eventlog_add_double(e, "duration", 0.25);
    eventlog_add_str(e, "reply", "Greylisted, try again in 10 minutes");
}

static void test_json_line(void **state)
{
    (void)state;
    eventlog_event e;
    delivery_event(&e);
    assert_line(EVENTLOG_JSON, &e,
                "{\"time\":\"2026-11-26T08:43:17.123Z\",\"level\":\"warning\","
                "\"event\":\"delivery\",\"queue_id\":\"01JDX8Q4ZB7M3K9V0T2C5R6N8P\","
                "\"rcpt\":\"bob@example.org\",\"result\":\"deferred\",\"code\":451,"
                "\"enhanced_code\":\"4.7.1\",\"attempt\":3,"
                "\"next_attempt\":\"2026-11-26T08:53:17.000Z\",\"duration\":0.25,"
                "\"reply\":\"Greylisted, try again in 10 minutes\"}\n");
}

static void test_logfmt_line(void **state)
{
    (void)state;
    eventlog_event e;
    delivery_event(&e);
    assert_line(EVENTLOG_LOGFMT, &e,
                "time=2026-11-26T08:43:17.123Z level=warning event=delivery "
                "queue_id=01JDX8Q4ZB7M3K9V0T2C5R6N8P rcpt=bob@example.org result=deferred "
                "code=451 enhanced_code=4.7.1 attempt=3 next_attempt=2026-11-26T08:53:17.000Z "
                "duration=0.25 reply=\"Greylisted, try again in 10 minutes\"\n");
}

static void test_json_escaping(void **state)
{
    (void)state;
    eventlog_event e;
    event_at(&e, EVENTLOG_INFO, "esc");
    eventlog_add_str(&e, "quote", "say \"hi\" \\ back");
    eventlog_add_str(&e, "lines", "a\r\nb\tc");
    eventlog_add_str(&e, "ctl", "\x01\x1f\x7f");
    eventlog_add_str(&e, "utf8", "Gr\xc3\xbc\xc3\x9f \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x93\xa7");
    /* A lone continuation byte, a truncated sequence, an overlong '/', a surrogate. */
    eventlog_add_str(&e, "bad", "x\x80y\xe6\x97z\xc0\xaf\xed\xa0\x80");
    eventlog_add_str(&e, "null", NULL);
    eventlog_add_str(&e, "empty", "");
    eventlog_add_double(&e, "nan", 0.0 / 0.0);
    eventlog_add_double(&e, "third", 0.1 + 0.2);
    eventlog_add_int(&e, "neg", -9000000000LL);
    eventlog_add_int(&e, "min", INT64_MIN);
    eventlog_add_int(&e, "zero", 0);
    eventlog_add_str(&e, "k\"ey", "v");
    assert_line(EVENTLOG_JSON, &e,
                "{\"time\":\"2026-11-26T08:43:17.123Z\",\"level\":\"info\",\"event\":\"esc\","
                "\"quote\":\"say \\\"hi\\\" \\\\ back\",\"lines\":\"a\\r\\nb\\tc\","
                "\"ctl\":\"\\u0001\\u001f\\u007f\","
                "\"utf8\":\"Gr\xc3\xbc\xc3\x9f \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x93\xa7\","
                "\"bad\":\"x\\ufffdy\\ufffd\\ufffdz\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\","
                "\"null\":null,\"empty\":\"\",\"nan\":null,\"third\":0.30000000000000004,"
                "\"neg\":-9000000000,\"min\":-9223372036854775808,\"zero\":0,"
                "\"k\\\"ey\":\"v\"}\n");
}

static void test_logfmt_quoting(void **state)
{
    (void)state;
    eventlog_event e;
    event_at(&e, EVENTLOG_ERROR, "q");
    eventlog_add_str(&e, "plain", "a@b.example");
    eventlog_add_str(&e, "space", "two words");
    eventlog_add_str(&e, "eq", "k=v");
    eventlog_add_str(&e, "quote", "say \"x\"");
    eventlog_add_str(&e, "backslash", "a\\b");
    eventlog_add_str(&e, "nl", "l1\nl2");
    eventlog_add_str(&e, "ctl", "\x01");
    eventlog_add_str(&e, "utf8", "caf\xc3\xa9");
    eventlog_add_str(&e, "bad", "a\xff");
    eventlog_add_str(&e, "empty", "");
    eventlog_add_str(&e, "null", NULL);
    eventlog_add_str(&e, "bad key", "v");
    eventlog_add_double(&e, "inf", 1.0 / 0.0);
    assert_line(EVENTLOG_LOGFMT, &e,
                "time=2026-11-26T08:43:17.123Z level=error event=q plain=a@b.example "
                "space=\"two words\" eq=\"k=v\" quote=\"say \\\"x\\\"\" backslash=a\\b "
                "nl=\"l1\\nl2\" ctl=\"\\u0001\" utf8=caf\xc3\xa9 bad=\"a\\ufffd\" empty=\"\" "
                "null= bad_key=v inf=+Inf\n");
}

static void test_redaction(void **state)
{
    (void)state;
    static const char *const secret_keys[] = {
        "password",    "PASSWORD", "smtp_password", "secret", "client-secret", "token",
        "oauth.token", "auth",     "x_auth",        "passwd", "authorization", "pass",
    };
    static const char *const plain_keys[] = {"account", "author", "tokens_used",
                                             "passage", "rcpt",   "auth_user"};
    for (size_t i = 0; i < sizeof secret_keys / sizeof secret_keys[0]; i++) {
        if (!eventlog_key_is_secret(secret_keys[i]))
            fail_msg("%s not taken as a secret", secret_keys[i]);
    }
    for (size_t i = 0; i < sizeof plain_keys / sizeof plain_keys[0]; i++) {
        if (eventlog_key_is_secret(plain_keys[i]))
            fail_msg("%s taken as a secret", plain_keys[i]);
    }
    eventlog_event e;
    event_at(&e, EVENTLOG_INFO, "auth");
    eventlog_add_str(&e, "account", "work");
    eventlog_add_str(&e, "password", "hunter2");
    eventlog_add_int(&e, "token", 123456);
    eventlog_add_secret(&e, "challenge_reply", "AHVzZXIAaHVudGVyMg==");
    char *json = format(EVENTLOG_JSON, &e);
    char *logfmt = format(EVENTLOG_LOGFMT, &e);
    assert_string_equal(json, "{\"time\":\"2026-11-26T08:43:17.123Z\",\"level\":\"info\","
                              "\"event\":\"auth\",\"account\":\"work\","
                              "\"password\":\"[redacted]\",\"token\":\"[redacted]\","
                              "\"challenge_reply\":\"[redacted]\"}\n");
    assert_string_equal(logfmt, "time=2026-11-26T08:43:17.123Z level=info event=auth "
                                "account=work password=[redacted] token=[redacted] "
                                "challenge_reply=[redacted]\n");
    assert_null(strstr(json, "hunter2"));
    assert_null(strstr(logfmt, "123456"));
    free(json);
    free(logfmt);
}

static void test_limits_and_times(void **state)
{
    (void)state;
    eventlog_event e;
    event_at(&e, EVENTLOG_INFO, "limits");
    /* A long value is cut at a character boundary: 'é' is 2 bytes, the cut would split
     * the one straddling the limit. */
    size_t n = EVENTLOG_MAX_VALUE + 10;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    for (size_t i = 1; i + 1 < n; i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[n] = '\0';
    eventlog_add_str(&e, "big", big);
    eventlog_add_time_ms(&e, "before_epoch", -1);
    for (int i = 0; i < 40; i++)
        eventlog_add_int(&e, "filler", i);
    assert_int_equal(e.n, EVENTLOG_MAX_FIELDS);
    char *line = format(EVENTLOG_JSON, &e);
    char *start = strstr(line, "\"big\":\"") + 7;
    char *end = strchr(start, '"');
    assert_int_equal(end - start, EVENTLOG_MAX_VALUE - 1);
    assert_non_null(strstr(line, "\"before_epoch\":\"1969-12-31T23:59:59.999Z\""));
    assert_null(strstr(line, "\\ufffd"));
    free(line);
    free(big);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char data[4 << 20];
    size_t n = fread(data, 1, sizeof data - 1, f);
    fclose(f);
    data[n] = '\0';
    return data;
}

static void write_numbered(eventlog *log, int i)
{
    eventlog_event e;
    event_at(&e, EVENTLOG_INFO, "n");
    eventlog_add_int(&e, "i", i);
    assert_int_equal(eventlog_write(log, &e), PIGEON_OK);
}

static void test_file_reopen(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_eventlog.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], rotated[128];
    snprintf(path, sizeof path, "%s/pigeon.log", dir);
    snprintf(rotated, sizeof rotated, "%s/pigeon.log.1", dir);
    pigeon_err err = PIGEON_ERR_INVALID;
    eventlog *log = eventlog_open(path, EVENTLOG_LOGFMT, &err);
    assert_non_null(log);
    assert_int_equal(err, PIGEON_OK);
    write_numbered(log, 1);
    /* logrotate renames the file; until the reopen, lines still go to the renamed one. */
    assert_int_equal(rename(path, rotated), 0);
    write_numbered(log, 2);
    /* What a SIGHUP handler does: only set the flag. The next write reopens. */
    eventlog_request_reopen(log);
    write_numbered(log, 3);
    assert_string_equal(read_file(rotated),
                        "time=2026-11-26T08:43:17.123Z level=info event=n i=1\n"
                        "time=2026-11-26T08:43:17.123Z level=info event=n i=2\n");
    assert_string_equal(read_file(path), "time=2026-11-26T08:43:17.123Z level=info event=n i=3\n");
    /* A direct reopen, and one that finds nothing requested. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(eventlog_reopen(log), PIGEON_OK);
    assert_int_equal(eventlog_reopen_if_requested(log), PIGEON_OK);
    write_numbered(log, 4);
    assert_string_equal(read_file(path), "time=2026-11-26T08:43:17.123Z level=info event=n i=4\n");
    /* The file is appended to, never truncated, when opened again. */
    eventlog_close(log);
    log = eventlog_open(path, EVENTLOG_JSON, NULL);
    assert_non_null(log);
    write_numbered(log, 5);
    assert_string_equal(read_file(path),
                        "time=2026-11-26T08:43:17.123Z level=info event=n i=4\n"
                        "{\"time\":\"2026-11-26T08:43:17.123Z\",\"level\":\"info\",\"event\":\"n\","
                        "\"i\":5}\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0640 & ~mask);
    /* A failed reopen keeps the old file in use. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), -1); /* the rotated file is still there */
    assert_int_equal(unlink(rotated), 0);
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(eventlog_reopen(log), PIGEON_ERR_IO);
    write_numbered(log, 6);
    eventlog_close(log);
    /* Opening in a missing directory fails with IO. */
    assert_null(eventlog_open(path, EVENTLOG_JSON, &err));
    assert_int_equal(err, PIGEON_ERR_IO);
}

static void test_syslog_sink(void **state)
{
    (void)state;
    eventlog *log = eventlog_open("syslog", EVENTLOG_JSON, NULL);
    assert_non_null(log);
    assert_true(sys.open);
    assert_string_equal(sys.ident, "pigeon");
    assert_int_equal(sys.facility, LOG_MAIL);
    eventlog_event e;
    event_at(&e, EVENTLOG_ERROR, "delivery");
    eventlog_add_str(&e, "result", "failed");
    eventlog_add_str(&e, "password", "hunter2");
    assert_int_equal(eventlog_write(log, &e), PIGEON_OK);
    /* The logfmt form, without a newline, whatever the file format. */
    assert_int_equal(sys.priority, LOG_ERR);
    assert_string_equal(sys.message, "time=2026-11-26T08:43:17.123Z level=error event=delivery "
                                     "result=failed password=[redacted]");
    event_at(&e, EVENTLOG_WARNING, "x");
    assert_int_equal(eventlog_write(log, &e), PIGEON_OK);
    assert_int_equal(sys.priority, LOG_WARNING);
    eventlog_close(log);
    assert_false(sys.open);
}

static void test_open_arguments(void **state)
{
    (void)state;
    eventlog_format f = EVENTLOG_LOGFMT;
    assert_true(eventlog_parse_format("json", &f));
    assert_int_equal(f, EVENTLOG_JSON);
    assert_true(eventlog_parse_format("logfmt", &f));
    assert_int_equal(f, EVENTLOG_LOGFMT);
    assert_false(eventlog_parse_format("xml", &f));
    assert_false(eventlog_parse_format(NULL, &f));
    pigeon_err err = PIGEON_OK;
    assert_null(eventlog_open("", EVENTLOG_JSON, &err));
    assert_int_equal(err, PIGEON_ERR_INVALID);
    assert_null(eventlog_open(NULL, EVENTLOG_JSON, &err));
    assert_null(eventlog_open("-", (eventlog_format)7, &err));
    eventlog *log = eventlog_open("stderr", EVENTLOG_JSON, &err);
    assert_non_null(log);
    eventlog_close(log);
    eventlog_close(NULL);
    assert_int_equal(eventlog_write(NULL, NULL), PIGEON_ERR_INVALID);
}

#define WRITERS 4
#define LINES   500

static void *writer(void *arg)
{
    eventlog *log = arg;
    char pad[300];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < LINES; i++) {
        eventlog_event e;
        event_at(&e, EVENTLOG_INFO, "w");
        eventlog_add_str(&e, "pad", pad);
        eventlog_add_int(&e, "i", i);
        if (eventlog_write(log, &e) != PIGEON_OK)
            return (void *)1;
        if (i == LINES / 2)
            eventlog_request_reopen(log);
    }
    return NULL;
}

/* Concurrent writers (with reopens among them) never produce a broken line. */
static void test_concurrent_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/test_eventlog_lines.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    eventlog *log = eventlog_open(path, EVENTLOG_JSON, NULL);
    assert_non_null(log);
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, log), 0);
    for (int i = 0; i < WRITERS; i++) {
        void *rc;
        assert_int_equal(pthread_join(t[i], &rc), 0);
        assert_null(rc);
    }
    eventlog_close(log);
    char *data = read_file(path);
    int lines = 0;
    for (char *line = data; *line != '\0'; lines++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(strncmp(line, "{\"time\":\"", 9) == 0);
        assert_true(nl[-1] == '}');
        line = nl + 1;
    }
    assert_int_equal(lines, WRITERS * LINES);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_line),      cmocka_unit_test(test_logfmt_line),
        cmocka_unit_test(test_json_escaping),  cmocka_unit_test(test_logfmt_quoting),
        cmocka_unit_test(test_redaction),      cmocka_unit_test(test_limits_and_times),
        cmocka_unit_test(test_file_reopen),    cmocka_unit_test(test_syslog_sink),
        cmocka_unit_test(test_open_arguments), cmocka_unit_test(test_concurrent_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
