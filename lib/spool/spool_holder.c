/*
 * spool_holder.c - the identity of the process taking a lease, and whether the holder of
 * another lease still runs (see spool_holder.h).
 *
 * Linux exposes what is needed in /proc: the boot id changes at every boot, and a
 * process's start time (in clock ticks since boot, field 22 of /proc/PID/stat, proc(5))
 * tells a process apart from a later one that got the same pid. Without /proc only the
 * pid is known, and a process is gone when kill(pid, 0) says ESRCH.
 */
#include "spool/spool_holder.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Outcome of reading a process's start time. */
enum { START_OK, START_NO_PROCESS, START_UNKNOWN };

static int read_small(const char *path, char *buf, size_t cap);
static int start_time(int64_t pid, int64_t *started);
static size_t boot_len(const char *boot_id);

/* Reads up to cap - 1 bytes of a file into buf (NUL-terminated); -1 with errno. */
static int read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n;
    do
        n = read(fd, buf, cap - 1);
    while (n < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        return -1;
    }
    buf[n] = '\0';
    return 0;
}

/* The start time of process pid from /proc/PID/stat. The command name (field 2, in
 * parentheses) may hold spaces and parentheses, so fields are counted from the last ')'. */
static int start_time(int64_t pid, int64_t *started)
{
    char path[64], stat[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    if (read_small(path, stat, sizeof stat) != 0)
        return errno == ENOENT || errno == ESRCH ? START_NO_PROCESS : START_UNKNOWN;
    const char *p = strrchr(stat, ')');
    if (p == NULL)
        return START_UNKNOWN;
    /* After ')' come field 3 (state) ... field 22 (starttime): skip 19 fields. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (p == NULL)
            return START_UNKNOWN;
    }
    char *end = NULL;
    long long v = strtoll(p + 1, &end, 10);
    if (end == p + 1 || v < 0)
        return START_UNKNOWN;
    *started = v;
    return START_OK;
}

void pg_spool_holder_self(pg_spool_self *self)
{
    int64_t pid = (int64_t)getpid();
    if (self->pid == pid && self->host[0] != '\0')
        return;
    memset(self, 0, sizeof *self);
    self->pid = pid;
    if (gethostname(self->host, sizeof self->host - 1) != 0 || self->host[0] == '\0')
        snprintf(self->host, sizeof self->host, "localhost");
    char boot[48] = "", ns[48] = "";
    if (read_small("/proc/sys/kernel/random/boot_id", boot, sizeof boot) == 0)
        boot[strcspn(boot, "\n")] = '\0';
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    ns[n > 0 ? n : 0] = '\0';
    if (boot[0] != '\0')
        snprintf(self->boot_id, sizeof self->boot_id, "%s/%s", boot, ns);
    if (start_time(pid, &self->started) != START_OK)
        self->started = 0;
}

pg_spool_holder pg_spool_holder_of(const pg_spool_self *self)
{
    pg_spool_holder h = {0, self->host, self->boot_id, self->pid, self->started};
    return h;
}

/* The length of the boot part of a stored boot id ("BOOT/pid:[NS]"). */
static size_t boot_len(const char *boot_id)
{
    return strcspn(boot_id, "/");
}

int pg_spool_holder_gone(const pg_spool_self *self, const pg_spool_holder *h)
{
    if (h->host == NULL || strcmp(h->host, self->host) != 0 || h->pid <= 0)
        return 0; /* another host's: only its lease expiry tells */
    const char *b = h->boot_id != NULL ? h->boot_id : "";
    if (b[0] != '\0' && self->boot_id[0] != '\0') {
        size_t len = boot_len(self->boot_id);
        if (boot_len(b) != len || memcmp(b, self->boot_id, len) != 0)
            return 1; /* the host rebooted since: every process of that boot is gone */
        if (strcmp(b, self->boot_id) != 0)
            return 0; /* another pid namespace (a container): its pids mean nothing here */
    }
    if (h->pid == self->pid)
        return h->started != 0 && self->started != 0 && h->started != self->started;
    int64_t started = 0;
    /* Without our own start time, /proc is not what we think: ask the kernel instead. */
    int known = self->started != 0 ? start_time(h->pid, &started) : START_UNKNOWN;
    switch (known) {
    case START_NO_PROCESS:
        return 1;
    case START_OK:
        return h->started != 0 && started != h->started; /* the pid was reused */
    default:
        return kill((pid_t)h->pid, 0) != 0 && errno == ESRCH;
    }
}
