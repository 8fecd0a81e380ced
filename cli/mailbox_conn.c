/*
 * mailbox_conn.c - connection settings of the account's mailbox (see mailbox_conn.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "mailbox_conn.h"
#include "secret.h"

static void transcript(void *ctx, pigeon_transcript_dir dir, int64_t unix_ms, const char *line)
{
    const mailbox_plan *plan = ctx;
    if (dir == PIGEON_TRANSCRIPT_DEBUG && plan->verbose < 2)
        return;
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    localtime_r(&secs, &tm);
    static const char *const tags[] = {"C:", "S:", "* ", "  "};
    fprintf(stderr, "%02d:%02d:%02d.%03d %s %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            (int)(unix_ms % 1000), tags[dir & 3], line);
}

int mailbox_plan_init(mailbox_plan *plan, cfg_settings *cfg, const deliver_opts *o, int pop3)
{
    memset(plan, 0, sizeof *plan);
    const char *host = cfg_get(cfg, pop3 ? K_POP3_HOST : K_IMAP_HOST);
    const char *port = cfg_get(cfg, pop3 ? K_POP3_PORT : K_IMAP_PORT);
    const pigeon_store_preset *pre = pigeon_store_preset_lookup(cfg_get(cfg, K_PROVIDER));
    uint16_t pre_port = 0;
    if (host == NULL && pre != NULL) {
        host = pop3 ? pre->pop3_host : pre->imap_host;
        pre_port = pop3 ? pre->pop3_port : pre->imap_port;
    }
    if (host == NULL) {
        cli_error("no %s server for this account: set %s (and %s) in the account, give "
                  "--%s, or use a provider preset that has one (pigeon providers)",
                  pop3 ? "POP3" : "IMAP", pop3 ? "pop3_host" : "imap_host",
                  pop3 ? "pop3_port" : "imap_port", pop3 ? "pop3-host" : "imap-host");
        return EX_CONFIG;
    }
    snprintf(plan->host, sizeof plan->host, "%s", host);
    plan->opts.host = plan->host;
    plan->opts.port = port != NULL ? (uint16_t)atoi(port) : pre_port;
    uint16_t tls_port = pop3 ? 995 : 993;
    if (plan->opts.port == 0)
        plan->opts.port = tls_port;
    plan->opts.tls = plan->opts.port == tls_port ? PIGEON_TLS_IMPLICIT : PIGEON_TLS_STARTTLS;
    plan->opts.ca_file = cfg_get(cfg, K_CA_FILE);
    int insecure = 0;
    plan->opts.insecure = cfg_bool(cfg_get(cfg, K_INSECURE), &insecure) == 0 && insecure;
    const char *t = cfg_get(cfg, K_TIMEOUT);
    plan->opts.timeout_ms = t != NULL ? atoi(t) * 1000 : 60000;
    t = cfg_get(cfg, K_CONNECT_TIMEOUT);
    plan->opts.connect_timeout_ms = t != NULL ? atoi(t) * 1000 : 0;
    plan->verbose = o->verbose;
    if (o->verbose) {
        plan->opts.transcript = transcript;
        plan->opts.transcript_ctx = plan;
    }
    /* The secret comes from the same sources as for SMTP (deliver.c resolves them). */
    pigeon_smtp_opts so;
    /* The account may send without AUTH (auth = none) and still log in to its mailbox:
     * the secret is resolved as for AUTH whatever the SMTP mechanism says. */
    cfg_value auth = cfg->v[K_AUTH];
    cfg->v[K_AUTH].value = NULL;
    int rc = deliver_plan_opts(cfg, o, &so, &plan->secret);
    cfg->v[K_AUTH] = auth;
    if (rc != 0)
        return rc;
    plan->opts.user = cfg_get(cfg, K_USER);
    plan->opts.password = plan->secret;
    if (plan->opts.user == NULL || plan->secret == NULL) {
        secret_free(plan->secret);
        plan->secret = NULL;
        cli_error("the mailbox needs a login and password: set user and a password source in "
                  "the account (or PIGEON_PASSWORD, --password-file, --password-command)");
        return EX_CONFIG;
    }
    return 0;
}

void mailbox_plan_cleanup(mailbox_plan *plan)
{
    secret_free(plan->secret);
    plan->secret = NULL;
}

int mailbox_exit_status(pigeon_err err)
{
    switch (err) {
    case PIGEON_OK:
        return 0;
    case PIGEON_ERR_AUTH:
        return EX_NOPERM;
    case PIGEON_ERR_NETWORK:
    case PIGEON_ERR_TIMEOUT:
    case PIGEON_ERR_DEFERRED:
        return EX_TEMPFAIL;
    case PIGEON_ERR_PROTOCOL:
        return EX_PROTOCOL;
    case PIGEON_ERR_CONFIG:
        return EX_CONFIG;
    case PIGEON_ERR_INVALID:
        return EX_DATAERR;
    case PIGEON_ERR_IO:
        return EX_IOERR;
    case PIGEON_ERR_NOMEM:
        return EX_OSERR;
    default:
        return EX_UNAVAILABLE;
    }
}
