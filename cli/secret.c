/*
 * secret.c - reading passwords from files and commands, never from argv.
 */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

char *secret_from_command(const char *cmd, char *err, size_t errlen)
{
    char buf[SECRET_MAX];
    char *out = NULL;
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(err, errlen, "password command: pipe: %s", strerror(errno));
        return NULL;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "password command: fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return NULL;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    ssize_t n = read_bounded(fds[0], buf, sizeof buf);
    /* Drain what is left so the child never blocks on a full pipe. */
    char sink[512];
    while (n >= 0 && read(fds[0], sink, sizeof sink) > 0)
        ;
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (n < 0) {
        snprintf(err, errlen, "password command: read: %s", strerror(errno));
        goto done;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, errlen, "password command failed (exit status %d): %s",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1, cmd);
        goto done;
    }
    out = first_line(buf, (size_t)n);
    if (out != NULL && *out == '\0') {
        snprintf(err, errlen, "password command printed nothing: %s", cmd);
        secret_free(out);
        out = NULL;
    }
done:
    OPENSSL_cleanse(buf, sizeof buf);
    return out;
}

void secret_free(char *secret)
{
    if (secret == NULL)
        return;
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
}
