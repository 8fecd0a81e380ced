"""The PostgreSQL spool under faults (issue 11), against a real PostgreSQL 15 this file
starts (pgserver.py) and an aiosmtpd sink that counts what arrives:

- three daemons (three "hosts": distinct processes, so distinct lease owners and holders)
  drain one queue: every message arrives exactly once, and each daemon sends a share;
- `pg_ctl restart -m immediate` (a crash of the server) in the middle of a drain: nothing
  is lost, and a message is sent again only if it was in flight (its outcome not yet
  flushed by the server: at most one batch per worker, --batch 8 here);
- the server stopped for a while in the middle of a drain (PIGEON_PG_OUTAGE_SECONDS, 5 s
  here, 20 s in `make bench`): the daemon keeps its outcomes and records them once the
  server is back; nothing lost, nothing sent twice;
- the server crashing in the middle of `pigeon send --queue` calls: every id printed is in
  the spool afterwards, and a call that failed said so with exit 75 (try again later).

kill -9 of a daemon mid-drain runs in test_daemon.py, which runs against PostgreSQL too
(integration/test_daemon_pg).
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import pgserver  # noqa: E402
import servers  # noqa: E402
from harness import test  # noqa: E402

OUTAGE = float(os.environ.get("PIGEON_PG_OUTAGE_SECONDS", "5"))
SERVER = None


def server():
    global SERVER
    if SERVER is None:
        SERVER = pgserver.PgServer()
        SERVER.start()
        harness.at_exit(SERVER.cleanup)
        os.environ["PGPASSFILE"] = SERVER.passfile
    return SERVER


def make_env(port):
    d = harness.tmpdir("pigeon-pgfault-")
    cfg = os.path.join(d, "config")
    with open(cfg, "w") as f:
        f.write("[account main]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = Sender <sender@pigeon.test>\ntimeout = 5\n" % port)
    os.chmod(cfg, 0o600)
    env = dict(os.environ)
    env.update({"PIGEON_CONFIG": cfg, "XDG_STATE_HOME": os.path.join(d, "state"), "HOME": d,
                "PIGEON_SPOOL": server().new_database()})
    env.pop("PIGEON_PASSWORD", None)
    return env


def fill(env, n):
    rc, out, err = harness.run_cmd([harness.build_tool("enqueue"), env["PIGEON_SPOOL"], "main",
                                    str(n)], env=env, timeout=60)
    assert rc == 0, err


def stats(env):
    rc, out, err = harness.pigeon("queue", "stats", "--json", env=env)
    return json.loads(out) if rc == 0 else None


def msgid(content):
    m = re.search(rb"^Message-ID: <(\d+)\.enqueue@pigeon\.test>", content, re.M | re.I)
    assert m, content[:300]
    return int(m.group(1))


def daemon(env, log, workers=2, batch=8):
    return harness.spawn([harness.pigeon_path(), "daemon", "--workers", str(workers), "--batch",
                          str(batch), "--log-file", log], env=env)


def drained(env):
    s = stats(env)
    return s is not None and s["messages"] == 0


def stop_all(procs):
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        assert p.wait(30) == 0, harness.read_log(p)[-2000:]


def copies(srv, total):
    seen = {}
    for m in list(srv.messages):
        seen[msgid(m.content)] = seen.get(msgid(m.content), 0) + 1
    missing = set(range(total)) - set(seen)
    assert not missing, "lost %d messages, e.g. %s" % (len(missing), sorted(missing)[:5])
    return sum(c - 1 for c in seen.values())


@test(timeout=120)
def three_daemons_share_one_queue():
    total = 360
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port)
        fill(env, total)
        logs = [os.path.join(harness.tmpdir("log"), "d%d.json" % i) for i in range(3)]
        procs = [daemon(env, log) for log in logs]
        harness.wait_for(lambda: drained(env) and len(srv.messages) >= total, 90,
                         what="three daemons to drain the queue")
        stop_all(procs)
        dups = copies(srv, total)
    assert dups == 0, "%d messages sent twice by daemons that did not crash" % dups
    shares = []
    for log in logs:
        with open(log, "rb") as f:
            shares.append(sum(1 for line in f if b'"delivered"' in line))
    assert sum(shares) == total, shares
    assert min(shares) >= total // 20, "the load was not spread: %s" % shares
    print("three_daemons_share_one_queue: shares %s" % shares)


def drain_through(fault, total=240, workers=2, batch=8):
    """Starts a daemon, applies fault() once messages flow, and waits for the drain;
    returns the number of duplicates at the sink (after checking nothing was lost)."""
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port)
        fill(env, total)
        log = os.path.join(harness.tmpdir("log"), "events.json")
        proc = daemon(env, log, workers, batch)
        harness.wait_for(lambda: len(srv.messages) >= 30, 30, what="the first deliveries")
        fault()
        harness.wait_for(lambda: drained(env) and len(srv.messages) >= total, 120,
                         what="the drain after the fault")
        time.sleep(0.5)
        stop_all([proc])
        return copies(srv, total)


@test(timeout=180)
def server_crash_mid_drain():
    workers, batch = 2, 8
    dups = drain_through(server().restart_immediate, workers=workers, batch=batch)
    assert dups <= workers * batch, "%d duplicates after a server crash" % dups
    print("server_crash_mid_drain: %d duplicates (at most one batch per worker allowed)" % dups)


@test(timeout=240)
def server_down_mid_drain():
    def outage():
        server().stop("fast")
        time.sleep(OUTAGE)
        server().pg_ctl("start")
    workers = 2
    dups = drain_through(outage, workers=workers)
    assert dups <= workers, "%d duplicates after a %g s outage" % (dups, OUTAGE)
    print("server_down_mid_drain: %g s outage, %d duplicates" % (OUTAGE, dups))


@test(timeout=180)
def server_crash_mid_enqueue():
    env = make_env(1)
    harness.pigeon("queue", "migrate", env=env)
    results = []

    def sender():
        for i in range(40):
            rc, out, err = harness.pigeon("send", "--queue", "--json", "--to",
                                          "a%d@example.org" % i, "--subject", "s%d" % i,
                                          "--text", "hello\n", env=env)
            results.append((rc, out, err))

    t = threading.Thread(target=sender)
    t.start()
    harness.wait_for(lambda: len(results) >= 8, 60, what="the first enqueues")
    server().restart_immediate()
    t.join(120)
    ok = [json.loads(out)["queue_id"] for rc, out, _ in results if rc == 0]
    failed = [(rc, err) for rc, _, err in results if rc != 0]
    assert all(rc == 75 for rc, _ in failed), failed
    for qid in ok:
        rc, out, err = harness.pigeon("queue", "show", qid, "--json", env=env)
        assert rc == 0, "queue id %s was printed but is not in the spool: %s" % (qid, err)
    assert len(ok) >= 20, (len(ok), failed[:3])
    print("server_crash_mid_enqueue: %d stored, %d refused with 75" % (len(ok), len(failed)))


@test(timeout=120)
def api_answers_503_while_the_server_is_down():
    """pigeon serve on PostgreSQL: 503 with Retry-After while the database is down (nothing
    stored, the client retries with its Idempotency-Key), 202 again once it is back; the
    retried request is stored once."""
    from servetool import MSG, Serve, new_key
    env = make_env(1)
    env = {k: v for k, v in env.items() if k in ("PIGEON_CONFIG", "XDG_STATE_HOME", "HOME",
                                                    "PIGEON_SPOOL", "PGPASSFILE")}
    with open(env["PIGEON_CONFIG"], "a") as f:
        f.write("from = App <app@shop.test>\n")
    key = new_key(env, "--account", "main", "--from-domain", "shop.test")
    s = Serve(env)
    try:
        code, _, doc = s.request("POST", "/v1/messages", MSG, key,
                                 headers={"Idempotency-Key": "k1"})
        assert code == 202, (code, doc)
        server().stop("fast")
        try:
            code, hdrs, doc = s.request("POST", "/v1/messages", dict(MSG, subject="two"), key,
                                        headers={"Idempotency-Key": "k2"})
            assert code == 503 and int(hdrs["Retry-After"]) >= 1, (code, doc)
        finally:
            server().pg_ctl("start")
        def stored():
            c, _, d = s.request("POST", "/v1/messages", dict(MSG, subject="two"), key,
                                headers={"Idempotency-Key": "k2"})
            return c == 202
        harness.wait_for(stored, 30, what="202 once PostgreSQL is back")
        code, _, doc = s.request("POST", "/v1/messages", dict(MSG, subject="two"), key,
                                 headers={"Idempotency-Key": "k2"})
        assert code == 202, (code, doc)
    finally:
        s.stop()
    assert stats(dict(os.environ, **env))["messages"] == 2


@test(timeout=60)
def newer_schema_refused_and_password_kept_off_argv():
    env = make_env(1)
    rc, out, err = harness.pigeon("queue", "migrate", env=env)
    assert rc == 0, err
    url = env["PIGEON_SPOOL"]
    harness.pg_query(url, "INSERT INTO schema_version VALUES (99, 0)")
    rc, out, err = harness.pigeon("queue", "stats", env=env)
    assert rc == 74 and b"newer than this pigeon" in err, (rc, err)
    secret = url.replace("pigeon@", "pigeon:hunter2@")
    rc, out, err = harness.pigeon("queue", "stats", "--spool", secret, env=env)
    assert rc == 64 and b"pgpass" in err and b"hunter2" not in err, (rc, err)
    # A wrong password (from the environment, as libpq allows) is never echoed.
    env2 = dict(env, PGPASSWORD="wrong-pw-xyz", PGPASSFILE="/nonexistent")
    rc, out, err = harness.pigeon("queue", "stats", env=env2)
    assert rc == 75 and b"wrong-pw-xyz" not in err, (rc, err)


if __name__ == "__main__":
    harness.run(timeout=240, file_timeout=290)
