/*
 * wake.h - a stop event for threads that wait: a pipe, made readable once, that ends
 * every wait on it at once (the daemon's stop, the webhook sender's stop).
 *
 * A thread waiting on a timer in short steps, to notice a stop flag, wakes an idle
 * process many times a second; waiting in poll() on this pipe with the whole timeout
 * costs one wake-up per timeout, and the stop still ends the wait at once. The byte
 * written is never read, so every waiter sees it, now or later.
 */
#ifndef PIGEON_CLI_WAKE_H
#define PIGEON_CLI_WAKE_H

#include <stdatomic.h>
#include <stdint.h>

/* Opens the pipe (close-on-exec). Without descriptors both ends are -1, and waits then
 * look at their flag in steps of 100 ms. */
void cli_wake_open(int fd[2]);

/* Makes the pipe readable: every cli_wake_wait on it returns. */
void cli_wake_set(const int fd[2]);

/* Waits ms milliseconds (CLOCK_MONOTONIC), or less once *flag is set or the pipe is
 * readable. Returns *flag. */
int cli_wake_wait(const int fd[2], int64_t ms, atomic_int *flag);

/* Closes what cli_wake_open opened. */
void cli_wake_close(int fd[2]);

#endif
