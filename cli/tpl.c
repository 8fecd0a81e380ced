/*
 * tpl.c - templates on the command line (see tpl.h): the variables from --var and
 * --vars, the expansion of the subject and bodies, and the List-Unsubscribe header.
 *
 * Variables are looked up in the merge row first, then --var, then --vars, so that a
 * column of the list overrides a default given on the command line.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "tpl.h"

#define VARS_FILE_MAX ((size_t)16 << 20)

void cli_tpl_init(cli_tpl *t)
{
    memset(t, 0, sizeof *t);
}

void cli_tpl_cleanup(cli_tpl *t)
{
    if (t == NULL)
        return;
    pigeon_vars_free(t->file_vars);
    pigeon_vars_free(t->cli_vars);
    for (size_t i = 0; i < CLI_TPL_FIELDS; i++)
        pigeon_template_free(t->compiled[i]);
    for (size_t i = 0; i < CLI_TPL_UNSUB_MAX; i++)
        pigeon_template_free(t->unsub_tpl[i]);
    cli_tpl_html_cleanup(t);
    memset(t, 0, sizeof *t);
}

static int add_var(cli_tpl *t, const char *arg)
{
    char quoted[256];
    const char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg) {
        cli_error("--var \"%s\": expected NAME=VALUE", cli_shorten(arg, quoted, sizeof quoted));
        return EX_USAGE;
    }
    if (t->cli_vars == NULL && (t->cli_vars = pigeon_vars_new()) == NULL) {
        cli_error("out of memory");
        return EX_OSERR;
    }
    char name[256];
    size_t n = (size_t)(eq - arg);
    if (n >= sizeof name) {
        cli_error("--var: the name is too long");
        return EX_USAGE;
    }
    memcpy(name, arg, n);
    name[n] = '\0';
    pigeon_err e = pigeon_vars_set(t->cli_vars, name, eq + 1, (size_t)-1);
    if (e != PIGEON_OK) {
        cli_error("--var \"%s\": %s", cli_shorten(arg, quoted, sizeof quoted),
                  e == PIGEON_ERR_CHARSET ? "not valid UTF-8"
                  : e == PIGEON_ERR_INVALID
                      ? "invalid name (empty part, or a part already set to a value)"
                      : pigeon_strerror(e));
        return e == PIGEON_ERR_NOMEM ? EX_OSERR : e == PIGEON_ERR_CHARSET ? EX_DATAERR : EX_USAGE;
    }
    t->enabled = 1;
    return 0;
}

static int load_vars(cli_tpl *t, const char *path)
{
    char quoted[256];
    char *data = NULL;
    size_t len = 0;
    if (t->file_vars != NULL) {
        cli_error("--vars given twice (see pigeon help send)");
        return EX_USAGE;
    }
    cli_shorten(path, quoted, sizeof quoted);
    pigeon_err e = cli_read_input(path, VARS_FILE_MAX, &data, &len);
    if (e == PIGEON_ERR_NOTFOUND || e == PIGEON_ERR_IO) {
        cli_error("cannot read --vars \"%s\": %s", quoted, strerror(errno));
        return e == PIGEON_ERR_NOTFOUND ? EX_NOINPUT : EX_IOERR;
    }
    if (e != PIGEON_OK) {
        cli_error("--vars \"%s\": %s", quoted, pigeon_strerror(e));
        return e == PIGEON_ERR_TOO_LARGE ? EX_DATAERR : cli_exit_status(e);
    }
    pigeon_json_error je;
    e = pigeon_vars_parse_json(data, len, NULL, &t->file_vars, &je);
    free(data);
    if (e == PIGEON_OK && pigeon_vars_type(t->file_vars) != PIGEON_VAR_OBJECT) {
        cli_error("--vars \"%s\": the document must be a JSON object", quoted);
        return EX_DATAERR;
    }
    if (e != PIGEON_OK) {
        cli_error("--vars \"%s\" line %u: %s", quoted, je.line, je.message);
        return e == PIGEON_ERR_NOMEM ? EX_OSERR : EX_DATAERR;
    }
    t->enabled = 1;
    return 0;
}

int cli_tpl_option(cli_tpl *t, int opt, const char *arg)
{
    switch (opt) {
    case CLI_OPT_VAR:
        return add_var(t, arg);
    case CLI_OPT_VARS:
        return load_vars(t, arg);
    case CLI_OPT_ALLOW_MISSING:
        t->allow_missing = 1;
        return 0;
    case CLI_OPT_UNSUBSCRIBE:
        if (t->unsub_count == CLI_TPL_UNSUB_MAX) {
            cli_error("--unsubscribe given more than %d times", CLI_TPL_UNSUB_MAX);
            return EX_USAGE;
        }
        t->unsub[t->unsub_count++] = arg;
        return 0;
    default:
        return -1;
    }
}

/* Compiles src once per slot: a field has the same source for every row of a merge. */
static int compiled(cli_tpl *t, pigeon_template **slot, const char *option, const char *src,
                    size_t len)
{
    pigeon_template_error err;
    if (*slot != NULL)
        return 0;
    pigeon_err e = pigeon_template_compile(src, len, slot, &err);
    if (e == PIGEON_OK)
        return 0;
    snprintf(t->last_error, sizeof t->last_error, "%s: %s", option,
             e == PIGEON_ERR_NOMEM ? "out of memory" : err.message);
    cli_error("%s%s", t->where ? t->where : "", t->last_error);
    return e == PIGEON_ERR_NOMEM ? EX_OSERR : EX_DATAERR;
}

static int render(cli_tpl *t, const pigeon_template *tpl, pigeon_template_mode mode,
                  const char *option, char **out, size_t *out_len)
{
    const pigeon_vars *scopes[3] = {t->file_vars, t->cli_vars, t->row};
    pigeon_template_error err;
    pigeon_err e = pigeon_template_render(tpl, scopes, 3, mode,
                                          t->allow_missing ? PIGEON_TEMPLATE_ALLOW_MISSING : 0, out,
                                          out_len, &err);
    if (e == PIGEON_OK)
        return 0;
    snprintf(t->last_error, sizeof t->last_error, "%s: %s%s", option,
             e == PIGEON_ERR_NOMEM ? "out of memory" : err.message,
             e == PIGEON_ERR_INVALID && strncmp(err.message, "missing", 7) == 0
                 ? (t->row ? " (add the column, or --allow-missing)"
                           : " (give --var NAME=VALUE, or --allow-missing)")
                 : "");
    cli_error("%s%s", t->where ? t->where : "", t->last_error);
    return e == PIGEON_ERR_NOMEM ? EX_OSERR : EX_DATAERR;
}

int cli_tpl_expand(cli_tpl *t, cli_tpl_field field, const char *option, const char *src, size_t len,
                   char **out, size_t *out_len)
{
    static const pigeon_template_mode modes[] = {PIGEON_TEMPLATE_HEADER, PIGEON_TEMPLATE_TEXT,
                                                 PIGEON_TEMPLATE_HTML, PIGEON_TEMPLATE_TEXT};
    *out = NULL;
    if (t == NULL || !t->enabled) {
        if ((*out = malloc(len + 1)) == NULL) {
            cli_error("out of memory");
            return EX_OSERR;
        }
        memcpy(*out, src, len);
        (*out)[len] = '\0';
        *out_len = len;
        return 0;
    }
    int status = compiled(t, &t->compiled[field], option, src, len);
    if (status != 0)
        return status;
    return render(t, t->compiled[field], modes[field], option, out, out_len);
}

static cli_tpl_field field_of(const char *option)
{
    return strcmp(option, "--subject") == 0         ? CLI_TPL_SUBJECT
           : strcmp(option, "--html-file") == 0     ? CLI_TPL_HTML
           : strcmp(option, "--markdown-file") == 0 ? CLI_TPL_MARKDOWN
                                                    : CLI_TPL_TEXT;
}

int cli_tpl_cached(const cli_tpl *t, const char *option)
{
    return t != NULL && t->enabled && t->compiled[field_of(option)] != NULL;
}

int cli_tpl_apply(cli_tpl *t, const char *option, char **data, size_t *len)
{
    if (t == NULL || !t->enabled)
        return 0;
    cli_tpl_field field = field_of(option);
    char *out = NULL;
    size_t n = 0;
    int status = cli_tpl_expand(t, field, option, *data, *len, &out, &n);
    if (status != 0)
        return status;
    free(*data);
    *data = out;
    *len = n;
    return 0;
}

/*
 * RFC 2369 2: the URL goes in angle brackets, separated by commas, so neither may be in
 * it; RFC 8058 3.1: the one-click URL is https. Whitespace and controls are refused (a
 * URL with them was not encoded), as is anything but printable ASCII.
 */
static const char *check_url(const char *url, int *https)
{
    *https = strncasecmp(url, "https://", 8) == 0;
    if (!*https && strncasecmp(url, "mailto:", 7) != 0)
        return "must start with https:// or mailto: (RFC 8058 needs https for one-click)";
    if ((*https && url[8] == '\0') || (!*https && url[7] == '\0'))
        return "is empty after the scheme";
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7F)
            return "has a space, a control character or non-ASCII text (percent-encode it)";
        if (*p == '<' || *p == '>' || *p == ',')
            return "has '<', '>' or ',' (percent-encode them: %3C %3E %2C)";
    }
    if (strlen(url) > 900)
        return "is longer than 900 characters";
    return NULL;
}

int cli_tpl_add_headers(cli_tpl *t, pigeon_message *msg)
{
    char value[2048], quoted[256];
    size_t used = 0;
    int any_https = 0, status = 0;
    if (t == NULL || t->unsub_count == 0)
        return 0;
    value[0] = '\0';
    for (size_t i = 0; i < t->unsub_count && status == 0; i++) {
        char *url = NULL;
        size_t len = 0;
        const char *src = t->unsub[i];
        int https;
        if (t->enabled) {
            status = compiled(t, &t->unsub_tpl[i], "--unsubscribe", src, strlen(src));
            if (status == 0)
                status =
                    render(t, t->unsub_tpl[i], PIGEON_TEMPLATE_URL, "--unsubscribe", &url, &len);
            if (status != 0)
                break;
        } else if ((url = strdup(src)) == NULL) {
            cli_error("out of memory");
            return EX_OSERR;
        }
        const char *why = check_url(url, &https);
        if (why != NULL || used + strlen(url) + 4 >= sizeof value) {
            snprintf(t->last_error, sizeof t->last_error, "--unsubscribe \"%s\" %s",
                     cli_shorten(url, quoted, sizeof quoted), why ? why : "is too long");
            cli_error("%s%s", t->where ? t->where : "", t->last_error);
            status = EX_DATAERR;
        } else {
            used += (size_t)snprintf(value + used, sizeof value - used, "%s<%s>", used ? ", " : "",
                                     url);
            any_https |= https;
        }
        free(url);
    }
    if (status != 0)
        return status;
    if (pigeon_message_add_header(msg, "List-Unsubscribe", value) != PIGEON_OK ||
        (any_https && pigeon_message_add_header(msg, "List-Unsubscribe-Post",
                                                "List-Unsubscribe=One-Click") != PIGEON_OK)) {
        cli_error("List-Unsubscribe: %s", pigeon_message_error(msg));
        return cli_exit_status(pigeon_message_status(msg));
    }
    return 0;
}

void cli_tpl_usage(FILE *out)
{
    fputs("Templates (Mustache: {{name}}, {{{raw}}}, {{#list}}..{{/list}}, {{^none}}..{{/none}},\n"
          "{{a.b}}, {{! comment}}; in the subject, --text, --text-file and --html-file, where\n"
          "{{name}} is HTML-escaped; on when --var, --vars or --to-file is given):\n"
          "  --var NAME=VALUE        a variable (repeatable; NAME may be dotted: user.name)\n"
          "  --vars FILE.json        variables from a JSON object (--var and list columns win)\n"
          "  --allow-missing         a missing variable is written as nothing (else an error\n"
          "                          naming it and its line, exit 65)\n"
          "  --unsubscribe URL       add List-Unsubscribe (https: or mailto:, repeatable) and,\n"
          "                          for https, List-Unsubscribe-Post: List-Unsubscribe=\n"
          "                          One-Click (RFC 8058); a template: {{id}} is\n"
          "                          percent-encoded\n",
          out);
}
