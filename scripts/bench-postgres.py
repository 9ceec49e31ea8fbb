#!/usr/bin/env python3
"""PostgreSQL destination throughput (BENCHMARKS.md, "PostgreSQL destination"): rows/s loaded end to end
with durable Direct PUT in front, against `psql \\copy` of the same rows as the ceiling, all on this
machine's cores. Also the server's cost of text against binary COPY for the same rows, which decided
the format sluice sends.

Starts a throwaway cluster (tests/pg.py: Debian's PostgreSQL), target/release/sluice with one pipeline
into a table of the six fields `sluice bench ingest` writes, runs the ingest, then dumps the loaded
table and loads it again with psql as text and as binary.

    cargo build --release && .venv/bin/python scripts/bench-postgres.py --seconds 20
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, cpu_seconds, free_port  # scripts/ is on sys.path when a script runs

sys.path.insert(0, str(ROOT / "tests"))
from pg import PASSWORD, Cluster  # noqa: E402

COLUMNS = "event_id text, ts timestamptz, user_id bigint, event_type text, page text, pad text"


def timed_copy(pg, statement):
    started = time.monotonic()
    pg.sql(statement)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--record-bytes", type=int, default=250)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    pg = Cluster()
    work = Path(tempfile.mkdtemp(prefix="sluice-pgbench-"))
    try:
        pg.sql(f"CREATE TABLE events ({COLUMNS})")
        port = free_port()
        (work / "sluice.yaml").write_text(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: bench
    buffering: {{ size_mb: 5, interval_seconds: 1 }}
    destination:
      postgres:
        url: {pg.url}
        table: events
        columns: [event_id, ts, user_id, event_type, page, pad]
        backup: {{ local: {{ path: ./backup }} }}
""")
        daemon = subprocess.Popen([str(ROOT / "target/release/sluice"), "run", "--config", "sluice.yaml",
                                   "--listen", f"127.0.0.1:{port}"], cwd=work,
                                  env={**os.environ, "PG_PASSWORD": PASSWORD, "RUST_LOG": "warn"},
                                  stdout=open(work / "sluice.log", "wb"), stderr=subprocess.STDOUT)
        time.sleep(1.5)
        cpu_before = cpu_seconds(daemon.pid)
        out = subprocess.run([str(ROOT / "target/release/sluice"), "bench", "ingest", "--endpoint",
                              f"http://127.0.0.1:{port}", "--seconds", str(args.seconds), "--record-bytes",
                              str(args.record_bytes), "--connections", str(args.connections)],
                             check=True, capture_output=True, text=True).stdout
        cpu = cpu_seconds(daemon.pid) - cpu_before
        daemon.terminate()
        daemon.wait(30)
        print(out.strip())
        rows = int(pg.value("SELECT count(*) FROM events"))
        end_to_end = float(re.search(r"end-to-end (\d+) records/s", out).group(1))
        print(f"sluice: {rows} rows in the table, {end_to_end:.0f} rows/s end to end; "
              f"daemon CPU {cpu:.1f} s = {cpu / rows * 1e6:.2f} µs per row")
        # The ingest cycles through a few distinct bodies, so rows repeat by design; the count is
        # what is checked: every acknowledged record is a row (plus the ingest's warm-up records).
        acked = int(re.search(r"ingest: (\d+) records acknowledged", out).group(1))
        assert rows >= acked, f"{rows} rows for {acked} acknowledged records"

        text, binary = work / "rows.tsv", work / "rows.bin"
        os.chmod(work, 0o777)
        timed_copy(pg, f"\\copy events TO '{text}'")
        timed_copy(pg, f"\\copy events TO '{binary}' (FORMAT binary)")
        for name, path, options in [("text", text, ""), ("binary", binary, " (FORMAT binary)")]:
            pg.sql("DROP TABLE IF EXISTS ceiling")
            pg.sql(f"CREATE TABLE ceiling ({COLUMNS})")
            secs = timed_copy(pg, f"\\copy ceiling FROM '{path}'{options}")
            print(f"psql \\copy, {name}: {rows} rows in {secs:.2f} s = {rows / secs:.0f} rows/s "
                  f"({path.stat().st_size / rows:.0f} bytes per row)")
    finally:
        pg.close()


if __name__ == "__main__":
    main()
