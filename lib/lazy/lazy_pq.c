/*
 * lazy_pq.c - libpq, for the PostgreSQL spool (lib/spool/spool_pg*.c), loaded when a
 * postgresql:// spool is opened (lib/spool/spool.c). Its ~20 dependencies (Kerberos,
 * LDAP, SASL, GnuTLS, p11-kit) were most of every pigeon process's start-up.
 */
#include "lazy/lazy.h"

#ifdef PIGEON_LAZY_LIBS
#include <libpq-fe.h>

#include "lazy/lazy_stub.h"

/* What spool_pg*.c calls, and the calls a change to it is likely to add (pipeline mode,
 * asynchronous queries, escaping): a stub resolved but never called costs one dlsym(). */
#define PQ_FUNCTIONS(F, V)                                                                         \
    V(PQclear, (PGresult * res), (res))                                                            \
    F(char *, PQcmdStatus, (PGresult * res), (res))                                                \
    F(char *, PQcmdTuples, (PGresult * res), (res))                                                \
    F(PGconn *, PQconnectdbParams,                                                                 \
      (const char *const *keywords, const char *const *values, int expand_dbname),                 \
      (keywords, values, expand_dbname))                                                           \
    F(PGconn *, PQconnectdb, (const char *conninfo), (conninfo))                                   \
    F(int, PQconsumeInput, (PGconn * conn), (conn))                                                \
    F(char *, PQerrorMessage, (const PGconn *conn), (conn))                                        \
    F(PGresult *, PQexec, (PGconn * conn, const char *query), (conn, query))                       \
    F(PGresult *, PQexecParams,                                                                    \
      (PGconn * conn, const char *command, int nParams, const Oid *paramTypes,                     \
       const char *const *paramValues, const int *paramLengths, const int *paramFormats,           \
       int resultFormat),                                                                          \
      (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat)) \
    F(PGresult *, PQexecPrepared,                                                                  \
      (PGconn * conn, const char *stmtName, int nParams, const char *const *paramValues,           \
       const int *paramLengths, const int *paramFormats, int resultFormat),                        \
      (conn, stmtName, nParams, paramValues, paramLengths, paramFormats, resultFormat))            \
    F(int, PQfformat, (const PGresult *res, int field_num), (res, field_num))                      \
    V(PQfinish, (PGconn * conn), (conn))                                                           \
    V(PQfreemem, (void *ptr), (ptr))                                                               \
    F(int, PQgetisnull, (const PGresult *res, int tup_num, int field_num),                         \
      (res, tup_num, field_num))                                                                   \
    F(int, PQgetlength, (const PGresult *res, int tup_num, int field_num),                         \
      (res, tup_num, field_num))                                                                   \
    F(char *, PQgetvalue, (const PGresult *res, int tup_num, int field_num),                       \
      (res, tup_num, field_num))                                                                   \
    F(int, PQnfields, (const PGresult *res), (res))                                                \
    F(PGnotify *, PQnotifies, (PGconn * conn), (conn))                                             \
    F(int, PQntuples, (const PGresult *res), (res))                                                \
    F(PGresult *, PQprepare,                                                                       \
      (PGconn * conn, const char *stmtName, const char *query, int nParams,                        \
       const Oid *paramTypes),                                                                     \
      (conn, stmtName, query, nParams, paramTypes))                                                \
    F(char *, PQresultErrorField, (const PGresult *res, int fieldcode), (res, fieldcode))          \
    F(char *, PQresultErrorMessage, (const PGresult *res), (res))                                  \
    F(ExecStatusType, PQresultStatus, (const PGresult *res), (res))                                \
    F(int, PQsocket, (const PGconn *conn), (conn))                                                 \
    F(ConnStatusType, PQstatus, (const PGconn *conn), (conn))                                      \
    F(PGTransactionStatusType, PQtransactionStatus, (const PGconn *conn), (conn))                  \
    F(int, PQsetnonblocking, (PGconn * conn, int arg), (conn, arg))                                \
    F(int, PQisnonblocking, (const PGconn *conn), (conn))                                          \
    F(int, PQflush, (PGconn * conn), (conn))                                                       \
    F(int, PQenterPipelineMode, (PGconn * conn), (conn))                                           \
    F(int, PQexitPipelineMode, (PGconn * conn), (conn))                                            \
    F(int, PQpipelineSync, (PGconn * conn), (conn))                                                \
    F(PGpipelineStatus, PQpipelineStatus, (const PGconn *conn), (conn))                            \
    F(int, PQsendFlushRequest, (PGconn * conn), (conn))                                            \
    F(int, PQsendQuery, (PGconn * conn, const char *query), (conn, query))                         \
    F(int, PQsendQueryParams,                                                                      \
      (PGconn * conn, const char *command, int nParams, const Oid *paramTypes,                     \
       const char *const *paramValues, const int *paramLengths, const int *paramFormats,           \
       int resultFormat),                                                                          \
      (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat)) \
    F(int, PQsendQueryPrepared,                                                                    \
      (PGconn * conn, const char *stmtName, int nParams, const char *const *paramValues,           \
       const int *paramLengths, const int *paramFormats, int resultFormat),                        \
      (conn, stmtName, nParams, paramValues, paramLengths, paramFormats, resultFormat))            \
    F(int, PQsendPrepare,                                                                          \
      (PGconn * conn, const char *stmtName, const char *query, int nParams,                        \
       const Oid *paramTypes),                                                                     \
      (conn, stmtName, query, nParams, paramTypes))                                                \
    F(PGresult *, PQgetResult, (PGconn * conn), (conn))                                            \
    F(int, PQisBusy, (PGconn * conn), (conn))                                                      \
    F(int, PQsetSingleRowMode, (PGconn * conn), (conn))                                            \
    F(char *, PQescapeLiteral, (PGconn * conn, const char *str, size_t len), (conn, str, len))     \
    F(char *, PQescapeIdentifier, (PGconn * conn, const char *str, size_t len), (conn, str, len))  \
    F(int, PQserverVersion, (const PGconn *conn), (conn))                                          \
    F(const char *, PQparameterStatus, (const PGconn *conn, const char *paramName),                \
      (conn, paramName))                                                                           \
    F(int, PQbinaryTuples, (const PGresult *res), (res))                                           \
    F(char *, PQfname, (const PGresult *res, int field_num), (res, field_num))                     \
    F(int, PQfnumber, (const PGresult *res, const char *field_name), (res, field_name))            \
    F(Oid, PQftype, (const PGresult *res, int field_num), (res, field_num))                        \
    F(char *, PQresStatus, (ExecStatusType status), (status))                                      \
    F(int, PQconnectionNeedsPassword, (const PGconn *conn), (conn))                                \
    F(PQnoticeProcessor, PQsetNoticeProcessor, (PGconn * conn, PQnoticeProcessor proc, void *arg), \
      (conn, proc, arg))                                                                           \
    F(PQnoticeReceiver, PQsetNoticeReceiver, (PGconn * conn, PQnoticeReceiver proc, void *arg),    \
      (conn, proc, arg))                                                                           \
    F(PGcancel *, PQgetCancel, (PGconn * conn), (conn))                                            \
    V(PQfreeCancel, (PGcancel * cancel), (cancel))                                                 \
    F(int, PQcancel, (PGcancel * cancel, char *errbuf, int errbufsize),                            \
      (cancel, errbuf, errbufsize))                                                                \
    F(int, PQputCopyData, (PGconn * conn, const char *buffer, int nbytes), (conn, buffer, nbytes)) \
    F(int, PQputCopyEnd, (PGconn * conn, const char *errormsg), (conn, errormsg))                  \
    F(int, PQgetCopyData, (PGconn * conn, char **buffer, int async), (conn, buffer, async))        \
    F(unsigned char *, PQunescapeBytea, (const unsigned char *strtext, size_t *retbuflen),         \
      (strtext, retbuflen))                                                                        \
    F(unsigned char *, PQescapeByteaConn,                                                          \
      (PGconn * conn, const unsigned char *from, size_t from_length, size_t *to_length),           \
      (conn, from, from_length, to_length))                                                        \
    F(PGPing, PQpingParams,                                                                        \
      (const char *const *keywords, const char *const *values, int expand_dbname),                 \
      (keywords, values, expand_dbname))                                                           \
    V(PQreset, (PGconn * conn), (conn))                                                            \
    F(int, PQlibVersion, (void), ())

PG_LAZY_DEFINE(PQ_FUNCTIONS, PIGEON_SONAME_PQ, PIGEON_PACKAGE_PQ, "the PostgreSQL spool")

pigeon_err pg_lazy_pq(char *err, size_t errlen)
{
    return pg_lazy_open(&lib, err, errlen);
}
#else
pigeon_err pg_lazy_pq(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return PIGEON_OK;
}
#endif
