/*
 * lazy_cmark_ext.c - libcmark-gfm-extensions, loaded by pg_lazy_cmark() after the core
 * library (see lazy_cmark.c).
 */
#include "lazy/lazy_cmark.h"

#if defined(PIGEON_LAZY_LIBS) && defined(PIGEON_HAVE_CMARK)
#include <cmark-gfm-core-extensions.h>

/* cmark-gfm declares every function visibility("default"). */
#define PG_LAZY_HIDDEN
#include "lazy/lazy_stub.h"

#define CMARK_EXT_FUNCTIONS(F, V)                                                                  \
    V(cmark_gfm_core_extensions_ensure_registered, (void), ())                                     \
    F(uint16_t, cmark_gfm_extensions_get_table_columns, (cmark_node * node), (node))               \
    F(int, cmark_gfm_extensions_get_table_row_is_header, (cmark_node * node), (node))

PG_LAZY_DEFINE(CMARK_EXT_FUNCTIONS, PIGEON_SONAME_CMARK_EXT, PIGEON_PACKAGE_CMARK_EXT, "Markdown")

pigeon_err pg_lazy_cmark_ext(char *err, size_t errlen)
{
    return pg_lazy_open(&lib, err, errlen);
}
#endif
