"""`pigeon daemon` speaks the service manager's notification protocol (sd_notify(3)) by
itself, as systemd's Type=notify units expect: a Python datagram socket stands in for
systemd at $NOTIFY_SOCKET (a path, then an abstract @name) and receives READY=1 once the
workers run, WATCHDOG=1 at least every half of $WATCHDOG_USEC, RELOADING=1 (with its
MONOTONIC_USEC=) then READY=1 on SIGHUP, and STOPPING=1 on SIGTERM. Each datagram's
kernel-attached credentials must name the daemon's own PID, which is what systemd checks
with NotifyAccess=main. The command itself must not link libsystemd (start-up cost).
"""
import os
import signal
import socket
import struct
import subprocess
import time
import uuid

import harness
from harness import test


class Manager:
    """The notify socket systemd would own, with the sender PID of every datagram."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "pigeon-test-" + uuid.uuid4().hex
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(harness.tmpdir("notify"), "notify.sock")
            self.sock.bind(self.address)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.received = []  # (pid, {VAR: value}) in arrival order

    def receive(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        self.received.append((pid, fields))
        return pid, fields

    def wait_for(self, var, timeout=20):
        """The first new datagram setting VAR (earlier ones are kept in .received)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.receive(max(0.05, deadline - time.monotonic()))
            if got is not None and var in got[1]:
                return got
        raise AssertionError(f"no {var} within {timeout}s; received {self.received}")

    def close(self):
        self.sock.close()


def start(manager, extra_env=None, *args):
    d = harness.tmpdir("pigeon-sdnotify-")
    cfg = os.path.join(d, "config")
    with open(cfg, "w") as f:
        f.write("[account main]\nhost = 127.0.0.1\nport = 9\ntls = none\n"
                "from = sender@pigeon.test\n")
    os.chmod(cfg, 0o600)
    env = {"PIGEON_CONFIG": cfg, "XDG_STATE_HOME": os.path.join(d, "state"), "HOME": d,
           "NOTIFY_SOCKET": manager.address}
    env.update(extra_env or {})
    return harness.spawn([harness.pigeon_path(), "daemon", "--workers", "2", *args], env=env)


@test
def ready_watchdog_reload_stop():
    m = Manager()
    proc = start(m, {"WATCHDOG_USEC": "800000"})
    pid, ready = m.wait_for("READY")
    assert pid == proc.pid, (pid, proc.pid)
    assert ready["READY"] == "1" and "STATUS" in ready, ready
    # Two pings within two intervals: the daemon pings every half interval (0.4 s).
    t0 = time.monotonic()
    pings = 0
    while pings < 3:
        got = m.wait_for("WATCHDOG", timeout=2)
        assert got[0] == proc.pid and got[1]["WATCHDOG"] == "1", got
        pings += 1
    assert time.monotonic() - t0 < 2.5, "WATCHDOG=1 too rare for WATCHDOG_USEC=0.8s"
    os.kill(proc.pid, signal.SIGHUP)
    pid, reloading = m.wait_for("RELOADING")
    assert pid == proc.pid and reloading["RELOADING"] == "1", reloading
    now = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
    assert abs(int(reloading["MONOTONIC_USEC"]) - now) < 10e6, (reloading, now)
    pid, ready = m.wait_for("READY")
    assert pid == proc.pid and ready["READY"] == "1", ready
    os.kill(proc.pid, signal.SIGTERM)
    pid, stopping = m.wait_for("STOPPING")
    assert pid == proc.pid and stopping["STOPPING"] == "1", stopping
    assert proc.wait(20) == 0, harness.read_log(proc)
    # Nothing before READY=1 claimed readiness twice, and READY came before STOPPING.
    order = [k for _, f in m.received for k in f if k in ("READY", "RELOADING", "STOPPING")]
    assert order[:3] == ["READY", "RELOADING", "READY"] and order[3] == "STOPPING", order
    m.close()


@test
def serve_ready_watchdog_stop():
    """`pigeon serve` (pigeon-serve.service, Type=notify) says READY=1 only once it is
    listening, pings the watchdog, and says STOPPING=1 on SIGTERM."""
    m = Manager()
    d = harness.tmpdir("pigeon-sdnotify-serve-")
    port = harness.free_port()
    env = {"HOME": d, "XDG_STATE_HOME": os.path.join(d, "state"), "NOTIFY_SOCKET": m.address,
           "WATCHDOG_USEC": "800000"}
    proc = harness.spawn([harness.pigeon_path(), "serve", "--http-listen", f"127.0.0.1:{port}",
                          "--no-auth", "--account", "main",
                          "--spool", os.path.join(d, "spool.db")], env=env)
    pid, ready = m.wait_for("READY")
    assert pid == proc.pid and ready["READY"] == "1", (pid, proc.pid, ready)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # listening by the time it said READY
    got = m.wait_for("WATCHDOG", timeout=2)
    assert got[0] == proc.pid and got[1]["WATCHDOG"] == "1", got
    os.kill(proc.pid, signal.SIGTERM)
    pid, stopping = m.wait_for("STOPPING")
    assert pid == proc.pid and stopping["STOPPING"] == "1", stopping
    assert proc.wait(20) == 0, harness.read_log(proc)
    m.close()


@test
def abstract_socket_and_once():
    m = Manager(abstract=True)
    proc = start(m, {}, "--once")
    pid, ready = m.wait_for("READY")
    assert pid == proc.pid and ready["READY"] == "1", ready
    pid, stopping = m.wait_for("STOPPING")
    assert pid == proc.pid, (pid, proc.pid)
    assert proc.wait(20) == 0, harness.read_log(proc)
    assert not any("WATCHDOG" in f for _, f in m.received), m.received
    m.close()


@test
def watchdog_for_another_pid_is_ignored():
    # WATCHDOG_PID names the process the interval is for: not us, so no pings.
    m = Manager()
    proc = start(m, {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    m.wait_for("READY")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        m.receive(0.1)
    assert not any("WATCHDOG" in f for _, f in m.received), m.received
    harness.stop(proc)
    m.close()


@test
def without_notify_socket_nothing_changes():
    # Outside systemd the daemon runs and stops as before (no socket, no error).
    d = harness.tmpdir("pigeon-sdnotify-")
    env = {"PIGEON_CONFIG": "/dev/null", "XDG_STATE_HOME": d, "HOME": d,
           "NOTIFY_SOCKET": None}
    rc, out, err = harness.pigeon("daemon", "--once", env=env)
    assert rc == 0, (rc, err)
    assert b"NOTIFY" not in err, err


@test
def command_does_not_link_libsystemd():
    out = subprocess.run(["readelf", "-d", harness.pigeon_path()], capture_output=True,
                         text=True, check=True).stdout
    assert "NEEDED" in out, out
    assert "libsystemd" not in out, out


if __name__ == "__main__":
    harness.run(file_timeout=120)
