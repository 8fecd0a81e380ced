/*
 * pigeon/metrics.h - a small thread-safe metrics registry and its Prometheus endpoint.
 *
 * A registry holds metric families: counters and gauges (a double per label set) and
 * histograms with fixed bucket bounds. Each family has up to PIGEON_METRICS_MAX_LABELS
 * label names fixed when it is added; samples are addressed by an array of label values
 * in the same order. It renders in the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/): "# HELP", "# TYPE",
 * one line per series, label values escaped (backslash, double quote, newline), and for
 * histograms cumulative "_bucket{le=...}" lines ending with le="+Inf", then "_sum" and
 * "_count".
 *
 * Bounded memory: a family holds at most max_series label sets (default
 * PIGEON_METRICS_DEFAULT_MAX_SERIES). A sample for a new label set beyond that, or with a
 * label value longer than PIGEON_METRICS_MAX_VALUE bytes, is counted in the series whose
 * every label value is "other", so that a hostile peer (say, a server inventing reply
 * codes) cannot grow memory without bound. Label values that are not valid UTF-8 have
 * the bad bytes replaced by U+FFFD, since the format requires UTF-8.
 *
 * An HTTP endpoint (pigeon's own HTTP/1.1 server, its own thread) serves GET /metrics and
 * GET /healthz.
 *
 * Thread safety: every call on a registry or its metrics may be made from any thread at
 * any time; one mutex per registry makes each render a consistent snapshot. Adding
 * families while other threads update existing ones is safe too. Metric handles are
 * owned by the registry and valid until pigeon_metrics_free().
 *
 * The library never prints.
 */
#ifndef PIGEON_METRICS_H
#define PIGEON_METRICS_H

#include <stddef.h>

#include "pigeon/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PIGEON_METRICS_MAX_LABELS         4    /* label names per family, at most */
#define PIGEON_METRICS_MAX_BUCKETS        32   /* histogram bucket bounds, at most (+Inf apart) */
#define PIGEON_METRICS_MAX_VALUE          128  /* bytes of one label value, at most */
#define PIGEON_METRICS_DEFAULT_MAX_SERIES 1000 /* label sets per family, "other" apart */

/* The label value that collects samples beyond the series bound. */
#define PIGEON_METRICS_OVERFLOW "other"

typedef struct pigeon_metrics pigeon_metrics; /* a registry (opaque) */
typedef struct pigeon_metric pigeon_metric;   /* one metric family (opaque, owned) */

/* Called by pigeon_metrics_render() before it takes the registry lock, so that the caller
 * can refresh gauges (queue depth, oldest age) just before a scrape. It runs in the
 * rendering thread (the HTTP thread for a scrape) and may call any metrics function on
 * this registry except pigeon_metrics_render(). */
typedef void (*pigeon_metrics_refresh_fn)(void *arg, pigeon_metrics *registry);

/* Answers /healthz: return nonzero when healthy. When unhealthy, write a one-line reason
 * (NUL-terminated, at most reason_size bytes) to reason; it is the 503 response's body.
 * Runs in the HTTP thread. */
typedef int (*pigeon_metrics_health_fn)(void *arg, char *reason, size_t reason_size);

/* ---- registry ---- */

/* A new empty registry, or NULL when out of memory. Free with pigeon_metrics_free(). */
pigeon_metrics *pigeon_metrics_new(void);

/* Frees the registry and every metric in it. NULL does nothing. Stop any server started
 * on it first. */
void pigeon_metrics_free(pigeon_metrics *registry);

/* Sets (fn non-NULL) or clears the refresh hook. */
void pigeon_metrics_set_refresh(pigeon_metrics *registry, pigeon_metrics_refresh_fn fn, void *arg);

/*
 * Adds a family. name must match [a-zA-Z_:][a-zA-Z0-9_:]* and be new in the registry;
 * help is any text (copied); label_names (nlabels of them, may be NULL when nlabels is 0)
 * must match [a-zA-Z_][a-zA-Z0-9_]*, not begin with "__", be distinct, and for a histogram
 * not be "le". A counter's name should end in "_total" (Prometheus naming). A family
 * without labels has its one series (at 0) from the start; a labelled family has none
 * until the first sample for a label set (add 0 to make one visible).
 * Errors: PIGEON_ERR_INVALID (bad name, label, duplicate, too many labels), NOMEM.
 * *out (may be NULL) receives the handle.
 */
pigeon_err pigeon_metrics_add_counter(pigeon_metrics *registry, const char *name, const char *help,
                                      size_t nlabels, const char *const *label_names,
                                      pigeon_metric **out);
pigeon_err pigeon_metrics_add_gauge(pigeon_metrics *registry, const char *name, const char *help,
                                    size_t nlabels, const char *const *label_names,
                                    pigeon_metric **out);
/* bounds: nbounds (1..PIGEON_METRICS_MAX_BUCKETS) finite, strictly increasing upper bounds;
 * the +Inf bucket is implicit. */
pigeon_err pigeon_metrics_add_histogram(pigeon_metrics *registry, const char *name,
                                        const char *help, size_t nlabels,
                                        const char *const *label_names, const double *bounds,
                                        size_t nbounds, pigeon_metric **out);

/* Finds a family by name, NULL if none. */
pigeon_metric *pigeon_metrics_find(pigeon_metrics *registry, const char *name);

/* Sets a family's series bound (at least 1); series already present are kept. */
void pigeon_metrics_set_max_series(pigeon_metric *metric, size_t max_series);

/* ---- samples ----
 * values: one label value per label name, in order (NULL when the family has no labels;
 * a NULL value is taken as ""). Errors: PIGEON_ERR_INVALID (wrong metric kind, NaN, a
 * negative counter increment, NULL metric), PIGEON_ERR_NOMEM (the sample is dropped). */

/* Adds delta (>= 0, finite) to a counter. */
pigeon_err pigeon_metrics_counter_add(pigeon_metric *counter, const char *const *values,
                                      double delta);
/* Sets a gauge. */
pigeon_err pigeon_metrics_gauge_set(pigeon_metric *gauge, const char *const *values, double v);
/* Adds delta (may be negative) to a gauge. */
pigeon_err pigeon_metrics_gauge_add(pigeon_metric *gauge, const char *const *values, double delta);
/* Records one observation in a histogram (bucket le is counted when v <= le). */
pigeon_err pigeon_metrics_histogram_observe(pigeon_metric *histogram, const char *const *values,
                                            double v);

/* Reads a series: the value of a counter or gauge, the observation count of a histogram.
 * PIGEON_ERR_NOTFOUND if the label set has no series (values are matched as stored, so
 * overflowed samples are found under "other"). */
pigeon_err pigeon_metrics_value(pigeon_metric *metric, const char *const *values, double *out);

/* Number of series the family holds now. */
size_t pigeon_metrics_series_count(pigeon_metric *metric);

/* ---- rendering ---- */

/* Runs the refresh hook, then renders every family, in the order they were added, series
 * in the order they first appeared, as Prometheus text format 0.0.4. *text is malloc'd
 * and NUL-terminated (free() it); *len (may be NULL) is its length.
 * Errors: PIGEON_ERR_NOMEM, PIGEON_ERR_INVALID. */
pigeon_err pigeon_metrics_render(pigeon_metrics *registry, char **text, size_t *len);

/* The Content-Type of the rendered text. */
#define PIGEON_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- HTTP endpoint ---- */

typedef struct pigeon_metrics_server pigeon_metrics_server; /* opaque */

/*
 * Serves the registry over HTTP on listen: "127.0.0.1:9464", "[::1]:9464" (numeric
 * addresses only, no name lookup; port 0 picks a free port, see
 * pigeon_metrics_server_port()). Requests, answered from an internal thread:
 *   GET /metrics  200, Content-Type PIGEON_METRICS_CONTENT_TYPE, pigeon_metrics_render();
 *   GET /healthz  200 "ok\n", or 503 with the health hook's reason and a newline when the
 *                 hook (health, may be NULL: always healthy) says unhealthy;
 *   other paths   404; methods other than GET and HEAD: 405 with "Allow: GET, HEAD".
 * Errors: PIGEON_ERR_INVALID (listen unparsable), PIGEON_ERR_NETWORK (cannot bind: in
 * use, not a local address), PIGEON_ERR_NOMEM. The registry must outlive the server.
 */
pigeon_err pigeon_metrics_serve(pigeon_metrics *registry, const char *listen,
                                pigeon_metrics_health_fn health, void *health_arg,
                                pigeon_metrics_server **out);

/* The TCP port the server listens on (the chosen one when asked for port 0). */
unsigned pigeon_metrics_server_port(const pigeon_metrics_server *server);

/* Stops the server: returns after in-flight requests are done. NULL does nothing. */
void pigeon_metrics_server_stop(pigeon_metrics_server *server);

/* ---- the standard pigeon metric set ---- */

/* Handles to the standard families (borrowed from the registry). */
typedef struct pigeon_metrics_std {
    pigeon_metrics *registry;     /* the registry holding them (owned by the caller) */
    pigeon_metric *messages;      /* pigeon_messages_total{result} counter */
    pigeon_metric *recipients;    /* pigeon_recipients_total{result} counter */
    pigeon_metric *smtp_errors;   /* pigeon_smtp_errors_total{class,code} counter */
    pigeon_metric *attempts;      /* pigeon_attempts_total counter */
    pigeon_metric *send_duration; /* pigeon_send_duration_seconds histogram */
    pigeon_metric *queue_depth;   /* pigeon_queue_depth{state} gauge */
    pigeon_metric *oldest_age;    /* pigeon_queue_oldest_age_seconds gauge */
    pigeon_metric *connections;   /* pigeon_smtp_connections_open gauge */
} pigeon_metrics_std;

/*
 * A new registry with the standard families, filled into *std (std->registry is the new
 * registry; free it with pigeon_metrics_free()):
 *   pigeon_messages_total{result="sent|partial|deferred|failed"}   messages finished an
 *       attempt with that outcome (all recipients accepted / some / none, temporarily /
 *       none, permanently)
 *   pigeon_recipients_total{result="sent|deferred|failed"}         recipients likewise
 *   pigeon_smtp_errors_total{class,code}  class "4xx"/"5xx" with the 3-digit reply code,
 *       or, for failures without a reply, class "network|tls|timeout|protocol|auth|other"
 *       with code "none"
 *   pigeon_attempts_total                 delivery attempts (SMTP transactions begun)
 *   pigeon_send_duration_seconds          histogram of attempt durations, buckets
 *       0.05 0.1 0.25 0.5 1 2.5 5 10 30 60 120
 *   pigeon_queue_depth{state="queued|inflight|deferred|delivered|failed"}  recipients in
 *       the spool by state
 *   pigeon_queue_oldest_age_seconds       age of the oldest message with work left
 *   pigeon_smtp_connections_open          SMTP connections open now
 * Every listed result and state label set is present (at 0) from the start.
 * Errors: PIGEON_ERR_NOMEM, PIGEON_ERR_INVALID (std NULL).
 */
pigeon_err pigeon_metrics_new_standard(pigeon_metrics_std *std);

/* Counts one message outcome: result is "sent", "partial", "deferred" or "failed". */
pigeon_err pigeon_metrics_count_message(const pigeon_metrics_std *std, const char *result);
/* Counts n recipient outcomes: result is "sent", "deferred" or "failed". */
pigeon_err pigeon_metrics_count_recipients(const pigeon_metrics_std *std, const char *result,
                                           unsigned n);
/* Counts one SMTP error: reply_code 400..599 when the server replied (other values count
 * as class "other"), else 0 and err, our classification of the failure. */
pigeon_err pigeon_metrics_count_smtp_error(const pigeon_metrics_std *std, int reply_code,
                                           pigeon_err err);
/* Counts one attempt and observes its duration in seconds. */
pigeon_err pigeon_metrics_count_attempt(const pigeon_metrics_std *std, double seconds);
/* Sets the depth of one queue state ("queued", "inflight", ...). */
pigeon_err pigeon_metrics_set_queue_depth(const pigeon_metrics_std *std, const char *state,
                                          double n);

#ifdef __cplusplus
}
#endif
#endif
