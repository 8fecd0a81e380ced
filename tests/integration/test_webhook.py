"""Webhooks (issue 13): the daemon POSTs every recipient's outcome, signed, from a durable
outbox in the spool, to a receiver (hookrecv.py, on Python's http.server) that checks each
signature with Python's own hmac.

What a user would check: every event arrives (unique event ids counted) although the
receiver is down at first, then slow, then answering 500; every signature verifies; a
recipient's events arrive in the order they happened (queued before delivered); a kill -9
of the daemon in the middle loses none (duplicates are allowed: delivery is at least once,
and counted); an API key's webhook gets only its own messages' events; `pigeon webhook
test` and `pigeon webhook list` say what happened.
"""
import collections
import json
import os
import random
import signal
import subprocess
import time

import harness
import hookrecv
import pki
import servers
from harness import test

SECRET = "whsec_test_0123456789abcdef"


def make_env(smtp_port, hook_url, extra=""):
    d = harness.tmpdir("pigeon-webhook-")
    secret = os.path.join(d, "hook.secret")
    with open(secret, "w") as f:
        f.write(SECRET + "\n")
    os.chmod(secret, 0o600)
    cfg = os.path.join(d, "config")
    with open(cfg, "w") as f:
        f.write("webhook = %s\nwebhook_secret_file = %s\nwebhook_retry_max = 1s\n%s"
                "[account main]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = Sender <sender@pigeon.test>\ntimeout = 5\n"
                % (hook_url, secret, extra, smtp_port))
    os.chmod(cfg, 0o600)
    # On the PostgreSQL run (ctest integration/test_webhook_pg) a fresh database each.
    return harness.with_spool({"PIGEON_CONFIG": cfg, "XDG_STATE_HOME": os.path.join(d, "state"),
                               "HOME": d, "PIGEON_PASSWORD": None}), secret


def pg(*args, env=None, timeout=30):
    rc, out, err = harness.pigeon(*args, env=env, timeout=timeout)
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def full_env(env):
    e = dict(os.environ)
    for k, v in env.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def spool_of(env):
    return env.get("PIGEON_SPOOL") or os.path.join(env["XDG_STATE_HOME"], "pigeon", "spool.db")


def enqueue(env, *rcpts):
    args = ["send", "--queue", "--json", "--subject", "hook", "--text", "hello\n"]
    for r in rcpts:
        args += ["--to", r]
    rc, out, err = pg(*args, env=env)
    assert rc == 0, (rc, err)
    return json.loads(out)["queue_id"]


def hook_list(env):
    rc, out, err = pg("webhook", "list", "--json", env=env)
    assert rc == 0, (rc, err)
    return json.loads(out)


def start_daemon(env, log):
    argv = [harness.pigeon_path(), "daemon", "--workers", "2", "--batch", "16", "--log-file", log]
    return subprocess.Popen(argv, env=full_env(env), start_new_session=True)


def check_order(events):
    """Per recipient (queue id, address), the first arrival of each event follows the
    event ids, and queued comes first."""
    first = collections.OrderedDict()
    for e in events:
        first.setdefault(e["id"], e)
    per = collections.defaultdict(list)
    for e in first.values():
        per[(e["queue_id"], e["recipient"])].append(e)
    for key, evs in per.items():
        ids = [int(e["id"][4:]) for e in evs]
        assert ids == sorted(ids), ("out of order", key, [(e["id"], e["type"]) for e in evs])
        assert evs[0]["type"] == "queued", (key, [e["type"] for e in evs])
    return per


@test
def webhook_test_command():
    with hookrecv.Receiver(SECRET) as recv:
        env, secret = make_env(harness.free_port(), recv.url)
        rc, out, err = pg("webhook", "test", recv.url, "--secret-file", secret,
                                      env=env)
        assert rc == 0, (rc, out, err)
        assert out.startswith("HTTP 200 OK") and '{"ok":true}' in out, out
        [ev] = recv.events
        assert ev["type"] == "delivered" and ev["recipient"] == "test@example.invalid", ev
        assert recv.bad_signatures == 0
        # The configured secret is used when --secret-file is not given.
        rc, out, err = pg("webhook", "test", recv.url, env=env)
        assert rc == 0 and len(recv.events) == 2, (rc, err)
        # A receiver answering 500: said, and exit 69.
        recv.fail_next = 1
        rc, out, err = pg("webhook", "test", recv.url, env=env)
        assert rc == 69 and out.startswith("HTTP 500"), (rc, out, err)
        # A wrong secret: the receiver refuses it (401), as a user's receiver would.
        bad = os.path.join(os.path.dirname(secret), "other.secret")
        with open(bad, "w") as f:
            f.write("not-the-secret\n")
        os.chmod(bad, 0o600)
        rc, out, err = pg("webhook", "test", recv.url, "--secret-file", bad, env=env)
        assert rc == 69 and out.startswith("HTTP 401") and recv.bad_signatures == 1, (rc, out)
        # A chunked answer with an extension and a trailer, on the kept connection.
        recv.chunked = True
        rc, out, err = pg("webhook", "test", recv.url, env=env)
        assert rc == 0 and '{"ok":true}' in out, (rc, out, err)
    # https: verified against the configured CA; refused without it.
    leaf = pki.get().localhost
    with hookrecv.Receiver(SECRET, tls=servers.server_context(leaf)) as recv:
        env, secret = make_env(1, recv.url, extra="webhook_ca_file = %s\n" % leaf.ca)
        rc, out, err = pg("webhook", "test", recv.url, env=env)
        assert rc == 0 and out.startswith("HTTP 200"), (rc, out, err)
        assert len(recv.events) == 1 and recv.bad_signatures == 0
        env, secret = make_env(1, recv.url)
        rc, out, err = pg("webhook", "test", recv.url, env=env)
        assert rc == 69 and "certif" in err, (rc, out, err)
        assert len(recv.events) == 1
    # Bad input: a clear error and a sysexits code, never a crash.
    for url, code in (("ftp://x.example/", 64), ("http://user:pw@x.example/", 64),
                      ("http://x.example/a b", 64)):
        rc, out, err = pg("webhook", "test", url, env=env)
        assert rc == code and "webhook test" in err, (url, rc, err)
    rc, out, err = pg("webhook", "test", "http://127.0.0.1:%d/" % harness.free_port(),
                                  "--secret-file", secret, env=env)
    assert rc in (69, 75) and "webhook test" in err, (rc, err)
    env2, _ = make_env(1, "http://127.0.0.1:1/x")
    rc, out, err = pg("webhook", "test", "http://other.example/", env=env2)
    assert rc == 78 and "no secret" in err, (rc, err)


@test
def bad_webhook_config_is_refused():
    env, secret = make_env(harness.free_port(), "http://127.0.0.1:1/", extra="webhook_events = "
                           "delivered,bouncd\n")
    rc, out, err = pg("daemon", "--once", env=env)
    assert rc == 78 and "bouncd" in err and ":4:" in err, (rc, err)
    env, secret = make_env(harness.free_port(), "gopher://x/")
    rc, out, err = pg("webhook", "list", env=env)
    assert rc == 78 and "http://" in err, (rc, err)


@test(timeout=120)
def every_event_arrives_through_down_slow_and_500():
    """The receiver is down while the daemon delivers, then answers 500 three times, then
    is slow: every event arrives once it is back, signatures verify, in order."""
    hook_port = harness.free_port()
    recv = hookrecv.Receiver(SECRET, port=hook_port)
    with servers.AioSmtpd(reject_rcpt={"bad@example.org": "550 5.1.1 no such user"}) as srv:
        env, _ = make_env(srv.port, recv.url, extra="webhook_batch = 8\n")
        log = os.path.join(harness.tmpdir("log"), "events.json")
        proc = start_daemon(env, log)
        try:
            harness.wait_for(lambda: os.path.exists(log) and b'"start"' in open(log, "rb").read(),
                             20, what="the daemon to start")
            qids = [enqueue(env, "a%d@example.org" % i, "bad@example.org") for i in range(10)]
            harness.wait_for(lambda: len(srv.messages) == 10, 30, what="the deliveries")
            time.sleep(1.0)   # the daemon tries the receiver, which is down
            down = hook_list(env)["webhooks"][0]
            assert down["pending"] > 0 and down["failures"] >= 1, down
            assert "refused" in (down["last_error"] or "") or down["last_error"], down
            recv.fail_next = 3
            recv.delay = 0.2
            recv.start()
            expected = 10 * 4   # per message: 2 queued, 1 delivered, 1 failed
            harness.wait_for(lambda: len(recv.unique_ids()) >= expected, 60,
                             what="every event (got %d)" % len(recv.unique_ids()))
            recv.delay = 0
            harness.wait_for(lambda: hook_list(env)["webhooks"][0]["pending"] == 0, 20,
                             what="the outbox to drain")
            listed = hook_list(env)["webhooks"][0]
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20)
            recv.stop()
        assert code == 0, code
    events = recv.snapshot()
    assert len({e["id"] for e in events}) == expected, len(events)
    assert recv.bad_signatures == 0
    statuses = [p[0] for p in recv.posts]
    assert statuses[:3] == [500, 500, 500] and 200 in statuses, statuses
    assert any(p[1] > 1 for p in recv.posts if p[0] == 200), "never batched"
    per = check_order(events)
    assert set(q for q, _ in per) == set(qids)
    for (qid, rcpt), evs in per.items():
        types = [e["type"] for e in evs]
        if rcpt == "bad@example.org":
            assert types == ["queued", "failed"], types
            assert evs[1]["smtp_code"] == 550 and evs[1]["enhanced_code"] == "5.1.1", evs[1]
            assert "no such user" in evs[1]["reply"], evs[1]
        else:
            assert types == ["queued", "delivered"], types
            assert evs[1]["smtp_code"] == 250 and evs[1]["attempts"] == 1, evs[1]
        assert all(e["account"] == "main" and e["api_key"] is None for e in evs), evs
        assert all(e["message_id"] for e in evs), evs
    assert listed["delivered"] >= expected and listed["failed"] == 0, listed


@test(timeout=120)
def kill_9_loses_no_event():
    """Messages are enqueued while a daemon delivers them and posts their events to a slow
    receiver; the daemon is SIGKILLed at random moments and restarted. Every event arrives
    (duplicates allowed and counted), in order per recipient."""
    n = 120
    rnd = random.Random(13)
    tool = harness.build_tool("enqueue")
    with hookrecv.Receiver(SECRET) as recv, servers.AioSmtpd() as srv:
        recv.delay = 0.01
        env, _ = make_env(srv.port, recv.url, extra="webhook_batch = 20\n")
        log = os.path.join(harness.tmpdir("log"), "events.json")
        proc = start_daemon(env, log)
        harness.wait_for(lambda: os.path.exists(log) and b'"start"' in open(log, "rb").read(),
                         20, what="the daemon to start")
        rc, out, err = harness.run_cmd([tool, spool_of(env), "main", str(n), "50"], timeout=60)
        assert rc == 0, err
        for _ in range(4):
            time.sleep(rnd.uniform(0.1, 0.5))
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            proc = start_daemon(env, log)
        try:
            harness.wait_for(lambda: len(recv.unique_ids()) >= 2 * n, 60,
                             what="every event (got %d)" % len(recv.unique_ids()))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
    events = recv.snapshot()
    ids = [e["id"] for e in events]
    assert len(set(ids)) == 2 * n, len(set(ids))
    assert recv.bad_signatures == 0
    per = check_order(events)
    assert len(per) == n
    for key, evs in per.items():
        assert [e["type"] for e in evs] == ["queued", "delivered"], (key, evs)
    print("kill_9_loses_no_event: %d events, %d posts, %d duplicates"
          % (len(set(ids)), len(recv.posts), len(ids) - len(set(ids))))


@test(timeout=60)
def api_key_webhook_gets_only_its_events():
    """A key's webhook gets the events of the messages that key submitted over the HTTP
    API, with its id; the global webhook gets those and the others."""
    with hookrecv.Receiver(SECRET) as everyone, servers.AioSmtpd() as srv:
        env, _ = make_env(srv.port, everyone.url)
        d = os.path.dirname(env["PIGEON_CONFIG"])
        key_secret = os.path.join(d, "key.secret")
        with open(key_secret, "w") as f:
            f.write("whsec_key_secret\n")
        os.chmod(key_secret, 0o600)
        with hookrecv.Receiver("whsec_key_secret") as mine:
            rc, out, err = pg("key", "create", "--account", "main", "--webhook",
                                          mine.url, "--webhook-secret-file", key_secret,
                                          "--webhook-events", "queued,delivered", env=env)
            assert rc == 0, err
            key = out.split()[0]
            key_id = key.split("_")[1]
            # Without a secret file: one is made and printed once, after the key.
            rc, out, err = pg("key", "create", "--account", "main", "--webhook",
                                          "https://other.example/h", env=env)
            assert rc == 0 and out.split("\n")[1].startswith("whsec_"), (rc, out, err)
            port = harness.free_port()
            serve = harness.spawn([harness.pigeon_path(), "serve", "--http-listen",
                                   "127.0.0.1:%d" % port], env=full_env(env))
            harness.wait_port(port, proc=serve)
            import urllib.request
            req = urllib.request.Request(
                "http://127.0.0.1:%d/v1/messages" % port, method="POST",
                data=json.dumps({"from": "sender@pigeon.test", "to": ["k@example.org"],
                                 "subject": "api", "text": "hi"}).encode(),
                headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
            api_qid = json.load(urllib.request.urlopen(req))["id"]
            harness.stop(serve)
            other_qid = enqueue(env, "o@example.org")
            log = os.path.join(harness.tmpdir("log"), "events.json")
            proc = start_daemon(env, log)
            try:
                harness.wait_for(lambda: len(everyone.unique_ids()) >= 4 and
                                 len(mine.unique_ids()) >= 2, 30, what="the events")
                time.sleep(0.5)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
        got = [(e["queue_id"], e["type"], e["api_key"]) for e in mine.snapshot()]
        assert got == [(api_qid, "queued", key_id), (api_qid, "delivered", key_id)], got
        assert mine.bad_signatures == 0 and everyone.bad_signatures == 0
        seen = {(e["queue_id"], e["type"]) for e in everyone.snapshot()}
        assert seen == {(api_qid, "queued"), (api_qid, "delivered"), (other_qid, "queued"),
                        (other_qid, "delivered")}, seen
        listed = {w["api_key"]: w for w in hook_list(env)["webhooks"]}
        assert len(listed) == 3 and listed[None]["delivered"] == 4, listed
        assert listed[key_id]["pending"] == 0 and listed[key_id]["delivered"] == 2, listed


if __name__ == "__main__":
    harness.run()
