"""The Firehose wire API: shapes, limits and exact errors, through boto3, the AWS CLI and raw HTTP."""

import json
import os
import re
import signal
import subprocess
import textwrap

import pytest
from botocore.exceptions import ClientError

from conftest import VENV_BIN, b64, http_get, wait_for

CONFIG = """
pipelines:
  - name: clicks
    buffering: { size_mb: 1, interval_seconds: 1 }
    destination:
      local: { path: ./out, append_delimiter: true }
  - name: views
    destination:
      s3: { bucket: lake, prefix: "views/!{timestamp:yyyy}/", error_output_prefix: "errors/!{firehose:error-output-type}/", compression: GZIP }
"""


@pytest.fixture
def daemon(sluice_factory):
    return sluice_factory(CONFIG).start()


def error_of(excinfo):
    e = excinfo.value.response
    return e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Message"]


def test_put_record_batch_returns_one_record_id_per_record_in_order(daemon):
    c = daemon.client()
    r = c.put_record_batch(DeliveryStreamName="clicks", Records=[{"Data": f"r{i}".encode()} for i in range(500)])
    assert r["FailedPutCount"] == 0
    assert r["Encrypted"] is False
    ids = [x["RecordId"] for x in r["RequestResponses"]]
    assert len(ids) == 500 and len(set(ids)) == 500
    assert ids == sorted(ids), "record ids follow WAL order"
    single = c.put_record(DeliveryStreamName="clicks", Record={"Data": b""})
    assert single["RecordId"] > ids[-1], "empty records are allowed"


def test_unknown_stream_is_resource_not_found(daemon):
    with pytest.raises(ClientError) as e:
        daemon.client().put_record(DeliveryStreamName="nope", Record={"Data": b"x"})
    assert error_of(e)[:2] == ("ResourceNotFoundException", 400)
    assert "nope" in error_of(e)[2]
    with pytest.raises(ClientError) as e:
        daemon.client().describe_delivery_stream(DeliveryStreamName="nope")
    assert error_of(e)[0] == "ResourceNotFoundException"


def test_more_than_500_records_is_a_validation_error(daemon):
    with pytest.raises(ClientError) as e:
        daemon.client().put_record_batch(DeliveryStreamName="clicks", Records=[{"Data": b"x"}] * 501)
    code, status, message = error_of(e)
    assert (code, status) == ("ValidationException", 400)
    assert "less than or equal to 500" in message


def test_record_over_1024000_bytes_is_rejected_and_the_limit_itself_is_accepted(daemon):
    c = daemon.client()
    c.put_record(DeliveryStreamName="clicks", Record={"Data": b"x" * 1_024_000})
    with pytest.raises(ClientError) as e:
        c.put_record(DeliveryStreamName="clicks", Record={"Data": b"x" * 1_024_001})
    assert error_of(e)[:2] == ("ValidationException", 400)
    with pytest.raises(ClientError) as e:
        c.put_record_batch(DeliveryStreamName="clicks", Records=[{"Data": b"a"}, {"Data": b"x" * 1_024_001}])
    assert "records.2.member.data" in error_of(e)[2]


def test_batch_over_4_mib_is_invalid_argument(daemon):
    records = [{"Data": b"x" * 1_000_000}] * 5
    with pytest.raises(ClientError) as e:
        daemon.client().put_record_batch(DeliveryStreamName="clicks", Records=records)
    code, status, message = error_of(e)
    assert (code, status) == ("InvalidArgumentException", 400)
    assert "4 MB" in message


def test_malformed_json_bad_base64_and_missing_members(daemon):
    status, headers, body = daemon.raw("PutRecordBatch", b'{"DeliveryStreamName": "clicks", "Records": [')
    assert (status, body["__type"]) == (400, "InvalidArgumentException")
    assert headers["x-amzn-errortype"] == "InvalidArgumentException"

    status, _, body = daemon.raw("PutRecordBatch", {"DeliveryStreamName": "clicks", "Records": [{"Data": b64(b"ok")}, {"Data": "@@not base64@@"}]})
    assert (status, body["__type"]) == (400, "InvalidArgumentException")
    assert "records.2.member.data" in body["message"]

    status, _, body = daemon.raw("PutRecord", {"DeliveryStreamName": "clicks"})
    assert (status, body["__type"]) == (400, "ValidationException")
    assert "record" in body["message"]

    status, _, body = daemon.raw("PutRecordBatch", {"DeliveryStreamName": "clicks", "Records": []})
    assert (status, body["__type"]) == (400, "ValidationException")


def test_a_rejected_request_stores_nothing(daemon):
    before = daemon.metric("sluice_incoming_records_total", "clicks")
    daemon.raw("PutRecordBatch", {"DeliveryStreamName": "clicks", "Records": [{"Data": b64(b"good")}, {"Data": "!!"}]})
    assert daemon.metric("sluice_incoming_records_total", "clicks") == before


def test_unknown_target_and_unsupported_operations(daemon):
    status, _, body = daemon.raw(None, {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, _, body = daemon.raw("FlyToTheMoon", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, _, body = daemon.raw("CreateDeliveryStream", {"DeliveryStreamName": "x"})
    assert (status, body["__type"]) == (400, "InvalidArgumentException")


def test_list_and_describe_reflect_the_config(daemon):
    c = daemon.client()
    assert c.list_delivery_streams()["DeliveryStreamNames"] == ["clicks", "views"]
    page = c.list_delivery_streams(Limit=1)
    assert page == {**page, "DeliveryStreamNames": ["clicks"], "HasMoreDeliveryStreams": True}
    assert c.list_delivery_streams(ExclusiveStartDeliveryStreamName="clicks")["DeliveryStreamNames"] == ["views"]
    d = c.describe_delivery_stream(DeliveryStreamName="views")["DeliveryStreamDescription"]
    assert d["DeliveryStreamStatus"] == "ACTIVE"
    assert d["DeliveryStreamARN"].endswith(":deliverystream/views")
    s3 = d["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert s3["BucketARN"] == "arn:aws:s3:::lake"
    assert s3["Prefix"] == "views/!{timestamp:yyyy}/"
    assert s3["CompressionFormat"] == "GZIP"
    assert s3["BufferingHints"] == {"SizeInMBs": 5, "IntervalInSeconds": 300}


def test_aws_cli_works_unchanged_with_endpoint_url(daemon):
    aws = str(VENV_BIN / "aws")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([aws, "firehose", "put-record", "--endpoint-url", daemon.endpoint, "--delivery-stream-name", "clicks",
                          "--record", "Data=from-the-cli"], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout)["RecordId"]
    out = subprocess.run([aws, "firehose", "list-delivery-streams", "--endpoint-url", daemon.endpoint],
                         capture_output=True, text=True, env=env, check=True)
    assert "clicks" in json.loads(out.stdout)["DeliveryStreamNames"]
    files = wait_for(lambda: [p for p in (daemon.workdir / "out").rglob("*") if p.is_file()], what="the CLI's record delivered")
    assert b"from-the-cli\n" in b"".join(p.read_bytes() for p in files)


def test_health_and_metrics_named_after_firehose(daemon):
    c = daemon.client()
    c.put_record_batch(DeliveryStreamName="clicks", Records=[{"Data": b"abcd"}] * 10)
    m = daemon.metrics()
    assert m['sluice_incoming_records_total{delivery_stream_name="clicks"}'] == 10
    assert m['sluice_incoming_bytes_total{delivery_stream_name="clicks"}'] == 40
    assert m['sluice_incoming_put_requests_total{delivery_stream_name="clicks"}'] == 1
    # A local directory reports as such (not as S3), and only the series of what the pipeline has.
    wait_for(lambda: daemon.metric("sluice_delivery_to_local_records_total", "clicks") == 10, what="delivery metrics")
    m = daemon.metrics()
    assert m['sluice_delivery_to_local_object_count_total{delivery_stream_name="clicks"}'] >= 1
    assert m['sluice_delivery_to_local_bytes_total{delivery_stream_name="clicks"}'] == 50
    assert 'sluice_delivery_to_local_data_freshness_seconds{delivery_stream_name="clicks"}' in m
    assert 'sluice_delivery_to_local_failures_total{delivery_stream_name="clicks"}' in m
    assert 'sluice_delivery_to_s3_records_total{delivery_stream_name="views"}' in m
    clicks = [k for k in m if 'delivery_stream_name="clicks"' in k]
    for foreign in ["delivery_to_s3_", "http_endpoint", "backup_to_s3", "conversion"]:
        assert not [k for k in clicks if foreign in k], (foreign, clicks)
    # Every family says what it is.
    _, text = http_get(daemon.endpoint + "/metrics")
    types = set(re.findall(r"^# TYPE (\S+)", text, re.M))
    helps = set(re.findall(r"^# HELP (\S+)", text, re.M))
    assert types and types <= helps, sorted(types - helps)


def test_records_a_jq_select_drops_are_counted_and_removed_pipelines_leave_metrics(sluice_factory):
    picky = """
        storage: { dir: ./var }
        pipelines:
          - name: picky
            buffering: { interval_seconds: 1 }
            processors: [ { jq: { query: "select(.keep)" } } ]
            destination: { local: { path: ./out } }
        """
    d = sluice_factory(picky + """
          - name: doomed
            destination: { local: { path: ./doomed } }
        """).start()
    d.client().put_record_batch(DeliveryStreamName="picky", Records=[
        {"Data": b'{"keep": true}\n'}, {"Data": b'{"keep": false}\n'}, {"Data": b'{"keep": null}\n'}])
    wait_for(lambda: d.metric("sluice_delivery_to_local_records_total", "picky") == 1, what="the kept record")
    assert d.metrics()['sluice_dropped_records_total{delivery_stream_name="picky",processor="jq"}'] == 2
    assert d.metric("sluice_wal_bytes", "doomed") == 0 and any("doomed" in k for k in d.metrics())
    d.config_path.write_text(textwrap.dedent(picky))
    d.proc.send_signal(signal.SIGHUP)  # a reload removes `doomed`
    wait_for(lambda: not any('"doomed"' in k for k in d.metrics()), what="the removed pipeline's series to go")


def test_a_refused_put_does_not_auto_create_its_stream(sluice_factory):
    d = sluice_factory("""
        auto_create:
          destination: { local: { path: "./data/{stream}" } }
        """).start()
    c = d.client()
    with pytest.raises(ClientError) as e:
        c.put_record_batch(DeliveryStreamName="too-many", Records=[{"Data": b"x"}] * 501)
    assert error_of(e)[:2] == ("ValidationException", 400)
    with pytest.raises(ClientError):
        c.put_record(DeliveryStreamName="too-big", Record={"Data": b"x" * 1_024_001})
    assert c.list_delivery_streams()["DeliveryStreamNames"] == []
    # Logs written to a file carry no terminal colour codes.
    assert "\x1b[" not in d.log()
