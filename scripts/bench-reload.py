#!/usr/bin/env python3
"""Hot reload time with many pipelines (BENCHMARKS.md, "Hot reload and tap").

Starts target/release/sluice with N pipelines (local destinations), puts a few records into each so every
pipeline has something buffered, then sends SIGHUP with (a) a config where all N pipelines changed, and
(b) one where a single pipeline changed, and measures from the signal to the log line "config reloaded".

    cargo build --release
    .venv/bin/python scripts/bench-reload.py --pipelines 100
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from benchlib import ROOT, free_port  # scripts/ is on sys.path when a script runs



def config(n, interval, changed=None, others=30):
    text = "storage: { dir: ./var }\npipelines:\n"
    for i in range(n):
        iv = interval if changed is None or i == changed else others
        text += f"  - name: p{i}\n    buffering: {{ size_mb: 1, interval_seconds: {iv} }}\n" \
                f"    destination: {{ local: {{ path: ./out/p{i} }} }}\n"
    return text


def put(endpoint, stream):
    body = json.dumps({"DeliveryStreamName": stream, "Records": [{"Data": "eyJhIjoxfQ=="}] * 10}).encode()
    req = urllib.request.Request(endpoint, data=body, headers={"X-Amz-Target": "Firehose_20150804.PutRecordBatch",
                                                             "Content-Type": "application/x-amz-json-1.1"})
    urllib.request.urlopen(req, timeout=10).read()


def reload(proc, log, cfg_path, text):
    before = log.read_text().count("config reloaded")
    cfg_path.write_text(text)
    started = time.monotonic()
    proc.send_signal(signal.SIGHUP)
    while log.read_text().count("config reloaded") == before:
        time.sleep(0.005)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipelines", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-reload-"))
    cfg = work / "sluice.yaml"
    cfg.write_text(config(args.pipelines, 30))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}/"
    log = work / "sluice.log"
    proc = subprocess.Popen([str(ROOT / "target" / "release" / "sluice"), "run", "--config", str(cfg), "--listen",
                             f"127.0.0.1:{port}"], cwd=work, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "RUST_LOG": "info"})
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(endpoint + "health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        for i in range(args.pipelines):
            put(endpoint, f"p{i}")
        every = reload(proc, log, cfg, config(args.pipelines, 20))
        for i in range(args.pipelines):
            put(endpoint, f"p{i}")
        one = reload(proc, log, cfg, config(args.pipelines, 10, changed=7, others=20))
        print(f"{args.pipelines} pipelines, each holding buffered records: all changed {every:.3f} s, "
              f"one changed {one:.3f} s (SIGHUP to 'config reloaded')")
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
