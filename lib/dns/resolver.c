/*
 * resolver.c - the asynchronous DNS resolver on c-ares.
 *
 * Queries are submitted with a caller-owned answer and completed by pigeon_dns_run, which
 * drives c-ares with poll(2) until nothing is pending: many DNSBL lookups go out at once,
 * while the SPF evaluator submits and runs one query at a time. Every outcome is kept
 * apart (RFC 1035 4.1.1 RCODEs, plus NODATA, RFC 2308 2.2), because a diagnosis that
 * reads a SERVFAIL or a timeout as "no record" gives the wrong fix.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/dns.h"

#include "lazy/lazy.h"

#ifdef PIGEON_HAVE_CARES
#include <ares.h>

struct pigeon_dns {
    ares_channel udp; /* queries go out here first; truncated answers come back to us */
    ares_channel tcp; /* the retry of a truncated answer (RFC 7766 5), over TCP only */
    int pending;      /* queries submitted and not completed */
};

/* One query in flight: where its answer goes. */
struct query {
    pigeon_dns *r;          /* the resolver */
    pigeon_dns_answer *ans; /* the caller's answer */
    pigeon_dns_type type;   /* the type asked */
    int over_tcp;           /* the query is the TCP retry of a truncated answer */
    char name[];            /* the name asked */
};

static pigeon_dns_status status_of(int ares_status);
static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);
static pigeon_dns_status decode(pigeon_dns_type type, const unsigned char *abuf, int alen,
                                pigeon_dns_answer *ans);

static pigeon_err set_server(ares_channel ch, const char *server)
{
    char csv[128];
    /* Room for the brackets an IPv6 address may get below. */
    if (strlen(server) >= sizeof csv - 2)
        return PIGEON_ERR_INVALID;
    /* A bare IPv6 address has colons but no port: bracket it for the CSV syntax. */
    const char *first = strchr(server, ':');
    if (server[0] != '[' && first != NULL && strchr(first + 1, ':') != NULL)
        snprintf(csv, sizeof csv, "[%s]", server);
    else
        snprintf(csv, sizeof csv, "%s", server);
    return ares_set_servers_ports_csv(ch, csv) == ARES_SUCCESS ? PIGEON_OK : PIGEON_ERR_INVALID;
}

/* Opens one channel with the options, plus flags. */
static pigeon_err open_channel(ares_channel *ch, const pigeon_dns_opts *o, int flags)
{
    struct ares_options ao;
    memset(&ao, 0, sizeof ao);
    ao.timeout = o->timeout_ms > 0 ? o->timeout_ms : 2000;
    ao.tries = o->tries > 0 ? o->tries : 2;
    /* No search list: every name we ask is fully qualified. NOCHECKRESP: a SERVFAIL or
     * REFUSED answer is reported as such rather than retried into a generic error. */
    ao.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOCHECKRESP | flags;
    if (ares_init_options(ch, &ao, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS) !=
        ARES_SUCCESS)
        return PIGEON_ERR_NETWORK;
    if (o->server != NULL && o->server[0] != '\0')
        return set_server(*ch, o->server);
    return PIGEON_OK;
}

pigeon_err pigeon_dns_new(const pigeon_dns_opts *opts, pigeon_dns **out)
{
    static int library_ready;
    pigeon_dns_opts o = {0};
    if (out == NULL)
        return PIGEON_ERR_INVALID;
    *out = NULL;
    if (opts != NULL)
        o = *opts;
    /* c-ares is loaded by the first resolver (lib/lazy/lazy.h). */
    if (pg_lazy_cares(NULL, 0) != PIGEON_OK)
        return PIGEON_ERR_UNSUPPORTED;
    if (!library_ready) {
        if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
            return PIGEON_ERR_NETWORK;
        library_ready = 1;
    }
    pigeon_dns *r = calloc(1, sizeof *r);
    if (r == NULL)
        return PIGEON_ERR_NOMEM;
    /* IGNTC on the first channel: c-ares would retry over TCP by itself, but then a TCP
     * failure could not be told from other errors; we retry on the second channel. */
    pigeon_err err = open_channel(&r->udp, &o, ARES_FLAG_IGNTC);
    if (err == PIGEON_OK)
        err = open_channel(&r->tcp, &o, ARES_FLAG_USEVC);
    if (err != PIGEON_OK) {
        pigeon_dns_free(r);
        return err;
    }
    *out = r;
    return PIGEON_OK;
}

void pigeon_dns_free(pigeon_dns *r)
{
    if (r == NULL)
        return;
    /* Completes pending queries with ARES_EDESTRUCTION. */
    if (r->udp != NULL)
        ares_destroy(r->udp);
    if (r->tcp != NULL)
        ares_destroy(r->tcp);
    free(r);
}

pigeon_err pigeon_dns_submit(pigeon_dns *r, const char *name, pigeon_dns_type type,
                             pigeon_dns_answer *ans)
{
    if (r == NULL || name == NULL || ans == NULL)
        return PIGEON_ERR_INVALID;
    memset(ans, 0, sizeof *ans);
    size_t n = strlen(name);
    struct query *q = calloc(1, sizeof *q + n + 1);
    if (q == NULL)
        return PIGEON_ERR_NOMEM;
    q->r = r;
    q->ans = ans;
    q->type = type;
    memcpy(q->name, name, n + 1);
    r->pending++;
    ares_query(r->udp, name, 1 /* C_IN */, (int)type, on_answer, q);
    return PIGEON_OK;
}

/* Adds a channel's sockets to pfd from index n; returns the new count. */
static nfds_t channel_fds(ares_channel ch, struct pollfd *pfd, nfds_t n)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    /* The bits are tested unsigned: c-ares's macros shift a signed 1 into the sign bit. */
    unsigned bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
        short ev = 0;
        if ((bits >> i) & 1u)
            ev |= POLLIN;
        if ((bits >> (i + ARES_GETSOCK_MAXNUM)) & 1u)
            ev |= POLLOUT;
        if (ev == 0)
            continue;
        pfd[n].fd = socks[i];
        pfd[n].events = ev;
        pfd[n].revents = 0;
        n++;
    }
    return n;
}

/* Lets a channel read, write, and handle its timeouts. */
static void channel_process(ares_channel ch, const struct pollfd *pfd, nfds_t from, nfds_t to)
{
    ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    for (nfds_t i = from; i < to; i++) {
        ares_socket_t rd =
            (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd : ARES_SOCKET_BAD;
        ares_socket_t wr = (pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD;
        if (rd != ARES_SOCKET_BAD || wr != ARES_SOCKET_BAD)
            ares_process_fd(ch, rd, wr);
    }
}

void pigeon_dns_run(pigeon_dns *r)
{
    while (r != NULL && r->pending > 0) {
        struct pollfd pfd[2 * ARES_GETSOCK_MAXNUM];
        nfds_t nudp = channel_fds(r->udp, pfd, 0);
        nfds_t n = channel_fds(r->tcp, pfd, nudp);
        struct timeval tv, tv2, *tvp = ares_timeout(r->udp, NULL, &tv);
        tvp = ares_timeout(r->tcp, tvp, &tv2);
        int ms = tvp == NULL ? 1000 : (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000);
        if (poll(pfd, n, ms) < 0)
            continue;
        channel_process(r->udp, pfd, 0, nudp);
        channel_process(r->tcp, pfd, nudp, n);
    }
}

pigeon_dns_status pigeon_dns_query(pigeon_dns *r, const char *name, pigeon_dns_type type,
                                   pigeon_dns_answer *ans)
{
    if (pigeon_dns_submit(r, name, type, ans) != PIGEON_OK) {
        if (ans != NULL) {
            ans->status = PIGEON_DNS_ERROR;
            ans->done = 1;
        }
        return PIGEON_DNS_ERROR;
    }
    pigeon_dns_run(r);
    return ans->status;
}

static pigeon_dns_status status_of(int ares_status)
{
    switch (ares_status) {
    case ARES_SUCCESS:
        return PIGEON_DNS_OK;
    case ARES_ENOTFOUND:
        return PIGEON_DNS_NXDOMAIN;
    case ARES_ENODATA:
        return PIGEON_DNS_NODATA;
    case ARES_ESERVFAIL:
        return PIGEON_DNS_SERVFAIL;
    case ARES_ETIMEOUT:
        return PIGEON_DNS_TIMEOUT;
    case ARES_EREFUSED:
        return PIGEON_DNS_REFUSED;
    default:
        return PIGEON_DNS_ERROR;
    }
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct query *q = arg;
    pigeon_dns_answer *ans = q->ans;
    (void)timeouts;
    /* RFC 1035 4.1.1: TC set means the answer did not fit; ask again over TCP (RFC 7766). */
    int truncated = abuf != NULL && alen >= 4 && (abuf[2] & 0x02) != 0;
    if (truncated && !q->over_tcp && status != ARES_EDESTRUCTION) {
        q->over_tcp = 1;
        ares_query(q->r->tcp, q->name, 1 /* C_IN */, (int)q->type, on_answer, q);
        return;
    }
    ans->status = status_of(status);
    if (truncated || (q->over_tcp && ans->status == PIGEON_DNS_ERROR) ||
        (q->over_tcp && ans->status == PIGEON_DNS_TIMEOUT))
        ans->status = PIGEON_DNS_TRUNCATED;
    else if (ans->status == PIGEON_DNS_OK)
        ans->status = decode(q->type, abuf, alen, ans);
    ans->done = 1;
    q->r->pending--;
    free(q);
}

/* Appends one record (text copied) to the answer. Returns 0 or -1. */
static int add_record(pigeon_dns_answer *ans, const char *text, size_t len, unsigned pref)
{
    pigeon_dns_record *grown = realloc(ans->records, (ans->count + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    ans->records = grown;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, text, len);
    copy[len] = '\0';
    grown[ans->count].text = copy;
    grown[ans->count].len = len;
    grown[ans->count].pref = pref;
    ans->count++;
    return 0;
}

/* RFC 7208 3.3: the strings of one TXT record are concatenated without separators. */
static int decode_txt(const unsigned char *abuf, int alen, pigeon_dns_answer *ans)
{
    struct ares_txt_ext *txt = NULL;
    if (ares_parse_txt_reply_ext(abuf, alen, &txt) != ARES_SUCCESS)
        return -1;
    int rc = 0;
    char *joined = NULL;
    size_t jlen = 0;
    for (struct ares_txt_ext *t = txt; t != NULL && rc == 0; t = t->next) {
        if (t->record_start && joined != NULL) {
            rc = add_record(ans, joined, jlen, 0);
            free(joined);
            joined = NULL;
            jlen = 0;
        }
        char *grown = realloc(joined, jlen + t->length + 1);
        if (grown == NULL) {
            rc = -1;
            break;
        }
        joined = grown;
        memcpy(joined + jlen, t->txt, t->length);
        jlen += t->length;
    }
    if (rc == 0 && joined != NULL)
        rc = add_record(ans, joined, jlen, 0);
    free(joined);
    ares_free_data(txt);
    return rc;
}

static int decode_mx(const unsigned char *abuf, int alen, pigeon_dns_answer *ans)
{
    struct ares_mx_reply *mx = NULL;
    if (ares_parse_mx_reply(abuf, alen, &mx) != ARES_SUCCESS)
        return -1;
    int rc = 0;
    for (struct ares_mx_reply *m = mx; m != NULL && rc == 0; m = m->next) {
        /* RFC 7505 3: a null MX is the root "."; c-ares gives it as "" or ".". */
        const char *host = strcmp(m->host, ".") == 0 ? "" : m->host;
        rc = add_record(ans, host, strlen(host), m->priority);
    }
    ares_free_data(mx);
    /* Sorted by preference (insertion sort: answers are small). */
    for (size_t i = 1; i < ans->count; i++) {
        for (size_t j = i; j > 0 && ans->records[j].pref < ans->records[j - 1].pref; j--) {
            pigeon_dns_record t = ans->records[j];
            ans->records[j] = ans->records[j - 1];
            ans->records[j - 1] = t;
        }
    }
    return rc;
}

static int decode_addr(pigeon_dns_type type, const unsigned char *abuf, int alen,
                       pigeon_dns_answer *ans)
{
    struct hostent *he = NULL;
    int st = type == PIGEON_DNS_A ? ares_parse_a_reply(abuf, alen, &he, NULL, NULL)
                                  : ares_parse_aaaa_reply(abuf, alen, &he, NULL, NULL);
    if (st != ARES_SUCCESS)
        return -1;
    int rc = 0;
    for (char **a = he->h_addr_list; *a != NULL && rc == 0; a++) {
        char text[INET6_ADDRSTRLEN];
        if (inet_ntop(he->h_addrtype, *a, text, sizeof text) == NULL)
            continue;
        rc = add_record(ans, text, strlen(text), 0);
    }
    ares_free_hostent(he);
    return rc;
}

static int decode_ptr(const unsigned char *abuf, int alen, pigeon_dns_answer *ans)
{
    struct hostent *he = NULL;
    unsigned char dummy[4] = {0};
    if (ares_parse_ptr_reply(abuf, alen, dummy, sizeof dummy, 2 /* AF_INET */, &he) != ARES_SUCCESS)
        return -1;
    int rc = add_record(ans, he->h_name, strlen(he->h_name), 0);
    for (char **n = he->h_aliases; n != NULL && *n != NULL && rc == 0; n++)
        rc = add_record(ans, *n, strlen(*n), 0);
    ares_free_hostent(he);
    return rc;
}

static pigeon_dns_status decode(pigeon_dns_type type, const unsigned char *abuf, int alen,
                                pigeon_dns_answer *ans)
{
    int rc;
    switch (type) {
    case PIGEON_DNS_TXT:
        rc = decode_txt(abuf, alen, ans);
        break;
    case PIGEON_DNS_MX:
        rc = decode_mx(abuf, alen, ans);
        break;
    case PIGEON_DNS_A:
    case PIGEON_DNS_AAAA:
        rc = decode_addr(type, abuf, alen, ans);
        break;
    case PIGEON_DNS_PTR:
        rc = decode_ptr(abuf, alen, ans);
        break;
    default:
        rc = -1;
    }
    if (rc != 0)
        return PIGEON_DNS_ERROR;
    return ans->count > 0 ? PIGEON_DNS_OK : PIGEON_DNS_NODATA;
}

#else /* no c-ares in this build */

pigeon_err pigeon_dns_new(const pigeon_dns_opts *opts, pigeon_dns **out)
{
    (void)opts;
    if (out != NULL)
        *out = NULL;
    return PIGEON_ERR_UNSUPPORTED;
}

void pigeon_dns_free(pigeon_dns *r)
{
    (void)r;
}

pigeon_err pigeon_dns_submit(pigeon_dns *r, const char *name, pigeon_dns_type type,
                             pigeon_dns_answer *ans)
{
    (void)r;
    (void)name;
    (void)type;
    if (ans != NULL) {
        memset(ans, 0, sizeof *ans);
        ans->status = PIGEON_DNS_ERROR;
        ans->done = 1;
    }
    return PIGEON_ERR_UNSUPPORTED;
}

void pigeon_dns_run(pigeon_dns *r)
{
    (void)r;
}

pigeon_dns_status pigeon_dns_query(pigeon_dns *r, const char *name, pigeon_dns_type type,
                                   pigeon_dns_answer *ans)
{
    pigeon_dns_submit(r, name, type, ans);
    return PIGEON_DNS_ERROR;
}

#endif

void pigeon_dns_answer_cleanup(pigeon_dns_answer *ans)
{
    if (ans == NULL)
        return;
    for (size_t i = 0; i < ans->count; i++)
        free(ans->records[i].text);
    free(ans->records);
    memset(ans, 0, sizeof *ans);
}

const char *pigeon_dns_status_name(pigeon_dns_status st)
{
    static const char *const names[] = {"NOERROR", "NXDOMAIN",  "NODATA",  "SERVFAIL",
                                        "timeout", "truncated", "REFUSED", "error"};
    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "error";
}

int pigeon_dns_reverse_name(const char *ip, const char *zone, char *out, size_t outlen)
{
    unsigned char a[16];
    size_t used = 0;
    int n;
    if (ip == NULL || zone == NULL || out == NULL || outlen == 0)
        return -1;
    if (inet_pton(AF_INET, ip, a) == 1) {
        n = snprintf(out, outlen, "%u.%u.%u.%u.%s", a[3], a[2], a[1], a[0], zone);
        return n > 0 && (size_t)n < outlen ? 0 : -1;
    }
    if (inet_pton(AF_INET6, ip, a) != 1)
        return -1;
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        if (used + 4 >= outlen)
            return -1;
        out[used++] = hex[a[i] & 15];
        out[used++] = '.';
        out[used++] = hex[a[i] >> 4];
        out[used++] = '.';
    }
    n = snprintf(out + used, outlen - used, "%s", zone);
    return n >= 0 && (size_t)n < outlen - used ? 0 : -1;
}
