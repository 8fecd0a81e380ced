"""`pigeon daemon` drains the spool (issue 5), against real and scripted servers.

What is checked is what a user would check: the RCPT lines and messages the server
received, the recipients' states read back with `pigeon queue show --json`, the event log
parsed as JSON, and /metrics parsed by prometheus_client's own parser. Time is moved by
the spool (`pigeon queue retry --all` makes deferred mail due now), never by sleeping.

The kill -9 test enqueues KILL_MESSAGES messages (300 by default; set
PIGEON_DAEMON_KILL_MESSAGES=2000 for the full run of the issue), runs
`pigeon daemon --workers 2 --batch 16` against aiosmtpd and SIGKILLs it at random moments
KILLS times, restarting it, until the spool is drained. Every message must arrive at least
once. A worker records each message's outcome as soon as the reply to its final dot is
read (issue 12), so a message can only be duplicated when its final dot was answered (the
server has a copy) and the process died before writing the outcome: each copy is
attributed to the daemon run that sent it, no run sends a message twice, a killed run has
at most one message per worker sent again later, and each duplicate carries the same
bytes (so the same Message-ID) as the first copy.
"""
import bisect
import json
import os
import random
import re
import signal
import subprocess
import time
import urllib.request

import harness
import servers
from harness import test

KILLS = 5
KILL_MESSAGES = int(os.environ.get("PIGEON_DAEMON_KILL_MESSAGES", "300"))


def make_env(port, extra="", head=""):
    d = harness.tmpdir("pigeon-daemon-")
    cfg = os.path.join(d, "config")
    with open(cfg, "w") as f:
        f.write(head + "[account main]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = Sender <sender@pigeon.test>\ntimeout = 2\n%s" % (port, extra))
    os.chmod(cfg, 0o600)
    return harness.with_spool({"PIGEON_CONFIG": cfg, "XDG_STATE_HOME": os.path.join(d, "state"),
                               "HOME": d, "PIGEON_PASSWORD": None})


def spool_of(env):
    """The spool: the default file, or the PostgreSQL database of a _pg run."""
    return env.get("PIGEON_SPOOL") or os.path.join(env["XDG_STATE_HOME"], "pigeon", "spool.db")


def enqueue(env, *rcpts, subject="queued"):
    args = ["send", "--queue", "--json", "--subject", subject, "--text", "hello\n"]
    for r in rcpts:
        args += ["--to", r]
    rc, out, err = harness.pigeon(*args, env=env)
    assert rc == 0, (rc, err)
    return json.loads(out)["queue_id"]


def queue_json(env, *args):
    rc, out, err = harness.pigeon("queue", *args, "--json", env=env)
    assert rc == 0, (args, rc, err)
    return json.loads(out)


def daemon_once(env, *more, workers=1):
    log = os.path.join(harness.tmpdir("log"), "events.json")
    rc, out, err = harness.pigeon("daemon", "--once", "--workers", str(workers), "--log-file",
                                  log, *more, env=env, timeout=60)
    assert rc == 0, (rc, err)
    with open(log) as f:
        events = [json.loads(line) for line in f]
    return [e for e in events if e["event"] == "delivery"]


def rcpt_lines(srv):
    return [c for c in srv.commands() if c.upper().startswith(b"RCPT TO:")]


def full_env(env):
    e = dict(os.environ)
    e.update({k: v for k, v in env.items() if v is not None})
    for k, v in env.items():
        if v is None:
            e.pop(k, None)
    return e


@test
def deferred_recipient_is_retried_alone():
    """451 for one of two recipients: that one is deferred (not due for minutes); after
    `queue retry --all` the next pass sends to it alone: the recipient accepted the first
    time is not sent again."""
    s0 = servers.default_session(rcpt=["250 2.1.5 ok", "451 4.3.0 mailbox busy"])
    s1 = servers.default_session(rcpt=["250 2.1.5 ok"])
    with servers.ScriptedServer(scripts=[s0, s1]) as srv:
        env = make_env(srv.port)
        qid = enqueue(env, "a@example.org", "b@example.org")
        events = daemon_once(env)
        srv.wait_done(1)
        shown = queue_json(env, "show", qid)
        states = {r["address"]: r for r in shown["recipients"]}
        assert states["a@example.org"]["state"] == "delivered", shown
        b = states["b@example.org"]
        assert b["state"] == "deferred" and b["code"] == 451 and b["attempts"] == 1, b
        assert b["enhanced_code"] == "4.3.0" and b["next_attempt"] is not None, b
        res = {e["rcpt"]: e for e in events}
        assert res["a@example.org"]["result"] == "delivered", events
        assert res["b@example.org"]["result"] == "deferred" and res["b@example.org"]["code"] == 451
        assert res["b@example.org"]["next_attempt"] and res["b@example.org"]["attempt"] == 1
        # Not due yet: a second pass connects to nobody.
        assert daemon_once(env) == []
        assert len(srv.connections) == 1
        assert queue_json(env, "retry", "--all")["count"] == 1
        events = daemon_once(env)
        srv.wait_done(2)
        assert [(e["rcpt"], e["result"], e["attempt"]) for e in events] == \
            [("b@example.org", "delivered", 2)], events
        srv.check()
    lines = rcpt_lines(srv)
    assert lines == [b"RCPT TO:<a@example.org>", b"RCPT TO:<b@example.org>",
                     b"RCPT TO:<b@example.org>"], lines
    assert len(srv.data) == 2
    assert queue_json(env, "stats")["messages"] == 0


@test
def permanent_rejection_fails_and_is_not_retried():
    with servers.AioSmtpd(reject_rcpt={"bad@example.org": "550 5.1.1 no such user"}) as srv:
        env = make_env(srv.port)
        qid = enqueue(env, "bad@example.org")
        events = daemon_once(env)
        assert [(e["result"], e["code"], e["enhanced_code"]) for e in events] == \
            [("failed", 550, "5.1.1")], events
        [r] = queue_json(env, "show", qid)["recipients"]
        assert r["state"] == "failed" and r["code"] == 550 and "no such user" in r["text"], r
        assert queue_json(env, "retry", "--all")["count"] == 0   # failed is final
        assert daemon_once(env) == []
        assert srv.messages == []
        assert queue_json(env, "purge", "--failed")["count"] == 1
        assert queue_json(env, "list") == []


@test
def throttling_421_slows_the_whole_account():
    """421 "too many connections" defers the message and throttles the account in the
    spool: the second message of the account is not tried in the same pass."""
    script = [servers.greet(), ("expect", rb"^EHLO "), ("send", servers.ehlo_reply()),
              ("expect", rb"^MAIL FROM:"),
              ("send", b"421 4.7.0 too many connections from your IP\r\n"), ("close",)]
    with servers.ScriptedServer(scripts=[script]) as srv:
        env = make_env(srv.port)
        first = enqueue(env, "a@example.org")
        second = enqueue(env, "b@example.org")
        events = daemon_once(env)
        assert [(e["rcpt"], e["result"], e["code"]) for e in events] == \
            [("a@example.org", "deferred", 421)], events
        assert len(srv.connections) == 1 and srv.extra_connections == 0
        stats = queue_json(env, "stats")
        assert stats["throttled_accounts"] == 1 and stats["recipients"]["queued"] == 1, stats
        assert queue_json(env, "show", second)["recipients"][0]["attempts"] == 0
        assert queue_json(env, "show", first)["recipients"][0]["state"] == "deferred"


@test
def daily_limit_stops_the_account_for_the_day():
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port, extra="daily_limit = 2\nrate_per_second = 50\n"
                                       "max_connections = 1\n")
        for i in range(4):
            enqueue(env, "r%d@example.org" % i)
        events = daemon_once(env, workers=3)
        assert [e["result"] for e in events] == ["delivered"] * 2, events
        assert len(srv.wait_messages(2)) == 2
        stats = queue_json(env, "stats")
        assert stats["throttled_accounts"] == 1 and stats["recipients"]["queued"] == 2, stats
        assert len(srv.messages) == 2


@test
def refused_connection_is_deferred_then_delivered():
    port = harness.free_port()
    env = make_env(port)
    qid = enqueue(env, "a@example.org", subject="after the outage")
    events = daemon_once(env)
    assert [(e["result"], e["class"]) for e in events] == [("deferred", "network")], events
    assert queue_json(env, "show", qid)["recipients"][0]["state"] == "deferred"
    with servers.AioSmtpd(port=port) as srv:
        assert queue_json(env, "retry", qid)["count"] == 1
        events = daemon_once(env)
        assert [e["result"] for e in events] == ["delivered"], events
        [m] = srv.wait_messages(1)
        assert m.message["Subject"] == "after the outage" and m.rcpt_tos == ["a@example.org"]
        assert m.mail_from == "sender@pigeon.test"


@test
def connection_is_reused_with_rset():
    """Three messages, one worker: one connection, RSET between the transactions."""
    one = [("expect", rb"^MAIL FROM:"), ("send", b"250 2.1.0 ok\r\n"),
           ("expect", rb"^RCPT TO:"), ("send", b"250 2.1.5 ok\r\n"),
           ("expect", rb"^DATA"), ("send", b"354 go\r\n"), ("recv_data",),
           ("send", b"250 2.0.0 queued\r\n")]
    rset = [("expect", rb"^RSET"), ("send", b"250 2.0.0 ok\r\n")]
    script = [servers.greet(), ("expect", rb"^EHLO "), ("send", servers.ehlo_reply())]
    script += one + rset + one + rset + one
    script += [("expect", rb"^QUIT"), ("send", b"221 bye\r\n"), ("close",)]
    with servers.ScriptedServer(scripts=[script]) as srv:
        env = make_env(srv.port)
        for i in range(3):
            enqueue(env, "r%d@example.org" % i)
        events = daemon_once(env)
        srv.wait_done(1)
        srv.check()
        assert [e["result"] for e in events] == ["delivered"] * 3, events
        assert srv.extra_connections == 0 and len(srv.connections) == 1
        assert len(srv.data) == 3


@test
def batch_is_pipelined_one_round_trip_per_message():
    """The server answers each final dot only once the next message's RSET, MAIL, RCPT and
    DATA have arrived: only a client pipelining across messages (RFC 2920 3.1) gets
    through; one waiting for each dot's reply times out."""
    group = [("expect", rb"^MAIL FROM:"), ("expect", rb"^RCPT TO:"), ("expect", rb"^DATA")]
    ok = [("send", b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"), ("recv_data",)]
    script = [servers.greet(), ("expect", rb"^EHLO "), ("send", servers.ehlo_reply())]
    script += group + ok
    for _ in range(2):
        script += [("expect", rb"^RSET")] + group
        script += [("send", b"250 2.0.0 queued\r\n250 2.0.0 ok\r\n")] + ok
    script += [("send", b"250 2.0.0 queued\r\n"), ("expect", rb"^QUIT"),
               ("send", b"221 bye\r\n"), ("close",)]
    with servers.ScriptedServer(scripts=[script]) as srv:
        env = make_env(srv.port)
        for i in range(3):
            enqueue(env, "r%d@example.org" % i)
        events = daemon_once(env)
        srv.wait_done(1)
        srv.check()
        assert [e["result"] for e in events] == ["delivered"] * 3, events
        assert len(srv.connections) == 1 and len(srv.data) == 3


@test
def sigterm_finishes_the_message_in_flight():
    """SIGTERM while the server is slow to answer the final dot: the daemon waits for the
    reply, records the recipient delivered, does not start the next message, exits 0."""
    # The default session, with a slow reply to the final dot.
    script = [s if s != ("send", b"250 2.0.0 queued as 1234\r\n")
              else ("send_after", 1.5, b"250 2.0.0 queued as 1234\r\n") for s in
              servers.default_session()]
    with servers.ScriptedServer(scripts=[script]) as srv:
        env = make_env(srv.port)
        first = enqueue(env, "a@example.org")
        second = enqueue(env, "b@example.org")
        log = os.path.join(harness.tmpdir("log"), "events.json")
        proc = harness.spawn([harness.pigeon_path(), "daemon", "--workers", "1",
                              "--log-file", log], env=full_env(env))
        harness.wait_for(lambda: len(srv.data) == 1, 20, what="the message data")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, harness.read_log(proc)
    remaining = [m["queue_id"] for m in queue_json(env, "list")]
    assert remaining == [second], (remaining, first)
    shown = queue_json(env, "show", second)
    assert shown["recipients"][0]["state"] == "queued" and shown["recipients"][0]["attempts"] == 0
    with open(log) as f:
        names = [json.loads(line)["event"] for line in f]
    assert names.count("delivery") == 1 and "stopping" in names and names[-1] == "stop", names


@test
def logfmt_log_and_sighup_reopens():
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port)
        logdir = harness.tmpdir("log")
        log = os.path.join(logdir, "pigeon.log")
        proc = harness.spawn([harness.pigeon_path(), "daemon", "--workers", "1",
                              "--log-format", "logfmt", "--log-file", log],
                             env=full_env(env))
        enqueue(env, "a@example.org")
        srv.wait_messages(1)
        harness.wait_for(lambda: b"event=delivery" in open(log, "rb").read(), 10,
                         what="the first delivery event")
        os.rename(log, log + ".1")
        proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: os.path.exists(log), 10, what="the reopened log")
        enqueue(env, "b@example.org")
        srv.wait_messages(2)
        harness.wait_for(lambda: b"event=delivery" in open(log, "rb").read(), 10,
                         what="the second delivery event")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    old = open(log + ".1").read()
    new = open(log).read()
    assert "rcpt=a@example.org" in old and "rcpt=b@example.org" not in old, old
    line = [l for l in new.splitlines() if "event=delivery" in l][0]
    fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line))
    assert fields["rcpt"] == "b@example.org" and fields["result"] == "delivered", fields
    assert fields["code"] == "250" and fields["attempt"] == "1" and "duration_ms" in fields
    assert len(fields["queue_id"]) == 26 and fields["account"] == "main", fields
    assert "event=reload" in new, new


def threads(pid):
    """{tid: (name, scheduling policy)} of process pid, from /proc (policy: field 41)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        base = "/proc/%d/task/%s/" % (pid, tid)
        with open(base + "comm") as f:
            name = f.read().strip()
        with open(base + "stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[int(tid)] = (name, int(fields[41 - 3]))
    return out


@test
def workers_are_named_batch_threads():
    """Each worker thread is named pigeon-wN (what top -H and ps -L show) and runs under
    SCHED_BATCH (3): throughput work, which the scheduler does not let preempt the server
    answering it on every reply; the main thread and the others keep SCHED_OTHER (0)."""
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port)
        log = os.path.join(harness.tmpdir("log"), "events.json")
        proc = harness.spawn([harness.pigeon_path(), "daemon", "--workers", "3", "--log-file",
                              log], env=full_env(env))
        enqueue(env, "a@example.org")
        srv.wait_messages(1)
        ts = threads(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    workers = sorted(name for name, policy in ts.values() if name.startswith("pigeon-w"))
    assert workers == ["pigeon-w1", "pigeon-w2", "pigeon-w3"], ts
    assert all(policy == 3 for name, policy in ts.values() if name.startswith("pigeon-w")), ts
    assert all(policy == 0 for name, policy in ts.values() if not name.startswith("pigeon-w")), ts
    assert ts[proc.pid][1] == 0, ts


@test
def idle_daemon_sleeps_and_stops_at_once():
    """With nothing to send, the daemon's threads wait in one sleep each instead of
    waking in short steps: the workers in 100 ms steps, the main thread every 200 ms and
    the webhook sender's five threads every 50 ms (with no webhook at all) made about 170
    wake-ups a second; now the workers poll the spool once a second and the rest wait
    for their next task. SIGTERM still ends every wait at once (daemon_stop's pipe):
    the daemon finishes with status 0 and logs its stop."""
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port)
        log = os.path.join(harness.tmpdir("log"), "events.json")
        proc = harness.spawn([harness.pigeon_path(), "daemon", "--workers", "4", "--log-file",
                              log], env=full_env(env))
        harness.wait_for(lambda: os.path.exists(log) and b'"event":"start"' in
                         open(log, "rb").read(), 10, what="the start event")
        time.sleep(1)  # the threads have started and settled
        rate = harness.wakeups_per_second(proc.pid, 3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    # 4 workers polling once a second, the main thread's second, the Sent saver's
    # second, the webhook sender's reloads every 2 s: about 9. Bound with room for a
    # loaded machine; 170 before.
    assert rate < 40, "%.1f wake-ups a second while idle" % rate
    assert b'"event":"stop"' in open(log, "rb").read()


@test
def sighup_rereads_the_configuration():
    """The account moves to another server; after SIGHUP the daemon's open connection
    to the old one is closed and the next message goes to the new one."""
    with servers.AioSmtpd() as old, servers.AioSmtpd() as new:
        env = make_env(old.port)
        log = os.path.join(harness.tmpdir("log"), "events.json")
        proc = harness.spawn([harness.pigeon_path(), "daemon", "--workers", "1", "--idle",
                              "60", "--log-file", log], env=full_env(env))
        enqueue(env, "a@example.org")
        old.wait_messages(1)
        text = open(env["PIGEON_CONFIG"]).read().replace("port = %d" % old.port,
                                                         "port = %d" % new.port)
        with open(env["PIGEON_CONFIG"], "w") as f:
            f.write(text)
        proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: b'"event":"reload"' in open(log, "rb").read(), 10,
                         what="the reload event")
        enqueue(env, "b@example.org")
        [m] = new.wait_messages(1)
        assert m.rcpt_tos == ["b@example.org"] and len(old.messages) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


@test
def metrics_match_what_the_server_received():
    from prometheus_client.parser import text_string_to_metric_families
    with servers.AioSmtpd(reject_rcpt={"bad@example.org": "550 5.1.1 unknown"}) as srv:
        env = make_env(srv.port)
        for i in range(12):
            enqueue(env, "r%d@example.org" % i)
        enqueue(env, "bad@example.org")
        port = harness.free_port()
        proc = harness.spawn([harness.pigeon_path(), "daemon", "--workers", "2",
                              "--metrics-listen", "127.0.0.1:%d" % port],
                             env=full_env(env))
        harness.wait_port(port, proc=proc)
        srv.wait_messages(12)
        harness.wait_for(lambda: queue_json(env, "stats")["recipients"]["queued"] == 0, 10,
                         what="an empty queue")

        def scrape(path):
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
                return r.status, r.read().decode()

        status, text = scrape("/metrics")
        assert status == 200
        samples = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        assert samples[("pigeon_messages_total", (("result", "sent"),))] == len(srv.messages) == 12
        assert samples[("pigeon_messages_total", (("result", "failed"),))] == 1
        assert samples[("pigeon_recipients_total", (("result", "sent"),))] == 12
        assert samples[("pigeon_smtp_errors_total", (("class", "5xx"), ("code", "550")))] == 1
        assert samples[("pigeon_attempts_total", ())] == 13
        assert samples[("pigeon_queue_depth", (("state", "queued"),))] == 0
        assert samples[("pigeon_queue_depth", (("state", "failed"),))] == 1
        assert samples[("pigeon_send_duration_seconds_count", ())] == 13
        assert scrape("/healthz") == (200, "ok\n")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


@test
def sendmail_fallback_then_daemon_delivers():
    port = harness.free_port()
    env = make_env(port)
    link = os.path.join(harness.build_dir(), "sendmail")
    msg = b"From: cron@pigeon.test\nTo: a@example.org\nBcc: hidden@example.org\n" \
          b"Subject: nightly\n\nbackup done\n"
    rc, out, err = harness.run_cmd([link, "-t", "-i"], input=msg, env=env)
    assert rc == 0 and b"queued as" in err, (rc, err)
    [queued] = queue_json(env, "list")
    assert queued["counts"]["queued"] == 2, queued   # sendmail's own try is not counted
    with servers.AioSmtpd(port=port) as srv:
        daemon_once(env)
        [m] = srv.wait_messages(1)
        assert sorted(m.rcpt_tos) == ["a@example.org", "hidden@example.org"]
        assert m.message["Subject"] == "nightly" and m.message["Bcc"] is None
        assert m.mail_from == "cron@pigeon.test"


@test(timeout=90)
def two_daemons_never_send_a_message_twice():
    tool = harness.build_tool("enqueue")
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port)
        os.makedirs(os.path.dirname(spool_of(env)), exist_ok=True)
        rc, out, err = harness.run_cmd([tool, spool_of(env), "main", "200"])
        assert rc == 0, err
        procs = [subprocess.Popen([harness.pigeon_path(), "daemon", "--once", "--workers", "2",
                                   "--log-file", os.devnull], env=full_env(env))
                 for _ in range(2)]
        for p in procs:
            assert p.wait(60) == 0
        ids = [msgid(m.content) for m in srv.wait_messages(200)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 200, len(ids)
    assert queue_json(env, "stats")["messages"] == 0


def msgid(content):
    m = re.search(rb"^Message-ID: <(\d+)\.enqueue@pigeon\.test>", content, re.M | re.I)
    assert m, content[:300]
    return int(m.group(1))


def settle(srv, quiet=0.5, timeout=10.0):
    """Waits until the server has received nothing new for `quiet` seconds (what a killed
    daemon had sent is processed by then), and returns how many messages it holds."""
    deadline = time.monotonic() + timeout
    count, since = len(srv.messages), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if len(srv.messages) != count:
            count, since = len(srv.messages), time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return count


@test(timeout=110)
def kill_9_loses_nothing():
    tool = harness.build_tool("enqueue")
    rnd = random.Random(9)
    workers, batch = 2, 16
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port)
        os.makedirs(os.path.dirname(spool_of(env)), exist_ok=True)
        rc, out, err = harness.run_cmd([tool, spool_of(env), "main", str(KILL_MESSAGES)],
                                       timeout=60)
        assert rc == 0, err
        argv = [harness.pigeon_path(), "daemon", "--workers", str(workers), "--batch",
                str(batch), "--log-file", os.devnull]
        marks = []   # how many messages the server held when each killed run was over
        for _ in range(KILLS):
            if len(srv.messages) >= KILL_MESSAGES:
                break
            proc = subprocess.Popen(argv, env=full_env(env), start_new_session=True)
            before = len(srv.messages)
            harness.wait_for(lambda: len(srv.messages) > before or proc.poll() is not None,
                             20, what="the daemon to deliver")
            time.sleep(rnd.uniform(0.0, 0.3))
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            marks.append(settle(srv))
        # Restart until drained: the killed daemons' leases are given back at once.
        log = os.path.join(harness.tmpdir("log"), "final.json")
        proc = harness.spawn(argv[:-1] + [log], env=full_env(env))
        harness.wait_for(lambda: queue_json(env, "stats")["messages"] == 0, 60,
                         what="the spool to drain")
        # The killed runs may have delivered everything already: SIGTERM only once the
        # daemon has its signal handling in place (its "start" event), or it would die
        # of the signal's default action before doing anything.
        harness.wait_for(lambda: os.path.exists(log) and b"start" in open(log, "rb").read(),
                         20, what="the daemon to start")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        assert code == 0, (code, harness.read_log(proc)[-3000:])
        received = list(srv.messages)
    kills = len(marks)
    seen = {}
    for index, m in enumerate(received):
        run = bisect.bisect_right(marks, index)   # the daemon run that sent this copy
        seen.setdefault(msgid(m.content), []).append((run, m.content))
    missing = set(range(KILL_MESSAGES)) - set(seen)
    assert not missing, "lost %d messages, e.g. %s" % (len(missing), sorted(missing)[:5])
    sent_again = [0] * (kills + 1)   # per run: its messages that a later run sent again
    for mid, copies in seen.items():
        runs = [run for run, _ in copies]
        assert len(set(runs)) == len(runs), "message %d sent twice by one run: %s" % (mid, runs)
        assert all(c == copies[0][1] for _, c in copies), "a duplicate differs from its original"
        assert all(msgid(c) == mid for _, c in copies), "a duplicate has another Message-ID"
        for run in runs[:-1]:
            sent_again[run] += 1
    for run in range(kills):
        assert sent_again[run] <= workers, \
            "kill %d: %d messages sent again, more than one per worker (%d workers, batch %d)" \
            % (run + 1, sent_again[run], workers, batch)
    assert sent_again[kills] == 0
    dups = sum(len(v) - 1 for v in seen.values())
    print("kill_9_loses_nothing: %d messages, %d kills, %d duplicates (per kill: %s)"
          % (KILL_MESSAGES, kills, dups, sent_again[:kills]))


@test(timeout=90)
def sigterm_records_every_accepted_message():
    """SIGTERM in the middle of batches: the workers finish the message in flight, record
    the outcomes of their batches and give back what they did not start, so the next run
    sends exactly the messages the server did not accept: none twice, none lost."""
    tool = harness.build_tool("enqueue")
    total = 600
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port)
        os.makedirs(os.path.dirname(spool_of(env)), exist_ok=True)
        rc, out, err = harness.run_cmd([tool, spool_of(env), "main", str(total)], timeout=60)
        assert rc == 0, err
        proc = harness.spawn([harness.pigeon_path(), "daemon", "--workers", "2", "--batch",
                              "64", "--log-file", os.devnull], env=full_env(env))
        harness.wait_for(lambda: len(srv.messages) >= 20, 30, what="the first messages")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, harness.read_log(proc)
        accepted = len(srv.messages)
        assert 0 < accepted < total, accepted
        stats = queue_json(env, "stats")
        # Every accepted message was recorded (and so removed); the rest is queued again,
        # not left in flight under a lease.
        assert stats["messages"] == total - accepted, (stats, accepted)
        assert stats["recipients"]["inflight"] == 0, stats
        assert stats["recipients"]["queued"] == total - accepted, stats
        daemon_once(env, workers=2)
        received = srv.wait_messages(total)
        time.sleep(0.3)
        received = list(srv.messages)
    ids = sorted(msgid(m.content) for m in received)
    assert ids == list(range(total)), "%d copies of %d messages" % (len(ids), len(set(ids)))
    assert queue_json(env, "stats")["messages"] == 0


if __name__ == "__main__":
    harness.run(file_timeout=300)
