#!/usr/bin/env python3
"""Kafka source throughput: how fast sluice reads a topic in a consumer group and delivers it, its CPU per
record, and the consumer lag while it loads (BENCHMARKS.md, "Kafka source").

Starts tansu (the Kafka-protocol broker scripts/test.sh caches in $SLUICE_TOOLS/tansu) in memory, fills a
topic of P partitions with N records of about 223 bytes (kafka-python), then starts target/release/sluice
reading it from EARLIEST into a local directory (GZIP, 5 MiB / 2 s buffers, the Direct PUT benchmark's
pipeline) and measures the time until every record is delivered, the daemon's CPU seconds, and the summed
`sluice_kafka_consumer_lag` once a second.

    .venv/bin/python scripts/bench-kafka.py --records 1000000 --partitions 8
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from kafka import KafkaProducer

from benchlib import ROOT, cpu_seconds, free_port, metrics, stop  # scripts/ is on sys.path when a script runs

TANSU = Path(os.environ.get("SLUICE_TOOLS", Path.home() / ".cache" / "sluice-tools")) / "tansu" / "bin" / "tansu"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-kafka-bench-"))
    kport, sport = free_port(), free_port()
    url = f"tcp://127.0.0.1:{kport}"
    broker = subprocess.Popen([str(TANSU), "broker", "--listener-url", url, "--advertised-listener-url", url,
                               "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    subprocess.run([str(TANSU), "topic", "create", "bench", "--partitions", str(args.partitions), "--broker", url], check=True)
    producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{kport}", linger_ms=20, batch_size=1 << 20)
    started = time.monotonic()
    for j in range(args.records):
        producer.send("bench", key=f"user{j % 997}".encode(),
                      value=json.dumps({"user_id": j % 997, "event": "click", "seq": j, "pad": "x" * 160}).encode())
    producer.flush()
    print(f"filled {args.records} records in {time.monotonic() - started:.1f} s")
    (work / "sluice.yaml").write_text(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: bench
    source:
      kafka: {{ bootstrap_servers: "127.0.0.1:{kport}", topics: [bench], starting_position: EARLIEST }}
    buffering: {{ size_mb: 5, interval_seconds: 2 }}
    destination: {{ local: {{ path: ./data, compression: GZIP, append_delimiter: true }} }}
""")
    sluice = subprocess.Popen([str(ROOT / "target/release/sluice"), "run", "--config", "sluice.yaml",
                               "--listen", f"127.0.0.1:{sport}"], cwd=work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{sport}"
    started = time.monotonic()
    cpu_before, done, lags, last_lag = None, 0, [], 0.0
    while time.monotonic() - started < 900:
        try:
            if cpu_before is None:
                cpu_before = cpu_seconds(sluice.pid)
            m = metrics(endpoint)
            done = int(m.get('sluice_delivery_to_local_records_total{delivery_stream_name="bench"}', 0))
            if time.monotonic() - last_lag >= 1:
                last_lag = time.monotonic()
                lags.append((round(last_lag - started), int(sum(v for k, v in m.items() if k.startswith("sluice_kafka_consumer_lag{")))))
            if done >= args.records:
                break
        except OSError:
            pass
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(sluice.pid) - (cpu_before or 0)
    print(f"read and delivered {done} records in {elapsed:.1f} s = {done / elapsed:.0f} records/s; "
          f"sluice CPU {cpu:.1f} s = {cpu / max(done, 1) * 1e6:.2f} µs per record "
          f"({done / max(cpu, 1e-9):.0f} records per CPU-second)")
    print("consumer lag (s since start, records):", lags)
    stop(sluice, broker)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
