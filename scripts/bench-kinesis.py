#!/usr/bin/env python3
"""Kinesis source throughput: how fast sluice reads a 4-shard kinesalite stream and delivers it, and its
CPU per record, next to Direct PUT's (BENCHMARKS.md, "Kinesis source").

Fills a stream in kinesalite (tests/js/node_modules, from `npm ci --prefix tests/js`) with N records of 250
bytes, then starts target/release/sluice reading it from TRIM_HORIZON into a local directory and measures
the time until every record is delivered and the CPU seconds the daemon used.

    .venv/bin/python scripts/bench-kinesis.py --records 200000
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import boto3

from benchlib import ROOT, cpu_seconds, free_port, metrics, stop  # scripts/ is on sys.path when a script runs




def delivered(endpoint, stream):
    return int(metrics(endpoint).get(f'sluice_delivery_to_s3_records_total{{delivery_stream_name="{stream}"}}', 0))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-kbench-"))
    kport, sport = free_port(), free_port()
    kinesalite = subprocess.Popen([str(ROOT / "tests/js/node_modules/.bin/kinesalite"), "--port", str(kport),
                                   "--createStreamMs", "0", "--shardLimit", "100"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    k = boto3.client("kinesis", endpoint_url=f"http://127.0.0.1:{kport}", region_name="us-east-1",
                     aws_access_key_id="x", aws_secret_access_key="x")
    k.create_stream(StreamName="bench", ShardCount=args.shards)
    time.sleep(0.5)
    started = time.monotonic()
    for i in range(0, args.records, 500):
        batch = [{"PartitionKey": f"user{j % 997}",
                  "Data": json.dumps({"user_id": j % 997, "event": "click", "seq": j, "pad": "x" * 180}).encode()}
                 for j in range(i, min(i + 500, args.records))]
        k.put_records(StreamName="bench", Records=batch)
    print(f"filled {args.records} records in {time.monotonic() - started:.1f} s")
    (work / "sluice.yaml").write_text(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: bench
    source:
      kinesis: {{ stream_name: bench, endpoint: "http://127.0.0.1:{kport}", starting_position: TRIM_HORIZON }}
    buffering: {{ size_mb: 5, interval_seconds: 2 }}
    destination: {{ local: {{ path: ./data, compression: ZSTD, append_delimiter: true }} }}
""")
    sluice = subprocess.Popen([str(ROOT / "target/release/sluice"), "run", "--config", "sluice.yaml",
                               "--listen", f"127.0.0.1:{sport}"], cwd=work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{sport}"
    started = time.monotonic()
    cpu_before = None
    while time.monotonic() - started < 600:
        try:
            if cpu_before is None:
                cpu_before = cpu_seconds(sluice.pid)
            if delivered(endpoint, "bench") >= args.records:
                break
        except OSError:
            pass
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(sluice.pid) - (cpu_before or 0)
    done = delivered(endpoint, "bench")
    print(f"read and delivered {done} records in {elapsed:.1f} s = {done / elapsed:.0f} records/s; "
          f"sluice CPU {cpu:.1f} s = {cpu / max(done, 1) * 1e6:.2f} µs per record")
    stop(sluice, kinesalite)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
