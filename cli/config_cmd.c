/*
 * config_cmd.c - `pigeon config show`: the effective settings and where each came from.
 *
 * Resolves exactly as `pigeon send` would (command line > account > file defaults >
 * preset > built-in defaults) without connecting, and masks the secret.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"
#include "deliver.h"
#include "json.h"

static const char *source_name(cfg_source s)
{
    switch (s) {
    case CFG_BUILTIN:
        return "default";
    case CFG_PRESET:
        return "preset";
    case CFG_FILE:
        return "file";
    case CFG_ENV:
        return "environment";
    case CFG_CLI:
        return "command line";
    default:
        return "unset";
    }
}

static int is_secret(enum cfg_key k)
{
    return k == K_PASSWORD;
}

static void show_text(const cfg_settings *cfg)
{
    printf("config file: %s\n", cfg->config_path[0] ? cfg->config_path : "(none)");
    printf("account:     %s\n", cfg->account[0] ? cfg->account : "(none)");
    for (int k = 0; k < K_COUNT; k++) {
        const cfg_value *v = &cfg->v[k];
        if (v->value == NULL)
            continue;
        printf("%-20s %-34s # %s%s%s\n", cfg_key_name((enum cfg_key)k),
               is_secret((enum cfg_key)k) ? "********" : v->value, source_name(v->source),
               v->origin[0] ? ": " : "", v->origin);
    }
    if (getenv("PIGEON_PASSWORD") != NULL)
        printf("%-20s %-34s # environment: PIGEON_PASSWORD\n", "password", "********");
}

static void show_json(const cfg_settings *cfg)
{
    json_writer w;
    json_init(&w, stdout);
    json_object_begin(&w);
    json_kv_string(&w, "config_file", cfg->config_path[0] ? cfg->config_path : NULL);
    json_kv_string(&w, "account", cfg->account[0] ? cfg->account : NULL);
    json_key(&w, "settings");
    json_object_begin(&w);
    for (int k = 0; k < K_COUNT; k++) {
        const cfg_value *v = &cfg->v[k];
        if (v->value == NULL)
            continue;
        json_key(&w, cfg_key_name((enum cfg_key)k));
        json_object_begin(&w);
        json_kv_string(&w, "value", is_secret((enum cfg_key)k) ? "********" : v->value);
        json_kv_string(&w, "source", source_name(v->source));
        json_kv_string(&w, "origin", v->origin);
        json_object_end(&w);
    }
    json_object_end(&w);
    json_kv_bool(&w, "password_in_environment", getenv("PIGEON_PASSWORD") != NULL);
    json_object_end(&w);
    json_finish(&w);
}

int cli_config_run(int argc, char **argv)
{
    enum { OPT_FROM = CLI_OPT_CONN_END };
    static const struct option longopts[] = {
        CLI_CONN_LONGOPTS,
        {"from", required_argument, NULL, OPT_FROM},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cfg_settings cfg;
    deliver_opts dopts = {0};
    const char *account = NULL, *from = NULL;
    char err[600];
    int status = 0, opt;
    memset(&cfg, 0, sizeof cfg);
    if (argc < 2 || strcmp(argv[1], "show") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            cli_config_usage(stdout);
            return 0;
        }
        cli_error("config: expected \"show\" (see pigeon help config)");
        return EX_USAGE;
    }
    opterr = 0;
    optind = 2;
    while ((opt = getopt_long(argc, argv, ":hv", longopts, NULL)) != -1) {
        if (opt == OPT_FROM) {
            from = optarg;
            continue;
        }
        if (opt == 'h') {
            cli_config_usage(stdout);
            goto done;
        }
        status = cli_conn_option(&cfg, &account, &dopts, opt, optarg);
        if (status < 0) {
            char quoted[128];
            cli_error("config show: %s %s (see pigeon help config)",
                      opt == ':' ? "missing value for" : "unknown option",
                      cli_typed_option(argv, quoted, sizeof quoted));
            status = EX_USAGE;
        }
        if (status != 0)
            goto done;
    }
    if ((status = settings_load(&cfg, account, err, sizeof err)) != 0)
        goto fail;
    if (from == NULL)
        from = cfg_get(&cfg, K_FROM);
    pigeon_mailbox mb;
    const char *domain = NULL;
    char *addr = NULL;
    if (from != NULL) {
        if (pigeon_mailbox_parse(from, &mb, err, sizeof err) != PIGEON_OK) {
            cli_error("invalid From \"%s\": %s", from, err);
            status = EX_DATAERR;
            goto done;
        }
        domain = mb.domain;
        pigeon_mailbox_addr_spec(&mb, 1, &addr);
    }
    status = settings_finish(&cfg, domain, addr, err, sizeof err);
    free(addr);
    if (from != NULL)
        pigeon_mailbox_cleanup(&mb);
    if (status != 0)
        goto fail;
    if (dopts.json)
        show_json(&cfg);
    else
        show_text(&cfg);
    goto done;
fail:
    cli_error("%s", err);
done:
    cfg_cleanup(&cfg);
    return status;
}

void cli_config_usage(FILE *out)
{
    fputs("usage: pigeon config show [--account NAME] [--provider NAME] [--from ADDRESS]\n"
          "                          [SERVER OPTIONS] [--json]\n"
          "\n"
          "Prints the settings `pigeon send` would use, without connecting: each value and\n"
          "where it came from (command line > account > file defaults > provider preset >\n"
          "built-in default). The password is masked.\n",
          out);
}
