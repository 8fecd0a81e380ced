/*
 * test_metrics.c - the metrics registry and its Prometheus text format 0.0.4 rendering.
 *
 * Rendered text is compared byte for byte with what the exposition format specifies
 * (HELP/TYPE lines, label escaping, cumulative buckets ending in le="+Inf", _sum, _count);
 * the series bound, argument checks, the refresh hook, the standard set, and a
 * concurrency smoke test whose totals must come out exact.
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

#include "pigeon/metrics.h"

static char *render(pigeon_metrics *r)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pigeon_metrics_render(r, &text, &len), PIGEON_OK);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void assert_renders(pigeon_metrics *r, const char *expected)
{
    char *text = render(r);
    if (strcmp(text, expected) != 0)
        print_error("got:\n%s\nexpected:\n%s\n", text, expected);
    assert_string_equal(text, expected);
    free(text);
}

static void test_counter_and_gauge(void **state)
{
    (void)state;
    static const char *const result[] = {"result"};
    pigeon_metrics *r = pigeon_metrics_new();
    pigeon_metric *c, *g;
    assert_int_equal(pigeon_metrics_add_counter(r, "t_messages_total", "Messages.", 1, result, &c),
                     PIGEON_OK);
    assert_int_equal(pigeon_metrics_add_gauge(r, "t_depth", "Depth.", 0, NULL, &g), PIGEON_OK);
    /* A labelled family shows nothing until it has a series; one without labels shows 0. */
    assert_renders(r, "# HELP t_messages_total Messages.\n"
                      "# TYPE t_messages_total counter\n"
                      "# HELP t_depth Depth.\n"
                      "# TYPE t_depth gauge\n"
                      "t_depth 0\n");
    const char *sent[] = {"sent"}, *failed[] = {"failed"};
    assert_int_equal(pigeon_metrics_counter_add(c, sent, 2), PIGEON_OK);
    assert_int_equal(pigeon_metrics_counter_add(c, failed, 1.5), PIGEON_OK);
    assert_int_equal(pigeon_metrics_counter_add(c, sent, 1), PIGEON_OK);
    assert_int_equal(pigeon_metrics_gauge_set(g, NULL, 42), PIGEON_OK);
    assert_int_equal(pigeon_metrics_gauge_add(g, NULL, -44.25), PIGEON_OK);
    assert_renders(r, "# HELP t_messages_total Messages.\n"
                      "# TYPE t_messages_total counter\n"
                      "t_messages_total{result=\"sent\"} 3\n"
                      "t_messages_total{result=\"failed\"} 1.5\n"
                      "# HELP t_depth Depth.\n"
                      "# TYPE t_depth gauge\n"
                      "t_depth -2.25\n");
    double v = 0;
    assert_int_equal(pigeon_metrics_value(c, sent, &v), PIGEON_OK);
    assert_true(v == 3);
    const char *none[] = {"deferred"};
    assert_int_equal(pigeon_metrics_value(c, none, &v), PIGEON_ERR_NOTFOUND);
    assert_ptr_equal(pigeon_metrics_find(r, "t_depth"), g);
    assert_null(pigeon_metrics_find(r, "t_nothing"));
    pigeon_metrics_free(r);
}

static void test_numbers(void **state)
{
    (void)state;
    pigeon_metrics *r = pigeon_metrics_new();
    pigeon_metric *g;
    static const char *const k[] = {"k"};
    assert_int_equal(pigeon_metrics_add_gauge(r, "t_g", "", 1, k, &g), PIGEON_OK);
    const char *a[] = {"a"}, *b[] = {"b"}, *c[] = {"c"}, *d[] = {"d"}, *e[] = {"e"};
    pigeon_metrics_gauge_set(g, a, 0.1 + 0.2); /* needs 17 digits to read back */
    pigeon_metrics_gauge_set(g, b, 1e21);
    pigeon_metrics_gauge_set(g, c, 1.0 / 0.0);
    pigeon_metrics_gauge_set(g, d, -1.0 / 0.0);
    pigeon_metrics_gauge_set(g, e, 123456789012.0);
    assert_renders(r, "# HELP t_g \n"
                      "# TYPE t_g gauge\n"
                      "t_g{k=\"a\"} 0.30000000000000004\n"
                      "t_g{k=\"b\"} 1e+21\n"
                      "t_g{k=\"c\"} +Inf\n"
                      "t_g{k=\"d\"} -Inf\n"
                      "t_g{k=\"e\"} 123456789012\n");
    pigeon_metrics_free(r);
}

static void test_histogram(void **state)
{
    (void)state;
    static const double bounds[] = {0.1, 1, 2.5};
    static const char *const labels[] = {"relay", "tls"};
    pigeon_metrics *r = pigeon_metrics_new();
    pigeon_metric *h, *h2;
    assert_int_equal(
        pigeon_metrics_add_histogram(r, "t_seconds", "Durations.", 0, NULL, bounds, 3, &h),
        PIGEON_OK);
    assert_int_equal(
        pigeon_metrics_add_histogram(r, "t_labelled_seconds", "L.", 2, labels, bounds, 3, &h2),
        PIGEON_OK);
    /* 0.1 lands in le="0.1": bounds are inclusive upper bounds. */
    static const double obs[] = {0.05, 0.1, 0.5, 2.5, 7};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(pigeon_metrics_histogram_observe(h, NULL, obs[i]), PIGEON_OK);
    const char *lv[] = {"mx.example", "yes"};
    assert_int_equal(pigeon_metrics_histogram_observe(h2, lv, 3), PIGEON_OK);
    assert_renders(r, "# HELP t_seconds Durations.\n"
                      "# TYPE t_seconds histogram\n"
                      "t_seconds_bucket{le=\"0.1\"} 2\n"
                      "t_seconds_bucket{le=\"1\"} 3\n"
                      "t_seconds_bucket{le=\"2.5\"} 4\n"
                      "t_seconds_bucket{le=\"+Inf\"} 5\n"
                      "t_seconds_sum 10.15\n"
                      "t_seconds_count 5\n"
                      "# HELP t_labelled_seconds L.\n"
                      "# TYPE t_labelled_seconds histogram\n"
                      "t_labelled_seconds_bucket{relay=\"mx.example\",tls=\"yes\",le=\"0.1\"} 0\n"
                      "t_labelled_seconds_bucket{relay=\"mx.example\",tls=\"yes\",le=\"1\"} 0\n"
                      "t_labelled_seconds_bucket{relay=\"mx.example\",tls=\"yes\",le=\"2.5\"} 0\n"
                      "t_labelled_seconds_bucket{relay=\"mx.example\",tls=\"yes\",le=\"+Inf\"} 1\n"
                      "t_labelled_seconds_sum{relay=\"mx.example\",tls=\"yes\"} 3\n"
                      "t_labelled_seconds_count{relay=\"mx.example\",tls=\"yes\"} 1\n");
    double count = 0;
    assert_int_equal(pigeon_metrics_value(h, NULL, &count), PIGEON_OK);
    assert_true(count == 5);
    pigeon_metrics_free(r);
}

static void test_escaping(void **state)
{
    (void)state;
    static const char *const labels[] = {"reply", "peer"};
    pigeon_metrics *r = pigeon_metrics_new();
    pigeon_metric *c;
    assert_int_equal(pigeon_metrics_add_counter(r, "t_esc_total",
                                                "Help with \\ and\nnewline \"q\".", 2, labels, &c),
                     PIGEON_OK);
    const char *v[] = {"say \"hi\"\\\nbye", "caf\xc3\xa9 \xff{x}"};
    assert_int_equal(pigeon_metrics_counter_add(c, v, 1), PIGEON_OK);
    /* In HELP only \ and newline are escaped; in label values also the double quote.
     * Invalid UTF-8 (\xff) becomes U+FFFD; valid UTF-8 and braces pass through. */
    assert_renders(r, "# HELP t_esc_total Help with \\\\ and\\nnewline \"q\".\n"
                      "# TYPE t_esc_total counter\n"
                      "t_esc_total{reply=\"say \\\"hi\\\"\\\\\\nbye\",peer=\"caf\xc3\xa9 "
                      "\xef\xbf\xbd{x}\"} 1\n");
    pigeon_metrics_free(r);
}

static void test_series_cap(void **state)
{
    (void)state;
    static const char *const labels[] = {"class", "code"};
    pigeon_metrics *r = pigeon_metrics_new();
    pigeon_metric *c;
    assert_int_equal(pigeon_metrics_add_counter(r, "t_err_total", "E.", 2, labels, &c), PIGEON_OK);
    pigeon_metrics_set_max_series(c, 3);
    char code[16];
    for (int i = 0; i < 50; i++) {
        snprintf(code, sizeof code, "%d", 500 + i);
        const char *v[] = {"5xx", code};
        assert_int_equal(pigeon_metrics_counter_add(c, v, 1), PIGEON_OK);
    }
    /* Three real series and the overflow one, which got the other 47 samples. */
    assert_int_equal(pigeon_metrics_series_count(c), 4);
    const char *other[] = {"other", "other"};
    double v = 0;
    assert_int_equal(pigeon_metrics_value(c, other, &v), PIGEON_OK);
    assert_true(v == 47);
    /* A value too long to store is counted as "other" too, even below the bound. */
    pigeon_metric *c2;
    static const char *const one[] = {"code"};
    assert_int_equal(pigeon_metrics_add_counter(r, "t_long_total", "L.", 1, one, &c2), PIGEON_OK);
    char long_value[PIGEON_METRICS_MAX_VALUE + 2];
    memset(long_value, 'x', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    const char *lv[] = {long_value};
    assert_int_equal(pigeon_metrics_counter_add(c2, lv, 1), PIGEON_OK);
    const char *other1[] = {"other"};
    assert_int_equal(pigeon_metrics_value(c2, other1, &v), PIGEON_OK);
    assert_true(v == 1);
    assert_int_equal(pigeon_metrics_series_count(c2), 1);
    /* The default bound holds for a flood of distinct values. */
    pigeon_metric *c3;
    assert_int_equal(pigeon_metrics_add_counter(r, "t_flood_total", "F.", 1, one, &c3), PIGEON_OK);
    for (int i = 0; i < 5000; i++) {
        snprintf(code, sizeof code, "c%d", i);
        const char *fv[] = {code};
        assert_int_equal(pigeon_metrics_counter_add(c3, fv, 1), PIGEON_OK);
    }
    assert_int_equal(pigeon_metrics_series_count(c3), PIGEON_METRICS_DEFAULT_MAX_SERIES + 1);
    assert_int_equal(pigeon_metrics_value(c3, other1, &v), PIGEON_OK);
    assert_true(v == 5000 - PIGEON_METRICS_DEFAULT_MAX_SERIES);
    pigeon_metrics_free(r);
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *const le[] = {"le"};
    static const char *const reserved[] = {"__x"};
    static const char *const dup[] = {"a", "a"};
    static const char *const bad[] = {"a-b"};
    static const char *const five[] = {"a", "b", "c", "d", "e"};
    static const double bounds[] = {1, 2};
    static const double unordered[] = {2, 1};
    pigeon_metrics *r = pigeon_metrics_new();
    pigeon_metric *c = NULL, *h = NULL, *out = NULL;
    assert_int_equal(pigeon_metrics_add_counter(r, "1abc", "", 0, NULL, &out), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_counter(r, "a b", "", 0, NULL, NULL), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_counter(r, "", "", 0, NULL, NULL), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_counter(r, "x", NULL, 0, NULL, NULL), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_counter(r, "x", "", 1, reserved, NULL), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_counter(r, "x", "", 2, dup, NULL), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_counter(r, "x", "", 1, bad, NULL), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_counter(r, "x", "", 5, five, NULL), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_histogram(r, "h", "", 1, le, bounds, 2, NULL),
                     PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_histogram(r, "h", "", 0, NULL, unordered, 2, NULL),
                     PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_histogram(r, "h", "", 0, NULL, bounds, 0, NULL),
                     PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_counter(r, "ns:x_total", "", 1, le, &c), PIGEON_OK);
    assert_int_equal(pigeon_metrics_add_gauge(r, "ns:x_total", "", 0, NULL, NULL),
                     PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_add_histogram(r, "h", "", 0, NULL, bounds, 2, &h), PIGEON_OK);
    const char *v[] = {"x"};
    assert_int_equal(pigeon_metrics_counter_add(c, v, -1), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_counter_add(c, v, 0.0 / 0.0), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_gauge_set(c, v, 1), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_histogram_observe(c, v, 1), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_counter_add(h, NULL, 1), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_histogram_observe(h, NULL, 0.0 / 0.0), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_counter_add(NULL, v, 1), PIGEON_ERR_INVALID);
    /* Nothing invalid reached the output. */
    assert_renders(r, "# HELP ns:x_total \n"
                      "# TYPE ns:x_total counter\n"
                      "# HELP h \n"
                      "# TYPE h histogram\n"
                      "h_bucket{le=\"1\"} 0\n"
                      "h_bucket{le=\"2\"} 0\n"
                      "h_bucket{le=\"+Inf\"} 0\n"
                      "h_sum 0\n"
                      "h_count 0\n");
    pigeon_metrics_free(r);
    pigeon_metrics_free(NULL);
}

/* The refresh hook runs before each render and may set gauges. */
static void refresh_depth(void *arg, pigeon_metrics *r)
{
    int *calls = arg;
    (*calls)++;
    pigeon_metrics_gauge_set(pigeon_metrics_find(r, "t_queue"), NULL, *calls * 10);
}

static void test_refresh_hook(void **state)
{
    (void)state;
    int calls = 0;
    pigeon_metrics *r = pigeon_metrics_new();
    assert_int_equal(pigeon_metrics_add_gauge(r, "t_queue", "Q.", 0, NULL, NULL), PIGEON_OK);
    pigeon_metrics_set_refresh(r, refresh_depth, &calls);
    assert_renders(r, "# HELP t_queue Q.\n# TYPE t_queue gauge\nt_queue 10\n");
    assert_renders(r, "# HELP t_queue Q.\n# TYPE t_queue gauge\nt_queue 20\n");
    pigeon_metrics_set_refresh(r, NULL, NULL);
    assert_renders(r, "# HELP t_queue Q.\n# TYPE t_queue gauge\nt_queue 20\n");
    assert_int_equal(calls, 2);
    pigeon_metrics_free(r);
}

static void test_standard_set(void **state)
{
    (void)state;
    pigeon_metrics_std s;
    assert_int_equal(pigeon_metrics_new_standard(&s), PIGEON_OK);
    assert_int_equal(pigeon_metrics_count_message(&s, "sent"), PIGEON_OK);
    assert_int_equal(pigeon_metrics_count_message(&s, "partial"), PIGEON_OK);
    assert_int_equal(pigeon_metrics_count_message(&s, "bogus"), PIGEON_ERR_INVALID);
    assert_int_equal(pigeon_metrics_count_recipients(&s, "sent", 3), PIGEON_OK);
    assert_int_equal(pigeon_metrics_count_smtp_error(&s, 550, PIGEON_ERR_REJECTED), PIGEON_OK);
    assert_int_equal(pigeon_metrics_count_smtp_error(&s, 421, PIGEON_ERR_DEFERRED), PIGEON_OK);
    assert_int_equal(pigeon_metrics_count_smtp_error(&s, 0, PIGEON_ERR_TIMEOUT), PIGEON_OK);
    assert_int_equal(pigeon_metrics_count_smtp_error(&s, 999, PIGEON_ERR_PROTOCOL), PIGEON_OK);
    assert_int_equal(pigeon_metrics_count_attempt(&s, 0.3), PIGEON_OK);
    assert_int_equal(pigeon_metrics_set_queue_depth(&s, "deferred", 7), PIGEON_OK);
    assert_int_equal(pigeon_metrics_set_queue_depth(&s, "lost", 7), PIGEON_ERR_INVALID);
    pigeon_metrics_gauge_set(s.oldest_age, NULL, 3600);
    pigeon_metrics_gauge_add(s.connections, NULL, 2);
    char *text = render(s.registry);
    static const char *const lines[] = {
        "# TYPE pigeon_messages_total counter\n",
        "pigeon_messages_total{result=\"sent\"} 1\n",
        "pigeon_messages_total{result=\"partial\"} 1\n",
        "pigeon_messages_total{result=\"deferred\"} 0\n",
        "pigeon_messages_total{result=\"failed\"} 0\n",
        "pigeon_recipients_total{result=\"sent\"} 3\n",
        "pigeon_recipients_total{result=\"failed\"} 0\n",
        "pigeon_smtp_errors_total{class=\"5xx\",code=\"550\"} 1\n",
        "pigeon_smtp_errors_total{class=\"4xx\",code=\"421\"} 1\n",
        "pigeon_smtp_errors_total{class=\"timeout\",code=\"none\"} 1\n",
        "pigeon_smtp_errors_total{class=\"other\",code=\"none\"} 1\n",
        "pigeon_attempts_total 1\n",
        "# TYPE pigeon_send_duration_seconds histogram\n",
        "pigeon_send_duration_seconds_bucket{le=\"0.25\"} 0\n",
        "pigeon_send_duration_seconds_bucket{le=\"0.5\"} 1\n",
        "pigeon_send_duration_seconds_bucket{le=\"120\"} 1\n",
        "pigeon_send_duration_seconds_bucket{le=\"+Inf\"} 1\n",
        "pigeon_send_duration_seconds_count 1\n",
        "pigeon_queue_depth{state=\"queued\"} 0\n",
        "pigeon_queue_depth{state=\"inflight\"} 0\n",
        "pigeon_queue_depth{state=\"deferred\"} 7\n",
        "pigeon_queue_depth{state=\"delivered\"} 0\n",
        "pigeon_queue_depth{state=\"failed\"} 0\n",
        "pigeon_queue_oldest_age_seconds 3600\n",
        "# TYPE pigeon_smtp_connections_open gauge\n",
        "pigeon_smtp_connections_open 2\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (strstr(text, lines[i]) == NULL)
            fail_msg("missing line %s in:\n%s", lines[i], text);
    }
    free(text);
    pigeon_metrics_free(s.registry);
}

static void test_listen_addresses(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        ":9464",
        "::1:9464",
        "[::1]",
        "[::1]9464",
        "localhost:9464",
        "1.2.3:9464",
        "[::1]:12a",
        "127.0.0.1:123456",
        "",
    };
    pigeon_metrics *r = pigeon_metrics_new();
    pigeon_metrics_server *srv = (pigeon_metrics_server *)1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (pigeon_metrics_serve(r, bad[i], NULL, NULL, &srv) != PIGEON_ERR_INVALID)
            fail_msg("accepted %s", bad[i]);
        assert_null(srv);
    }
    assert_int_equal(pigeon_metrics_serve(r, NULL, NULL, NULL, &srv), PIGEON_ERR_INVALID);
    /* Port 0 picks a free port, which the server reports. */
    assert_int_equal(pigeon_metrics_serve(r, "127.0.0.1:0", NULL, NULL, &srv), PIGEON_OK);
    unsigned port = pigeon_metrics_server_port(srv);
    assert_true(port > 0 && port <= 65535);
    /* The same port again is in use. */
    char again[32];
    snprintf(again, sizeof again, "127.0.0.1:%u", port);
    pigeon_metrics_server *srv2 = NULL;
    assert_int_equal(pigeon_metrics_serve(r, again, NULL, NULL, &srv2), PIGEON_ERR_NETWORK);
    assert_null(srv2);
    pigeon_metrics_server_stop(srv);
    pigeon_metrics_server_stop(NULL);
    pigeon_metrics_free(r);
}

#define THREADS      4
#define ITERATIONS   20000
#define LABEL_VALUES 8

typedef struct worker {
    pigeon_metric *counter;   /* labelled counter every worker adds to */
    pigeon_metric *histogram; /* histogram every worker observes into */
    pigeon_metric *gauge;     /* gauge every worker adds +1 then -1 to */
    int id;                   /* worker index */
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    char value[16];
    for (int i = 0; i < ITERATIONS; i++) {
        snprintf(value, sizeof value, "v%d", (i + w->id) % LABEL_VALUES);
        const char *v[] = {value};
        if (pigeon_metrics_counter_add(w->counter, v, 1) != PIGEON_OK ||
            pigeon_metrics_histogram_observe(w->histogram, NULL, (i % 4) * 0.5) != PIGEON_OK ||
            pigeon_metrics_gauge_add(w->gauge, NULL, 1) != PIGEON_OK ||
            pigeon_metrics_gauge_add(w->gauge, NULL, -1) != PIGEON_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    static const char *const k[] = {"k"};
    static const double bounds[] = {0.5, 1};
    pigeon_metrics *r = pigeon_metrics_new();
    worker w[THREADS];
    pthread_t t[THREADS];
    pigeon_metric *c, *h, *g;
    assert_int_equal(pigeon_metrics_add_counter(r, "t_c_total", "C.", 1, k, &c), PIGEON_OK);
    assert_int_equal(pigeon_metrics_add_histogram(r, "t_h", "H.", 0, NULL, bounds, 2, &h),
                     PIGEON_OK);
    assert_int_equal(pigeon_metrics_add_gauge(r, "t_g", "G.", 0, NULL, &g), PIGEON_OK);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.counter = c, .histogram = h, .gauge = g, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    /* Render while the workers run: each render is a consistent snapshot. */
    for (int i = 0; i < 50; i++) {
        char *text = render(r);
        assert_non_null(strstr(text, "t_h_bucket{le=\"+Inf\"}"));
        free(text);
    }
    for (int i = 0; i < THREADS; i++) {
        void *rc;
        assert_int_equal(pthread_join(t[i], &rc), 0);
        assert_null(rc);
    }
    double total = 0, v;
    for (int i = 0; i < LABEL_VALUES; i++) {
        char value[16];
        snprintf(value, sizeof value, "v%d", i);
        const char *lv[] = {value};
        assert_int_equal(pigeon_metrics_value(c, lv, &v), PIGEON_OK);
        assert_true(v == THREADS * ITERATIONS / LABEL_VALUES);
        total += v;
    }
    assert_true(total == THREADS * ITERATIONS);
    assert_int_equal(pigeon_metrics_value(g, NULL, &v), PIGEON_OK);
    assert_true(v == 0);
    /* Observations 0, 0.5, 1, 1.5 in turn: le=0.5 holds half, le=1 three quarters. */
    char *text = render(r);
    char expect[256];
    snprintf(expect, sizeof expect,
             "t_h_bucket{le=\"0.5\"} %d\nt_h_bucket{le=\"1\"} %d\nt_h_bucket{le=\"+Inf\"} %d\n"
             "t_h_sum %d\nt_h_count %d\n",
             THREADS * ITERATIONS / 2, THREADS * ITERATIONS / 4 * 3, THREADS * ITERATIONS,
             THREADS * ITERATIONS / 4 * 3, THREADS * ITERATIONS);
    if (strstr(text, expect) == NULL)
        fail_msg("histogram totals wrong:\n%s", text);
    free(text);
    pigeon_metrics_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge), cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_histogram),         cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_series_cap),        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_refresh_hook),      cmocka_unit_test(test_standard_set),
        cmocka_unit_test(test_listen_addresses),  cmocka_unit_test(test_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
