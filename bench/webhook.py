"""bench/webhook.py BUILD_DIR [N] - webhook delivery rate from the outbox, with a kill -9.

1. N messages (default 20,000) are enqueued (tool_enqueue) into a spool whose outbox is on
   and delivered by `pigeon daemon --workers 4` to Postfix smtp-sink while the webhook
   receiver is down: 2N events (queued, delivered) wait in the outbox.
2. The receiver (tests/integration/hookrecv.py: Python http.server, every HMAC checked)
   comes up; the daemon posts the backlog in batches (webhook_batch, default 500). After a
   third of the events arrived it is SIGKILLed and started again at once.
3. Every event must arrive (unique ids counted; duplicates reported: at least once).
   Rate = 2N / (last arrival - first arrival), kill and restart included.

Peer, side by side in the same run: the same 2N events read from the same spool with
Python's sqlite3 and posted with http.client (one kept connection, the same batch size,
the same HMAC signing) to the same receiver: what a small script does, and a ceiling set
by the receiver. Prints events/s of each and the ratio pigeon/python.
"""
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import http.client

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))
import hookrecv  # noqa: E402

SECRET = "whsec_bench_secret"


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise SystemExit("webhook.py: timed out waiting for " + what)


def read_outbox(spool):
    """The outbox's rows, read with sqlite3 (before pigeon delivers and trims them)."""
    db = sqlite3.connect(spool)
    rows = db.execute("SELECT id, type, queue_id, rcpt, account, key_id, message_id, code,"
                      " enhanced, text, attempts, at_ms FROM hook_events ORDER BY id").fetchall()
    db.close()
    return rows


def python_peer(rows, url_port, batch):
    """Posts the rows signed, as a small script would."""
    names = ["queued", "delivered", "deferred", "bounced", "complained", "suppressed", "failed"]
    conn = http.client.HTTPConnection("127.0.0.1", url_port)
    start = time.monotonic()
    for i in range(0, len(rows), batch):
        events = [{"id": "evt_py_%d" % r[0], "type": names[r[1]], "queue_id": r[2],
                   "recipient": r[3], "account": r[4], "api_key": r[5] or None,
                   "message_id": r[6], "smtp_code": r[7] or None, "enhanced_code": r[8],
                   "reply": r[9], "attempts": r[10], "time_ms": r[11]} for r in rows[i:i + batch]]
        body = json.dumps(events).encode()
        t = str(int(time.time()))
        sig = hmac.new(SECRET.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
        conn.request("POST", "/hook", body, {"Content-Type": "application/json",
                                             "Pigeon-Event-Id": events[0]["id"],
                                             "Pigeon-Event-Count": str(len(events)),
                                             "Pigeon-Signature": "t=%s,v1=%s" % (t, sig)})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
    conn.close()
    return len(rows), time.monotonic() - start


def main():
    build = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    batch = int(os.environ.get("WEBHOOK_BATCH", "500"))
    work = tempfile.mkdtemp(prefix="pigeon-bench-webhook.", dir=os.environ.get("BENCH_DIR"))
    smtp_port, hook_port = free_port(), free_port()
    with open(os.path.join(work, "secret"), "w") as f:
        f.write(SECRET + "\n")
    os.chmod(os.path.join(work, "secret"), 0o600)
    cfg = os.path.join(work, "config")
    with open(cfg, "w") as f:
        f.write("webhook = http://127.0.0.1:%d/hook\nwebhook_secret_file = %s/secret\n"
                "webhook_batch = %d\nwebhook_retry_max = 1s\n"
                "[account bench]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = sender@example.com\ntimeout = 60\n" % (hook_port, work, batch, smtp_port))
    os.chmod(cfg, 0o600)
    env = dict(os.environ, PIGEON_CONFIG=cfg, XDG_STATE_HOME=os.path.join(work, "state"))
    spool = os.path.join(work, "state", "pigeon", "spool.db")
    os.makedirs(os.path.dirname(spool))
    sink_user = ["-u", "nobody"] if os.getuid() == 0 else []
    sink = subprocess.Popen(["/usr/sbin/smtp-sink"] + sink_user +
                            ["-c", "127.0.0.1:%d" % smtp_port, "1000"],
                            stdout=subprocess.DEVNULL)
    procs = [sink]
    argv = [os.path.join(build, "pigeon"), "daemon", "--workers", "4", "--log-file", os.devnull]

    def daemon():
        p = subprocess.Popen(argv, env=env, start_new_session=True)
        procs.append(p)
        return p

    def stats():
        out = subprocess.run([os.path.join(build, "pigeon"), "queue", "stats", "--json"],
                             env=env, capture_output=True, check=True).stdout
        return json.loads(out)

    def outbox():
        db = sqlite3.connect(spool)
        try:
            return db.execute("SELECT count(*) FROM hook_events").fetchone()[0]
        finally:
            db.close()

    try:
        # The outbox goes on with the first daemon (before anything is enqueued).
        d = daemon()
        wait(lambda: os.path.exists(spool + "-webhooks.lock"), 20, "the outbox")
        subprocess.run([os.path.join(build, "tool_enqueue"), spool, "bench", str(n), "1000"],
                       check=True, stdout=subprocess.DEVNULL)
        wait(lambda: stats()["messages"] == 0, 600, "the deliveries")
        wait(lambda: outbox() >= 2 * n, 60, "the events")
        backlog = outbox()
        rows = read_outbox(spool)
        recv = hookrecv.Receiver(SECRET, hook_port).start()
        wait(lambda: recv.unique_count() >= 2 * n // 3, 600, "a third of the events")
        with recv.lock:
            killed_at, t_kill, t_first = len(recv.ids), recv.last_new, recv.first_new
        os.killpg(d.pid, signal.SIGKILL)
        d.wait()
        restarted = time.monotonic()
        d = daemon()
        wait(lambda: recv.unique_count() >= 2 * n, 600, "every event")
        time.sleep(0.5)
        got = recv.unique_count()
        events = recv.snapshot()
        span = recv.last_new - recv.first_new
        rate = got / span
        steady = killed_at / (t_kill - t_first) if t_kill > t_first else 0
        after = (got - killed_at) / (recv.last_new - restarted)
        dups = len(events) - got
        bad = recv.bad_signatures
        os.killpg(d.pid, signal.SIGTERM)
        d.wait(30)
        posts = sum(1 for p in recv.posts if p[0] == 200)
        recv.stop()
        # The peer: the same events, the same receiver.
        peer = hookrecv.Receiver(SECRET, hook_port).start()
        count, secs = python_peer(rows, hook_port, batch)
        wait(lambda: peer.unique_count() >= count, 60, "the peer's events")
        peer_rate = count / secs
        peer.stop()
        print("webhook: %d messages, %d events in the outbox, batch %d" % (n, backlog, batch))
        print("  pigeon daemon: %d unique events in %.2f s = %.0f events/s (%d POSTs; kill -9 "
              "after %d events, restarted; %d duplicates; %d bad signatures; lost %d)"
              % (got, span, rate, posts, killed_at, dups, bad,
                 2 * n - got))
        print("  before the kill: %.0f events/s; after the restart (its start included): "
              "%.0f events/s" % (steady, after))
        print("  python sqlite3+http.client: %d events = %.0f events/s" % (peer.unique_count(),
                                                                            peer_rate))
        print("  ratio pigeon/python: %.2f" % (rate / peer_rate if peer_rate else 0))
        if got < 2 * n or bad:
            sys.exit(1)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL) if p is not sink else p.kill()
            except (ProcessLookupError, PermissionError):
                pass
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
