/*
 * metrics_std.c - the standard pigeon metric set and the helpers that feed it.
 *
 * Names follow the Prometheus conventions: a "pigeon_" prefix, base units (seconds),
 * "_total" on counters, no unit-less "_count"/"_sum" suffixes of our own. SMTP errors are
 * labelled by the reply class and the three-digit code (RFC 5321 4.2.1: 4yz transient,
 * 5yz permanent); the code is checked to be one, so that a server cannot invent label
 * values, and the family is bounded anyway.
 */
#include "pigeon/metrics.h"

#include <stdio.h>
#include <string.h>

static const char *const message_results[] = {"sent", "partial", "deferred", "failed"};
static const char *const rcpt_results[] = {"sent", "deferred", "failed"};
static const char *const queue_states[] = {"queued", "inflight", "deferred", "delivered", "failed"};

/* Upper bounds of the send duration buckets, in seconds: from a fast local relay to the
 * ten-minute DATA timeout's neighbourhood (RFC 5321 4.5.3.2.6) cut at two minutes. */
static const double duration_bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static pigeon_err add_counters(pigeon_metrics_std *std);
static pigeon_err add_gauges(pigeon_metrics_std *std);
static pigeon_err preset(pigeon_metric *m, const char *const *values, size_t n, int gauge);

pigeon_err pigeon_metrics_new_standard(pigeon_metrics_std *std)
{
    if (std == NULL)
        return PIGEON_ERR_INVALID;
    memset(std, 0, sizeof *std);
    std->registry = pigeon_metrics_new();
    if (std->registry == NULL)
        return PIGEON_ERR_NOMEM;
    pigeon_err err = add_counters(std);
    if (err == PIGEON_OK)
        err = add_gauges(std);
    if (err != PIGEON_OK) {
        pigeon_metrics_free(std->registry);
        memset(std, 0, sizeof *std);
    }
    return err;
}

static pigeon_err add_counters(pigeon_metrics_std *std)
{
    static const char *const result[] = {"result"};
    static const char *const class_code[] = {"class", "code"};
    pigeon_metrics *r = std->registry;
    pigeon_err err = pigeon_metrics_add_counter(
        r, "pigeon_messages_total", "Messages that finished a delivery attempt, by outcome.", 1,
        result, &std->messages);
    if (err == PIGEON_OK)
        err = pigeon_metrics_add_counter(r, "pigeon_recipients_total",
                                         "Recipient outcomes of delivery attempts.", 1, result,
                                         &std->recipients);
    if (err == PIGEON_OK)
        err = pigeon_metrics_add_counter(
            r, "pigeon_smtp_errors_total",
            "SMTP errors by reply class and code, or by failure kind when there was no reply.", 2,
            class_code, &std->smtp_errors);
    if (err == PIGEON_OK)
        err = pigeon_metrics_add_counter(r, "pigeon_attempts_total",
                                         "Delivery attempts (SMTP transactions begun).", 0, NULL,
                                         &std->attempts);
    if (err == PIGEON_OK)
        err = pigeon_metrics_add_histogram(
            r, "pigeon_send_duration_seconds", "Duration of delivery attempts in seconds.", 0, NULL,
            duration_bounds, COUNT(duration_bounds), &std->send_duration);
    if (err == PIGEON_OK)
        err = preset(std->messages, message_results, COUNT(message_results), 0);
    if (err == PIGEON_OK)
        err = preset(std->recipients, rcpt_results, COUNT(rcpt_results), 0);
    return err;
}

static pigeon_err add_gauges(pigeon_metrics_std *std)
{
    static const char *const state[] = {"state"};
    pigeon_metrics *r = std->registry;
    pigeon_err err = pigeon_metrics_add_gauge(
        r, "pigeon_queue_depth", "Recipients in the spool by state.", 1, state, &std->queue_depth);
    if (err == PIGEON_OK)
        err = pigeon_metrics_add_gauge(
            r, "pigeon_queue_oldest_age_seconds",
            "Age of the oldest queued message with work left, in seconds (0 when none).", 0, NULL,
            &std->oldest_age);
    if (err == PIGEON_OK)
        err = pigeon_metrics_add_gauge(r, "pigeon_smtp_connections_open",
                                       "SMTP connections open now.", 0, NULL, &std->connections);
    if (err == PIGEON_OK)
        err = preset(std->queue_depth, queue_states, COUNT(queue_states), 1);
    return err;
}

/* Makes the series of each listed single label value visible at 0, so that rate() and
 * dashboards see them before the first event. */
static pigeon_err preset(pigeon_metric *m, const char *const *values, size_t n, int gauge)
{
    pigeon_err err = PIGEON_OK;
    for (size_t i = 0; i < n && err == PIGEON_OK; i++) {
        const char *v[1] = {values[i]};
        err = gauge ? pigeon_metrics_gauge_add(m, v, 0) : pigeon_metrics_counter_add(m, v, 0);
    }
    return err;
}

static int listed(const char *v, const char *const *list, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        if (strcmp(v, list[i]) == 0)
            return 1;
    }
    return 0;
}

pigeon_err pigeon_metrics_count_message(const pigeon_metrics_std *std, const char *result)
{
    if (std == NULL || !listed(result, message_results, COUNT(message_results)))
        return PIGEON_ERR_INVALID;
    const char *v[1] = {result};
    return pigeon_metrics_counter_add(std->messages, v, 1);
}

pigeon_err pigeon_metrics_count_recipients(const pigeon_metrics_std *std, const char *result,
                                           unsigned n)
{
    if (std == NULL || !listed(result, rcpt_results, COUNT(rcpt_results)))
        return PIGEON_ERR_INVALID;
    const char *v[1] = {result};
    return pigeon_metrics_counter_add(std->recipients, v, n);
}

/* The failure kind of an error without a reply, as a label value. */
static const char *failure_class(pigeon_err err)
{
    switch (err) {
    case PIGEON_ERR_NETWORK:
        return "network";
    case PIGEON_ERR_TLS:
        return "tls";
    case PIGEON_ERR_TIMEOUT:
        return "timeout";
    case PIGEON_ERR_PROTOCOL:
        return "protocol";
    case PIGEON_ERR_AUTH:
        return "auth";
    default:
        return "other";
    }
}

pigeon_err pigeon_metrics_count_smtp_error(const pigeon_metrics_std *std, int reply_code,
                                           pigeon_err err)
{
    if (std == NULL)
        return PIGEON_ERR_INVALID;
    char code[8] = "none";
    const char *cls;
    if (reply_code >= 400 && reply_code <= 599) {
        snprintf(code, sizeof code, "%d", reply_code);
        cls = reply_code < 500 ? "4xx" : "5xx";
    } else if (reply_code != 0) {
        cls = "other";
    } else {
        cls = failure_class(err);
    }
    const char *v[2] = {cls, code};
    return pigeon_metrics_counter_add(std->smtp_errors, v, 1);
}

pigeon_err pigeon_metrics_count_attempt(const pigeon_metrics_std *std, double seconds)
{
    if (std == NULL)
        return PIGEON_ERR_INVALID;
    pigeon_err err = pigeon_metrics_counter_add(std->attempts, NULL, 1);
    if (err == PIGEON_OK)
        err = pigeon_metrics_histogram_observe(std->send_duration, NULL, seconds);
    return err;
}

pigeon_err pigeon_metrics_set_queue_depth(const pigeon_metrics_std *std, const char *state,
                                          double n)
{
    if (std == NULL || !listed(state, queue_states, COUNT(queue_states)))
        return PIGEON_ERR_INVALID;
    const char *v[1] = {state};
    return pigeon_metrics_gauge_set(std->queue_depth, v, n);
}
