"""The test PostgreSQL (pgserver.py) does not outlive a test killed before its cleanup.

pg_ctl detaches the server, so a test that ctest kills at its timeout used to leave a
postgres running (and its folder) until the machine rebooted. Each server now has a reaper
that stops it once its owner is gone, and that itself goes when the owner cleans up.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import pgserver  # noqa: E402
from harness import test  # noqa: E402

# A process that starts a server, says where it is, and waits to be killed.
OWNER = ("import sys, time; sys.path.insert(0, %r); import pgserver; s = pgserver.PgServer();"
         " s.start(); pm = open(s.data + '/postmaster.pid').readline().strip();"
         " print(s.base, pm, s._reaper.pid, flush=True); time.sleep(600)" % HERE)


@test(timeout=120)
def server_stops_when_its_owner_is_killed():
    p = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE)
    try:
        base, pm, reaper = p.stdout.readline().decode().split()
        pm, reaper = int(pm), int(reaper)
        assert pgserver._alive(pm), "the server did not start"
        p.kill()  # as ctest does at a test's timeout: no cleanup runs
        p.wait()
        harness.wait_for(lambda: not pgserver._alive(pm), timeout=30,
                         what="the orphaned server to stop")
        harness.wait_for(lambda: not os.path.exists(base), timeout=10,
                         what="the orphaned server's folder to go")
        harness.wait_for(lambda: not pgserver._alive(reaper), timeout=10,
                         what="the reaper to exit")
    finally:
        p.kill()
        p.wait()


@test(timeout=120)
def cleanup_stops_the_reaper_and_the_server():
    srv = pgserver.PgServer()
    try:
        srv.start()
        reaper = srv._reaper.pid
        with open(os.path.join(srv.data, "postmaster.pid")) as f:
            pm = int(f.readline())
        assert srv.psql("SELECT 1").strip() == "1"
    finally:
        srv.cleanup()
    assert not pgserver._alive(pm)
    assert not pgserver._alive(reaper)
    assert not os.path.exists(srv.base)


if __name__ == "__main__":
    harness.run()
