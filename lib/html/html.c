/*
 * html.c - pigeon_html_prepare(): the passes over one HTML mail, in order.
 *
 * Parse (html_tree.c) -> gather the <style> blocks and --css into one stylesheet
 * (css_sheet.c) -> inline it (html_inline.c) -> images to cid: (html_images.c) -> write
 * the HTML (html_serialize.c) and the text part (html_text.c). <style data-keep> blocks
 * (juice's data-embed) are neither inlined nor removed.
 */
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"
#include "util/utf8.h"

/* The text of a <style> element (its one text child). */
static const char *style_text(const GumboNode *node)
{
    const GumboVector *kids = &node->v.element.children;
    if (kids->length == 0)
        return "";
    const GumboNode *t = kids->data[0];
    return t->type == GUMBO_NODE_TEXT || t->type == GUMBO_NODE_WHITESPACE ? t->v.text.text : "";
}

/* Collects the <style> blocks to inline (marking them dropped) into sheet. */
static pigeon_err gather(pg_html_doc *doc, pg_css_sheet *sheet)
{
    for (size_t i = 0; i < doc->count; i++) {
        pg_html_el *el = &doc->els[i];
        if (el->node->v.element.tag != GUMBO_TAG_STYLE ||
            el->node->v.element.tag_namespace != GUMBO_NAMESPACE_HTML)
            continue;
        if (pg_html_attr(el, "data-keep") != NULL || pg_html_attr(el, "data-embed") != NULL)
            continue;
        /* Inside <template> or <noscript> it is not applied by a browser either. */
        int inert = 0;
        for (uint32_t p = el->parent; p != PG_NONE && !inert; p = doc->els[p].parent)
            inert = doc->els[p].node->v.element.tag == GUMBO_TAG_TEMPLATE;
        if (inert)
            continue;
        const char *css = style_text(el->node);
        if (pg_css_sheet_parse(sheet, css, strlen(css)) != PIGEON_OK)
            return sheet->err;
        el->drop = 1;
    }
    return PIGEON_OK;
}

pigeon_err pg_html_passes(pg_html_doc *doc, const pigeon_html_opts *o, pigeon_html_result *res)
{
    pg_css_sheet sheet;
    pigeon_err err = PIGEON_OK;
    memset(&sheet, 0, sizeof sheet);
    if (!o->no_inline) {
        if ((err = gather(doc, &sheet)) == PIGEON_OK && o->css != NULL)
            err = pg_css_sheet_parse(&sheet, o->css, o->css_len);
        if (err == PIGEON_OK)
            err = pg_html_inline(doc, &sheet, !o->no_attrs);
    } else if (o->css != NULL) {
        pg_buf_append(&doc->head_style, o->css, o->css_len);
    }
    if (err == PIGEON_OK && !o->no_images)
        err = pg_html_images(doc, res);
    pg_css_sheet_cleanup(&sheet);
    return err;
}

static pigeon_err run(pg_html_doc *doc, const pigeon_html_opts *o, pigeon_html_result *res)
{
    pg_buf out;
    pg_buf_init(&out);
    pigeon_err err = pg_html_passes(doc, o, res);
    if (err == PIGEON_OK && (err = pg_html_serialize(doc, &out)) == PIGEON_OK)
        res->html = pg_buf_detach(&out, &res->html_len);
    if (err == PIGEON_OK && res->html == NULL)
        err = PIGEON_ERR_NOMEM;
    if (err == PIGEON_OK && !o->no_text) {
        pg_buf_reset(&out);
        if ((err = pg_html_text(doc, o->wrap, &out)) == PIGEON_OK &&
            (res->text = pg_buf_detach(&out, &res->text_len)) == NULL)
            err = PIGEON_ERR_NOMEM;
    }
    pg_buf_cleanup(&out);
    return err;
}

pigeon_err pigeon_html_prepare(const char *html, size_t len, const pigeon_html_opts *opts,
                               pigeon_html_result *res)
{
    static const pigeon_html_opts defaults = {0};
    pg_html_doc doc;
    if (res == NULL)
        return PIGEON_ERR_INVALID;
    memset(res, 0, sizeof *res);
    if (html == NULL)
        return PIGEON_ERR_INVALID;
    if (len > (size_t)INT32_MAX)
        return PIGEON_ERR_TOO_LARGE;
    /* gumbo reads UTF-8 only and would turn other bytes into U+FFFD silently. */
    if (!pg_utf8_valid(html, len))
        return PIGEON_ERR_CHARSET;
    const pigeon_html_opts *o = opts ? opts : &defaults;
    pigeon_err err = pg_html_doc_parse(&doc, html, len);
    if (err != PIGEON_OK)
        return err;
    err = run(&doc, o, res);
    pg_html_doc_cleanup(&doc);
    if (err == PIGEON_OK && o->no_inline && o->no_images && o->css == NULL) {
        /* Nothing to change in the HTML: send the author's bytes, not a re-serialization. */
        free(res->html);
        if ((res->html = malloc(len + 1)) == NULL) {
            err = PIGEON_ERR_NOMEM;
        } else {
            memcpy(res->html, html, len);
            res->html[len] = '\0';
            res->html_len = len;
        }
    }
    if (err != PIGEON_OK)
        pigeon_html_result_cleanup(res);
    return err;
}

void pigeon_html_result_cleanup(pigeon_html_result *res)
{
    if (res == NULL)
        return;
    free(res->html);
    free(res->text);
    pg_html_images_free(res->images, res->nimages);
    memset(res, 0, sizeof *res);
}
