/*
 * wake.c - the stop event of waiting threads (see wake.h).
 */
#include "wake.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "net/wait.h"

void cli_wake_open(int fd[2])
{
    fd[0] = fd[1] = -1;
    int p[2];
    if (pipe(p) != 0)
        return;
    for (int i = 0; i < 2; i++)
        (void)fcntl(p[i], F_SETFD, FD_CLOEXEC);
    (void)fcntl(p[1], F_SETFL, O_NONBLOCK);
    fd[0] = p[0];
    fd[1] = p[1];
}

void cli_wake_set(const int fd[2])
{
    if (fd[1] < 0)
        return;
    ssize_t n;
    do /* an empty pipe takes the byte; a second one may find it full, which is as good */
        n = write(fd[1], "x", 1);
    while (n < 0 && errno == EINTR);
}

int cli_wake_wait(const int fd[2], int64_t ms, atomic_int *flag)
{
    int64_t end = pg_now_ms() + ms;
    while (!atomic_load(flag)) {
        int64_t left = end - pg_now_ms();
        if (left <= 0)
            break;
        if (fd[0] < 0) { /* no pipe: short steps */
            struct timespec step = {0, (long)(left < 100 ? left : 100) * 1000000L};
            nanosleep(&step, NULL);
            continue;
        }
        struct pollfd p = {fd[0], POLLIN, 0};
        if (poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left) > 0)
            break;
    }
    return atomic_load(flag);
}

void cli_wake_close(int fd[2])
{
    for (int i = 0; i < 2; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    fd[0] = fd[1] = -1;
}
