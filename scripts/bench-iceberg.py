#!/usr/bin/env python3
"""Iceberg destination throughput and commit latency (BENCHMARKS.md, "Iceberg destination"): rows/s
committed end to end with durable Direct PUT in front, into one table or routed over ten, through a SQL
catalog (SQLite, or PostgreSQL with --postgres) with a local warehouse, all on this machine's cores.
pyiceberg counts the rows afterwards and checks each batch is one snapshot per table.

    cargo build --release && .venv/bin/python scripts/bench-iceberg.py --tables 1
    .venv/bin/python scripts/bench-iceberg.py --tables 10
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, cpu_seconds, free_port, peak_rss_mib  # scripts/ is on sys.path when a script runs

sys.path.insert(0, str(ROOT / "tests"))
from conftest import wait_for  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--tables", type=int, choices=[1, 10], default=1)
    parser.add_argument("--size-mb", type=int, default=32, help="buffering size_mb (a commit per buffer)")
    parser.add_argument("--interval", type=int, default=10, help="buffering interval_seconds")
    parser.add_argument("--postgres", action="store_true", help="the SQL catalog on PostgreSQL instead of SQLite")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-icebench-"))
    warehouse = work / "warehouse"
    warehouse.mkdir()
    pg = None
    env = {**os.environ, "RUST_LOG": "info,sluice::sink::iceberg=debug"}
    if args.postgres:
        from pg import PASSWORD, Cluster
        pg = Cluster()
        uri, reader_uri = pg.url, f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{pg.port}/postgres"
        env["PG_PASSWORD"] = PASSWORD
    else:
        uri, reader_uri = f"sqlite://{work}/catalog.db", f"sqlite:///{work}/catalog.db"
    routing = ('{destinationDatabaseName: "bench", destinationTableName: "events"}' if args.tables == 1 else
               '{destinationDatabaseName: "bench", destinationTableName: ("events_" + (.user_id % 10 | tostring))}')
    try:
        port = free_port()
        (work / "sluice.yaml").write_text(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: bench
    buffering: {{ size_mb: {args.size_mb}, interval_seconds: {args.interval} }}
    destination:
      iceberg:
        catalog: {{ type: sql, uri: '{uri}', warehouse: {warehouse} }}
        routing: '{routing}'
        create_tables: true
        backup: {{ local: {{ path: ./backup }} }}
""")
        binary = str(ROOT / "target/release/sluice")
        daemon = subprocess.Popen([binary, "run", "--config", "sluice.yaml", "--listen", f"127.0.0.1:{port}"],
                                  cwd=work, env=env, stdout=open(work / "sluice.log", "wb"), stderr=subprocess.STDOUT)
        wait_for(lambda: b"accepting" in (work / "sluice.log").read_bytes(), timeout=20, what="the daemon")
        cpu_before = cpu_seconds(daemon.pid)
        ingest = subprocess.run([binary, "bench", "ingest", "--endpoint", f"http://127.0.0.1:{port}", "--seconds",
                                 str(args.seconds), "--record-bytes", "250", "--connections", "16"],
                                capture_output=True, text=True)
        if ingest.returncode != 0:
            sys.exit(f"the ingest failed: {ingest.stderr.strip()}\nthe daemon's log: {work / 'sluice.log'}")
        out = ingest.stdout
        cpu = cpu_seconds(daemon.pid) - cpu_before
        rss = peak_rss_mib(daemon.pid)
        daemon.terminate()
        daemon.wait(30)
        print(out.strip())
        from pyiceberg.catalog.sql import SqlCatalog
        reader = SqlCatalog("sluice", uri=reader_uri, warehouse=f"file://{warehouse}")
        tables = reader.list_tables("bench")
        rows, snapshots = 0, 0
        for ident in tables:
            table = reader.load_table(ident)
            rows += table.scan(selected_fields=("user_id",)).to_arrow().num_rows
            ids = [s.summary["sluice.batch-id"] for s in table.snapshots()]
            assert len(ids) == len(set(ids)), f"{ident}: a batch committed twice"
            snapshots += len(ids)
        acked = int(re.search(r"ingest: (\d+) records acknowledged", out).group(1))
        assert rows >= acked, f"{rows} rows for {acked} acknowledged records"
        end_to_end = float(re.search(r"end-to-end (\d+) records/s", out).group(1))
        commits = [json.loads(line)["fields"] for line in (work / "sluice.log").read_text().splitlines()
                   if '"committed"' in line]
        latencies = sorted(c["commit_ms"] for c in commits)
        print(f"sluice → iceberg ({len(tables)} table(s), {'PostgreSQL' if pg else 'SQLite'} catalog): {rows} rows, "
              f"{end_to_end:.0f} rows/s end to end; {snapshots} snapshots; daemon CPU {cpu:.1f} s = "
              f"{cpu / rows * 1e6:.2f} µs per row; peak RSS {rss:.0f} MiB")
        if latencies:
            p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
            print(f"commit latency per table (load, write Parquet, commit): median {statistics.median(latencies):.0f} ms, "
                  f"p95 {p95} ms, max {latencies[-1]} ms over {len(latencies)} commits of "
                  f"{statistics.mean(c['rows'] for c in commits):.0f} rows on average")
    finally:
        if pg:
            pg.close()


if __name__ == "__main__":
    main()
