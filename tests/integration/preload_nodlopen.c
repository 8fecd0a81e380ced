/*
 * preload_nodlopen.c - an LD_PRELOAD module for test_lazy.py: dlopen() of a file whose
 * name contains $PIGEON_TEST_NO_DLOPEN fails as a missing file does (the real dlopen()
 * of a path that does not exist, so dlerror() says what the loader says), which is how
 * an optional library that is not installed looks to pigeon.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

void *dlopen(const char *file, int mode)
{
    void *(*real)(const char *, int) = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    const char *deny = getenv("PIGEON_TEST_NO_DLOPEN");
    if (file != NULL && deny != NULL && deny[0] != '\0' && strstr(file, deny) != NULL)
        return real("/nonexistent/pigeon-test-no-dlopen.so", mode);
    return real(file, mode);
}
