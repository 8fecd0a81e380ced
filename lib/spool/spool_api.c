/*
 * spool_api.c - keys and message owners of the submission service, the generic side:
 * argument checks, then the backend's table (see spool_api.h).
 */
#include "spool/spool_api.h"

#include <string.h>

#include "spool/spool_backend.h"

/* The backend's api table, or NULL when the backend keeps none. */
static const pg_spool_api_ops *api_of(pigeon_spool *spool, void **be)
{
    const pg_spool_ops *ops = NULL;
    if (spool == NULL)
        return NULL;
    *be = pg_spool_backend(spool, &ops);
    return ops->api;
}

static int valid_id(const char *s, size_t max)
{
    if (s == NULL)
        return 0;
    size_t n = strlen(s);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e)
            return 0;
    }
    return 1;
}

pigeon_err pg_spool_key_add(pigeon_spool *spool, const pg_spool_key *key)
{
    void *be = NULL;
    const pg_spool_api_ops *api = api_of(spool, &be);
    if (api == NULL || key == NULL || !valid_id(key->id, PG_SPOOL_KEY_ID_LEN) || key->id[0] == 0)
        return PIGEON_ERR_INVALID;
    return api->key_add(be, key);
}

pigeon_err pg_spool_key_get(pigeon_spool *spool, const char *id, pg_spool_key *out)
{
    void *be = NULL;
    const pg_spool_api_ops *api = api_of(spool, &be);
    if (api == NULL || out == NULL || !valid_id(id, PG_SPOOL_KEY_ID_LEN))
        return PIGEON_ERR_INVALID;
    return api->key_get(be, id, out);
}

pigeon_err pg_spool_key_list(pigeon_spool *spool, int (*fn)(void *ctx, const pg_spool_key *key),
                             void *ctx)
{
    void *be = NULL;
    const pg_spool_api_ops *api = api_of(spool, &be);
    if (api == NULL || fn == NULL)
        return PIGEON_ERR_INVALID;
    return api->key_list(be, fn, ctx);
}

pigeon_err pg_spool_key_revoke(pigeon_spool *spool, const char *id, int64_t now_ms)
{
    void *be = NULL;
    const pg_spool_api_ops *api = api_of(spool, &be);
    if (api == NULL || !valid_id(id, PG_SPOOL_KEY_ID_LEN))
        return PIGEON_ERR_INVALID;
    return api->key_revoke(be, id, now_ms);
}

pigeon_err pg_spool_owner_add(pigeon_spool *spool, const char *queue_id, const char *key_id,
                              const char *idem, const unsigned char req_sha256[32], int64_t now_ms)
{
    void *be = NULL;
    const pg_spool_api_ops *api = api_of(spool, &be);
    if (api == NULL || !valid_id(queue_id, PIGEON_SPOOL_ID_LEN) ||
        !valid_id(key_id, PG_SPOOL_KEY_ID_LEN) || req_sha256 == NULL)
        return PIGEON_ERR_INVALID;
    return api->owner_add(be, queue_id, key_id, idem, req_sha256, now_ms);
}

pigeon_err pg_spool_owner_get(pigeon_spool *spool, const char *queue_id, char *key_id, size_t size,
                              int64_t *cancelled_ms, int64_t *send_at_ms)
{
    void *be = NULL;
    const pg_spool_api_ops *api = api_of(spool, &be);
    if (api == NULL || !valid_id(queue_id, PIGEON_SPOOL_ID_LEN) || key_id == NULL || size == 0)
        return PIGEON_ERR_INVALID;
    return api->owner_get(be, queue_id, key_id, size, cancelled_ms, send_at_ms);
}

pigeon_err pg_spool_cancel(pigeon_spool *spool, const char *queue_id, int64_t now_ms,
                           pg_spool_cancel_result *result)
{
    void *be = NULL;
    const pg_spool_api_ops *api = api_of(spool, &be);
    if (api == NULL || !valid_id(queue_id, PIGEON_SPOOL_ID_LEN) || result == NULL)
        return PIGEON_ERR_INVALID;
    return api->cancel(be, queue_id, now_ms, result);
}

pigeon_err pg_spool_owner_schedule(pigeon_spool *spool, const char *queue_id, int64_t send_at_ms)
{
    void *be = NULL;
    const pg_spool_api_ops *api = api_of(spool, &be);
    if (api == NULL || !valid_id(queue_id, PIGEON_SPOOL_ID_LEN) || send_at_ms <= 0)
        return PIGEON_ERR_INVALID;
    return api->owner_schedule(be, queue_id, send_at_ms);
}

pigeon_err pg_spool_owner_cancel(pigeon_spool *spool, const char *queue_id, int64_t now_ms)
{
    void *be = NULL;
    const pg_spool_api_ops *api = api_of(spool, &be);
    if (api == NULL || !valid_id(queue_id, PIGEON_SPOOL_ID_LEN))
        return PIGEON_ERR_INVALID;
    return api->owner_cancel(be, queue_id, now_ms);
}

pigeon_err pg_spool_idem_find(pigeon_spool *spool, const char *key_id, const char *idem,
                              int64_t since_ms, char queue_id[PIGEON_SPOOL_ID_LEN + 1],
                              unsigned char req_sha256[32])
{
    void *be = NULL;
    const pg_spool_api_ops *api = api_of(spool, &be);
    if (api == NULL || !valid_id(key_id, PG_SPOOL_KEY_ID_LEN) || idem == NULL)
        return PIGEON_ERR_INVALID;
    return api->idem_find(be, key_id, idem, since_ms, queue_id, req_sha256);
}

pigeon_err pg_spool_owner_expire(pigeon_spool *spool, int64_t before_ms)
{
    void *be = NULL;
    const pg_spool_api_ops *api = api_of(spool, &be);
    if (api == NULL)
        return PIGEON_ERR_INVALID;
    return api->owner_expire(be, before_ms);
}
