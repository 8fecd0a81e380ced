/*
 * bounce_idle.c - one IMAP connection per watched account, SELECTed on INBOX read-only
 * (EXAMINE: the watch never changes a flag) and parked in IDLE (RFC 2177) in short slices,
 * so that the daemon's checker can watch several accounts from one thread and still stop
 * within a slice. A new message (EXISTS) is the signal; the reading itself is left to the
 * ordinary check (bounces_fetch.c), over its own connection.
 */
#include <stdlib.h>
#include <string.h>

#include "bounce_idle.h"
#include "cli.h"
#include "deliver.h"
#include "mailbox_conn.h"
#include "pigeon/address.h"
#include "pigeon/mailbox.h"

struct bounce_idle {
    cfg_settings cfg;  /* the account's settings (the plan borrows from them) */
    mailbox_plan plan; /* the connection's options and secret */
    pigeon_imap *m;    /* the connection */
};

void bounce_idle_close(bounce_idle *b)
{
    if (b == NULL)
        return;
    if (b->m != NULL)
        pigeon_imap_logout(b->m);
    pigeon_imap_free(b->m);
    mailbox_plan_cleanup(&b->plan);
    cfg_cleanup(&b->cfg);
    free(b);
}

bounce_idle *bounce_idle_open(const char *account, const atomic_int *cancel, char *why, size_t n)
{
    bounce_idle *b = calloc(1, sizeof *b);
    deliver_opts o;
    memset(&o, 0, sizeof o);
    o.quiet = 1;
    o.cancel = cancel;
    if (b == NULL) {
        snprintf(why, n, "out of memory");
        return NULL;
    }
    int status = settings_load(&b->cfg, account, why, n);
    if (status == 0) {
        pigeon_mailbox from = {0};
        const char *f = cfg_get(&b->cfg, K_FROM);
        char *addr = NULL;
        if (f != NULL && pigeon_mailbox_parse(f, &from, NULL, 0) == PIGEON_OK)
            pigeon_mailbox_addr_spec(&from, 1, &addr);
        status = settings_finish(&b->cfg, from.domain, addr, why, n);
        free(addr);
        pigeon_mailbox_cleanup(&from);
    }
    if (status == 0 && mailbox_plan_init(&b->plan, &b->cfg, &o, 0) != 0) {
        snprintf(why, n, "the account's mailbox settings are incomplete");
        status = -1;
    }
    pigeon_err err = PIGEON_ERR_CONFIG;
    if (status == 0 && (err = pigeon_imap_connect(&b->plan.opts, &b->m)) == PIGEON_OK)
        err = pigeon_imap_select(b->m, "INBOX", 1, NULL);
    if (status == 0 && err != PIGEON_OK)
        snprintf(why, n, "%s", b->m != NULL ? pigeon_imap_error(b->m) : pigeon_strerror(err));
    if (status != 0 || err != PIGEON_OK) {
        bounce_idle_close(b);
        return NULL;
    }
    return b;
}

int bounce_idle_wait(bounce_idle *b, int ms)
{
    int changed = 0;
    return pigeon_imap_idle(b->m, ms, &changed) == PIGEON_OK ? changed != 0 : -1;
}
