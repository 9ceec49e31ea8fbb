#!/usr/bin/env python3
"""The log shipper's load: a container log tailed, `parse: cri`, into two destinations (BENCHMARKS.md,
"File tail → parse: cri → two destinations").

Writes N CRI lines ("<RFC 3339 time> stdout F <n> <12 words>", about 171 bytes) under a kubelet path
(`logs/pods/<ns>_<pod>_<uid>/<container>/0.log`, so every record also gets the pod's fields), then starts
target/release/sluice reading it from its beginning with `fields:` (each line wrapped as JSON), CRI parsed
where lines are wrapped (`source.file.parse: cri`; `--parse processor`: a `parse: cri` processor on the
message), and delivering to local GZIP (5 MiB / 2 s) and, with `--destinations 2`, to OpenSearch
`_bulk` served by `sluice bench receiver` (the strict Python fake in tests/ cannot take this rate).

It polls /metrics every 0.1 s and prints:
- **end to end**: lines / (time from start until every destination has every line), which includes the
  start-up and the last buffer's `interval_seconds` wait;
- **steady**: lines / time between 10% and 90% of the lines delivered by the slowest destination;
- the daemon's CPU seconds (µs per line) and its peak RSS (VmHWM).

    cargo build --release
    .venv/bin/python scripts/bench-logs.py --lines 3000000 --destinations 2
    .venv/bin/python scripts/bench-logs.py --lines 3000000 --destinations 2 --parse processor
    .venv/bin/python scripts/bench-logs.py --lines 3000000 --destinations 1 --parse none
"""

import argparse
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, cpu_seconds, free_port, metrics, peak_rss_mib, stop

WORDS = ["GET", "POST", "/api/v1/cart", "/api/v1/orders", "status=200", "status=404", "user=alice", "user=bob",
         "latency_ms=12", "region=eu"]
POD_DIR = "shop_cart-7d9f_0b6c7a1e-1111-2222-3333-444455556666"


def write_log(path, lines):
    rng = random.Random(7)
    path.parent.mkdir(parents=True)
    with open(path, "w") as out:
        chunk = []
        for n in range(lines):
            words = " ".join(rng.choice(WORDS) for _ in range(12))
            chunk.append(f"2026-12-06T10:00:{n % 60:02d}.{n:09d}Z stdout F {n} {words}\n")
            if len(chunk) == 100_000:
                out.write("".join(chunk))
                chunk = []
        out.write("".join(chunk))


def delivered(endpoint, destinations):
    try:
        m = metrics(endpoint)
    except OSError:
        return [0] * destinations
    local = sum(v for k, v in m.items() if k.startswith("sluice_delivery_to_local_records_total"))
    opensearch = sum(v for k, v in m.items()
                     if k.startswith("sluice_delivery_to_amazon_opensearch_service_records_total"))
    return [local, opensearch][:destinations]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=3_000_000)
    parser.add_argument("--destinations", type=int, choices=[1, 2], default=2)
    parser.add_argument("--parse", choices=["source", "processor", "none"], default="source",
                        help="parse CRI where the file source wraps lines (source.file.parse: cri), with a "
                             "`parse: cri` processor, or not at all")
    parser.add_argument("--gzip-level", type=int, help="compression_level of the local GZIP destination")
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "sluice"))
    parser.add_argument("--keep", help="write the log here once and reuse it (it takes a while to write)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-logs-"))
    logs = Path(args.keep) if args.keep else work / "logs"
    log = logs / "pods" / POD_DIR / "server" / "0.log"
    if not log.exists():
        write_log(log, args.lines)
    processors = "    processors: [ { parse: { format: cri, field: message } } ]\n" if args.parse == "processor" else ""
    source_parse = ", parse: cri" if args.parse == "source" else ""
    level = f", compression_level: {args.gzip_level}" if args.gzip_level else ""
    receiver_port = free_port()
    opensearch = (f'      - opensearch: {{ endpoint: "http://127.0.0.1:{receiver_port}", index: logs, '
                  f'backup: {{ local: {{ path: ./os-backup }} }} }}\n') if args.destinations == 2 else ""
    (work / "bench.yaml").write_text(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: pods
    source: {{ file: {{ include: ["{logs}/pods/*/*/*.log"], start_at: beginning, fields: {{ node: n1 }}{source_parse} }} }}
{processors}    buffering: {{ size_mb: 5, interval_seconds: 2 }}
    destinations:
      - local: {{ path: ./out, compression: GZIP{level}, append_delimiter: true }}
{opensearch}""")
    receiver = subprocess.Popen([args.binary, "bench", "receiver", "--listen", f"127.0.0.1:{receiver_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    time.sleep(0.3)
    start = time.monotonic()
    proc = subprocess.Popen([args.binary, "run", "--config", "bench.yaml", "--listen", f"127.0.0.1:{port}"],
                            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marks = {}
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"sluice exited with {proc.returncode}")
            slowest = min(delivered(endpoint, args.destinations))
            now = time.monotonic() - start
            for share in (0.1, 0.9, 1.0):
                if slowest >= share * args.lines and share not in marks:
                    marks[share] = now
            if 1.0 in marks:
                break
            time.sleep(0.1)
        cpu = cpu_seconds(proc.pid)
        peak = peak_rss_mib(proc.pid)
    finally:
        stop(proc, receiver)
        shutil.rmtree(work, ignore_errors=True)
    total = marks[1.0]
    steady = 0.8 * args.lines / (marks[0.9] - marks[0.1])
    what = f"{args.destinations} destination(s), parse: {args.parse}, GZIP level {args.gzip_level or 6}"
    print(f"{args.lines:,} lines, {what}: end to end {total:.1f} s = {args.lines / total:,.0f} lines/s; "
          f"steady {steady:,.0f} lines/s; daemon CPU {cpu:.1f} s ({cpu / args.lines * 1e6:.2f} µs/line); "
          f"peak RSS {peak} MiB")


if __name__ == "__main__":
    main()
