#!/usr/bin/python3
"""DELETE /v1/messages/{id} against a daemon's claim (issue 10): a message a daemon is
sending is never reported cancelled. The semantics: DELETE answers 204 only when nothing
of the message will be sent (it left the queue in the same atomic step that checked no
recipient was in flight); while a recipient is claimed it answers 409 "being sent" and
changes nothing, and the message is then delivered. A message scheduled with send_at is
cancelled before its time and never sent.

The upstream is a small SMTP server of this test that holds its reply to the end of DATA
until the test lets it go, so the message is in flight for as long as the test needs.
"""
import os
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test  # noqa: E402
from servetool import Serve, make_env, new_key  # noqa: E402


class GateSmtp:
    """A one-session-at-a-time SMTP server that waits on `release` before answering the
    end of DATA; `in_data` is set once a message's final dot arrived."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.in_data = threading.Event()
        self.release = threading.Event()
        self.messages = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self.session(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 gate.test ESMTP\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-gate.test\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go on\r\n")
                data = b""
                while True:
                    part = f.readline()
                    if not part or part == b".\r\n":
                        break
                    data += part
                self.messages.append(data)
                self.in_data.set()
                self.release.wait(60)
                conn.sendall(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 2.0.0 ok\r\n")

    def close(self):
        self.release.set()
        self.sock.close()


MSG = {"from": "App <app@shop.test>", "to": ["ann@example.org"], "subject": "gate",
       "text": "held in flight\n"}


@test(timeout=120)
def delete_while_a_daemon_sends_is_409_and_the_message_is_delivered():
    gate = GateSmtp()
    env = make_env(gate.port)
    key = new_key(env, "--account", "main")
    s = Serve(env)
    daemon = None
    try:
        status, _, doc = s.request("POST", "/v1/messages", MSG, key)
        assert status == 202, doc
        qid = doc["id"]
        full = {k: v for k, v in dict(os.environ, **env).items() if v is not None}
        daemon = subprocess.Popen([harness.pigeon_path(), "daemon", "--once", "--workers", "1"],
                                  env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert gate.in_data.wait(60), "the daemon never reached the end of DATA"
        # Claimed and in the middle of its SMTP transaction: not cancellable.
        status, _, doc = s.request("DELETE", "/v1/messages/" + qid, key=key)
        assert status == 409 and "being sent" in doc["detail"], (status, doc)
        status, _, doc = s.request("GET", "/v1/messages/" + qid, key=key)
        assert status == 200 and doc["state"] == "sending", doc
        gate.release.set()
        _, err = daemon.communicate(timeout=60)
        assert daemon.returncode == 0, err
        daemon = None
        # The 409 changed nothing: the message went out once and is delivered.
        status, _, doc = s.request("GET", "/v1/messages/" + qid, key=key)
        assert status == 200 and doc["state"] == "delivered", doc
        assert len(gate.messages) == 1 and b"Subject: gate" in gate.messages[0]
        status, _, doc = s.request("DELETE", "/v1/messages/" + qid, key=key)
        assert status == 409 and doc["detail"] == "already delivered", doc
    finally:
        if daemon is not None:
            daemon.kill()
            daemon.wait()
        s.stop()
        gate.close()


@test(timeout=120)
def a_scheduled_message_cancelled_before_its_time_is_never_sent():
    gate = GateSmtp()
    gate.release.set()
    env = make_env(gate.port)
    key = new_key(env, "--account", "main")
    s = Serve(env)
    try:
        status, _, doc = s.request("POST", "/v1/messages",
                                   dict(MSG, send_at="2099-01-01T00:00:00Z"), key)
        assert status == 202, doc
        later = doc["id"]
        status, _, doc = s.request("POST", "/v1/messages", dict(MSG, subject="now"), key)
        assert status == 202, doc
        assert s.request("DELETE", "/v1/messages/" + later, key=key)[0] == 204
        status, _, doc = s.request("GET", "/v1/messages/" + later, key=key)
        assert status == 200 and doc["state"] == "cancelled", doc
        rc, _, err = harness.pigeon("daemon", "--once", "--workers", "1", env=env, timeout=60)
        assert rc == 0, err
        assert [m.count(b"Subject: now") for m in gate.messages] == [1], gate.messages
        rc, out, _ = harness.pigeon("queue", "list", "--json", env=env)
        assert later not in out.decode()
    finally:
        s.stop()
        gate.close()


if __name__ == "__main__":
    harness.run()
