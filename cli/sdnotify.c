/*
 * sdnotify.c - sd_notify(3) spoken directly: a datagram to the AF_UNIX socket in
 * $NOTIFY_SOCKET, a file system path ("/run/systemd/notify") or, with a leading '@', an
 * abstract name (the '@' stands for the leading NUL byte). Linking libsystemd for this
 * would add its mapping and relocations to every `pigeon` process, sendmail included.
 *
 * The manager identifies the sender by the datagram's credentials (SCM_CREDENTIALS,
 * added by the kernel), so the socket needs no handshake; with NotifyAccess=main only
 * the main PID is heard, which is us: the notifications come from the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "sdnotify.h"

/* What sdnotify_init() read from the environment. */
static struct {
    int fd;                   /* the datagram socket, -1 when not under a manager */
    struct sockaddr_un addr;  /* where to send */
    socklen_t addr_len;       /* its length (abstract names are not NUL-terminated) */
    int64_t watchdog_usec;    /* WATCHDOG_USEC for our PID, 0 when none */
    int64_t last_watchdog_ms; /* when WATCHDOG=1 was last sent */
} sd = {.fd = -1};

static int64_t monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A positive decimal number, or 0. */
static int64_t env_number(const char *s)
{
    char *end = NULL;
    if (s == NULL || *s == '\0')
        return 0;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return errno == 0 && *end == '\0' && v > 0 ? (int64_t)v : 0;
}

int sdnotify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    /* WATCHDOG_PID, when set, says whom the interval is for (a manager may pass the
     * environment on through a wrapper that forks). */
    int64_t wd_pid = env_number(getenv("WATCHDOG_PID"));
    if (wd_pid == 0 || wd_pid == (int64_t)getpid())
        sd.watchdog_usec = env_number(getenv("WATCHDOG_USEC"));
    int rc = 0;
    if (path != NULL && *path != '\0') {
        size_t len = strlen(path);
        memset(&sd.addr, 0, sizeof sd.addr);
        sd.addr.sun_family = AF_UNIX;
        if ((path[0] != '/' && path[0] != '@') || len >= sizeof sd.addr.sun_path) {
            /* vsock: addresses (systemd 253+, for VMs) are not ours to reach. */
            cli_error("daemon: NOTIFY_SOCKET \"%.100s\" is not a socket path or @name: not "
                      "notifying the service manager",
                      path);
            rc = -1;
        } else if ((sd.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
            cli_error("daemon: cannot notify the service manager: %s", strerror(errno));
            rc = -1;
        } else {
            memcpy(sd.addr.sun_path, path, len);
            if (path[0] == '@')
                sd.addr.sun_path[0] = '\0';
            sd.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
        }
    }
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    if (sd.fd < 0)
        sd.watchdog_usec = 0;
    return rc;
}

int sdnotify_send(const char *state)
{
    if (sd.fd < 0)
        return 0;
    ssize_t n;
    do
        n = sendto(sd.fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sd.addr,
                   sd.addr_len);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

int64_t sdnotify_watchdog_usec(void)
{
    return sd.watchdog_usec;
}

struct timespec sdnotify_tick(void)
{
    int64_t ms = 1000;
    if (sd.watchdog_usec > 0 && sd.watchdog_usec / 4000 < ms)
        ms = sd.watchdog_usec / 4000 > 0 ? sd.watchdog_usec / 4000 : 1;
    return (struct timespec){(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
}

void sdnotify_watchdog(void)
{
    if (sd.watchdog_usec <= 0)
        return;
    int64_t now_ms = monotonic_usec() / 1000;
    /* Half the interval, as sd_watchdog_enabled(3) advises: a late tick of the main loop
     * still arrives before the manager gives up on us. */
    if (sd.last_watchdog_ms != 0 && now_ms - sd.last_watchdog_ms < sd.watchdog_usec / 2000)
        return;
    if (sdnotify_send("WATCHDOG=1") == 0)
        sd.last_watchdog_ms = now_ms;
}

int sdnotify_reloading(void)
{
    char state[80];
    snprintf(state, sizeof state, "RELOADING=1\nMONOTONIC_USEC=%lld", (long long)monotonic_usec());
    return sdnotify_send(state);
}
