/*
 * html_markdown.c - Markdown to an HTML mail: CommonMark with GitHub's tables,
 * strikethrough and autolinks, rendered by cmark-gfm (Debian's libcmark-gfm), wrapped in
 * a complete document whose <style> holds a small email-safe stylesheet, which
 * pigeon_html_prepare() then inlines (Gmail drops <style>; inline styles survive).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
/* cmark-gfm allocates every node, inline and buffer growth on its own (a fifth of a
 * Markdown mail's time went to malloc and free). A document up to ARENA_MD is parsed and
 * rendered in a bump arena instead, dropped whole when the HTML is copied out: free is a
 * no-op and realloc copies (cmark_mem has no userdata, hence the thread-local arena). */
#define ARENA_MD (1024 * 1024)

static _Thread_local pg_html_arena *md_arena;

/* Each block starts with its size, for realloc. */
typedef union md_head {
    size_t size;
    max_align_t align;
} md_head;

static void *md_alloc(size_t n)
{
    md_head *h = pg_html_arena_alloc(md_arena, sizeof *h + n);
    if (h == NULL)
        abort(); /* as cmark's own allocator does */
    h->size = n;
    return h + 1;
}

static void *md_calloc(size_t count, size_t size)
{
    if (size != 0 && count > ((size_t)-1 - sizeof(md_head)) / size)
        abort();
    void *p = md_alloc(count * size);
    memset(p, 0, count * size);
    return p;
}

static void *md_realloc(void *p, size_t n)
{
    if (p == NULL)
        return md_alloc(n);
    size_t had = ((md_head *)p - 1)->size;
    if (n <= had)
        return p;
    void *q = md_alloc(n);
    memcpy(q, p, had);
    return q;
}

static void md_free(void *p)
{
    (void)p;
}

static cmark_mem md_mem = {md_calloc, md_realloc, md_free};

/* The body of the mail: cmark-gfm's HTML with the GFM extensions attached, allocated
 * from mem. */
static char *render(const char *md, size_t len, cmark_mem *mem)
{
    static const char *const exts[] = {"table", "strikethrough", "autolink"};
    cmark_gfm_core_extensions_ensure_registered();
    /* UNSAFE keeps raw HTML: the author wrote the Markdown for their own mail. */
    int options = CMARK_OPT_UNSAFE;
    cmark_parser *parser = cmark_parser_new_with_mem(options, mem);
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
    pg_html_arena arena = {NULL};
    cmark_mem *mem = cmark_get_default_mem_allocator();
    if (len <= ARENA_MD) {
        md_arena = &arena;
        mem = &md_mem;
    }
    char *body = render(md, len, mem);
    md_arena = NULL;
    if (body == NULL) {
        pg_html_arena_cleanup(&arena);
        return PIGEON_ERR_NOMEM;
    }
    pg_buf out;
    pg_buf_init(&out);
    pg_buf_puts(&out, "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width\">\n<style>\n");
    /* "</style" inside the CSS would end the element early: break it. */
    for (const char *p = css ? css : markdown_css; *p;) {
        const char *lt = strchr(p, '<');
        while (lt != NULL && strncasecmp(lt, "</style", 7) != 0)
            lt = strchr(lt + 1, '<');
        if (lt == NULL) {
            pg_buf_puts(&out, p);
            break;
        }
        pg_buf_append(&out, p, (size_t)(lt - p));
        pg_buf_puts(&out, "<\\/");
        p = lt + 2;
    }
    pg_buf_puts(&out, "\n</style>\n</head>\n<body>\n<div class=\"pigeon-md\">\n");
    pg_buf_puts(&out, body);
    pg_buf_puts(&out, "</div>\n</body>\n</html>\n");
    mem->free(body);
    pg_html_arena_cleanup(&arena);
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
