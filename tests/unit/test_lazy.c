/*
 * test_lazy.c - optional libraries loaded on first use (lib/lazy): a library found by its
 * SONAME resolves every function of its list; a missing file, or one without a function
 * of the list, is refused with a message naming the file, the package and what needs it,
 * the same answer on every later call; the failure a caller was not given the text of is
 * kept for the program to print; and the stubs reach the real libraries (libpq, gumbo,
 * cmark-gfm, c-ares, libidn2) with the build's ABI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <gumbo.h>
#include <idn2.h>
#include <libpq-fe.h>

#include "lazy/lazy.h"

static void test_loads_and_resolves(void **state)
{
    (void)state;
    static const char *const names[] = {"strlen", "strchr"};
    static void *syms[2];
    pg_lazy_lib lib = {"libc.so.6", "libc6", "a test", names, syms, 2, 0, ""};
    char err[400] = "untouched";
    assert_int_equal(pg_lazy_open(&lib, err, sizeof err), PIGEON_OK);
    assert_string_equal(err, "untouched");
    size_t (*len)(const char *) = (size_t(*)(const char *))pg_lazy_sym(&lib, 0);
    assert_int_equal(len("four"), 4);
    assert_int_equal(pg_lazy_open(&lib, NULL, 0), PIGEON_OK); /* once is enough */
}

static void test_missing_file_named(void **state)
{
    (void)state;
    static const char *const names[] = {"f"};
    static void *syms[1];
    pg_lazy_lib lib = {
        "libpigeon-test-absent.so.9", "libpigeon-test9", "the test feature", names, syms, 1, 0, ""};
    char err[400];
    assert_int_equal(pg_lazy_open(&lib, err, sizeof err), PIGEON_ERR_UNSUPPORTED);
    assert_non_null(strstr(err, "the test feature needs libpigeon-test-absent.so.9 (Debian "
                                "package libpigeon-test9), which cannot be loaded: "));
    assert_non_null(strstr(err, "No such file"));
    /* The caller was given the text: nothing left for the program to print. */
    assert_string_equal(pg_lazy_unreported(), "");
    char again[400];
    assert_int_equal(pg_lazy_open(&lib, again, sizeof again), PIGEON_ERR_UNSUPPORTED);
    assert_string_equal(err, again);
}

static void test_missing_function_named(void **state)
{
    (void)state;
    static const char *const names[] = {"strlen", "pigeon_test_no_such_function"};
    static void *syms[2];
    pg_lazy_lib lib = {"libc.so.6", "", "the other feature", names, syms, 2, 0, ""};
    char err[400];
    assert_int_equal(pg_lazy_open(&lib, err, sizeof err), PIGEON_ERR_UNSUPPORTED);
    assert_non_null(strstr(err, "the other feature needs libc.so.6, which cannot be loaded: "
                                "it has no function pigeon_test_no_such_function"));
}

/* A hook called without a buffer (a library call that can only say "not supported")
 * leaves its text to pg_lazy_unreported(): the first one, for good. */
static void test_unreported_kept_for_the_program(void **state)
{
    (void)state;
    static const char *const names[] = {"f"};
    static void *syms_a[1], *syms_b[1];
    pg_lazy_lib a = {"libpigeon-test-a.so.1", "", "feature A", names, syms_a, 1, 0, ""};
    pg_lazy_lib b = {"libpigeon-test-b.so.1", "", "feature B", names, syms_b, 1, 0, ""};
    assert_int_equal(pg_lazy_open(&a, NULL, 0), PIGEON_ERR_UNSUPPORTED);
    assert_int_equal(pg_lazy_open(&b, NULL, 0), PIGEON_ERR_UNSUPPORTED);
    assert_non_null(strstr(pg_lazy_unreported(), "feature A needs libpigeon-test-a.so.1"));
}

/* The real libraries through the stubs: the functions answer as the libraries do. */
static void test_stubs_reach_the_libraries(void **state)
{
    (void)state;
    char err[400] = "";
    assert_int_equal(pg_lazy_pq(err, sizeof err), PIGEON_OK);
    assert_true(PQlibVersion() >= 140000);
    assert_int_equal(PQresultStatus(NULL), PGRES_FATAL_ERROR);
    assert_int_equal(pg_lazy_gumbo(err, sizeof err), PIGEON_OK);
    assert_string_equal(gumbo_normalized_tagname(GUMBO_TAG_TABLE), "table");
    /* Our copy of the documented defaults parses as gumbo's own would. */
    GumboOutput *out = gumbo_parse_with_options(&kGumboDefaultOptions, "<p>hi", 5);
    assert_non_null(out);
    assert_int_equal(out->root->v.element.tag, GUMBO_TAG_HTML);
    gumbo_destroy_output(&kGumboDefaultOptions, out);
    assert_int_equal(pg_lazy_idn2(err, sizeof err), PIGEON_OK);
    char *ascii = NULL;
    assert_int_equal(idn2_to_ascii_8z("b\xc3\xbc"
                                      "cher.example",
                                      &ascii, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL),
                     IDN2_OK);
    assert_string_equal(ascii, "xn--bcher-kva.example");
    idn2_free(ascii);
    assert_int_equal(pg_lazy_cmark(err, sizeof err), PIGEON_OK);
    assert_int_equal(pg_lazy_cares(err, sizeof err), PIGEON_OK);
    assert_string_equal(err, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loads_and_resolves),
        cmocka_unit_test(test_missing_file_named),
        cmocka_unit_test(test_missing_function_named),
        cmocka_unit_test(test_unreported_kept_for_the_program),
        cmocka_unit_test(test_stubs_reach_the_libraries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
