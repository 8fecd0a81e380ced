/*
 * fdio.h - whole writes to a file descriptor (internal; the command uses it too).
 */
#ifndef PG_FDIO_H
#define PG_FDIO_H

#include <stddef.h>

/* Writes all n bytes at p to fd, retrying after EINTR and short writes. Returns 0, or -1
 * with errno set (EIO when write() wrote nothing without saying why). Blocking fds only. */
int pg_write_all(int fd, const void *p, size_t n);

#endif
