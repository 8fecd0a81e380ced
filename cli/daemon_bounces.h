/*
 * daemon_bounces.h - the daemon's bounce check thread (daemon_bounces.c).
 */
#ifndef PIGEON_CLI_DAEMON_BOUNCES_H
#define PIGEON_CLI_DAEMON_BOUNCES_H

#include <pthread.h>

#include "daemon.h"

/* Starts the thread when an account sets bounce_check; it ends once d->stopping is set.
 * Returns 0 with *thread to join, or -1 when there is nothing to check (or no thread). */
int daemon_bounces_start(daemon_state *d, pthread_t *thread);

#endif
