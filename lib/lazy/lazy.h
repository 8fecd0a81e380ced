/*
 * lazy.h - optional libraries loaded on first use (internal).
 *
 * libpq (the PostgreSQL spool), gumbo (HTML mail), cmark-gfm (Markdown), c-ares (the DNS
 * doctor), libidn2 (international domains), and OpenSSL (libcrypto, libssl) and SQLite
 * (the spool) are not linked into libpigeon or the command: each process maps and
 * relocates only what it uses. A `pigeon --version`, or a `sendmail` of an ASCII message
 * over plaintext SMTP with no spool to consult, opens none of them (libc only), while
 * before every exec paid for libpq's ~20 dependencies (Kerberos, LDAP, GnuTLS, p11-kit)
 * and their constructors, then for libcrypto's 22,000 relocations.
 *
 * The mechanism is the one of Solaris' -z lazyload (and of implib.so): lazy_<lib>.c
 * defines each function the library code calls under its own name, with the prototype of
 * the library's header (the compiler checks that they agree), as a stub that calls the
 * real function found with dlsym() in the library dlopen()ed by its SONAME (taken from the
 * library the build found, so the ABI is the one compiled against). The stubs are hidden:
 * libpigeon.so keeps them local (lib/pigeon.map) and they never interpose on a program's
 * own copy of the library. So the code that uses a library is written as if it were
 * linked: a new call into it needs one line in the list of its lazy_<lib>.c, and the link
 * fails ("undefined reference to PQfoo") until it is there.
 *
 * Loading happens at each feature's entry (pg_lazy_<lib>(), a "hook"): the spool opening a
 * postgresql:// URL or an SQLite file, the HTML parser, Markdown, pigeon_dns_new, IDNA, a
 * TLS handshake or an HTTPS server's context. A missing or too old
 * library fails there with PIGEON_ERR_UNSUPPORTED and a message naming the file (and the
 * Debian package: in the caller's diagnosis where the API has one, else kept for
 * pg_lazy_unreported()), instead of the whole program refusing to start (ld.so's exit 127). A
 * stub called before its hook loaded the library loads it then (libcrypto's digests, MACs
 * and keys have no hook of their own: their first call loads it); if that fails it calls
 * the fatal handler (pg_lazy_set_fatal: the command prints the message and exits 69), or
 * by default prints the message and aborts.
 *
 * Thread-safe: loading is serialized, and a loaded library stays loaded.
 */
#ifndef PG_LAZY_H
#define PG_LAZY_H

#include <stddef.h>

#include "pigeon/error.h"

/* One library loaded on first use. The lists live in lazy_<lib>.c. */
typedef struct pg_lazy_lib {
    const char *soname;       /* the file to dlopen ("libpq.so.5"), the build's SONAME */
    const char *package;      /* the Debian package that holds it, or "" when unknown */
    const char *feature;      /* what needs it, for the message ("the PostgreSQL spool") */
    const char *const *names; /* the functions to resolve */
    void **syms;              /* their addresses once loaded (count entries) */
    size_t count;             /* how many */
    int state;                /* 0 not tried, 1 loaded, -1 failed (read atomically) */
    char error[384];          /* why loading failed, "" otherwise */
} pg_lazy_lib;

/* Loads lib (once per process; later calls return the first outcome). PIGEON_OK, or
 * PIGEON_ERR_UNSUPPORTED with the reason in lib->error, copied into err (errlen bytes,
 * may be NULL) when given. */
pigeon_err pg_lazy_open(pg_lazy_lib *lib, char *err, size_t errlen);

/* The address of lib's i-th function for a stub: loads lib first if needed, and aborts if
 * that fails (the feature's hook should have loaded it and reported the failure). */
void *pg_lazy_sym(pg_lazy_lib *lib, size_t i);

/* What a stub does when its library cannot be loaded (it cannot return an error of its
 * own): fn gets the message and must not return. NULL: print it on stderr and abort. */
void pg_lazy_set_fatal(void (*fn)(const char *message));

/* The first load failure of this process whose text no caller was given (a hook called
 * with no buffer: the library call returned only PIGEON_ERR_UNSUPPORTED), "" if none: for
 * a program to print once. */
const char *pg_lazy_unreported(void);

/* The hooks: each loads the libraries of one feature, as pg_lazy_open (err may be NULL).
 * Without PIGEON_LAZY_LIBS (the libraries linked as usual) they return PIGEON_OK. */
pigeon_err pg_lazy_pq(char *err, size_t errlen);    /* libpq: the PostgreSQL spool */
pigeon_err pg_lazy_gumbo(char *err, size_t errlen); /* gumbo: parsing HTML */
pigeon_err pg_lazy_cmark(char *err, size_t errlen); /* cmark-gfm and its extensions */
pigeon_err pg_lazy_cares(char *err, size_t errlen); /* c-ares: the DNS resolver */
pigeon_err pg_lazy_idn2(char *err, size_t errlen);  /* libidn2: IDNA2008 domains */
/* OpenSSL and SQLite: each is PIGEON_OK without loading anything when they are linked
 * statically (PIGEON_STATIC_DEPS) too. */
pigeon_err pg_lazy_crypto(char *err, size_t errlen); /* libcrypto */
pigeon_err pg_lazy_ssl(char *err, size_t errlen);    /* libssl, after libcrypto: TLS */
pigeon_err pg_lazy_sqlite(char *err, size_t errlen); /* libsqlite3: the SQLite spool */

#endif
