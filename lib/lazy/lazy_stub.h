/*
 * lazy_stub.h - the stubs of a library loaded on first use (internal to lib/lazy).
 *
 * A lazy_<lib>.c lists the library's functions the code calls, one line each:
 *     F(return type, name, (parameters), (arguments))   a function returning a value
 *     V(name, (parameters), (arguments))                a function returning void
 * and PG_LAZY_DEFINE turns the list into the table of names, the pg_lazy_lib and one
 * hidden stub per function. A stub's definition must match the library header's
 * declaration, so a wrong line does not compile.
 */
#ifndef PG_LAZY_STUB_H
#define PG_LAZY_STUB_H

#include "lazy/lazy.h"

#define PG_LAZY_IDX_F(ret, name, params, args)  PG_LAZY_IDX_##name,
#define PG_LAZY_IDX_V(name, params, args)       PG_LAZY_IDX_##name,
#define PG_LAZY_NAME_F(ret, name, params, args) #name,
#define PG_LAZY_NAME_V(name, params, args)      #name,
/* Hidden: in a program that links the library itself, the program's calls may bind to
 * the stub (which forwards to the same library), but the stub is never exported. A
 * header that declares its functions visibility("default") keeps that (the file defines
 * PG_LAZY_HIDDEN empty); libpigeon.so keeps them local all the same (lib/pigeon.map). */
#ifndef PG_LAZY_HIDDEN
#define PG_LAZY_HIDDEN __attribute__((visibility("hidden")))
#endif
#define PG_LAZY_STUB_F(ret, name, params, args)                                                    \
    PG_LAZY_HIDDEN ret name params                                                                 \
    {                                                                                              \
        return ((ret(*) params)pg_lazy_sym(&lib, PG_LAZY_IDX_##name))args;                         \
    }
#define PG_LAZY_STUB_V(name, params, args)                                                         \
    PG_LAZY_HIDDEN void name params                                                                \
    {                                                                                              \
        ((void(*) params)pg_lazy_sym(&lib, PG_LAZY_IDX_##name)) args;                              \
    }

/* The probe (PIGEON_LAZY_PROBE: the build's pigeon_lazy_deps object, linked against the
 * real libraries) refers to each listed function instead of defining a stub: the link
 * checks that every name exists, and dpkg-shlibdeps reads from it the library versions
 * that have them all (scripts/mkdeb.sh). */
#define PG_LAZY_PROBE_F(ret, name, params, args) (void (*)(void)) name,
#define PG_LAZY_PROBE_V(name, params, args)      (void (*)(void)) name,
#ifdef PIGEON_LAZY_PROBE
#define PG_LAZY_FUNCTIONS(LIST)                                                                    \
    __attribute__((used)) static void (*const probe[])(void) = {                                   \
        LIST(PG_LAZY_PROBE_F, PG_LAZY_PROBE_V)};
#else
#define PG_LAZY_FUNCTIONS(LIST) LIST(PG_LAZY_STUB_F, PG_LAZY_STUB_V)
#endif

/* The file's library: soname and package are strings from the build (CMakeLists.txt),
 * feature says what needs it. Defines the static `lib` the stubs use, then the stubs. */
#define PG_LAZY_DEFINE(LIST, soname, package, feature)                                             \
    enum { LIST(PG_LAZY_IDX_F, PG_LAZY_IDX_V) PG_LAZY_COUNT };                                     \
    static const char *const names[] = {LIST(PG_LAZY_NAME_F, PG_LAZY_NAME_V)};                     \
    static void *syms[PG_LAZY_COUNT];                                                              \
    static pg_lazy_lib lib = {soname, package, feature, names, syms, PG_LAZY_COUNT, 0, ""};        \
    PG_LAZY_FUNCTIONS(LIST)

#endif
