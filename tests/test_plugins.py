"""WASM transform plugins end to end: boto3 → sluice → plugin → S3 (moto_server) / local directory.

Needs the example plugins built for wasm32-wasip1 (scripts/test.sh builds them first).
"""

import base64
import subprocess
import json
import time
from datetime import datetime

import pytest

from conftest import BINARY, wait_for_lines, ROOT, local_objects, wait_for

PLUGINS = ROOT / "transforms" / "target" / "wasm32-wasip1" / "release"
FIXTURES = ROOT / "transforms" / "fixtures"


@pytest.fixture(autouse=True)
def plugins_built():
    assert (PLUGINS / "redact.wasm").exists(), "build the plugins first: cd transforms && cargo build --release"


def test_redact_plugin_transforms_records_delivered_to_s3(sluice_factory, moto, bucket):
    d = sluice_factory(f"""
        pipelines:
          - name: users
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            processors:
              - wasm:
                  module: {PLUGINS / "redact.wasm"}
                  config: {{ fields: [password, ssn, credit_card] }}
                  buffer_size_mb: 1
                  number_of_retries: 3
                  timeout_ms: 1000
                  memory_limit_mb: 64
              - append_delimiter: {{}}
            destination:
              s3: {{ bucket: {bucket}, endpoint: {moto.endpoint}, force_path_style: true, error_output_prefix: "errors/!{{firehose:error-output-type}}/" }}
        """).start()
    inputs = [{"user": f"u{i}", "password": "p", "event_type": "LOGIN" if i % 2 else "Logout", "card": {"credit_card": "4111"}} for i in range(200)]
    d.client().put_record_batch(DeliveryStreamName="users", Records=[{"Data": json.dumps(x).encode()} for x in inputs] + [{"Data": b"not json"}])
    objects = wait_for_lines(lambda: moto.objects(bucket), 201, what="transformed records")
    out = [json.loads(line) for k, v in objects.items() if not k.startswith("errors/") for line in v.splitlines()]
    assert len(out) == 200
    for got, sent in zip(sorted(out, key=lambda r: int(r["user"][1:])), inputs):
        assert got["password"] == "[REDACTED]" and got["card"]["credit_card"] == "[REDACTED]"
        assert got["event_type"] == sent["event_type"].lower()
        assert 0 <= got["hour_of_day"] <= 23 and got["day_of_week"] in {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
        datetime.fromisoformat(got["processed_timestamp"])
        assert {k: v for k, v in got.items() if k not in {"password", "card", "event_type", "hour_of_day", "day_of_week", "processed_timestamp"}} == {"user": sent["user"]}
    (err,) = [json.loads(line) for k, v in objects.items() if k.startswith("errors/processing-failed/") for line in v.splitlines()]
    assert err["errorCode"] == "Lambda.ProcessingFailedStatus"
    assert err["errorMessage"] == "ProcessingFailed status set for record"
    assert err["lambdaArn"] == str(PLUGINS / "redact.wasm")
    assert base64.b64decode(err["rawData"]) == b"not json"


@pytest.mark.parametrize("fixture,code", [
    ("infinite_loop.wat", "Lambda.FunctionTimedOut"),
    ("grow_memory.wat", "Lambda.FunctionError"),
    ("trap.wat", "Lambda.FunctionError"),
    ("garbage.wat", "Lambda.JsonProcessingException"),
    ("drops_record_id.wat", "Lambda.MissingRecordId"),
    ("duplicates_record_id.wat", "Lambda.DuplicatedRecordId"),
])
def test_hostile_plugins_are_contained_and_a_healthy_pipeline_keeps_delivering(sluice_factory, fixture, code):
    d = sluice_factory(f"""
        pipelines:
          - name: hostile
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            processors:
              - wasm: {{ module: {FIXTURES / fixture}, number_of_retries: 2, timeout_ms: 100, memory_limit_mb: 16 }}
            destination: {{ local: {{ path: ./data/hostile, error_output_prefix: "errors/!{{firehose:error-output-type}}/" }} }}
          - name: healthy
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            processors:
              - wasm: {{ module: {PLUGINS / "passthrough.wasm"} }}
            destination: {{ local: {{ path: ./data/healthy, append_delimiter: true }} }}
        """).start()
    c = d.client()
    c.put_record_batch(DeliveryStreamName="hostile", Records=[{"Data": b"h%d" % i} for i in range(5)])
    c.put_record_batch(DeliveryStreamName="healthy", Records=[{"Data": b"ok%d" % i} for i in range(5)])
    healthy = wait_for(lambda: local_objects(d.workdir / "data/healthy"), what="the healthy pipeline")
    assert b"".join(healthy.values()).splitlines() == [b"ok%d" % i for i in range(5)]
    errors = wait_for_lines(lambda: local_objects(d.workdir / "data/hostile"), 5, what="error records")
    records = [json.loads(line) for k, v in errors.items() for line in v.splitlines()]
    assert all(k.startswith("errors/processing-failed/") for k in errors)
    assert sorted(base64.b64decode(r["rawData"]) for r in records) == [b"h%d" % i for i in range(5)]
    for r in records:
        assert r["errorCode"] == code, r
        assert r["attemptsMade"] == 3
        assert r["lambdaArn"] == str(FIXTURES / fixture)
    # The daemon is still up and still accepts records for both pipelines.
    c.put_record(DeliveryStreamName="healthy", Record={"Data": b"after"})
    wait_for(lambda: b"after" in b"".join(local_objects(d.workdir / "data/healthy").values()), what="delivery after the hostile plugin")
    assert d.stop() == 0


def test_partition_keys_from_a_plugin_fill_the_prefix(sluice_factory):
    d = sluice_factory(f"""
        pipelines:
          - name: routed
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            processors:
              - wasm: {{ module: {PLUGINS / "route.wasm"}, config: {{ keys: [customer_id] }} }}
              - append_delimiter: {{}}
            dynamic_partitioning: {{ enabled: true }}
            destination:
              local: {{ path: ./data, prefix: "customer=!{{partitionKeyFromLambda:customer_id}}/", error_output_prefix: "errors/!{{firehose:error-output-type}}/" }}
        """).start()
    records = [json.dumps({"customer_id": f"c{i % 3}", "i": i}).encode() for i in range(30)]
    d.client().put_record_batch(DeliveryStreamName="routed", Records=[{"Data": x} for x in records])
    objects = wait_for_lines(lambda: local_objects(d.workdir / "data"), 30, what="routed objects")
    by_customer = {}
    for k, v in objects.items():
        by_customer.setdefault(k.split("/")[0], []).extend(v.splitlines())
    assert {k: sorted(v) for k, v in by_customer.items()} == {
        f"customer=c{n}": sorted(r for r in records if json.loads(r)["customer_id"] == f"c{n}") for n in range(3)
    }


def test_a_plugin_that_keeps_timing_out_is_short_circuited(sluice_factory):
    """Issue #9: a spinning plugin took 46% of a neighbour's throughput. After two invocations in a
    row that time out, its records go straight to the error output (Plugin.CircuitOpen) without
    running it, with a metric and a log line."""
    fixture = FIXTURES / "infinite_loop.wat"
    d = sluice_factory(f"""
        pipelines:
          - name: spin
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            processors:
              - wasm: {{ module: {fixture}, number_of_retries: 1, timeout_ms: 100 }}
            destination: {{ local: {{ path: ./data, error_output_prefix: "errors/!{{firehose:error-output-type}}/" }} }}
        """).start()
    c = d.client()
    for i in range(4):  # usually one read, so one invocation, each (two may share one under load)
        c.put_record(DeliveryStreamName="spin", Record={"Data": b"r%d" % i})
        time.sleep(1.0)
    errors = wait_for_lines(lambda: local_objects(d.workdir / "data"), 4, what="four error records")
    codes = {base64.b64decode(r["rawData"]): r["errorCode"]
             for v in errors.values() for r in map(json.loads, v.splitlines())}
    order = [codes[b"r%d" % i] for i in range(4)]
    assert order[0] == "Lambda.FunctionTimedOut", order
    assert order[3] == "Plugin.CircuitOpen", order
    first_open = order.index("Plugin.CircuitOpen")
    assert set(order[:first_open]) == {"Lambda.FunctionTimedOut"} and set(order[first_open:]) == {"Plugin.CircuitOpen"}, order
    assert d.metrics()[f'sluice_plugin_circuit_open{{plugin="{fixture}"}}'] == 1
    assert "plugin keeps timing out" in d.log()
    assert d.stop() == 0


def test_a_typo_in_a_plugin_config_fails_validation(tmp_path):
    """Issue #10: `feilds:` for the redact plugin passed validate and redacted nothing."""
    path = tmp_path / "p.yaml"
    path.write_text(f"""pipelines:
  - name: p
    processors:
      - wasm:
          module: {PLUGINS / "redact.wasm"}
          config: {{ feilds: [password] }}
    destination: {{ local: {{ path: ./d }} }}
""")
    r = subprocess.run([str(BINARY), "validate", str(path)], capture_output=True, text=True)
    assert r.returncode != 0, r.stdout
    assert f"{path}:5:" in r.stderr, r.stderr
    assert "the plugin refused its config: config: unknown field `feilds`, expected `fields`" in r.stderr, r.stderr
    path.write_text(path.read_text().replace("feilds", "fields"))
    r = subprocess.run([str(BINARY), "validate", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
