"""bench/pg.sh's measurements (see there). Prints msgs/s and ratios; asserts nothing."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import pgserver  # noqa: E402

build, n = sys.argv[1], int(sys.argv[2])
pigeon = os.path.join(build, "pigeon")
work = tempfile.mkdtemp(prefix="pigeon-bench-pg-")
procs = []


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run(args, env):
    r = subprocess.run(args, env=env, capture_output=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit("pg_bench: %s: %s" % (args[0], r.stderr.decode()[-2000:]))
    return r.stdout.decode()


def drain(env, spool, daemons=1, workers=4):
    """Seconds for `daemons` daemons (--once) to drain the spool."""
    t0 = time.monotonic()
    ps = [subprocess.Popen([pigeon, "daemon", "--once", "--workers", str(workers), "--spool",
                            spool, "--log-file", "/dev/null"], env=env) for _ in range(daemons)]
    for p in ps:
        p.wait()
    t = time.monotonic() - t0
    left = json.loads(run([pigeon, "queue", "stats", "--json", "--spool", spool], env))
    if left["messages"] != 0:
        raise SystemExit("pg_bench: not drained: %s" % left)
    return t


srv = pgserver.PgServer(fsync=True)
try:
    srv.start()
    sys.path.insert(0, HERE)
    from sample import TEXT, HTML, SUBJECT  # noqa: E402
    port = free_port()
    cfg = os.path.join(work, "config")
    with open(cfg, "w") as f:
        f.write("[account bench]\nhost = 127.0.0.1\nport = %d\ntls = none\n"
                "from = sender@example.com\ntimeout = 60\n" % port)
    os.chmod(cfg, 0o600)
    env = dict(os.environ, PIGEON_CONFIG=cfg, XDG_STATE_HOME=os.path.join(work, "state"),
               PGPASSFILE=srv.passfile)
    for name, body in (("text", TEXT), ("html", HTML)):
        with open(os.path.join(work, name), "w", encoding="utf-8") as f:
            f.write(body)
    sample = os.path.join(work, "sample.eml")
    with open(sample, "wb") as f:
        f.write(subprocess.run([pigeon, "send", "--dry-run", "--from", "sender@example.com",
                                "--to", "receiver@example.com", "--subject", SUBJECT,
                                "--text-file", os.path.join(work, "text"), "--html-file",
                                os.path.join(work, "html")], env=env, capture_output=True,
                               check=True).stdout)
    sink = ["/usr/sbin/smtp-sink", "-c", "127.0.0.1:%d" % port, "1000"]
    if os.getuid() == 0:
        sink[1:1] = ["-u", "nobody"]
    procs.append(subprocess.Popen(sink, stdout=subprocess.DEVNULL))
    time.sleep(0.5)
    fill = os.path.join(build, "bench_daemon")
    lite = os.path.join(work, "spool.db")
    print("message: %d bytes; %d messages; PostgreSQL 15 (fsync on) on loopback TCP"
          % (os.path.getsize(sample), n))

    def rate(out):
        return float(out.split("(")[1].split()[0])
    pg_url = srv.new_database()
    enq_pg = rate(run([fill, pg_url, "bench", str(n), sample], env))
    enq_lite = rate(run([fill, lite, "bench", str(n), sample], env))
    print("enqueue, batches of 1000   postgresql %8.0f msgs/s   sqlite %8.0f msgs/s   "
          "ratio %.2f   (target: postgresql >= 20000)" % (enq_pg, enq_lite, enq_pg / enq_lite))
    t_pg = drain(env, pg_url)
    t_lite = drain(env, lite)
    print("daemon --once --workers 4  postgresql %8.0f msgs/s   sqlite %8.0f msgs/s   "
          "ratio %.2f   (target >= 0.8)" % (n / t_pg, n / t_lite, t_lite / t_pg))
    curve = []
    for k in (1, 2, 3):
        url = srv.new_database()
        run([fill, url, "bench", str(n), sample], env)
        curve.append(n / drain(env, url, daemons=k, workers=2))
    print("daemons (--workers 2 each) on one queue: " +
          ", ".join("%d: %.0f msgs/s (x%.2f)" % (k + 1, r, r / curve[0])
                    for k, r in enumerate(curve)))
finally:
    for p in procs:
        p.kill()
    srv.cleanup()
    shutil.rmtree(work, ignore_errors=True)
