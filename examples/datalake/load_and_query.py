#!/usr/bin/env python3
"""Load a small Parquet data lake with sluice and query it with duckdb.

    python3 -m pip install boto3 duckdb        # or use the repository's .venv after scripts/test.sh
    python3 examples/datalake/load_and_query.py

It starts sluice on config/lake.yaml (a local directory as the lake), sends 20,000 JSON events with
boto3 as any Firehose producer would, a few of them malformed, stops sluice with SIGTERM (which
flushes every buffer), and asks duckdb questions of the Parquet files and the error prefix.
Set SLUICE to a built binary to skip `cargo build --release`.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import duckdb

REPO = Path(__file__).resolve().parents[2]


def sluice_binary():
    if os.environ.get("SLUICE"):
        return os.environ["SLUICE"]
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    return str(REPO / "target" / "release" / "sluice")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def events(n):
    rng = random.Random(7)
    countries = ["NZ", "DE", "BR", "JP", "KE"]
    for i in range(n):
        yield {
            "event_id": f"e{i:06d}",
            "timestamp": f"2026-11-{20 + i % 3:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            "Event_Type": rng.choice(["view", "click", "purchase"]),
            "amount": round(rng.uniform(1, 500), 2) if i % 4 == 0 else None,
            "tags": rng.sample(["new", "promo", "mobile", "web"], k=i % 3),
            "user": {"id": 1000 + i % 250, "country": countries[i % 5]},
            "attrs": {"ab": "b" if i % 2 else "a"},
        }


def main():
    work = Path(tempfile.mkdtemp(prefix="sluice-lake-"))
    lake, port = work / "lake", free_port()
    env = {**os.environ, "SLUICE_LISTEN": f"127.0.0.1:{port}", "SLUICE_STATE": str(work / "state"),
           "LAKE_DIR": str(lake), "LAKE_INTERVAL": "300"}
    daemon = subprocess.Popen([sluice_binary(), "run", "--config", "config/lake.yaml"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(work / "sluice.log", "w"))
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{endpoint}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        fh = boto3.client("firehose", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
        records = [json.dumps(e).encode() for e in events(20_000)]
        records[10] = b'{"event_id": "broken", '                       # not JSON
        records[11] = b'{"event_id": "e000011", "amount": "lots"}'     # not a decimal
        for i in range(0, len(records), 500):
            r = fh.put_record_batch(DeliveryStreamName="events", Records=[{"Data": d} for d in records[i:i + 500]])
            assert r["FailedPutCount"] == 0, r
        print(f"sent {len(records)} records; stopping sluice, which flushes its buffers")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)

    db = duckdb.connect()
    files = sorted(str(p.relative_to(lake)) for p in lake.rglob("*.parquet"))
    print(f"\n{len(files)} Parquet files:", *files, sep="\n  ")
    events_glob = f"{lake}/events/*/*.parquet"
    # dt= is the arrival day (Firehose's !{timestamp} is the arrival time); ts is the event's own time.
    print("\nevents per event day and type (dt = arrival day):")
    for row in db.execute(f"""
            SELECT dt, ts::DATE AS day, event_type, count(*) AS events, sum(amount) AS revenue
            FROM read_parquet('{events_glob}', hive_partitioning = true)
            GROUP BY ALL ORDER BY ALL""").fetchall():
        print("  ", row)
    print("\ntop countries by buyers:")
    for row in db.execute(f"""
            SELECT "user".country AS country, count(DISTINCT "user".id) AS buyers
            FROM read_parquet('{events_glob}') WHERE event_type = 'purchase'
            GROUP BY ALL ORDER BY buyers DESC, country LIMIT 3""").fetchall():
        print("  ", row)
    total = db.execute(f"SELECT count(*) FROM read_parquet('{events_glob}')").fetchall()[0][0]
    errors = db.execute(f"""
            SELECT lastErrorCode, lastErrorMessage FROM read_json_auto('{lake}/errors/*/*/*')
            ORDER BY ALL""").fetchall()
    print(f"\n{total} rows in the lake, {len(errors)} records in the error prefix:")
    for code, message in errors:
        print("  ", code, "-", message)
    shutil.rmtree(work)
    return 0 if total + len(errors) == 20_000 else 1


if __name__ == "__main__":
    sys.exit(main())
