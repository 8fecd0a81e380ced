/*
 * tpl.h - templates on the command line: --var, --vars, --allow-missing and
 * --unsubscribe, and the expansion compose.c applies to the subject and the bodies.
 *
 * Templating is on when --var, --vars or --to-file is given (so a message that happens to
 * contain "{{" is sent as written otherwise). Each field's template is compiled once and
 * kept, so a mail merge renders every row from the same compiled form; the merge sets
 * the row's variables (row) before composing each message.
 */
#ifndef PIGEON_CLI_TPL_H
#define PIGEON_CLI_TPL_H

#include <stddef.h>
#include <stdio.h>

#include "cli.h"
#include "pigeon/html.h"
#include "pigeon/template.h"

/* What a template is expanded for (and how values are written). */
typedef enum cli_tpl_field {
    CLI_TPL_SUBJECT,  /* header: CR/LF in a value refused */
    CLI_TPL_TEXT,     /* the text body: values raw */
    CLI_TPL_HTML,     /* the HTML body: {{x}} HTML-escaped */
    CLI_TPL_MARKDOWN, /* Markdown source: values raw (the renderer escapes) */
    CLI_TPL_FIELDS
} cli_tpl_field;

/* Most --unsubscribe values. */
#define CLI_TPL_UNSUB_MAX 4

/* getopt_long values of the template options (within send's range). */
enum cli_tpl_opt {
    CLI_OPT_VAR = 0x400,
    CLI_OPT_VARS,
    CLI_OPT_ALLOW_MISSING,
    CLI_OPT_UNSUBSCRIBE,
};

#define CLI_TPL_LONGOPTS                                                                           \
    {"var", required_argument, NULL, CLI_OPT_VAR},                                                 \
        {"vars", required_argument, NULL, CLI_OPT_VARS},                                           \
        {"allow-missing", no_argument, NULL, CLI_OPT_ALLOW_MISSING},                               \
    {                                                                                              \
        "unsubscribe", required_argument, NULL, CLI_OPT_UNSUBSCRIBE                                \
    }

/* The template state of one command. */
typedef struct cli_tpl {
    int enabled;                          /* expand templates at all */
    int allow_missing;                    /* --allow-missing */
    pigeon_vars *file_vars;               /* --vars FILE.json (an object), or NULL */
    pigeon_vars *cli_vars;                /* --var key=value (override --vars) */
    const pigeon_vars *row;               /* the merge row being composed, or NULL */
    const char *where;                    /* prefix for errors ("list.csv line 7: "), or NULL */
    const char *unsub[CLI_TPL_UNSUB_MAX]; /* --unsubscribe values (borrowed from argv) */
    size_t unsub_count;                   /* their number */
    pigeon_template *unsub_tpl[CLI_TPL_UNSUB_MAX]; /* compiled --unsubscribe values */
    pigeon_template *compiled[CLI_TPL_FIELDS];     /* each field's template, once */
    char last_error[512];                          /* the last failure, for the merge report */
    struct cli_tpl_plan *plan; /* the HTML template's pipeline run once (tpl_html.c), or NULL */
} cli_tpl;

void cli_tpl_init(cli_tpl *t);
void cli_tpl_cleanup(cli_tpl *t);

/* Stores one getopt_long result. Returns -1 if opt is not a template option, 0 when
 * stored, or an exit status (printed): EX_USAGE, EX_DATAERR (bad JSON), EX_NOINPUT. */
int cli_tpl_option(cli_tpl *t, int opt, const char *arg);

/*
 * Expands src (len bytes) as the template of field (option names it in errors: "--subject").
 * Returns 0 with *out (malloc'd, NUL-terminated, *out_len bytes), or an exit status with
 * the reason printed and kept in t->last_error (EX_DATAERR: a missing variable, a bad
 * template, a line break for a header). With t NULL or not enabled, *out is a copy.
 */
int cli_tpl_expand(cli_tpl *t, cli_tpl_field field, const char *option, const char *src, size_t len,
                   char **out, size_t *out_len);

/* The same for a malloc'd buffer, replaced in place by its expansion (*data freed); the
 * field is named by option ("--subject", "--text", "--text-file", "--html-file",
 * "--markdown-file"). Nothing changes when t is NULL or not enabled. */
int cli_tpl_apply(cli_tpl *t, const char *option, char **data, size_t *len);

/* Nonzero when option's template is compiled already: its file need not be read again
 * (cli_tpl_apply then takes *data NULL). */
int cli_tpl_cached(const cli_tpl *t, const char *option);

/*
 * Adds List-Unsubscribe (RFC 2369 3.2) from the --unsubscribe values, each expanded as a
 * URL template, and List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058 3.1)
 * when one is https. Returns 0 or an exit status (printed).
 */
int cli_tpl_add_headers(cli_tpl *t, pigeon_message *msg);

/* ---- tpl_html.c ---- */

/*
 * The HTML body of a merge row from the --html-file template compiled already, through
 * a plan (pigeon/html.h) made on first use: the pipeline ran once on the template, the
 * row's values are put in. Returns 0 with *res filled (for pigeon_html_result_cleanup),
 * or -1 when this row or the template needs the whole pipeline (cli_tpl_apply, then
 * pigeon_html_prepare), which also gives any error its exact message.
 */
int cli_tpl_html(cli_tpl *t, const pigeon_html_opts *opts, pigeon_html_result *res);
void cli_tpl_html_cleanup(cli_tpl *t);

/* Writes the option lines of the template options, for usage texts. */
void cli_tpl_usage(FILE *out);

#endif
