/*
 * bounce_idle.h - the daemon's watch on an account's inbox with IMAP IDLE (RFC 2177),
 * so that a bounce is read as it arrives instead of at the next bounce_check
 * (bounce_idle.c; daemon_bounces.c uses it between checks).
 */
#ifndef PIGEON_CLI_BOUNCE_IDLE_H
#define PIGEON_CLI_BOUNCE_IDLE_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct bounce_idle bounce_idle;

/* Logs in to the account's IMAP server and selects INBOX read-only. NULL with the reason
 * in why when the settings, the server or its lack of IDLE say no. */
bounce_idle *bounce_idle_open(const char *account, const atomic_int *cancel, char *why, size_t n);

/* IDLEs up to ms milliseconds. Returns 1 when new mail arrived (EXISTS), 0 when not, -1
 * when the connection failed or the server has no IDLE (close it then). */
int bounce_idle_wait(bounce_idle *b, int ms);

/* Logs out and frees. NULL is a no-op. */
void bounce_idle_close(bounce_idle *b);

#endif
