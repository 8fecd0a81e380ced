/*
 * metrics.c - the metrics registry and its Prometheus text rendering (format 0.0.4).
 *
 * A registry is a list of families under one mutex. A family keeps its series in a
 * small chained hash table (keyed by the label values) and, for rendering, in a list in
 * the order they first appeared, so that output is deterministic. Histograms keep one
 * count per bucket and cumulate them when rendering, as the format asks ("le" buckets
 * are cumulative, the last one is le="+Inf" and equals _count).
 *
 * Label values are cleaned before they are stored: longer than PIGEON_METRICS_MAX_VALUE
 * bytes sends the sample to the overflow series, invalid UTF-8 bytes become U+FFFD. The
 * overflow series (every value "other") is the one set allowed beyond max_series, so a
 * family never holds more than max_series + 1 series.
 */
#include "pigeon/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/utf8.h"

#define HASH_SIZE 256 /* hash chains per family; 1000 series make chains of about 4 */

/* Room for one cleaned label value: every byte may become a 3-byte U+FFFD. */
#define CLEAN_MAX (PIGEON_METRICS_MAX_VALUE * 3 + 1)

typedef enum metric_kind {
    KIND_COUNTER,   /* monotonic double */
    KIND_GAUGE,     /* any double */
    KIND_HISTOGRAM, /* buckets, sum, count */
} metric_kind;

typedef struct series {
    struct series *next_hash;                /* next in the same hash chain */
    struct series *next;                     /* next in order of first appearance */
    char *values[PIGEON_METRICS_MAX_LABELS]; /* cleaned label values, owned */
    double value;                            /* counter or gauge value; histogram sum */
    uint64_t count;                          /* histogram: observations */
    uint64_t buckets[];                      /* histogram: per bucket (not cumulative) */
} series;

struct pigeon_metric {
    pigeon_metrics *registry;                  /* the owner, whose lock guards this */
    struct pigeon_metric *next;                /* next family in order of addition */
    metric_kind kind;                          /* counter, gauge or histogram */
    char *name;                                /* metric name, owned */
    char *help;                                /* help text, owned */
    size_t nlabels;                            /* label names in use */
    char *labels[PIGEON_METRICS_MAX_LABELS];   /* label names, owned */
    size_t nbounds;                            /* histogram bucket bounds in use */
    double bounds[PIGEON_METRICS_MAX_BUCKETS]; /* histogram upper bounds, increasing */
    size_t max_series;                         /* bound on series (overflow apart) */
    size_t nseries;                            /* series held */
    series *first;                             /* series in order of first appearance */
    series *last;                              /* tail of that list, for appending */
    series *table[HASH_SIZE];                  /* hash chains */
};

struct pigeon_metrics {
    pthread_mutex_t lock;              /* guards everything below and every family */
    pigeon_metric *first;              /* families in order of addition */
    pigeon_metric *last;               /* tail of that list */
    pigeon_metrics_refresh_fn refresh; /* hook run before rendering, or NULL */
    void *refresh_arg;                 /* its argument */
};

/* The label values of one sample after cleaning, ready for lookup. */
typedef struct label_key {
    size_t n;                                        /* values in use */
    char text[PIGEON_METRICS_MAX_LABELS][CLEAN_MAX]; /* the cleaned values */
} label_key;

static int valid_name(const char *s, int allow_colon);
static pigeon_err check_labels(size_t nlabels, const char *const *names, metric_kind kind);
static pigeon_err add_family(pigeon_metrics *r, metric_kind kind, const char *name,
                             const char *help, size_t nlabels, const char *const *labels,
                             const double *bounds, size_t nbounds, pigeon_metric **out);
static void free_family(pigeon_metric *m);
static pigeon_metric *find_locked(pigeon_metrics *r, const char *name);
static int clean_value(char *dst, const char *src);
static size_t hash_key(const label_key *key);
static int key_matches(const series *s, const label_key *key);
static int is_overflow_key(const label_key *key);
static void make_key(const pigeon_metric *m, const char *const *values, label_key *key);
static series *lookup(pigeon_metric *m, label_key *key, int create);
static series *new_series(pigeon_metric *m, const label_key *key, size_t slot);
static pigeon_err update(pigeon_metric *m, metric_kind kind, const char *const *values, double v,
                         int op);
static void render_family(pg_buf *b, const pigeon_metric *m);
static void render_labels(pg_buf *b, const pigeon_metric *m, const series *s, const char *le);
static void put_escaped(pg_buf *b, const char *s, int quotes);
static void format_double(char *text, size_t size, double v);
static void put_double(pg_buf *b, double v);

/* Update operations. */
enum { OP_ADD, OP_SET, OP_OBSERVE };

/* ---- registry ---- */

pigeon_metrics *pigeon_metrics_new(void)
{
    pigeon_metrics *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void pigeon_metrics_free(pigeon_metrics *registry)
{
    if (registry == NULL)
        return;
    pigeon_metric *m = registry->first;
    while (m != NULL) {
        pigeon_metric *next = m->next;
        free_family(m);
        m = next;
    }
    pthread_mutex_destroy(&registry->lock);
    free(registry);
}

void pigeon_metrics_set_refresh(pigeon_metrics *registry, pigeon_metrics_refresh_fn fn, void *arg)
{
    if (registry == NULL)
        return;
    pthread_mutex_lock(&registry->lock);
    registry->refresh = fn;
    registry->refresh_arg = arg;
    pthread_mutex_unlock(&registry->lock);
}

pigeon_err pigeon_metrics_add_counter(pigeon_metrics *registry, const char *name, const char *help,
                                      size_t nlabels, const char *const *label_names,
                                      pigeon_metric **out)
{
    return add_family(registry, KIND_COUNTER, name, help, nlabels, label_names, NULL, 0, out);
}

pigeon_err pigeon_metrics_add_gauge(pigeon_metrics *registry, const char *name, const char *help,
                                    size_t nlabels, const char *const *label_names,
                                    pigeon_metric **out)
{
    return add_family(registry, KIND_GAUGE, name, help, nlabels, label_names, NULL, 0, out);
}

pigeon_err pigeon_metrics_add_histogram(pigeon_metrics *registry, const char *name,
                                        const char *help, size_t nlabels,
                                        const char *const *label_names, const double *bounds,
                                        size_t nbounds, pigeon_metric **out)
{
    if (bounds == NULL || nbounds == 0 || nbounds > PIGEON_METRICS_MAX_BUCKETS)
        return PIGEON_ERR_INVALID;
    for (size_t i = 0; i < nbounds; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return PIGEON_ERR_INVALID;
    }
    return add_family(registry, KIND_HISTOGRAM, name, help, nlabels, label_names, bounds, nbounds,
                      out);
}

pigeon_metric *pigeon_metrics_find(pigeon_metrics *registry, const char *name)
{
    if (registry == NULL || name == NULL)
        return NULL;
    pthread_mutex_lock(&registry->lock);
    pigeon_metric *m = find_locked(registry, name);
    pthread_mutex_unlock(&registry->lock);
    return m;
}

void pigeon_metrics_set_max_series(pigeon_metric *metric, size_t max_series)
{
    if (metric == NULL || max_series == 0)
        return;
    pthread_mutex_lock(&metric->registry->lock);
    metric->max_series = max_series;
    pthread_mutex_unlock(&metric->registry->lock);
}

size_t pigeon_metrics_series_count(pigeon_metric *metric)
{
    if (metric == NULL)
        return 0;
    pthread_mutex_lock(&metric->registry->lock);
    size_t n = metric->nseries;
    pthread_mutex_unlock(&metric->registry->lock);
    return n;
}

/* Prometheus data model: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names without ':'. */
static int valid_name(const char *s, int allow_colon)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* Label names starting with "__" are reserved; "le" is the histogram bucket label. */
static pigeon_err check_labels(size_t nlabels, const char *const *names, metric_kind kind)
{
    if (nlabels > PIGEON_METRICS_MAX_LABELS || (nlabels > 0 && names == NULL))
        return PIGEON_ERR_INVALID;
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_name(names[i], 0) || strncmp(names[i], "__", 2) == 0)
            return PIGEON_ERR_INVALID;
        if (kind == KIND_HISTOGRAM && strcmp(names[i], "le") == 0)
            return PIGEON_ERR_INVALID;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(names[i], names[j]) == 0)
                return PIGEON_ERR_INVALID;
        }
    }
    return PIGEON_OK;
}

static pigeon_err add_family(pigeon_metrics *r, metric_kind kind, const char *name,
                             const char *help, size_t nlabels, const char *const *labels,
                             const double *bounds, size_t nbounds, pigeon_metric **out)
{
    if (out != NULL)
        *out = NULL;
    if (r == NULL || help == NULL || !valid_name(name, 1) ||
        check_labels(nlabels, labels, kind) != PIGEON_OK)
        return PIGEON_ERR_INVALID;
    pigeon_metric *m = calloc(1, sizeof *m);
    if (m == NULL)
        return PIGEON_ERR_NOMEM;
    m->registry = r;
    m->kind = kind;
    m->nlabels = nlabels;
    m->nbounds = nbounds;
    m->max_series = PIGEON_METRICS_DEFAULT_MAX_SERIES;
    if (nbounds > 0)
        memcpy(m->bounds, bounds, nbounds * sizeof *bounds);
    m->name = strdup(name);
    m->help = strdup(help);
    int ok = m->name != NULL && m->help != NULL;
    for (size_t i = 0; ok && i < nlabels; i++)
        ok = (m->labels[i] = strdup(labels[i])) != NULL;
    /* A family without labels has its single series from the start. */
    label_key none = {.n = 0};
    if (ok && nlabels == 0)
        ok = new_series(m, &none, hash_key(&none)) != NULL;
    if (!ok) {
        free_family(m);
        return PIGEON_ERR_NOMEM;
    }
    pthread_mutex_lock(&r->lock);
    if (find_locked(r, name) != NULL) {
        pthread_mutex_unlock(&r->lock);
        free_family(m);
        return PIGEON_ERR_INVALID;
    }
    if (r->last != NULL)
        r->last->next = m;
    else
        r->first = m;
    r->last = m;
    pthread_mutex_unlock(&r->lock);
    if (out != NULL)
        *out = m;
    return PIGEON_OK;
}

static void free_family(pigeon_metric *m)
{
    series *s = m->first;
    while (s != NULL) {
        series *next = s->next;
        for (size_t i = 0; i < m->nlabels; i++)
            free(s->values[i]);
        free(s);
        s = next;
    }
    for (size_t i = 0; i < m->nlabels; i++)
        free(m->labels[i]);
    free(m->name);
    free(m->help);
    free(m);
}

static pigeon_metric *find_locked(pigeon_metrics *r, const char *name)
{
    for (pigeon_metric *m = r->first; m != NULL; m = m->next) {
        if (strcmp(m->name, name) == 0)
            return m;
    }
    return NULL;
}

/* ---- label sets ---- */

/* Copies src into dst (CLEAN_MAX bytes) with bad bytes as U+FFFD; 0 if src is too long. */
static int clean_value(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n > PIGEON_METRICS_MAX_VALUE)
        return 0;
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = pg_utf8_decode(s + i, n - i, NULL);
        if (len == 0) {
            memcpy(dst + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(dst + o, s + i, len);
            o += len;
            i += len;
        }
    }
    dst[o] = '\0';
    return 1;
}

static void make_key(const pigeon_metric *m, const char *const *values, label_key *key)
{
    int overflow = 0;
    key->n = m->nlabels;
    for (size_t i = 0; i < m->nlabels; i++) {
        const char *v = values != NULL && values[i] != NULL ? values[i] : "";
        if (!clean_value(key->text[i], v))
            overflow = 1;
    }
    if (overflow) {
        for (size_t i = 0; i < m->nlabels; i++)
            memcpy(key->text[i], PIGEON_METRICS_OVERFLOW, sizeof PIGEON_METRICS_OVERFLOW);
    }
}

/* FNV-1a over the values, each followed by a 0xff separator (never in UTF-8). */
static size_t hash_key(const label_key *key)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < key->n; i++) {
        for (const unsigned char *p = (const unsigned char *)key->text[i]; *p; p++)
            h = (h ^ *p) * 16777619u;
        h = (h ^ 0xff) * 16777619u;
    }
    return h % HASH_SIZE;
}

static int key_matches(const series *s, const label_key *key)
{
    for (size_t i = 0; i < key->n; i++) {
        if (strcmp(s->values[i], key->text[i]) != 0)
            return 0;
    }
    return 1;
}

static int is_overflow_key(const label_key *key)
{
    for (size_t i = 0; i < key->n; i++) {
        if (strcmp(key->text[i], PIGEON_METRICS_OVERFLOW) != 0)
            return 0;
    }
    return key->n > 0;
}

/* Finds the series for key (under the lock). With create, makes it, or, beyond the
 * family's bound, redirects key to the overflow set. NULL when absent or out of memory. */
static series *lookup(pigeon_metric *m, label_key *key, int create)
{
    size_t slot = hash_key(key);
    for (series *s = m->table[slot]; s != NULL; s = s->next_hash) {
        if (key_matches(s, key))
            return s;
    }
    if (!create)
        return NULL;
    if (m->nseries >= m->max_series && !is_overflow_key(key)) {
        for (size_t i = 0; i < key->n; i++)
            memcpy(key->text[i], PIGEON_METRICS_OVERFLOW, sizeof PIGEON_METRICS_OVERFLOW);
        return lookup(m, key, create);
    }
    return new_series(m, key, slot);
}

static series *new_series(pigeon_metric *m, const label_key *key, size_t slot)
{
    series *s = calloc(1, sizeof *s + m->nbounds * sizeof s->buckets[0]);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < key->n; i++) {
        s->values[i] = strdup(key->text[i]);
        if (s->values[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(s->values[j]);
            free(s);
            return NULL;
        }
    }
    s->next_hash = m->table[slot];
    m->table[slot] = s;
    if (m->last != NULL)
        m->last->next = s;
    else
        m->first = s;
    m->last = s;
    m->nseries++;
    return s;
}

/* ---- samples ---- */

static pigeon_err update(pigeon_metric *m, metric_kind kind, const char *const *values, double v,
                         int op)
{
    if (m == NULL || m->kind != kind || isnan(v))
        return PIGEON_ERR_INVALID;
    if (kind == KIND_COUNTER && (v < 0 || isinf(v)))
        return PIGEON_ERR_INVALID;
    label_key key;
    make_key(m, values, &key);
    pthread_mutex_lock(&m->registry->lock);
    series *s = lookup(m, &key, 1);
    if (s != NULL && op == OP_OBSERVE) {
        size_t i = 0;
        while (i < m->nbounds && v > m->bounds[i])
            i++;
        if (i < m->nbounds)
            s->buckets[i]++;
        s->count++;
        s->value += v;
    } else if (s != NULL) {
        s->value = op == OP_SET ? v : s->value + v;
    }
    pthread_mutex_unlock(&m->registry->lock);
    return s != NULL ? PIGEON_OK : PIGEON_ERR_NOMEM;
}

pigeon_err pigeon_metrics_counter_add(pigeon_metric *counter, const char *const *values,
                                      double delta)
{
    return update(counter, KIND_COUNTER, values, delta, OP_ADD);
}

pigeon_err pigeon_metrics_gauge_set(pigeon_metric *gauge, const char *const *values, double v)
{
    return update(gauge, KIND_GAUGE, values, v, OP_SET);
}

pigeon_err pigeon_metrics_gauge_add(pigeon_metric *gauge, const char *const *values, double delta)
{
    return update(gauge, KIND_GAUGE, values, delta, OP_ADD);
}

pigeon_err pigeon_metrics_histogram_observe(pigeon_metric *histogram, const char *const *values,
                                            double v)
{
    return update(histogram, KIND_HISTOGRAM, values, v, OP_OBSERVE);
}

pigeon_err pigeon_metrics_value(pigeon_metric *metric, const char *const *values, double *out)
{
    if (metric == NULL || out == NULL)
        return PIGEON_ERR_INVALID;
    label_key key;
    make_key(metric, values, &key);
    pthread_mutex_lock(&metric->registry->lock);
    series *s = lookup(metric, &key, 0);
    if (s != NULL)
        *out = metric->kind == KIND_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&metric->registry->lock);
    return s != NULL ? PIGEON_OK : PIGEON_ERR_NOTFOUND;
}

/* ---- rendering ---- */

pigeon_err pigeon_metrics_render(pigeon_metrics *registry, char **text, size_t *len)
{
    if (registry == NULL || text == NULL)
        return PIGEON_ERR_INVALID;
    *text = NULL;
    pthread_mutex_lock(&registry->lock);
    pigeon_metrics_refresh_fn refresh = registry->refresh;
    void *arg = registry->refresh_arg;
    pthread_mutex_unlock(&registry->lock);
    /* Outside the lock: the hook sets gauges, which take it. */
    if (refresh != NULL)
        refresh(arg, registry);
    pg_buf b;
    pg_buf_init(&b);
    pthread_mutex_lock(&registry->lock);
    for (const pigeon_metric *m = registry->first; m != NULL; m = m->next)
        render_family(&b, m);
    pthread_mutex_unlock(&registry->lock);
    pigeon_err err = b.err;
    size_t n = b.len;
    *text = pg_buf_detach(&b, NULL);
    if (*text == NULL)
        return err != PIGEON_OK ? err : PIGEON_ERR_NOMEM;
    if (len != NULL)
        *len = n;
    return PIGEON_OK;
}

static const char *kind_name(metric_kind kind)
{
    return kind == KIND_COUNTER ? "counter" : kind == KIND_GAUGE ? "gauge" : "histogram";
}

static void render_family(pg_buf *b, const pigeon_metric *m)
{
    pg_buf_printf(b, "# HELP %s ", m->name);
    put_escaped(b, m->help, 0);
    pg_buf_printf(b, "\n# TYPE %s %s\n", m->name, kind_name(m->kind));
    for (const series *s = m->first; s != NULL; s = s->next) {
        if (m->kind != KIND_HISTOGRAM) {
            pg_buf_puts(b, m->name);
            render_labels(b, m, s, NULL);
            pg_buf_putc(b, ' ');
            put_double(b, s->value);
            pg_buf_putc(b, '\n');
            continue;
        }
        uint64_t cumulative = 0;
        char le[40];
        for (size_t i = 0; i <= m->nbounds; i++) {
            if (i < m->nbounds) {
                cumulative += s->buckets[i];
                format_double(le, sizeof le, m->bounds[i]);
            } else {
                cumulative = s->count;
                memcpy(le, "+Inf", 5);
            }
            pg_buf_printf(b, "%s_bucket", m->name);
            render_labels(b, m, s, le);
            pg_buf_printf(b, " %llu\n", (unsigned long long)cumulative);
        }
        pg_buf_printf(b, "%s_sum", m->name);
        render_labels(b, m, s, NULL);
        pg_buf_putc(b, ' ');
        put_double(b, s->value);
        pg_buf_printf(b, "\n%s_count", m->name);
        render_labels(b, m, s, NULL);
        pg_buf_printf(b, " %llu\n", (unsigned long long)s->count);
    }
}

/* {a="x",b="y"} plus le="..." for a bucket; nothing for no labels at all. */
static void render_labels(pg_buf *b, const pigeon_metric *m, const series *s, const char *le)
{
    if (m->nlabels == 0 && le == NULL)
        return;
    pg_buf_putc(b, '{');
    for (size_t i = 0; i < m->nlabels; i++) {
        pg_buf_printf(b, "%s%s=\"", i > 0 ? "," : "", m->labels[i]);
        put_escaped(b, s->values[i], 1);
        pg_buf_putc(b, '"');
    }
    if (le != NULL)
        pg_buf_printf(b, "%sle=\"%s\"", m->nlabels > 0 ? "," : "", le);
    pg_buf_putc(b, '}');
}

/* Exposition format: in label values \, " and newline are escaped; in HELP \ and newline. */
static void put_escaped(pg_buf *b, const char *s, int quotes)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            pg_buf_puts(b, "\\\\");
        else if (*s == '\n')
            pg_buf_puts(b, "\\n");
        else if (*s == '"' && quotes)
            pg_buf_puts(b, "\\\"");
        else
            pg_buf_putc(b, *s);
    }
}

/* The shortest of %.15g..%.17g that reads back exactly; the format's +Inf, -Inf, NaN. A
 * locale's decimal comma (should the program have set one) is turned back into a dot.
 * size is at least 32. */
static void format_double(char *text, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(text, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(text, size, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(text, size, "%.*g", prec, v);
        if (strtod(text, NULL) == v)
            break;
    }
    for (char *p = text; *p != '\0'; p++) {
        if (*p == ',')
            *p = '.';
    }
}

static void put_double(pg_buf *b, double v)
{
    char text[40];
    format_double(text, sizeof text, v);
    pg_buf_puts(b, text);
}
