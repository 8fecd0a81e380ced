/*
 * fdio.c - whole writes to a file descriptor (see fdio.h).
 */
#include "util/fdio.h"

#include <errno.h>
#include <unistd.h>

int pg_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}
