/*
 * tpl_html.c - the HTML body of a mail merge without the pipeline per row (tpl.h).
 *
 * A merge composes the same --html-file template for every row; parsing, inlining and
 * serializing it each time was most of a row's cost. When the template is flat (text
 * and {{name}} tags only), it is rendered once with a marker in place of each tag, the
 * pipeline runs once on that (pigeon_html_plan_new), and each row's document is the
 * output with the row's values copied in (pigeon_html_plan_render), byte for byte what
 * the pipeline gives on the row's expansion (html_plan.c says why). Anything else takes
 * the whole way, row by row as before: a template with sections or {{{raw}}}, markers
 * where a value could change the parse or the CSS, a text part to generate, and a row
 * whose value is missing or one the plan does not stand for.
 */
#include <stdlib.h>
#include <string.h>

#include "tpl.h"

/* The plan of the HTML template, and room for one row's values. */
typedef struct cli_tpl_plan {
    int usable;             /* 0: every row takes the whole way */
    pigeon_html_plan *plan; /* the pipeline's output cut at the tags */
    size_t ntags;           /* the template's tags */
    const char **values;    /* a row's values, borrowed from the row */
    size_t *lens;           /* their lengths */
} cli_tpl_plan;

/* The template with marker i in place of tag i, into *out (malloc'd). */
static pigeon_err marked_source(const pigeon_template *tpl, size_t ntags, char **out,
                                size_t *out_len)
{
    size_t total = 0, used = 0;
    const char *text, *name;
    size_t text_len, name_len;
    for (size_t i = 0; i <= ntags; i++) {
        pigeon_err e = pigeon_template_piece(tpl, i, &text, &text_len, &name, &name_len);
        if (e != PIGEON_OK)
            return e;
        total += text_len + 32;
    }
    char *s = malloc(total + 1);
    if (s == NULL)
        return PIGEON_ERR_NOMEM;
    for (size_t i = 0; i <= ntags; i++) {
        pigeon_template_piece(tpl, i, &text, &text_len, &name, &name_len);
        memcpy(s + used, text, text_len);
        used += text_len;
        if (i < ntags)
            used += (size_t)snprintf(s + used, total + 1 - used, "%s%zu%s", PIGEON_HTML_MARK_OPEN,
                                     i, PIGEON_HTML_MARK_CLOSE);
    }
    s[used] = '\0';
    *out = s;
    *out_len = used;
    return PIGEON_OK;
}

static cli_tpl_plan *make_plan(const cli_tpl *t, const pigeon_html_opts *opts)
{
    cli_tpl_plan *p = calloc(1, sizeof *p);
    const pigeon_template *tpl = t->compiled[CLI_TPL_HTML];
    char *src = NULL;
    size_t len = 0;
    if (p == NULL)
        return NULL;
    p->ntags = pigeon_template_flat(tpl);
    if (p->ntags == (size_t)-1 || marked_source(tpl, p->ntags, &src, &len) != PIGEON_OK)
        return p;
    p->values = calloc(p->ntags + 1, sizeof *p->values);
    p->lens = calloc(p->ntags + 1, sizeof *p->lens);
    if (p->values != NULL && p->lens != NULL &&
        pigeon_html_plan_new(src, len, p->ntags, opts, &p->plan) == PIGEON_OK)
        p->usable = 1;
    free(src);
    return p;
}

int cli_tpl_html(cli_tpl *t, const pigeon_html_opts *opts, pigeon_html_result *res)
{
    memset(res, 0, sizeof *res);
    if (t == NULL || !t->enabled || t->compiled[CLI_TPL_HTML] == NULL)
        return -1;
    if (t->plan == NULL && (t->plan = make_plan(t, opts)) == NULL)
        return -1;
    cli_tpl_plan *p = t->plan;
    if (!p->usable)
        return -1;
    const pigeon_vars *scopes[3] = {t->file_vars, t->cli_vars, t->row};
    for (size_t i = 0; i < p->ntags; i++) {
        p->values[i] = pigeon_template_value(t->compiled[CLI_TPL_HTML], i, scopes, 3, &p->lens[i]);
        if (p->values[i] == NULL)
            return -1; /* missing: the whole way reports it (or writes "") */
    }
    return pigeon_html_plan_render(p->plan, p->values, p->lens, res) == PIGEON_OK ? 0 : -1;
}

void cli_tpl_html_cleanup(cli_tpl *t)
{
    if (t == NULL || t->plan == NULL)
        return;
    pigeon_html_plan_free(t->plan->plan);
    free(t->plan->values);
    free(t->plan->lens);
    free(t->plan);
    t->plan = NULL;
}
