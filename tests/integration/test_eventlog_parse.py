#!/usr/bin/python3
"""Event log lines (cli/eventlog.c, driven by tool_eventlog) read back by real parsers.

JSON lines are read with Python's json module (RFC 8259) and logfmt lines with a decoder
written here after go-logfmt's rules; every field must come back with its value: random
strings with quotes, backslashes, control characters, UTF-8 and invalid bytes (each
invalid byte read back as U+FFFD), integers, doubles and times. Secrets never reach the
file. Log rotation: after the file is renamed and the process gets SIGHUP, new events go
to a new file of the old name and none is lost or split.
"""
import codecs
import datetime
import json
import os
import random
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test  # noqa: E402

# Decoding that replaces each invalid byte by one U+FFFD, as eventlog.c does (Python's
# own "replace" would replace a maximal invalid subpart by one).
codecs.register_error("pigeon_per_byte", lambda e: ("\ufffd", e.start + 1))
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Tool:
    def __init__(self, fmt, dest):
        self.proc = harness.spawn([harness.build_tool("eventlog"), fmt, dest],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout.readline() == b"READY\n"

    def event(self, fields):
        """fields: [(type, key str, value)] with type s/x (bytes or str), i, d, t."""
        items = []
        for kind, key, val in fields:
            if kind in "sx":
                raw = val.encode() if isinstance(val, str) else val
                val = raw.hex()
            items.append("%s:%s:%s" % (kind, key.encode().hex(), val))
        self.proc.stdin.write((" ".join(items) + "\n").encode())
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        assert reply == b"OK\n", reply

    def close(self):
        self.proc.stdin.close()
        assert self.proc.wait(10) == 0
        harness.stop(self.proc)


def expected_text(raw):
    return raw.decode("utf-8", "pigeon_per_byte")


def random_bytes(rng):
    alphabet = (list(range(1, 32)) + [127, ord('"'), ord("\\"), ord("="), ord(" ")] +
                list(range(0x80, 0x100)) + [ord(c) for c in "abcXYZ09{}:,"])
    parts = []
    for _ in range(rng.randrange(0, 24)):
        r = rng.random()
        if r < 0.5:
            parts.append(bytes([rng.choice(alphabet)]))
        elif r < 0.8:
            parts.append(rng.choice(["é", "日本", "📧", "ß", "\u2028", "Ω"]).encode())
        else:
            parts.append(rng.choice([b"\xe6\x97", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                     b"\xf0\x9f\x93"]))
    return b"".join(parts)


def random_events(seed, n):
    rng = random.Random(seed)
    events = []
    for _ in range(n):
        events.append([
            ("s", "text", random_bytes(rng)),
            ("i", "code", rng.choice([0, 250, 451, -7, 2 ** 62, -2 ** 63])),
            ("d", "duration", rng.choice([0.0, 0.25, 1e-9, 123456.789, -2.5, 1e300])),
            ("t", "next_attempt", rng.randrange(0, 4102444800000)),
            ("s", "rcpt", "user%d@example.org" % rng.randrange(1000)),
            ("s", "empty", b""),
        ])
    return events


def rfc3339(ms):
    t = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


def logfmt_decode(line):
    """go-logfmt: key=value pairs split by spaces; quoted values with Go escapes."""
    pairs, i, n = [], 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        start = i
        while i < n and line[i] not in "= ":
            i += 1
        key = line[start:i]
        assert key and i < n and line[i] == "=", "bad key at %d: %r" % (start, line)
        i += 1
        if i < n and line[i] == '"':
            i += 1
            out = []
            while line[i] != '"':
                c = line[i]
                if c == "\\":
                    e = line[i + 1]
                    if e == "u":
                        out.append(chr(int(line[i + 2:i + 6], 16)))
                        i += 6
                        continue
                    out.append({'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}[e])
                    i += 2
                    continue
                assert ord(c) >= 0x20 and c != "\x7f", "raw control in quotes: %r" % line
                out.append(c)
                i += 1
            i += 1
            value = "".join(out)
        else:
            start = i
            while i < n and line[i] != " ":
                i += 1
            value = line[start:i]
            assert '"' not in value and "=" not in value, value
        pairs.append((key, value))
    return pairs


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n") or data == b""
    # Every line is valid UTF-8 whatever went in.
    return [line.decode("utf-8") for line in data.split(b"\n")[:-1]]


@test
def json_lines_parse_back():
    path = os.path.join(harness.tmpdir(), "events.json")
    events = random_events(1, 300)
    tool = Tool("json", path)
    for ev in events:
        tool.event(ev)
    tool.event([("s", 'we"ird\nkey', "v"), ("s", "ctl", "\x01\x1f\x7f")])
    tool.close()
    lines = read_lines(path)
    assert len(lines) == len(events) + 1
    for ev, line in zip(events, lines):
        obj = json.loads(line)
        assert list(obj)[:3] == ["time", "level", "event"]
        assert RFC3339_MS.match(obj["time"]) and obj["level"] == "info" and obj["event"] == "test"
        for kind, key, val in ev:
            got = obj[key]
            if kind == "s":
                raw = val.encode() if isinstance(val, str) else val
                assert got == expected_text(raw), (raw, got, line)
            elif kind == "i":
                assert got == val and isinstance(got, int), (val, got)
            elif kind == "d":
                assert got == val, (val, got)
            elif kind == "t":
                assert got == rfc3339(val), (val, got)
    last = json.loads(lines[-1])
    assert last['we"ird\nkey'] == "v" and last["ctl"] == "\x01\x1f\x7f"


@test
def logfmt_lines_parse_back():
    path = os.path.join(harness.tmpdir(), "events.logfmt")
    events = random_events(2, 300)
    tool = Tool("logfmt", path)
    for ev in events:
        tool.event(ev)
    tool.event([("s", "we ird=key", "v")])
    tool.close()
    lines = read_lines(path)
    assert len(lines) == len(events) + 1
    for ev, line in zip(events, lines):
        pairs = logfmt_decode(line)
        assert [k for k, _ in pairs] == ["time", "level", "event"] + [f[1] for f in ev], line
        got = dict(pairs)
        assert RFC3339_MS.match(got["time"]) and got["event"] == "test"
        for kind, key, val in ev:
            if kind == "s":
                raw = val.encode() if isinstance(val, str) else val
                assert got[key] == expected_text(raw), (raw, got[key], line)
            elif kind == "i":
                assert int(got[key]) == val
            elif kind == "d":
                assert float(got[key]) == val
            elif kind == "t":
                assert got[key] == rfc3339(val)
    assert logfmt_decode(lines[-1])[-1] == ("we_ird_key", "v")


@test
def secrets_never_written():
    for fmt in ("json", "logfmt"):
        path = os.path.join(harness.tmpdir(), "secrets." + fmt)
        tool = Tool(fmt, path)
        tool.event([("s", "password", "hunter2-pw"), ("s", "smtp_token", "tok-SECRET-1"),
                    ("x", "xoauth2", "dXNlcj1hQGIAYXV0aD1CZWFyZXI="), ("i", "auth", 987654321),
                    ("s", "account", "work")])
        tool.close()
        data = open(path, "rb").read()
        for secret in (b"hunter2-pw", b"tok-SECRET-1", b"dXNlcj1hQGIAYXV0aD1CZWFyZXI=",
                       b"987654321"):
            assert secret not in data, (fmt, data)
        fields = (json.loads(data) if fmt == "json"
                  else dict(logfmt_decode(data.decode().rstrip("\n"))))
        assert fields["password"] == fields["smtp_token"] == "[redacted]"
        assert fields["xoauth2"] == fields["auth"] == "[redacted]"
        assert fields["account"] == "work"


@test
def sighup_reopens_after_rotation():
    d = harness.tmpdir()
    path = os.path.join(d, "pigeon.log")
    tool = Tool("json", path)

    def write(i):
        tool.event([("i", "seq", i), ("s", "pad", "x" * 3000)])
    for i in range(3):
        write(i)
    os.rename(path, path + ".1")
    write(3)                  # still the renamed file: nothing asked for a reopen yet
    assert not os.path.exists(path)
    os.kill(tool.proc.pid, signal.SIGHUP)
    for i in range(4, 8):
        write(i)
    os.rename(path, path + ".2")
    os.kill(tool.proc.pid, signal.SIGHUP)
    write(8)
    tool.close()

    def seqs(p):
        return [json.loads(line)["seq"] for line in read_lines(p)]
    assert seqs(path + ".1") == [0, 1, 2, 3]
    assert seqs(path + ".2") == [4, 5, 6, 7]
    assert seqs(path) == [8]


if __name__ == "__main__":
    harness.run()
