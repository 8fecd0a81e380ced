"""Shared account limits (issue 11): rate_per_second and daily_limit hold across several
`pigeon daemon` processes draining one spool, because each takes its tokens from the
account's bucket in the spool (cli/daemon_limits.c, lib/spool/spool_limits.h) instead of
counting in its own memory.

Measured at the sink (aiosmtpd), by counts over windows, never by asserting a duration:
with rate N, the messages received within T seconds of the first one are at most
N * T plus the bucket (1) plus a generous margin for delivery jitter. Two daemons each
counting alone would deliver about 2N per second, far above the bound, so the test
fails without the shared bucket.
"""
import json
import os
import subprocess
import time

import harness
import servers
from harness import test

RATE = 20
MESSAGES = 120


def make_env(port, extra=""):
    d = harness.tmpdir("pigeon-limits-")
    cfg = os.path.join(d, "config")
    with open(cfg, "w") as f:
        f.write("[account main]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = Sender <sender@pigeon.test>\ntimeout = 5\n%s" % (port, extra))
    os.chmod(cfg, 0o600)
    # On the PostgreSQL run (ctest integration/test_daemon_shared_limits_pg) a fresh
    # database each: the daemons then share the limits table of spool_pg_limits.c.
    return harness.with_spool({"PIGEON_CONFIG": cfg, "XDG_STATE_HOME": os.path.join(d, "state"),
                               "HOME": d})


def spool_of(env):
    if "PIGEON_SPOOL" in env:
        return env["PIGEON_SPOOL"]
    return os.path.join(env["XDG_STATE_HOME"], "pigeon", "spool.db")


def full_env(env):
    e = dict(os.environ)
    e.update(env)
    e.pop("PIGEON_PASSWORD", None)
    return e


class Timed(list):
    """srv.messages that notes when each message arrived (time.monotonic())."""

    def __init__(self):
        super().__init__()
        self.at = []

    def append(self, item):
        self.at.append(time.monotonic())
        super().append(item)


def fill(env, count):
    if "PIGEON_SPOOL" not in env:
        os.makedirs(os.path.dirname(spool_of(env)), exist_ok=True)
    rc, out, err = harness.run_cmd([harness.build_tool("enqueue"), spool_of(env), "main",
                                    str(count)])
    assert rc == 0, err


def run_daemons(env, n, logs):
    procs = [subprocess.Popen([harness.pigeon_path(), "daemon", "--once", "--workers", "2",
                               "--batch", "8", "--log-file", logs[i]], env=full_env(env))
             for i in range(n)]
    for p in procs:
        assert p.wait(90) == 0


def senders(log):
    with open(log) as f:
        return sum(1 for line in f if json.loads(line)["event"] == "delivery")


@test(timeout=120)
def rate_is_shared_by_two_daemons():
    with servers.AioSmtpd() as srv:
        srv.messages = Timed()
        env = make_env(srv.port, "rate_per_second = %d\n" % RATE)
        fill(env, MESSAGES)
        logdir = harness.tmpdir("limits-log")
        logs = [os.path.join(logdir, "d%d.json" % i) for i in range(2)]
        run_daemons(env, 2, logs)
        got = srv.wait_messages(MESSAGES)
        at = list(srv.messages.at)
    assert len(got) == MESSAGES
    # Both daemons took part: the limit was shared, not one daemon doing all the work.
    assert all(senders(log) > 0 for log in logs), [senders(log) for log in logs]
    t0 = at[0]
    for window in (1.0, 2.0, 3.0, 4.0):
        count = sum(1 for t in at if t - t0 <= window)
        # N*T, the bucket's one token, and half a second of jitter (a message whose
        # slot came just before the window arriving inside it).
        bound = RATE * window + 1 + RATE * 0.5
        assert count <= bound, (window, count, bound)
    # And over the whole run: the last message cannot have come sooner than the rate
    # allows (counted the same way, from the first arrival).
    span = at[-1] - t0
    assert MESSAGES <= RATE * span + 1 + RATE * 0.5, (span, MESSAGES)


@test(timeout=90)
def daily_limit_is_shared_by_two_daemons():
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port, "daily_limit = 7\n")
        fill(env, 20)
        logdir = harness.tmpdir("limits-log")
        logs = [os.path.join(logdir, "d%d.json" % i) for i in range(3)]
        run_daemons(env, 3, logs)
        time.sleep(0.3)
        assert len(srv.messages) == 7, len(srv.messages)
    rc, out, err = harness.pigeon("queue", "stats", "--json", env=env)
    stats = json.loads(out)
    assert stats["recipients"]["queued"] == 13 and stats["throttled_accounts"] == 1, stats


@test(timeout=90)
def daily_allowance_is_not_lost_when_a_daemon_stops():
    # A daemon takes its daily tokens from the spool a few at a time. One that stops
    # (here: --once with the queue empty) must not keep tokens it did not use: the next
    # daemon may still send the rest of the day's allowance (was: 7 taken for 4 messages,
    # the day over after 4).
    with servers.AioSmtpd() as srv:
        env = make_env(srv.port, "daily_limit = 7\n")
        fill(env, 4)
        logdir = harness.tmpdir("limits-log")
        run_daemons(env, 1, [os.path.join(logdir, "first.json")])
        assert srv.wait_messages(4) and len(srv.messages) == 4
        rc, out, err = harness.pigeon("queue", "stats", "--json", env=env)
        assert json.loads(out)["throttled_accounts"] == 0, out
        fill(env, 5)
        run_daemons(env, 1, [os.path.join(logdir, "second.json")])
        time.sleep(0.3)
        assert len(srv.messages) == 7, len(srv.messages)
    rc, out, err = harness.pigeon("queue", "stats", "--json", env=env)
    stats = json.loads(out)
    assert stats["recipients"]["queued"] == 2 and stats["throttled_accounts"] == 1, stats


if __name__ == "__main__":
    harness.run(file_timeout=240)
