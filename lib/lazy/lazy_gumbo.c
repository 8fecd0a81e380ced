/*
 * lazy_gumbo.c - gumbo, the HTML5 parser of lib/html, loaded when a document is first
 * parsed (pg_html_doc_parse).
 */
#include "lazy/lazy.h"

#ifdef PIGEON_LAZY_LIBS
#include <gumbo.h>
#include <stdlib.h>

#include "lazy/lazy_stub.h"

#define GUMBO_FUNCTIONS(F, V)                                                                      \
    F(GumboOutput *, gumbo_parse_with_options,                                                     \
      (const GumboOptions *options, const char *buffer, size_t buffer_length),                     \
      (options, buffer, buffer_length))                                                            \
    F(GumboOutput *, gumbo_parse, (const char *buffer), (buffer))                                  \
    V(gumbo_destroy_output, (const GumboOptions *options, GumboOutput *output), (options, output)) \
    F(GumboAttribute *, gumbo_get_attribute, (const GumboVector *attrs, const char *name),         \
      (attrs, name))                                                                               \
    F(const char *, gumbo_normalize_svg_tagname, (const GumboStringPiece *tagname), (tagname))     \
    F(const char *, gumbo_normalized_tagname, (GumboTag tag), (tag))                               \
    V(gumbo_tag_from_original_text, (GumboStringPiece * text), (text))                             \
    F(GumboTag, gumbo_tag_enum, (const char *tagname), (tagname))                                  \
    F(GumboTag, gumbo_tagn_enum, (const char *tagname, unsigned int length), (tagname, length))

PG_LAZY_DEFINE(GUMBO_FUNCTIONS, PIGEON_SONAME_GUMBO, PIGEON_PACKAGE_GUMBO, "parsing HTML")

/* kGumboDefaultOptions is data, which a stub cannot stand for: this is our copy, with the
 * defaults gumbo.h documents for each field (malloc and free, no userdata, tab stop 8,
 * all errors kept, a whole document in the HTML namespace). The parser reads everything
 * it needs from the options it is given. */
static void *gumbo_alloc(void *userdata, size_t size)
{
    (void)userdata;
    return malloc(size);
}

static void gumbo_free(void *userdata, void *ptr)
{
    (void)userdata;
    free(ptr);
}

__attribute__((visibility("hidden"))) const GumboOptions kGumboDefaultOptions = {
    .allocator = gumbo_alloc,
    .deallocator = gumbo_free,
    .userdata = NULL,
    .tab_stop = 8,
    .stop_on_first_error = false,
    .max_errors = -1,
    .fragment_context = GUMBO_TAG_LAST,
    .fragment_namespace = GUMBO_NAMESPACE_HTML,
};

pigeon_err pg_lazy_gumbo(char *err, size_t errlen)
{
    return pg_lazy_open(&lib, err, errlen);
}
#else
pigeon_err pg_lazy_gumbo(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return PIGEON_OK;
}
#endif
