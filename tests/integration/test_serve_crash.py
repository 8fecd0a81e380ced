#!/usr/bin/python3
"""kill -9 of `pigeon serve` under load (issue 10): every id answered 202 is in the spool
afterwards and is delivered by `pigeon daemon`; nothing is half-stored (each stored
message has its owner row and its whole body, and vice versa).

Three rounds: 32 keep-alive clients POST as fast as they can, the server is killed with
SIGKILL mid-stream, restarted on the same spool, and the clients' 202s are checked
against what the spool holds. Then aiosmtpd receives everything the daemon sends.
"""
import http.client
import json
import os
import signal
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
from harness import test  # noqa: E402
from servetool import MSG, Serve, make_env, new_key  # noqa: E402


def hammer(port, key, ids, stop):
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/v1/messages", json.dumps(MSG),
                         {"Content-Type": "application/json", "Authorization": "Bearer " + key})
            r = conn.getresponse()
            body = r.read()
            if r.status == 202:
                ids.append(json.loads(body)["id"])
        except (OSError, http.client.HTTPException):
            conn = None  # the server died: keep trying until told to stop
            time.sleep(0.01)


@test(timeout=240)
def kill_9_under_load_loses_nothing_answered():
    with servers.AioSmtpd() as smtpd:
        env = make_env(smtpd.port)
        key = new_key(env, "--account", "main")
        spool = os.path.join(env["XDG_STATE_HOME"], "pigeon", "spool.db")
        answered = []
        for round_ in range(3):
            s = Serve(env)
            ids, stop = [], threading.Event()
            threads = [threading.Thread(target=hammer, args=(s.port, key, ids, stop))
                       for _ in range(32)]
            for t in threads:
                t.start()
            harness.wait_for(lambda: len(ids) >= 200, timeout=60, what="load")
            os.kill(s.proc.pid, signal.SIGKILL)
            s.proc.wait(10)
            stop.set()
            for t in threads:
                t.join(20)
            answered.extend(ids)
        # Every 202 is stored; every stored message is whole and owned.
        db = sqlite3.connect(spool)
        stored = {r[0] for r in db.execute("SELECT queue_id FROM message")}
        owned = {r[0] for r in db.execute("SELECT queue_id FROM api_messages")}
        sizes = db.execute("SELECT m.size, (SELECT SUM(LENGTH(data)) FROM body b WHERE b.msg = m.id)"
                           " FROM message m").fetchall()
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        assert set(answered) <= stored, "answered but not stored: %d" % len(set(answered) - stored)
        assert stored == owned, (len(stored), len(owned))
        assert all(a == b for a, b in sizes), "a body is not whole"
        assert len(answered) >= 600
        rc, out, err = harness.pigeon("daemon", "--once", "--workers", "2", env=env, timeout=180)
        assert rc == 0, (rc, err[-500:])
        got = smtpd.wait_messages(len(stored), timeout=60)
        assert len(got) == len(stored), (len(got), len(stored))


if __name__ == "__main__":
    harness.run()
