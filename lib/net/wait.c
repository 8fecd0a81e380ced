/*
 * wait.c - deadlines and readiness waits (see wait.h).
 */
#include "net/wait.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <time.h>

int64_t pg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

pigeon_err pg_fd_wait(int fd, short events, int64_t deadline)
{
    for (;;) {
        int timeout = -1;
        if (deadline != 0) {
            int64_t left = deadline - pg_now_ms();
            if (left <= 0)
                return PIGEON_ERR_TIMEOUT;
            timeout = left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, timeout);
        if (n > 0)
            return PIGEON_OK; /* ready, or POLLERR/POLLHUP: the next call reports it */
        if (n < 0 && errno != EINTR)
            return PIGEON_ERR_NETWORK;
    }
}
