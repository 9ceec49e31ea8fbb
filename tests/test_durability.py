"""Durability: acknowledged means on disk. Restarts, kill -9 under load, store outages, full storage."""

import json
import os
import threading
import time
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from conftest import MotoServer, free_port, local_objects, wait_for

# How many times each kill -9 test kills the daemon under load. CI runs 20, the figure issue #9
# asks for; set SLUICE_KILL_ROUNDS lower for a quick local run.
KILL_ROUNDS = int(os.environ.get("SLUICE_KILL_ROUNDS", "20"))


def s3_config(name, bucket, endpoint, extra=""):
    return f"""
        storage:
          segment_bytes: 64KiB
        pipelines:
          - name: {name}
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            delivery: {{ retry_initial_ms: 100, retry_max_ms: 500 }}
            {extra}
            destination:
              s3: {{ bucket: {bucket}, endpoint: "{endpoint}", region: us-east-1, force_path_style: true, append_delimiter: true }}
        """


def delivered_lines(objects):
    return [line for body in objects.values() for line in body.splitlines()]


def kill_9_under_load(d, stream, make_batch, workers, acked_target):
    """Puts batches from several threads until `acked_target` records are acknowledged, then kills
    the daemon with SIGKILL mid-load. make_batch(tag, n) returns [(key, data)] with keys unique per
    (tag, n); returns the keys of every acknowledged record."""
    acked, stop = [], threading.Event()

    def producer(tag):
        c = d.client()
        n = 0
        while not stop.is_set():
            batch = make_batch(tag, n)
            n += len(batch)
            try:
                r = c.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": data} for _, data in batch])
            except Exception:
                return  # the daemon died mid-request: nothing in this batch was acknowledged
            acked.extend(key for (key, _), resp in zip(batch, r["RequestResponses"]) if "RecordId" in resp)

    tags = [f"{d.kills}.{w}" for w in range(workers)]
    threads = [threading.Thread(target=producer, args=(t,)) for t in tags]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= acked_target, timeout=60, what="load")
    d.kill9()
    d.kills += 1
    stop.set()
    for t in threads:
        t.join()
    return set(acked)


def kill_9_rounds(d, stream, make_batch, workers, per_round, rounds):
    """`rounds` × (start, load, kill -9) over one state directory: each start replays what the
    previous crash left, under load. Returns every acknowledged key; the daemon is left stopped."""
    d.kills = 0
    acked = set()
    for _ in range(rounds):
        d.start()
        acked |= kill_9_under_load(d, stream, make_batch, workers, per_round)
    return acked


def assert_exactly_once(acked, keys, what):
    """Every acknowledged key delivered (0 lost) and no key delivered twice (0 duplicates).
    Keys not acknowledged (in flight at a kill) may appear once, never twice."""
    counts = Counter(keys)
    duplicates = {k: n for k, n in counts.items() if n > 1}
    lost = acked - set(counts)
    print(f"{what}: {len(acked)} acknowledged, {len(counts)} distinct delivered, "
          f"{len(lost)} lost, {sum(n - 1 for n in duplicates.values())} duplicates")
    assert not lost, f"{len(lost)} acknowledged {what} lost, e.g. {sorted(lost)[:5]}"
    assert not duplicates, f"{len(duplicates)} {what} delivered more than once, e.g. {list(duplicates.items())[:5]}"


def test_undelivered_records_are_replayed_after_a_restart(sluice_factory):
    store = MotoServer()  # not started yet: the store is down while records arrive
    d = sluice_factory(s3_config("orders", "lake", store.endpoint)).start()
    data = [f"order-{i}".encode() for i in range(1000)]
    r = d.client().put_record_batch(DeliveryStreamName="orders", Records=[{"Data": x} for x in data[:500]])
    assert r["FailedPutCount"] == 0
    d.client().put_record_batch(DeliveryStreamName="orders", Records=[{"Data": x} for x in data[500:]])
    wait_for(lambda: d.metric("sluice_delivery_to_s3_failures_total", "orders") >= 1, what="failed deliveries")
    d.kill9()

    store.start()
    try:
        store.s3().create_bucket(Bucket="lake")
        d.start()
        lines = wait_for(lambda: (lambda l: l if len(l) >= 1000 else None)(delivered_lines(store.objects("lake"))), what="replayed delivery")
        assert sorted(lines) == sorted(data)
        assert "replaying undelivered records" in d.log()
    finally:
        store.stop()


def test_kill_9_under_load_loses_nothing_and_repeats_nothing(sluice_factory):
    """Issue #9: 20 × kill -9 under load used to repeat 5.4% of the records, because replay cut
    batches at other records and so named the objects differently. Batch intents fix the cuts."""
    config = """
        storage:
          segment_bytes: 256KiB
        pipelines:
          - name: load
            buffering: { size_mb: 1, interval_seconds: 1 }
            destination: { local: { path: ./data, append_delimiter: true } }
        """
    d = sluice_factory(config)

    def batch(tag, n):
        records = [json.dumps({"k": f"{tag}-{n + i}", "pad": "p" * 150}).encode() for i in range(200)]
        return [(json.loads(r)["k"], r) for r in records]

    acked = kill_9_rounds(d, "load", batch, workers=2, per_round=6_000, rounds=KILL_ROUNDS)
    d.start()
    root = d.workdir / "data"

    def keys():
        return [json.loads(line)["k"] for body in local_objects(root).values() for line in body.splitlines()]

    wait_for(lambda: acked <= set(keys()), timeout=90, what=f"all {len(acked)} acknowledged records")
    assert_exactly_once(acked, keys(), "records")
    assert not [p for p in root.rglob("*#*")], "no staging files left behind"
    assert d.stop() == 0


def test_store_outage_then_recovery_delivers_everything(sluice_factory):
    store = MotoServer().start()
    store.s3().create_bucket(Bucket="lake")
    d = sluice_factory(s3_config("events", "lake", store.endpoint)).start()
    c = d.client()
    c.put_record_batch(DeliveryStreamName="events", Records=[{"Data": b"before-%d" % i} for i in range(100)])
    wait_for(lambda: len(delivered_lines(store.objects("lake"))) == 100, what="delivery before the outage")

    store.stop()
    c.put_record_batch(DeliveryStreamName="events", Records=[{"Data": b"during-%d" % i} for i in range(100)])
    wait_for(lambda: d.metric("sluice_delivery_to_s3_failures_total", "events") >= 2, what="failures while the store is down")
    wait_for(lambda: d.metric("sluice_delivery_to_s3_data_freshness_seconds", "events") >= 1, what="backlog age to show")

    store = MotoServer(port=store.port).start()  # same address, empty store
    try:
        store.s3().create_bucket(Bucket="lake")
        lines = wait_for(lambda: (lambda l: l if len(l) >= 100 else None)(delivered_lines(store.objects("lake"))), what="recovery")
        assert sorted(lines) == sorted(b"during-%d" % i for i in range(100))
        wait_for(lambda: d.metric("sluice_delivery_to_s3_data_freshness_seconds", "events") == 0, what="backlog cleared")
    finally:
        store.stop()


def test_full_storage_refuses_per_record_and_keeps_everything_acknowledged(sluice_factory):
    store = MotoServer()
    d = sluice_factory(s3_config("tiny", "lake", store.endpoint, extra="max_wal_bytes: 200KiB")).start()
    c = d.client()
    batch = [b"%04d" % i + b"x" * 996 for i in range(500)]  # ~500 KB: more than fits
    r = c.put_record_batch(DeliveryStreamName="tiny", Records=[{"Data": x} for x in batch])
    responses = r["RequestResponses"]
    ok = [i for i, x in enumerate(responses) if "RecordId" in x]
    failed = [i for i, x in enumerate(responses) if "ErrorCode" in x]
    assert 0 < len(ok) < 500
    assert r["FailedPutCount"] == len(failed) == 500 - len(ok)
    assert ok == list(range(len(ok))), "the accepted records are a prefix, failures keep their positions"
    assert all(responses[i]["ErrorCode"] == "ServiceUnavailableException" for i in failed)

    with pytest.raises(ClientError) as e:
        c.put_record(DeliveryStreamName="tiny", Record={"Data": b"y" * 50_000})
    assert e.value.response["Error"]["Code"] == "ServiceUnavailableException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    # The SDK may retry the 503 itself, so the single put counts at least once.
    assert d.metric("sluice_throttled_records_total", "tiny") >= len(failed) + 1

    store.start()
    try:
        store.s3().create_bucket(Bucket="lake")
        lines = wait_for(lambda: (lambda l: l if len(l) >= len(ok) else None)(delivered_lines(store.objects("lake"))), what="delivery")
        assert sorted(lines) == sorted(batch[i] for i in ok)
        # Delivery freed the WAL, so puts are accepted again.
        wait_for(lambda: c.put_record(DeliveryStreamName="tiny", Record={"Data": b"y" * 50_000}), what="space again")
    finally:
        store.stop()


def test_sigterm_flushes_buffers_and_exits_zero(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: s
            buffering: { size_mb: 128, interval_seconds: 900 }
            destination: { local: { path: ./data, compression: GZIP } }
        """).start()
    d.client().put_record_batch(DeliveryStreamName="s", Records=[{"Data": b"r%d\n" % i} for i in range(300)])
    time.sleep(0.3)
    assert local_objects(d.workdir / "data") == {}
    assert d.stop() == 0
    import gzip
    (body,) = local_objects(d.workdir / "data").values()
    assert gzip.decompress(body).splitlines() == [b"r%d" % i for i in range(300)]
    assert "all buffers flushed" in d.log()
    # Nothing is replayed after a clean shutdown: the WAL was checkpointed.
    d.start()
    time.sleep(1.5)
    assert len(local_objects(d.workdir / "data")) == 1
    assert d.stop() == 0


def test_records_past_retention_are_dropped_loudly_not_silently(sluice_factory):
    store = MotoServer()  # never started: every delivery fails
    d = sluice_factory(s3_config("old", "lake", store.endpoint, extra="retention_hours: 0.0005")).start()  # 1.8 s
    d.client().put_record_batch(DeliveryStreamName="old", Records=[{"Data": b"r%d" % i} for i in range(50)])
    wait_for(lambda: d.metric("sluice_records_expired_total", "old") == 50, timeout=30, what="expiry to be counted")
    assert "dropping records older than the retention period" in d.log()
    assert d.metric("sluice_delivery_to_s3_records_total", "old") == 0
    wait_for(lambda: d.metric("sluice_wal_bytes", "old") == 0, what="the WAL to be freed")


def test_kill_9_under_load_with_fan_out_and_partitions_loses_nothing_and_repeats_nothing(sluice_factory):
    # Each acknowledged record is a JSON pair that de-aggregates into two sub-records, which land in
    # different partitions. A source record may only leave the WAL when both halves are written,
    # and replay must re-cut each partition's batches exactly (17.9% duplicates before intents).
    config = """
        storage:
          segment_bytes: 256KiB
        pipelines:
          - name: fan
            buffering: { size_mb: 1, interval_seconds: 1 }
            processors:
              - record_deaggregation: { sub_record_type: JSON }
              - metadata_extraction: { query: '{half: .half}' }
              - append_delimiter: {}
            dynamic_partitioning: { enabled: true }
            destination:
              local: { path: ./data, prefix: "half=!{partitionKeyFromQuery:half}/", error_output_prefix: "errors/!{firehose:error-output-type}/" }
        """
    d = sluice_factory(config)

    def batch(tag, n):
        ids = [f"{tag}-{n + i}" for i in range(200)]
        return [(i, (json.dumps({"half": "a", "id": i}) + json.dumps({"half": "b", "id": i})).encode()) for i in ids]

    acked = kill_9_rounds(d, "fan", batch, workers=2, per_round=4_000, rounds=KILL_ROUNDS)
    d.start()
    root = d.workdir / "data"

    def halves():
        found = {"a": [], "b": []}
        for key, body in local_objects(root).items():
            assert not key.startswith("errors/"), key
            for line in body.splitlines():
                rec = json.loads(line)
                found[rec["half"]].append(rec["id"])
        return found

    wait_for(lambda: all(acked <= set(ids) for ids in halves().values()), timeout=90,
             what="both halves of every acknowledged record")
    found = halves()
    assert_exactly_once(acked, found["a"], "first halves")
    assert_exactly_once(acked, found["b"], "second halves")
    assert d.stop() == 0


def test_kill_9_under_load_with_parquet_conversion_loses_nothing_and_repeats_nothing(sluice_factory):
    """Conversion happens at delivery, after the WAL: a crash mid-conversion or mid-upload replays the
    batch. Every acknowledged record ends up exactly once, as a row of a readable Parquet file or, if
    it cannot be converted, in the error prefix; no truncated file is left behind."""
    import base64
    import pyarrow.parquet as pq

    config = """
        storage:
          segment_bytes: 256KiB
        pipelines:
          - name: lake
            buffering: { size_mb: 1, interval_seconds: 1 }
            destination:
              local:
                path: ./data
                error_output_prefix: "errors/!{firehose:error-output-type}/"
                prefix: "rows/!{timestamp:HH}/"
                format_conversion:
                  schema: { columns: [ { name: k, type: string }, { name: n, type: bigint }, { name: pad, type: string } ] }
                  output: { parquet: { compression: ZSTD } }
        """
    d = sluice_factory(config)

    def batch(tag, n):
        out = []
        for i in range(200):
            key = f"{tag}-{n + i}"
            if (n + i) % 97 == 0:
                out.append((key, json.dumps({"k": key, "n": "not a number"}).encode()))
            else:
                out.append((key, json.dumps({"k": key, "n": n + i, "pad": "p" * 150}).encode()))
        return out

    acked = kill_9_rounds(d, "lake", batch, workers=2, per_round=6_000, rounds=KILL_ROUNDS)
    d.start()
    root = d.workdir / "data"

    def found():
        keys = []
        for path in root.rglob("*"):
            if not path.is_file() or "#" in path.name:  # an upload in progress
                continue
            rel = path.relative_to(root).as_posix()
            if rel.startswith("rows/"):
                keys.extend(pq.read_table(path).column("k").to_pylist())  # fails on a truncated file
            else:
                assert rel.startswith("errors/format-conversion-failed/"), rel
                for line in path.read_bytes().splitlines():
                    keys.append(json.loads(base64.b64decode(json.loads(line)["rawData"]))["k"])
        return keys

    wait_for(lambda: acked <= set(found()), timeout=90, what=f"all {len(acked)} acknowledged records as rows or error records")
    assert_exactly_once(acked, found(), "records")
    assert d.stop() == 0
    assert not list(root.rglob("*#*")), "no staging files left behind"


def test_sighup_under_load_is_logged_and_ignored(sluice_factory):
    """Until hot reload exists, SIGHUP (systemctl reload, a closed SSH session) must not stop the
    daemon or lose a record: it used to exit 129 without draining."""
    import signal
    d = sluice_factory("""
        pipelines:
          - name: hup
            buffering: { size_mb: 1, interval_seconds: 1 }
            destination: { local: { path: ./data, append_delimiter: true } }
        """).start()
    c = d.client()
    sent = []
    for i in range(20):
        batch = [b"r-%d-%d" % (i, j) for j in range(100)]
        c.put_record_batch(DeliveryStreamName="hup", Records=[{"Data": x} for x in batch])
        sent += batch
        if i == 10:
            d.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert d.proc.poll() is None, "SIGHUP stopped the daemon"
    assert "SIGHUP received" in d.log()
    root = d.workdir / "data"
    wait_for(lambda: sorted(l for b in local_objects(root).values() for l in b.splitlines()) == sorted(sent),
             what="every record delivered once")
    assert d.stop() == 0
