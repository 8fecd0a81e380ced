/*
 * settings.c - resolving the effective connection settings of a send.
 *
 * Precedence, highest first: the command line, the account in the configuration file,
 * the file's defaults, the provider preset, pigeon's built-in defaults. cfg_set() keeps
 * the value of higher precedence, so each layer is simply applied in turn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "deliver.h"
#include "pigeon/provider.h"

int settings_load(cfg_settings *cfg, const char *account, char *err, size_t errlen)
{
    char path[512];
    int found = cfg_find_file(path, sizeof path);
    if (found < 0) {
        snprintf(err, errlen, "PIGEON_CONFIG names %s, which does not exist", path);
        return EX_CONFIG;
    }
    if (found == 0) {
        if (account != NULL) {
            snprintf(err, errlen, "--account %s: no configuration file (looked for %s)", account,
                     path);
            return EX_CONFIG;
        }
        return 0;
    }
    if (cfg_load(cfg, path, account, err, errlen) != 0)
        return EX_CONFIG;
    return 0;
}

/* Applies a preset's host, port and TLS mode with the preset's precedence. */
static int apply_preset(cfg_settings *cfg, const pigeon_provider *p)
{
    char origin[96];
    char port[8];
    snprintf(origin, sizeof origin, "preset %s", p->name);
    snprintf(port, sizeof port, "%u", (unsigned)p->port);
    const char *tls = p->tls == PIGEON_PROVIDER_TLS_IMPLICIT ? "implicit" : "starttls";
    /* A host given by the user (file or command line) makes the preset's port and mode
     * irrelevant unless the user kept the preset's host. */
    int own_host = cfg->v[K_HOST].value != NULL;
    if (cfg_set(cfg, K_HOST, p->host, CFG_PRESET, origin) != 0)
        return -1;
    if (own_host)
        return 0;
    if (cfg_set(cfg, K_PORT, port, CFG_PRESET, origin) != 0 ||
        cfg_set(cfg, K_TLS, tls, CFG_PRESET, origin) != 0)
        return -1;
    return 0;
}

static int resolve_provider(cfg_settings *cfg, const char *from_domain, char *err, size_t errlen)
{
    const char *name = cfg_get(cfg, K_PROVIDER);
    if (name == NULL)
        return 0;
    if (strcasecmp(name, "auto") == 0) {
        const pigeon_provider *p = pigeon_provider_for_domain(from_domain);
        if (p == NULL) {
            if (cfg_get(cfg, K_HOST) != NULL)
                return 0; /* auto found nothing, but the user named a server */
            snprintf(err, errlen,
                     "--provider auto: no preset serves the From domain \"%s\"; give --host "
                     "or one of the presets listed by `pigeon providers`",
                     from_domain ? from_domain : "");
            return EX_CONFIG;
        }
        /* Record what auto chose, for `pigeon config show`. */
        char origin[160];
        snprintf(origin, sizeof origin, "%s (auto, from %s)", cfg->v[K_PROVIDER].origin,
                 from_domain);
        cfg_source src = cfg->v[K_PROVIDER].source;
        if (cfg_set(cfg, K_PROVIDER, p->name, src, origin) != 0 || apply_preset(cfg, p) != 0)
            goto nomem;
        return 0;
    }
    pigeon_provider p;
    char host[96];
    if (pigeon_provider_lookup(name, &p, host, sizeof host) != 0) {
        snprintf(err, errlen, "unknown provider \"%.64s\" (from %s); `pigeon providers` lists them",
                 name, cfg->v[K_PROVIDER].origin);
        return EX_CONFIG;
    }
    if (apply_preset(cfg, &p) != 0)
        goto nomem;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return EX_OSERR;
}

int settings_finish(cfg_settings *cfg, const char *from_domain, const char *from_addr, char *err,
                    size_t errlen)
{
    int rc = resolve_provider(cfg, from_domain, err, errlen);
    if (rc != 0)
        return rc;
    if (cfg_get(cfg, K_HOST) == NULL && cfg->unchosen[0] != '\0') {
        snprintf(err, errlen,
                 "%s has several accounts and no default_account: choose one with --account "
                 "(%s)",
                 cfg->config_path[0] ? cfg->config_path : "the configuration file", cfg->unchosen);
        return EX_CONFIG;
    }
    if (cfg_get(cfg, K_HOST) == NULL) {
        const pigeon_provider *p = pigeon_provider_for_domain(from_domain);
        if (p != NULL)
            snprintf(err, errlen,
                     "no server given: use --provider %s (or --provider auto) for %s, or "
                     "--host, or an account in the configuration file",
                     p->name, from_domain);
        else
            snprintf(err, errlen,
                     "no server given: use --host, --provider, or an account in "
                     "the configuration file (see pigeon.conf(5))");
        return EX_CONFIG;
    }
    const char *tls = cfg_get(cfg, K_TLS);
    const char *port = cfg_get(cfg, K_PORT);
    if (port == NULL) {
        int implicit = tls != NULL && strcasecmp(tls, "implicit") == 0;
        if (cfg_set(cfg, K_PORT, implicit ? "465" : "587", CFG_BUILTIN,
                    implicit ? "default for implicit TLS" : "default submission port") != 0)
            goto nomem;
        port = cfg_get(cfg, K_PORT);
    }
    if (tls == NULL) {
        int is465 = strcmp(port, "465") == 0;
        if (cfg_set(cfg, K_TLS, is465 ? "implicit" : "starttls", CFG_BUILTIN,
                    is465 ? "default for port 465" : "default (STARTTLS required)") != 0)
            goto nomem;
    }
    int has_secret = cfg_get(cfg, K_PASSWORD) || cfg_get(cfg, K_PASSWORD_FILE) ||
                     cfg_get(cfg, K_PASSWORD_COMMAND) || cfg_get(cfg, K_OAUTH_TOKEN_COMMAND) ||
                     getenv("PIGEON_PASSWORD") != NULL;
    if (cfg_get(cfg, K_USER) == NULL && has_secret && from_addr != NULL &&
        cfg_set(cfg, K_USER, from_addr, CFG_BUILTIN, "the From address") != 0)
        goto nomem;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return EX_OSERR;
}

int settings_resolve(cfg_settings *cfg, const char *account, const char *from_domain, char *err,
                     size_t errlen)
{
    int rc = settings_load(cfg, account, err, errlen);
    if (rc != 0)
        return rc;
    return settings_finish(cfg, from_domain, NULL, err, errlen);
}
