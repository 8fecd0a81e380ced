/*
 * wait.h - deadlines and readiness waits for the network layer (internal).
 *
 * A deadline is an absolute CLOCK_MONOTONIC time in milliseconds (pg_now_ms() + timeout);
 * 0 means none. The TLS backend and the connection both wait through pg_fd_wait(), so a
 * deadline means the same thing with and without TLS.
 */
#ifndef PG_WAIT_H
#define PG_WAIT_H

#include <stdint.h>

#include "pigeon/error.h"

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t pg_now_ms(void);

/* Waits until fd is ready for events (POLLIN / POLLOUT) or has an error condition.
 * PIGEON_ERR_TIMEOUT once the deadline (0 = none) has passed; PIGEON_ERR_NETWORK if poll()
 * itself fails. EINTR is retried. */
pigeon_err pg_fd_wait(int fd, short events, int64_t deadline);

#endif
