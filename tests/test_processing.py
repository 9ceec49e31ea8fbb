"""Dynamic partitioning and the built-in processors, end to end through boto3 and moto_server.

KPL aggregates are made by aws_kinesis_agg (PyPI), a real aggregator we did not write.
"""

import base64
import gzip
import json
import os
import re

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from conftest import wait_for_lines, local_objects, wait_for

NAME_RE = re.compile(r"(?P<stream>[A-Za-z0-9_.-]+)-1-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-[0-9a-f-]{36}$")


def lines_by_prefix(objects):
    """{prefix: [lines]} where prefix is the key minus the object name."""
    out = {}
    for key, body in objects.items():
        prefix, _, name = key.rpartition("/")
        assert NAME_RE.match(name), key
        out.setdefault(prefix + "/", []).extend(body.splitlines())
    return out


def error_records(objects, error_type):
    return [json.loads(line) for key, body in objects.items() if key.startswith(f"errors/{error_type}/") for line in body.splitlines()]


QUERY = '{customer_id: .customer_id, year: (.ts | strptime("%Y-%m-%dT%H:%M:%SZ") | strftime("%Y"))}'


def test_metadata_extraction_partitions_objects_by_jq_keys(sluice_factory, moto, bucket):
    d = sluice_factory(f"""
        pipelines:
          - name: orders
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            processors:
              - metadata_extraction: {{ query: '{QUERY}', json_parsing_engine: JQ-1.6 }}
              - append_delimiter: {{}}
            dynamic_partitioning: {{ enabled: true }}
            destination:
              s3:
                bucket: {bucket}
                endpoint: {moto.endpoint}
                force_path_style: true
                prefix: "customer_id=!{{partitionKeyFromQuery:customer_id}}/year=!{{partitionKeyFromQuery:year}}/"
                error_output_prefix: "errors/!{{firehose:error-output-type}}/"
        """).start()
    good = [json.dumps({"customer_id": c, "ts": f"{y}-03-01T10:00:00Z", "n": i}).encode()
            for i, (c, y) in enumerate([(c, y) for c in ["c1", "c2", "c3"] for y in [2025, 2026]] * 5)]
    bad = [b"not json", json.dumps({"ts": "2026-01-01T00:00:00Z"}).encode(), json.dumps({"customer_id": "c1", "ts": "yesterday"}).encode()]
    r = d.client().put_record_batch(DeliveryStreamName="orders", Records=[{"Data": x} for x in good + bad])
    assert r["FailedPutCount"] == 0

    objects = wait_for_lines(lambda: moto.objects(bucket), len(good) + len(bad), what="partitioned objects and error records")
    data = {k: v for k, v in lines_by_prefix(objects).items() if not k.startswith("errors/")}
    expected = {}
    for line in good:
        rec = json.loads(line)
        expected.setdefault(f"customer_id={rec['customer_id']}/year={rec['ts'][:4]}/", []).append(line)
    assert {k: sorted(v) for k, v in data.items()} == {k: sorted(v) for k, v in expected.items()}

    errors = error_records(objects, "processing-failed")
    assert sorted(base64.b64decode(e["rawData"]) for e in errors) == sorted(bad)
    for e in errors:
        assert set(e) == {"attemptsMade", "arrivalTimestamp", "errorCode", "errorMessage", "attemptEndingTimestamp", "rawData"}
        assert e["errorCode"] == "DynamicPartitioning.MetadataExtractionFailed"
        assert e["attemptEndingTimestamp"] >= e["arrivalTimestamp"] > 1_700_000_000_000
    messages = {base64.b64decode(e["rawData"]): e["errorMessage"] for e in errors}
    assert "not valid JSON" in messages[b"not json"]
    assert "customer_id" in messages[bad[1]]
    assert "jq query failed" in messages[bad[2]]
    m = d.metrics()
    assert m['sluice_error_output_records_total{delivery_stream_name="orders",error_output_type="processing-failed"}'] == 3


def test_hostile_partition_values_cannot_escape_the_prefix(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: h
            buffering: { size_mb: 1, interval_seconds: 1 }
            processors:
              - metadata_extraction: { query: '{c: .c}' }
            dynamic_partitioning: { enabled: true }
            destination:
              local: { path: ./data/lake, prefix: "c=!{partitionKeyFromQuery:c}/", error_output_prefix: "errors/!{firehose:error-output-type}/", append_delimiter: true }
        """).start()
    hostile = ["../../../escaped", "..", ".", "a/b", "a\\b", "", "x\u0000y", "tab\t", "\u007f", "z" * 300]
    records = [json.dumps({"c": v}).encode() for v in hostile] + [json.dumps({"c": "fine"}).encode()]
    d.client().put_record_batch(DeliveryStreamName="h", Records=[{"Data": x} for x in records])
    root = d.workdir / "data" / "lake"
    objects = wait_for_lines(lambda: local_objects(root), len(records), what="delivery")
    assert [k for k in objects if not k.startswith("errors/")] and all(k.startswith("c=fine/") for k in objects if not k.startswith("errors/"))
    errors = error_records(objects, "processing-failed")
    assert sorted(base64.b64decode(e["rawData"]) for e in errors) == sorted(records[:-1])
    assert {e["errorCode"] for e in errors} == {"DynamicPartitioning.InvalidPartitionKeyValue"}
    # Nothing was written anywhere but under the destination directory.
    outside = [p for p in d.workdir.rglob("*") if p.is_file() and root not in p.parents and p.parent != d.workdir and "var" not in p.parts]
    assert outside == [], outside


def test_partitions_over_the_limit_go_to_the_error_output(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: p
            buffering: { size_mb: 1, interval_seconds: 3 }
            processors:
              - metadata_extraction: { query: '{c: .c}' }
            dynamic_partitioning: { enabled: true, max_active_partitions: 3 }
            destination:
              local: { path: ./data, prefix: "c=!{partitionKeyFromQuery:c}/", error_output_prefix: "errors/!{firehose:error-output-type}/", append_delimiter: true }
        """).start()
    records = [json.dumps({"c": f"k{i % 5}", "i": i}).encode() for i in range(50)]
    d.client().put_record_batch(DeliveryStreamName="p", Records=[{"Data": x} for x in records])
    wait_for(lambda: d.metric("sluice_partition_count_exceeded", "p") == 1, what="PartitionCountExceeded")
    assert d.metric("sluice_partition_count", "p") == 3
    objects = wait_for_lines(lambda: local_objects(d.workdir / "data"), 50, what="delivery")
    partitions = {k.split("/")[0] for k in objects if not k.startswith("errors/")}
    assert partitions == {"c=k0", "c=k1", "c=k2"}, "the first three partitions seen are admitted"
    errors = error_records(objects, "processing-failed")
    assert len(errors) == 20
    assert {e["errorCode"] for e in errors} == {"DynamicPartitioning.PartitionCountExceeded"}
    assert {json.loads(base64.b64decode(e["rawData"]))["c"] for e in errors} == {"k3", "k4"}


def kpl_aggregate(records):
    agg = RecordAggregator()
    for i, data in enumerate(records):
        assert agg.add_user_record(f"pk{i % 3}", data) is None
    return agg.clear_and_get().get_contents()[2]


def test_kpl_aggregates_from_a_real_aggregator_are_deaggregated(sluice_factory, moto, bucket):
    d = sluice_factory(f"""
        pipelines:
          - name: kpl
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            processors:
              - record_deaggregation: {{ sub_record_type: KPL }}
              - append_delimiter: {{}}
            destination:
              s3: {{ bucket: {bucket}, endpoint: {moto.endpoint}, force_path_style: true, error_output_prefix: "errors/!{{firehose:error-output-type}}/" }}
        """).start()
    sub = [json.dumps({"sub": i}).encode() for i in range(300)]
    good = [kpl_aggregate(sub[:100]), kpl_aggregate(sub[100:300])]
    truncated = good[0][:-20]
    flipped = bytearray(good[1])
    flipped[len(flipped) // 2] ^= 0x40
    plain = b"not aggregated at all"
    d.client().put_record_batch(DeliveryStreamName="kpl", Records=[{"Data": x} for x in good + [truncated, bytes(flipped), plain]])
    objects = wait_for_lines(lambda: moto.objects(bucket), 303, what="de-aggregated records")
    data = sorted(line for k, v in objects.items() if not k.startswith("errors/") for line in v.splitlines())
    assert data == sorted(sub + [plain])
    errors = error_records(objects, "processing-failed")
    assert sorted(base64.b64decode(e["rawData"]) for e in errors) == sorted([truncated, bytes(flipped)])
    assert all(e["errorCode"] == "RecordDeAggregation.Failed" for e in errors)


def cwl_payload(message_type, messages):
    doc = {"messageType": message_type, "owner": "123456789012", "logGroup": "/app", "logStream": "s1",
           "subscriptionFilters": ["f"], "logEvents": [{"id": str(i), "timestamp": 1783951509000 + i, "message": m} for i, m in enumerate(messages)]}
    return gzip.compress(json.dumps(doc).encode())


def test_cloudwatch_logs_subscription_payloads(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: cwl
            buffering: { size_mb: 1, interval_seconds: 1 }
            processors:
              - decompression: { format: GZIP }
              - cloudwatch_log_processing: { data_message_extraction: true }
              - append_delimiter: {}
            destination:
              local: { path: ./data, error_output_prefix: "errors/!{firehose:error-output-type}/" }
        """).start()
    data = cwl_payload("DATA_MESSAGE", ["GET /a 200", "GET /b 404", "POST /c 500"])
    control = cwl_payload("CONTROL_MESSAGE", ["CWL CONTROL MESSAGE: Checking health of destination Firehose."])
    garbage = b"\x1f\x8b but not really gzip"
    d.client().put_record_batch(DeliveryStreamName="cwl", Records=[{"Data": x} for x in [data, control, garbage]])
    objects = wait_for_lines(lambda: local_objects(d.workdir / "data"), 4, what="log messages and the error record")
    delivered = [line for k, v in objects.items() if not k.startswith("errors/") for line in v.splitlines()]
    assert delivered == [b"GET /a 200", b"GET /b 404", b"POST /c 500"], "CONTROL_MESSAGE is dropped"
    (err,) = error_records(objects, "decompression-failed")
    assert base64.b64decode(err["rawData"]) == garbage, "the original compressed bytes are kept"
    assert err["errorCode"] == "Decompression.Failed"


def test_json_and_delimited_deaggregation(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: j
            buffering: { size_mb: 1, interval_seconds: 1 }
            processors: [ { record_deaggregation: { sub_record_type: JSON } }, { append_delimiter: {} } ]
            destination: { local: { path: ./data/j, error_output_prefix: "errors/!{firehose:error-output-type}/" } }
          - name: d
            buffering: { size_mb: 1, interval_seconds: 1 }
            processors: [ { record_deaggregation: { sub_record_type: DELIMITED, delimiter: "IyMjIw==" } }, { append_delimiter: {} } ]
            destination: { local: { path: ./data/d } }
        """).start()
    c = d.client()
    c.put_record_batch(DeliveryStreamName="j", Records=[{"Data": b'{"a":1}{"a":2}\n{"a":3}'}, {"Data": b"[1,2]"}])
    c.put_record(DeliveryStreamName="d", Record={"Data": b"one####two####three"})
    j = wait_for_lines(lambda: local_objects(d.workdir / "data/j"), 4, what="JSON")
    assert sorted(line for k, v in j.items() if not k.startswith("errors/") for line in v.splitlines()) == [b'{"a":1}', b'{"a":2}', b'{"a":3}']
    assert [base64.b64decode(e["rawData"]) for e in error_records(j, "processing-failed")] == [b"[1,2]"]
    dl = wait_for(lambda: local_objects(d.workdir / "data/d"), what="DELIMITED")
    assert b"".join(dl.values()).splitlines() == [b"one", b"two", b"three"]


def test_jq_transform_maps_drops_fans_out_and_rejects(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: jq
            buffering: { size_mb: 1, interval_seconds: 1 }
            processors:
              - jq: { query: 'select(.level != "debug") | .items[] | {id: .id, level: .level, day: .ts[0:10]}' }
              - append_delimiter: {}
            destination: { local: { path: ./data, error_output_prefix: "errors/!{firehose:error-output-type}/" } }
          - name: csv
            buffering: { size_mb: 1, interval_seconds: 1 }
            processors:
              - jq: { query: '"\\(.id),\\(.level)"', raw_output: true }
              - append_delimiter: {}
            destination: { local: { path: ./csv } }
        """).start()
    c = d.client()
    records = [
        {"level": "info", "items": [{"id": 1, "level": "info", "ts": "2026-12-02T07:00:00Z"}, {"id": 2, "level": "warn", "ts": "2026-12-03T00:00:00Z"}]},
        {"level": "debug", "items": [{"id": 3}]},
        {"level": "info", "items": "not a list"},
    ]
    c.put_record_batch(DeliveryStreamName="jq", Records=[{"Data": json.dumps(r).encode()} for r in records] + [{"Data": b"garbage"}])
    c.put_record(DeliveryStreamName="csv", Record={"Data": b'{"id": 7, "level": "error"}'})
    objects = wait_for_lines(lambda: local_objects(d.workdir / "data"), 4, what="two outputs and two error records")
    delivered = [json.loads(line) for k, v in objects.items() if not k.startswith("errors/") for line in v.splitlines()]
    assert delivered == [{"id": 1, "level": "info", "day": "2026-12-02"}, {"id": 2, "level": "warn", "day": "2026-12-03"}]
    errors = error_records(objects, "processing-failed")
    assert sorted(base64.b64decode(e["rawData"]) for e in errors) == sorted([json.dumps(records[2]).encode(), b"garbage"])
    assert {e["errorCode"] for e in errors} == {"JQProcessing.Failed"}
    csv = wait_for(lambda: local_objects(d.workdir / "csv"), what="the CSV line")
    assert b"".join(csv.values()) == b"7,error\n"


def test_processor_config_errors_name_line_and_field(tmp_path):
    import subprocess
    from conftest import BINARY
    path = tmp_path / "p.yaml"
    path.write_text("""pipelines:
  - name: x
    processors:
      - append_delimiter: {}
      - metadata_extraction: { query: '{a: .a' }
      - record_deaggregation: { sub_record_type: XML }
    destination:
      local: { path: ./d, prefix: "k=!{partitionKeyFromQuery:a}/", error_output_prefix: "e/!{firehose:error-output-type}/" }
""")
    r = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    assert r.returncode != 0
    out = r.stderr
    assert f"{path}:5:" in out and "jq query, column 7: expected a closing `}` but found the end of the query" in out, out
    assert "needs `dynamic_partitioning: { enabled: true }`" in out
    assert f"{path}:6:" in out and "`XML` is not one of JSON, DELIMITED, KPL" in out
    assert "out of order" in out


def test_many_partitions_stay_within_the_buffer_budget(sluice_factory):
    # 1 MiB buffers, 4 uploads: buffers together may hold about 3 MiB. 300 partitions of ~20 KB
    # (6 MB) cannot all wait for the 900 s interval: the largest buffers are flushed early.
    d = sluice_factory("""
        pipelines:
          - name: many
            buffering: { size_mb: 1, interval_seconds: 900 }
            processors:
              - metadata_extraction: { query: '{c: .c}' }
            dynamic_partitioning: { enabled: true, max_active_partitions: 1000 }
            destination:
              local: { path: ./data, prefix: "c=!{partitionKeyFromQuery:c}/", error_output_prefix: "errors/!{firehose:error-output-type}/", append_delimiter: true }
        """).start()
    c = d.client()
    records = [json.dumps({"c": f"p{i % 300}", "i": i, "pad": "x" * 950}).encode() for i in range(6000)]
    for i in range(0, len(records), 500):
        assert c.put_record_batch(DeliveryStreamName="many", Records=[{"Data": x} for x in records[i:i + 500]])["FailedPutCount"] == 0
    early = wait_for(lambda: local_objects(d.workdir / "data"), what="objects flushed before the interval")
    assert len(early) > 0
    assert d.stop() == 0
    delivered = sorted(line for v in local_objects(d.workdir / "data").values() for line in v.splitlines())
    assert delivered == sorted(records)
