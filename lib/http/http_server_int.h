/*
 * http_server_int.h - what http_server.c and http_server_exchange.c share (one unit,
 * split for size): the server, connection and exchange structures.
 */
#ifndef PG_HTTP_SERVER_INT_H
#define PG_HTTP_SERVER_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/http_server.h"
#include "http/http_tls.h"
#include "util/buf.h"

typedef struct pg_http_conn pg_http_conn;

struct pg_http_exchange {
    pg_http_server *srv;         /* the server (for the completion queue) */
    pg_http_conn *conn;          /* its connection; NULL once the client went away */
    pg_http_exchange *next;      /* the next request on the same connection (FIFO) */
    pg_http_exchange *done_next; /* the next answer in the completion queue */
    char *data;                  /* copy of head and body, NUL-terminated pieces (owned) */
    pg_http_request req;         /* the head parsed from data */
    const char *method;          /* NUL-terminated, in data (or "") */
    const char *path;            /* NUL-terminated, in data (or "") */
    const char *query;           /* NUL-terminated, in data, or NULL */
    const char *body;            /* the body, NUL-terminated, in data */
    size_t body_len;             /* its length */
    char peer[48];               /* client address as text */
    int is_head;                 /* a HEAD request: answer without a body */
    int keep_alive;              /* the connection may carry another request after this */
    int in_handler;              /* the handler is running on it (loop thread) */
    char *resp;                  /* the serialized response (owned), once answered */
    size_t resp_len;             /* its length */
    int done;                    /* answered (under srv->lock) */
    int queued;                  /* in srv->completed (under srv->lock) */
};

struct pg_http_conn {
    pg_http_server *srv;       /* its server */
    int fd;                    /* the socket, -1 once closed */
    pg_http_tls *tls;          /* the TLS session, or NULL */
    pg_http_conn *prev, *next; /* srv->conns, or srv->dead once closed */
    pg_buf in;                 /* octets read, from in_off not yet taken */
    size_t in_off;             /* where the next request starts in in */
    pg_buf out;                /* octets to send, from out_off */
    size_t out_off;            /* how much of out is sent */
    pg_http_exchange *first;   /* the oldest unanswered request */
    pg_http_exchange *last;    /* the newest */
    unsigned inflight;         /* requests in the FIFO */
    size_t head_len;           /* a parsed head waiting for its body, 0 for none */
    uint64_t body_need;        /* its Content-Length */
    int chunked;               /* its body is chunked */
    pg_http_chunked dec;       /* the chunked decoder */
    size_t raw_pos;            /* undecoded chunked input, from in_off */
    size_t body_len;           /* decoded body octets after the head */
    int64_t req_start;         /* when the unfinished request began (ms), 0 for none */
    int64_t last_active;       /* last octet read or written (ms) */
    int64_t linger_until;      /* end of the lingering close (ms) */
    int peer_eof;              /* the peer closed its side */
    int no_more;               /* read no more requests (close pending, or error) */
    int closing;               /* close once the output is sent */
    int lingering;             /* half-closed by us, draining before close */
    int read_wants_write;      /* TLS read waits for writability */
    uint32_t events;           /* the epoll interest registered */
    int busy;                  /* process_input is running (no re-entry) */
    char peer[48];             /* client address as text */
};

struct pg_http_server {
    int listen_fd;               /* the listening socket */
    int epoll_fd;                /* the event loop */
    int wake_fd;                 /* eventfd: answers completed off the loop, or stop */
    unsigned port;               /* the bound port */
    pg_http_handler_fn handler;  /* the request handler */
    void *handler_arg;           /* its argument */
    pg_http_limits limits;       /* request bounds */
    unsigned max_connections;    /* cap on open connections */
    unsigned request_timeout;    /* ms */
    unsigned idle_timeout;       /* ms */
    unsigned max_pipeline;       /* requests per connection in the handler */
    pg_http_tls_ctx *tls;        /* TLS context, or NULL */
    int problem_errors;          /* framing errors as problem+json */
    pthread_t thread;            /* the loop thread */
    int started;                 /* the thread runs */
    int stopping;                /* set (atomically) to stop the loop */
    int64_t now;                 /* the loop's clock (ms), read once per round */
    pg_http_conn *conns;         /* open connections */
    pg_http_conn *dead;          /* closed ones, freed at the end of the round */
    unsigned nconns;             /* how many are open */
    pg_http_request scratch;     /* the loop's parse result */
    pthread_mutex_t lock;        /* guards completed and every exchange's done/queued/conn */
    pg_http_exchange *completed; /* answers completed off the loop */
};

int64_t pg_http_now_ms(void);
pg_http_conn *pg_http_conn_new(pg_http_server *srv, int fd, const struct sockaddr_storage *ss);
/* Moves a closed connection to the dead list, orphaning its exchanges. */
void pg_http_conn_unlink(pg_http_conn *c);
void pg_http_free_dead(pg_http_server *srv);
/* A copy of a request (head NULL: an error answer without a request). parsed: the parse of
 * exactly these head octets, whose pointers are moved into the copy (NULL: parse again).
 * NULL: no memory. */
pg_http_exchange *pg_http_exchange_new(pg_http_conn *c, const char *head, size_t head_len,
                                       const char *body, size_t body_len,
                                       const pg_http_request *parsed);
void pg_http_exchange_link(pg_http_conn *c, pg_http_exchange *ex);
void pg_http_exchange_free(pg_http_exchange *ex);
int pg_http_exchange_ready(pg_http_exchange *ex);
void pg_http_dispatch(pg_http_conn *c, pg_http_exchange *ex);
void pg_http_flush_ready(pg_http_conn *c);

#endif
