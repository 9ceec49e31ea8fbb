"""A fleet: several real sluice daemons, each with its own state directory, sharing one destination (issue #23).

For every destination family — an S3 bucket (moto_server), a local directory, OpenSearch (the strict `_bulk`
fake), a PostgreSQL table (a real server) and a Firehose HTTP endpoint receiver (the strict protocol fake) —
three replicas with the same config take PutRecordBatch calls round-robin, as behind a load balancer, and one
of them is killed with -9 mid-load and started again. Every acknowledged record must be in the destination
exactly once. Before names were scoped to the state directory, replicas named their batches alike and
overwrote each other's objects and documents (9% lost in the documented gateway setup).

Also: two file shippers on two "hosts" with identical log files into one directory, and one daemon per state
directory (an advisory lock).
"""

import json
import signal
import subprocess
import threading
import time

import pytest

from conftest import BINARY, local_objects, wait_for
from fakes.http_endpoint import FakeHttpEndpoint
from fakes.opensearch import FakeOpenSearch
from pg import PASSWORD, Cluster

REPLICAS = 3
STREAM = "fleet"


class RoundRobinProducer:
    """Puts batches of 100 records {"id": n} to the replicas in turn until stopped; remembers which were
    acknowledged. A replica being killed or restarted refuses the call: those records were not acknowledged."""

    def __init__(self, daemons):
        self.clients = [d.client(connect_timeout=2, read_timeout=20) for d in daemons]
        self.acked = set()
        self.next_id = 0
        self.calls = [0] * len(daemons)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        turn = 0
        while not self.stopping.is_set():
            ids = list(range(self.next_id, self.next_id + 100))
            self.next_id += 100
            i = turn % len(self.clients)
            turn += 1
            try:
                out = self.clients[i].put_record_batch(DeliveryStreamName=STREAM, Records=[
                    {"Data": (json.dumps({"id": n, "pad": "x" * 100}) + "\n").encode()} for n in ids])
                self.acked.update(n for n, r in zip(ids, out["RequestResponses"]) if "RecordId" in r)
                self.calls[i] += 1
            except Exception:  # noqa: BLE001 - the replica is down: nothing acknowledged
                time.sleep(0.02)
            time.sleep(0.005)

    def stop(self):
        self.stopping.set()
        self.thread.join(30)


def run_fleet_with_a_crash(daemons, delivered_ids, env=None):
    """Starts the replicas, loads them round-robin, kills one with -9 mid-load and restarts it, then checks
    that every acknowledged id was delivered exactly once (`delivered_ids()` returns ids with repeats)."""
    for d in daemons:
        d.start(env=env)
    producer = RoundRobinProducer(daemons)
    time.sleep(2.5)
    victim = daemons[1]
    victim.kill9()
    time.sleep(1.5)
    victim.start(env=env)
    time.sleep(2.5)
    producer.stop()
    assert all(producer.calls), f"every replica took puts: {producer.calls}"
    assert len(producer.acked) >= 3000, f"only {len(producer.acked)} acknowledged"
    wait_for(lambda: set(delivered_ids()) >= producer.acked, timeout=90, what="every acknowledged record")
    time.sleep(2.5)  # a duplicate (a replayed batch under a new name) would have landed by now
    delivered = delivered_ids()
    repeated = len(delivered) - len(set(delivered))
    assert repeated == 0, f"{repeated} records delivered twice"
    assert producer.acked <= set(delivered)
    # Records of the put in flight at the kill may be durable though never acknowledged: delivered once or not.
    assert set(delivered) - producer.acked <= set(range(producer.next_id))
    return producer


def replicas(sluice_factory, config):
    return [sluice_factory(config, name=f"replica-{i}") for i in range(REPLICAS)]


def lines_to_ids(bodies):
    return [json.loads(line)["id"] for body in bodies for line in body.decode().splitlines() if line]


def test_replicas_share_an_s3_bucket_as_the_gateway_does(sluice_factory, moto, bucket):
    # deploy/kubernetes/gateway.yaml's shape: streams created on first put from the auto_create template.
    daemons = replicas(sluice_factory, f"""
        storage: {{ dir: ./var }}
        auto_create:
          buffering: {{ size_mb: 1, interval_seconds: 1 }}
          destination:
            s3: {{ bucket: {bucket}, endpoint: "{moto.endpoint}", region: us-east-1, force_path_style: true }}
        """)
    run_fleet_with_a_crash(daemons, lambda: lines_to_ids(moto.objects(bucket).values()))
    keys = list(moto.objects(bucket))
    assert len(keys) == len(set(keys)) and len(keys) >= REPLICAS


def test_replicas_share_a_local_directory(sluice_factory, tmp_path):
    shared = tmp_path / "shared"
    daemons = replicas(sluice_factory, f"""
        storage: {{ dir: ./var }}
        pipelines:
          - name: {STREAM}
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            destination: {{ local: {{ path: "{shared}" }} }}
        """)
    run_fleet_with_a_crash(daemons, lambda: lines_to_ids(local_objects(shared).values()))


def test_replicas_share_an_opensearch_index(sluice_factory):
    fake = FakeOpenSearch().start()
    try:
        daemons = replicas(sluice_factory, f"""
            storage: {{ dir: ./var }}
            pipelines:
              - name: {STREAM}
                buffering: {{ size_mb: 1, interval_seconds: 1 }}
                delivery: {{ retry_initial_ms: 100, retry_max_ms: 400 }}
                destination:
                  opensearch:
                    endpoint: "{fake.url}"
                    index: logs
                    backup: {{ local: {{ path: ./backup }} }}
            """)

        def ids():
            with fake.lock:
                return [doc["id"] for doc in fake.docs.values()]
        run_fleet_with_a_crash(daemons, ids)
        assert fake.violations == []
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def pg():
    cluster = Cluster()
    yield cluster
    cluster.close()


def test_replicas_share_a_postgresql_table(sluice_factory, pg):
    import os
    pg.sql("CREATE TABLE fleet_rows (id bigint NOT NULL, pad text)")
    daemons = replicas(sluice_factory, f"""
        storage: {{ dir: ./var }}
        pipelines:
          - name: {STREAM}
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            destination:
              postgres:
                url: {pg.url}
                table: fleet_rows
                columns: [id, pad]
                backup: {{ local: {{ path: ./backup }} }}
        """)
    run_fleet_with_a_crash(daemons, lambda: [int(r[0]) for r in pg.sql("SELECT id FROM fleet_rows")],
                           env={**os.environ, "PG_PASSWORD": PASSWORD})


def test_replicas_share_an_http_endpoint_receiver(sluice_factory):
    fake = FakeHttpEndpoint().start()
    try:
        daemons = replicas(sluice_factory, f"""
            storage: {{ dir: ./var }}
            pipelines:
              - name: {STREAM}
                buffering: {{ size_mb: 1, interval_seconds: 1 }}
                destination:
                  http_endpoint:
                    url: "{fake.url}"
                    retry_duration_seconds: 60
                    backup: {{ local: {{ path: ./backup }} }}
            """)

        def ids():
            # A receiver deduplicates by X-Amz-Firehose-Request-Id, as the protocol asks: a request sent
            # again (a replay after kill -9) is answered but not applied twice.
            seen, out = set(), []
            with fake.lock:
                accepted = list(fake.accepted)
            for request_id, records in accepted:
                if request_id not in seen:
                    seen.add(request_id)
                    out.extend(lines_to_ids(records))
            return out
        run_fleet_with_a_crash(daemons, ids)
        assert fake.violations == []
    finally:
        fake.stop()


def test_file_shippers_on_two_hosts_with_the_same_files_both_land(sluice_factory, tmp_path):
    """Two hosts tail identical log files (same names, same lines: two replicas of one service) into one
    directory. Their batches have the same sequence numbers; scoped names keep both hosts' objects."""
    shared = tmp_path / "shared"
    hosts = []
    for h in range(2):
        logs = tmp_path / f"host-{h}-logs"
        logs.mkdir()
        (logs / "app.log").write_text("".join(f'{{"id": {i}}}\n' for i in range(500)))
        hosts.append(sluice_factory(f"""
            storage: {{ dir: ./var }}
            pipelines:
              - name: app
                source: {{ file: {{ include: ["{logs}/*.log"], start_at: beginning, raw: true }} }}
                buffering: {{ size_mb: 1, interval_seconds: 1 }}
                destination: {{ local: {{ path: "{shared}" }} }}
            """, name=f"host-{h}").start())
    wait_for(lambda: len(lines_to_ids(local_objects(shared).values())) >= 1000, timeout=30, what="both hosts' lines")
    time.sleep(1.5)
    ids = lines_to_ids(local_objects(shared).values())
    assert sorted(ids) == sorted(list(range(500)) * 2)


def test_a_second_daemon_on_a_state_directory_in_use_exits_at_once_naming_it_and_the_holder(sluice_factory):
    first = sluice_factory("""
        storage: { dir: ./var }
        pipelines:
          - name: one
            destination: { local: { path: ./data } }
        """, name="shared").start()
    second = subprocess.run(
        [str(BINARY), "run", "--config", str(first.config_path), "--listen", "127.0.0.1:0"],
        cwd=first.workdir, capture_output=True, text=True, timeout=20)
    assert second.returncode != 0
    state_dir = str(first.workdir / "var")
    assert "is in use by another sluice" in second.stderr, second.stderr
    assert f"PID {first.proc.pid}" in second.stderr and ("./var" in second.stderr or state_dir in second.stderr), second.stderr
    # The lock goes with its holder, however it ends.
    first.kill9()
    first.start()
    assert first.stop(signal.SIGTERM) == 0


def test_hosts_are_told_apart_without_exporting_hostname(sluice_factory, tmp_path):
    """systemd sets no HOSTNAME and shells do not export it: ${HOSTNAME} in a config and the `host` field of
    wrapped lines still carry the machine's host name (deploy/systemd/sluice.yaml relies on both)."""
    import os
    import socket
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("hello\n")
    d = sluice_factory(f"""
        storage: {{ dir: ./var }}
        pipelines:
          - name: app
            source: {{ file: {{ include: ["{logs}/*.log"], start_at: beginning, fields: {{ app: shop }} }} }}
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            destination: {{ local: {{ path: ./data, prefix: "hosts/${{HOSTNAME}}/" }} }}
        """)
    d.start(env={k: v for k, v in os.environ.items() if k != "HOSTNAME"})
    host = socket.gethostname()
    objects = wait_for(lambda: local_objects(d.workdir / "data"), what="the line")
    (key, body), = objects.items()
    assert key.startswith(f"hosts/{host}/"), key
    assert json.loads(body) == {"message": "hello", "file": str(logs / "app.log"), "app": "shop", "host": host}
