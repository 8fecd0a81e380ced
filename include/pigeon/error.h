/*
 * pigeon/error.h - the library's one error enum.
 *
 * Every fallible call returns a pigeon_err; 0 is success. Codes are only ever appended,
 * never renumbered or removed, so that they can be stored (in the spool, in logs) and
 * compared across versions. Detail (our diagnosis, the server's own reply) lives in the
 * handle or result struct of the call that failed, never in the code alone.
 */
#ifndef PIGEON_ERROR_H
#define PIGEON_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pigeon_err {
    PIGEON_OK = 0,               /* success */
    PIGEON_ERR_NOMEM = 1,        /* an allocation failed */
    PIGEON_ERR_INVALID = 2,      /* a bad argument (NULL where not allowed, bad option) */
    PIGEON_ERR_ADDRESS = 3,      /* an address that is not a valid RFC 5322/5321 mailbox */
    PIGEON_ERR_HEADER = 4,       /* a header name or value refused (CR, LF, NUL, bad name...) */
    PIGEON_ERR_IO = 5,           /* a local read or write failed */
    PIGEON_ERR_NOTFOUND = 6,     /* an input file does not exist or cannot be opened */
    PIGEON_ERR_CHARSET = 7,      /* text that is not valid UTF-8, or cannot be transcoded */
    PIGEON_ERR_TOO_LARGE = 8,    /* a size limit was exceeded (ours or the server's SIZE) */
    PIGEON_ERR_NETWORK = 9,      /* resolve, connect, read or write on the network failed */
    PIGEON_ERR_TLS = 10,         /* TLS handshake or verification failed */
    PIGEON_ERR_AUTH = 11,        /* authentication failed or impossible */
    PIGEON_ERR_PROTOCOL = 12,    /* the peer broke the protocol (garbage, bounds, injection) */
    PIGEON_ERR_REJECTED = 13,    /* the server refused permanently (5xx) */
    PIGEON_ERR_DEFERRED = 14,    /* the server refused for now (4xx) */
    PIGEON_ERR_TIMEOUT = 15,     /* a deadline passed */
    PIGEON_ERR_CONFIG = 16,      /* configuration is missing, contradictory or unsafe */
    PIGEON_ERR_STATE = 17,       /* the call is not valid in the object's current state */
    PIGEON_ERR_UNSUPPORTED = 18, /* the peer or this build lacks a needed feature */
    PIGEON_ERR_CORRUPT = 19,     /* stored data (spool) is corrupt or from a newer version */
    PIGEON_ERR_NOSPACE = 20,     /* no space left for stored data (disk full, quota): retry later */
} pigeon_err;

/* A short, static, English description of the code. Never NULL; thread-safe. */
const char *pigeon_strerror(pigeon_err err);

/* The symbolic name of the code ("PIGEON_ERR_TLS"), for logs and JSON. Never NULL. */
const char *pigeon_err_name(pigeon_err err);

#ifdef __cplusplus
}
#endif
#endif
