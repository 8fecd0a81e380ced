/*
 * template_flat.c - flat templates (text and {{name}} tags only) taken apart, so that a
 * mail merge can run what follows the expansion (the HTML pipeline) once with markers in
 * place of the values and put each row's values in afterwards (pigeon/template.h).
 *
 * A flat template's nodes are TEXT and VAR only; runs of TEXT (split around comments)
 * are one piece. Tag i is the i-th VAR node.
 */
#include <stdint.h>
#include <string.h>

#include "template/template_int.h"
#include "template/vars.h"

size_t pigeon_template_flat(const pigeon_template *t)
{
    size_t tags = 0;
    if (t == NULL)
        return (size_t)-1;
    for (size_t i = 0; i < t->count; i++) {
        if (t->nodes[i].kind == PG_NODE_VAR)
            tags++;
        else if (t->nodes[i].kind != PG_NODE_TEXT)
            return (size_t)-1;
    }
    return tags;
}

/* The node index of tag i (t->count for the end), found by a walk: templates are short
 * and this runs once per merge. */
static size_t tag_node(const pigeon_template *t, size_t i)
{
    size_t seen = 0;
    for (size_t k = 0; k < t->count; k++)
        if (t->nodes[k].kind == PG_NODE_VAR && seen++ == i)
            return k;
    return t->count;
}

pigeon_err pigeon_template_piece(const pigeon_template *t, size_t i, const char **text,
                                 size_t *text_len, const char **name, size_t *name_len)
{
    size_t tags = pigeon_template_flat(t);
    if (tags == (size_t)-1 || i > tags || text == NULL || text_len == NULL || name == NULL ||
        name_len == NULL)
        return PIGEON_ERR_INVALID;
    size_t end = tag_node(t, i);
    size_t start = i == 0 ? 0 : tag_node(t, i - 1) + 1;
    /* TEXT nodes in a run are adjacent in the source unless a comment or a delimiter
     * change sat between them: the piece is the run's first node up to its last. */
    *text = t->src;
    *text_len = 0;
    if (start < end) {
        const pg_node *first = &t->nodes[start], *last = &t->nodes[end - 1];
        int contiguous = 1;
        for (size_t k = start + 1; k < end; k++)
            contiguous &= t->nodes[k].off == t->nodes[k - 1].off + t->nodes[k - 1].len;
        if (!contiguous)
            return PIGEON_ERR_UNSUPPORTED;
        *text = t->src + first->off;
        *text_len = last->off + last->len - first->off;
    }
    *name = end < t->count ? t->src + t->nodes[end].off : NULL;
    *name_len = end < t->count ? t->nodes[end].len : 0;
    return PIGEON_OK;
}

const char *pigeon_template_value(const pigeon_template *t, size_t i,
                                  const pigeon_vars *const *scopes, size_t nscopes, size_t *len)
{
    const pigeon_vars *stack[16];
    size_t depth = 0;
    if (t == NULL || len == NULL || nscopes > 16)
        return NULL;
    for (size_t k = 0; k < nscopes; k++)
        if (scopes[k] != NULL)
            stack[depth++] = scopes[k];
    size_t n = tag_node(t, i);
    if (n >= t->count || t->nodes[n].kind != PG_NODE_VAR)
        return NULL;
    const pigeon_vars *v =
        pg_template_resolve(stack, depth, t->src + t->nodes[n].off, t->nodes[n].len);
    return v != NULL ? pigeon_vars_text(v, len) : NULL;
}
