/*
 * fuzz_html_plan.c - libFuzzer target, differential, for the mail merge's prepared HTML
 * (lib/html/html_plan.c with the flat template API of lib/template/template_flat.c).
 *
 * The input is an HTML template with {{a}} and {{b}} tags, then a NUL byte, then a's
 * value, a NUL byte, and b's value. When the template plans and the values render, the
 * result must be byte for byte pigeon_html_prepare on the template's expansion, HTML and
 * text part (with and without --css-like extra CSS, with a text part): anything else
 * aborts. No leak, no out-of-bounds (ASan).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pigeon/html.h"
#include "pigeon/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The template's source with markers for its tags, or NULL. */
static char *marked(const pigeon_template *t, size_t ntags, size_t *len)
{
    size_t cap = 64, used = 0;
    for (size_t i = 0; i <= ntags; i++) {
        const char *text, *name;
        size_t tl, nl;
        if (pigeon_template_piece(t, i, &text, &tl, &name, &nl) != PIGEON_OK)
            return NULL;
        cap += tl + 32;
    }
    char *out = malloc(cap);
    for (size_t i = 0; out != NULL && i <= ntags; i++) {
        const char *text, *name;
        size_t tl, nl;
        pigeon_template_piece(t, i, &text, &tl, &name, &nl);
        memcpy(out + used, text, tl);
        used += tl;
        if (i < ntags)
            used += (size_t)snprintf(out + used, cap - used, "%s%zu%s", PIGEON_HTML_MARK_OPEN, i,
                                     PIGEON_HTML_MARK_CLOSE);
    }
    *len = used;
    return out;
}

static void one(const pigeon_template *t, const pigeon_vars *row, const pigeon_html_opts *o)
{
    size_t ntags = pigeon_template_flat(t), len = 0;
    if (ntags == (size_t)-1 || ntags > 32)
        return;
    char *src = marked(t, ntags, &len);
    pigeon_html_plan *plan = NULL;
    if (src == NULL || pigeon_html_plan_new(src, len, ntags, o, &plan) != PIGEON_OK) {
        free(src);
        return;
    }
    free(src);
    const pigeon_vars *scopes[1] = {row};
    const char *vals[32];
    size_t lens[32];
    int all = 1;
    for (size_t i = 0; i < ntags; i++)
        all &= (vals[i] = pigeon_template_value(t, i, scopes, 1, &lens[i])) != NULL;
    pigeon_html_result got, want;
    char *exp = NULL;
    size_t exp_len = 0;
    if (all && pigeon_html_plan_render(plan, vals, lens, &got) == PIGEON_OK) {
        if (pigeon_template_render(t, scopes, 1, PIGEON_TEMPLATE_HTML, 0, &exp, &exp_len, NULL) !=
                PIGEON_OK ||
            pigeon_html_prepare(exp, exp_len, o, &want) != PIGEON_OK)
            abort();
        if (got.html_len != want.html_len || memcmp(got.html, want.html, got.html_len) != 0 ||
            got.nimages != want.nimages || (got.text == NULL) != (want.text == NULL) ||
            (got.text != NULL && strcmp(got.text, want.text) != 0))
            abort();
        pigeon_html_result_cleanup(&got);
        pigeon_html_result_cleanup(&want);
        free(exp);
    }
    pigeon_html_plan_free(plan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *end = s + size;
    const char *nul1 = memchr(s, '\0', size);
    if (nul1 == NULL)
        return 0;
    const char *a = nul1 + 1;
    const char *nul2 = memchr(a, '\0', (size_t)(end - a));
    const char *b = nul2 ? nul2 + 1 : end;
    pigeon_template *t = NULL;
    pigeon_vars *row = pigeon_vars_new();
    if (row == NULL ||
        pigeon_vars_set(row, "a", a, (size_t)((nul2 ? nul2 : end) - a)) != PIGEON_OK ||
        pigeon_vars_set(row, "b", b, (size_t)(end - b)) != PIGEON_OK ||
        pigeon_template_compile(s, (size_t)(nul1 - s), &t, NULL) != PIGEON_OK) {
        pigeon_vars_free(row);
        return 0;
    }
    static const pigeon_html_opts plain = {.no_text = 1};
    static const char sheet[] = "p { color: red } a { x: y }";
    static const pigeon_html_opts css = {.no_text = 1, .css = sheet, .css_len = sizeof sheet - 1};
    static const pigeon_html_opts text = {.wrap = 30};
    one(t, row, &plain);
    one(t, row, &css);
    one(t, row, &text);
    pigeon_template_free(t);
    pigeon_vars_free(row);
    return 0;
}
