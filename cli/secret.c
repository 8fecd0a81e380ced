/*
 * secret.c - reading passwords from files and commands, never from argv.
 *
 * A password command is untrusted in its behaviour: it may hang (a locked keyring), print
 * forever, or print nothing. It runs in its own process group with a deadline; only its
 * first line is read; on the deadline (or when the daemon is told to stop) the whole group
 * is killed, and the caller gets a one-line reason naming the command.
 */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define SECRET_MAX 8192 /* longest secret accepted (OAuth tokens can be a few KB) */

/* Cuts at the first CR or LF; returns a malloc'd copy or NULL. */
static char *first_line(const char *buf, size_t n)
{
    size_t len = 0;
    while (len < n && buf[len] != '\n' && buf[len] != '\r' && buf[len] != '\0')
        len++;
    char *s = malloc(len + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, buf, len);
    s[len] = '\0';
    return s;
}

/* Reads up to SECRET_MAX bytes from fd into buf; returns the count or -1. */
static ssize_t read_bounded(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

char *secret_from_file(const char *path, int strict, char *err, size_t errlen)
{
    char buf[SECRET_MAX];
    char *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read password file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (strict && fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "password file %s can be read by group or others (mode %03o); fix it with: "
                 "chmod 600 %s",
                 path, (unsigned)(st.st_mode & 0777), path);
        close(fd);
        return NULL;
    }
    ssize_t n = read_bounded(fd, buf, sizeof buf);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "cannot read password file %s: %s", path, strerror(errno));
        goto done;
    }
    out = first_line(buf, (size_t)n);
    if (out != NULL && *out == '\0') {
        snprintf(err, errlen, "password file %s is empty", path);
        secret_free(out);
        out = NULL;
    }
done:
    OPENSSL_cleanse(buf, sizeof buf);
    return out;
}

/* The command's process group is the child's own (setpgid on both sides, so it holds
 * whichever runs first); the whole group is killed, so that `sh -c "a | b"` leaves
 * nothing behind. SIGTERM first, SIGKILL if anything is left after a short grace. */
static void kill_group(pid_t pid)
{
    kill(-pid, SIGTERM);
    for (int i = 0; i < 20; i++) {
        if (kill(-pid, 0) != 0)
            return;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        waitpid(pid, NULL, WNOHANG);
    }
    kill(-pid, SIGKILL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The signal that interrupted a command run by a single-threaded caller, or 0. */
static volatile sig_atomic_t caught_signal;

static void on_stop_signal(int sig)
{
    caught_signal = sig;
}

/* Whether to give up on the command: the daemon's stop flag, or a stop signal. */
static int stopped(const atomic_int *cancel)
{
    return (cancel != NULL && atomic_load(cancel)) || caught_signal != 0;
}

/* The stop signals of a one-shot command (send, sendmail): the command runs in its own
 * process group, out of reach of the terminal's ^C and of a kill of ours, so they are
 * caught while it runs, the group is killed, and the signal is then taken as usual. */
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define NSTOP (sizeof stop_signals / sizeof stop_signals[0])

static void catch_stops(struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    caught_signal = 0;
    for (size_t i = 0; i < NSTOP; i++)
        sigaction(stop_signals[i], &sa, &old[i]);
}

static void release_stops(const struct sigaction *old)
{
    for (size_t i = 0; i < NSTOP; i++)
        sigaction(stop_signals[i], &old[i], NULL);
    if (caught_signal != 0)
        raise(caught_signal);
}

/* In the child: a process group of its own, default signal dispositions and an empty
 * mask (the daemon blocks SIGTERM in every thread, and exec keeps the mask), standard
 * input from /dev/null, standard output to the pipe. Only async-signal-safe calls. */
static void child_exec(const char *cmd, int out_fd)
{
    sigset_t none;
    setpgid(0, 0);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
        dup2(devnull, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
}

/* The first line of the command's output. */
struct cmd_run {
    char buf[SECRET_MAX]; /* what was read */
    size_t len;           /* bytes in buf */
    int line_done;        /* a line break or EOF was read: nothing more is needed */
    int closed_early;     /* we closed the pipe before EOF (the command may die of SIGPIPE) */
};

/* Reads until the first line break, EOF, the deadline or cancel. Returns 0, or -1 with
 * the reason in err. */
static int read_first_line(int fd, struct cmd_run *r, int64_t deadline, const atomic_int *cancel,
                           const char *cmd, int timeout_ms, char *err, size_t errlen)
{
    while (!r->line_done) {
        if (stopped(cancel)) {
            snprintf(err, errlen, "password command stopped (signal): %s", cmd);
            return -1;
        }
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            snprintf(err, errlen,
                     "password command timed out after %d s (password_command_timeout) and "
                     "was killed: %s",
                     (timeout_ms + 999) / 1000, cmd);
            return -1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, left < 100 ? (int)left : 100); /* 100 ms: cancel is polled */
        if (rc < 0 && errno != EINTR) {
            snprintf(err, errlen, "password command: poll: %s", strerror(errno));
            return -1;
        }
        if (rc <= 0)
            continue;
        if (r->len == sizeof r->buf) {
            snprintf(err, errlen, "password command printed a first line over %d octets: %s",
                     SECRET_MAX, cmd);
            return -1;
        }
        ssize_t n = read(fd, r->buf + r->len, sizeof r->buf - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "password command: read: %s", strerror(errno));
            return -1;
        }
        if (n == 0 || memchr(r->buf + r->len, '\n', (size_t)n) != NULL)
            r->line_done = 1;
        r->closed_early = n > 0;
        r->len += (size_t)n;
    }
    return 0;
}

/* Waits for the command to exit by the deadline. Returns 0 with *status, or -1. */
static int wait_exit(pid_t pid, int *status, int64_t deadline, const atomic_int *cancel,
                     const char *cmd, int timeout_ms, char *err, size_t errlen)
{
    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR) {
            snprintf(err, errlen, "password command: waitpid: %s", strerror(errno));
            return -1;
        }
        if (stopped(cancel)) {
            snprintf(err, errlen, "password command stopped (signal): %s", cmd);
            return -1;
        }
        if (mono_ms() >= deadline) {
            snprintf(err, errlen,
                     "password command printed its line but did not exit within %d s "
                     "(password_command_timeout) and was killed: %s",
                     (timeout_ms + 999) / 1000, cmd);
            return -1;
        }
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Whether the exit status is a success: 0, or death by SIGPIPE (directly, or as the
 * shell's 128+13) after we stopped reading at the end of the first line. */
static int exit_ok(int status, int closed_early)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status) == 0 || (closed_early && WEXITSTATUS(status) == 128 + SIGPIPE);
    return closed_early && WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE;
}

char *secret_from_command(const char *cmd, int timeout_ms, const atomic_int *cancel, char *err,
                          size_t errlen)
{
    struct cmd_run *r = calloc(1, sizeof *r);
    char *out = NULL;
    int fds[2] = {-1, -1};
    int status = 0;
    pid_t pid = -1;
    struct sigaction old_actions[NSTOP];
    if (timeout_ms <= 0)
        timeout_ms = SECRET_COMMAND_TIMEOUT_MS;
    int64_t deadline = mono_ms() + timeout_ms;
    /* Close-on-exec: another thread's child (the daemon) must not hold the write end. */
    if (r == NULL || pipe(fds) != 0 || fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0) {
        snprintf(err, errlen, "password command: %s",
                 r == NULL ? "out of memory" : strerror(errno));
        goto done;
    }
    fflush(NULL);
    if ((pid = fork()) < 0) {
        snprintf(err, errlen, "password command: fork: %s", strerror(errno));
        goto done;
    }
    if (pid == 0)
        child_exec(cmd, fds[1]);
    setpgid(pid, pid);
    /* The daemon (cancel given) blocks its signals in every thread and has its own stop
     * flag; a one-shot command catches them for as long as the command runs. */
    if (cancel == NULL)
        catch_stops(old_actions);
    close(fds[1]);
    fds[1] = -1;
    int rc = read_first_line(fds[0], r, deadline, cancel, cmd, timeout_ms, err, errlen);
    /* The first line is all we use: closing now stops a command that would print forever
     * (`yes`) with SIGPIPE instead of us reading it to the end. */
    close(fds[0]);
    fds[0] = -1;
    if (rc == 0)
        rc = wait_exit(pid, &status, deadline, cancel, cmd, timeout_ms, err, errlen);
    if (rc != 0) {
        kill_group(pid);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        pid = -1;
        if (cancel == NULL)
            release_stops(old_actions); /* a caught signal now takes its course */
        goto done;
    }
    pid = -1;
    if (cancel == NULL)
        release_stops(old_actions);
    if (!exit_ok(status, r->closed_early)) {
        if (WIFSIGNALED(status))
            snprintf(err, errlen, "password command was killed by signal %d: %s", WTERMSIG(status),
                     cmd);
        else
            snprintf(err, errlen, "password command failed (exit status %d): %s",
                     WEXITSTATUS(status), cmd);
        goto done;
    }
    out = first_line(r->buf, r->len);
    if (out != NULL && *out == '\0') {
        snprintf(err, errlen, "password command printed nothing: %s", cmd);
        secret_free(out);
        out = NULL;
    } else if (out == NULL) {
        snprintf(err, errlen, "out of memory");
    }
done:
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    if (r != NULL) {
        OPENSSL_cleanse(r, sizeof *r);
        free(r);
    }
    return out;
}

void secret_free(char *secret)
{
    if (secret == NULL)
        return;
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
}
