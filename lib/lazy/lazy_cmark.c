/*
 * lazy_cmark.c - cmark-gfm and its extensions library (GitHub's tables, strikethrough,
 * autolinks), for Markdown mail (lib/html/html_markdown.c), loaded when Markdown is
 * first rendered. Two libraries: the extensions need the core, the core not them.
 */
#include "lazy/lazy.h"

#if defined(PIGEON_LAZY_LIBS) && defined(PIGEON_HAVE_CMARK)
#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm.h>

/* cmark-gfm declares every function visibility("default"). */
#define PG_LAZY_HIDDEN
#include "lazy/lazy_cmark.h"
#include "lazy/lazy_stub.h"

/* Declared without a prototype in cmark-gfm.h; the stub below has one. */
cmark_mem *cmark_get_default_mem_allocator(void);

#define CMARK_FUNCTIONS(F, V)                                                                      \
    F(cmark_parser *, cmark_parser_new, (int options), (options))                                  \
    F(cmark_parser *, cmark_parser_new_with_mem, (int options, cmark_mem *mem), (options, mem))    \
    V(cmark_parser_free, (cmark_parser * parser), (parser))                                        \
    V(cmark_parser_feed, (cmark_parser * parser, const char *buffer, size_t len),                  \
      (parser, buffer, len))                                                                       \
    F(cmark_node *, cmark_parser_finish, (cmark_parser * parser), (parser))                        \
    F(int, cmark_parser_attach_syntax_extension,                                                   \
      (cmark_parser * parser, cmark_syntax_extension * extension), (parser, extension))            \
    F(cmark_llist *, cmark_parser_get_syntax_extensions, (cmark_parser * parser), (parser))        \
    F(cmark_syntax_extension *, cmark_find_syntax_extension, (const char *name), (name))           \
    F(cmark_mem *, cmark_get_default_mem_allocator, (void), ())                                    \
    F(char *, cmark_render_html, (cmark_node * root, int options, cmark_llist *extensions),        \
      (root, options, extensions))                                                                 \
    F(char *, cmark_render_plaintext, (cmark_node * root, int options, int width),                 \
      (root, options, width))                                                                      \
    F(char *, cmark_markdown_to_html, (const char *text, size_t len, int options),                 \
      (text, len, options))                                                                        \
    F(cmark_node *, cmark_parse_document, (const char *buffer, size_t len, int options),           \
      (buffer, len, options))                                                                      \
    V(cmark_node_free, (cmark_node * node), (node))                                                \
    F(cmark_node *, cmark_node_first_child, (cmark_node * node), (node))                           \
    F(cmark_node *, cmark_node_next, (cmark_node * node), (node))                                  \
    F(cmark_node_type, cmark_node_get_type, (cmark_node * node), (node))                           \
    F(const char *, cmark_node_get_literal, (cmark_node * node), (node))                           \
    F(const char *, cmark_node_get_url, (cmark_node * node), (node))                               \
    F(cmark_iter *, cmark_iter_new, (cmark_node * root), (root))                                   \
    F(cmark_event_type, cmark_iter_next, (cmark_iter * iter), (iter))                              \
    F(cmark_node *, cmark_iter_get_node, (cmark_iter * iter), (iter))                              \
    V(cmark_iter_free, (cmark_iter * iter), (iter))                                                \
    V(cmark_llist_free, (cmark_mem * mem, cmark_llist * head), (mem, head))

PG_LAZY_DEFINE(CMARK_FUNCTIONS, PIGEON_SONAME_CMARK, PIGEON_PACKAGE_CMARK, "Markdown")

pigeon_err pg_lazy_cmark(char *err, size_t errlen)
{
    pigeon_err e = pg_lazy_open(&lib, err, errlen);
    return e == PIGEON_OK ? pg_lazy_cmark_ext(err, errlen) : e;
}
#else
pigeon_err pg_lazy_cmark(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return PIGEON_OK;
}
#endif
