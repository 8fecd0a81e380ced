#!/usr/bin/python3
"""Issue 12, defect 2: one local client must not take /metrics and /healthz down.

tool_metrics serves the standard set on 127.0.0.1 port 0. Abuse, each while /healthz is
asked with urllib (an independent client) and must answer within a couple of seconds:
- 32 connections trickling a header line a second (slowloris);
- 1,000 connections opened, sent half a request and then half-closed (shutdown SHUT_WR),
  and 1,000 more reset (SO_LINGER 0) half-way; afterwards the server holds none of them
  (no CLOSE-WAIT sockets waiting out a deadline);
- more idle connections than the connection cap: the stalest make room for a scraper.
"""
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test  # noqa: E402


class Tool:
    def __init__(self):
        self.proc = harness.spawn([harness.build_tool("metrics")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        first = self.proc.stdout.readline().decode().split()
        assert first and first[0] == "PORT", first
        self.port = int(first[1])

    def healthz(self, timeout=3.0):
        """Seconds /healthz took to answer 200 (raises if it did not within timeout)."""
        start = time.monotonic()
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.port,
                                    timeout=timeout) as r:
            assert r.status == 200 and r.read() == b"ok\n"
        return time.monotonic() - start

    def close_wait_count(self):
        """Server-side sockets in CLOSE-WAIT (peer closed, we did not) on our port."""
        count = 0
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(path) as f:
                    next(f)
                    for line in f:
                        parts = line.split()
                        local_port = int(parts[1].split(":")[1], 16)
                        if local_port == self.port and parts[3] == "08":
                            count += 1
            except FileNotFoundError:
                pass
        return count

    def close(self):
        self.proc.stdin.write(b"quit\n")
        self.proc.stdin.flush()
        assert self.proc.wait(10) == 0
        harness.stop(self.proc)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


@test(timeout=60)
def slowloris_does_not_block_healthz():
    t = Tool()
    stop = threading.Event()
    socks = []
    for _ in range(32):
        s = connect(t.port)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)

    def trickle():
        n = 0
        while not stop.is_set():
            for s in socks:
                try:
                    s.sendall(b"X-Slow-%d: 1\r\n" % n)
                except OSError:
                    pass
            n += 1
            stop.wait(1.0)
    th = threading.Thread(target=trickle)
    th.start()
    try:
        # While they trickle: every second, /healthz answers at once.
        for _ in range(4):
            took = t.healthz(timeout=2.0)
            assert took < 2.0, took
            time.sleep(1.0)
        # And the tricklers are cut off at the request deadline (5 s), not left forever.
        def all_closed():
            closed = 0
            for s in socks:
                try:
                    s.settimeout(0.01)
                    data = s.recv(4096)
                    if data == b"" or data.startswith(b"HTTP/1.1 408"):
                        closed += 1
                except socket.timeout:
                    pass
                except OSError:
                    closed += 1
            return closed == len(socks)
        harness.wait_for(all_closed, timeout=10, what="trickling connections closed")
    finally:
        stop.set()
        th.join()
        for s in socks:
            s.close()
    t.close()


@test(timeout=90)
def half_closed_and_reset_connections_do_not_linger():
    t = Tool()
    for round_ in range(2):
        socks = []
        for i in range(500):
            s = connect(t.port)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Half: ")
            socks.append(s)
        for s in socks:
            if round_ == 0:
                s.shutdown(socket.SHUT_WR)  # half-closed with a partial request
            else:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()  # reset
        took = t.healthz(timeout=2.0)
        assert took < 2.0, took
        # The server noticed every closed peer at once: no CLOSE-WAIT left behind.
        harness.wait_for(lambda: t.close_wait_count() == 0, timeout=3,
                         what="no CLOSE-WAIT sockets")
        if round_ == 0:
            # The half-closed clients see the server close (EOF), long before any deadline.
            for s in socks:
                s.settimeout(3)
                assert s.recv(100) == b""
                s.close()
    # 1,000 more in a burst without waiting between them.
    for i in range(1000):
        s = connect(t.port)
        s.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        s.shutdown(socket.SHUT_WR)
        s.close()
    assert t.healthz(timeout=2.0) < 2.0
    harness.wait_for(lambda: t.close_wait_count() == 0, timeout=3, what="no CLOSE-WAIT")
    t.close()


@test(timeout=60)
def idle_flood_over_the_cap_leaves_room():
    t = Tool()
    socks = [connect(t.port) for _ in range(400)]  # the cap is 256
    for s in socks[:200]:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
    time.sleep(0.3)
    assert t.healthz(timeout=2.0) < 2.0
    assert t.healthz(timeout=2.0) < 2.0
    for s in socks:
        s.close()
    t.close()


@test
def pipelined_requests_answered_in_order():
    t = Tool()
    s = connect(t.port)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
              b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    s.settimeout(5)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"200", b"404", b"200", b"200"], data
    assert data.count(b"ok\n") == 2
    s.close()
    t.close()


@test
def smuggling_attempts_refused():
    t = Tool()
    for wire, want in (
            (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400"),
            (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
             b"400"),
            (b"GET /healthz HTTP/1.1\nHost: x\n\n", b"400"),
            (b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", b"431")):
        s = connect(t.port)
        s.sendall(wire)
        s.settimeout(5)
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 " + want), (wire[:60], reply[:80])
        assert b"Connection: close" in reply
        s.close()
    assert t.healthz() < 2.0
    t.close()


if __name__ == "__main__":
    harness.run()
