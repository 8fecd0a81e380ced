"""`pigeon queue export` / `pigeon queue import` (issue 11): moving a spool between
backends and hosts as JSON Lines.

A spool with messages in every recipient state (tool_transfer: queued, deferred beside
delivered, failed beside deferred, in flight, a 5 MB binary body, UTF-8 addresses and
reply texts with quotes and backslashes) is exported, every line is read back with
Python's json, each body is decoded and checked against the SHA-256 and size on its line
and against the bytes `pigeon` itself would send, and the file is imported into a fresh
spool whose own export must say the same thing (an in-flight recipient comes back
deferred, due when its lease would have expired). Importing again skips everything.
Bad input (cut lines, wrong types, bad base64, a wrong SHA-256, control characters,
unknown states, a newer version) is refused with exit 65 and a reason naming the line,
and nothing already queued is lost or changed.
"""
import base64
import hashlib
import json
import os

import harness
import servers
from harness import test


def fresh(name="spool.db"):
    return os.path.join(harness.tmpdir("pigeon-transfer-"), name)


def dest():
    """The spool to import into: a fresh PostgreSQL database on the PostgreSQL run (ctest
    integration/test_queue_transfer_pg: SQLite to PostgreSQL), else a fresh file."""
    return harness.with_spool({}).get("PIGEON_SPOOL") or fresh()


def pigeon(*args, input=None):
    return harness.pigeon(*args, input=input, timeout=120)


def filled(small=False):
    """A spool with a message in every state; small: without the 5 MB one (5 KB)."""
    path = fresh()
    rc, out, err = harness.run_cmd([harness.build_tool("transfer"), "fill", path] +
                                   (["small"] if small else []), timeout=60)
    assert rc == 0 and out.strip() == b"6", (rc, out, err)
    return path


def export(spool):
    out = os.path.join(harness.tmpdir("pigeon-export-"), "export.jsonl")
    rc, _, err = pigeon("queue", "export", "--spool", spool, out)
    assert rc == 0, err
    with open(out, "rb") as f:
        data = f.read()
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    return out, data


def lines_of(data):
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


def snapshot(spool):
    """What `pigeon queue` shows of a spool: every message with its recipients."""
    rc, out, err = pigeon("queue", "list", "--json", "--spool", spool)
    assert rc == 0, err
    shown = []
    for m in json.loads(out):
        rc, out, err = pigeon("queue", "show", m["queue_id"], "--json", "--spool", spool)
        assert rc == 0, err
        shown.append(json.loads(out))
    return shown


@test(timeout=120)
def round_trip_keeps_every_state_and_byte():
    src = filled()
    path, data = export(src)
    rows = lines_of(data)
    head, msgs, end = rows[0], rows[1:-1], rows[-1]
    assert head["format"] == "pigeon-queue" and head["version"] == 1, head
    assert end == {"end": True, "messages": 6}, end
    assert len(msgs) == 6
    states = set()
    for m in msgs:
        body = base64.b64decode(m["body"], validate=True)
        assert len(body) == m["size"] and hashlib.sha256(body).hexdigest() == m["sha256"]
        # The bytes the spool hands to the daemon (tool_transfer's 5 MB body is binary).
        states |= {r["state"] for r in m["recipients"]}
    assert states == {"queued", "inflight", "deferred", "delivered", "failed"}, states
    big = [m for m in msgs if m["size"] > 5 * 1024 * 1024]
    assert len(big) == 1
    texts = {r["text"] for m in msgs for r in m["recipients"]}
    assert 'try "later" \\ please' in texts and "no such user été" in texts, texts
    addrs = {r["address"] for m in msgs for r in m["recipients"]}
    assert "üser@bücher.example" in addrs

    dst = dest()
    rc, out, err = pigeon("queue", "import", "--spool", dst, path, "--json")
    assert rc == 0, err
    assert json.loads(out) == {"imported": 6, "present": 0, "finished": 0,
                               "bytes": sum(m["size"] for m in msgs)}, out
    _, again = export(dst)
    copied = lines_of(again)[1:-1]
    for a, b in zip(msgs, copied):
        for ra in a["recipients"]:
            if ra["state"] == "inflight":  # its lease belonged to the source's process
                ra["state"] = "deferred"
        assert a == b, (a["queue_id"], a["recipients"], b["recipients"])
    # What `pigeon queue show` says is the same on both sides, but for the lease.
    left, right = snapshot(src), snapshot(dst)
    for a, b in zip(left, right):
        for r in a["recipients"]:
            if r["state"] == "inflight":
                r["state"], r["lease_owner"] = "deferred", None
                a["counts"]["inflight"] -= 1
                a["counts"]["deferred"] += 1
        assert a == b, (a, b)

    # Running the import again changes nothing.
    rc, out, err = pigeon("queue", "import", "--spool", dst, path, "--json")
    assert rc == 0 and json.loads(out)["present"] == 6 and json.loads(out)["imported"] == 0
    assert snapshot(dst) == right


@test(timeout=120)
def imported_spool_delivers_what_was_left_and_nothing_else():
    """A daemon on the imported spool sends to the recipients that were queued, deferred
    or in flight, never again to the delivered or failed ones, with the same bytes."""
    src = filled(small=True)
    path, data = export(src)
    want = {}
    for m in lines_of(data)[1:-1]:
        for r in m["recipients"]:
            if r["state"] in ("queued", "deferred", "inflight"):
                want[r["address"]] = base64.b64decode(m["body"])
    dst = dest()
    rc, _, err = pigeon("queue", "import", "--spool", dst, path)
    assert rc == 0, err
    with servers.AioSmtpd() as srv:
        home = harness.tmpdir("pigeon-transfer-home-")
        cfg = os.path.join(home, "config")
        with open(cfg, "w") as f:
            for account in ("a-deferred", "a-failed", "a-inflight", "main", "other"):
                f.write("[account %s]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                        "from = s@pigeon.test\ntimeout = 10\n" % (account, srv.port))
        os.chmod(cfg, 0o600)
        env = {"PIGEON_CONFIG": cfg, "HOME": home, "PIGEON_PASSWORD": None}
        rc, out, err = harness.pigeon("daemon", "--once", "--spool", dst, "--log-file",
                                      os.devnull, env=env, timeout=60)
        assert rc == 0, err
        got = {}
        for m in srv.wait_messages(6):
            for r in m.rcpt_tos:
                got[r] = m.content
    assert set(got) == set(want), (sorted(got), sorted(want))
    for address, content in got.items():
        assert content == want[address], address
    rc, out, err = pigeon("queue", "stats", "--json", "--spool", dst)
    stats = json.loads(out)
    assert stats["recipients"]["failed"] == 1 and stats["recipients"]["queued"] == 0, stats


@test(timeout=60)
def export_of_one_account_and_import_from_stdin():
    src = filled(small=True)
    rc, out, err = pigeon("queue", "export", "--spool", src, "--account", "other")
    assert rc == 0, err
    rows = lines_of(out)
    assert [m["account"] for m in rows[1:-1]] == ["other"] and rows[-1]["messages"] == 1
    dst = dest()
    rc, out2, err = pigeon("queue", "import", "--spool", dst, input=out)
    assert rc == 0, err
    assert [m["account"] for m in snapshot(dst)] == ["other"]


def dumps(value):
    return json.dumps(value, separators=(",", ":"))


def good_line(src_rows):
    return json.loads(json.dumps(src_rows[1]))


BAD = [
    ("cut line", lambda m: dumps(m)[:-40], "line 2"),
    ("queue id a number", lambda m: dict(m, queue_id=1), '"queue_id" must be a string'),
    ("bad queue id", lambda m: dict(m, queue_id="not-a-ulid"), "bad queue id"),
    ("CR in an address",
     lambda m: dict(m, recipients=[dict(m["recipients"][0], address="a@b\r\nRSET")]),
     "bad address"),
    ("unknown state", lambda m: dict(m, recipients=[dict(m["recipients"][0], state="lost")]),
     "unknown recipient state"),
    ("negative attempts",
     lambda m: dict(m, recipients=[dict(m["recipients"][0], attempts=-1)]), "attempts"),
    ("float time", lambda m: dict(m, created_ms=1.5), "created_ms"),
    ("huge number", lambda m: dumps(m).replace('"size":', '"size":1' + "0" * 30 + ',"x":'),
     "size"),
    ("bad base64", lambda m: dict(m, body="!!!!" + m["body"]), "not valid base64"),
    ("padding inside", lambda m: dict(m, body="QQ==" + m["body"]), "not valid base64"),
    ("wrong sha256", lambda m: dict(m, sha256="0" * 64), "does not match"),
    ("wrong size", lambda m: dict(m, size=m["size"] + 1), "does not match"),
    ("no recipients", lambda m: dict(m, recipients=[]), "empty"),
    ("no body", lambda m: {k: v for k, v in m.items() if k != "body"}, '"body"'),
    ("duplicate key", lambda m: dumps(m)[:-1] + ',"account":"x"}', "duplicate"),
    ("not an object", lambda m: "[1,2,3]", "expected '{'"),
    ("NUL escape", lambda m: dict(m, account="a\u0000b"), "U+0000"),
    ("lone surrogate", lambda m: dumps(m).replace('"account":"a-deferred"', '"account":"\\ud800"'),
     "surrogate"),
]


def contents(spool):
    """Everything the spool holds, bodies and states included (one command)."""
    rc, out, err = pigeon("queue", "export", "--spool", spool)
    assert rc == 0, err
    return lines_of(out)[1:]


@test(timeout=120)
def bad_input_is_refused_with_65_and_nothing_is_lost():
    src = filled(small=True)
    _, data = export(src)
    rows = lines_of(data)
    head = json.dumps(rows[0])
    dst = dest()
    # Something already queued, that no bad import may touch.
    rc, _, err = pigeon("queue", "import", "--spool", dst,
                        input=(head + "\n" + json.dumps(rows[-2]) + '\n{"end":true,"messages":1}\n')
                        .encode())
    assert rc == 0, err
    before = contents(dst)
    assert len(before) == 2  # the message and the end line
    for name, change, reason in BAD:
        bad = change(good_line(rows))
        text = bad if isinstance(bad, str) else dumps(bad)
        assert text != dumps(rows[1]), name  # the change took
        feed = (head + "\n" + text + "\n" + '{"end":true,"messages":1}\n').encode()
        rc, out, err = pigeon("queue", "import", "--spool", dst, input=feed)
        assert rc == 65, (name, rc, err)
        assert b"line 2" in err and reason.encode() in err, (name, err)
        assert contents(dst) == before, name
    # Whole-file problems.
    for name, feed, reason in [
        ("empty", b"", b"empty"),
        ("no header", (json.dumps(rows[1]) + "\n").encode(), b"no header"),
        ("newer version", b'{"format":"pigeon-queue","version":2}\n{"end":true,"messages":0}\n',
         b"newer"),
        ("other format", b'{"format":"mbox","version":1}\n', b"not a pigeon queue export"),
        ("binary", bytes(range(256)), b"line 1"),
        ("wrong count", (head + '\n{"end":true,"messages":3}\n').encode(), b"counts 3"),
        ("after the end", (head + '\n{"end":true,"messages":0}\n' + head + "\n").encode(),
         b"after the end"),
    ]:
        rc, out, err = pigeon("queue", "import", "--spool", dst, input=feed)
        assert rc == 65, (name, rc, err)
        assert reason in err, (name, err)
        assert contents(dst) == before, name


@test(timeout=60)
def a_cut_file_keeps_the_messages_before_the_cut():
    src = filled(small=True)
    _, data = export(src)
    lines = data.split(b"\n")
    cut = b"\n".join(lines[:3]) + b"\n" + lines[3][:100]   # header, 2 messages, a cut one
    dst = dest()
    rc, out, err = pigeon("queue", "import", "--spool", dst, input=cut)
    assert rc == 65 and b"line 4" in err, (rc, err)
    assert len(snapshot(dst)) == 2
    # The whole file afterwards completes it (the first two are skipped).
    rc, out, err = pigeon("queue", "import", "--spool", dst, "--json", input=data)
    assert rc == 0 and json.loads(out)["present"] == 2 and json.loads(out)["imported"] == 4
    rc, out, err = pigeon("queue", "import", "--spool", dst, input=data[:-len(lines[-2]) - 1])
    assert rc == 65 and b"without its end line" in err, err


if __name__ == "__main__":
    harness.run(file_timeout=240)
