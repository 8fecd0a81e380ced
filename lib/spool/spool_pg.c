/*
 * spool_pg.c - the PostgreSQL storage backend of the spool (see spool_backend.h), for
 * several daemons and API servers on several hosts sharing one queue.
 *
 * Selected by a URL path: "postgresql://user@host:port/db?..." (or "postgres://"), handed
 * to libpq as it is, so that every libpq setting works (sslmode, target_session_attrs for
 * failover across several hosts, options=-csearch_path=...). The password comes from
 * libpq's own sources (PGPASSFILE, ~/.pgpass, a service file) or from the caller, never
 * from a diagnosis: the URL is shown with any password masked.
 *
 * Durability: synchronous_commit stays on, so a call that returns PIGEON_OK committed and
 * the server flushed its WAL (and waited for synchronous standbys, if configured). A
 * handle opened with PIGEON_SPOOL_DEFER_SYNC (the daemon's) sets synchronous_commit=off
 * for its session: a commit returns once it is in the server's WAL buffers, where a crash
 * of the daemon cannot undo it; sync() then runs one tiny transaction with synchronous
 * commit on, whose flush covers every earlier commit (WAL is flushed in order).
 *
 * Round trips: enqueues are buffered; a batch's are written with binary COPY per 1 MiB
 * (spool_pg_copy.c), a message outside a batch as one statement with array parameters
 * (binary format), its own transaction: one round trip per message; claims, outcomes,
 * renewals and releases of a whole batch are one statement each (spool_pg_work.c). All
 * statements are prepared once per connection.
 *
 * Reconnects: a call that finds the connection gone opens a new one, at most once per
 * backoff interval (250 ms doubling to 5 s) so that an unreachable server costs a failing
 * call no wait; failures are PIGEON_ERR_NETWORK (a temporary failure: exit 75, HTTP 503).
 * A commit whose outcome is unknown (the connection dropped during it) is reported as a
 * failure: an enqueue may then have been stored after all (the client retries, with its
 * Idempotency-Key over HTTP: never a loss, at worst a duplicate the key suppresses); a
 * record is applied again (idempotent: delivered stays delivered); a claim's lease token
 * is remembered and its recipients given back after the reconnect (see settle_doubts).
 *
 * LISTEN/NOTIFY: every enqueue (and retry, release) notifies channel "pigeon_spool" in its
 * own transaction, so the notification is sent only if the message committed; an idle
 * daemon LISTENs on its worker's connection and polls its socket (pigeon_spool_wait_fd).
 */
#include "spool/spool_pg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spool/spool_api.h"

/* Buffered enqueues are written once they hold this much body, or this many messages. In
 * a batch the server stores one flush while the caller builds the next (spool_pg_copy.c):
 * 1 MiB (about 120 messages of 8.7 KB) fits in the socket's buffers, so sending it does
 * not wait for the server (4 MiB measured the same within this machine's noise). */
#define FLUSH_BYTES (1u << 20)
#define FLUSH_MSGS  2048
/* A batch's first messages go as one statement (one round trip, where COPY takes five:
 * a few API requests committed together), those after by COPY (spool_pg_copy.c). */
#define COPY_AFTER 100
/* Reconnect backoff bounds (milliseconds). */
#define BACKOFF_MIN 250
#define BACKOFF_MAX 5000

static const char *const stmt_sql[PQ_COUNT] = {
    [PQ_ENQUEUE] =
        "WITH m AS (INSERT INTO message(queue_id, message_id, account, mail_from, size, sha256,"
        " created_ms) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
        " $5::bigint[], $6::bytea[], $7::bigint[]) RETURNING id, queue_id),"
        " r AS (INSERT INTO rcpt(msg, address, state, due_ms, updated_ms)"
        " SELECT m.id, x.a, 0, x.d, x.d FROM unnest($8::text[], $9::text[], $10::bigint[])"
        " WITH ORDINALITY AS x(q, a, d, n) JOIN m ON m.queue_id = x.q ORDER BY x.n"
        " ON CONFLICT DO NOTHING),"
        " b AS (INSERT INTO body(msg, seq, data) SELECT coalesce(m.id, (SELECT o.id FROM"
        " message o WHERE o.queue_id = x.q)), x.s, x.b FROM unnest($11::text[],"
        " $12::integer[], $13::bytea[]) AS x(q, s, b) LEFT JOIN m ON m.queue_id = x.q)"
        " SELECT (SELECT count(*) FROM m), pg_notify('" PG_SPOOL_PQ_CHANNEL "', '')",
    [PQ_END_MSG] = "UPDATE message SET size = $2::bigint, sha256 = $3::bytea "
                   "WHERE queue_id = $1::text",
    /* (with the "queued" events the webhook triggers wrote for it) */
    [PQ_UNDO_MSG] = "WITH h AS (DELETE FROM hook_events WHERE type = 0 AND queue_id = $1::text)"
                    " DELETE FROM message WHERE queue_id = $1::text",
    [PQ_HOLDER_ID] = "INSERT INTO holder(host, boot_id, pid, started) VALUES($1::text, $2::text,"
                     " $3::bigint, $4::bigint) ON CONFLICT (host, boot_id, pid, started)"
                     " DO UPDATE SET pid = excluded.pid RETURNING id",
    /* One statement (pigeon_claim(), migration 6): the account (given, or that of the
     * oldest due recipient), its due messages in due order (a bounded scan), locked with
     * SKIP LOCKED so that concurrent claimers take disjoint messages without waiting, and
     * their due recipients moved under the lease. A recipient another claim took
     * meanwhile is re-checked by the UPDATE (READ COMMITTED re-reads the row) and no
     * longer due: never claimed twice. */
    [PQ_CLAIM] = "SELECT * FROM pigeon_claim($1::bigint, $2::text, $3::int, $4::int, $5::text,"
                 " $6::bigint, $7::bigint, $8::bigint)",
    [PQ_LOAD_MSGS] = "SELECT id, queue_id, message_id, account, mail_from, size, created_ms,"
                     " sha256 FROM message WHERE id = ANY($1::bigint[])",
    [PQ_LOAD_COUNTS] = "SELECT msg, state, count(*), min(due_ms) FROM rcpt"
                       " WHERE msg = ANY($1::bigint[]) GROUP BY msg, state",
    [PQ_LOAD_BODIES] = "SELECT msg, data FROM body WHERE msg = ANY($1::bigint[])"
                       " ORDER BY msg, seq",
    [PQ_RECORD] = "SELECT * FROM pigeon_record($1::bigint[], $2::bigint[], $3::integer[],"
                  " $4::bigint[], $5::integer[], $6::integer[], $7::text[], $8::text[],"
                  " $9::text[], $10::bigint)",
    [PQ_RENEW] = "UPDATE rcpt r SET due_ms = $3::bigint FROM unnest($1::bigint[], $2::bigint[])"
                 " AS u(id, lease) WHERE r.id = u.id AND r.state = 1 AND r.lease = u.lease"
                 " RETURNING r.id",
    [PQ_RELEASE] = "WITH x AS (UPDATE rcpt r SET state = CASE WHEN r.attempts > 1 THEN 2 ELSE 0"
                   " END, attempts = r.attempts - 1, due_ms = $3::bigint, owner = NULL,"
                   " lease = NULL, updated_ms = $3::bigint FROM unnest($1::bigint[],"
                   " $2::bigint[]) AS u(id, lease) WHERE r.id = u.id AND r.state = 1"
                   " AND r.lease = u.lease RETURNING 1)"
                   " SELECT (SELECT count(*) FROM x), pg_notify('" PG_SPOOL_PQ_CHANNEL "', '')",
    [PQ_RELEASE_TOKEN] = "UPDATE rcpt SET state = CASE WHEN attempts > 1 THEN 2 ELSE 0 END,"
                         " attempts = attempts - 1, due_ms = $2::bigint, owner = NULL,"
                         " lease = NULL, updated_ms = $2::bigint"
                         " WHERE lease = $1::bigint AND state = 1",
    [PQ_THROTTLE] = "INSERT INTO account(name, not_before_ms, reason) VALUES($1::text, $2::bigint,"
                    " $3::text) ON CONFLICT(name) DO UPDATE SET not_before_ms ="
                    " excluded.not_before_ms, reason = excluded.reason"
                    " WHERE excluded.not_before_ms > account.not_before_ms",
    [PQ_HOLDERS] = "SELECT id, host, boot_id, pid, started FROM holder WHERE host = $1::text",
    [PQ_RECLAIM] = "WITH r AS (UPDATE rcpt SET due_ms = least(due_ms, $2::bigint), holder = NULL"
                   " WHERE holder = $1::bigint AND state = 1 RETURNING 1),"
                   " h AS (DELETE FROM holder WHERE id = $1::bigint)"
                   " SELECT (SELECT count(*) FROM r), pg_notify('" PG_SPOOL_PQ_CHANNEL "', '')",
    [PQ_LIST] = "SELECT m.id, m.queue_id, m.message_id, m.account, m.mail_from, m.size,"
                " m.created_ms, count(*) FILTER (WHERE r.state = 0), count(*) FILTER (WHERE"
                " r.state = 1), count(*) FILTER (WHERE r.state = 2), count(*) FILTER (WHERE"
                " r.state = 3), count(*) FILTER (WHERE r.state = 4), min(r.due_ms)"
                " FROM message m JOIN rcpt r ON r.msg = m.id"
                " WHERE ($1::text IS NULL OR m.account = $1::text) GROUP BY m.id ORDER BY m.id",
    [PQ_MSG_BY_QID] = "SELECT id, queue_id, message_id, account, mail_from, size, created_ms,"
                      " sha256 FROM message WHERE queue_id = $1::text",
    [PQ_RCPTS_ALL] = "SELECT msg, id, address, state, attempts, due_ms, owner, err, smtp_code,"
                     " enhanced, text, updated_ms FROM rcpt WHERE msg = $1::bigint ORDER BY id",
    [PQ_RETRY] = "WITH x AS (UPDATE rcpt SET state = 2, due_ms = $2::bigint, owner = NULL,"
                 " lease = NULL WHERE ($1::text IS NULL OR msg = (SELECT id FROM message WHERE"
                 " queue_id = $1::text)) AND (state = 2 OR ($3::int <> 0 AND state = 4))"
                 " RETURNING 1) SELECT (SELECT count(*) FROM x), (SELECT count(*) FROM message"
                 " WHERE queue_id = $1::text), pg_notify('" PG_SPOOL_PQ_CHANNEL "', '')",
    [PQ_DELETE] = "DELETE FROM message WHERE queue_id = $1::text",
    [PQ_PURGE] = "DELETE FROM message WHERE id IN (SELECT msg FROM rcpt GROUP BY msg HAVING"
                 " count(*) FILTER (WHERE state = 4) > 0 AND count(*) FILTER (WHERE state IN"
                 " (0, 1, 2)) = 0)",
    [PQ_STATS] = "SELECT (SELECT count(*) FROM message), (SELECT coalesce(sum(size), 0) FROM"
                 " message), r.s0, r.s1, r.s2, r.s3, r.s4, r.stale, (SELECT count(*) FROM"
                 " account WHERE not_before_ms > $1::bigint), (SELECT coalesce(min(m.created_ms),"
                 " 0) FROM message m WHERE EXISTS (SELECT 1 FROM rcpt x WHERE x.msg = m.id AND"
                 " x.due_ms IS NOT NULL)) FROM (SELECT count(*) FILTER (WHERE state = 0) s0,"
                 " count(*) FILTER (WHERE state = 1) s1, count(*) FILTER (WHERE state = 2) s2,"
                 " count(*) FILTER (WHERE state = 3) s3, count(*) FILTER (WHERE state = 4) s4,"
                 " count(*) FILTER (WHERE state = 1 AND due_ms <= $1::bigint) stale FROM rcpt) r",
    [PQ_BODY_MSG] = "SELECT id, size, sha256 FROM message WHERE queue_id = $1::text",
    [PQ_BODY_CHUNK] = "SELECT data FROM body WHERE msg = $1::bigint AND seq = $2::int",
    /* a block of PG_SPOOL_PQ_ID_BLOCK ids from the one returned (migration 7) */
    [PQ_MSG_IDS] = "SELECT nextval('message_id_seq')",
};

static void pq_msg_abort(void *be);

/* ---- time, URLs ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Replaces the value after each "password=" (query parameter or conninfo keyword) with
 * "***" in s, in place; the result is never longer. */
static void mask_param(char *s)
{
    for (char *p = strstr(s, "password="); p != NULL; p = strstr(p, "password=")) {
        p += strlen("password=");
        size_t n = strcspn(p, "& ");
        if (n > 3) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + n, strlen(p + n) + 1);
        }
    }
}

/* The URL with any password masked ("postgresql://ann:***@db/x"), malloc'd. */
static char *mask_url(const char *url)
{
    char *s = strdup(url);
    if (s == NULL)
        return NULL;
    char *auth = strstr(s, "://");
    if (auth != NULL) {
        auth += 3;
        size_t end = strcspn(auth, "/?");
        char *at = memchr(auth, '@', end);
        char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon != NULL && at - colon > 4) {
            memcpy(colon + 1, "***", 3);
            memmove(colon + 4, at, strlen(at) + 1);
        }
    }
    mask_param(s);
    return s;
}

/* ---- parameters, arrays, columns ---- */

void pg_spool_pq_p_text(pg_spool_pq_params *p, const char *s)
{
    p->v[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

void pg_spool_pq_p_i64(pg_spool_pq_params *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof p->num[0], "%lld", (long long)v);
    pg_spool_pq_p_text(p, p->num[p->n]);
}

void pg_spool_pq_p_bin(pg_spool_pq_params *p, const void *data, size_t len)
{
    p->v[p->n] = data != NULL ? data : "";
    p->len[p->n] = (int)len;
    p->fmt[p->n++] = 1;
}

/* Writes the array header (one dimension, or none when empty) in front of the elements. */
void pg_spool_pq_p_arr(pg_spool_pq_params *p, pg_spool_pq_arr *a)
{
    if (a->p == NULL)
        pg_spool_pq_arr_add(a, NULL, 0), a->n = 0, a->len = 20; /* allocate the header */
    uint32_t h[5] = {htonl(a->n > 0 ? 1 : 0), htonl(0), htonl(a->oid), htonl((uint32_t)a->n),
                     htonl(1)};
    memcpy(a->p, h, sizeof h);
    pg_spool_pq_p_bin(p, a->p, a->n > 0 ? a->len : 12);
}

void pg_spool_pq_arr_init(pg_spool_pq_arr *a, uint32_t oid)
{
    memset(a, 0, sizeof *a);
    a->oid = oid;
}

void pg_spool_pq_arr_free(pg_spool_pq_arr *a)
{
    free(a->p);
    uint32_t oid = a->oid;
    pg_spool_pq_arr_init(a, oid);
}

/* Room for need more bytes (the header reserved first). */
static int arr_room(pg_spool_pq_arr *a, size_t need)
{
    if (a->nomem)
        return -1;
    if (a->p == NULL)
        a->len = 20;
    if (a->len + need <= a->cap && a->p != NULL)
        return 0;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < a->len + need)
        cap *= 2;
    unsigned char *n = realloc(a->p, cap);
    if (n == NULL) {
        a->nomem = 1;
        return -1;
    }
    a->p = n;
    a->cap = cap;
    return 0;
}

/* Appends an element (data NULL with len 0 ... see arr_text for NULL elements). */
void pg_spool_pq_arr_add(pg_spool_pq_arr *a, const void *data, size_t len)
{
    if (arr_room(a, 4 + len) != 0)
        return;
    uint32_t l = htonl((uint32_t)len);
    memcpy(a->p + a->len, &l, 4);
    if (len > 0)
        memcpy(a->p + a->len + 4, data, len);
    a->len += 4 + len;
    a->n++;
}

void pg_spool_pq_arr_text(pg_spool_pq_arr *a, const char *s)
{
    if (s != NULL) {
        pg_spool_pq_arr_add(a, s, strlen(s));
        return;
    }
    if (arr_room(a, 4) != 0)
        return;
    uint32_t l = htonl(0xffffffffu); /* -1: NULL */
    memcpy(a->p + a->len, &l, 4);
    a->len += 4;
    a->n++;
}

void pg_spool_pq_arr_i64(pg_spool_pq_arr *a, int64_t v)
{
    unsigned char b[8];
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8)
        b[i] = (unsigned char)(u & 0xff);
    pg_spool_pq_arr_add(a, b, 8);
}

void pg_spool_pq_arr_i32(pg_spool_pq_arr *a, int32_t v)
{
    uint32_t u = htonl((uint32_t)v);
    pg_spool_pq_arr_add(a, &u, 4);
}

int64_t pg_spool_pq_i64(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    const char *v = PQgetvalue(res, row, col);
    if (PQfformat(res, col) == 1) {
        int len = PQgetlength(res, row, col);
        uint64_t u = 0;
        for (int i = 0; i < len && i < 8; i++)
            u = (u << 8) | (unsigned char)v[i];
        if (len == 4)
            return (int32_t)(uint32_t)u;
        if (len == 2)
            return (int16_t)(uint16_t)u;
        return (int64_t)u;
    }
    return strtoll(v, NULL, 10);
}

char *pg_spool_pq_dup(const PGresult *res, int row, int col, int *nomem)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    char *s = strdup(PQgetvalue(res, row, col));
    if (s == NULL)
        *nomem = 1;
    return s;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long pg_spool_pq_bytea(const PGresult *res, int row, int col, unsigned char *out, size_t cap)
{
    if (PQgetisnull(res, row, col))
        return -1;
    const char *v = PQgetvalue(res, row, col);
    if (PQfformat(res, col) == 1) {
        size_t len = (size_t)PQgetlength(res, row, col);
        if (len > cap)
            return -1;
        memcpy(out, v, len);
        return (long)len;
    }
    if (v[0] != '\\' || v[1] != 'x')
        return -1;
    size_t n = 0;
    for (v += 2; v[0] != '\0' && v[1] != '\0'; v += 2) {
        int hi = hexval(v[0]), lo = hexval(v[1]);
        if (hi < 0 || lo < 0 || n == cap)
            return -1;
        out[n++] = (unsigned char)(hi << 4 | lo);
    }
    return (long)n;
}

/* ---- connection and errors ---- */

/* Forgets a broken connection: the next call reconnects. */
static void drop_conn(pg_spool_pq *q)
{
    PQfinish(q->conn);
    q->conn = NULL;
    q->in_tx = 0;
    q->copy_busy = 0;
    q->notify = 0;
    q->heap_kept = 0;
    q->listening = 0;
    q->hook_locked = 0; /* session locks end with the session */
    memset(q->prepared, 0, sizeof q->prepared);
}

/* The first line of a libpq message, for a one-line diagnosis. */
static void first_line(const char *msg, char *out, size_t n)
{
    if (msg == NULL)
        msg = "";
    if (strncmp(msg, "ERROR:  ", 8) == 0)
        msg += 8;
    else if (strncmp(msg, "FATAL:  ", 8) == 0)
        msg += 8;
    size_t len = strcspn(msg, "\n");
    snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), msg);
}

pigeon_err pg_spool_pq_err(pg_spool_pq *q, const PGresult *res, const char *what)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorMessage(res) : NULL;
    char line[300];
    if ((msg == NULL || msg[0] == '\0') && q->conn != NULL)
        msg = PQerrorMessage(q->conn);
    first_line(msg, line, sizeof line);
    pigeon_err err = PIGEON_ERR_IO;
    const char *hint = "";
    if (state == NULL)
        state = "";
    if (q->conn == NULL || PQstatus(q->conn) == CONNECTION_BAD || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P0", 4) == 0) {
        err = PIGEON_ERR_NETWORK;
        hint = " (connection to PostgreSQL lost; the next call reconnects)";
        drop_conn(q);
    } else if (strcmp(state, "53200") == 0) {
        err = PIGEON_ERR_NOMEM;
    } else if (strncmp(state, "53", 2) == 0) {
        err = PIGEON_ERR_NOSPACE;
        hint = " (the database server is out of room)";
    } else if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
               strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0) {
        err = PIGEON_ERR_TIMEOUT;
    } else if (strcmp(state, "25006") == 0) {
        err = PIGEON_ERR_STATE; /* read-only transaction (a standby after failover) */
        hint = " (a read-only server: add target_session_attrs=read-write to the URL)";
    }
    return pg_spool_fail(q->diag, err, "spool: %s: %s%s", what, line, hint);
}

/* Session settings of a new connection. A daemon worker's (DEFER_SYNC) runs the same few
 * prepared statements for every message, all lookups by key or by array of keys: their
 * plans are made once (generic plans), where custom plans re-planned the suppression check
 * on every call (about 50 us of server CPU per message, bench/pg.sh); and sequential scans
 * are ruled out (a penalty, not a ban: a table without a usable index is still read),
 * because a queue filled faster than autovacuum analyzes it looks a few pages long, and
 * reading the recipients' counts of a claimed batch then scanned the whole table. */
static pigeon_err session_setup(pg_spool_pq *q)
{
    char sql[256];
    int worker = (q->flags & PIGEON_SPOOL_DEFER_SYNC) != 0;
    snprintf(sql, sizeof sql, "SET synchronous_commit = %s; SET lock_timeout = %d;%s%s",
             worker ? "off" : "on", q->lock_timeout_ms,
             worker ? " SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off;" : "",
             (q->flags & PIGEON_SPOOL_READONLY) ? " SET default_transaction_read_only = on;" : "");
    return pg_spool_pq_exec(q, sql, "setting up the session");
}

static pigeon_err connect_now(pg_spool_pq *q)
{
    /* Later keywords win: the URL (dbname, expanded) overrides these defaults. Keepalives
     * and tcp_user_timeout bound the wait on a server that vanished without a reset. */
    static const char *const keys[] = {
        "connect_timeout",  "tcp_user_timeout",          "keepalives_idle", "keepalives_interval",
        "keepalives_count", "fallback_application_name", "dbname",          NULL};
    const char *vals[] = {"5", "15000", "10", "5", "3", "pigeon", q->conninfo, NULL};
    q->conn = PQconnectdbParams(keys, vals, 1);
    if (q->conn == NULL)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    if (PQstatus(q->conn) != CONNECTION_OK) {
        char line[300];
        first_line(PQerrorMessage(q->conn), line, sizeof line);
        drop_conn(q);
        return pg_spool_fail(q->diag, PIGEON_ERR_NETWORK,
                             "spool: cannot connect to PostgreSQL at %s: %s", q->shown, line);
    }
    memset(q->prepared, 0, sizeof q->prepared);
    q->listening = 0;
    q->holder_id = 0; /* looked up again: the row may have been reclaimed meanwhile */
    pigeon_err err = session_setup(q);
    if (err != PIGEON_OK)
        drop_conn(q);
    return err;
}

pigeon_err pg_spool_pq_ready(pg_spool_pq *q)
{
    if (q->copy_busy) {
        pigeon_err err = pg_spool_pq_settle(q);
        if (err != PIGEON_OK)
            return err;
    }
    if (q->conn != NULL && PQstatus(q->conn) == CONNECTION_OK)
        return PIGEON_OK;
    if (q->in_tx) {
        drop_conn(q);
        return pg_spool_fail(q->diag, PIGEON_ERR_NETWORK,
                             "spool: connection to PostgreSQL lost inside a batch; nothing of "
                             "the batch was stored");
    }
    if (q->conn != NULL)
        drop_conn(q);
    int64_t now = mono_ms();
    if (now < q->retry_at)
        return pg_spool_fail(q->diag, PIGEON_ERR_NETWORK,
                             "spool: PostgreSQL at %s unreachable (trying again in %lld ms)",
                             q->shown, (long long)(q->retry_at - now));
    pigeon_err err = connect_now(q);
    if (err != PIGEON_OK) {
        q->backoff_ms = q->backoff_ms == 0 ? BACKOFF_MIN : q->backoff_ms * 2;
        if (q->backoff_ms > BACKOFF_MAX)
            q->backoff_ms = BACKOFF_MAX;
        q->retry_at = mono_ms() + q->backoff_ms;
        return err;
    }
    q->backoff_ms = 0;
    q->retry_at = 0;
    pg_spool_pq_settle_doubts(q);
    return PIGEON_OK;
}

pigeon_err pg_spool_pq_exec(pg_spool_pq *q, const char *sql, const char *what)
{
    pigeon_err err = pg_spool_pq_ready(q);
    if (err != PIGEON_OK)
        return err;
    PGresult *res = PQexec(q->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    err =
        st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? PIGEON_OK : pg_spool_pq_err(q, res, what);
    PQclear(res);
    return err;
}

pigeon_err pg_spool_pq_exec_params(pg_spool_pq *q, const char *sql, const pg_spool_pq_params *p,
                                   const char *what, PGresult **out)
{
    if (out != NULL)
        *out = NULL;
    pigeon_err err = pg_spool_pq_ready(q);
    if (err != PIGEON_OK)
        return err;
    PGresult *res = PQexecParams(q->conn, sql, p != NULL ? p->n : 0, NULL, p != NULL ? p->v : NULL,
                                 p != NULL ? p->len : NULL, p != NULL ? p->fmt : NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        err = pg_spool_pq_err(q, res, what);
        PQclear(res);
        return err;
    }
    if (out != NULL)
        *out = res;
    else
        PQclear(res);
    return PIGEON_OK;
}

pigeon_err pg_spool_pq_run(pg_spool_pq *q, int id, const pg_spool_pq_params *p, int binary,
                           const char *what, PGresult **out)
{
    return pg_spool_pq_run_sql(q, id, stmt_sql[id], p, binary, what, out);
}

pigeon_err pg_spool_pq_run_sql(pg_spool_pq *q, int id, const char *sql, const pg_spool_pq_params *p,
                               int binary, const char *what, PGresult **out)
{
    char name[16];
    *out = NULL;
    pigeon_err err = pg_spool_pq_ready(q);
    if (err != PIGEON_OK)
        return err;
    snprintf(name, sizeof name, "pigeon%d", id);
    if (!q->prepared[id]) {
        PGresult *res = PQprepare(q->conn, name, sql, 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            err = pg_spool_pq_err(q, res, what);
            PQclear(res);
            return err;
        }
        PQclear(res);
        q->prepared[id] = 1;
    }
    PGresult *res = PQexecPrepared(q->conn, name, p->n, p->v, p->len, p->fmt, binary);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        err = pg_spool_pq_err(q, res, what);
        PQclear(res);
        return err;
    }
    if ((q->flags & PIGEON_SPOOL_DEFER_SYNC) && !q->in_tx)
        q->deferred = 1;
    *out = res;
    return PIGEON_OK;
}

/* ---- open, close ---- */

static void pend_init(pg_spool_pq_pending *p)
{
    pg_spool_pq_arr_init(&p->qid, 25);
    pg_spool_pq_arr_init(&p->msgid, 25);
    pg_spool_pq_arr_init(&p->account, 25);
    pg_spool_pq_arr_init(&p->from, 25);
    pg_spool_pq_arr_init(&p->size, 20);
    pg_spool_pq_arr_init(&p->sha, 17);
    pg_spool_pq_arr_init(&p->created, 20);
    pg_spool_pq_arr_init(&p->r_qid, 25);
    pg_spool_pq_arr_init(&p->r_addr, 25);
    pg_spool_pq_arr_init(&p->r_due, 20);
    pg_spool_pq_arr_init(&p->b_qid, 25);
    pg_spool_pq_arr_init(&p->b_seq, 23);
    pg_spool_pq_arr_init(&p->b_data, 17);
    p->bytes = 0;
}

/* The pending arrays, in a fixed order (for resets and frees). */
static pg_spool_pq_arr *pend_arr(pg_spool_pq_pending *p, int i)
{
    pg_spool_pq_arr *all[] = {&p->qid,   &p->msgid,   &p->account, &p->from,   &p->size,
                              &p->sha,   &p->created, &p->r_qid,   &p->r_addr, &p->r_due,
                              &p->b_qid, &p->b_seq,   &p->b_data};
    return i < 13 ? all[i] : NULL;
}

/* Empties the pending messages, keeping the buffers unless free_them. */
static void pend_reset(pg_spool_pq_pending *p, int free_them)
{
    for (int i = 0; i < 13; i++) {
        pg_spool_pq_arr *a = pend_arr(p, i);
        if (free_them) {
            pg_spool_pq_arr_free(a);
        } else {
            a->len = a->p != NULL ? 20 : 0;
            a->n = 0;
            a->nomem = 0;
        }
    }
    pg_spool_pq_copy_reset(&p->c_msg, free_them);
    pg_spool_pq_copy_reset(&p->c_rcpt, free_them);
    pg_spool_pq_copy_reset(&p->c_body, free_them);
    p->msgs = 0;
    p->bytes = 0;
}

/* Ends the open transaction with ROLLBACK (after reading what a COPY in flight returns). */
static void tx_abandon(pg_spool_pq *q)
{
    pg_spool_pq_settle(q);
    if (q->conn != NULL)
        PQclear(PQexec(q->conn, "ROLLBACK"));
    q->in_tx = 0;
    q->notify = 0;
}

static void pq_close(void *be)
{
    pg_spool_pq *q = be;
    if (q == NULL)
        return;
    if (q->conn != NULL && q->in_tx)
        tx_abandon(q);
    PQfinish(q->conn);
    pend_reset(&q->pend, 1);
    if (q->conninfo != NULL) {
        explicit_bzero(q->conninfo, strlen(q->conninfo));
        free(q->conninfo);
    }
    free(q->shown);
    free(q);
}

static pigeon_err pq_open(const char *path, unsigned flags, pg_spool_diag *diag, void **out)
{
    pg_spool_pq *q = calloc(1, sizeof *q);
    if (q == NULL)
        return PIGEON_ERR_NOMEM;
    q->diag = diag;
    q->flags = flags;
    q->lock_timeout_ms = 10000;
    pend_init(&q->pend);
    q->conninfo = strdup(path);
    q->shown = mask_url(path);
    if (q->conninfo == NULL || q->shown == NULL) {
        pq_close(q);
        return pg_spool_fail(diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    }
    pigeon_err err = connect_now(q);
    if (err == PIGEON_OK)
        err = pg_spool_pq_migrate(q);
    if (err != PIGEON_OK) {
        pq_close(q);
        return err;
    }
    *out = q;
    return PIGEON_OK;
}

static pigeon_err pq_set_busy_timeout(void *be, int ms)
{
    pg_spool_pq *q = be;
    char sql[64];
    q->lock_timeout_ms = ms;
    snprintf(sql, sizeof sql, "SET lock_timeout = %d", ms);
    return pg_spool_pq_exec(q, sql, "setting the lock timeout");
}

/* The server checks its own pages (data_checksums); what we can check is that the schema
 * is ours and current, and the bodies' hashes, which every read verifies. */
static pigeon_err pq_check(void *be, int full)
{
    pg_spool_pq *q = be;
    (void)full;
    pigeon_err err = pg_spool_pq_ready(q);
    return err != PIGEON_OK ? err : pg_spool_pq_migrate(q);
}

/* A transaction with synchronous commit on: its commit record comes after every commit
 * this session made with it off, and the server flushes WAL in order, so when it returns
 * they are all on disk. */
static pigeon_err pq_sync(void *be, int flush)
{
    pg_spool_pq *q = be;
    (void)flush;
    if (!(q->flags & PIGEON_SPOOL_DEFER_SYNC) || !q->deferred)
        return PIGEON_OK;
    pigeon_err err = pg_spool_pq_exec(q,
                                      "BEGIN; SET LOCAL synchronous_commit = on; "
                                      "SELECT pg_current_xact_id(); COMMIT",
                                      "flushing the server's WAL");
    if (err == PIGEON_OK)
        q->deferred = 0;
    return err;
}

/* ---- batches ---- */

static pigeon_err pq_begin(void *be)
{
    pg_spool_pq *q = be;
    pend_reset(&q->pend, 0);
    pigeon_err err = pg_spool_pq_exec(q, "BEGIN", "beginning a batch");
    if (err == PIGEON_OK)
        q->in_tx = q->in_batch = 1;
    q->batch_msgs = 0;
    return err;
}

/* Writes the pending messages (inside the open transaction, or as their own). */
static pigeon_err pend_flush(pg_spool_pq *q)
{
    pg_spool_pq_pending *pd = &q->pend;
    pg_spool_pq_params p = {0};
    PGresult *res = NULL;
    if (pd->c_msg.rows > 0 || pd->c_body.rows > 0) {
        q->notify = 1;
        pigeon_err err = pg_spool_pq_copy_flush(q);
        if (err != PIGEON_OK)
            return err;
    }
    if (pd->qid.n == 0 && pd->b_qid.n == 0)
        return PIGEON_OK;
    for (int i = 0; i < 13; i++) {
        if (pend_arr(pd, i)->nomem) {
            pend_reset(pd, 0);
            return pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
        }
        pg_spool_pq_p_arr(&p, pend_arr(pd, i));
    }
    pigeon_err err = pg_spool_pq_run(q, PQ_ENQUEUE, &p, 0, "storing messages", &res);
    PQclear(res);
    pend_reset(pd, 0);
    return err;
}

pigeon_err pg_spool_pq_flush(pg_spool_pq *q)
{
    return pend_flush(q);
}

/* Ends the open transaction: COMMIT, or ROLLBACK when a statement in it failed. */
static pigeon_err tx_finish(pg_spool_pq *q)
{
    pigeon_err err = pg_spool_pq_settle(q);
    if (err != PIGEON_OK) {
        tx_abandon(q);
        return err;
    }
    if (q->conn == NULL || PQtransactionStatus(q->conn) != PQTRANS_INTRANS) {
        if (q->conn != NULL && PQtransactionStatus(q->conn) == PQTRANS_INERROR)
            PQclear(PQexec(q->conn, "ROLLBACK"));
        q->in_tx = 0;
        return pg_spool_fail(q->diag, PIGEON_ERR_IO,
                             "spool: the batch was rolled back after an earlier error");
    }
    /* (a batch written by COPY notifies here, in the transaction: see the file's header) */
    PGresult *res =
        PQexec(q->conn, q->notify ? "NOTIFY " PG_SPOOL_PQ_CHANNEL "; COMMIT" : "COMMIT");
    q->notify = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        err = pg_spool_pq_err(q, res, "committing (the outcome is unknown)");
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
        err = pg_spool_fail(q->diag, PIGEON_ERR_IO, "spool: the batch was rolled back");
    PQclear(res);
    q->in_tx = 0;
    if (err == PIGEON_OK && (q->flags & PIGEON_SPOOL_DEFER_SYNC))
        q->deferred = 1;
    return err;
}

static pigeon_err pq_commit(void *be)
{
    pg_spool_pq *q = be;
    q->in_batch = 0;
    pigeon_err err = q->conn != NULL && q->in_tx ? pend_flush(q) : PIGEON_OK;
    if (err != PIGEON_OK) {
        char keep[sizeof q->diag->text];
        memcpy(keep, q->diag->text, sizeof keep);
        tx_abandon(q);
        memcpy(q->diag->text, keep, sizeof keep);
        return err;
    }
    return tx_finish(q);
}

static pigeon_err pq_rollback(void *be)
{
    pg_spool_pq *q = be;
    pend_reset(&q->pend, 0);
    q->in_batch = 0;
    if (q->in_tx)
        tx_abandon(q);
    return PIGEON_OK;
}

/* ---- enqueue ---- */

/* Appends the current message's row and recipients to the pending arrays. */
static void pend_message(pg_spool_pq *q, const pg_spool_new *m, int64_t size,
                         const unsigned char *sha)
{
    pg_spool_pq_pending *p = &q->pend;
    pg_spool_pq_arr_text(&p->qid, m->queue_id);
    pg_spool_pq_arr_text(&p->msgid, m->env->message_id != NULL ? m->env->message_id : "");
    pg_spool_pq_arr_text(&p->account, m->env->account);
    pg_spool_pq_arr_text(&p->from, m->env->mail_from);
    pg_spool_pq_arr_i64(&p->size, size);
    if (sha != NULL)
        pg_spool_pq_arr_add(&p->sha, sha, 32);
    else
        pg_spool_pq_arr_text(&p->sha, NULL);
    pg_spool_pq_arr_i64(&p->created, m->now_ms);
    for (size_t i = 0; i < m->env->rcpt_count; i++) {
        pg_spool_pq_arr_text(&p->r_qid, m->queue_id);
        pg_spool_pq_arr_text(&p->r_addr, m->env->rcpts[i]);
        pg_spool_pq_arr_i64(&p->r_due, m->now_ms);
    }
}

/* Appends the current message's rows: to the batch's COPY streams, or to the arrays. */
static void add_message(pg_spool_pq *q, int64_t size, const unsigned char *sha)
{
    if (q->cur_copy)
        pg_spool_pq_copy_message(q, &q->cur, q->cur_id, size, sha);
    else
        pend_message(q, &q->cur, size, sha);
}

static pigeon_err pq_msg_begin(void *be, const pg_spool_new *m)
{
    pg_spool_pq *q = be;
    pigeon_err err = PIGEON_OK;
    /* (a COPY in flight leaves the transaction active: its result comes at the next flush) */
    if (q->in_batch &&
        (q->conn == NULL || (!q->copy_busy && PQtransactionStatus(q->conn) != PQTRANS_INTRANS)))
        return pg_spool_fail(q->diag, PIGEON_ERR_IO,
                             "spool: the batch was rolled back after an earlier error");
    if (!q->in_batch && (err = pg_spool_pq_ready(q)) != PIGEON_OK)
        return err;
    q->cur_id = 0;
    q->cur_copy = q->in_batch && q->batch_msgs >= COPY_AFTER;
    if (q->cur_copy && (err = pg_spool_pq_next_id(q, &q->cur_id)) != PIGEON_OK)
        return err;
    snprintf(q->cur_qid, sizeof q->cur_qid, "%s", m->queue_id);
    q->cur_flushed = 0;
    q->cur_seq = 0;
    q->mark_copy_len = q->pend.c_body.len;
    q->mark_copy_rows = q->pend.c_body.rows;
    pg_spool_pq_arr *body[3] = {&q->pend.b_qid, &q->pend.b_seq, &q->pend.b_data};
    for (int i = 0; i < 3; i++) {
        q->mark_len[i] = body[i]->len;
        q->mark_n[i] = body[i]->n;
    }
    q->mark_bytes = q->pend.bytes;
    q->cur = *m;
    return PIGEON_OK;
}

/* Writes what is pending before the whole message is in (its body outgrew the buffer):
 * the message's row goes first, without size and hash, inside a transaction (the batch's,
 * or one of its own) that msg_end completes. */
static pigeon_err flush_early(pg_spool_pq *q)
{
    pigeon_err err = PIGEON_OK;
    if (!q->in_tx) {
        err = pg_spool_pq_exec(q, "BEGIN", "beginning an enqueue");
        if (err != PIGEON_OK)
            return err;
        q->in_tx = 1;
    }
    if (!q->cur_flushed)
        add_message(q, 0, NULL);
    q->cur_flushed = 1;
    return pend_flush(q);
}

static pigeon_err pq_msg_chunk(void *be, int64_t seq, const void *data, size_t len)
{
    pg_spool_pq *q = be;
    if (q->cur_copy) {
        pg_spool_pq_copy_chunk(q, q->cur_id, seq, data, len);
    } else {
        pg_spool_pq_arr_text(&q->pend.b_qid, q->cur_qid);
        pg_spool_pq_arr_i32(&q->pend.b_seq, (int32_t)seq);
        pg_spool_pq_arr_add(&q->pend.b_data, data, len);
        q->pend.bytes += len;
    }
    q->cur_seq = seq + 1;
    if (q->pend.b_data.nomem || q->pend.c_body.nomem)
        return pg_spool_fail(q->diag, PIGEON_ERR_NOMEM, "spool: out of memory");
    return q->pend.bytes >= FLUSH_BYTES ? flush_early(q) : PIGEON_OK;
}

static pigeon_err msg_finish(pg_spool_pq *q, int64_t size, const unsigned char sha[32])
{
    if (!q->cur_flushed) {
        add_message(q, size, sha);
        q->batch_msgs++;
        if (q->in_batch)
            return q->pend.msgs >= FLUSH_MSGS || q->pend.bytes >= FLUSH_BYTES ? pend_flush(q)
                                                                              : PIGEON_OK;
        return pend_flush(q); /* one statement, its own transaction */
    }
    pigeon_err err = pend_flush(q);
    PGresult *res = NULL;
    pg_spool_pq_params p = {0};
    pg_spool_pq_p_text(&p, q->cur_qid);
    pg_spool_pq_p_i64(&p, size);
    pg_spool_pq_p_bin(&p, sha, 32);
    if (err == PIGEON_OK)
        err = pg_spool_pq_run(q, PQ_END_MSG, &p, 0, "storing the message size", &res);
    PQclear(res);
    if (err == PIGEON_OK && !q->in_batch) {
        char sql[64];
        snprintf(sql, sizeof sql, "NOTIFY %s", PG_SPOOL_PQ_CHANNEL);
        err = pg_spool_pq_exec(q, sql, "notifying");
        if (err == PIGEON_OK)
            err = tx_finish(q);
    }
    return err;
}

static pigeon_err pq_msg_end(void *be, int64_t size, const unsigned char sha256[32])
{
    pg_spool_pq *q = be;
    pigeon_err err = msg_finish(q, size, sha256);
    if (err != PIGEON_OK) {
        char keep[sizeof q->diag->text];
        memcpy(keep, q->diag->text, sizeof keep);
        pq_msg_abort(q);
        memcpy(q->diag->text, keep, sizeof keep);
    }
    q->cur_qid[0] = '\0';
    return err;
}

/* Undoes the enqueue in progress: its buffered chunks are dropped; rows already written
 * are deleted inside a batch (a failure there leaves the batch to fail at commit), or
 * rolled back with the transaction of their own. */
static void pq_msg_abort(void *be)
{
    pg_spool_pq *q = be;
    if (q->cur_qid[0] == '\0')
        return;
    if (!q->cur_flushed && q->cur_copy) {
        /* Its chunks are the end of the body stream (no flush since msg_begin). */
        pg_spool_pq_copy *c = &q->pend.c_body;
        if (c->rows >= q->mark_copy_rows && c->len >= q->mark_copy_len) {
            q->pend.bytes = q->mark_bytes;
            c->rows = q->mark_copy_rows;
            c->len = q->mark_copy_len;
            if (c->rows == 0)
                pg_spool_pq_copy_reset(c, 0);
        }
    } else if (!q->cur_flushed) {
        /* Only when no flush emptied the arrays since msg_begin. */
        pg_spool_pq_arr *body[3] = {&q->pend.b_qid, &q->pend.b_seq, &q->pend.b_data};
        if (body[0]->n >= q->mark_n[0] && body[0]->len >= q->mark_len[0]) {
            for (int i = 0; i < 3; i++) {
                /* (an array allocated since keeps its 20-byte header) */
                body[i]->len = q->mark_len[i] < 20 && body[i]->p != NULL ? 20 : q->mark_len[i];
                body[i]->n = q->mark_n[i];
            }
            q->pend.bytes = q->mark_bytes;
        }
    } else if (q->in_batch) {
        PGresult *res = NULL;
        pg_spool_pq_params p = {0};
        pg_spool_pq_p_text(&p, q->cur_qid);
        pend_reset(&q->pend, 0); /* only its chunks can be pending: it was flushed */
        pg_spool_pq_settle(q);   /* (a failure there fails the batch at its commit) */
        if (q->conn != NULL && PQtransactionStatus(q->conn) == PQTRANS_INTRANS)
            pg_spool_pq_run(q, PQ_UNDO_MSG, &p, 0, "undoing an enqueue", &res);
        PQclear(res);
    } else {
        pend_reset(&q->pend, 0);
        if (q->conn != NULL)
            PQclear(PQexec(q->conn, "ROLLBACK"));
        q->in_tx = 0;
    }
    q->cur_qid[0] = '\0';
}

/* ---- waiting for work ---- */

static int pq_wait_fd(void *be)
{
    pg_spool_pq *q = be;
    if (q->in_tx || pg_spool_pq_ready(q) != PIGEON_OK)
        return -1;
    if (!q->listening) {
        if (pg_spool_pq_exec(q, "LISTEN " PG_SPOOL_PQ_CHANNEL, "listening") != PIGEON_OK)
            return -1;
        q->listening = 1;
    }
    return PQsocket(q->conn);
}

static int pq_notified(void *be)
{
    pg_spool_pq *q = be;
    int n = 0;
    if (q->conn == NULL)
        return 1; /* gone: let the caller try (and reconnect) */
    if (!PQconsumeInput(q->conn)) {
        drop_conn(q);
        return 1;
    }
    PGnotify *note;
    while ((note = PQnotifies(q->conn)) != NULL) {
        n++;
        PQfreemem(note);
    }
    return n;
}

const pg_spool_ops pg_spool_pgsql_ops = {
    .name = "postgresql",
    .open = pq_open,
    .close = pq_close,
    .set_busy_timeout = pq_set_busy_timeout,
    .check = pq_check,
    .sync = pq_sync,
    .begin = pq_begin,
    .commit = pq_commit,
    .rollback = pq_rollback,
    .msg_begin = pq_msg_begin,
    .msg_chunk = pq_msg_chunk,
    .msg_end = pq_msg_end,
    .msg_abort = pq_msg_abort,
    .claim = pg_spool_pq_claim,
    .renew = pg_spool_pq_renew,
    .record = pg_spool_pq_record,
    .release = pg_spool_pq_release,
    .throttle = pg_spool_pq_throttle,
    .holders = pg_spool_pq_holders,
    .reclaim = pg_spool_pq_reclaim,
    .claim_batch = pg_spool_pq_claim_batch,
    .renew_batch = pg_spool_pq_renew_batch,
    .record_batch = pg_spool_pq_record_batch,
    .release_batch = pg_spool_pq_release_batch,
    .list = pg_spool_pq_list,
    .show = pg_spool_pq_show,
    .retry = pg_spool_pq_retry,
    .remove = pg_spool_pq_remove,
    .purge_failed = pg_spool_pq_purge_failed,
    .stats = pg_spool_pq_stats,
    .body_open = pg_spool_pq_body_open,
    .body_read = pg_spool_pq_body_read,
    .body_close = pg_spool_pq_body_close,
    .api = &pg_spool_pq_api_ops,
    .import = &pg_spool_pq_import_ops,
    .limits = &pg_spool_pq_limits_ops,
    .hooks = &pg_spool_pq_hooks_ops,
    .suppress = &pg_spool_pq_suppress_ops,
    .wait_fd = pq_wait_fd,
    .notified = pq_notified,
};
