"""`sluice replay` with the real binary: records a pipeline failed (processing-failed error records in a
local error prefix, GZIP-compressed, and a copy in moto's S3) are put back once the cause is fixed; a
dry run counts them; a filter picks error codes; a second run replays nothing (the journal)."""

import json
import subprocess

import boto3

from conftest import BINARY, local_objects, wait_for


def run_replay(d, *args, cwd):
    out = subprocess.run([str(BINARY), "replay", "--to", "orders", "--endpoint", d.endpoint, *args],
                         cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_replay_puts_failed_records_back_once(sluice_factory, tmp_path, moto):
    # `strict` partitions by a jq key that bad records lack: they fail (processing-failed); the
    # records are fine for `orders`, the pipeline they are replayed into once the cause is fixed.
    d = sluice_factory("""
pipelines:
  - name: strict
    buffering: { size_mb: 1, interval_seconds: 1 }
    processors:
      - metadata_extraction: { query: '{c: .customer.id}' }
    dynamic_partitioning: { enabled: true }
    destination:
      local: { path: ./data/strict, prefix: "c=!{partitionKeyFromQuery:c}/", error_output_prefix: "errors/!{firehose:error-output-type}/", compression: GZIP }
  - name: orders
    buffering: { size_mb: 1, interval_seconds: 1 }
    destination: { local: { path: ./data/orders, append_delimiter: true } }
""").start()
    fh = d.client()
    failing = [json.dumps({"order": i, "customer": None}) for i in range(1200)]
    fh.put_record_batch(DeliveryStreamName="strict", Records=[{"Data": json.dumps({"order": -1, "customer": {"id": "ok"}}).encode()}])
    for i in range(0, len(failing), 400):
        fh.put_record_batch(DeliveryStreamName="strict", Records=[{"Data": r.encode()} for r in failing[i:i + 400]])
    errors = d.workdir / "data" / "strict" / "errors" / "processing-failed"
    wait_for(lambda: errors.exists() and local_objects(errors), timeout=20, what="the error output")
    wait_for(lambda: d.metric("sluice_error_output_records_total", "strict") >= 1200 or
             d.metrics().get('sluice_error_output_records_total{delivery_stream_name="strict",error_output_type="processing-failed"}', 0) >= 1200,
             timeout=20, what="every failed record in the error output")
    journal = tmp_path / "replay.journal"

    dry = run_replay(d, "--from", str(errors), "--dry-run", "--journal", str(journal), cwd=tmp_path)
    assert "would replay 1200 record(s)" in dry and "Lambda.ProcessingFailed" not in dry
    none = run_replay(d, "--from", str(errors), "--error-code", "NoSuchCode", "--journal", str(journal), cwd=tmp_path)
    assert "replayed 0 record(s)" in none and "1200 record(s) with other error codes left" in none

    out = run_replay(d, "--from", str(errors), "--journal", str(journal), cwd=tmp_path)
    assert "replayed 1200 record(s) into orders" in out
    orders = d.workdir / "data" / "orders"
    lines = lambda: [line for body in local_objects(orders).values() for line in body.decode().splitlines()]  # noqa: E731
    wait_for(lambda: len(lines()) >= 1200, timeout=30, what="the replayed records")
    again = run_replay(d, "--from", str(errors), "--journal", str(journal), cwd=tmp_path)
    assert "replayed 0 record(s)" in again and "1 object(s) and 0 more record(s) already replayed (journal)" in again

    # The same error objects from S3 (moto): `s3://bucket/prefix`.
    s3 = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="lake-errors")
    for key, body in local_objects(errors).items():
        s3.put_object(Bucket="lake-errors", Key=f"errors/processing-failed/{key}", Body=(errors / key).read_bytes())
    from_s3 = run_replay(d, "--from", "s3://lake-errors/errors/processing-failed/", "--s3-endpoint", moto.endpoint,
                         "--journal", str(tmp_path / "s3.journal"), cwd=tmp_path)
    assert "replayed 1200 record(s)" in from_s3
    wait_for(lambda: len(lines()) >= 2400, timeout=30, what="the records replayed from S3")
    import time
    time.sleep(1.5)
    assert sorted(lines()) == sorted(failing * 2)
