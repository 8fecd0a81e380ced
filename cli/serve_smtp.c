/*
 * serve_smtp.c - the SMTP submission listener of `pigeon serve` (--smtp-listen, and
 * --smtps-listen for implicit TLS, RFC 8314 3.3): one epoll thread for every SMTP
 * connection, with the dialogue itself in lib/smtpd (pure). This file does the I/O:
 * accepting, reading and writing (plain or TLS through lib/http's TLS sessions), the
 * STARTTLS switch, deadlines, the connection cap, the key checks, and handing each
 * message to the same group committer as the HTTP API (serve_commit.c): the 250 after
 * the final dot is sent only once the committer's transaction is durable, so many
 * connections share one fsync.
 *
 * Keys: AUTH PLAIN or LOGIN with an API key (pgk_...) as the password. The key's
 * account sends the message; MAIL FROM and the From field must be in its domains; its
 * rate counts messages; it needs the send scope. Without AUTH only a loopback client
 * with --smtp-trust-local may send (through --account).
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "http/http_tls.h"
#include "mime/rawmsg.h"
#include "serve.h"
#include "smtpd/smtpd.h"
#include "util/buf.h"

#define READ_CHUNK      16384
#define IN_HIGH_WATER   (256 * 1024) /* stop reading while a message is being stored */
#define MAX_EVENTS      128
#define TICK_MS         500
#define DEFAULT_CONNS   1000
#define DEFAULT_TIMEOUT 60 /* seconds; RFC 5321 4.5.3.2.7 says 5 minutes, we are stricter */

enum { K_LISTEN, K_WAKE, K_CONN };

typedef struct smtp_listener {
    int kind;     /* K_LISTEN */
    int fd;       /* the socket, -1 when not listening */
    int implicit; /* TLS from the first octet */
    unsigned port;
} smtp_listener;

typedef struct smtp_conn smtp_conn;

typedef struct serve_smtp {
    serve_ctx *ctx;          /* the service */
    serve_smtp_opts o;       /* the options */
    smtp_listener lis[2];    /* plain (STARTTLS) and implicit TLS */
    int wake_kind;           /* K_WAKE: the eventfd's tag */
    int wake_fd;             /* eventfd: answers from the committer, or stop */
    int epoll_fd;            /* the loop */
    pg_http_tls_ctx *tls;    /* certificate and key, or NULL */
    pthread_t thread;        /* the loop thread */
    int started;             /* the thread runs */
    int quiesce;             /* stop accepting (atomically read) */
    int stopping;            /* leave the loop (atomically read) */
    pthread_mutex_t lock;    /* guards completed */
    smtp_conn *completed;    /* connections whose message the committer answered */
    smtp_conn *conns;        /* open connections (and closed ones still waiting) */
    unsigned nconns;         /* open connections */
    char hostname[256];      /* our name */
    pigeon_metric *messages; /* pigeon_smtp_messages_total{status} */
} serve_smtp;

struct smtp_conn {
    int kind;                               /* K_CONN */
    serve_smtp *srv;                        /* the listener */
    int fd;                                 /* the socket, -1 once closed */
    pg_http_tls *tls;                       /* the TLS session, or NULL */
    int tls_told;                           /* the session knows the handshake is done */
    int tls_pending;                        /* STARTTLS: begin TLS once the 220 is sent */
    int read_wants_write;                   /* TLS read waits for writability */
    int write_wants_read;                   /* TLS write waits for readability */
    pg_smtpd *sm;                           /* the dialogue */
    pg_buf in;                              /* octets read, not yet consumed */
    int waiting;                            /* a message is with the committer */
    int closing;                            /* close once the output is sent */
    int64_t last_active;                    /* last octet read or written (ms) */
    int64_t unit_start;                     /* first octet of the command or message data
                                               not yet complete (ms), 0 when none */
    uint64_t unit_bytes;                    /* octets of it read so far */
    uint32_t events;                        /* the epoll interest registered */
    char peer[64];                          /* the client's address */
    int loopback;                           /* the client is on 127.0.0.0/8 or ::1 */
    pg_spool_key key;                       /* the authenticated key */
    int has_key;                            /* AUTH succeeded */
    char queue_id[PIGEON_SPOOL_ID_LEN + 1]; /* the stored message's id */
    int done_code;                          /* the committer's answer: SMTP code */
    char done_enh[8];                       /* its enhanced code */
    char done_text[SERVE_DETAIL_MAX + 64];  /* its text */
    smtp_conn *done_next;                   /* srv->completed */
    smtp_conn *prev, *next;                 /* srv->conns */
};

static void *loop(void *arg);
static void conn_close(smtp_conn *c);
static void conn_flush(smtp_conn *c);
static void conn_process(smtp_conn *c);
static void conn_update(smtp_conn *c);
static void conn_readable(smtp_conn *c);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One logfmt line per message or refusal on standard error, as the HTTP side logs. */
static void log_line(const smtp_conn *c, int code, const char *what)
{
    char when[32], line[512], quoted[256];
    size_t i = 0;
    for (; what[i] != '\0' && i + 1 < sizeof quoted; i++)
        quoted[i] = what[i] == '"' || what[i] == '\\' ? '\'' : what[i];
    quoted[i] = '\0';
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int n = snprintf(line, sizeof line, "time=%s smtp=%s status=%d key=%s id=%s what=\"%s\"\n",
                     when, c->peer, code, c->has_key ? c->key.id : "-",
                     c->queue_id[0] ? c->queue_id : "-", quoted);
    if (n > 0)
        fwrite(line, 1, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1, stderr);
}

/* ---- listening ---- */

static int listen_on(smtp_listener *l, const char *addr, int implicit)
{
    char host[128];
    const char *port;
    l->kind = K_LISTEN;
    l->implicit = implicit;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host)
            return -1;
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (colon == NULL || (size_t)(colon - addr) >= sizeof host)
            return -1;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        port = colon + 1;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (port[0] == '\0' || getaddrinfo(host, port, &hints, &ai) != 0)
        return -1;
    int one = 1;
    l->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        goto fail;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6)
        setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(l->fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(l->fd, SOMAXCONN) != 0)
        goto fail;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(l->fd, (struct sockaddr *)&ss, &sl);
    l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(ai);
    return 0;
fail:
    freeaddrinfo(ai);
    return -2;
}

static void peer_of(smtp_conn *c, const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, c->peer, sizeof c->peer);
        c->loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, c->peer, sizeof c->peer);
        c->loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
}

static void accept_all(serve_smtp *srv, smtp_listener *l)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        unsigned cap = srv->o.max_conns ? srv->o.max_conns : DEFAULT_CONNS;
        if (srv->nconns >= cap) {
            /* RFC 5321 3.8: 421 and close; a TLS port cannot say even that. */
            static const char busy[] = "421 4.3.2 Too many connections; try again later\r\n";
            if (!l->implicit && write(fd, busy, sizeof busy - 1) < 0) {
                /* nothing to do: it is closed either way */
            }
            close(fd);
            continue;
        }
        smtp_conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->kind = K_CONN;
        c->srv = srv;
        c->fd = fd;
        pg_buf_init(&c->in);
        peer_of(c, &ss);
        pg_smtpd_opts so = {
            .hostname = srv->hostname,
            .peer_ip = c->peer,
            .max_size = srv->ctx->max_message,
            .max_rcpts = srv->o.max_rcpts,
            .tls_available = srv->tls != NULL,
            .tls_active = l->implicit,
            .auth_plaintext_ok = c->loopback && srv->o.local_plain_auth,
            .auth_required = !(srv->o.trust_local && c->loopback),
        };
        c->sm = pg_smtpd_new(&so);
        if (l->implicit)
            c->tls = pg_http_tls_new(srv->tls, fd);
        if (c->sm == NULL || (l->implicit && c->tls == NULL)) {
            pg_smtpd_free(c->sm);
            pg_http_tls_free(c->tls);
            close(fd);
            free(c);
            continue;
        }
        c->last_active = now_ms();
        c->next = srv->conns;
        if (srv->conns != NULL)
            srv->conns->prev = c;
        srv->conns = c;
        srv->nconns++;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        c->events = EPOLLIN;
        epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
        conn_flush(c); /* the greeting */
    }
}

/* ---- the connection ---- */

static void conn_free(smtp_conn *c)
{
    serve_smtp *srv = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    pg_smtpd_free(c->sm);
    pg_buf_cleanup(&c->in);
    free(c);
}

/* Closes the socket. The structure is freed by reap() at the end of the loop's round
 * (events of the same round may still name it), and not before the committer has
 * answered the message it holds. */
static void conn_close(smtp_conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(c->srv->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
        pg_http_tls_free(c->tls);
        c->tls = NULL;
        close(c->fd);
        c->fd = -1;
        c->srv->nconns--;
    }
}

static void reap(serve_smtp *srv)
{
    for (smtp_conn *c = srv->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->fd < 0 && !c->waiting)
            conn_free(c);
    }
}

static void conn_update(smtp_conn *c)
{
    size_t pending = 0;
    pg_smtpd_out(c->sm, &pending);
    uint32_t want = 0;
    /* Backpressure: a client that does not read its replies is not read either. */
    if (!c->closing && (!c->waiting || c->in.len < IN_HIGH_WATER) && pending < IN_HIGH_WATER)
        want |= EPOLLIN;
    if (pending > 0 || c->read_wants_write)
        want |= EPOLLOUT;
    if (c->write_wants_read)
        want |= EPOLLIN;
    if (want != c->events) {
        struct epoll_event ev = {.events = want, .data.ptr = c};
        epoll_ctl(c->srv->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
        c->events = want;
    }
}

/* Writes what the dialogue has to say. Closes on error or when done. */
static void conn_flush(smtp_conn *c)
{
    size_t len = 0;
    const char *out = pg_smtpd_out(c->sm, &len);
    c->write_wants_read = 0;
    while (len > 0) {
        ssize_t n;
        int ww = 0;
        if (c->tls != NULL) {
            n = pg_http_tls_write(c->tls, out, len, &ww);
            if (n == PG_HTTP_TLS_AGAIN) {
                c->write_wants_read = !ww;
                break;
            }
        } else {
            n = send(c->fd, out, len, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
        }
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->last_active = now_ms();
        pg_smtpd_out_consume(c->sm, (size_t)n);
        out = pg_smtpd_out(c->sm, &len);
    }
    if (len == 0 && c->closing) {
        conn_close(c);
        return;
    }
    if (len == 0 && c->tls_pending) {
        /* RFC 3207 4: the 220 went out in the clear; everything after is TLS. */
        c->tls_pending = 0;
        c->tls = pg_http_tls_new(c->srv->tls, c->fd);
        if (c->tls == NULL) {
            conn_close(c);
            return;
        }
    }
    conn_update(c);
}

/* AUTH: the password is an API key. */
static void on_auth(smtp_conn *c)
{
    pg_spool_key key;
    if (serve_key_lookup(c->srv->ctx, pg_smtpd_auth_secret(c->sm), &key) != 0) {
        pg_smtpd_decide(c->sm, 535, "5.7.8", "Error: authentication failed");
        log_line(c, 535, "auth failed");
        return;
    }
    c->key = key;
    c->has_key = 1;
    pg_smtpd_set_auth_name(c->sm, key.id);
    pg_smtpd_decide(c->sm, 235, "2.7.0", "Authentication successful");
}

/* The domain of a path ("" for none). */
static const char *domain_of(const char *path)
{
    const char *at = strrchr(path, '@');
    return at ? at + 1 : "";
}

/* MAIL FROM: the key's scope, domains and rate, as the HTTP API checks them. */
static void on_mail(smtp_conn *c)
{
    serve_ctx *ctx = c->srv->ctx;
    const char *from = pg_smtpd_mail_from(c->sm);
    char why[512];
    if (!c->has_key && ctx->account == NULL) {
        pg_smtpd_decide(c->sm, 451, "4.3.5", "Error: no account to send through (--account)");
        return;
    }
    if (!c->has_key) {
        pg_smtpd_decide(c->sm, 250, "2.1.0", "Ok");
        return;
    }
    if (!serve_scope_has(&c->key, "send")) {
        pg_smtpd_decide(c->sm, 550, "5.7.1", "Error: this key lacks the send scope");
        return;
    }
    if (c->key.domains[0] != '\0' &&
        (from[0] == '\0' || !serve_domain_allowed(&c->key, domain_of(from)))) {
        snprintf(why, sizeof why,
                 "Error: this key may not send from \"%.60s\" (its From domains: %.200s)",
                 domain_of(from), c->key.domains);
        pg_smtpd_decide(c->sm, 550, "5.7.1", why);
        log_line(c, 550, "sender domain refused");
        return;
    }
    int taken = serve_key_take(ctx, c->key.id);
    if (taken == -2) {
        pg_smtpd_decide(c->sm, 550, "5.7.1", "Error: this key was revoked");
        return;
    }
    if (taken == -1) {
        snprintf(why, sizeof why, "Error: over this key's rate of %g messages a second; slow down",
                 c->key.rate);
        pg_smtpd_decide(c->sm, 450, "4.7.1", why);
        log_line(c, 450, "over rate");
        return;
    }
    pg_smtpd_decide(c->sm, 250, "2.1.0", "Ok");
}

/* The message's From field domain (key check) and Message-ID (the spool keeps it). 0, or
 * -1 after refusing the message. */
static int check_header(smtp_conn *c, const char *data, size_t len, serve_item *item)
{
    pg_rawmsg m;
    pigeon_mailbox from;
    char why[512];
    memset(&m, 0, sizeof m);
    int restricted = c->has_key && c->key.domains[0] != '\0';
    if (pg_rawmsg_parse(&m, data, len, NULL, 0) != PIGEON_OK) {
        /* Kept as sent (Postfix takes such messages too), unless a key's From domains
         * must be checked in a header section that cannot be read. */
        if (!restricted)
            return 0;
        pg_smtpd_decide(c->sm, 554, "5.6.0", "Error: the header section does not parse");
        return -1;
    }
    const pg_rawmsg_field *mid = pg_rawmsg_find(&m, "Message-ID", 0);
    if (mid != NULL && mid->value[0] == '<' && strlen(mid->value) < 250 &&
        strchr(mid->value, ' ') == NULL)
        item->message_id = strdup(mid->value);
    int ok = 1;
    if (restricted) {
        memset(&from, 0, sizeof from);
        ok = pg_rawmsg_from(&m, &from, NULL, 0) == PIGEON_OK &&
             (serve_domain_allowed(&c->key, from.domain) ||
              serve_domain_allowed(&c->key, from.domain_ascii));
        snprintf(why, sizeof why,
                 "Error: this key may not send with From: in \"%.60s\" (its From "
                 "domains: %.200s)",
                 ok || from.domain == NULL ? "(none)" : from.domain, c->key.domains);
        pigeon_mailbox_cleanup(&from);
    }
    pg_rawmsg_cleanup(&m);
    if (!ok) {
        pg_smtpd_decide(c->sm, 550, "5.7.1", why);
        log_line(c, 550, "From domain refused");
        return -1;
    }
    return 0;
}

static void job_done(serve_ctx *ctx, serve_job *job);

/* A complete message: to the committer; the 250 waits for its durable commit. */
static void on_message(smtp_conn *c)
{
    serve_ctx *ctx = c->srv->ctx;
    serve_job *job = calloc(1, sizeof *job);
    serve_item *it = job ? calloc(1, sizeof *it) : NULL;
    size_t n = pg_smtpd_rcpt_count(c->sm);
    if (it == NULL || (it->rcpts = calloc(n, sizeof *it->rcpts)) == NULL)
        goto nomem;
    job->kind = SERVE_JOB_STORE;
    job->items = it;
    job->nitems = 1;
    job->done = job_done;
    job->done_arg = c;
    job->start_ns = serve_now_ns();
    if (c->has_key)
        memcpy(job->key_id, c->key.id, sizeof job->key_id);
    it->data = pg_smtpd_message_take(c->sm, &it->len);
    it->account = strdup(c->has_key ? c->key.account : ctx->account);
    it->mail_from = strdup(pg_smtpd_mail_from(c->sm));
    for (size_t i = 0; i < n; i++) {
        if ((it->rcpts[i] = strdup(pg_smtpd_rcpt(c->sm, i))) == NULL)
            goto nomem;
        it->nrcpts++;
    }
    if (it->data == NULL || it->account == NULL || it->mail_from == NULL)
        goto nomem;
    if (check_header(c, it->data, it->len, it) != 0) {
        serve_job_free(job);
        return;
    }
    c->waiting = 1;
    serve_committer_push(ctx, job);
    return;
nomem:
    serve_job_free(job);
    pg_smtpd_decide(c->sm, 451, "4.3.0", "Error: out of memory; try again");
}

/* On the committer thread: hands the answer to the loop. */
static void job_done(serve_ctx *ctx, serve_job *job)
{
    smtp_conn *c = job->done_arg;
    serve_smtp *srv = ctx->smtp;
    serve_item *it = &job->items[0];
    switch (it->problem.status) {
    case 0:
        c->done_code = 250;
        snprintf(c->done_enh, sizeof c->done_enh, "2.0.0");
        snprintf(c->done_text, sizeof c->done_text, "Ok: queued as %s", it->id);
        memcpy(c->queue_id, it->id, sizeof c->queue_id);
        break;
    case 400:
        c->done_code = 554;
        snprintf(c->done_enh, sizeof c->done_enh, "5.6.0");
        snprintf(c->done_text, sizeof c->done_text, "Error: %s", it->problem.detail);
        break;
    default: /* 503 and anything else: the spool could not take it now */
        c->done_code = 451;
        snprintf(c->done_enh, sizeof c->done_enh, "4.3.0");
        snprintf(c->done_text, sizeof c->done_text, "Error: %s; try again later",
                 it->problem.detail);
        break;
    }
    pthread_mutex_lock(&srv->lock);
    c->done_next = srv->completed;
    srv->completed = c;
    pthread_mutex_unlock(&srv->lock);
    uint64_t one = 1;
    if (write(srv->wake_fd, &one, sizeof one) < 0) {
        /* the counter is already nonzero: the loop will look */
    }
}

static void drain_completions(serve_smtp *srv)
{
    uint64_t v;
    if (read(srv->wake_fd, &v, sizeof v) < 0) {
        /* nothing pending */
    }
    pthread_mutex_lock(&srv->lock);
    smtp_conn *list = srv->completed;
    srv->completed = NULL;
    pthread_mutex_unlock(&srv->lock);
    while (list != NULL) {
        smtp_conn *c = list;
        list = c->done_next;
        c->waiting = 0;
        char code[8];
        snprintf(code, sizeof code, "%d", c->done_code);
        const char *labels[1] = {code};
        pigeon_metrics_counter_add(srv->messages, labels, 1);
        log_line(c, c->done_code, c->done_code == 250 ? "queued" : c->done_text);
        c->queue_id[0] = '\0';
        if (c->fd < 0) /* the client went away meanwhile: reap() frees it */
            continue;
        pg_smtpd_decide(c->sm, c->done_code, c->done_enh, c->done_text);
        conn_process(c);
        /* Decrypted octets TLS already holds raise no epoll event: read them now. */
        if (c->fd >= 0 && !c->waiting && c->tls != NULL && pg_http_tls_pending(c->tls) > 0)
            conn_readable(c);
    }
}

/* Runs the dialogue over what was read, then writes its replies. */
static void conn_process(smtp_conn *c)
{
    while (!c->waiting && !c->closing && !c->tls_pending) {
        size_t used = 0;
        pg_smtpd_event ev =
            pg_smtpd_feed(c->sm, c->in.data ? c->in.data : "", c->in.len, &used, time(NULL));
        pg_buf_consume(&c->in, used);
        if (ev == PG_SMTPD_NEED_MORE || ev == PG_SMTPD_BUSY)
            break;
        switch (ev) {
        case PG_SMTPD_AUTH:
            on_auth(c);
            break;
        case PG_SMTPD_MAIL:
            on_mail(c);
            break;
        case PG_SMTPD_MESSAGE:
            on_message(c);
            break;
        case PG_SMTPD_STARTTLS:
            /* RFC 3207 4.2 (and CVE-2011-0411): what was pipelined after STARTTLS came in
             * the clear and is thrown away, never run inside the TLS session. */
            pg_buf_reset(&c->in);
            c->tls_pending = 1;
            break;
        default:
            c->closing = 1;
            break;
        }
    }
    conn_flush(c);
}

/* ---- deadlines beyond the idle timeout: a client that drips one octet at a time is never
 * idle, so each command must be complete within the timeout of its first octet (RFC 5321
 * 4.5.3.2 bounds each command), and message data (DATA, BDAT) must keep an average of
 * 1 KiB/s after that first timeout: a 10 MB message over a slow link passes, a drip does
 * not. Neither ever stores part of a message (the dialogue only hands over whole ones). */

/* Whether a command line or a message's data is under way. */
static int mid_unit(const smtp_conn *c)
{
    const char *st = pg_smtpd_state_name(c->sm);
    return c->in.len > 0 || strcmp(st, "data") == 0 || strcmp(st, "bdat") == 0;
}

/* Counts n octets just read (not yet appended) towards the current unit, starting one if
 * none is open. */
static void unit_track(smtp_conn *c, size_t n)
{
    if (c->unit_start == 0 || !mid_unit(c)) {
        c->unit_start = c->last_active;
        c->unit_bytes = 0;
    }
    c->unit_bytes += n;
}

static int unit_overdue(const smtp_conn *c, int64_t now, int64_t limit)
{
    if (c->unit_start == 0 || !mid_unit(c))
        return 0; /* none open (a stale start of a finished one counts for nothing) */
    const char *st = pg_smtpd_state_name(c->sm);
    int data = strcmp(st, "data") == 0 || strcmp(st, "bdat") == 0;
    int64_t allowed = limit + (data ? (int64_t)(c->unit_bytes * 1000 / 1024) : 0);
    return now - c->unit_start > allowed;
}

static void conn_readable(smtp_conn *c)
{
    char buf[READ_CHUNK];
    for (int rounds = 0;
         c->fd >= 0 && (rounds < 8 || (c->tls != NULL && pg_http_tls_pending(c->tls) > 0));
         rounds++) {
        ssize_t n;
        int ww = 0;
        c->read_wants_write = 0;
        if (c->tls != NULL) {
            n = pg_http_tls_read(c->tls, buf, sizeof buf, &ww);
            if (n == PG_HTTP_TLS_AGAIN) {
                c->read_wants_write = ww;
                break;
            }
            if (n > 0 && !c->tls_told) {
                char desc[128];
                pg_http_tls_describe(c->tls, desc, sizeof desc);
                pg_smtpd_tls_started(c->sm, desc);
                c->tls_told = 1;
            }
        } else {
            n = recv(c->fd, buf, sizeof buf, 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
        }
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->last_active = now_ms();
        if (c->tls_pending || c->closing)
            continue; /* after STARTTLS's 220 and before TLS: never acted on */
        unit_track(c, (size_t)n);
        pg_buf_append(&c->in, buf, (size_t)n);
        if (c->in.err != PIGEON_OK) {
            conn_close(c);
            return;
        }
        conn_process(c);
        if (c->fd < 0 || c->waiting)
            return;
    }
    if (c->fd >= 0) {
        if (c->write_wants_read)
            conn_flush(c);
        else
            conn_update(c);
    }
}

static void sweep(serve_smtp *srv)
{
    int64_t now = now_ms(),
            limit = (int64_t)(srv->o.timeout_s ? srv->o.timeout_s : DEFAULT_TIMEOUT) * 1000;
    for (smtp_conn *c = srv->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->fd < 0 || c->waiting ||
            (now - c->last_active < limit && !unit_overdue(c, now, limit)))
            continue;
        /* RFC 5321 4.5.3.2.7 and 3.8: 421 on timeout, then close. */
        static const char bye[] = "421 4.4.2 Error: timeout exceeded\r\n";
        int ww;
        if (c->tls != NULL)
            pg_http_tls_write(c->tls, bye, sizeof bye - 1, &ww);
        else if (send(c->fd, bye, sizeof bye - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            /* closing anyway */
        }
        conn_close(c);
    }
}

static void *loop(void *arg)
{
    serve_smtp *srv = arg;
    struct epoll_event evs[MAX_EVENTS];
    int64_t next_sweep = now_ms() + TICK_MS;
    while (!__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE)) {
        int n = epoll_wait(srv->epoll_fd, evs, MAX_EVENTS, TICK_MS);
        for (int i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;
            if (kind == K_WAKE) {
                drain_completions(srv);
            } else if (kind == K_LISTEN) {
                accept_all(srv, evs[i].data.ptr);
            } else {
                smtp_conn *c = evs[i].data.ptr;
                if (c->fd < 0)
                    continue;
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    conn_readable(c);
                if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
                    conn_flush(c);
            }
        }
        if (__atomic_load_n(&srv->quiesce, __ATOMIC_ACQUIRE)) {
            for (int k = 0; k < 2; k++) {
                if (srv->lis[k].fd >= 0) {
                    epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, srv->lis[k].fd, NULL);
                    close(srv->lis[k].fd);
                    srv->lis[k].fd = -1;
                }
            }
        }
        if (now_ms() >= next_sweep) {
            sweep(srv);
            next_sweep = now_ms() + TICK_MS;
        }
        reap(srv);
    }
    /* The committer has stopped: its last answers are queued. Say them, then close. */
    drain_completions(srv);
    for (smtp_conn *c = srv->conns; c != NULL; c = c->next) {
        c->waiting = 0;
        c->closing = 1;
        if (c->fd >= 0)
            conn_flush(c);
        conn_close(c);
    }
    reap(srv);
    return NULL;
}

/* ---- start and stop ---- */

int serve_smtp_start(serve_ctx *ctx, const serve_smtp_opts *o)
{
    static const char *const labels[1] = {"status"};
    char err[512];
    serve_smtp *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return EX_OSERR;
    ctx->smtp = srv;
    srv->ctx = ctx;
    srv->o = *o;
    srv->lis[0].fd = srv->lis[1].fd = -1;
    srv->wake_kind = K_WAKE;
    pthread_mutex_init(&srv->lock, NULL);
    if (gethostname(srv->hostname, sizeof srv->hostname - 1) != 0 || srv->hostname[0] == '\0')
        snprintf(srv->hostname, sizeof srv->hostname, "localhost");
    if (o->hostname != NULL)
        snprintf(srv->hostname, sizeof srv->hostname, "%s", o->hostname);
    pigeon_metrics_add_counter(ctx->metrics, "pigeon_smtp_messages_total",
                               "Messages answered after DATA or BDAT LAST, by SMTP reply code", 1,
                               labels, &srv->messages);
    if (o->tls_cert != NULL) {
        srv->tls = pg_http_tls_ctx_new(o->tls_cert, o->tls_key, err, sizeof err);
        if (srv->tls == NULL) {
            cli_error("serve: %s", err);
            return EX_CONFIG;
        }
    } else if (o->tls_listen != NULL) {
        cli_error("serve: --smtps-listen needs --tls-cert and --tls-key");
        return EX_USAGE;
    }
    const char *addrs[2] = {o->listen, o->tls_listen};
    for (int k = 0; k < 2; k++) {
        if (addrs[k] == NULL)
            continue;
        int r = listen_on(&srv->lis[k], addrs[k], k == 1);
        if (r != 0) {
            if (r == -1)
                cli_error("serve: not a numeric ADDRESS:PORT: %s", addrs[k]);
            else
                cli_error("serve: cannot listen on %s: %s", addrs[k], strerror(errno));
            return r == -1 ? EX_USAGE : EX_UNAVAILABLE;
        }
    }
    srv->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    srv->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->epoll_fd < 0 || srv->wake_fd < 0)
        return EX_OSERR;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->wake_kind};
    epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->wake_fd, &ev);
    for (int k = 0; k < 2; k++) {
        if (srv->lis[k].fd < 0)
            continue;
        ev.data.ptr = &srv->lis[k];
        epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->lis[k].fd, &ev);
    }
    if (pthread_create(&srv->thread, NULL, loop, srv) != 0)
        return EX_OSERR;
    srv->started = 1;
    return 0;
}

unsigned serve_smtp_port(const serve_ctx *ctx, int implicit_tls)
{
    return ctx->smtp != NULL ? ctx->smtp->lis[implicit_tls ? 1 : 0].port : 0;
}

void serve_smtp_quiesce(serve_ctx *ctx)
{
    if (ctx->smtp != NULL)
        __atomic_store_n(&ctx->smtp->quiesce, 1, __ATOMIC_RELEASE);
}

void serve_smtp_stop(serve_ctx *ctx)
{
    serve_smtp *srv = ctx->smtp;
    if (srv == NULL)
        return;
    if (srv->started) {
        __atomic_store_n(&srv->stopping, 1, __ATOMIC_RELEASE);
        uint64_t one = 1;
        if (write(srv->wake_fd, &one, sizeof one) < 0) {
            /* the loop wakes on its tick anyway */
        }
        pthread_join(srv->thread, NULL);
    }
    for (int k = 0; k < 2; k++) {
        if (srv->lis[k].fd >= 0)
            close(srv->lis[k].fd);
    }
    if (srv->epoll_fd > 0)
        close(srv->epoll_fd);
    if (srv->wake_fd > 0)
        close(srv->wake_fd);
    pg_http_tls_ctx_free(srv->tls);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
    ctx->smtp = NULL;
}
