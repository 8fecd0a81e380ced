/*
 * check.c - `pigeon check`: a doctor for the connection to a submission server.
 *
 * In the spirit of swaks and `openssl s_client -starttls smtp`: every address the name
 * resolves to with its TCP connect time, then the SMTP session up to the step asked for
 * (--quit-after connect|tls|ehlo|auth): TLS version, cipher and certificate, the EHLO
 * capabilities before and after STARTTLS, an AUTH attempt with --user, and a one-line
 * verdict with the fix when something is wrong (the wrong TLS mode for the port first).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "deliver.h"
#include "json.h"
#include "pigeon/smtp.h"
#include "secret.h"

#define MAX_ADDRS 16 /* addresses probed per name */

/* How far `pigeon check` goes. */
enum quit_after { QUIT_CONNECT, QUIT_TLS, QUIT_EHLO, QUIT_AUTH };

/* One resolved address and what connecting to it did. */
struct probe {
    char addr[64];      /* numeric address */
    int64_t connect_us; /* connect time in microseconds, or -1 */
    char error[96];     /* why it failed, or "" */
};

/* Everything check found, for the text and JSON reports. */
struct check_report {
    const char *host;                   /* the server */
    unsigned port;                      /* its port */
    const char *tls_mode;               /* the TLS mode used */
    struct probe probes[MAX_ADDRS];     /* per address */
    int nprobes;                        /* number of probes */
    char resolve_error[160];            /* getaddrinfo's failure, or "" */
    int session_ran;                    /* the SMTP session was attempted */
    pigeon_send_result res;             /* its outcome */
    char greeting[256];                 /* the greeting text */
    int has_tls;                        /* TLS details known */
    pigeon_smtp_tls_details tls;        /* TLS details */
    int has_caps, has_caps_before;      /* capabilities known (after; before STARTTLS) */
    pigeon_smtp_caps caps, caps_before; /* capabilities */
    const char *auth_used;              /* the mechanism AUTH used, or NULL */
    int ok;                             /* the verdict */
    char verdict[512];                  /* one line */
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Times a non-blocking TCP connect to one address. */
static void probe_connect(struct probe *p, const struct addrinfo *ai, int timeout_ms)
{
    int64_t start = mono_us();
    p->connect_us = -1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(p->error, sizeof p->error, "socket: %s", strerror(errno));
        return;
    }
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        rc = poll(&pfd, 1, timeout_ms);
        if (rc == 0) {
            snprintf(p->error, sizeof p->error, "timed out after %d ms", timeout_ms);
            close(fd);
            return;
        }
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        errno = soerr;
        rc = soerr == 0 ? 0 : -1;
    }
    if (rc != 0)
        snprintf(p->error, sizeof p->error, "%s", strerror(errno));
    else
        p->connect_us = mono_us() - start;
    close(fd);
}

static void probe_all(struct check_report *r, int timeout_ms)
{
    struct addrinfo hints = {0}, *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", r->port);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    int rc = getaddrinfo(r->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(r->resolve_error, sizeof r->resolve_error, "cannot resolve %s: %s", r->host,
                 gai_strerror(rc));
        return;
    }
    for (struct addrinfo *ai = res; ai != NULL && r->nprobes < MAX_ADDRS; ai = ai->ai_next) {
        struct probe *p = &r->probes[r->nprobes++];
        getnameinfo(ai->ai_addr, ai->ai_addrlen, p->addr, sizeof p->addr, NULL, 0, NI_NUMERICHOST);
        probe_connect(p, ai, timeout_ms);
    }
    freeaddrinfo(res);
}

/* The transcript of the session, kept for -v. */
static void transcript(void *ctx, pigeon_transcript_dir dir, int64_t unix_ms, const char *line)
{
    (void)ctx;
    (void)unix_ms;
    static const char *const tags[] = {"C:", "S:", "* ", "  "};
    fprintf(stderr, "%s %s\n", (unsigned)dir < 4 ? tags[dir] : "? ", line);
}

static void caps_line(FILE *out, const pigeon_smtp_caps *c)
{
    fprintf(out, "%s%s%s%s%s%s%s%s", c->starttls ? " STARTTLS" : "",
            c->pipelining ? " PIPELINING" : "", c->eightbitmime ? " 8BITMIME" : "",
            c->smtputf8 ? " SMTPUTF8" : "", c->enhanced_codes ? " ENHANCEDSTATUSCODES" : "",
            c->dsn ? " DSN" : "", c->chunking ? " CHUNKING" : "", c->size_offered ? " SIZE" : "");
    if (c->size_max)
        fprintf(out, "=%" PRIu64, c->size_max);
    if (c->auth[0])
        fprintf(out, " AUTH(%s)", c->auth);
    fputc('\n', out);
}

static void report_text(const struct check_report *r)
{
    printf("server:   %s port %u, TLS mode %s\n", r->host, r->port, r->tls_mode);
    if (r->resolve_error[0])
        printf("resolve:  %s\n", r->resolve_error);
    for (int i = 0; i < r->nprobes; i++) {
        const struct probe *p = &r->probes[i];
        if (p->connect_us >= 0)
            printf("connect:  %-40s %.3f ms\n", p->addr, (double)p->connect_us / 1000.0);
        else
            printf("connect:  %-40s failed: %s\n", p->addr, p->error);
    }
    if (r->greeting[0])
        printf("greeting: %s\n", r->greeting);
    if (r->has_caps_before) {
        printf("EHLO before TLS:");
        caps_line(stdout, &r->caps_before);
    }
    if (r->has_tls) {
        const pigeon_smtp_tls_details *t = &r->tls;
        printf("TLS:      %s %s\n", t->active ? t->version : "(not established)", t->cipher);
        printf("  subject:  %s\n  issuer:   %s\n  SANs:     %s\n  expires:  %s\n"
               "  sha256:   %s\n  verify:   %s\n",
               t->subject, t->issuer, t->sans, t->not_after, t->fingerprint,
               t->verify_result == 0 ? "ok" : t->verify_text);
    }
    if (r->has_caps) {
        printf("EHLO%s:", r->has_caps_before ? " after TLS" : "");
        caps_line(stdout, &r->caps);
    }
    if (r->auth_used != NULL)
        printf("AUTH:     %s accepted\n", r->auth_used);
    printf("verdict:  %s %s\n", r->ok ? "OK" : "FAIL", r->verdict);
    if (!r->ok && r->res.hint != NULL)
        printf("fix:      %s\n", r->res.hint);
}

static void json_caps(json_writer *w, const char *key, const pigeon_smtp_caps *c)
{
    json_key(w, key);
    json_object_begin(w);
    json_kv_bool(w, "starttls", c->starttls);
    json_kv_bool(w, "pipelining", c->pipelining);
    json_kv_bool(w, "8bitmime", c->eightbitmime);
    json_kv_bool(w, "smtputf8", c->smtputf8);
    json_kv_bool(w, "enhancedstatuscodes", c->enhanced_codes);
    json_kv_bool(w, "dsn", c->dsn);
    json_kv_bool(w, "chunking", c->chunking);
    json_key(w, "size");
    if (c->size_offered)
        json_int(w, (int64_t)c->size_max);
    else
        json_null(w);
    json_kv_string(w, "auth", c->auth);
    json_object_end(w);
}

static void report_json(const struct check_report *r)
{
    json_writer w;
    json_init(&w, stdout);
    json_object_begin(&w);
    json_kv_string(&w, "host", r->host);
    json_kv_int(&w, "port", r->port);
    json_kv_string(&w, "tls_mode", r->tls_mode);
    json_kv_string(&w, "resolve_error", r->resolve_error[0] ? r->resolve_error : NULL);
    json_key(&w, "addresses");
    json_array_begin(&w);
    for (int i = 0; i < r->nprobes; i++) {
        json_object_begin(&w);
        json_kv_string(&w, "address", r->probes[i].addr);
        json_key(&w, "connect_ms");
        if (r->probes[i].connect_us >= 0)
            json_double(&w, (double)r->probes[i].connect_us / 1000.0);
        else
            json_null(&w);
        json_kv_string(&w, "error", r->probes[i].error[0] ? r->probes[i].error : NULL);
        json_object_end(&w);
    }
    json_array_end(&w);
    json_kv_string(&w, "greeting", r->greeting[0] ? r->greeting : NULL);
    if (r->has_caps_before)
        json_caps(&w, "capabilities_before_tls", &r->caps_before);
    if (r->has_caps)
        json_caps(&w, "capabilities", &r->caps);
    if (r->has_tls) {
        json_key(&w, "tls");
        json_object_begin(&w);
        json_kv_bool(&w, "established", r->tls.active);
        json_kv_string(&w, "version", r->tls.version);
        json_kv_string(&w, "cipher", r->tls.cipher);
        json_kv_string(&w, "subject", r->tls.subject);
        json_kv_string(&w, "issuer", r->tls.issuer);
        json_kv_string(&w, "sans", r->tls.sans);
        json_kv_string(&w, "not_after", r->tls.not_after);
        json_kv_string(&w, "sha256", r->tls.fingerprint);
        json_kv_bool(&w, "verified", r->tls.verify_result == 0);
        json_kv_string(&w, "verify_text", r->tls.verify_text);
        json_object_end(&w);
    }
    json_kv_string(&w, "auth", r->auth_used);
    json_kv_bool(&w, "ok", r->ok);
    json_kv_string(&w, "verdict", r->verdict);
    if (r->session_ran && r->res.fail_class != PIGEON_FAIL_NONE) {
        json_key(&w, "error");
        json_object_begin(&w);
        json_kv_string(&w, "class", pigeon_fail_class_name(r->res.fail_class));
        json_kv_string(&w, "stage", r->res.stage);
        json_kv_int(&w, "code", r->res.code);
        json_kv_string(&w, "server_text", r->res.reply_text);
        json_kv_string(&w, "message", r->res.errmsg);
        json_kv_string(&w, "hint", r->res.hint);
        json_object_end(&w);
    }
    json_object_end(&w);
    json_finish(&w);
}

/* Runs the SMTP session and records what it showed. */
static void run_session(struct check_report *r, pigeon_smtp_opts *so)
{
    pigeon_smtp *s = NULL;
    r->session_ran = 1;
    if (pigeon_smtp_new(so, &s) != PIGEON_OK) {
        r->res.fail_class = PIGEON_FAIL_CONFIG;
        snprintf(r->res.errmsg, sizeof r->res.errmsg,
                 "refusing to authenticate without TLS (--tls none)");
        return;
    }
    pigeon_smtp_connect(s, &r->res);
    snprintf(r->greeting, sizeof r->greeting, "%s", pigeon_smtp_greeting(s));
    r->has_tls = pigeon_smtp_tls_info(s, &r->tls) == 0;
    const pigeon_smtp_caps *c = pigeon_smtp_capabilities(s);
    if (c != NULL && (c->esmtp || c->server_name[0] != '\0')) {
        r->caps = *c;
        r->has_caps = 1;
    }
    c = pigeon_smtp_capabilities_before_tls(s);
    if (c != NULL) {
        r->caps_before = *c;
        r->has_caps_before = 1;
    }
    if (pigeon_smtp_auth_used(s) != PIGEON_AUTH_NONE)
        r->auth_used = pigeon_auth_mech_name(pigeon_smtp_auth_used(s));
    pigeon_smtp_quit(s);
    pigeon_smtp_free(s);
}

static void verdict(struct check_report *r, enum quit_after qa)
{
    int any = 0;
    for (int i = 0; i < r->nprobes; i++)
        any |= r->probes[i].connect_us >= 0;
    if (r->resolve_error[0]) {
        snprintf(r->verdict, sizeof r->verdict, "%s", r->resolve_error);
        return;
    }
    if (!any) {
        snprintf(r->verdict, sizeof r->verdict, "no address of %s accepts connections on port %u",
                 r->host, r->port);
        return;
    }
    if (qa == QUIT_CONNECT) {
        r->ok = 1;
        snprintf(r->verdict, sizeof r->verdict, "%s:%u accepts TCP connections", r->host, r->port);
        return;
    }
    if (r->res.fail_class != PIGEON_FAIL_NONE) {
        snprintf(r->verdict, sizeof r->verdict, "%s failure at %s: %.300s%s%.150s",
                 pigeon_fail_class_name(r->res.fail_class), r->res.stage ? r->res.stage : "?",
                 r->res.errmsg, r->res.reply_text ? " — server said: " : "",
                 r->res.reply_text ? r->res.reply_text : "");
        for (char *p = r->verdict; *p; p++)
            if (*p == '\n')
                *p = ' ';
        return;
    }
    r->ok = 1;
    snprintf(r->verdict, sizeof r->verdict, "%s:%u speaks SMTP%s%s%s", r->host, r->port,
             r->has_tls && r->tls.active ? " over " : " without TLS",
             r->has_tls && r->tls.active ? r->tls.version : "",
             r->auth_used ? ", and the login works" : "");
}

/* Splits "host[:port]" / "[v6]:port" into the settings. Returns 0 or -1. */
static int parse_target(cfg_settings *cfg, const char *target)
{
    char host[256];
    const char *port = NULL;
    if (target[0] == '[') {
        const char *end = strchr(target, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return -1;
        snprintf(host, sizeof host, "%.*s", (int)(end - target - 1), target + 1);
        port = end[1] == ':' ? end + 2 : NULL;
    } else {
        const char *colon = strrchr(target, ':');
        if (colon != NULL && strchr(target, ':') == colon) {
            snprintf(host, sizeof host, "%.*s", (int)(colon - target), target);
            port = colon + 1;
        } else {
            snprintf(host, sizeof host, "%s", target);
        }
    }
    if (host[0] == '\0' || cfg_set(cfg, K_HOST, host, CFG_CLI, "argument") != 0)
        return -1;
    if (port != NULL) {
        char *end = NULL;
        long p = strtol(port, &end, 10);
        if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
            return -1;
        if (cfg_set(cfg, K_PORT, port, CFG_CLI, "argument") != 0)
            return -1;
    }
    return 0;
}

static int parse_quit_after(const char *v, enum quit_after *qa)
{
    static const char *const names[] = {"connect", "tls", "ehlo", "auth"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, names[i]) == 0) {
            *qa = (enum quit_after)i;
            return 0;
        }
    }
    return -1;
}

int cli_check_run(int argc, char **argv)
{
    enum { OPT_QUIT_AFTER = CLI_OPT_CONN_END };
    static const struct option longopts[] = {
        CLI_CONN_LONGOPTS,
        {"quit-after", required_argument, NULL, OPT_QUIT_AFTER},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cfg_settings cfg;
    deliver_opts dopts = {0};
    struct check_report *r = calloc(1, sizeof *r);
    const char *account = NULL;
    enum quit_after qa = QUIT_AUTH;
    char err[600], *secret = NULL;
    int status = 0, opt;
    memset(&cfg, 0, sizeof cfg);
    if (r == NULL) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    pigeon_send_result_init(&r->res);
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":hv", longopts, NULL)) != -1) {
        if (opt == 'h') {
            cli_check_usage(stdout);
            goto done;
        }
        if (opt == OPT_QUIT_AFTER) {
            if (parse_quit_after(optarg, &qa) != 0) {
                cli_error("invalid --quit-after \"%s\": expected connect, tls, ehlo or auth",
                          optarg);
                status = EX_USAGE;
                goto done;
            }
            continue;
        }
        status = cli_conn_option(&cfg, &account, &dopts, opt, optarg);
        if (status < 0) {
            char quoted[128];
            cli_error("check: %s %s (see pigeon help check)",
                      opt == ':' ? "missing value for" : "unknown option",
                      cli_typed_option(argv, quoted, sizeof quoted));
            status = EX_USAGE;
        }
        if (status != 0)
            goto done;
    }
    if (optind < argc && (optind + 1 != argc || parse_target(&cfg, argv[optind]) != 0)) {
        cli_error("check: expected one HOST[:PORT] (see pigeon help check)");
        status = EX_USAGE;
        goto done;
    }
    if ((status = settings_load(&cfg, account, err, sizeof err)) != 0 ||
        (status = settings_finish(&cfg, NULL, NULL, err, sizeof err)) != 0) {
        cli_error("%s", err);
        goto done;
    }
    r->host = cfg_get(&cfg, K_HOST);
    r->port = (unsigned)atoi(cfg_get(&cfg, K_PORT));
    r->tls_mode = cfg_get(&cfg, K_TLS);
    int connect_timeout =
        cfg_get(&cfg, K_CONNECT_TIMEOUT) ? atoi(cfg_get(&cfg, K_CONNECT_TIMEOUT)) * 1000 : 10000;
    probe_all(r, connect_timeout);
    if (qa != QUIT_CONNECT && r->resolve_error[0] == '\0') {
        pigeon_smtp_opts so;
        pigeon_smtp_opts_init(&so);
        so.host = r->host;
        so.port = (uint16_t)r->port;
        pigeon_tls_mode_parse(r->tls_mode, &so.tls);
        so.ca_file = cfg_get(&cfg, K_CA_FILE);
        so.fingerprint = cfg_get(&cfg, K_TLS_FINGERPRINT);
        int insecure = 0;
        so.insecure = cfg_bool(cfg_get(&cfg, K_INSECURE), &insecure) == 0 && insecure;
        so.helo = cfg_get(&cfg, K_HELO);
        so.provider = cfg_get(&cfg, K_PROVIDER);
        so.timeouts.connect_ms = connect_timeout;
        so.total_timeout_ms =
            cfg_get(&cfg, K_TIMEOUT) ? atoi(cfg_get(&cfg, K_TIMEOUT)) * 1000 : 60000;
        if (dopts.verbose) {
            so.transcript = transcript;
            so.transcript_debug = dopts.verbose > 1;
        }
        so.auth = PIGEON_AUTH_NONE;
        so.stop_after = qa == QUIT_TLS    ? PIGEON_STOP_TLS
                        : qa == QUIT_EHLO ? PIGEON_STOP_EHLO
                                          : PIGEON_STOP_NONE;
        /* AUTH is tried only when a login was given on the command line or the account. */
        if (qa == QUIT_AUTH && cfg_get(&cfg, K_USER) != NULL) {
            if (dopts.password_file)
                secret = secret_from_file(dopts.password_file, 1, err, sizeof err);
            else if (dopts.password_command)
                secret =
                    secret_from_command(dopts.password_command,
                                        cfg_get(&cfg, K_PASSWORD_COMMAND_TIMEOUT)
                                            ? atoi(cfg_get(&cfg, K_PASSWORD_COMMAND_TIMEOUT)) * 1000
                                            : 0,
                                        NULL, err, sizeof err);
            else if (getenv("PIGEON_PASSWORD"))
                secret = strdup(getenv("PIGEON_PASSWORD"));
            else if (cfg_get(&cfg, K_PASSWORD))
                secret = strdup(cfg_get(&cfg, K_PASSWORD));
            if (secret != NULL) {
                so.user = cfg_get(&cfg, K_USER);
                so.password = secret;
                so.auth = PIGEON_AUTH_AUTO;
                if (cfg_get(&cfg, K_AUTH))
                    pigeon_auth_mech_parse(cfg_get(&cfg, K_AUTH), &so.auth);
            }
        }
        if (so.insecure)
            fprintf(stderr, "pigeon: WARNING: --insecure: the certificate is NOT verified\n");
        run_session(r, &so);
    }
    verdict(r, qa);
    if (dopts.json)
        report_json(r);
    else
        report_text(r);
    status = r->ok
                 ? 0
                 : (r->session_ran && r->res.fail_class == PIGEON_FAIL_AUTH       ? EX_NOPERM
                    : r->session_ran && r->res.fail_class == PIGEON_FAIL_PROTOCOL ? EX_PROTOCOL
                                                                                  : EX_UNAVAILABLE);
done:
    secret_free(secret);
    pigeon_send_result_cleanup(&r->res);
    free(r);
    cfg_cleanup(&cfg);
    return status;
}

void cli_check_usage(FILE *out)
{
    fputs("usage: pigeon check [--provider NAME | --account NAME | HOST[:PORT]] [OPTIONS]\n"
          "\n"
          "Diagnoses the connection: every address and its connect time, TLS version,\n"
          "cipher and certificate (subject, issuer, SANs, expiry, verification), the EHLO\n"
          "capabilities before and after STARTTLS, and with --user an AUTH attempt; then a\n"
          "one-line verdict and, when something is wrong, the fix. Sends no mail.\n"
          "  --quit-after STEP       stop after connect, tls, ehlo or auth (default)\n",
          out);
    cli_conn_usage(out);
    fputs("\nExit status: 0 OK, 69 the server cannot be used as configured, 76 protocol\n"
          "error, 77 authentication failed, 64 usage, 78 configuration error.\n",
          out);
}
