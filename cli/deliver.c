/*
 * deliver.c - sending a message with the effective settings, and reporting the outcome.
 *
 * The flow: settings -> pigeon_smtp_opts (secret resolved last, wiped after) -> connect
 * -> send -> quit; on a temporary failure with --retry-for, a few quick tries with
 * exponential backoff; then one report: a line on stdout (success) or stderr (failure),
 * or one JSON object with --json; the transcript (-v) goes to stderr, credentials masked
 * by the library.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "deliver.h"
#include "json.h"
#include "pigeon/smtp.h"
#include "secret.h"
#include "verp.h"

/* What a delivery needs besides the message: the settings turned into options. */
struct conn_plan {
    pigeon_smtp_opts opts; /* for pigeon_smtp_new */
    char *secret;          /* the password or token (wiped and freed at the end) */
    int color;             /* stderr is a terminal */
    const deliver_opts *o; /* reporting options */
};

/* A raw message being sent: the reader and envelope for pigeon_smtp_send_stream. */
struct raw_job {
    const char *from;         /* envelope sender */
    const char *const *rcpts; /* envelope recipients */
    size_t nrcpts;            /* their number */
    pigeon_read_fn read;      /* the message bytes */
    void *read_ctx;           /* for read */
    int64_t size;             /* size if known, else -1 */
};

static void transcript_to_stderr(void *ctx, pigeon_transcript_dir dir, int64_t unix_ms,
                                 const char *line)
{
    const struct conn_plan *plan = ctx;
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    localtime_r(&secs, &tm);
    static const char *const tags[] = {"C:", "S:", "* ", "  "};
    static const char *const colors[] = {"\033[36m", "\033[33m", "\033[2m", "\033[2m"};
    const char *tag = (unsigned)dir < 4 ? tags[dir] : "? ";
    if (plan->color)
        fprintf(stderr, "%s%02d:%02d:%02d.%03d %s %s\033[0m\n", colors[dir & 3], tm.tm_hour,
                tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000), tag, line);
    else
        fprintf(stderr, "%02d:%02d:%02d.%03d %s %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
                (int)(unix_ms % 1000), tag, line);
}

/* The deadline of a password or token command (password_command_timeout, else 30 s). */
static int command_timeout_ms(const cfg_settings *cfg)
{
    const char *v = cfg_get(cfg, K_PASSWORD_COMMAND_TIMEOUT);
    return v != NULL ? atoi(v) * 1000 : SECRET_COMMAND_TIMEOUT_MS;
}

/* The secret for AUTH: command line sources, then the environment, then the account. */
static int resolve_secret(cfg_settings *cfg, const deliver_opts *o, char **out, char *err,
                          size_t errlen)
{
    int tmo = command_timeout_ms(cfg);
    *out = NULL;
    if (o->password_file != NULL)
        *out = secret_from_file(o->password_file, 1, err, errlen);
    else if (o->password_command != NULL)
        *out = secret_from_command(o->password_command, tmo, o->cancel, err, errlen);
    else if (getenv("PIGEON_PASSWORD") != NULL && *getenv("PIGEON_PASSWORD") != '\0')
        *out = strdup(getenv("PIGEON_PASSWORD"));
    else if (cfg_get(cfg, K_OAUTH_TOKEN_COMMAND) != NULL)
        *out =
            secret_from_command(cfg_get(cfg, K_OAUTH_TOKEN_COMMAND), tmo, o->cancel, err, errlen);
    else if (cfg_get(cfg, K_PASSWORD) != NULL)
        *out = strdup(cfg_get(cfg, K_PASSWORD));
    else if (cfg_get(cfg, K_PASSWORD_FILE) != NULL)
        *out = secret_from_file(cfg_get(cfg, K_PASSWORD_FILE), 1, err, errlen);
    else if (cfg_get(cfg, K_PASSWORD_COMMAND) != NULL)
        *out = secret_from_command(cfg_get(cfg, K_PASSWORD_COMMAND), tmo, o->cancel, err, errlen);
    else
        return 0; /* no secret anywhere: send without AUTH */
    return *out != NULL ? 0 : EX_CONFIG;
}

static int seconds_ms(const char *v)
{
    return v != NULL ? atoi(v) * 1000 : 0;
}

int deliver_plan_opts(cfg_settings *cfg, const deliver_opts *o, pigeon_smtp_opts *so, char **secret)
{
    char err[512];
    *secret = NULL;
    pigeon_smtp_opts_init(so);
    so->host = cfg_get(cfg, K_HOST);
    so->port = (uint16_t)atoi(cfg_get(cfg, K_PORT) ? cfg_get(cfg, K_PORT) : "0");
    if (cfg_get(cfg, K_TLS) != NULL && pigeon_tls_mode_parse(cfg_get(cfg, K_TLS), &so->tls)) {
        cli_error("invalid tls \"%s\" (from %s): expected implicit, starttls or none",
                  cfg_get(cfg, K_TLS), cfg->v[K_TLS].origin);
        return EX_CONFIG;
    }
    if (cfg_get(cfg, K_AUTH) != NULL && pigeon_auth_mech_parse(cfg_get(cfg, K_AUTH), &so->auth)) {
        cli_error("invalid auth \"%s\" (from %s)", cfg_get(cfg, K_AUTH), cfg->v[K_AUTH].origin);
        return EX_CONFIG;
    }
    so->ca_file = cfg_get(cfg, K_CA_FILE);
    so->fingerprint = cfg_get(cfg, K_TLS_FINGERPRINT);
    int insecure = 0;
    so->insecure = cfg_bool(cfg_get(cfg, K_INSECURE), &insecure) == 0 && insecure;
    so->helo = cfg_get(cfg, K_HELO);
    so->user = cfg_get(cfg, K_USER);
    so->provider = cfg_get(cfg, K_PROVIDER);
    so->total_timeout_ms = seconds_ms(cfg_get(cfg, K_TIMEOUT));
    so->timeouts.connect_ms = seconds_ms(cfg_get(cfg, K_CONNECT_TIMEOUT));
    if (so->total_timeout_ms == 0)
        so->total_timeout_ms = 10 * 60 * 1000; /* a command should not hang for hours */
    if (so->insecure)
        fprintf(stderr, "pigeon: WARNING: --insecure: the server's certificate is NOT "
                        "verified; anyone on the path can read the password and the mail\n");
    int verp = cli_verp_plan(cfg, so); /* verp = yes: each recipient's sender (verp.h) */
    if (verp != 0)
        return verp;
    if (so->user != NULL && so->auth != PIGEON_AUTH_NONE) {
        int rc = resolve_secret(cfg, o, secret, err, sizeof err);
        if (rc != 0) {
            cli_error("%s", err);
            return rc;
        }
        if (*secret == NULL) {
            cli_error("--user %s needs a password: set PIGEON_PASSWORD, or use "
                      "--password-file, --password-command or the account's password",
                      so->user);
            return EX_CONFIG;
        }
        if (so->auth == PIGEON_AUTH_XOAUTH2)
            so->oauth_token = *secret;
        else
            so->password = *secret;
    }
    return 0;
}

/* Builds the SMTP options from the settings. Returns 0 or a sysexits code (printed). */
static int plan_init(struct conn_plan *plan, cfg_settings *cfg, const deliver_opts *o)
{
    memset(plan, 0, sizeof *plan);
    plan->o = o;
    plan->color = isatty(STDERR_FILENO);
    int rc = deliver_plan_opts(cfg, o, &plan->opts, &plan->secret);
    if (rc != 0)
        return rc;
    plan->opts.quit_after_data = 1; /* one message per connection (attempt()) */
    if (o->verbose) {
        plan->opts.transcript = transcript_to_stderr;
        plan->opts.transcript_ctx = plan;
        plan->opts.transcript_debug = o->verbose > 1;
    }
    return 0;
}

static void plan_cleanup(struct conn_plan *plan)
{
    secret_free(plan->secret);
    plan->secret = NULL;
}

/* The exit status for a result (sysexits.h). */
static int result_status(const pigeon_send_result *r)
{
    switch (r->status) {
    case PIGEON_SEND_SENT:
        return EX_OK;
    case PIGEON_SEND_PARTIAL:
        for (size_t i = 0; i < r->rcpt_count; i++)
            if (r->rcpts[i].status == PIGEON_RCPT_DEFERRED)
                return EX_TEMPFAIL;
        return EX_UNAVAILABLE;
    case PIGEON_SEND_DEFERRED:
        return r->fail_class == PIGEON_FAIL_PROTOCOL ? EX_PROTOCOL : EX_TEMPFAIL;
    default:
        break;
    }
    switch (r->fail_class) {
    case PIGEON_FAIL_NETWORK:
    case PIGEON_FAIL_DEFERRED:
        return EX_TEMPFAIL;
    case PIGEON_FAIL_AUTH:
        return EX_NOPERM;
    case PIGEON_FAIL_PROTOCOL:
        return EX_PROTOCOL;
    case PIGEON_FAIL_CONFIG:
        return EX_CONFIG;
    case PIGEON_FAIL_DATA:
        return EX_DATAERR;
    case PIGEON_FAIL_TLS: /* a certificate or mode problem: handshake failures are deferred */
    case PIGEON_FAIL_REJECTED:
    case PIGEON_FAIL_TOO_LARGE:
    default:
        return EX_UNAVAILABLE;
    }
}

static const char *status_name(pigeon_send_status s)
{
    switch (s) {
    case PIGEON_SEND_SENT:
        return "sent";
    case PIGEON_SEND_PARTIAL:
        return "partial";
    case PIGEON_SEND_DEFERRED:
        return "deferred";
    case PIGEON_SEND_FAILED:
        return "failed";
    default:
        return "failed";
    }
}

static const char *rcpt_status_name(pigeon_rcpt_status s)
{
    switch (s) {
    case PIGEON_RCPT_ACCEPTED:
        return "accepted";
    case PIGEON_RCPT_REJECTED:
        return "rejected";
    case PIGEON_RCPT_DEFERRED:
        return "deferred";
    default:
        return "pending";
    }
}

static void report_json(const pigeon_send_result *r, const char *message_id,
                        const struct conn_plan *plan, int attempts)
{
    json_writer w;
    json_init(&w, stdout);
    json_object_begin(&w);
    json_kv_string(&w, "status", status_name(r->status));
    json_kv_string(&w, "message_id", message_id);
    json_kv_string(&w, "server", plan->opts.host);
    json_kv_int(&w, "port", plan->opts.port);
    json_key(&w, "recipients");
    json_array_begin(&w);
    for (size_t i = 0; i < r->rcpt_count; i++) {
        const pigeon_rcpt_result *rc = &r->rcpts[i];
        json_object_begin(&w);
        json_kv_string(&w, "address", rc->address);
        json_kv_string(&w, "status", rcpt_status_name(rc->status));
        json_key(&w, "code");
        if (rc->code)
            json_int(&w, rc->code);
        else
            json_null(&w);
        json_kv_string(&w, "enhanced_code", rc->enhanced[0] ? rc->enhanced : NULL);
        json_kv_string(&w, "text", rc->text);
        json_object_end(&w);
    }
    json_array_end(&w);
    json_key(&w, "error");
    if (r->status == PIGEON_SEND_SENT) {
        json_null(&w);
    } else {
        json_object_begin(&w);
        json_kv_string(&w, "class", pigeon_fail_class_name(r->fail_class));
        json_kv_string(&w, "stage", r->stage);
        json_key(&w, "code");
        if (r->code)
            json_int(&w, r->code);
        else
            json_null(&w);
        json_kv_string(&w, "enhanced_code", r->enhanced[0] ? r->enhanced : NULL);
        json_kv_string(&w, "server_text", r->reply_text);
        json_kv_string(&w, "message", r->errmsg[0] ? r->errmsg : NULL);
        json_kv_string(&w, "hint", r->hint);
        json_object_end(&w);
    }
    json_kv_int(&w, "attempts", attempts);
    json_kv_int(&w, "duration_ms", r->duration_ms);
    json_object_end(&w);
    json_finish(&w);
}

/* One line per problem recipient, then the verdict. */
static void report_text(const pigeon_send_result *r, const char *message_id)
{
    if (r->status == PIGEON_SEND_SENT) {
        printf("sent %s to %zu recipient%s (%d%s%s)\n", message_id ? message_id : "message",
               r->rcpt_count, r->rcpt_count == 1 ? "" : "s", r->code, r->enhanced[0] ? " " : "",
               r->enhanced);
        return;
    }
    for (size_t i = 0; i < r->rcpt_count; i++) {
        const pigeon_rcpt_result *rc = &r->rcpts[i];
        if (rc->status == PIGEON_RCPT_ACCEPTED)
            fprintf(stderr, "pigeon: %s: accepted\n", rc->address);
        else if (rc->code != 0)
            fprintf(stderr, "pigeon: %s: %s: %d %s %s\n", rc->address, rcpt_status_name(rc->status),
                    rc->code, rc->enhanced, rc->text ? rc->text : "");
    }
    char reply[600] = "";
    if (r->code != 0) {
        const char *text = r->reply_text ? r->reply_text : "";
        snprintf(reply, sizeof reply, ": server said %d%s%s %.500s", r->code,
                 r->enhanced[0] ? " " : "", r->enhanced, text);
        for (char *p = reply; *p; p++)
            if (*p == '\n')
                *p = ' ';
    }
    cli_error("%s (%s%s%s)%s%s%s", status_name(r->status), pigeon_fail_class_name(r->fail_class),
              r->stage ? ", at " : "", r->stage ? r->stage : "", r->errmsg[0] ? ": " : "",
              r->errmsg, reply);
    if (r->hint != NULL)
        fprintf(stderr, "pigeon: hint: %s\n", r->hint);
}

/* Whether another quick try may help (nothing accepted yet, temporary failure). */
static int retryable(const pigeon_send_result *r)
{
    if (r->status == PIGEON_SEND_SENT || r->status == PIGEON_SEND_PARTIAL)
        return 0;
    for (size_t i = 0; i < r->rcpt_count; i++)
        if (r->rcpts[i].status == PIGEON_RCPT_ACCEPTED)
            return 0;
    return pigeon_send_result_is_temporary(r);
}

/* One attempt: connect, send (message or raw), quit. */
static void attempt(struct conn_plan *plan, pigeon_message *msg, const struct raw_job *raw,
                    pigeon_send_result *res)
{
    pigeon_smtp *s = NULL;
    pigeon_send_result_cleanup(res);
    pigeon_err err = pigeon_smtp_new(&plan->opts, &s);
    if (err != PIGEON_OK) {
        res->status = PIGEON_SEND_FAILED;
        res->fail_class = PIGEON_FAIL_CONFIG;
        res->err = err;
        snprintf(res->errmsg, sizeof res->errmsg, "%s",
                 err == PIGEON_ERR_CONFIG
                     ? "refusing to authenticate without TLS (--tls none): the password "
                       "would cross the network in clear"
                     : pigeon_strerror(err));
        return;
    }
    if (pigeon_smtp_connect(s, res) == PIGEON_OK) {
        if (msg != NULL)
            pigeon_smtp_send_message(s, msg, res);
        else
            pigeon_smtp_send_stream(s, raw->from, raw->rcpts, raw->nrcpts, raw->read, raw->read_ctx,
                                    raw->size, plan->o->raw_8bit, res);
        pigeon_smtp_quit(s);
    } else if (res->status == PIGEON_SEND_NONE) {
        res->status =
            pigeon_send_result_is_temporary(res) ? PIGEON_SEND_DEFERRED : PIGEON_SEND_FAILED;
    }
    pigeon_smtp_free(s);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Marks the raw job's recipients still worth trying (deferred or never tried). */
static void mark_deferred(const pigeon_send_result *r, const struct raw_job *raw,
                          unsigned char *flags)
{
    int per_rcpt = r->rcpt_count == raw->nrcpts;
    int temporary = r->status == PIGEON_SEND_DEFERRED ||
                    (r->status != PIGEON_SEND_SENT && pigeon_send_result_is_temporary(r));
    for (size_t i = 0; i < raw->nrcpts; i++) {
        if (per_rcpt)
            flags[i] = r->rcpts[i].status == PIGEON_RCPT_DEFERRED ||
                       (r->rcpts[i].status == PIGEON_RCPT_PENDING && temporary);
        else
            flags[i] = (unsigned char)temporary;
    }
}

static int run(cfg_settings *cfg, pigeon_message *msg, const struct raw_job *raw,
               const deliver_opts *o, const char *message_id)
{
    struct conn_plan plan;
    pigeon_send_result res;
    pigeon_send_result_init(&res);
    int status = plan_init(&plan, cfg, o);
    if (status != 0)
        goto done;
    int64_t start = now_ms();
    int64_t delay = 1000;
    int attempts = 0;
    for (;;) {
        attempts++;
        attempt(&plan, msg, raw, &res);
        /* A raw stream is read once: it cannot be sent again. */
        if (raw != NULL || !retryable(&res) || o->retry_for <= 0)
            break;
        int64_t left = start + (int64_t)o->retry_for * 1000 - now_ms();
        if (left <= delay)
            break;
        if (o->verbose)
            fprintf(stderr, "pigeon: %s; trying again in %" PRId64 " ms\n",
                    pigeon_fail_class_name(res.fail_class), delay);
        struct timespec ts = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        delay = delay * 2 > 30000 ? 30000 : delay * 2;
    }
    res.duration_ms = now_ms() - start;
    if (raw != NULL && o->rcpt_deferred != NULL)
        mark_deferred(&res, raw, o->rcpt_deferred);
    if (o->json)
        report_json(&res, message_id, &plan, attempts);
    else if (res.status != PIGEON_SEND_SENT || !o->quiet)
        report_text(&res, message_id);
    status = result_status(&res);
done:
    plan_cleanup(&plan);
    pigeon_send_result_cleanup(&res);
    return status;
}

int deliver_message(cfg_settings *cfg, pigeon_message *msg, const deliver_opts *o)
{
    const char *id = pigeon_message_get_message_id(msg);
    char bracketed[1024];
    if (id != NULL)
        snprintf(bracketed, sizeof bracketed, "<%s>", id);
    return run(cfg, msg, NULL, o, id ? bracketed : NULL);
}

int deliver_raw(cfg_settings *cfg, const char *envelope_from, const char *const *rcpts,
                size_t nrcpts, pigeon_read_fn read, void *read_ctx, int64_t size,
                const deliver_opts *o)
{
    struct raw_job raw = {envelope_from, rcpts, nrcpts, read, read_ctx, size};
    return run(cfg, NULL, &raw, o, o->message_id);
}
