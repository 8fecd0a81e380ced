"""Recovery of the spool and the daemon (issue 12): a daemon killed with kill -9 has its
leases given back at once by the next daemon of the same host (not after the lease, the
send timeout plus 5 s), the leases of other hosts are waited out, and a full disk meets
`pigeon send --queue`, `pigeon sendmail` and `pigeon daemon` with exit 75, a clear message,
the spool intact and the daemon alive and retrying.

The send timeout is set to 600 s, so a lease lasts 605 s: a daemon that waited for the
killed one's leases to expire could not finish within any of these tests' bounds.

Disk full is a real one: a 1 MiB tmpfs mounted for the test (skipped where mounting is not
allowed), filled with a file until the kernel says ENOSPC.
"""
import bisect
import json
import os
import re
import signal
import sqlite3
import subprocess
import time

import harness
import servers
from harness import test

WORKERS = 2


def make_env(port, spool_dir=None):
    d = harness.tmpdir("pigeon-recovery-")
    cfg = os.path.join(d, "config")
    with open(cfg, "w") as f:
        f.write("[account main]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = Sender <sender@pigeon.test>\ntimeout = 600\n" % port)
    os.chmod(cfg, 0o600)
    env = {"PIGEON_CONFIG": cfg, "XDG_STATE_HOME": os.path.join(d, "state"), "HOME": d,
           "PIGEON_PASSWORD": None}
    if spool_dir is not None:
        env["XDG_STATE_HOME"] = spool_dir
    return env


def spool_of(env):
    return os.path.join(env["XDG_STATE_HOME"], "pigeon", "spool.db")


def full_env(env):
    e = dict(os.environ)
    for k, v in env.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def stats(env):
    rc, out, err = harness.pigeon("queue", "stats", "--json", env=env)
    assert rc == 0, (rc, err)
    return json.loads(out)


def msgid(content):
    m = re.search(rb"^Message-ID: <(\d+)\.enqueue@pigeon\.test>", content, re.M | re.I)
    assert m, content[:300]
    return int(m.group(1))


def settle(srv, quiet=0.5, timeout=10.0):
    """Waits until the server has received nothing new for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    count, since = len(srv.messages), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if len(srv.messages) != count:
            count, since = len(srv.messages), time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return count


def fill_spool(env, count):
    os.makedirs(os.path.dirname(spool_of(env)), exist_ok=True)
    rc, out, err = harness.run_cmd([harness.build_tool("enqueue"), spool_of(env), "main",
                                    str(count)], timeout=60)
    assert rc == 0, err


def kill_mid_drain(env, srv, total):
    """Starts a daemon, SIGKILLs it once it has sent a few messages, and returns how many
    the server held by then; the spool must still hold messages in flight under the dead
    daemon's leases (or the test would prove nothing)."""
    argv = [harness.pigeon_path(), "daemon", "--workers", str(WORKERS), "--batch", "64",
            "--log-file", os.devnull]
    proc = subprocess.Popen(argv, env=full_env(env), start_new_session=True)
    harness.wait_for(lambda: len(srv.messages) >= 5 or proc.poll() is not None, 30,
                     what="the daemon to deliver")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    held = settle(srv)
    st = stats(env)
    assert held < total and st["recipients"]["inflight"] > 0, (held, st)
    return held


def daemon_once(env, log):
    rc, out, err = harness.pigeon("daemon", "--once", "--workers", str(WORKERS), "--log-file",
                                  log, env=env, timeout=60)
    assert rc == 0, (rc, err)
    with open(log) as f:
        return [json.loads(line) for line in f]


@test(timeout=90)
def killed_daemon_leases_are_taken_over_at_once():
    total = 300
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port)
        fill_spool(env, total)
        mark = kill_mid_drain(env, srv, total)
        inflight = stats(env)["recipients"]["inflight"]
        # With 605 s leases, --once finds nothing due unless the dead daemon's leases come
        # back at once.
        log = os.path.join(harness.tmpdir("log"), "events.json")
        events = daemon_once(env, log)
        settle(srv)
        received = list(srv.messages)
    assert stats(env)["messages"] == 0, stats(env)
    reclaimed = [e for e in events if e["event"] == "reclaimed"]
    assert reclaimed and sum(e["recipients"] for e in reclaimed) >= 1, events[:5]
    assert sum(e["recipients"] for e in reclaimed) <= inflight
    seen = {}
    for index, m in enumerate(received):
        run = bisect.bisect_right([mark], index)
        seen.setdefault(msgid(m.content), []).append((run, m.content))
    assert set(seen) == set(range(total)), "lost %s" % sorted(set(range(total)) - set(seen))[:5]
    dups = [mid for mid, copies in seen.items() if len(copies) > 1]
    assert len(dups) <= WORKERS, "%d messages sent twice after one kill" % len(dups)
    for mid in dups:
        runs = [run for run, _ in seen[mid]]
        assert runs == [0, 1], (mid, runs)
        assert seen[mid][0][1] == seen[mid][1][1], "a duplicate differs from its original"


@test(timeout=90)
def leases_of_another_host_are_waited_out():
    """The same crash, but the dead daemon's lease holder is recorded as being on another
    host: its process cannot be judged from here, so its messages wait for their leases
    (605 s) while the rest is delivered."""
    total = 200
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port)
        fill_spool(env, total)
        mark = kill_mid_drain(env, srv, total)
        inflight = stats(env)["recipients"]["inflight"]
        with sqlite3.connect(spool_of(env)) as db:
            assert db.execute("UPDATE holder SET host = 'elsewhere.pigeon.test'").rowcount >= 1
        log = os.path.join(harness.tmpdir("log"), "events.json")
        events = daemon_once(env, log)
        after = settle(srv)
    assert not [e for e in events if e["event"] == "reclaimed"], events[:5]
    st = stats(env)
    assert st["recipients"]["inflight"] == inflight and st["messages"] == inflight, st
    # Everything not under the other host's leases went out (at most one per worker of
    # the killed run again).
    assert total - inflight <= after - mark + inflight, (total, inflight, mark, after)


# ---- disk full ----

def small_fs(size="1m"):
    """A fresh tmpfs of `size` (unmounted at exit); Skip where mounting is not allowed."""
    d = harness.tmpdir("pigeon-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", d],
                       capture_output=True)
    if r.returncode != 0:
        raise harness.Skip("cannot mount a tmpfs here: %s" % r.stderr.decode(errors="replace"))
    harness.at_exit(lambda: subprocess.run(["umount", "-l", d], capture_output=True))
    return d


def fill_disk(d):
    """Writes a file until the file system is full; returns its path."""
    path = os.path.join(d, "filler")
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError as e:
            assert e.errno == 28, e   # ENOSPC
    return path


def check_spool(env, expect_messages):
    """The spool opens, passes SQLite's integrity check (queue list runs it), and holds
    exactly the messages expected, each readable."""
    rc, out, err = harness.pigeon("queue", "list", "--json", env=env)
    assert rc == 0, (rc, err)
    listed = json.loads(out)
    assert len(listed) == expect_messages, listed
    for m in listed:
        rc, out, err = harness.pigeon("queue", "show", m["queue_id"], "--json", env=env)
        assert rc == 0, (rc, err)
    return listed


@test(timeout=60)
def send_queue_on_a_full_disk_exits_75():
    fs = small_fs()
    env = make_env(harness.free_port(), spool_dir=fs)
    rc, out, err = harness.pigeon("send", "--queue", "--to", "a@example.org", "--subject",
                                  "first", "--text", "stored before the disk filled\n", env=env)
    assert rc == 0, (rc, err)
    filler = fill_disk(fs)
    body = os.path.join(harness.tmpdir(), "body.txt")
    with open(body, "w") as f:
        f.write("line of a long message\n" * 20000)
    rc, out, err = harness.pigeon("send", "--queue", "--to", "b@example.org", "--subject",
                                  "second", "--text-file", body, env=env)
    assert rc == 75, (rc, out, err)
    assert b"disk full" in err and b"queue" in err, err
    assert b"queued" not in out, out
    os.unlink(filler)
    [m] = check_spool(env, 1)
    assert m["counts"]["queued"] == 1


@test(timeout=60)
def sendmail_fallback_on_a_full_disk_exits_75():
    fs = small_fs()
    env = make_env(harness.free_port(), spool_dir=fs)   # nothing listens: sendmail queues
    rc, out, err = harness.pigeon("send", "--queue", "--to", "a@example.org", "--subject",
                                  "first", "--text", "stored before the disk filled\n", env=env)
    assert rc == 0, (rc, err)
    filler = fill_disk(fs)
    link = os.path.join(harness.build_dir(), "sendmail")
    msg = (b"From: cron@pigeon.test\nTo: b@example.org\nSubject: nightly\n\n" +
           b"backup done\n" * 20000)
    rc, out, err = harness.run_cmd([link, "-t", "-i"], input=msg, env=full_env(env))
    assert rc == 75, (rc, err)
    assert b"disk full" in err, err
    assert b"queued as" not in err, err
    os.unlink(filler)
    check_spool(env, 1)


@test(timeout=90)
def daemon_on_a_full_disk_stays_up_and_retries():
    """The disk is full when the daemon starts: it cannot even open the spool (SQLite's
    WAL and its index are files), says so in its log ("disk full"), stays up, and once
    room comes back it delivers everything, once."""
    fs = small_fs("2m")
    total = 20
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port, spool_dir=fs)
        fill_spool(env, total)
        filler = fill_disk(fs)
        log = os.path.join(harness.tmpdir("log"), "events.json")
        proc = harness.spawn([harness.pigeon_path(), "daemon", "--workers", str(WORKERS),
                              "--log-file", log], env=full_env(env))
        harness.wait_for(lambda: os.path.exists(log) and b"disk full" in open(log, "rb").read(),
                         20, what="the daemon to meet the full disk")
        time.sleep(1.5)
        assert proc.poll() is None, harness.read_log(proc)
        assert len(srv.messages) == 0
        os.unlink(filler)
        srv.wait_messages(total, timeout=30)
        harness.wait_for(lambda: stats(env)["messages"] == 0, 20, what="the spool to drain")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, harness.read_log(proc)
        time.sleep(0.3)
        received = list(srv.messages)
    ids = sorted(msgid(m.content) for m in received)
    assert ids == list(range(total)), ids
    events = [json.loads(line) for line in open(log)]
    failed = [e for e in events if e["level"] == "error"]
    assert failed and all("disk full" in e["text"] for e in failed), failed[:3]


if __name__ == "__main__":
    harness.run(file_timeout=300)
