"""`pigeon send --queue` and `pigeon queue` (issue 5).

A queued message is stored with its envelope and account, and its id is printed only
after the store is durable. What the user checks: the id printed is the one `queue list`
and `queue show` find, with the right envelope (Bcc included in the envelope, never in
the header), recipients in state "queued"; delete, stats and the --json forms; what
cannot be queued (connection options on the command line, no account) is refused
before anything is stored. kill -9 during `pigeon send --queue`: either an id was
printed and the message is in the spool whole (tool_spool dump re-reads every body
through its SHA-256 and runs SQLite's integrity check), or nothing was printed and at
most the one message being committed is there.
"""
import json
import os
import random
import signal
import stat
import subprocess
import time

import harness
from harness import test


def make_env(port=1, extra="", head=""):
    """A private configuration with account "main" pointing at 127.0.0.1:port, and a
    fresh state directory (the default spool lives there)."""
    d = harness.tmpdir("pigeon-queue-")
    cfg = os.path.join(d, "config")
    with open(cfg, "w") as f:
        f.write(head + "[account main]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = Sender <sender@pigeon.test>\ntimeout = 5\n%s" % (port, extra))
    os.chmod(cfg, 0o600)
    return harness.with_spool({"PIGEON_CONFIG": cfg, "XDG_STATE_HOME": os.path.join(d, "state"),
                               "HOME": d, "PIGEON_PASSWORD": None})


def spool_of(env):
    """The spool: the default file, or the PostgreSQL database of a _pg run."""
    return env.get("PIGEON_SPOOL") or os.path.join(env["XDG_STATE_HOME"], "pigeon", "spool.db")


def queue_json(env, *args, rc_expected=0):
    rc, out, err = harness.pigeon("queue", *args, "--json", env=env)
    assert rc == rc_expected, (args, rc, err)
    return json.loads(out) if rc == 0 else None


def enqueue(env, *more):
    rc, out, err = harness.pigeon("send", "--queue", "--json", "--to", "a@example.org",
                                  "--subject", "queued", "--text", "hello\n", *more, env=env)
    assert rc == 0, (rc, err)
    r = json.loads(out)
    assert r["status"] == "queued" and len(r["queue_id"]) == 26, r
    return r


@test
def send_queue_prints_id_and_stores_envelope():
    env = make_env()
    r = enqueue(env, "--cc", "b@example.org", "--bcc", "hidden@example.org")
    if not harness.pg_url():  # the spool's folder (a file spool only)
        st = os.stat(os.path.dirname(spool_of(env)))
        assert stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
    shown = queue_json(env, "show", r["queue_id"])
    assert shown["queue_id"] == r["queue_id"] and shown["account"] == "main"
    assert shown["mail_from"] == "sender@pigeon.test", shown
    assert shown["message_id"] == r["message_id"], shown
    addrs = [x["address"] for x in shown["recipients"]]
    assert addrs == ["a@example.org", "b@example.org", "hidden@example.org"], addrs
    assert all(x["state"] == "queued" and x["attempts"] == 0 for x in shown["recipients"])
    assert shown["counts"]["queued"] == 3 and shown["size"] > 100, shown
    # Text form names the id too.
    rc, out, err = harness.pigeon("send", "--queue", "--to", "c@example.org", "--subject", "t",
                                  "--text", "x", env=env)
    assert rc == 0 and out.startswith(b"queued "), (rc, out, err)
    listed = queue_json(env, "list")
    assert [m["queue_id"] for m in listed][0] == r["queue_id"] and len(listed) == 2, listed


@test
def list_delete_stats():
    env = make_env()
    ids = [enqueue(env)["queue_id"] for _ in range(3)]
    stats = queue_json(env, "stats")
    assert stats["messages"] == 3 and stats["recipients"]["queued"] == 3, stats
    assert stats["oldest_pending"] is not None and stats["oldest_pending_age_seconds"] >= 0
    rc, out, err = harness.pigeon("queue", "delete", ids[1], env=env)
    assert rc == 0, err
    assert [m["queue_id"] for m in queue_json(env, "list")] == [ids[0], ids[2]]
    rc, out, err = harness.pigeon("queue", "show", ids[1], env=env)
    assert rc == 66 and b"no message" in err, (rc, err)
    assert queue_json(env, "stats")["recipients"]["queued"] == 2
    # retry of queued (not deferred) mail changes nothing; purge needs --failed.
    assert queue_json(env, "retry", "--all")["count"] == 0
    rc, out, err = harness.pigeon("queue", "purge", env=env)
    assert rc == 64, (rc, err)
    assert queue_json(env, "purge", "--failed")["count"] == 0
    assert len(queue_json(env, "list")) == 2


@test
def list_filters_by_account_and_text_output():
    env = make_env(head="default_account = main\n", extra="[account other]\nhost = 127.0.0.1\nport = 1\ntls = none\n"
                         "from = o@pigeon.test\n")
    a = enqueue(env)["queue_id"]
    b = enqueue(env, "--account", "other")["queue_id"]
    assert [m["queue_id"] for m in queue_json(env, "list", "--account", "other")] == [b]
    rc, out, err = harness.pigeon("queue", "list", env=env)
    assert rc == 0 and a.encode() in out and b.encode() in out, out
    rc, out, err = harness.pigeon("queue", "show", a, env=env)
    assert rc == 0 and b"queued" in out and b"a@example.org" in out, out


@test
def refused_before_anything_is_stored():
    env = make_env()
    rc, out, err = harness.pigeon("send", "--queue", "--host", "127.0.0.1", "--to",
                                  "a@example.org", "--text", "x", env=env)
    assert rc == 64 and b"--host" in err, (rc, err)
    rc, out, err = harness.pigeon("send", "--queue", "--to", "a@example.org", "--text", "x",
                                  "--account", "nope", env=env)
    assert rc == 78, (rc, err)
    noconf = dict(env, PIGEON_CONFIG=None, XDG_CONFIG_HOME=harness.tmpdir("xdg"))
    rc, out, err = harness.pigeon("send", "--queue", "--from", "a@pigeon.test", "--to",
                                  "a@example.org", "--text", "x", env=noconf)
    assert rc == 78 and b"account" in err, (rc, err)
    assert not os.path.exists(spool_of(env)), "a refused message created the spool"
    rc, out, err = harness.pigeon("queue", "list", env=env)
    assert rc == 66 and b"no spool" in err, (rc, err)


@test
def explicit_spool_path():
    env = make_env()
    path = os.path.join(harness.tmpdir("spool"), "q.db")
    rc, out, err = harness.pigeon("send", "--queue", "--spool", path, "--to", "a@example.org",
                                  "--text", "x", env=env)
    assert rc == 0, err
    qid = out.split()[1].decode()
    rc, out, err = harness.pigeon("queue", "show", qid, "--spool", path, "--json", env=env)
    assert rc == 0 and json.loads(out)["queue_id"] == qid
    assert not os.path.exists(spool_of(env))


@test(timeout=90)
def kill_9_during_send_queue():
    """Either the id was printed and the message is there whole, or it was not printed
    and at most this one message (committed just before the kill) is there."""
    tool = harness.build_tool("spool")
    env = make_env()
    big = os.path.join(harness.tmpdir("att"), "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024))   # several spool chunks, a wider window
    rnd = random.Random(5)
    promised, runs = set(), 12
    full_env = dict(os.environ)
    full_env.update({k: v for k, v in env.items() if v is not None})
    full_env.pop("PIGEON_PASSWORD", None)
    before = set()
    for i in range(runs):
        proc = subprocess.Popen([harness.pigeon_path(), "send", "--queue", "--to",
                                 "a@example.org", "--text", "x", "--attach", big],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                                start_new_session=True)
        time.sleep(rnd.uniform(0.0, 0.4))
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate(timeout=30)
        printed = out.split()[1].decode() if out.startswith(b"queued ") else None
        stored = set()
        # (a PostgreSQL spool is a URL, and holds no spool before the first send's migration)
        if "PIGEON_SPOOL" in env or os.path.exists(spool_of(env)):
            rc, dump, derr = harness.run_cmd([tool, "dump", spool_of(env)], timeout=60)
            assert rc == 0 or b"no spool yet" in derr, derr
            stored = {line.split()[0] for line in dump.decode().splitlines()} if rc == 0 else set()
        new = stored - before
        if printed:
            promised.add(printed)
            assert printed in stored, "printed %s but it is not stored" % printed
        assert len(new) <= 1, "one send stored %d messages" % len(new)
        assert promised <= stored
        before = stored
    print("kill_9_during_send_queue: %d of %d runs printed an id" % (len(promised), runs))


if __name__ == "__main__":
    harness.run()
