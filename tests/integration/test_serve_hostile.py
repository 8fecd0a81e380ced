#!/usr/bin/python3
"""`pigeon serve --smtp-listen` against hostile clients, on raw sockets.

What an operator checks: a slow-drip client (one octet at a time, never idle long enough
for the idle timeout) is dropped with 421 at the command deadline and at the message
data deadline; a client that vanishes mid-DATA (no more octets, no FIN) is dropped at the
idle deadline; a client that sends FIN mid-DATA is closed at once; in every case nothing
half-received is stored, and the listener keeps serving a well-behaved client meanwhile.
"""
import os
import re
import smtplib
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test  # noqa: E402
from servetool import make_env  # noqa: E402

TIMEOUT = 2  # --smtp-timeout: seconds
MSG = (b"From: App <app@shop.test>\r\nTo: Ann <ann@example.org>\r\nSubject: hostile\r\n"
       b"\r\nbody\r\n")


class Serve:
    """`pigeon serve --smtp-listen` trusting loopback clients (no AUTH needed)."""

    def __init__(self, env, *args):
        full = dict(os.environ)
        full.update({k: v for k, v in env.items() if v is not None})
        for k, v in env.items():
            if v is None:
                full.pop(k, None)
        argv = [harness.pigeon_path(), "serve", "--smtp-hostname", "mx.pigeon.test",
                "--smtp-listen", "127.0.0.1:0", "--smtp-trust-local", "--account", "main",
                "--smtp-timeout", str(TIMEOUT)] + list(args)
        self.proc = harness.spawn(argv, env=full, stderr=subprocess.PIPE)
        self.port = None
        while self.port is None:
            line = self.proc.stderr.readline().decode()
            assert line, "serve did not start"
            m = re.search(r"\(smtp port (\d+)\)", line)
            if m:
                self.port = int(m.group(1))
        threading.Thread(target=lambda: [_ for _ in self.proc.stderr], daemon=True).start()

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(20) == 0
        harness.stop(self.proc)


def queue_count(env):
    rc, out, err = harness.pigeon("queue", "list", env=env)
    assert rc == 0, (rc, err)
    return len(re.findall(r"^[0-9A-Z]{26}\s", out.decode(), re.M))


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buf = b""
        assert self.reply()[0] == 220

    def reply(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                return (None, "")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        while line[3:4] == b"-":
            return self.reply()
        return (int(line[:3]), line.decode("latin-1"))

    def cmd(self, line):
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def drip(self, data, every, until):
        """Sends data one octet at a time; returns (seconds until the server closed or
        answered, what it said) or None if it let the whole drip through."""
        start = time.monotonic()
        for i in range(len(data)):
            try:
                self.sock.sendall(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start, ""
            self.sock.settimeout(every)
            try:
                chunk = self.sock.recv(4096)
                return time.monotonic() - start, (self.buf + chunk).decode("latin-1")
            except socket.timeout:
                pass
            except ConnectionResetError:
                return time.monotonic() - start, ""
            if time.monotonic() - start > until:
                return None
        return None

    def closed_within(self, seconds):
        self.sock.settimeout(seconds)
        data = b""
        try:
            while True:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return True, data.decode("latin-1")
                data += chunk
        except socket.timeout:
            return False, data.decode("latin-1")
        except ConnectionResetError:
            return True, data.decode("latin-1")


def polite_send(port, subject):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("polite.test")
        c.sendmail("app@shop.test", ["ann@example.org"],
                   MSG.replace(b"hostile", subject.encode()))


def polite_during(port, seconds):
    """A well-behaved client sends a message every half second meanwhile; returns how many
    went through and any error."""
    result = {"sent": 0, "error": None}

    def run():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                polite_send(port, "polite-%d" % result["sent"])
                result["sent"] += 1
            except Exception as e:  # noqa: BLE001 - reported by the test
                result["error"] = repr(e)
                return
            time.sleep(0.5)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


@test(timeout=60)
def a_slow_drip_command_is_dropped_at_the_command_deadline():
    env = make_env()
    s = Serve(env)
    try:
        c = Client(s.port)
        assert c.cmd(b"EHLO drip.test")[0] == 250
        t, polite = polite_during(s.port, 3)
        # One octet every 0.5 s: never idle for TIMEOUT seconds, but the command is never
        # complete either.
        got = c.drip(b"MAIL FROM:<app@shop.test>" + b"X" * 200 + b"\r\n", 0.5, 6 * TIMEOUT)
        assert got is not None, "the drip was never dropped"
        elapsed, said = got
        assert elapsed < 3 * TIMEOUT, got
        assert said == "" or said.startswith("421"), got
        t.join(10)
        assert polite["error"] is None and polite["sent"] >= 2, polite
        assert queue_count(env) == polite["sent"]
    finally:
        s.stop()


@test(timeout=60)
def a_slow_drip_message_is_dropped_and_nothing_is_stored():
    env = make_env()
    s = Serve(env)
    try:
        c = Client(s.port)
        assert c.cmd(b"EHLO drip.test")[0] == 250
        assert c.cmd(b"MAIL FROM:<app@shop.test>")[0] == 250
        assert c.cmd(b"RCPT TO:<ann@example.org>")[0] == 250
        assert c.cmd(b"DATA")[0] == 354
        t, polite = polite_during(s.port, 3)
        got = c.drip(MSG + b"x" * 400 + b"\r\n.\r\n", 0.5, 8 * TIMEOUT)
        assert got is not None, "the drip was never dropped"
        elapsed, said = got
        assert elapsed < 4 * TIMEOUT, got
        assert said == "" or said.startswith("421"), got
        t.join(10)
        assert polite["error"] is None and polite["sent"] >= 2, polite
        assert queue_count(env) == polite["sent"]  # nothing of the drip
    finally:
        s.stop()


@test(timeout=60)
def a_client_vanishing_mid_data_is_dropped_and_nothing_is_stored():
    env = make_env()
    s = Serve(env, "--smtp-max-connections", "2")
    try:
        gone = []
        for _ in range(2):
            c = Client(s.port)
            assert c.cmd(b"EHLO gone.test")[0] == 250
            assert c.cmd(b"MAIL FROM:<app@shop.test>")[0] == 250
            assert c.cmd(b"RCPT TO:<ann@example.org>")[0] == 250
            assert c.cmd(b"DATA")[0] == 354
            c.sock.sendall(MSG[:40])  # then silence: no more octets, no FIN
            gone.append(c)
        # Both slots are taken: a third client is turned away meanwhile.
        third = Client.__new__(Client)
        third.sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        third.buf = b""
        assert third.reply()[0] == 421
        for c in gone:
            closed, said = c.closed_within(3 * TIMEOUT)
            assert closed and said.startswith("421"), (closed, said)
        polite_send(s.port, "after-vanish")  # the slots are free again
        assert queue_count(env) == 1
    finally:
        s.stop()


@test(timeout=60)
def fin_mid_data_closes_at_once_and_nothing_is_stored():
    env = make_env()
    s = Serve(env)
    try:
        c = Client(s.port)
        assert c.cmd(b"EHLO fin.test")[0] == 250
        assert c.cmd(b"MAIL FROM:<app@shop.test>")[0] == 250
        assert c.cmd(b"RCPT TO:<ann@example.org>")[0] == 250
        assert c.cmd(b"DATA")[0] == 354
        # Everything but the final dot, then FIN: the message is not complete.
        c.sock.sendall(MSG + b"more\r\n")
        start = time.monotonic()
        c.sock.shutdown(socket.SHUT_WR)
        closed, said = c.closed_within(3 * TIMEOUT)
        assert closed and time.monotonic() - start < TIMEOUT, (closed, said)
        assert "250" not in said, said
        polite_send(s.port, "after-fin")
        assert queue_count(env) == 1
    finally:
        s.stop()


if __name__ == "__main__":
    harness.run()
