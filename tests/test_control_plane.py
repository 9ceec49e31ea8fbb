"""The control plane over the wire: boto3 and the AWS CLI create, describe, update, tag, encrypt
and delete delivery streams; streams created over the API deliver, survive restarts and kill -9,
and change under load without losing or repeating a record.
"""

import gzip
import json
import shutil
import subprocess
import threading
import time

import botocore.exceptions
import pytest

from conftest import ROOT, VENV_BIN, local_objects, wait_for

PLUGINS = ROOT / "transforms" / "target" / "wasm32-wasip1" / "release"

CONFIG = """
storage: {{ dir: ./var }}
control_plane:
  buckets:
    "*": {{ local: {{ path: "./data/{{bucket}}" }} }}
  functions: {{ dir: ./plugins }}
{extra}
"""


def start(sluice_factory, extra="", name="daemon"):
    d = sluice_factory(CONFIG.format(extra=extra), name=name)
    (d.workdir / "plugins").mkdir(exist_ok=True)
    shutil.copy(PLUGINS / "redact.wasm", d.workdir / "plugins" / "redact.wasm")
    # A Lambda has no configuration; the plugin's comes from the JSON file beside it.
    (d.workdir / "plugins" / "redact.json").write_text('{"fields": ["password"]}')
    return d.start()


def error_code(call):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


ISSUE_EXAMPLE = {
    "RoleARN": "arn:aws:iam::123456789012:role/firehose", "BucketARN": "arn:aws:s3:::data-lake-raw",
    "Prefix": "sensor-data/year=!{timestamp:yyyy}/month=!{timestamp:MM}/", "ErrorOutputPrefix": "errors/",
    "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60}, "CompressionFormat": "GZIP",
    "ProcessingConfiguration": {"Enabled": True, "Processors": [{"Type": "Lambda", "Parameters": [
        {"ParameterName": "LambdaArn", "ParameterValue": "arn:aws:lambda:us-east-1:123456789012:function:redact"}]}]},
}


def test_the_issue_example_creates_describes_and_delivers(sluice_factory):
    d = start(sluice_factory)
    fh = d.client()
    arn = fh.create_delivery_stream(DeliveryStreamName="sensor-data", DeliveryStreamType="DirectPut",
                                    ExtendedS3DestinationConfiguration=ISSUE_EXAMPLE)["DeliveryStreamARN"]
    assert arn == "arn:aws:firehose:us-east-1:000000000000:deliverystream/sensor-data"
    desc = fh.describe_delivery_stream(DeliveryStreamName="sensor-data")["DeliveryStreamDescription"]
    assert desc["DeliveryStreamStatus"] == "ACTIVE" and desc["VersionId"] == "1"
    assert desc["DeliveryStreamType"] == "DirectPut"
    (dest,) = desc["Destinations"]
    ext = dest["ExtendedS3DestinationDescription"]
    for key, value in ISSUE_EXAMPLE.items():
        assert ext[key] == value, key  # every setting echoed
    assert dest["S3DestinationDescription"]["BucketARN"] == "arn:aws:s3:::data-lake-raw"
    assert fh.list_delivery_streams()["DeliveryStreamNames"] == ["sensor-data"]

    # Shorter buffering so the test sees an object, through UpdateDestination.
    fh.update_destination(DeliveryStreamName="sensor-data", CurrentDeliveryStreamVersionId="1",
                          DestinationId="destinationId-000000000001",
                          ExtendedS3DestinationUpdate={"BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}})
    fh.put_record_batch(DeliveryStreamName="sensor-data", Records=[
        {"Data": json.dumps({"user": "u1", "password": "hunter2"}).encode()}, {"Data": b"not json"}])
    root = d.workdir / "data" / "data-lake-raw"
    objects = wait_for(lambda: (lambda o: o if len(o) == 2 else None)(local_objects(root)), what="a data and an error object")
    (key,) = [k for k in objects if k.startswith("sensor-data/")]
    assert key.startswith(f"sensor-data/year={time.gmtime().tm_year}/month=") and "/sensor-data-2-" in key and key.endswith(".gz")
    record = json.loads(gzip.decompress(objects[key]))
    assert record["password"] == "[REDACTED]"  # the Lambda ARN ran ./plugins/redact.wasm
    (error_key,) = [k for k in objects if k.startswith("errors/")]
    failure = json.loads(gzip.decompress(objects[error_key]))
    assert failure["errorCode"] == "Lambda.ProcessingFailedStatus"
    assert failure["lambdaArn"] == "arn:aws:lambda:us-east-1:123456789012:function:redact"  # the ARN, as Firehose writes it


def test_update_checks_the_version_and_object_names_carry_it(sluice_factory):
    d = start(sluice_factory)
    fh = d.client()
    fh.create_delivery_stream(DeliveryStreamName="v", S3DestinationConfiguration={
        "RoleARN": "arn:aws:iam::1:role/r", "BucketARN": "arn:aws:s3:::b", "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}})
    for version in ("1", "2"):
        fh.update_destination(DeliveryStreamName="v", CurrentDeliveryStreamVersionId=version, DestinationId="destinationId-000000000001",
                              S3DestinationUpdate={"Prefix": f"v{int(version) + 1}/"})
    code, message = error_code(lambda: fh.update_destination(
        DeliveryStreamName="v", CurrentDeliveryStreamVersionId="1", DestinationId="destinationId-000000000001",
        S3DestinationUpdate={"Prefix": "stale/"}))
    assert code == "ConcurrentModificationException" and "current version id: 3" in message
    desc = fh.describe_delivery_stream(DeliveryStreamName="v")["DeliveryStreamDescription"]
    assert desc["VersionId"] == "3" and desc["LastUpdateTimestamp"] >= desc["CreateTimestamp"]
    assert desc["Destinations"][0]["S3DestinationDescription"]["Prefix"] == "v3/"
    fh.put_record(DeliveryStreamName="v", Record={"Data": b"x\n"})
    (key,) = wait_for(lambda: local_objects(d.workdir / "data" / "b"), what="an object")
    assert key.startswith("v3/") and "/v-3-" in key
    code, message = error_code(lambda: fh.update_destination(
        DeliveryStreamName="v", CurrentDeliveryStreamVersionId="3", DestinationId="destinationId-000000000009",
        S3DestinationUpdate={"Prefix": "x/"}))
    assert (code, message) == ("InvalidArgumentException", "Destination Id destinationId-000000000009 not found")


def test_requests_sluice_cannot_run_are_refused_naming_the_member(sluice_factory):
    fh = start(sluice_factory).client()
    s3 = {"RoleARN": "arn:aws:iam::1:role/r", "BucketARN": "arn:aws:s3:::b"}
    cases = [
        (dict(SnowflakeDestinationConfiguration={"AccountUrl": "https://a.snowflakecomputing.com", "Database": "d",
                                                 "Schema": "s", "Table": "t", "RoleARN": "arn:aws:iam::1:role/r",
                                                 "S3Configuration": s3}), "SnowflakeDestinationConfiguration is not supported"),
        (dict(RedshiftDestinationConfiguration={"RoleARN": "arn:aws:iam::1:role/r", "ClusterJDBCURL": "jdbc:redshift://h:5439/d",
                                                "CopyCommand": {"DataTableName": "t"}, "Username": "u", "Password": "password1",
                                                "S3Configuration": s3, "S3BackupMode": "Enabled"}), "S3BackupMode Enabled"),
        (dict(ExtendedS3DestinationConfiguration={**s3, "S3BackupMode": "Enabled"}), "S3BackupMode"),
        (dict(ExtendedS3DestinationConfiguration={**s3, "DataFormatConversionConfiguration": {
            "SchemaConfiguration": {"DatabaseName": "db", "TableName": "t", "RoleARN": "arn:aws:iam::1:role/r"},
            "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}}}}), "Glue table db.t"),
        (dict(ExtendedS3DestinationConfiguration={**s3, "ProcessingConfiguration": {"Enabled": True, "Processors": [
            {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": "arn:aws:lambda:us-east-1:1:function:missing"}]}]}}),
         "missing.wasm"),
        (dict(S3DestinationConfiguration=s3, ExtendedS3DestinationConfiguration=s3), "Exactly one destination configuration"),
        (dict(DeliveryStreamType="MSKAsSource", MSKSourceConfiguration={
            "MSKClusterARN": "arn:aws:kafka:us-east-1:1:cluster/c/1", "TopicName": "t",
            "AuthenticationConfiguration": {"RoleARN": "arn:aws:iam::1:role/r", "Connectivity": "PUBLIC"}}, S3DestinationConfiguration=s3),
         "is not mapped to brokers here: add control_plane.kafka"),
    ]
    for i, (kwargs, expected) in enumerate(cases):
        code, message = error_code(lambda: fh.create_delivery_stream(DeliveryStreamName=f"bad{i}", **kwargs))
        assert code == "InvalidArgumentException" and expected in message, (i, message)
    assert fh.list_delivery_streams()["DeliveryStreamNames"] == []


def test_streams_declared_in_yaml_are_listed_but_not_changed(sluice_factory):
    d = start(sluice_factory, extra="""
pipelines:
  - name: declared
    processors:
      - record_deaggregation: { sub_record_type: JSON }
      - append_delimiter: {}
    destination: { local: { path: ./data/declared } }
""")
    fh = d.client()
    assert "declared" in fh.list_delivery_streams()["DeliveryStreamNames"]
    desc = fh.describe_delivery_stream(DeliveryStreamName="declared")["DeliveryStreamDescription"]
    processing = desc["Destinations"][0]["ExtendedS3DestinationDescription"]["ProcessingConfiguration"]
    assert processing == {"Enabled": True, "Processors": [
        {"Type": "RecordDeAggregation", "Parameters": [{"ParameterName": "SubRecordType", "ParameterValue": "JSON"}]},
        {"Type": "AppendDelimiterToRecord", "Parameters": []}]}
    code, message = error_code(lambda: fh.delete_delivery_stream(DeliveryStreamName="declared"))
    assert code == "ResourceInUseException" and "sluice.yaml" in message
    code, message = error_code(lambda: fh.update_destination(
        DeliveryStreamName="declared", CurrentDeliveryStreamVersionId="1", DestinationId="destinationId-000000000001",
        S3DestinationUpdate={"Prefix": "x/"}))
    assert code == "ResourceInUseException" and "sluice.yaml" in message
    code, message = error_code(lambda: fh.create_delivery_stream(
        DeliveryStreamName="declared", S3DestinationConfiguration={"RoleARN": "arn:aws:iam::1:role/r", "BucketARN": "arn:aws:s3:::b"}))
    assert code == "ResourceInUseException"
    for op in (lambda: fh.delete_delivery_stream(DeliveryStreamName="nope"),
               lambda: fh.tag_delivery_stream(DeliveryStreamName="nope", Tags=[{"Key": "k", "Value": "v"}]),
               lambda: fh.list_tags_for_delivery_stream(DeliveryStreamName="nope"),
               lambda: fh.stop_delivery_stream_encryption(DeliveryStreamName="nope")):
        assert error_code(op) == ("ResourceNotFoundException", "Firehose nope under account 000000000000 not found.")


def test_tags_and_encryption(sluice_factory):
    fh = start(sluice_factory).client()
    fh.create_delivery_stream(DeliveryStreamName="t", S3DestinationConfiguration={"RoleARN": "arn:aws:iam::1:role/r", "BucketARN": "arn:aws:s3:::b"},
                              Tags=[{"Key": "team", "Value": "web"}])
    fh.tag_delivery_stream(DeliveryStreamName="t", Tags=[{"Key": f"k{i:02}", "Value": str(i)} for i in range(49)])
    page = fh.list_tags_for_delivery_stream(DeliveryStreamName="t", Limit=10)
    assert len(page["Tags"]) == 10 and page["HasMoreTags"] is True and page["Tags"][0] == {"Key": "team", "Value": "web"}
    rest = fh.list_tags_for_delivery_stream(DeliveryStreamName="t", ExclusiveStartTagKey=page["Tags"][-1]["Key"])
    assert len(rest["Tags"]) == 40 and rest["HasMoreTags"] is False
    code, _ = error_code(lambda: fh.tag_delivery_stream(DeliveryStreamName="t", Tags=[{"Key": "one-too-many", "Value": "x"}]))
    assert code == "LimitExceededException"
    code, message = error_code(lambda: fh.tag_delivery_stream(DeliveryStreamName="t", Tags=[{"Key": "bad!", "Value": "x"}]))
    assert code == "ValidationException" and "'bad!' at 'tags.1.member.key'" in message
    fh.untag_delivery_stream(DeliveryStreamName="t", TagKeys=["team"])
    assert len(fh.list_tags_for_delivery_stream(DeliveryStreamName="t")["Tags"]) == 49

    enc = lambda: fh.describe_delivery_stream(DeliveryStreamName="t")["DeliveryStreamDescription"]["DeliveryStreamEncryptionConfiguration"]
    assert enc() == {"Status": "DISABLED"}
    code, message = error_code(lambda: fh.start_delivery_stream_encryption(
        DeliveryStreamName="t", DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK"}))
    assert code == "InvalidArgumentException" and "KeyARN" in message
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    fh.start_delivery_stream_encryption(DeliveryStreamName="t", DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": key})
    assert enc() == {"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": key, "Status": "ENABLED"}
    assert fh.put_record(DeliveryStreamName="t", Record={"Data": b"x"})["Encrypted"] is True
    fh.stop_delivery_stream_encryption(DeliveryStreamName="t")
    assert enc()["Status"] == "DISABLED"


def test_api_streams_survive_kill9_with_their_undelivered_records(sluice_factory):
    d = start(sluice_factory)
    fh = d.client()
    fh.create_delivery_stream(DeliveryStreamName="durable", S3DestinationConfiguration={
        "RoleARN": "arn:aws:iam::1:role/r", "BucketARN": "arn:aws:s3:::lake", "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 900}},
        Tags=[{"Key": "k", "Value": "v"}])
    ids = {fh.put_record(DeliveryStreamName="durable", Record={"Data": f"r{i}\n".encode()})["RecordId"] for i in range(20)}
    d.kill9()
    d.start()
    fh = d.client()
    assert fh.list_delivery_streams()["DeliveryStreamNames"] == ["durable"]
    assert fh.list_tags_for_delivery_stream(DeliveryStreamName="durable")["Tags"] == [{"Key": "k", "Value": "v"}]
    new_id = fh.put_record(DeliveryStreamName="durable", Record={"Data": b"r20\n"})["RecordId"]
    assert new_id not in ids
    # Deleting drains: everything acknowledged is delivered first, then the WAL is freed.
    fh.delete_delivery_stream(DeliveryStreamName="durable")
    wait_for(lambda: fh.list_delivery_streams()["DeliveryStreamNames"] == [], what="the stream to be deleted")
    lines = sorted(line for body in local_objects(d.workdir / "data" / "lake").values() for line in body.decode().splitlines())
    assert lines == sorted(f"r{i}" for i in range(21))
    assert not (d.workdir / "var" / "pipelines" / "durable").exists()
    assert not (d.workdir / "var" / "streams" / "durable.json").exists()


def test_force_delete_discards_and_a_new_stream_of_the_name_starts_empty(sluice_factory):
    d = start(sluice_factory)
    fh = d.client()
    config = {"RoleARN": "arn:aws:iam::1:role/r", "BucketARN": "arn:aws:s3:::gone", "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 900}}
    fh.create_delivery_stream(DeliveryStreamName="f", S3DestinationConfiguration=config)
    first = fh.put_record(DeliveryStreamName="f", Record={"Data": b"old\n"})["RecordId"]
    fh.delete_delivery_stream(DeliveryStreamName="f", AllowForceDelete=True)
    wait_for(lambda: fh.list_delivery_streams()["DeliveryStreamNames"] == [], what="the stream to be deleted")
    fh.create_delivery_stream(DeliveryStreamName="f", S3DestinationConfiguration={**config, "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}})
    second = fh.put_record(DeliveryStreamName="f", Record={"Data": b"new\n"})["RecordId"]
    assert second != first  # a new stream of the same name has a new RecordId seed
    objects = wait_for(lambda: local_objects(d.workdir / "data" / "gone"), what="an object")
    assert b"".join(objects.values()) == b"new\n"


def test_create_update_delete_under_load_loses_and_repeats_nothing(sluice_factory):
    d = start(sluice_factory)
    fh = d.client(retries={"max_attempts": 10, "mode": "standard"})
    fh.create_delivery_stream(DeliveryStreamName="busy", S3DestinationConfiguration={
        "RoleARN": "arn:aws:iam::1:role/r", "BucketARN": "arn:aws:s3:::busy", "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}})
    acknowledged, refusals, stop = [], [], threading.Event()

    def producer():
        client = d.client(retries={"max_attempts": 10, "mode": "standard"})
        n = 0
        while not stop.is_set():
            batch = [f"{n + i}" for i in range(50)]
            try:
                out = client.put_record_batch(DeliveryStreamName="busy", Records=[{"Data": f"{r}\n".encode()} for r in batch])
            except botocore.exceptions.ClientError as e:
                refusals.append(e.response["Error"]["Code"])
                continue
            acknowledged.extend(r for r, res in zip(batch, out["RequestResponses"]) if "RecordId" in res)
            n += 50

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.5)
    for version in range(1, 4):
        fh.update_destination(DeliveryStreamName="busy", CurrentDeliveryStreamVersionId=str(version),
                              DestinationId="destinationId-000000000001", S3DestinationUpdate={"Prefix": f"v{version + 1}/"})
        time.sleep(0.3)
    stop.set()
    thread.join()
    # During a swap puts are refused with 503, which SDKs retry: never a "not found".
    assert set(refusals) <= {"ServiceUnavailableException"}, refusals
    fh.delete_delivery_stream(DeliveryStreamName="busy")
    wait_for(lambda: fh.list_delivery_streams()["DeliveryStreamNames"] == [], what="the stream to be deleted")
    objects = local_objects(d.workdir / "data" / "busy")
    delivered = [line for body in objects.values() for line in body.decode().splitlines()]
    assert len(acknowledged) > 500
    assert sorted(delivered) == sorted(acknowledged)  # nothing lost, nothing twice
    assert {k.split("/")[0] for k in objects} >= {"v2", "v3", "v4"}


def test_record_ids_differ_between_two_fresh_daemons(sluice_factory):
    ids = []
    for name in ("one", "two"):
        d = sluice_factory("storage: { dir: ./var }\nauto_create: { destination: { local: { path: \"./data/{stream}\" } } }\n", name=name).start()
        ids.append(d.client().put_record(DeliveryStreamName="same", Record={"Data": b"x"})["RecordId"])
    assert ids[0] != ids[1]


def test_the_aws_cli_manages_streams(sluice_factory):
    d = start(sluice_factory)

    def aws(*args):
        out = subprocess.run([str(VENV_BIN / "aws"), "firehose", *args, "--endpoint-url", d.endpoint, "--region", "us-east-1", "--output", "json"],
                             capture_output=True, text=True, timeout=60)
        return out.returncode, out.stdout, out.stderr

    code, out, err = aws("create-delivery-stream", "--delivery-stream-name", "cli",
                         "--s3-destination-configuration", "RoleARN=arn:aws:iam::1:role/r,BucketARN=arn:aws:s3:::cli-bucket")
    assert code == 0, err
    assert json.loads(out)["DeliveryStreamARN"].endswith(":deliverystream/cli")
    code, out, err = aws("describe-delivery-stream", "--delivery-stream-name", "cli")
    assert code == 0 and json.loads(out)["DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE"
    code, out, err = aws("tag-delivery-stream", "--delivery-stream-name", "cli", "--tags", "Key=team,Value=data")
    assert code == 0, err
    code, out, err = aws("delete-delivery-stream", "--delivery-stream-name", "cli")
    assert code == 0, err
    code, out, err = aws("delete-delivery-stream", "--delivery-stream-name", "cli-missing")
    assert code != 0 and "ResourceNotFoundException" in err


def test_create_is_refused_without_a_control_plane_section(sluice_factory):
    d = sluice_factory("storage: { dir: ./var }\n").start()
    code, message = error_code(lambda: d.client().create_delivery_stream(
        DeliveryStreamName="x", S3DestinationConfiguration={"RoleARN": "arn:aws:iam::1:role/r", "BucketARN": "arn:aws:s3:::b"}))
    assert code == "InvalidArgumentException" and "control_plane" in message
