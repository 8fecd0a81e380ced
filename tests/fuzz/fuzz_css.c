/*
 * fuzz_css.c - the CSS tokenizer, the stylesheet parser, declaration lists and the
 * selector compiler on arbitrary bytes: no crash, no hang, no leak, and the tokenizer
 * always advances to EOF covering the input; a style attribute's declarations are the
 * same by the plain path and by the tokenizer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"

static void each_selector(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    pg_css_selector *sel = pg_css_selector_compile(s, n);
    if (sel != NULL) {
        (void)pg_css_selector_specificity(sel);
        if (pg_css_selector_kind(sel) == PG_SEL_INLINE) {
            const char *name;
            size_t len;
            (void)pg_css_selector_key(sel, &name, &len);
        }
    }
    pg_css_selector_free(sel);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    pg_css_lexer lx;
    pg_css_tok t;
    size_t last = 0;
    pg_css_lexer_init(&lx, s, size);
    do {
        pg_css_next(&lx, &t);
        if (t.type != PG_CSS_EOF && lx.pos <= last)
            abort(); /* no progress: would hang */
        if (t.start + t.len > size || t.vstart + t.vlen > size)
            abort();
        last = lx.pos;
    } while (t.type != PG_CSS_EOF);
    pg_css_sheet sheet;
    memset(&sheet, 0, sizeof sheet);
    pg_css_sheet_parse(&sheet, s, size);
    for (size_t i = 0; i < sheet.count; i++)
        if (sheet.rules[i].prelude != NULL)
            pg_css_selector_split(sheet.rules[i].prelude, strlen(sheet.rules[i].prelude),
                                  each_selector, NULL);
    pg_css_sheet_cleanup(&sheet);
    /* The plain path for style attributes gives what the tokenizer path gives. */
    pg_css_decls d = {NULL, 0, 0}, e = {NULL, 0, 0};
    if (pg_css_decls_parse(&d, s, size) == PIGEON_OK &&
        pg_css_decls_parse_tokens(&e, s, size) == PIGEON_OK) {
        if (d.count != e.count)
            abort();
        for (size_t i = 0; i < d.count; i++)
            if (strcmp(d.items[i].prop, e.items[i].prop) != 0 ||
                strcmp(d.items[i].value, e.items[i].value) != 0 ||
                d.items[i].important != e.items[i].important)
                abort();
    }
    pg_css_decls_cleanup(&d);
    pg_css_decls_cleanup(&e);
    return 0;
}
