"""Shared runner and helpers for pigeon's integration tests.

Every tests/integration/test_*.py imports this module.  It gives:

- a tiny test runner (``@test`` + ``run()``) with a per-test and a per-file time
  bound, printing "ok NAME" / "FAIL NAME: reason" and a closing line exactly like
  "12 passed, 0 failed" (", 2 skipped" appended when tests raise ``Skip``);
- a process manager (``spawn``) that starts children in their own process group
  and kills them at exit, on SIGTERM/SIGINT and on timeouts;
- ``free_port``, ``wait_port``, ``tmpdir``, ``pigeon()``, ``build_tool()``,
  ``parse()``.

Standard library only; run with Debian's /usr/bin/python3.  See README.md.
"""

import atexit
import email
import email.policy
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

__all__ = [
    "Skip", "test", "run", "free_port", "wait_port", "spawn", "kill_all",
    "tmpdir", "pigeon", "build_tool", "source_dir", "build_dir", "parse",
    "wait_for", "LOOPBACK", "pg_url", "with_spool", "pg_query",
]

LOOPBACK = "127.0.0.1"

DEFAULT_TEST_TIMEOUT = 60.0
DEFAULT_FILE_TIMEOUT = 240.0


class Skip(Exception):
    """Raise inside a test to mark it skipped (with the reason as message)."""


# ---------------------------------------------------------------------------
# Process manager
# ---------------------------------------------------------------------------

_children = []          # Popen objects started through spawn()
_children_lock = threading.Lock()
_cleanups = []          # callables run at exit (LIFO)
_tmpdirs = []           # directories removed at exit


def spawn(args, *, stdin=subprocess.DEVNULL, stdout=None, stderr=None,
          env=None, cwd=None):
    """Start ``args`` in its own process group; it is killed at exit.

    ``stdout``/``stderr`` default to a log file in a tmpdir (path in
    ``proc.log_path``) so a chatty child can never block on a full pipe.
    ``env`` entries are merged over os.environ.  Returns the Popen.
    """
    log_path = None
    logf = None
    if stdout is None or stderr is None:
        log_path = os.path.join(tmpdir(), "%s.log" % os.path.basename(args[0]))
        logf = open(log_path, "wb")
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        list(args), stdin=stdin,
        stdout=stdout if stdout is not None else logf,
        stderr=stderr if stderr is not None else logf,
        env=full_env, cwd=cwd, start_new_session=True)
    if logf is not None:
        logf.close()
    proc.log_path = log_path
    with _children_lock:
        _children.append(proc)
    return proc


def read_log(proc):
    """Return the captured output of a spawn()ed process (str, '' if none)."""
    path = getattr(proc, "log_path", None)
    if not path or not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def stop(proc, grace=2.0):
    """Terminate a spawn()ed process group: SIGTERM, then SIGKILL after grace."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    # Kill the whole group even if the leader is gone: grandchildren may linger.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    # SIGKILL is delivered asynchronously: wait until no member is still running.
    deadline = time.monotonic() + grace
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    with _children_lock:
        if proc in _children:
            _children.remove(proc)


def group_members(pgid):
    """PIDs of live (non-zombie) processes in process group ``pgid``."""
    live = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            live.append(int(name))
    return live


def kill_all():
    """Kill every spawn()ed process group still alive (safe to call twice)."""
    with _children_lock:
        procs = list(_children)
    for proc in procs:
        stop(proc, grace=1.0)


def at_exit(fn):
    """Register ``fn()`` to run at exit (before tmpdirs are removed)."""
    _cleanups.append(fn)
    return fn


def _cleanup_all():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception:
            pass
    kill_all()
    while _tmpdirs:
        shutil.rmtree(_tmpdirs.pop(), ignore_errors=True)


atexit.register(_cleanup_all)


def _on_signal(signum, frame):
    _cleanup_all()
    sys.stdout.flush()
    os._exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    try:
        signal.signal(_sig, _on_signal)
    except (ValueError, OSError):
        pass


def tmpdir(prefix="pigeon-it-"):
    """Create a fresh directory, removed at exit.  Mode 0755 so that
    servers dropping privileges (smtp-sink -u nobody) can traverse it."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    _tmpdirs.append(path)
    return path


# ---------------------------------------------------------------------------
# Network helpers
# ---------------------------------------------------------------------------

def free_port():
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, host=LOOPBACK, proc=None):
    """Wait until something accepts TCP connections on host:port.

    Raises AssertionError on timeout, or early if ``proc`` (a Popen) exits.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process %r exited (rc=%s) before listening on %d:\n%s"
                                 % (proc.args[0], proc.returncode, port, read_log(proc)))
        if time.monotonic() > deadline:
            raise AssertionError("nothing listening on %s:%d after %.0fs"
                                 % (host, port, timeout))
        time.sleep(0.05)


def wakeups_per_second(pid, seconds):
    """Wake-ups a second of process pid over the next seconds: the voluntary context
    switches (each a return from a wait) of all its threads, from /proc."""
    def total():
        n = 0
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                    n += sum(int(line.split()[1]) for line in f
                             if line.startswith("voluntary_ctxt_switches"))
            except FileNotFoundError:  # a thread that ended meanwhile
                pass
        return n
    before = total()
    time.sleep(seconds)
    return (total() - before) / seconds


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Poll ``predicate()`` until truthy; return its value or raise AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# pigeon and the build tree
# ---------------------------------------------------------------------------

def source_dir():
    """The source tree (PIGEON_SOURCE_DIR, else two levels above this file)."""
    return os.environ.get("PIGEON_SOURCE_DIR") or os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    """The build tree (PIGEON_BUILD_DIR, else dirname of PIGEON); Skip if unknown."""
    d = os.environ.get("PIGEON_BUILD_DIR")
    if not d and os.environ.get("PIGEON"):
        d = os.path.dirname(os.environ["PIGEON"])
    if not d:
        raise Skip("PIGEON_BUILD_DIR is not set")
    return d


def build_tool(name):
    """Path of $PIGEON_BUILD_DIR/tool_<name>; Skip if it was not built."""
    path = os.path.join(build_dir(), "tool_%s" % name)
    if not os.access(path, os.X_OK):
        raise Skip("%s not built" % path)
    return path


def run_cmd(args, input=None, env=None, timeout=30, cwd=None):
    """Run a command in its own process group; return (rc, stdout, stderr) bytes.

    ``env`` entries are merged over os.environ (pass a value of None to remove a
    variable).  On timeout the whole group is killed and AssertionError raised.
    """
    full_env = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    if isinstance(input, str):
        input = input.encode()
    proc = subprocess.Popen(
        list(args), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd,
        start_new_session=True)
    with _children_lock:
        _children.append(proc)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, grace=0.5)
        out, err = proc.communicate()
        raise AssertionError("%s timed out after %ss\nstdout: %r\nstderr: %r"
                             % (" ".join(map(str, args)), timeout, out[-2000:], err[-2000:]))
    finally:
        with _children_lock:
            if proc in _children:
                _children.remove(proc)
    # Reap anything the command left behind in its group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.returncode, out, err


def pigeon_path():
    """Path of the built pigeon command ($PIGEON); Skip if unset."""
    path = os.environ.get("PIGEON")
    if not path:
        raise Skip("PIGEON is not set")
    return path


def pigeon(*args, input=None, env=None, timeout=30, cwd=None):
    """Run $PIGEON with ``args``; return (rc, stdout bytes, stderr bytes)."""
    return run_cmd([pigeon_path()] + [str(a) for a in args], input=input, env=env,
                   timeout=timeout, cwd=cwd)


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------

def parse(data):
    """Parse message bytes into an email.message.EmailMessage (policy.default)."""
    if isinstance(data, str):
        data = data.encode()
    return email.message_from_bytes(data, policy=email.policy.default)


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------

_registered = []


def test(fn=None, *, timeout=None, name=None):
    """Register a test function.  Use as ``@test`` or ``@test(timeout=20)``."""
    def deco(f):
        f._harness_timeout = timeout
        f._harness_name = name or f.__name__
        _registered.append(f)
        return f
    if fn is not None:
        return deco(fn)
    return deco


def _out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _Watchdog:
    """Kills the process when a test or the whole file overruns its bound.

    A test cannot be interrupted safely from another thread, so on expiry the
    watchdog prints the stuck test's stack, counts everything not yet finished
    as failed, kills children and leaves with os._exit(1).
    """

    def __init__(self, file_timeout, counts):
        self.file_deadline = time.monotonic() + file_timeout
        self.counts = counts
        self.current = None
        self.test_deadline = None
        self.lock = threading.Lock()
        self.main_ident = threading.get_ident()
        t = threading.Thread(target=self._loop, daemon=True)
        t.start()

    def arm(self, name, timeout):
        with self.lock:
            self.current = name
            self.test_deadline = time.monotonic() + timeout

    def disarm(self):
        with self.lock:
            self.current = None
            self.test_deadline = None

    def _loop(self):
        while True:
            time.sleep(0.2)
            now = time.monotonic()
            with self.lock:
                if now > self.file_deadline:
                    self._expire("whole file exceeded its time bound")
                if self.test_deadline is not None and now > self.test_deadline:
                    self._expire("test exceeded its time bound")

    def _expire(self, why):
        frame = sys._current_frames().get(self.main_ident)
        stack = "".join(traceback.format_stack(frame)) if frame else ""
        name = self.current or "(between tests)"
        _out("FAIL %s: %s\n%s" % (name, why, stack))
        passed, failed, skipped, remaining = self.counts()
        for other in remaining:
            _out("FAIL %s: not run (an earlier test overran its time bound)" % other)
        failed += 1 + len(remaining)
        try:
            _cleanup_all()
        finally:
            _summary(passed, failed, skipped)
            os._exit(1)


def _summary(passed, failed, skipped):
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    _out(line)


def run(tests=None, *, timeout=DEFAULT_TEST_TIMEOUT, file_timeout=None):
    """Run ``tests`` (default: every @test in registration order) and exit.

    ``timeout`` is the default per-test bound (a @test(timeout=..) wins);
    ``file_timeout`` the bound for the whole file (env PIGEON_TEST_FILE_TIMEOUT,
    default 240 s).  Command-line arguments, if any, select tests by name
    substring.  Exits 0 iff no test failed.
    """
    tests = list(tests if tests is not None else _registered)
    if len(sys.argv) > 1:
        tests = [t for t in tests if any(a in getattr(t, "_harness_name", t.__name__)
                                         for a in sys.argv[1:])]
    if file_timeout is None:
        file_timeout = float(os.environ.get("PIGEON_TEST_FILE_TIMEOUT", DEFAULT_FILE_TIMEOUT))
    state = {"passed": 0, "failed": 0, "skipped": 0, "done": 0}

    def counts():
        return (state["passed"], state["failed"], state["skipped"],
                [getattr(t, "_harness_name", t.__name__) for t in tests[state["done"] + 1:]])

    dog = _Watchdog(file_timeout, counts)
    for fn in tests:
        name = getattr(fn, "_harness_name", fn.__name__)
        limit = getattr(fn, "_harness_timeout", None) or timeout
        dog.arm(name, limit)
        try:
            fn()
        except Skip as e:
            state["skipped"] += 1
            _out("skip %s: %s" % (name, e))
        except BaseException as e:  # noqa: B902 - a test may raise anything
            if isinstance(e, KeyboardInterrupt):
                raise
            state["failed"] += 1
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            _out("FAIL %s: %s\n%s" % (name, reason, traceback.format_exc()))
        else:
            state["passed"] += 1
            _out("ok %s" % name)
        finally:
            dog.disarm()
            state["done"] += 1
    with dog.lock:
        dog.file_deadline = float("inf")
        _cleanup_all()
        _summary(state["passed"], state["failed"], state["skipped"])
        sys.stdout.flush()
        os._exit(0 if state["failed"] == 0 else 1)


# ---- the spool's backend: SQLite (a file), or PostgreSQL under pgserver.py ----
# A suite that runs against both (CMake's <name>_pg entries, started by pgserver.py with
# PIGEON_TEST_PG set) builds its environments with with_spool(): every environment then
# gets a fresh database of that server as $PIGEON_SPOOL, and the same test runs unchanged.

PSQL = "/usr/lib/postgresql/15/bin/psql"


def pg_url():
    """The PostgreSQL server's base URL when the suite runs against it, else None."""
    return os.environ.get("PIGEON_TEST_PG") or None


def pg_query(url, sql):
    """Runs sql on the database url (password from $PGPASSFILE); its rows as text."""
    r = subprocess.run([PSQL, url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("psql: %s" % r.stderr.decode(errors="replace"))
    return r.stdout.decode()


_pg_count = [0]


def with_spool(env):
    """env with a fresh PostgreSQL database as its spool when the suite runs on one."""
    base = pg_url()
    if base is None:
        return env
    _pg_count[0] += 1
    name = "it_%d_%d" % (os.getpid(), _pg_count[0])
    pg_query(base, "CREATE DATABASE %s" % name)
    env["PIGEON_SPOOL"] = base.rsplit("/", 1)[0] + "/" + name
    return env
