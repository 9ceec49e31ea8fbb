"""The Redshift destination, as Firehose loads it: batches staged in the intermediate S3 bucket (moto),
a manifest beside each, then COPY over Redshift's PostgreSQL wire protocol.

No Redshift can run here: the cluster is tests/fake_redshift.py, a FAKE that speaks the public wire
protocol and records every statement. These tests compare that recorded transcript with the statements
Firehose issues (COPY ... FROM '<manifest>' CREDENTIALS 'aws_iam_role=...' MANIFEST <options>), and check
the manifests and staged objects in the real S3-compatible store.
"""

import gzip
import json
import os
import re
import time

import pytest

from conftest import wait_for
from fake_redshift import FakeRedshift

PASSWORD = "Rs-Pa55-word"
ROLE = "arn:aws:iam::123456789012:role/firehose-redshift"


@pytest.fixture
def redshift():
    fake = FakeRedshift("firehose", PASSWORD)
    yield fake
    fake.close()


def start(sluice_factory, redshift, moto, bucket, retry=60):
    return sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: to-redshift
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    destination:
      redshift:
        cluster_jdbc_url: jdbc:redshift://127.0.0.1:{redshift.port}/dev?ssl=false
        username: firehose
        password: ${{RS_PASSWORD}}
        role_arn: {ROLE}
        copy_command:
          data_table_name: public.events
          data_table_columns: user_id,event_type
          copy_options: JSON 'auto' GZIP
        retry_duration_seconds: {retry}
        s3:
          bucket: {bucket}
          endpoint: {moto.endpoint}
          region: us-east-1
          force_path_style: true
          prefix: redshift-staging/
          error_output_prefix: "errors/!{{firehose:error-output-type}}/"
          compression: GZIP
""").start(env={**os.environ, "RS_PASSWORD": PASSWORD})


def put(d, n, tag):
    d.client().put_record_batch(DeliveryStreamName="to-redshift", Records=[
        {"Data": json.dumps({"user_id": i, "event_type": tag}).encode() + b"\n"} for i in range(n)])


def normalized(statements, bucket):
    """The transcript with what differs per run (keys, times, batch ids) replaced by names."""
    out = []
    for s in statements:
        s = s.replace(bucket, "<bucket>")
        s = re.sub(r"manifests/\d{4}/\d\d/\d\d/\d\d/to-redshift-1-[0-9-]+-[0-9a-f-]{36}\.gz", "manifests/<time>/<object>", s)
        s = re.sub(r"batch_id = '[0-9a-f-]{36}'", "batch_id = '<batch>'", s)
        s = re.sub(r"VALUES \('public.events', '[0-9a-f-]{36}'\)", "VALUES ('public.events', '<batch>')", s)
        out.append(s)
    return out


# What Firehose sends for one batch, plus sluice's ledger around the COPY (exactly once).
ONE_BATCH = [
    "BEGIN",
    "SELECT 1 FROM sluice_loaded_batches WHERE table_name = 'public.events' AND batch_id = '<batch>'",
    "COPY public.events (user_id,event_type) FROM 's3://<bucket>/redshift-staging/manifests/<time>/<object>' "
    f"CREDENTIALS 'aws_iam_role={ROLE}' MANIFEST JSON 'auto' GZIP",
    "INSERT INTO sluice_loaded_batches (table_name, batch_id) VALUES ('public.events', '<batch>')",
    "COMMIT",
]
LEDGER = ("CREATE TABLE IF NOT EXISTS sluice_loaded_batches (table_name VARCHAR(256) NOT NULL, batch_id VARCHAR(64) "
          "NOT NULL, loaded_at TIMESTAMP NOT NULL DEFAULT GETDATE())")


def test_a_batch_is_staged_with_a_manifest_and_copied_as_firehose_does(sluice_factory, redshift, moto, bucket):
    d = start(sluice_factory, redshift, moto, bucket)
    put(d, 10, "click")
    wait_for(lambda: "COMMIT" in redshift.statements, timeout=30, what="the load")
    assert normalized(redshift.statements, bucket) == [LEDGER] + ONE_BATCH
    objects = moto.objects(bucket)
    manifests = {k: v for k, v in objects.items() if "/manifests/" in k}
    staged = {k: v for k, v in objects.items() if "/manifests/" not in k}
    assert len(manifests) == 1 and len(staged) == 1
    (manifest_key, manifest), (object_key, body) = next(iter(manifests.items())), next(iter(staged.items()))
    assert redshift.statements[-3].split("FROM '")[1].startswith(f"s3://{bucket}/{manifest_key}'")
    assert json.loads(manifest) == {"entries": [{"url": f"s3://{bucket}/{object_key}", "mandatory": True}]}
    assert re.fullmatch(r"redshift-staging/\d{4}/\d\d/\d\d/\d\d/to-redshift-1-.+\.gz", object_key)
    assert manifest_key == object_key.replace("redshift-staging/", "redshift-staging/manifests/", 1)
    assert sorted(gzip.decompress(body).decode().splitlines()) == sorted(
        json.dumps({"user_id": i, "event_type": "click"}) for i in range(10))
    desc = d.client().describe_delivery_stream(DeliveryStreamName="to-redshift")["DeliveryStreamDescription"]
    rs = desc["Destinations"][0]["RedshiftDestinationDescription"]
    assert rs["ClusterJDBCURL"].startswith("jdbc:redshift://127.0.0.1:") and rs["Username"] == "firehose"
    assert rs["CopyCommand"] == {"DataTableName": "public.events", "DataTableColumns": "user_id,event_type",
                                 "CopyOptions": "JSON 'auto' GZIP"}
    assert rs["RoleARN"] == ROLE and rs["RetryOptions"] == {"DurationInSeconds": 60}
    assert rs["S3DestinationDescription"]["BucketARN"] == f"arn:aws:s3:::{bucket}"
    assert PASSWORD not in json.dumps(desc, default=str) and PASSWORD not in d.log()
    assert d.metric("sluice_delivery_to_redshift_records_total", "to-redshift") == 10


def test_a_copy_failing_past_the_retry_duration_is_skipped_with_its_manifest_in_the_error_prefix(
        sluice_factory, redshift, moto, bucket):
    redshift.fail_copies = 10_000
    d = start(sluice_factory, redshift, moto, bucket, retry=2)
    put(d, 5, "lost")
    wait_for(lambda: any(k.startswith("errors/") for k in moto.objects(bucket)), timeout=30, what="the error manifest")
    objects = moto.objects(bucket)
    errors = {k: v for k, v in objects.items() if k.startswith("errors/")}
    (error_key, error_manifest), = errors.items()
    assert error_key.startswith("errors/redshift-failed/")
    staged = [k for k in objects if k.startswith("redshift-staging/") and "/manifests/" not in k]
    assert json.loads(error_manifest) == {"entries": [{"url": f"s3://{bucket}/{staged[0]}", "mandatory": True}]}
    # Retried until the retry duration: each attempt rolled back, nothing recorded as loaded.
    transcript = normalized(redshift.statements, bucket)
    assert transcript.count("ROLLBACK") >= 2 and "COMMIT" not in transcript and not redshift.loaded
    assert transcript[1:4] == ONE_BATCH[:3] and transcript[4] == "ROLLBACK"
    assert "Load into table 'events' failed" in d.log()


def test_a_batch_committed_just_before_a_crash_is_not_copied_again(sluice_factory, redshift, moto, bucket):
    """The ledger: the COMMIT takes effect but its answer is late, sluice is killed with -9 meanwhile,
    and after the restart the replayed batch finds its id and is not copied a second time."""
    redshift.commit_delay = 3.0
    d = start(sluice_factory, redshift, moto, bucket)
    put(d, 10, "once")
    wait_for(lambda: redshift.loaded, timeout=30, what="the commit")
    d.kill9()
    redshift.commit_delay = 0.0
    d.start(env={**os.environ, "RS_PASSWORD": PASSWORD})
    wait_for(lambda: "batch already loaded; skipped" in d.log(), timeout=30, what="the replay")
    time.sleep(1)
    transcript = normalized(redshift.statements, bucket)
    assert sum(s.startswith("COPY ") for s in transcript) == 1
    assert transcript[-3:] == [ONE_BATCH[0], ONE_BATCH[1], "COMMIT"]


def test_a_stream_created_over_the_api_with_a_redshift_destination_loads(sluice_factory, redshift, moto, bucket):
    d = sluice_factory(f"""
storage: {{ dir: ./var }}
control_plane:
  buckets:
    staging: {{ s3: {{ endpoint: "{moto.endpoint}", bucket: {bucket}, region: us-east-1, force_path_style: true }} }}
""").start()
    fh = d.client()
    fh.create_delivery_stream(DeliveryStreamName="api-redshift", RedshiftDestinationConfiguration={
        "RoleARN": ROLE, "ClusterJDBCURL": f"jdbc:redshift://127.0.0.1:{redshift.port}/dev?ssl=false",
        "CopyCommand": {"DataTableName": "events", "CopyOptions": "JSON 'auto'"},
        "Username": "firehose", "Password": PASSWORD, "RetryOptions": {"DurationInSeconds": 120},
        "S3Configuration": {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::staging", "Prefix": "rs/",
                            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}}})
    desc = fh.describe_delivery_stream(DeliveryStreamName="api-redshift")["DeliveryStreamDescription"]
    rs = desc["Destinations"][0]["RedshiftDestinationDescription"]
    assert rs["CopyCommand"] == {"DataTableName": "events", "CopyOptions": "JSON 'auto'"} and rs["Username"] == "firehose"
    assert rs["S3DestinationDescription"]["Prefix"] == "rs/" and "Password" not in rs
    assert PASSWORD not in json.dumps(desc, default=str)
    fh.put_record_batch(DeliveryStreamName="api-redshift", Records=[{"Data": b'{"a": 1}\n'}] * 3)
    wait_for(lambda: "COMMIT" in redshift.statements, timeout=90, what="the load")
    copy = next(s for s in redshift.statements if s.startswith("COPY "))
    assert re.fullmatch(rf"COPY events FROM 's3://{bucket}/rs/manifests/.+' CREDENTIALS 'aws_iam_role={ROLE}' MANIFEST JSON 'auto'", copy)
    assert PASSWORD not in d.log()
