/*
 * fuzz_html_fast.c - the fast path of lib/html/html_fast.c against gumbo, differentially:
 * whenever the fast path builds a tree for the input, it must be the tree gumbo builds
 * (node types, tags and names, namespaces, attributes in order, texts, the doctype).
 * Any difference aborts with both trees on standard error. Inputs that the fast path
 * gives up on are fine (gumbo parses them in the product).
 *
 * Built with a main of its own (-DFUZZ_HTML_FAST_MAIN) it checks the files it is given
 * and prints "fast" or "gumbo" for each: how the corpus is parsed.
 */
#include <gumbo.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"
#include "lazy/lazy.h"
#include "util/buf.h"

static const GumboVector *kids(const GumboNode *n)
{
    return n->type == GUMBO_NODE_DOCUMENT ? &n->v.document.children : &n->v.element.children;
}

/* A canonical listing of the tree, iteratively (deep inputs). */
static void dump(const GumboNode *root, pg_buf *out)
{
    const GumboDocument *d = &root->v.document;
    pg_buf_printf(out, "doctype %d [%s] [%s] [%s]\n", d->has_doctype, d->name ? d->name : "",
                  d->public_identifier ? d->public_identifier : "",
                  d->system_identifier ? d->system_identifier : "");
    size_t cap = 64, depth = 0;
    const GumboNode **st = malloc(cap * sizeof *st);
    unsigned *next = malloc(cap * sizeof *next);
    if (st == NULL || next == NULL)
        abort();
    st[0] = root;
    next[0] = 0;
    depth = 1;
    while (depth > 0) {
        const GumboNode *n = st[depth - 1];
        const GumboVector *k = kids(n);
        if (next[depth - 1] == k->length) {
            depth--;
            continue;
        }
        const GumboNode *c = k->data[next[depth - 1]++];
        if (c->parent != n || c->index_within_parent != next[depth - 1] - 1)
            pg_buf_puts(out, "!links ");
        pg_buf_printf(out, "%*s%d ", (int)depth, "", c->type);
        if (c->type == GUMBO_NODE_ELEMENT || c->type == GUMBO_NODE_TEMPLATE) {
            const GumboElement *e = &c->v.element;
            pg_buf_printf(out, "<%d ns%d", e->tag, e->tag_namespace);
            if (e->tag == GUMBO_TAG_UNKNOWN) {
                GumboStringPiece p = e->original_tag;
                if (p.data != NULL) {
                    gumbo_tag_from_original_text(&p);
                    pg_buf_putc(out, ' ');
                    for (size_t i = 0; i < p.length; i++)
                        pg_buf_putc(out,
                                    (char)(p.data[i] >= 'A' && p.data[i] <= 'Z' ? p.data[i] | 0x20
                                                                                : p.data[i]));
                }
            }
            for (unsigned a = 0; a < e->attributes.length; a++) {
                const GumboAttribute *at = e->attributes.data[a];
                pg_buf_printf(out, " %d:%s=\"%s\"", at->attr_namespace, at->name, at->value);
            }
            pg_buf_puts(out, ">\n");
            if (depth == cap) {
                cap *= 2;
                st = realloc(st, cap * sizeof *st);
                next = realloc(next, cap * sizeof *next);
                if (st == NULL || next == NULL)
                    abort();
            }
            st[depth] = c;
            next[depth] = 0;
            depth++;
        } else {
            pg_buf_printf(out, "[%s]\n", c->v.text.text);
        }
    }
    free(st);
    free(next);
}

/* Returns 1 when the fast path parsed (s, n), 0 when it gave up; aborts on a difference. */
static int check(const char *s, size_t n)
{
    if (pg_lazy_gumbo(NULL, 0) != PIGEON_OK)
        return 0;
    pg_html_doc doc;
    memset(&doc, 0, sizeof doc);
    int rc = pg_html_fast_parse(&doc, s, n);
    if (rc == 0) {
        GumboOptions o = kGumboDefaultOptions;
        o.max_errors = 0;
        GumboOutput *g = gumbo_parse_with_options(&o, s, n);
        pg_buf a, b;
        pg_buf_init(&a);
        pg_buf_init(&b);
        dump(doc.out->document, &a);
        dump(g->document, &b);
        if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
            fprintf(stderr, "fast path:\n%.*s\ngumbo:\n%.*s\n", (int)a.len, a.data, (int)b.len,
                    b.data);
            abort();
        }
        pg_buf_cleanup(&a);
        pg_buf_cleanup(&b);
        gumbo_destroy_output(&o, g);
    }
    pg_html_arena_cleanup(&doc.arena);
    return rc == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check((const char *)data, size);
    return 0;
}

#ifdef FUZZ_HTML_FAST_MAIN
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (f == NULL)
            return 66;
        pg_buf b;
        pg_buf_init(&b);
        char chunk[65536];
        size_t k;
        while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
            pg_buf_append(&b, chunk, k);
        fclose(f);
        printf("%s %s\n", argv[i], check(b.data, b.len) ? "fast" : "gumbo");
        pg_buf_cleanup(&b);
    }
    return 0;
}
#endif
