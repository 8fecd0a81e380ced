/*
 * tool_softrace.c - two soft bounces of one address at the same instant, for
 * tests/integration/test_suppress.py.
 *
 *   tool_softrace SPOOL ACCOUNT COUNT
 *
 * For each of COUNT addresses (race<i>@example.com), two threads, each on its own spool
 * handle (two connections: on PostgreSQL, two server processes), meet at a barrier and
 * record one soft bounce of the address at the same moment, with a limit of 2 within 7
 * days. Each address then has had two soft bounces and must be suppressed, whichever
 * statement ran first. Prints "suppressed N of COUNT" and exits 0 when N == COUNT.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "pigeon/spool.h"
#include "pigeon/suppress.h"

typedef struct racer {
    pigeon_spool *spool;
    const char *account;
    unsigned long count;
    pthread_barrier_t *barrier;
    int failed;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    pigeon_suppress_policy policy = {2, 7};
    char addr[64];
    for (unsigned long i = 0; i < r->count; i++) {
        snprintf(addr, sizeof addr, "race%lu@example.com", i);
        pigeon_suppress_entry e = {r->account,     addr, PIGEON_SUPPRESS_SOFT_BOUNCE, "4.2.2",
                                   "mailbox full", NULL, pigeon_spool_now_ms()};
        pthread_barrier_wait(r->barrier);
        if (pigeon_suppress_add(r->spool, &e, &policy, NULL) != PIGEON_OK) {
            fprintf(stderr, "tool_softrace: %s\n", pigeon_spool_error(r->spool));
            r->failed = 1;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tool_softrace SPOOL ACCOUNT COUNT\n");
        return 2;
    }
    unsigned long count = strtoul(argv[3], NULL, 10);
    char err[512];
    racer r[2] = {{0}, {0}};
    pthread_t t[2];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    for (int i = 0; i < 2; i++) {
        if (pigeon_spool_open(argv[1], PIGEON_SPOOL_CREATE, &r[i].spool, err, sizeof err) !=
            PIGEON_OK) {
            fprintf(stderr, "tool_softrace: %s\n", err);
            return 1;
        }
        r[i].account = argv[2];
        r[i].count = count;
        r[i].barrier = &barrier;
        pigeon_spool_set_busy_timeout(r[i].spool, 10000);
    }
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, race, &r[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    unsigned long listed = 0;
    char addr[64];
    for (unsigned long i = 0; i < count; i++) {
        pigeon_suppress_hit hit;
        snprintf(addr, sizeof addr, "race%lu@example.com", i);
        if (pigeon_suppress_check(r[0].spool, argv[2], addr, 0, &hit) == PIGEON_OK &&
            hit.reason == PIGEON_SUPPRESS_SOFT_BOUNCE)
            listed++;
    }
    printf("suppressed %lu of %lu\n", listed, count);
    for (int i = 0; i < 2; i++)
        pigeon_spool_close(r[i].spool);
    pthread_barrier_destroy(&barrier);
    return listed == count && !r[0].failed && !r[1].failed ? 0 : 1;
}
