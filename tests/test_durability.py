"""Durability: acknowledged means on disk. Restarts, kill -9 under load, store outages, full storage."""

import json
import threading
import time

import pytest
from botocore.exceptions import ClientError

from conftest import MotoServer, free_port, local_objects, wait_for


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
    the daemon with SIGKILL mid-load. make_batch(worker, n) returns [(key, data)]; returns the keys
    of every acknowledged record."""
    acked, stop = [], threading.Event()

    def producer(worker):
        c = d.client()
        n = 0
        while not stop.is_set():
            batch = make_batch(worker, n)
            n += len(batch)
            try:
                r = c.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": data} for _, data in batch])
            except Exception:
                return  # the daemon died mid-request: nothing in this batch was acknowledged
            acked.extend(key for (key, _), resp in zip(batch, r["RequestResponses"]) if "RecordId" in resp)

    threads = [threading.Thread(target=producer, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= acked_target, timeout=60, what="load")
    d.kill9()
    stop.set()
    for t in threads:
        t.join()
    return set(acked)


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


def test_kill_9_under_load_loses_no_acknowledged_record(sluice_factory):
    config = """
        storage:
          segment_bytes: 256KiB
        pipelines:
          - name: load
            buffering: { size_mb: 1, interval_seconds: 1 }
            destination: { local: { path: ./data, append_delimiter: true } }
        """
    d = sluice_factory(config).start()

    def batch(worker, n):
        records = [json.dumps({"w": worker, "n": n + i, "pad": "p" * 150}).encode() for i in range(200)]
        return [(r, r) for r in records]

    acked_set = kill_9_under_load(d, "load", batch, workers=4, acked_target=20_000)

    d.start()
    root = d.workdir / "data"
    found = wait_for(lambda: (lambda l: l if acked_set <= set(l) else None)(delivered_lines(local_objects(root))), timeout=60,
                     what=f"all {len(acked_set)} acknowledged records")
    assert acked_set <= set(found)
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


def test_kill_9_under_load_with_fan_out_and_partitions_loses_nothing(sluice_factory):
    # Each acknowledged record is a JSON pair that de-aggregates into two sub-records, which land in
    # different partitions. A source record may only leave the WAL when both halves are written.
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
    d = sluice_factory(config).start()

    def batch(worker, n):
        ids = [f"{worker}-{n + i}" for i in range(200)]
        return [(i, (json.dumps({"half": "a", "id": i}) + json.dumps({"half": "b", "id": i})).encode()) for i in ids]

    acked = kill_9_under_load(d, "fan", batch, workers=3, acked_target=10_000)

    d.start()
    root = d.workdir / "data"

    def halves():
        found = {"a": set(), "b": set()}
        for key, body in local_objects(root).items():
            assert not key.startswith("errors/"), key
            for line in body.splitlines():
                rec = json.loads(line)
                found[rec["half"]].add(rec["id"])
        return found if acked <= found["a"] and acked <= found["b"] else None

    found = wait_for(halves, timeout=60, what="both halves of every acknowledged record")
    assert acked <= found["a"] and acked <= found["b"]
    assert d.stop() == 0


def test_kill_9_under_load_with_parquet_conversion_loses_nothing(sluice_factory):
    """Conversion happens at delivery, after the WAL: a crash mid-conversion or mid-upload replays the
    batch. Every acknowledged record ends up as a row of a readable Parquet file or, if it cannot be
    converted, in the error prefix; no truncated file is left behind."""
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
    d = sluice_factory(config).start()

    def batch(worker, n):
        out = []
        for i in range(200):
            key = f"{worker}-{n + i}"
            if (n + i) % 97 == 0:
                out.append((key, json.dumps({"k": key, "n": "not a number"}).encode()))
            else:
                out.append((key, json.dumps({"k": key, "n": n + i, "pad": "p" * 150}).encode()))
        return out

    acked = kill_9_under_load(d, "lake", batch, workers=4, acked_target=20_000)
    d.start()
    root = d.workdir / "data"

    def found():
        keys = set()
        for path in root.rglob("*"):
            # object_store stages local uploads as `<key>#<n>` and renames them when complete.
            if not path.is_file() or "#" in path.name:
                continue
            rel = path.relative_to(root).as_posix()
            if rel.startswith("rows/"):
                keys.update(pq.read_table(path).column("k").to_pylist())  # fails on a truncated file
            else:
                assert rel.startswith("errors/format-conversion-failed/"), rel
                for line in path.read_bytes().splitlines():
                    keys.add(json.loads(base64.b64decode(json.loads(line)["rawData"]))["k"])
        return keys if acked <= keys else None

    keys = wait_for(found, timeout=90, what=f"all {len(acked)} acknowledged records as rows or error records")
    assert acked <= keys
    assert d.stop() == 0
