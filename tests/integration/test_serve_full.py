#!/usr/bin/python3
"""`pigeon serve` on a full disk (issue 10): requests the spool cannot take answer 503 with
Retry-After, nothing is half-stored (every 202 is a whole message in the spool, nothing
else is), the server keeps answering meanwhile, and once room comes back it stores again.

The full disk is a real one: a small tmpfs mounted for the test (skipped where mounting
is not allowed), filled with a file until the kernel says ENOSPC.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test  # noqa: E402
from servetool import Serve, make_env, new_key  # noqa: E402


def small_fs(size):
    d = harness.tmpdir("pigeon-serve-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", d],
                       capture_output=True)
    if r.returncode != 0:
        raise harness.Skip("cannot mount a tmpfs here: %s" % r.stderr.decode(errors="replace"))
    harness.at_exit(lambda: subprocess.run(["umount", "-l", d], capture_output=True))
    return d


def fill_disk(d):
    path = os.path.join(d, "filler")
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError as e:
            assert e.errno == 28, e  # ENOSPC
    return path


def spool_ids(env):
    rc, out, err = harness.pigeon("queue", "list", "--json", env=env)
    assert rc == 0, (rc, err)  # the spool opens and passes its check
    return sorted(m["queue_id"] for m in json.loads(out))


def message(i, size):
    line = "line %d of a message that needs room in the spool\n" % i
    return {"from": "App <app@shop.test>", "to": ["ann@example.org"],
            "subject": "n%d" % i, "text": line * (size // len(line))}


@test(timeout=120)
def full_disk_is_503_with_retry_after_and_nothing_half_stored():
    if harness.pg_url():
        raise harness.Skip("the spool is PostgreSQL: no local disk to fill")
    fs = small_fs("3m")
    env = make_env()
    env["XDG_STATE_HOME"] = os.path.join(fs, "state")
    key = new_key(env, "--account", "main")
    s = Serve(env)
    accepted = []
    try:
        status, _, doc = s.request("POST", "/v1/messages", message(0, 2000), key)
        assert status == 202, doc
        accepted.append(doc["id"])
        filler = fill_disk(fs)
        refused = 0
        for i in range(1, 40):
            status, headers, doc = s.request("POST", "/v1/messages", message(i, 60000), key)
            if status == 202:  # room the spool's files still had
                accepted.append(doc["id"])
                continue
            assert status == 503, (status, doc)
            assert headers.get("Retry-After") == "1", dict(headers)
            assert doc["status"] == 503 and "disk full" in doc["detail"], doc
            refused += 1
            # Still serving meanwhile: health, reads of what is stored.
            assert s.request("GET", "/healthz")[0] == 200
            status, _, doc = s.request("GET", "/v1/messages/" + accepted[0], key=key)
            assert status == 200 and doc["state"] == "queued", doc
            if refused >= 3:
                break
        assert refused >= 3, "the disk never filled up for the spool"
        # A batch on the full disk: every item 503, nothing of it stored.
        status, _, doc = s.request("POST", "/v1/messages/batch",
                                   {"messages": [message(90, 60000), message(91, 60000)]}, key)
        if status == 200:
            for r in doc["results"]:
                if r["status"] == 202:
                    accepted.append(r["id"])
                else:
                    assert r["status"] == 503, doc
        else:
            assert status == 503, (status, doc)
        os.unlink(filler)
        # Room again: the same server stores again, without a restart.
        status, _, doc = s.request("POST", "/v1/messages", message(99, 60000), key)
        assert status == 202, doc
        accepted.append(doc["id"])
    finally:
        s.stop()
    # Every 202 is there, whole (queue show reads it back), and nothing else is.
    assert spool_ids(env) == sorted(accepted)
    for qid in accepted:
        rc, out, err = harness.pigeon("queue", "show", qid, "--json", env=env)
        assert rc == 0, (rc, err)


if __name__ == "__main__":
    harness.run()
