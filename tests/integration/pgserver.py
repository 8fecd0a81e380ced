"""A real PostgreSQL 15 for tests: Debian's binaries (/usr/lib/postgresql/15/bin), initdb
and pg_ctl in a temporary folder, as an unprivileged user (the tests run as root, which
PostgreSQL refuses), on a free loopback port and a private socket directory.

TCP connections need a password (scram-sha-256), which clients read from a PGPASSFILE the
server writes (mode 0600), so that tests exercise the password path without it ever being
on a command line; the socket is trusted (for the server's own administration here).

    srv = PgServer(); srv.start()
    url = srv.new_database()       # a fresh, empty database per test case
    env["PGPASSFILE"] = srv.passfile
    srv.restart_immediate()        # pg_ctl restart -m immediate (a crash of the server)
    srv.stop()

As a command: `pgserver.py CMD ARGS...` starts a server, runs CMD with PIGEON_TEST_PG (the
server's base URL) and PGPASSFILE in its environment, stops the server and exits with
CMD's status (how CMake runs a second ctest entry of a suite against PostgreSQL).

A server outlives the process that started it (pg_ctl detaches it), so each one has a
reaper: a small process of its own session that watches the owner and, once the owner is
gone without its cleanup (killed by ctest's timeout, SIGKILL), shuts the server down at
once and removes its folder. cleanup() stops the reaper.
"""

import os
import pwd
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BIN = "/usr/lib/postgresql/15/bin"
USER = "pigeon"
PASSWORD = "pg-test-secret-" + os.urandom(6).hex()


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _account():
    """The unprivileged user the server runs as: nobody (created if absent)."""
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", "nobody"], check=True)
        return pwd.getpwnam("nobody")


class PgServer:
    def __init__(self, fsync=False):
        self.fsync = fsync
        self.base = tempfile.mkdtemp(prefix="pigeon-pg-")
        self.data = os.path.join(self.base, "data")
        self.sock = os.path.join(self.base, "sock")
        self.log = os.path.join(self.base, "server.log")
        self.passfile = os.path.join(self.base, "pgpass")
        self.port = _free_port()
        self.pw = _account()
        self.count = 0
        self._reaper = None
        os.mkdir(self.sock)
        for d in (self.base, self.sock):
            os.chown(d, self.pw.pw_uid, self.pw.pw_gid)
        os.chmod(self.base, 0o755)

    def _as_user(self, args, timeout=60, check=True, input=None):
        def demote():
            os.setgid(self.pw.pw_gid)
            os.setgroups([])
            os.setuid(self.pw.pw_uid)
        env = {"PATH": BIN + ":/usr/bin:/bin", "HOME": self.base, "LANG": "C.UTF-8"}
        return subprocess.run(args, preexec_fn=demote, env=env, timeout=timeout, check=check,
                              input=input, capture_output=True, cwd=self.base)

    def url(self, db="postgres"):
        return "postgresql://%s@127.0.0.1:%d/%s" % (USER, self.port, db)

    def start(self):
        self._reaper = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--reap", str(os.getpid()), self.base],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        pwfile = os.path.join(self.base, "initpw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        os.chown(pwfile, self.pw.pw_uid, self.pw.pw_gid)
        self._as_user([BIN + "/initdb", "-D", self.data, "-U", USER, "-E", "UTF8",
                       "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
                       "--pwfile", pwfile, "--no-sync"], timeout=120)
        os.unlink(pwfile)
        conf = ["listen_addresses = '127.0.0.1'", "port = %d" % self.port,
                "unix_socket_directories = '%s'" % self.sock, "max_connections = 200",
                "fsync = %s" % ("on" if self.fsync else "off"), "log_min_messages = warning",
                "shared_buffers = 64MB"]
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n".join(conf) + "\n")
        with open(self.passfile, "w") as f:
            f.write("127.0.0.1:%d:*:%s:%s\n" % (self.port, USER, PASSWORD))
        os.chmod(self.passfile, 0o600)
        self.pg_ctl("start")

    def pg_ctl(self, *args):
        return self._as_user([BIN + "/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60"]
                             + list(args), timeout=90)

    def restart_immediate(self):
        self.pg_ctl("restart", "-m", "immediate")

    def stop(self, mode="fast"):
        self._as_user([BIN + "/pg_ctl", "-D", self.data, "-w", "-t", "60", "stop", "-m", mode],
                      timeout=90, check=False)

    def psql(self, sql, db="postgres"):
        return self._as_user([BIN + "/psql", "-h", self.sock, "-p", str(self.port), "-U", USER,
                              "-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]).stdout.decode()

    def new_database(self):
        """A fresh, empty database; its URL."""
        self.count += 1
        name = "t%d_%d" % (os.getpid(), self.count)
        self.psql("CREATE DATABASE %s" % name)
        return self.url(name)

    def cleanup(self):
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
        if self._reaper is not None:
            self._reaper.kill()
            self._reaper.wait()
            self._reaper = None


def _alive(pid):
    """Whether process pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _reap(owner, base):
    """The reaper (see the top): waits for the owner to go, then stops the server (SIGQUIT
    to the postmaster: an immediate shutdown, SIGKILL after 10 s) and removes base. Returns
    as soon as base is gone (the owner's cleanup ran)."""
    while os.path.isdir(base) and _alive(owner):
        time.sleep(0.5)
    if not os.path.isdir(base):
        return 0
    try:
        with open(os.path.join(base, "data", "postmaster.pid")) as f:
            pm = int(f.readline())
        os.kill(pm, signal.SIGQUIT)
        for _ in range(100):
            if not _alive(pm):
                break
            time.sleep(0.1)
        else:
            os.kill(pm, signal.SIGKILL)
    except (OSError, ValueError):
        pass  # never started, or already stopped
    shutil.rmtree(base, ignore_errors=True)
    return 0


def main(argv):
    if argv[:1] == ["--reap"]:
        return _reap(int(argv[1]), argv[2])
    srv = PgServer()
    try:
        srv.start()
        env = dict(os.environ)
        env["PIGEON_TEST_PG"] = srv.url()
        env["PGPASSFILE"] = srv.passfile
        env["PIGEON_TEST_PG_SOCK"] = srv.sock
        env["PIGEON_TEST_PG_DATA"] = srv.data
        env["PIGEON_TEST_PG_PORT"] = str(srv.port)
        rc = subprocess.run(argv, env=env).returncode
    finally:
        srv.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
