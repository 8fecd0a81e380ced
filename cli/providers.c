/*
 * providers.c - `pigeon providers`: the built-in provider presets.
 */
#include <getopt.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"
#include "json.h"
#include "pigeon/provider.h"

static const char *tls_name(pigeon_provider_tls t)
{
    return t == PIGEON_PROVIDER_TLS_IMPLICIT ? "implicit" : "starttls";
}

static void list_json(void)
{
    json_writer w;
    json_init(&w, stdout);
    json_array_begin(&w);
    for (size_t i = 0; i < pigeon_provider_count(); i++) {
        const pigeon_provider *p = pigeon_provider_at(i);
        json_object_begin(&w);
        json_kv_string(&w, "name", p->name);
        json_kv_string(&w, "host", p->host);
        json_kv_int(&w, "port", p->port);
        json_kv_string(&w, "tls", tls_name(p->tls));
        json_key(&w, "domains");
        json_array_begin(&w);
        for (const char *d = p->domains; *d != '\0';) {
            size_t n = strcspn(d, " ");
            char domain[64];
            snprintf(domain, sizeof domain, "%.*s", (int)n, d);
            if (n > 0)
                json_string(&w, domain);
            d += n + (d[n] == ' ');
        }
        json_array_end(&w);
        json_kv_string(&w, "login", p->login);
        json_kv_string(&w, "notes", p->notes);
        const pigeon_store_preset *st = pigeon_store_preset_lookup(p->name);
        json_kv_string(&w, "imap_host", st != NULL ? st->imap_host : NULL);
        json_kv_int(&w, "imap_port", st != NULL && st->imap_host != NULL ? st->imap_port : 0);
        json_kv_string(&w, "pop3_host", st != NULL ? st->pop3_host : NULL);
        json_kv_int(&w, "pop3_port", st != NULL && st->pop3_host != NULL ? st->pop3_port : 0);
        json_object_end(&w);
    }
    json_array_end(&w);
    json_finish(&w);
}

static void list_text(int verbose)
{
    printf("%-13s %-33s %-5s %-9s %s\n", "NAME", "HOST", "PORT", "TLS", "DOMAINS");
    for (size_t i = 0; i < pigeon_provider_count(); i++) {
        const pigeon_provider *p = pigeon_provider_at(i);
        printf("%-13s %-33s %-5u %-9s %s\n", p->name, p->host, (unsigned)p->port, tls_name(p->tls),
               p->domains[0] ? p->domains : "-");
        if (verbose)
            printf("              login: %s\n              %s\n", p->login, p->notes);
        const pigeon_store_preset *st = pigeon_store_preset_lookup(p->name);
        if (verbose && st != NULL && st->pop3_host != NULL)
            printf("              mailbox: IMAP %s:%u, POP3 %s:%u\n", st->imap_host,
                   (unsigned)st->imap_port, st->pop3_host, (unsigned)st->pop3_port);
        else if (verbose && st != NULL)
            printf("              mailbox: IMAP %s:%u\n", st->imap_host, (unsigned)st->imap_port);
    }
    if (!verbose)
        printf("\n`pigeon providers -v` shows each preset's login and notes; "
               "--provider auto picks one from the From domain.\n");
}

int cli_providers_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, verbose = 0, opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            json = 1;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'h':
            cli_providers_usage(stdout);
            return 0;
        default:
            cli_error("providers: unknown option (see pigeon help providers)");
            return EX_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("providers: takes no arguments");
        return EX_USAGE;
    }
    if (json)
        list_json();
    else
        list_text(verbose);
    return 0;
}

void cli_providers_usage(FILE *out)
{
    fputs("usage: pigeon providers [-v] [--json]\n"
          "\n"
          "Lists the built-in provider presets: name, submission host, port, TLS mode and\n"
          "the address domains each serves (--provider auto picks by the From domain).\n"
          "  -v, --verbose   also the login to use and what users trip on\n"
          "  --json          a JSON array\n",
          out);
}
