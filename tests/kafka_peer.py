"""A real Kafka-protocol broker for the tests: tansu (a Kafka-compatible broker written in Rust,
`cargo install tansu --locked --features dynostore`), which scripts/test.sh builds once into
$SLUICE_TOOLS/tansu (default ~/.cache/sluice-tools). Clients on the test side are kafka-python's.

Topics live in memory (`memory://`), or in an S3 bucket on moto_server (`s3://`) when a test restarts
the broker and needs them back. tansu does not implement transactions (EndTxn): the Kafka
destination's transactional mode cannot be exercised against it (see tests/test_kafka.py).
"""

import os
import subprocess
import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import free_port, wait_for

TOOLS = Path(os.environ.get("SLUICE_TOOLS", Path.home() / ".cache" / "sluice-tools"))
TANSU = TOOLS / "tansu" / "bin" / "tansu"


class Tansu:
    def __init__(self, storage="memory://tansu/", env=None):
        assert TANSU.exists(), f"{TANSU} is missing: scripts/test.sh builds it (cargo install tansu@0.6.0 --features dynostore)"
        self.port = free_port()
        self.storage = storage
        self.env = {**os.environ, **(env or {})}
        self.proc = None
        self.log = Path(f"/tmp/tansu-{self.port}.log")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(TANSU), "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", self.storage],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=self.env)
        wait_for(lambda: b"ready in" in self.log.read_bytes() or self.proc.poll() is not None, 30, what="tansu")
        assert self.proc.poll() is None, self.log.read_text(errors="replace")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def create_topic(self, name, partitions):
        subprocess.run([str(TANSU), "topic", "create", name, "--partitions", str(partitions),
                        "--broker", f"tcp://{self.bootstrap}"], check=True, capture_output=True, env=self.env)

    def produce(self, topic, records):
        """records: [(key or None, value bytes, headers list)]; returns when all are acknowledged."""
        p = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        for key, value, headers in records:
            p.send(topic, key=key, value=value, headers=headers)
        p.flush()
        p.close()

    def read_all(self, topic, partitions, isolation="read_uncommitted"):
        """Every record of the topic, from the start (no group)."""
        c = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                          auto_offset_reset="earliest", isolation_level=isolation, consumer_timeout_ms=3000)
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        out = list(c)
        c.close()
        return out

    def committed(self, group, topic, partitions):
        """{partition: committed offset or None} of a consumer group."""
        c = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False)
        out = {p: c.committed(TopicPartition(topic, p)) for p in range(partitions)}
        c.close()
        return out


