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

    def server_cpu():
        """CPU seconds of this server: its postmaster with the backends that ended (counted
        in its children's time) and its live children. Only this server's: other postgres
        servers on the machine (tests running beside) are not counted."""
        with open(os.path.join(srv.data, "postmaster.pid")) as f:
            pm = f.readline().strip()
        tot = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    fl = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if pid == pm:
                tot += sum(int(x) for x in fl[11:15])
            elif fl[1] == pm:
                tot += sum(int(x) for x in fl[11:13])
        return tot / os.sysconf("SC_CLK_TCK")

    def median(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]

    reps = int(os.environ.get("PG_BENCH_REPEAT", "3"))
    enq_pg, enq_lite, cpu, wal, d_pg, d_lite = [], [], [], [], [], []
    d_srv, d_cli, d_cli_lite = [], [], []  # drain CPU per message: server, daemon

    def children_cpu():
        import resource
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    for r in range(reps):  # alternated, medians reported: the machine is shared
        pg_url = srv.new_database()
        run([fill, pg_url, "bench", "1", sample], env)  # the schema, outside the timing
        db = pg_url.rsplit("/", 1)[1]
        srv.psql("CHECKPOINT")
        lsn = srv.psql("SELECT pg_current_wal_lsn()", db=db).strip()
        c0 = server_cpu()
        enq_pg.append(rate(run([fill, pg_url, "bench", str(n), sample], env)))
        cpu.append((server_cpu() - c0) / n * 1e6)
        wal.append(float(srv.psql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '%s')" % lsn,
                                  db=db)) / n)
        if os.path.exists(lite):
            os.unlink(lite)
        enq_lite.append(rate(run([fill, lite, "bench", str(n), sample], env)))
        c0, k0 = server_cpu(), children_cpu()
        d_pg.append(n / drain(env, pg_url))
        d_srv.append((server_cpu() - c0) / n * 1e6)
        d_cli.append((children_cpu() - k0) / n * 1e6)
        k0 = children_cpu()
        d_lite.append(n / drain(env, lite))
        d_cli_lite.append((children_cpu() - k0) / n * 1e6)
        print("  run %d: enqueue pg %.0f/s sqlite %.0f/s (server %.0f us/msg, WAL %.0f B/msg);"
              " drain pg %.0f/s sqlite %.0f/s" % (r + 1, enq_pg[-1], enq_lite[-1], cpu[-1],
                                                   wal[-1], d_pg[-1], d_lite[-1]))
        print("         drain CPU per message: server %.0f us, daemon %.0f us (sqlite daemon"
              " %.0f us)" % (d_srv[-1], d_cli[-1], d_cli_lite[-1]))
    print("enqueue, batches of 1000   postgresql %8.0f msgs/s   sqlite %8.0f msgs/s   "
          "ratio %.2f   (target: postgresql >= 20000)"
          % (median(enq_pg), median(enq_lite), median(enq_pg) / median(enq_lite)))
    print("  PostgreSQL server per message: %.0f us CPU, %.0f bytes of WAL (medians)"
          % (median(cpu), median(wal)))
    print("daemon --once --workers 4  postgresql %8.0f msgs/s   sqlite %8.0f msgs/s   "
          "ratio %.2f   (target >= 0.8)"
          % (median(d_pg), median(d_lite), median(d_pg) / median(d_lite)))
    print("  drain CPU per message (medians): PostgreSQL server %.0f us, daemon %.0f us;"
          " SQLite daemon %.0f us" % (median(d_srv), median(d_cli), median(d_cli_lite)))
    curve = []
    for k in (1, 2, 3):
        url = srv.new_database()
        run([fill, url, "bench", str(n), sample], env)
        curve.append(n / drain(env, url, daemons=k, workers=2))
    print("daemons (--workers 2 each) on one queue: " +
          ", ".join("%d: %.0f msgs/s (x%.2f)" % (k + 1, r, r / curve[0])
                    for k, r in enumerate(curve)))
    print("load average: %s" % open("/proc/loadavg").read().strip())
finally:
    for p in procs:
        p.kill()
    srv.cleanup()
    shutil.rmtree(work, ignore_errors=True)
