/*
 * lazy_sqlite.c - libsqlite3, for the SQLite spool (lib/spool/spool_sqlite*.c), loaded
 * when one is opened (lib/spool/spool.c): a `sendmail` that neither queues nor finds a
 * spool to check the suppression list in never maps it.
 */
#include "lazy/lazy.h"

/* Not with PIGEON_STATIC_DEPS (the build gives no SONAME): the archives are linked. */
#if defined(PIGEON_LAZY_LIBS) && defined(PIGEON_SONAME_SQLITE)
#include <sqlite3.h>
#include <stdarg.h>

#include "lazy/lazy_stub.h"

/* What the code calls, then calls a change is likely to add. sqlite3_db_config, variadic,
 * is forwarded by hand below. */
#define SQLITE_FUNCTIONS(F, V)                                                                     \
    F(int, sqlite3_bind_blob,                                                                      \
      (sqlite3_stmt * a0, int a1, const void *a2, int n, void (*a4)(void *)), (a0, a1, a2, n, a4)) \
    F(int, sqlite3_bind_blob64,                                                                    \
      (sqlite3_stmt * a0, int a1, const void *a2, sqlite3_uint64 a3, void (*a4)(void *)),          \
      (a0, a1, a2, a3, a4))                                                                        \
    F(int, sqlite3_bind_double, (sqlite3_stmt * a0, int a1, double a2), (a0, a1, a2))              \
    F(int, sqlite3_bind_int, (sqlite3_stmt * a0, int a1, int a2), (a0, a1, a2))                    \
    F(int, sqlite3_bind_int64, (sqlite3_stmt * a0, int a1, sqlite3_int64 a2), (a0, a1, a2))        \
    F(int, sqlite3_bind_null, (sqlite3_stmt * a0, int a1), (a0, a1))                               \
    F(int, sqlite3_bind_parameter_count, (sqlite3_stmt * a0), (a0))                                \
    F(int, sqlite3_bind_text,                                                                      \
      (sqlite3_stmt * a0, int a1, const char *a2, int a3, void (*a4)(void *)),                     \
      (a0, a1, a2, a3, a4))                                                                        \
    F(int, sqlite3_blob_bytes, (sqlite3_blob * a0), (a0))                                          \
    F(int, sqlite3_blob_close, (sqlite3_blob * a0), (a0))                                          \
    F(int, sqlite3_blob_open,                                                                      \
      (sqlite3 * a0, const char *zDb, const char *zTable, const char *zColumn, sqlite3_int64 iRow, \
       int flags, sqlite3_blob **ppBlob),                                                          \
      (a0, zDb, zTable, zColumn, iRow, flags, ppBlob))                                             \
    F(int, sqlite3_blob_read, (sqlite3_blob * a0, void *Z, int N, int iOffset),                    \
      (a0, Z, N, iOffset))                                                                         \
    F(int, sqlite3_busy_timeout, (sqlite3 * a0, int ms), (a0, ms))                                 \
    F(int, sqlite3_changes, (sqlite3 * a0), (a0))                                                  \
    F(int, sqlite3_clear_bindings, (sqlite3_stmt * a0), (a0))                                      \
    F(int, sqlite3_close_v2, (sqlite3 * a0), (a0))                                                 \
    F(const void *, sqlite3_column_blob, (sqlite3_stmt * a0, int iCol), (a0, iCol))                \
    F(int, sqlite3_column_bytes, (sqlite3_stmt * a0, int iCol), (a0, iCol))                        \
    F(double, sqlite3_column_double, (sqlite3_stmt * a0, int iCol), (a0, iCol))                    \
    F(int, sqlite3_column_int, (sqlite3_stmt * a0, int iCol), (a0, iCol))                          \
    F(sqlite3_int64, sqlite3_column_int64, (sqlite3_stmt * a0, int iCol), (a0, iCol))              \
    F(const unsigned char *, sqlite3_column_text, (sqlite3_stmt * a0, int iCol), (a0, iCol))       \
    F(int, sqlite3_column_type, (sqlite3_stmt * a0, int iCol), (a0, iCol))                         \
    F(sqlite3_filename, sqlite3_db_filename, (sqlite3 * db, const char *zDbName), (db, zDbName))   \
    F(const char *, sqlite3_errmsg, (sqlite3 * a0), (a0))                                          \
    F(const char *, sqlite3_errstr, (int a0), (a0))                                                \
    F(int, sqlite3_exec,                                                                           \
      (sqlite3 * a0, const char *sql, int (*callback)(void *, int, char **, char **), void *a3,    \
       char **errmsg),                                                                             \
      (a0, sql, callback, a3, errmsg))                                                             \
    F(int, sqlite3_file_control, (sqlite3 * a0, const char *zDbName, int op, void *a3),            \
      (a0, zDbName, op, a3))                                                                       \
    F(int, sqlite3_finalize, (sqlite3_stmt * pStmt), (pStmt))                                      \
    V(sqlite3_free, (void *a0), (a0))                                                              \
    F(int, sqlite3_get_autocommit, (sqlite3 * a0), (a0))                                           \
    F(sqlite3_int64, sqlite3_last_insert_rowid, (sqlite3 * a0), (a0))                              \
    F(int, sqlite3_open_v2, (const char *filename, sqlite3 **ppDb, int flags, const char *zVfs),   \
      (filename, ppDb, flags, zVfs))                                                               \
    F(int, sqlite3_prepare_v2,                                                                     \
      (sqlite3 * db, const char *zSql, int nByte, sqlite3_stmt **ppStmt, const char **pzTail),     \
      (db, zSql, nByte, ppStmt, pzTail))                                                           \
    F(int, sqlite3_prepare_v3,                                                                     \
      (sqlite3 * db, const char *zSql, int nByte, unsigned int prepFlags, sqlite3_stmt **ppStmt,   \
       const char **pzTail),                                                                       \
      (db, zSql, nByte, prepFlags, ppStmt, pzTail))                                                \
    F(int, sqlite3_reset, (sqlite3_stmt * pStmt), (pStmt))                                         \
    F(int, sqlite3_step, (sqlite3_stmt * a0), (a0))                                                \
    F(int, sqlite3_system_errno, (sqlite3 * a0), (a0))                                             \
    F(int, sqlite3_bind_text64,                                                                    \
      (sqlite3_stmt * a0, int a1, const char *a2, sqlite3_uint64 a3, void (*a4)(void *),           \
       unsigned char encoding),                                                                    \
      (a0, a1, a2, a3, a4, encoding))                                                              \
    F(int, sqlite3_bind_zeroblob, (sqlite3_stmt * a0, int a1, int n), (a0, a1, n))                 \
    F(int, sqlite3_bind_parameter_index, (sqlite3_stmt * a0, const char *zName), (a0, zName))      \
    F(int, sqlite3_blob_write, (sqlite3_blob * a0, const void *z, int n, int iOffset),             \
      (a0, z, n, iOffset))                                                                         \
    F(int, sqlite3_blob_reopen, (sqlite3_blob * a0, sqlite3_int64 a1), (a0, a1))                   \
    F(int, sqlite3_busy_handler, (sqlite3 * a0, int (*a1)(void *, int), void *a2), (a0, a1, a2))   \
    F(int, sqlite3_column_count, (sqlite3_stmt * pStmt), (pStmt))                                  \
    F(const char *, sqlite3_column_name, (sqlite3_stmt * a0, int N), (a0, N))                      \
    F(int, sqlite3_data_count, (sqlite3_stmt * pStmt), (pStmt))                                    \
    F(int, sqlite3_errcode, (sqlite3 * db), (db))                                                  \
    F(int, sqlite3_extended_errcode, (sqlite3 * db), (db))                                         \
    F(char *, sqlite3_expanded_sql, (sqlite3_stmt * pStmt), (pStmt))                               \
    F(const char *, sqlite3_sql, (sqlite3_stmt * pStmt), (pStmt))                                  \
    V(sqlite3_interrupt, (sqlite3 * a0), (a0))                                                     \
    F(int, sqlite3_libversion_number, (void), ())                                                  \
    F(int, sqlite3_stmt_busy, (sqlite3_stmt * a0), (a0))                                           \
    F(int, sqlite3_total_changes, (sqlite3 * a0), (a0))                                            \
    F(int, sqlite3_wal_autocheckpoint, (sqlite3 * db, int N), (db, N))                             \
    F(int, sqlite3_wal_checkpoint_v2,                                                              \
      (sqlite3 * db, const char *zDb, int eMode, int *pnLog, int *pnCkpt),                         \
      (db, zDb, eMode, pnLog, pnCkpt))                                                             \
    F(int, sqlite3_extended_result_codes, (sqlite3 * a0, int onoff), (a0, onoff))                  \
    F(void *, sqlite3_malloc64, (sqlite3_uint64 a0), (a0))                                         \
    F(sqlite3_vfs *, sqlite3_vfs_find, (const char *zVfsName), (zVfsName))                         \
    F(int, sqlite3_vfs_register, (sqlite3_vfs * a0, int makeDflt), (a0, makeDflt))                 \
    F(int, sqlite3_vfs_unregister, (sqlite3_vfs * a0), (a0))                                       \
    F(int, sqlite3_stmt_readonly, (sqlite3_stmt * pStmt), (pStmt))

PG_LAZY_DEFINE(SQLITE_FUNCTIONS, PIGEON_SONAME_SQLITE, PIGEON_PACKAGE_SQLITE, "the SQLite spool")

/* sqlite3_db_config, variadic: resolved from the same library into a table of its own. */
static const char *const variadic_names[] = {"sqlite3_db_config"};
static void *variadic_syms[1];
static pg_lazy_lib variadic = {PIGEON_SONAME_SQLITE,
                               PIGEON_PACKAGE_SQLITE,
                               "the SQLite spool",
                               variadic_names,
                               variadic_syms,
                               1,
                               0,
                               ""};

#ifdef PIGEON_LAZY_PROBE
__attribute__((used)) static void (*const probe_variadic[])(void) = {
    (void (*)(void))sqlite3_db_config};
#else
/* The arguments of each verb (sqlite3_db_config(3)): MAINDBNAME a const char *, LOOKASIDE
 * a buffer and two ints, every other verb an int and an int * (the flags). */
PG_LAZY_HIDDEN int sqlite3_db_config(sqlite3 *db, int op, ...)
{
    int (*real)(sqlite3 *, int, ...) = (int (*)(sqlite3 *, int, ...))pg_lazy_sym(&variadic, 0);
    va_list ap;
    va_start(ap, op);
    int rc;
    if (op == SQLITE_DBCONFIG_MAINDBNAME) {
        rc = real(db, op, va_arg(ap, const char *));
    } else if (op == SQLITE_DBCONFIG_LOOKASIDE) {
        void *buf = va_arg(ap, void *);
        int size = va_arg(ap, int);
        rc = real(db, op, buf, size, va_arg(ap, int));
    } else {
        int value = va_arg(ap, int);
        rc = real(db, op, value, va_arg(ap, int *));
    }
    va_end(ap);
    return rc;
}
#endif

pigeon_err pg_lazy_sqlite(char *err, size_t errlen)
{
    pigeon_err e = pg_lazy_open(&lib, err, errlen);
    return e == PIGEON_OK ? pg_lazy_open(&variadic, err, errlen) : e;
}
#else
pigeon_err pg_lazy_sqlite(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return PIGEON_OK;
}
#endif
