#!/usr/bin/env bash
# bench/pg.sh BUILD_DIR [N] - the spool on PostgreSQL beside SQLite, in the same run
# (bench/pg_bench.py does the work): a real PostgreSQL 15 (tests/integration/pgserver.py,
# fsync on) on loopback, Postfix smtp-sink as the receiver.
#   1. batched enqueue (bench_daemon: 1000 messages per commit) of N copies of the 8.7 KB
#      sample, msgs/s on PostgreSQL and on SQLite (target: >= 20,000/s on PostgreSQL),
#      with the server's CPU time and WAL bytes per message (what bounds it);
#   2. `pigeon daemon --once --workers 4` draining N messages, PostgreSQL / SQLite
#      (target: >= 0.8); 1 and 2 alternated PG_BENCH_REPEAT (3) times, medians;
#   3. 1, 2 and 3 daemons (--workers 2 each) draining one PostgreSQL queue: the curve;
#   4. the 20 s outage: test_spool_pg_faults.py server_down_mid_drain with
#      PIGEON_PG_OUTAGE_SECONDS=20 (make check runs it with 5 s).
# Last figures (2 shared cores; docs/postgresql.md, "Measured", says where the time goes):
# enqueue 18,400 msgs/s on PostgreSQL with binary COPY (schema 7; the array statement
# before it: 7,400-12,800), 43 us of server CPU and 3,113 bytes of WAL per message, at
# load 3.2-3.7 (19,500-20,100 on a quieter machine); drain PostgreSQL / SQLite 3,955 /
# 9,723 msgs/s (0.41; migration 9 and SCHED_BATCH workers: PostgreSQL +16%, SQLite +7%).
set -eu
build=${1:?usage: bench/pg.sh BUILD_DIR [N]}
here=$(cd "$(dirname "$0")" && pwd)
/usr/bin/python3 "$here/pg_bench.py" "$build" "${2:-20000}"
PIGEON="$build/pigeon" PIGEON_BUILD_DIR="$build" PIGEON_SOURCE_DIR="$here/.." \
  PIGEON_PG_OUTAGE_SECONDS=20 /usr/bin/python3 "$here/../tests/integration/test_spool_pg_faults.py" \
  server_down_mid_drain
