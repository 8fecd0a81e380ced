/*
 * tool_metrics.c - drives the metrics registry and its HTTP endpoint for
 * test_metrics_scrape.py.
 *
 * Usage: tool_metrics [listen]   (default 127.0.0.1:0)
 * Builds the standard pigeon metric set plus a test counter
 * pigeon_test_labels_total{value}, serves it on listen, prints "PORT <n>" and then reads
 * one command per line from stdin, answering "OK" or "ERR <PIGEON_ERR_NAME>":
 *   message <result>            pigeon_metrics_count_message
 *   rcpts <result> <n>          pigeon_metrics_count_recipients
 *   error <reply_code> <err>    pigeon_metrics_count_smtp_error (err: pigeon_err number)
 *   attempt <seconds>           pigeon_metrics_count_attempt
 *   depth <state> <n>           pigeon_metrics_set_queue_depth
 *   conn <delta>                pigeon_smtp_connections_open += delta
 *   label <hex>                 pigeon_test_labels_total{value=<hex-decoded bytes>} += 1
 *   burst <n>                   n times: message sent
 *   unhealthy <reason...>       /healthz answers 503 with the reason
 *   healthy                     /healthz answers 200
 *   quit                        stops the server and exits
 * The refresh hook sets pigeon_queue_oldest_age_seconds to the number of renders so far,
 * so that the test can see it run before every scrape.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/metrics.h"

#define LINE_MAX_LEN 1024

/* Shared with the HTTP thread. */
static struct {
    pthread_mutex_t lock; /* guards the fields below */
    int unhealthy;        /* /healthz should fail */
    char reason[256];     /* and why */
    unsigned renders;     /* refresh hook calls */
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pigeon_metrics_std std;
static pigeon_metric *test_labels;

static int health(void *arg, char *reason, size_t size)
{
    (void)arg;
    pthread_mutex_lock(&shared.lock);
    int ok = !shared.unhealthy;
    snprintf(reason, size, "%s", shared.reason);
    pthread_mutex_unlock(&shared.lock);
    return ok;
}

static void refresh(void *arg, pigeon_metrics *registry)
{
    (void)arg;
    (void)registry;
    pthread_mutex_lock(&shared.lock);
    unsigned n = ++shared.renders;
    pthread_mutex_unlock(&shared.lock);
    pigeon_metrics_gauge_set(std.oldest_age, NULL, n);
}

static int hex_value(char c)
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
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        s[o++] = (char)(hi * 16 + lo);
    }
    s[o] = '\0';
    return 1;
}

static pigeon_err set_health(const char *reason)
{
    pthread_mutex_lock(&shared.lock);
    shared.unhealthy = reason != NULL;
    snprintf(shared.reason, sizeof shared.reason, "%s", reason != NULL ? reason : "");
    pthread_mutex_unlock(&shared.lock);
    return PIGEON_OK;
}

static pigeon_err run(char *cmd, char *arg, char *rest)
{
    if (strcmp(cmd, "message") == 0)
        return pigeon_metrics_count_message(&std, arg);
    if (strcmp(cmd, "rcpts") == 0)
        return pigeon_metrics_count_recipients(&std, arg, (unsigned)strtoul(rest, NULL, 10));
    if (strcmp(cmd, "error") == 0)
        return pigeon_metrics_count_smtp_error(&std, (int)strtol(arg, NULL, 10),
                                               (pigeon_err)strtol(rest, NULL, 10));
    if (strcmp(cmd, "attempt") == 0)
        return pigeon_metrics_count_attempt(&std, strtod(arg, NULL));
    if (strcmp(cmd, "depth") == 0)
        return pigeon_metrics_set_queue_depth(&std, arg, strtod(rest, NULL));
    if (strcmp(cmd, "conn") == 0)
        return pigeon_metrics_gauge_add(std.connections, NULL, strtod(arg, NULL));
    if (strcmp(cmd, "label") == 0) {
        const char *v[] = {arg};
        return unhex(arg) ? pigeon_metrics_counter_add(test_labels, v, 1) : PIGEON_ERR_INVALID;
    }
    if (strcmp(cmd, "burst") == 0) {
        pigeon_err err = PIGEON_OK;
        for (long i = strtol(arg, NULL, 10); i > 0 && err == PIGEON_OK; i--)
            err = pigeon_metrics_count_message(&std, "sent");
        return err;
    }
    if (strcmp(cmd, "unhealthy") == 0) {
        if (rest[0] != '\0')
            rest[-1] = ' '; /* the reason is the whole rest of the line */
        return set_health(arg);
    }
    if (strcmp(cmd, "healthy") == 0)
        return set_health(NULL);
    return PIGEON_ERR_INVALID;
}

int main(int argc, char **argv)
{
    static const char *const value[] = {"value"};
    pigeon_metrics_server *srv = NULL;
    char line[LINE_MAX_LEN];
    if (pigeon_metrics_new_standard(&std) != PIGEON_OK ||
        pigeon_metrics_add_counter(std.registry, "pigeon_test_labels_total",
                                   "Test counter with arbitrary label values.", 1, value,
                                   &test_labels) != PIGEON_OK)
        return 2;
    pigeon_metrics_set_refresh(std.registry, refresh, NULL);
    pigeon_err err =
        pigeon_metrics_serve(std.registry, argc > 1 ? argv[1] : "127.0.0.1:0", health, NULL, &srv);
    if (err != PIGEON_OK) {
        printf("ERR %s\n", pigeon_err_name(err));
        pigeon_metrics_free(std.registry);
        return 1;
    }
    printf("PORT %u\n", pigeon_metrics_server_port(srv));
    fflush(stdout);
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        char *cmd = line, *arg = "", *rest = "";
        char *sp = strchr(cmd, ' ');
        if (sp != NULL) {
            *sp = '\0';
            arg = sp + 1;
            char *sp2 = strchr(arg, ' ');
            if (sp2 != NULL) {
                *sp2 = '\0';
                rest = sp2 + 1;
            }
        }
        if (strcmp(cmd, "quit") == 0)
            break;
        err = run(cmd, arg, rest);
        if (err == PIGEON_OK)
            printf("OK\n");
        else
            printf("ERR %s\n", pigeon_err_name(err));
        fflush(stdout);
    }
    pigeon_metrics_server_stop(srv);
    pigeon_metrics_free(std.registry);
    return 0;
}
