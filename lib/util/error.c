/*
 * error.c - names and descriptions of pigeon_err codes.
 */
#include "pigeon/error.h"

#include <stddef.h>

struct err_desc {
    const char *name; /* symbolic name, as in the header */
    const char *text; /* one-line description */
};

static const struct err_desc descs[] = {
    [PIGEON_OK] = {"PIGEON_OK", "success"},
    [PIGEON_ERR_NOMEM] = {"PIGEON_ERR_NOMEM", "out of memory"},
    [PIGEON_ERR_INVALID] = {"PIGEON_ERR_INVALID", "invalid argument"},
    [PIGEON_ERR_ADDRESS] = {"PIGEON_ERR_ADDRESS", "invalid address"},
    [PIGEON_ERR_HEADER] = {"PIGEON_ERR_HEADER", "invalid header"},
    [PIGEON_ERR_IO] = {"PIGEON_ERR_IO", "input/output error"},
    [PIGEON_ERR_NOTFOUND] = {"PIGEON_ERR_NOTFOUND", "file not found"},
    [PIGEON_ERR_CHARSET] = {"PIGEON_ERR_CHARSET", "invalid or untranslatable text"},
    [PIGEON_ERR_TOO_LARGE] = {"PIGEON_ERR_TOO_LARGE", "too large"},
    [PIGEON_ERR_NETWORK] = {"PIGEON_ERR_NETWORK", "network error"},
    [PIGEON_ERR_TLS] = {"PIGEON_ERR_TLS", "TLS error"},
    [PIGEON_ERR_AUTH] = {"PIGEON_ERR_AUTH", "authentication failed"},
    [PIGEON_ERR_PROTOCOL] = {"PIGEON_ERR_PROTOCOL", "protocol error"},
    [PIGEON_ERR_REJECTED] = {"PIGEON_ERR_REJECTED", "rejected by server"},
    [PIGEON_ERR_DEFERRED] = {"PIGEON_ERR_DEFERRED", "temporarily refused by server"},
    [PIGEON_ERR_TIMEOUT] = {"PIGEON_ERR_TIMEOUT", "timed out"},
    [PIGEON_ERR_CONFIG] = {"PIGEON_ERR_CONFIG", "configuration error"},
    [PIGEON_ERR_STATE] = {"PIGEON_ERR_STATE", "invalid state for this call"},
    [PIGEON_ERR_UNSUPPORTED] = {"PIGEON_ERR_UNSUPPORTED", "not supported"},
    [PIGEON_ERR_CORRUPT] = {"PIGEON_ERR_CORRUPT", "corrupt or incompatible data"},
    [PIGEON_ERR_NOSPACE] = {"PIGEON_ERR_NOSPACE", "no space left on the device"},
};

static const struct err_desc *lookup(pigeon_err err)
{
    if ((unsigned)err >= sizeof descs / sizeof descs[0] || descs[err].name == NULL)
        return NULL;
    return &descs[err];
}

const char *pigeon_strerror(pigeon_err err)
{
    const struct err_desc *d = lookup(err);
    return d ? d->text : "unknown error";
}

const char *pigeon_err_name(pigeon_err err)
{
    const struct err_desc *d = lookup(err);
    return d ? d->name : "PIGEON_ERR_UNKNOWN";
}
