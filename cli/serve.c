/*
 * serve.c - `pigeon serve --http-listen ADDR:PORT`: the HTTP submission API.
 *
 * Applications POST JSON messages; each is composed with the library exactly as
 * `pigeon send` composes its options, stored in the spool in a group commit, and answered
 * 202 only once that commit is durable; `pigeon daemon` then delivers it. The HTTP server
 * is lib/http (one epoll thread: keep-alive, pipelining, deadlines, TLS); the spool has
 * its own thread (serve_commit.c). SIGTERM or SIGINT: stop accepting, store and answer
 * what was received, exit 0.
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>

#include "cli.h"
#include "config.h"
#include "queue.h"
#include "sdnotify.h"
#include "serve.h"

#define DEFAULT_MAX_MESSAGE (10u * 1024 * 1024)

enum {
    OPT_HTTP_LISTEN = 0x300,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_MAX_MESSAGE,
    OPT_MAX_QUEUED,
    OPT_MAX_CONNECTIONS,
    OPT_ACCOUNT,
    OPT_NO_AUTH,
    OPT_SPOOL,
    OPT_SMTP_LISTEN,
    OPT_SMTPS_LISTEN,
    OPT_SMTP_TRUST_LOCAL,
    OPT_SMTP_MAX_RCPTS,
    OPT_SMTP_MAX_CONNS,
    OPT_SMTP_TIMEOUT,
    OPT_SMTP_HOSTNAME,
    OPT_SMTP_LOCAL_PLAIN_AUTH,
    OPT_TEMPLATES,
};

static const struct option longopts[] = {
    {"http-listen", required_argument, NULL, OPT_HTTP_LISTEN},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"max-message-size", required_argument, NULL, OPT_MAX_MESSAGE},
    {"max-queued", required_argument, NULL, OPT_MAX_QUEUED},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"account", required_argument, NULL, OPT_ACCOUNT},
    {"no-auth", no_argument, NULL, OPT_NO_AUTH},
    {"spool", required_argument, NULL, OPT_SPOOL},
    {"smtp-listen", required_argument, NULL, OPT_SMTP_LISTEN},
    {"smtps-listen", required_argument, NULL, OPT_SMTPS_LISTEN},
    {"smtp-trust-local", no_argument, NULL, OPT_SMTP_TRUST_LOCAL},
    {"smtp-max-recipients", required_argument, NULL, OPT_SMTP_MAX_RCPTS},
    {"smtp-max-connections", required_argument, NULL, OPT_SMTP_MAX_CONNS},
    {"smtp-timeout", required_argument, NULL, OPT_SMTP_TIMEOUT},
    {"smtp-hostname", required_argument, NULL, OPT_SMTP_HOSTNAME},
    {"smtp-local-plain-auth", no_argument, NULL, OPT_SMTP_LOCAL_PLAIN_AUTH},
    {"templates", required_argument, NULL, OPT_TEMPLATES},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What the command line says. */
typedef struct serve_opts {
    const char *listen;    /* --http-listen */
    const char *tls_cert;  /* --tls-cert */
    const char *tls_key;   /* --tls-key */
    const char *spool;     /* --spool */
    const char *account;   /* --account */
    const char *templates; /* --templates */
    size_t max_message;    /* --max-message-size */
    size_t max_queued;     /* --max-queued */
    unsigned max_conns;    /* --max-connections */
    int no_auth;           /* --no-auth */
    serve_smtp_opts smtp;  /* --smtp-* */
} serve_opts;

void serve_handle(void *arg, pg_http_exchange *ex);

static int parse_size(const char *arg, const char *option, size_t *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(arg, &end, 10);
    if (end == arg || *end != '\0' || arg[0] == '-' || v == 0 || v > (1ull << 40)) {
        cli_error("serve: %s needs a positive number, not \"%s\"", option, arg);
        return EX_USAGE;
    }
    *out = (size_t)v;
    return 0;
}

/* smtp_listen = ADDR:PORT at the top of the configuration file, when the command line
 * names no listener (pigeon.conf(5)). 0, or an exit status. */
static int config_listen(serve_opts *o)
{
    static char value[256];
    char path[4096], err[512];
    int found = cfg_find_file(path, sizeof path);
    if (found < 0) {
        cli_error("serve: PIGEON_CONFIG names a file that does not exist: %s", path);
        return EX_CONFIG;
    }
    if (found == 0)
        return 0;
    int r = cfg_top_value(path, "smtp_listen", value, sizeof value, err, sizeof err);
    if (r < 0) {
        cli_error("serve: %s", err);
        return EX_CONFIG;
    }
    if (r > 0 && value[0] != '\0')
        o->smtp.listen = value;
    return 0;
}

static int parse_args(int argc, char **argv, serve_opts *o)
{
    char quoted[256];
    int opt, rc = 0;
    size_t conns = 0;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_HTTP_LISTEN:
            o->listen = optarg;
            break;
        case OPT_TLS_CERT:
            o->tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            o->tls_key = optarg;
            break;
        case OPT_SPOOL:
            o->spool = optarg;
            break;
        case OPT_ACCOUNT:
            o->account = optarg;
            break;
        case OPT_TEMPLATES:
            o->templates = optarg;
            break;
        case OPT_NO_AUTH:
            o->no_auth = 1;
            break;
        case OPT_MAX_MESSAGE:
            rc = parse_size(optarg, "--max-message-size", &o->max_message);
            break;
        case OPT_MAX_QUEUED:
            rc = parse_size(optarg, "--max-queued", &o->max_queued);
            break;
        case OPT_MAX_CONNECTIONS:
            rc = parse_size(optarg, "--max-connections", &conns);
            o->max_conns = conns > 1000000 ? 1000000 : (unsigned)conns;
            break;
        case OPT_SMTP_LISTEN:
            o->smtp.listen = optarg;
            break;
        case OPT_SMTPS_LISTEN:
            o->smtp.tls_listen = optarg;
            break;
        case OPT_SMTP_TRUST_LOCAL:
            o->smtp.trust_local = 1;
            break;
        case OPT_SMTP_LOCAL_PLAIN_AUTH:
            o->smtp.local_plain_auth = 1;
            break;
        case OPT_SMTP_HOSTNAME:
            o->smtp.hostname = optarg;
            break;
        case OPT_SMTP_MAX_RCPTS:
        case OPT_SMTP_MAX_CONNS:
        case OPT_SMTP_TIMEOUT:
            rc = parse_size(optarg,
                            opt == OPT_SMTP_MAX_RCPTS   ? "--smtp-max-recipients"
                            : opt == OPT_SMTP_MAX_CONNS ? "--smtp-max-connections"
                                                        : "--smtp-timeout",
                            &conns);
            if (conns > 1000000)
                conns = 1000000;
            if (opt == OPT_SMTP_MAX_RCPTS)
                o->smtp.max_rcpts = (unsigned)conns;
            else if (opt == OPT_SMTP_MAX_CONNS)
                o->smtp.max_conns = (unsigned)conns;
            else
                o->smtp.timeout_s = (unsigned)conns;
            break;
        case 'h':
            cli_serve_usage(stdout);
            return -1;
        case ':':
            cli_error("serve: %s needs a value (see pigeon help serve)",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        default:
            cli_error("serve: unknown option %s (see pigeon help serve)",
                      cli_typed_option(argv, quoted, sizeof quoted));
            return EX_USAGE;
        }
        if (rc != 0)
            return rc;
    }
    if (optind < argc) {
        cli_error("serve: unexpected argument \"%s\"",
                  cli_shorten(argv[optind], quoted, sizeof quoted));
        return EX_USAGE;
    }
    if (o->smtp.hostname != NULL) {
        for (const char *p = o->smtp.hostname; *p; p++) {
            if (*p <= ' ' || *p >= 0x7f || *p == ';' || *p == '(' || *p == ')') {
                cli_error("serve: --smtp-hostname: not a host name");
                return EX_USAGE;
            }
        }
    }
    if (o->listen == NULL && o->smtp.listen == NULL && o->smtp.tls_listen == NULL &&
        (rc = config_listen(o)) != 0)
        return rc;
    if (o->listen == NULL && o->smtp.listen == NULL && o->smtp.tls_listen == NULL) {
        cli_error("serve: --http-listen or --smtp-listen ADDRESS:PORT is required");
        return EX_USAGE;
    }
    if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
        cli_error("serve: --tls-cert and --tls-key go together");
        return EX_USAGE;
    }
    /* Without keys anyone who can connect may send: only on loopback. */
    if (o->no_auth && o->listen != NULL && strncmp(o->listen, "127.", 4) != 0 &&
        strncmp(o->listen, "[::1]:", 6) != 0) {
        cli_error("serve: --no-auth is allowed only on a loopback address (127.0.0.0/8, [::1])");
        return EX_USAGE;
    }
    return 0;
}

static int setup_metrics(serve_ctx *ctx)
{
    static const char *const labels[2] = {"route", "status"};
    static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,   0.1,   0.25,   0.5,   1,    2.5};
    static const double sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
    ctx->metrics = pigeon_metrics_new();
    if (ctx->metrics == NULL ||
        pigeon_metrics_add_counter(ctx->metrics, "pigeon_http_requests_total",
                                   "HTTP requests answered, by route and status", 2, labels,
                                   &ctx->requests) != PIGEON_OK ||
        pigeon_metrics_add_histogram(ctx->metrics, "pigeon_http_request_duration_seconds",
                                     "Time from a complete request to its answer", 2, labels,
                                     bounds, sizeof bounds / sizeof bounds[0],
                                     &ctx->latency) != PIGEON_OK ||
        pigeon_metrics_add_counter(ctx->metrics, "pigeon_spool_commits_total",
                                   "Group commits of submitted messages", 0, NULL,
                                   &ctx->commits) != PIGEON_OK ||
        pigeon_metrics_add_histogram(ctx->metrics, "pigeon_spool_commit_messages",
                                     "Messages stored by one group commit", 0, NULL, sizes,
                                     sizeof sizes / sizeof sizes[0], &ctx->committed) != PIGEON_OK)
        return -1;
    return 0;
}

static int run(serve_ctx *ctx, const serve_opts *o)
{
    char err[512];
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    /* Blocked before any thread starts, so that only sigtimedwait below sees them. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sdnotify_init(); /* before any thread: it edits the environment */
    pg_http_server_opts ho = {
        .listen = o->listen,
        .handler = serve_handle,
        .handler_arg = ctx,
        .limits = {.max_body = ctx->max_message * 2 + 65536, .max_headers = 64},
        .max_connections = o->max_conns ? o->max_conns : 16384,
        .tls_cert = o->tls_cert,
        .tls_key = o->tls_key,
        .problem_errors = 1,
    };
    /* Every connection is a descriptor: take what the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    pigeon_err e = o->listen ? pg_http_server_new(&ho, &ctx->http, err, sizeof err) : PIGEON_OK;
    if (e != PIGEON_OK) {
        cli_error("serve: %s", err);
        return e == PIGEON_ERR_INVALID ? EX_USAGE
               : e == PIGEON_ERR_TLS   ? EX_CONFIG
                                       : EX_UNAVAILABLE;
    }
    serve_keys_reload(ctx);
    if (o->smtp.listen != NULL || o->smtp.tls_listen != NULL) {
        serve_smtp_opts so = o->smtp;
        so.tls_cert = o->tls_cert;
        so.tls_key = o->tls_key;
        int rc = serve_smtp_start(ctx, &so);
        if (rc != 0) {
            serve_smtp_stop(ctx);
            pg_http_server_free(ctx->http);
            ctx->http = NULL;
            return rc;
        }
    }
    if (serve_committer_start(ctx) != 0 ||
        (ctx->http != NULL && pg_http_server_start(ctx->http) != PIGEON_OK)) {
        cli_error("serve: cannot start threads");
        return EX_OSERR;
    }
    if (ctx->http != NULL)
        fprintf(stderr, "pigeon: serving HTTP on %s (port %u)%s\n", o->listen,
                pg_http_server_port(ctx->http), o->tls_cert ? " with TLS" : "");
    if (o->smtp.listen != NULL)
        fprintf(stderr, "pigeon: serving SMTP on %s (smtp port %u)%s\n", o->smtp.listen,
                serve_smtp_port(ctx, 0), o->tls_cert ? " with STARTTLS" : "");
    if (o->smtp.tls_listen != NULL)
        fprintf(stderr, "pigeon: serving SMTP with implicit TLS on %s (smtps port %u)\n",
                o->smtp.tls_listen, serve_smtp_port(ctx, 1));
    sdnotify_send("READY=1\nSTATUS=accepting messages");
    int sig;
    do {
        /* Signals end the wait at once; the tick is for the systemd watchdog, if any. */
        struct timespec tick = sdnotify_tick();
        sdnotify_watchdog();
        sig = sigtimedwait(&set, NULL, &tick);
    } while (sig != SIGTERM && sig != SIGINT);
    sdnotify_send("STOPPING=1\nSTATUS=storing and answering what was taken");
    /* Stop taking requests, store and answer what was taken, then close. */
    serve_smtp_quiesce(ctx);
    serve_committer_stop(ctx);
    serve_smtp_stop(ctx);
    pg_http_server_free(ctx->http);
    ctx->http = NULL;
    pthread_cond_destroy(&ctx->com.wake);
    pthread_mutex_destroy(&ctx->com.lock);
    return 0;
}

int cli_serve_run(int argc, char **argv)
{
    serve_opts o;
    serve_ctx ctx;
    memset(&o, 0, sizeof o);
    memset(&ctx, 0, sizeof ctx);
    int status = parse_args(argc, argv, &o);
    if (status != 0)
        return status < 0 ? 0 : status;
    /* Each request allocates and frees a few kilobytes on two threads: keep freed memory
     * instead of giving it back to the kernel and faulting it in again (glibc trims at
     * 128 KiB of free top by default, with an mprotect or brk each time). */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 4 << 20);
    ctx.account = o.account;
    ctx.max_message = o.max_message ? o.max_message : DEFAULT_MAX_MESSAGE;
    ctx.max_queued = o.max_queued;
    ctx.templates = o.templates;
    ctx.no_auth = o.no_auth;
    pthread_mutex_init(&ctx.keys_lock, NULL);
    if (setup_metrics(&ctx) != 0) {
        cli_error("serve: out of memory");
        status = EX_OSERR;
        goto done;
    }
    status = queue_spool_open(o.spool, PIGEON_SPOOL_CREATE, &ctx.spool);
    if (status == 0)
        status = run(&ctx, &o);
done:
    pigeon_spool_close(ctx.spool);
    pigeon_metrics_free(ctx.metrics);
    free(ctx.keys);
    free(ctx.tokens);
    free(ctx.tokens_ms);
    pthread_mutex_destroy(&ctx.keys_lock);
    return status;
}

void cli_serve_usage(FILE *out)
{
    fputs("usage: pigeon serve [--http-listen ADDRESS:PORT] [--smtp-listen ADDRESS:PORT]\n"
          "                    [OPTIONS]\n"
          "\n"
          "Takes messages over HTTP and stores them in the spool, answering only once they\n"
          "are on disk; `pigeon daemon` delivers them. Concurrent requests share one spool\n"
          "commit. Routes: POST /v1/messages, POST /v1/messages/batch, GET and DELETE\n"
          "/v1/messages/ID, GET /healthz, GET /metrics (docs/openapi.yaml).\n"
          "\n"
          "  --http-listen ADDR:PORT  numeric address to listen on (127.0.0.1:8025,\n"
          "                          [::1]:8025; port 0 picks one, printed on stderr)\n"
          "  --tls-cert FILE          serve HTTPS with this PEM certificate chain\n"
          "  --tls-key FILE           and this PEM private key\n"
          "  --max-message-size N     largest composed message in bytes (10485760): 413\n"
          "  --max-queued N           refuse new messages with 503 while the spool holds N\n"
          "  --max-connections N      open connections at most (16384)\n"
          "  --account NAME           account for requests that name none (with --no-auth)\n"
          "  --templates DIR          named templates: \"template\": \"NAME\" takes subject,\n"
          "                          text, html, markdown from DIR/NAME.json (with vars)\n"
          "  --no-auth                no API keys (only on a loopback address)\n"
          "  --spool PATH             the spool file (as for pigeon queue)\n"
          "  --smtp-listen ADDR:PORT  also (or only) take mail over SMTP submission\n"
          "                          (or smtp_listen in the configuration file):\n"
          "                          EHLO, STARTTLS (with --tls-cert), AUTH PLAIN/LOGIN\n"
          "                          with an API key as the password; 250 once on disk\n"
          "  --smtps-listen ADDR:PORT the same with implicit TLS (port 465 style)\n"
          "  --smtp-trust-local       loopback SMTP clients may send without AUTH\n"
          "                          (through --account)\n"
          "  --smtp-local-plain-auth  loopback SMTP clients may AUTH without TLS\n"
          "                          (otherwise AUTH needs STARTTLS or --smtps-listen)\n"
          "  --smtp-max-recipients N  recipients per message (100): 452 beyond\n"
          "  --smtp-max-connections N open SMTP connections at most (1000): 421 beyond\n"
          "  --smtp-timeout SECONDS   idle time before 421 and close (60)\n"
          "  --smtp-hostname NAME     the name in the greeting and Received (host name)\n"
          "  -h, --help               show this help\n"
          "\n"
          "Requests carry \"Authorization: Bearer KEY\" with a key from `pigeon key create`.\n"
          "Exit status: 0 after SIGTERM or SIGINT, 64 usage error, 69 cannot listen,\n"
          "78 TLS certificate or key unusable, 74 or 75 spool errors.\n",
          out);
}
