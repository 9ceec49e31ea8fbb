#!/usr/bin/env python3
"""Peak memory under many connections posting the largest batches, with and without `storage.max_memory`
(BENCHMARKS.md, "Memory bound": the per-connection term). N threads each post PutRecordBatch requests of
500 records × 8,000 bytes (4 MB of data, a 5.3 MB body) as fast as they are answered, for a fixed time;
a 503 is counted and the request sent again after a jittered pause of up to 100 ms, as the SDKs' standard
retry mode does (without the pause the refused bodies, read and dropped, cost the machine more than they save).

    cargo build --release && .venv/bin/python scripts/measure-request-memory.py --connections 64
    .venv/bin/python scripts/measure-request-memory.py --connections 64 --max-memory 128MiB
"""

import argparse
import base64
import http.client
import json
import os
import random
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from benchlib import ROOT, free_port, peak_rss_mib  # scripts/ is on sys.path when a script runs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--max-memory", default=None, help="storage.max_memory (default: unset)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-reqmem-"))
    port = free_port()
    storage = "{ dir: ./var" + (f", max_memory: {args.max_memory}" if args.max_memory else "") + " }"
    (work / "sluice.yaml").write_text(f"""
api: {{ max_connections: 4096 }}
storage: {storage}
pipelines:
  - name: big
    buffering: {{ size_mb: 8, interval_seconds: 1 }}
    destination: {{ local: {{ path: ./data }} }}
""")
    daemon = subprocess.Popen([str(ROOT / "target/release/sluice"), "run", "--config", "sluice.yaml",
                               "--listen", f"127.0.0.1:{port}"], cwd=work, env={**os.environ, "RUST_LOG": "warn"},
                              stdout=open(work / "sluice.log", "wb"), stderr=subprocess.STDOUT)
    time.sleep(1.5)
    record = base64.b64encode(b"x" * 8000).decode()
    body = json.dumps({"DeliveryStreamName": "big", "Records": [{"Data": record}] * 500}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Firehose_20150804.PutRecordBatch"}
    counts = {"ok": 0, "503": 0, "other": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            try:
                conn.request("POST", "/", body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                key = "ok" if r.status == 200 else "503" if r.status == 503 else "other"
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            except OSError:
                key = "other"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            with lock:
                counts[key] += 1
            if key != "ok":
                time.sleep(random.uniform(0, 0.1))

    threads = [threading.Thread(target=client) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rss = peak_rss_mib(daemon.pid)
    daemon.terminate()
    daemon.wait(30)
    mb = counts["ok"] * 4.0
    print(f"{args.connections} connections, max_memory {args.max_memory or 'unset'}: peak RSS {rss} MiB; "
          f"{counts['ok']} batches acknowledged ({mb / args.seconds:.0f} MB/s of records), {counts['503']} answered 503, "
          f"{counts['other']} other")


if __name__ == "__main__":
    main()
