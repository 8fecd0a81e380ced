/*
 * sdnotify.h - the service manager notification protocol (sd_notify(3)), without
 * libsystemd: one datagram per state change to the socket named by $NOTIFY_SOCKET.
 *
 * Outside systemd (no $NOTIFY_SOCKET) every call does nothing and succeeds, so the
 * daemon calls these unconditionally.
 */
#ifndef PIGEON_CLI_SDNOTIFY_H
#define PIGEON_CLI_SDNOTIFY_H

#include <stdint.h>
#include <time.h>

/* Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, then removes them from the
 * environment so that children (password_command) cannot speak for us. Call once,
 * before starting threads. Returns 0, or -1 when $NOTIFY_SOCKET is set but unusable
 * (the reason is printed). */
int sdnotify_init(void);

/* Sends one notification: newline-separated VAR=value assignments, e.g.
 * "READY=1\nSTATUS=delivering". Returns 0 when sent (or not under a service manager),
 * -1 when the datagram could not be sent. */
int sdnotify_send(const char *state);

/* The watchdog interval in microseconds the manager expects (0: no watchdog). */
int64_t sdnotify_watchdog_usec(void);

/* Sends WATCHDOG=1 when half the watchdog interval has passed since the last one (by
 * the monotonic clock); call it from the main loop at least that often. */
void sdnotify_watchdog(void);

/* How long a main loop may wait between sdnotify_watchdog() calls: a second, or a
 * quarter of the watchdog interval when that is shorter. */
struct timespec sdnotify_tick(void);

/* RELOADING=1 with the MONOTONIC_USEC= stamp systemd wants beside it (Type=notify-reload). */
int sdnotify_reloading(void);

#endif
