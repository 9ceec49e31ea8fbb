#!/usr/bin/env python3
"""File source throughput: lines/s tailed and delivered end to end (BENCHMARKS.md, "File source").

Writes N lines of 200 bytes into one file or spread over F files, then starts target/release/sluice tailing
them from the beginning (`start_at: beginning`) into a local directory with GZIP, checkpoints on as always,
and measures the time until `sluice_delivery_to_s3_records_total` reaches N and the daemon's CPU seconds.

    cargo build --release
    .venv/bin/python scripts/bench-files.py --lines 2000000 --files 1
    .venv/bin/python scripts/bench-files.py --lines 2000000 --files 100
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from benchlib import ROOT, cpu_seconds, free_port  # scripts/ is on sys.path when a script runs




def delivered(endpoint):
    try:
        text = urllib.request.urlopen(endpoint + "/metrics", timeout=5).read().decode()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith('sluice_delivery_to_s3_records_total{delivery_stream_name="tail"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "sluice"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-files-"))
    logs = work / "logs"
    logs.mkdir()
    per_file = args.lines // args.files
    line = ("x" * 190)
    for f in range(args.files):
        with open(logs / f"f{f}.log", "w") as out:
            out.write("".join(f"{f:03d}-{i:07d}-{line[:186]}\n" for i in range(per_file)))
    total = per_file * args.files
    (work / "bench.yaml").write_text("""
storage: { dir: ./var }
pipelines:
  - name: tail
    source: { file: { include: ["./logs/*.log"], start_at: beginning, raw: true } }
    buffering: { size_mb: 16, interval_seconds: 1 }
    destination: { local: { path: ./out, compression: GZIP } }
""")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([args.binary, "run", "--config", "bench.yaml", "--listen", f"127.0.0.1:{port}"], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    try:
        while delivered(endpoint) < total:
            if proc.poll() is not None:
                raise SystemExit(f"sluice exited with {proc.returncode}")
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{total:,} lines of 200 bytes from {args.files} file(s): {elapsed:.2f} s, "
          f"{total / elapsed:,.0f} lines/s end to end, daemon CPU {cpu:.2f} s ({cpu / total * 1e6:.2f} µs/line)")


if __name__ == "__main__":
    main()
