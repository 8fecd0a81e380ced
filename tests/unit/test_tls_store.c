/*
 * test_tls_store.c - when the system trust store may be read lazily by subject hash
 * (pg_tls_dir_is_hashed): only a folder holding a regular file under a c_rehash name counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/tls.h"

static char dir[64];

static void put(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\n", f);
    fclose(f);
}

static void link_to(const char *target, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(symlink(target, path), 0);
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/pigeon-tls-store-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_missing_and_empty(void **state)
{
    assert_false(pg_tls_dir_is_hashed(NULL));
    assert_false(pg_tls_dir_is_hashed("/nonexistent/pigeon/certs"));
    assert_false(pg_tls_dir_is_hashed(dir));
}

static void test_names_that_are_not_hashes(void **state)
{
    put("ca-certificates.crt");
    put("abcdef0.0");                             /* seven digits */
    put("abcdefg1.0");                            /* not hex */
    put("abcdef01.x");                            /* no sequence number */
    put("abcdef01");                              /* no dot */
    link_to("/nonexistent/ca.pem", "0123abcd.0"); /* dangling */
    assert_false(pg_tls_dir_is_hashed(dir));
}

static void test_hash_link_to_file(void **state)
{
    put("Some_Root_CA.pem");
    link_to("Some_Root_CA.pem", "9a5ba575.0");
    assert_true(pg_tls_dir_is_hashed(dir));
}

static void test_hashed_file_itself(void **state)
{
    put("0123ABCD.1");
    assert_true(pg_tls_dir_is_hashed(dir));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_that_are_not_hashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_link_to_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hashed_file_itself, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
