/*
 * test_lazy.c - optional libraries loaded on first use (lib/lazy): a library found by its
 * SONAME resolves every function of its list; a missing file, or one without a function
 * of the list, is refused with a message naming the file, the package and what needs it,
 * the same answer on every later call; the failure a caller was not given the text of is
 * kept for the program to print; and the stubs reach the real libraries (libpq, gumbo,
 * cmark-gfm, c-ares, libidn2, OpenSSL, SQLite) with the build's ABI, the variadic ones
 * with each form's arguments.
 */
#define _GNU_SOURCE /* dladdr */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <gumbo.h>
#include <idn2.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sqlite3.h>

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

/* The program's calls bind to the stubs (this test links the libraries too), not to the
 * libraries: what lib/ calls is what is checked here. */
static void assert_stub(void *fn)
{
#ifdef PIGEON_TEST_LAZY_OPENSSL
    Dl_info info;
    assert_true(dladdr(fn, &info) != 0);
    assert_null(strstr(info.dli_fname, "libssl"));
    assert_null(strstr(info.dli_fname, "libcrypto"));
    assert_null(strstr(info.dli_fname, "libsqlite3"));
#else
    (void)fn;
#endif
}

/* SHA-256("abc"), FIPS 180-2 appendix B.1. */
static const unsigned char sha256_abc[32] = {
    0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};

static void test_openssl_through_the_stubs(void **state)
{
    (void)state;
    char err[400] = "";
    assert_int_equal(pg_lazy_crypto(err, sizeof err), PIGEON_OK);
    assert_stub((void *)EVP_Digest);
    unsigned char md[32];
    unsigned int len = 0;
    assert_int_equal(EVP_Digest("abc", 3, md, &len, EVP_sha256(), NULL), 1);
    assert_int_equal(len, 32);
    assert_memory_equal(md, sha256_abc, 32);
    /* The variadic key generation, in its three forms. */
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(ed);
    assert_true(EVP_PKEY_is_a(ed, "ED25519"));
    EVP_PKEY_free(ed);
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(rsa);
    assert_int_equal(EVP_PKEY_get_bits(rsa), 1024);
    EVP_PKEY_free(rsa);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ec);
    assert_int_equal(EVP_PKEY_get_bits(ec), 256);
    EVP_PKEY_free(ec);
    /* OPENSSL_cleanse wipes (explicit_bzero in our stub). */
    char secret[8] = "hunter2";
    OPENSSL_cleanse(secret, sizeof secret);
    for (size_t i = 0; i < sizeof secret; i++)
        assert_int_equal(secret[i], 0);
    assert_int_equal(pg_lazy_ssl(err, sizeof err), PIGEON_OK);
    assert_stub((void *)SSL_CTX_new);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    /* A macro of SSL_CTX_ctrl. */
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
    SSL_CTX_free(ctx);
    assert_string_equal(err, "");
}

static void test_sqlite_through_the_stubs(void **state)
{
    (void)state;
    char err[400] = "";
    assert_int_equal(pg_lazy_sqlite(err, sizeof err), PIGEON_OK);
    assert_stub((void *)sqlite3_open_v2);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    /* The variadic sqlite3_db_config: an int and an int * ... */
    int on = -1;
    assert_int_equal(sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FKEY, 1, &on), SQLITE_OK);
    assert_int_equal(on, 1);
    assert_int_equal(sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FKEY, -1, &on), SQLITE_OK);
    assert_int_equal(on, 1);
    /* ... and a name. */
    assert_int_equal(sqlite3_db_config(db, SQLITE_DBCONFIG_MAINDBNAME, "store"), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (42)", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT x FROM store.t", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 42);
    assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
    assert_int_equal(sqlite3_close_v2(db), SQLITE_OK);
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
        cmocka_unit_test(test_openssl_through_the_stubs),
        cmocka_unit_test(test_sqlite_through_the_stubs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
