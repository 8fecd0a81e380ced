/*
 * html_rawtext.c - the contents of <style> elements cut out before gumbo reads a mail.
 *
 * Why: gumbo's tokenizer emits one token per character of RAWTEXT (WHATWG HTML 13.2.5.3),
 * and a designed mail carries most of its bytes in <style> (Foundation for Emails: 30 KB
 * of CSS in a 37 KB template), so gumbo spent most of its time on text that the tree
 * builder only appends to one text node. This file finds the <style> start tags with a
 * light scan (comments skipped, attribute quotes honoured, the RAWTEXT and RCDATA
 * elements' contents skipped), and writes the mail again with each style's content taken
 * out. html_tree.c parses that, then checks every cut against gumbo's own tree: each cut
 * must be an HTML <style> element whose start tag gumbo read at exactly that offset and
 * length, with its end tag (or the end of input) right after. Only then was the tokenizer
 * in the data state at that tag in the original too (the text before it is the same),
 * switched to RAWTEXT after it, and RAWTEXT ends at the first "</style" followed by
 * whitespace, "/" or ">" (13.2.5.12-13.2.5.14), the rule used here; so the trees differ
 * only by the text children, which html_tree.c puts back. Any mismatch (a <style> inside
 * <select> or <svg>, a scan fooled by odd markup) makes html_tree.c parse the original
 * instead: the scan is an accelerator, never the parser.
 *
 * Comments are cut the same way when their text is plain (see comment_len): a comment
 * token never changes the tokenizer's or the tree builder's state, so the trees differ
 * only by the comments' data, and html_tree.c checks that gumbo made an empty comment
 * node exactly where each cut one starts.
 */
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
}

/* Nonzero if s[i, n) starts with the lowercase ASCII name, ignoring case. */
static int starts_with(const char *s, size_t n, size_t i, const char *name, size_t len)
{
    if (n - i < len)
        return 0;
    for (size_t k = 0; k < len; k++)
        if (lower((unsigned char)s[i + k]) != name[k])
            return 0;
    return 1;
}

/* What may follow a tag name for the tag to end there (13.2.5.8): whitespace, / or >. */
static int ends_name(const char *s, size_t n, size_t i)
{
    if (i >= n)
        return 0;
    char c = s[i];
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == '/' || c == '>';
}

/* Nonzero if s[i, n) is "<name" followed by what ends a tag name. */
static int is_tag(const char *s, size_t n, size_t i, const char *name, size_t len)
{
    return starts_with(s, n, i + 1, name, len) && ends_name(s, n, i + 1 + len);
}

/* The offset just after the '>' that ends the tag starting at i, or n. A quote opens an
 * attribute value only right after '=' (and whitespace); gumbo's own offsets check it. */
static size_t tag_end(const char *s, size_t n, size_t i)
{
    int after_eq = 0;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '>')
            return i + 1;
        if ((c == '"' || c == '\'') && after_eq) {
            const char *q = memchr(s + i + 1, c, n - i - 1);
            if (q == NULL)
                return n;
            i = (size_t)(q - s);
            after_eq = 0;
        } else if (c == '=') {
            after_eq = 1;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\f' && c != '\r') {
            after_eq = 0;
        }
    }
    return n;
}

/* Where the first "</name" + (whitespace, / or >) at or after i starts, or n. */
static size_t end_tag_at(const char *s, size_t n, size_t i, const char *name, size_t len)
{
    while (i < n) {
        const char *p = memchr(s + i, '<', n - i);
        if (p == NULL)
            return n;
        i = (size_t)(p - s);
        if (i + 1 < n && s[i + 1] == '/' && starts_with(s, n, i + 2, name, len) &&
            ends_name(s, n, i + 2 + len))
            return i;
        i++;
    }
    return n;
}

/* The elements whose content the tokenizer does not read as markup, besides style. */
static const char *const raw_elements[] = {"script", "textarea", "title",   "xmp",
                                           "iframe", "noembed",  "noframes"};

static pigeon_err add_cut(pg_html_cuts *cuts, size_t tag, size_t at, size_t src, size_t len,
                          int comment)
{
    if (cuts->count == cuts->cap) {
        size_t cap = cuts->cap ? cuts->cap * 2 : 8;
        pg_html_cut *p = realloc(cuts->items, cap * sizeof *p);
        if (p == NULL)
            return PIGEON_ERR_NOMEM;
        cuts->items = p;
        cuts->cap = cap;
    }
    cuts->items[cuts->count++] = (pg_html_cut){tag, at, src, len, comment};
    return PIGEON_OK;
}

/* Skips the markup at s[i] == '<' that is not a <style>: a comment, a raw element's
 * content, or one byte. Returns where to go on. */
static size_t skip_other(const char *s, size_t n, size_t i)
{
    if (starts_with(s, n, i, "<!--", 4)) {
        /* 13.2.5.43-13.2.5.52: "<!-->" and "<!--->" are empty comments; otherwise the
         * first "-->" or "--!>" ends one. */
        size_t k = i + 4;
        if (k < n && s[k] == '>')
            return k + 1;
        if (k + 1 < n && s[k] == '-' && s[k + 1] == '>')
            return k + 2;
        for (; k + 2 < n; k++) {
            if (s[k] != '-' || s[k + 1] != '-')
                continue;
            if (s[k + 2] == '>')
                return k + 3;
            if (s[k + 2] == '!' && k + 3 < n && s[k + 3] == '>')
                return k + 4;
        }
        return n;
    }
    for (size_t r = 0; r < sizeof raw_elements / sizeof raw_elements[0]; r++) {
        size_t len = strlen(raw_elements[r]);
        if (is_tag(s, n, i, raw_elements[r], len))
            return end_tag_at(s, n, tag_end(s, n, i + 1 + len), raw_elements[r], len);
    }
    return i + 1;
}

/* The length of the content of the comment at s[i] when it is plain enough to cut, else
 * 0. Plain: "<!--", then text without "--", CR or NUL that does not start with ">" or
 * "->", then "-->" or "--!>". Through such text the comment states of the tokenizer
 * (13.2.5.43-13.2.5.52) append every character as it is, so the comment's data is the
 * text as written; anything else is left to gumbo. (MSO conditional comments, the bulk
 * of an MJML template's comments, are plain.) */
static size_t comment_len(const char *s, size_t n, size_t i)
{
    if (!starts_with(s, n, i, "<!--", 4))
        return 0;
    size_t k = i + 4;
    if (k >= n || s[k] == '>' || (s[k] == '-' && k + 1 < n && s[k + 1] == '>'))
        return 0;
    for (; k + 1 < n; k++) {
        char c = s[k];
        if (c == '\r' || c == '\0')
            return 0;
        if (c != '-' || s[k + 1] != '-')
            continue;
        int ends =
            (k + 2 < n && s[k + 2] == '>') || (k + 3 < n && s[k + 2] == '!' && s[k + 3] == '>');
        return ends ? k - (i + 4) : 0;
    }
    return 0;
}

pigeon_err pg_html_cut_rawtext(const char *s, size_t n, pg_html_cuts *cuts)
{
    memset(cuts, 0, sizeof *cuts);
    size_t i = 0, removed = 0;
    while (i < n) {
        const char *p = memchr(s + i, '<', n - i);
        if (p == NULL)
            break;
        i = (size_t)(p - s);
        size_t len = comment_len(s, n, i);
        if (len > 0) {
            if (add_cut(cuts, i - removed, i + 4 - removed, i + 4, len, 1) != PIGEON_OK)
                goto fail;
            removed += len;
            i += 4 + len;
            continue;
        }
        if (!is_tag(s, n, i, "style", 5)) {
            i = skip_other(s, n, i);
            continue;
        }
        size_t content = tag_end(s, n, i + 6);
        size_t end = end_tag_at(s, n, content, "style", 5);
        if (end > content) {
            if (add_cut(cuts, i - removed, content - removed, content, end - content, 0) !=
                PIGEON_OK)
                goto fail;
            removed += end - content;
        }
        i = end;
    }
    if (cuts->count == 0)
        return PIGEON_OK;
    cuts->len = n - removed;
    if ((cuts->text = malloc(cuts->len + 1)) == NULL)
        goto fail;
    size_t from = 0, to = 0;
    for (size_t k = 0; k < cuts->count; k++) {
        const pg_html_cut *c = &cuts->items[k];
        memcpy(cuts->text + to, s + from, c->src - from);
        to += c->src - from;
        from = c->src + c->len;
    }
    memcpy(cuts->text + to, s + from, n - from);
    cuts->text[cuts->len] = '\0';
    return PIGEON_OK;
fail:
    pg_html_cuts_cleanup(cuts);
    return PIGEON_ERR_NOMEM;
}

void pg_html_cuts_cleanup(pg_html_cuts *cuts)
{
    free(cuts->items);
    free(cuts->text);
    memset(cuts, 0, sizeof *cuts);
}
