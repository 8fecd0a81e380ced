/*
 * html_markdown.c - Markdown to an HTML mail: CommonMark with GitHub's tables,
 * strikethrough and autolinks, rendered by cmark-gfm (Debian's libcmark-gfm), wrapped in
 * a complete document whose <style> holds a small email-safe stylesheet, which
 * pigeon_html_prepare() then inlines (Gmail drops <style>; inline styles survive).
 */
#include <stdlib.h>
#include <string.h>

#include "html/html_int.h"
#include "lazy/lazy.h"

#ifdef PIGEON_HAVE_CMARK
#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm.h>
#endif

/* Safe in Gmail, Outlook and Apple Mail: system fonts, no web fonts, no positioning. */
static const char markdown_css[] =
    "body { margin: 0; padding: 16px; background-color: #ffffff; color: #24292f;"
    " font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif;"
    " font-size: 16px; line-height: 1.5; }\n"
    ".pigeon-md { max-width: 680px; }\n"
    "h1, h2, h3, h4, h5, h6 { margin: 24px 0 16px 0; font-weight: 600; line-height: 1.25; }\n"
    "h1 { font-size: 28px; } h2 { font-size: 22px; } h3 { font-size: 18px; }\n"
    "p, ul, ol, blockquote, pre, table { margin: 0 0 16px 0; }\n"
    "a { color: #0969da; text-decoration: underline; }\n"
    "code { font-family: Menlo, Consolas, monospace; font-size: 14px;"
    " background-color: #f6f8fa; padding: 2px 4px; }\n"
    "pre { font-family: Menlo, Consolas, monospace; font-size: 14px;"
    " background-color: #f6f8fa; padding: 12px; white-space: pre-wrap; }\n"
    "pre code { padding: 0; }\n"
    "blockquote { margin-left: 0; padding: 0 12px; color: #57606a;"
    " border-left: 4px solid #d0d7de; }\n"
    "table { border-collapse: collapse; }\n"
    "th, td { border: 1px solid #d0d7de; padding: 6px 12px; text-align: left; }\n"
    "th { font-weight: 600; background-color: #f6f8fa; }\n"
    "img { max-width: 100%; border: 0; }\n"
    "hr { border: 0; border-top: 1px solid #d0d7de; margin: 24px 0; }\n"
    "del { color: #57606a; }\n";

const char *pigeon_html_markdown_css(void)
{
    return markdown_css;
}

#ifdef PIGEON_HAVE_CMARK
/* The body of the mail: cmark-gfm's HTML with the GFM extensions attached. */
static char *render(const char *md, size_t len)
{
    static const char *const exts[] = {"table", "strikethrough", "autolink"};
    cmark_gfm_core_extensions_ensure_registered();
    /* UNSAFE keeps raw HTML: the author wrote the Markdown for their own mail. */
    int options = CMARK_OPT_UNSAFE;
    cmark_parser *parser = cmark_parser_new(options);
    if (parser == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        cmark_syntax_extension *ext = cmark_find_syntax_extension(exts[i]);
        if (ext != NULL)
            cmark_parser_attach_syntax_extension(parser, ext);
    }
    cmark_parser_feed(parser, md, len);
    cmark_node *doc = cmark_parser_finish(parser);
    char *html =
        doc ? cmark_render_html(doc, options, cmark_parser_get_syntax_extensions(parser)) : NULL;
    if (doc != NULL)
        cmark_node_free(doc);
    cmark_parser_free(parser);
    return html;
}

pigeon_err pigeon_html_from_markdown(const char *md, size_t len, const char *css, char **html,
                                     size_t *html_len)
{
    if (md == NULL || html == NULL || html_len == NULL)
        return PIGEON_ERR_INVALID;
    *html = NULL;
    *html_len = 0;
    /* cmark-gfm is loaded by the first Markdown rendered (lib/lazy/lazy.h). */
    if (pg_lazy_cmark(NULL, 0) != PIGEON_OK)
        return PIGEON_ERR_UNSUPPORTED;
    char *body = render(md, len);
    if (body == NULL)
        return PIGEON_ERR_NOMEM;
    pg_buf out;
    pg_buf_init(&out);
    pg_buf_puts(&out, "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width\">\n<style>\n");
    /* "</style" inside the CSS would end the element early: break it. */
    for (const char *p = css ? css : markdown_css; *p; p++) {
        if (*p == '<' && strncasecmp(p, "</style", 7) == 0)
            pg_buf_puts(&out, "<\\/");
        else
            pg_buf_putc(&out, *p);
        if (*p == '<' && strncasecmp(p, "</style", 7) == 0)
            p += 1;
    }
    pg_buf_puts(&out, "\n</style>\n</head>\n<body>\n<div class=\"pigeon-md\">\n");
    pg_buf_puts(&out, body);
    pg_buf_puts(&out, "</div>\n</body>\n</html>\n");
    cmark_get_default_mem_allocator()->free(body);
    *html = pg_buf_detach(&out, html_len);
    return *html != NULL ? PIGEON_OK : PIGEON_ERR_NOMEM;
}
#else
pigeon_err pigeon_html_from_markdown(const char *md, size_t len, const char *css, char **html,
                                     size_t *html_len)
{
    (void)md;
    (void)len;
    (void)css;
    if (html != NULL)
        *html = NULL;
    if (html_len != NULL)
        *html_len = 0;
    return PIGEON_ERR_UNSUPPORTED;
}
#endif
