/*
 * lazy.c - loading a library on first use (see lazy.h): dlopen() by SONAME, every
 * function of its list resolved at once (a library too old to have one is refused then,
 * not at some later call), the outcome kept for the life of the process.
 */
#include "lazy/lazy.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

enum { UNTRIED = 0, LOADED = 1, FAILED = -1 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* The first failure whose text no caller took (a hook given no buffer), under lock. */
static char unreported[sizeof((pg_lazy_lib *)0)->error];

/* Writes lib's failure: what needs it, the file, where to get it, and dlerror()'s text. */
static void fail(pg_lazy_lib *lib, const char *why)
{
    snprintf(lib->error, sizeof lib->error, "%s needs %s%s%s%s, which cannot be loaded: %s",
             lib->feature, lib->soname, lib->package[0] ? " (Debian package " : "", lib->package,
             lib->package[0] ? ")" : "", why ? why : "unknown error");
}

/* Under lock: dlopen and dlsym everything, or nothing. */
static void load(pg_lazy_lib *lib)
{
    /* RTLD_LOCAL: the library's symbols serve our stubs only, never the program's own
     * lookups. RTLD_NOW: a broken install fails here, not halfway through a send. */
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fail(lib, dlerror());
        __atomic_store_n(&lib->state, FAILED, __ATOMIC_RELEASE);
        return;
    }
    for (size_t i = 0; i < lib->count; i++) {
        dlerror();
        lib->syms[i] = dlsym(h, lib->names[i]);
        if (lib->syms[i] == NULL) {
            char why[160];
            snprintf(why, sizeof why, "it has no function %s (a version older than the build's)",
                     lib->names[i]);
            fail(lib, why);
            /* Never dlclose: a library's destructors at an unexpected time cost more than
             * the mapping. The process keeps it, unused. */
            __atomic_store_n(&lib->state, FAILED, __ATOMIC_RELEASE);
            return;
        }
    }
    __atomic_store_n(&lib->state, LOADED, __ATOMIC_RELEASE);
}

pigeon_err pg_lazy_open(pg_lazy_lib *lib, char *err, size_t errlen)
{
    int state = __atomic_load_n(&lib->state, __ATOMIC_ACQUIRE);
    if (state == UNTRIED) {
        pthread_mutex_lock(&lock);
        if (__atomic_load_n(&lib->state, __ATOMIC_ACQUIRE) == UNTRIED)
            load(lib);
        pthread_mutex_unlock(&lock);
        state = __atomic_load_n(&lib->state, __ATOMIC_ACQUIRE);
    }
    if (state == LOADED)
        return PIGEON_OK;
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", lib->error);
    } else {
        pthread_mutex_lock(&lock);
        if (unreported[0] == '\0')
            snprintf(unreported, sizeof unreported, "%s", lib->error);
        pthread_mutex_unlock(&lock);
    }
    return PIGEON_ERR_UNSUPPORTED;
}

static void (*fatal)(const char *message);

void pg_lazy_set_fatal(void (*fn)(const char *message))
{
    __atomic_store_n(&fatal, fn, __ATOMIC_RELEASE);
}

void *pg_lazy_sym(pg_lazy_lib *lib, size_t i)
{
    if (__atomic_load_n(&lib->state, __ATOMIC_ACQUIRE) != LOADED &&
        pg_lazy_open(lib, NULL, 0) != PIGEON_OK) {
        /* A call the library's absence leaves no way to answer (a digest, a key). */
        void (*fn)(const char *) = __atomic_load_n(&fatal, __ATOMIC_ACQUIRE);
        if (fn != NULL)
            fn(lib->error);
        fprintf(stderr, "%s\n", lib->error);
        abort();
    }
    return lib->syms[i];
}

const char *pg_lazy_unreported(void)
{
    pthread_mutex_lock(&lock);
    const char *f = unreported; /* written once: stable once set */
    pthread_mutex_unlock(&lock);
    return f;
}
