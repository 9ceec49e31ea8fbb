"""A Kinesis Data Stream as a pipeline's source, against kinesalite (npm; scripts/test.sh installs
it into tests/js) with boto3 producers: every record of every shard delivered once, KPL aggregates
de-aggregated, a restart resuming from the checkpoint, a shard split mid-load; and several daemons
sharing one stream through a lease table in dynalite (npm, the same way).
"""

import json
import subprocess
import time

import boto3
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from conftest import ROOT, free_port, local_objects, wait_for, http_get

KINESALITE = ROOT / "tests" / "js" / "node_modules" / ".bin" / "kinesalite"
DYNALITE = ROOT / "tests" / "js" / "node_modules" / ".bin" / "dynalite"


@pytest.fixture(scope="module")
def kinesalite():
    assert KINESALITE.exists(), "run `npm ci --prefix tests/js` (scripts/test.sh does)"
    port = free_port()
    proc = subprocess.Popen([str(KINESALITE), "--port", str(port), "--createStreamMs", "0", "--deleteStreamMs", "0",
                             "--updateStreamMs", "0", "--shardLimit", "100"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"

    def up():
        try:
            return http_get(endpoint + "/")[0] in (200, 400)
        except Exception as e:  # noqa: BLE001 - kinesalite answers 400 to a bare GET, urllib raises
            return "400" in str(e) or "403" in str(e)
    wait_for(up, 30, what="kinesalite")
    yield endpoint
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def dynalite():
    assert DYNALITE.exists(), "run `npm ci --prefix tests/js` (scripts/test.sh does)"
    port = free_port()
    proc = subprocess.Popen([str(DYNALITE), "--port", str(port), "--createTableMs", "0", "--deleteTableMs", "0",
                             "--updateTableMs", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"

    def up():
        try:
            boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1").list_tables()
            return True
        except Exception:  # noqa: BLE001 - not listening yet
            return False
    wait_for(up, 30, what="dynalite")
    yield endpoint
    proc.terminate()
    proc.wait(10)


def kinesis(endpoint):
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1")


def make_stream(endpoint, name, shards):
    k = kinesis(endpoint)
    k.create_stream(StreamName=name, ShardCount=shards)
    wait_for(lambda: k.describe_stream(StreamName=name)["StreamDescription"]["StreamStatus"] == "ACTIVE", what="the stream")
    return k


def put(k, name, records):
    """records: [(partition key, bytes)], in batches of 500."""
    for i in range(0, len(records), 500):
        out = k.put_records(StreamName=name, Records=[{"PartitionKey": key, "Data": data} for key, data in records[i:i + 500]])
        assert out["FailedRecordCount"] == 0


def pipeline(sluice_factory, endpoint, stream, name="daemon", extra=""):
    return sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: from-kinesis
    source:
      kinesis:
        stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/{stream}
        endpoint: {endpoint}
        starting_position: TRIM_HORIZON
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    destination: {{ local: {{ path: ./data, append_delimiter: true }} }}
{extra}
""", name=name)


def delivered_lines(d):
    return [line for body in local_objects(d.workdir / "data").values() for line in body.decode().splitlines()]


def assert_written_before(d, first, then):
    """Every object holding a record marked `first` was written before any object holding `then`."""
    files = [p for p in (d.workdir / "data").rglob("*") if p.is_file() and "#" not in p.name]
    earlier = [p.stat().st_mtime_ns for p in files if first in p.read_bytes()]
    later = [p.stat().st_mtime_ns for p in files if then in p.read_bytes()]
    assert earlier and later and max(earlier) < min(later)


def test_every_record_of_four_shards_is_delivered_once(sluice_factory, kinesalite):
    k = make_stream(kinesalite, "four", 4)
    sent = [(f"key{i % 37}", json.dumps({"i": i}).encode()) for i in range(3000)]
    put(k, "four", sent)
    d = pipeline(sluice_factory, kinesalite, "four").start()
    wait_for(lambda: len(delivered_lines(d)) >= 3000, timeout=60, what="3000 records")
    time.sleep(1.5)
    assert sorted(delivered_lines(d)) == sorted(data.decode() for _, data in sent)
    assert d.metric("sluice_data_read_from_kinesis_stream_records_total", "from-kinesis") == 3000
    fh = d.client()
    desc = fh.describe_delivery_stream(DeliveryStreamName="from-kinesis")["DeliveryStreamDescription"]
    assert desc["DeliveryStreamType"] == "KinesisStreamAsSource"
    assert desc["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"].endswith(":stream/four")
    assert "DeliveryStartTimestamp" in desc["Source"]["KinesisStreamSourceDescription"]
    assert fh.list_delivery_streams(DeliveryStreamType="KinesisStreamAsSource")["DeliveryStreamNames"] == ["from-kinesis"]
    status, _, body = d.raw("PutRecord", {"DeliveryStreamName": "from-kinesis", "Record": {"Data": "eA=="}})
    assert (status, body["__type"]) == (400, "InvalidArgumentException")
    assert body["message"] == "This operation is not permitted on KinesisStreamAsSource DeliveryStream type."


def test_kpl_aggregates_are_deaggregated(sluice_factory, kinesalite):
    k = make_stream(kinesalite, "kpl", 1)
    aggregator = RecordAggregator()
    sent = [json.dumps({"user": i}) for i in range(250)]
    aggregated = []
    for i, data in enumerate(sent):
        done = aggregator.add_user_record(f"pk{i % 5}", data.encode())
        if done:
            aggregated.append(done)
    if aggregator.get_num_user_records():
        aggregated.append(aggregator.clear_and_get())
    put(k, "kpl", [(a.get_contents()[0], a.get_contents()[2]) for a in aggregated])
    d = pipeline(sluice_factory, kinesalite, "kpl").start()
    wait_for(lambda: len(delivered_lines(d)) >= 250, timeout=60, what="250 user records")
    assert sorted(delivered_lines(d)) == sorted(sent)


def test_plugins_see_kinesis_metadata_and_error_records_carry_the_stream_position(sluice_factory, kinesalite):
    """ABI version 2: the kinesis_route plugin routes each record by its shard and partition key
    (Firehose's kinesisRecordMetadata), including the user records of a KPL aggregate, which keep
    their own keys; a record that fails processing is written with its sequenceNumber."""
    k = make_stream(kinesalite, "meta", 2)
    plain = [(f"user-{i % 4}", json.dumps({"i": i}).encode()) for i in range(200)]
    out = k.put_records(StreamName="meta", Records=[{"PartitionKey": key, "Data": data} for key, data in plain])
    shard_of = {data.decode(): r["ShardId"] for (_, data), r in zip(plain, out["Records"])}
    aggregator = RecordAggregator()
    for i in range(3):
        aggregator.add_user_record(f"kpl-{i}", json.dumps({"kpl": i}).encode())
    agg = aggregator.clear_and_get().get_contents()
    kpl_shard = k.put_record(StreamName="meta", PartitionKey=agg[0], Data=agg[2])["ShardId"]
    corrupt = k.put_record(StreamName="meta", PartitionKey="bad", Data=b"\xf3\x89\x9a\xc2 not an aggregate")
    plugin = ROOT / "transforms" / "target" / "wasm32-wasip1" / "release" / "kinesis_route.wasm"
    d = sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: from-kinesis
    source:
      kinesis:
        stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/meta
        endpoint: {kinesalite}
        starting_position: TRIM_HORIZON
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    processors:
      - wasm: {{ module: {plugin} }}
      - append_delimiter: {{}}
    dynamic_partitioning: {{ enabled: true }}
    destination:
      local:
        path: ./data
        prefix: "!{{partitionKeyFromLambda:shard_id}}/!{{partitionKeyFromLambda:partition_key}}/"
        error_output_prefix: "errors/!{{firehose:error-output-type}}/"
""").start()
    data = d.workdir / "data"
    wait_for(lambda: sum(len(v.splitlines()) for v in local_objects(data).values()) >= 204, timeout=60, what="every record")
    placed = {}
    for path, body in local_objects(data).items():
        for line in body.decode().splitlines():
            placed[line] = path.split("/")[:2]
    for key, record in plain:
        assert placed[record.decode()] == [shard_of[record.decode()], key]
    for i in range(3):
        assert placed[json.dumps({"kpl": i})] == [kpl_shard, f"kpl-{i}"]
    error = json.loads(next(v for p, v in local_objects(data).items() if p.startswith("errors/processing-failed/")))
    assert error["errorCode"] == "RecordDeAggregation.Failed"
    assert (error["sequenceNumber"], error["subSequenceNumber"]) == (corrupt["SequenceNumber"], 0)


def test_a_restart_resumes_after_the_checkpoint(sluice_factory, kinesalite):
    k = make_stream(kinesalite, "resume", 2)
    first = [(f"k{i}", f"first-{i}".encode()) for i in range(400)]
    put(k, "resume", first)
    d = pipeline(sluice_factory, kinesalite, "resume").start()
    wait_for(lambda: len(delivered_lines(d)) >= 400, timeout=60, what="the first records")
    assert d.stop() == 0  # SIGTERM: the checkpoint is written as the pipeline drains
    second = [(f"k{i}", f"second-{i}".encode()) for i in range(400)]
    put(k, "resume", second)
    d.start()
    wait_for(lambda: len(delivered_lines(d)) >= 800, timeout=60, what="the records put while stopped")
    time.sleep(2.5)  # anything read twice would show up by now
    assert sorted(delivered_lines(d)) == sorted(data.decode() for _, data in first + second)


def test_records_read_again_land_on_the_same_object_names(sluice_factory, kinesalite):
    """Object names come from the stream positions of the records in them, not from pipeline
    sequences, which each daemon numbers its own way (another daemon taking a shard over, or this
    one after a restart, gives the same records other numbers). So a batch read and cut again
    overwrites its earlier copy. Here the shard positions are dropped from the checkpoint and the
    pipeline's numbering kept where it was: everything is read again under new numbers, and the
    destination still holds every record once."""
    k = make_stream(kinesalite, "again", 1)
    sent = [(f"k{i}", f"again-{i}".encode()) for i in range(500)]
    put(k, "again", sent)
    d = pipeline(sluice_factory, kinesalite, "again").start()
    wait_for(lambda: len(delivered_lines(d)) >= 500, timeout=60, what="the records")
    first_names = sorted(local_objects(d.workdir / "data"))
    assert d.stop() == 0
    checkpoints = list((d.workdir / "var").rglob("kinesis-checkpoint.json"))
    assert len(checkpoints) == 1
    checkpoint = json.loads(checkpoints[0].read_text())
    assert checkpoint["delivered_below"] >= 500
    checkpoints[0].write_text(json.dumps({**checkpoint, "shards": {}}))
    d.start()
    wait_for(lambda: d.metric("sluice_data_read_from_kinesis_stream_records_total", "from-kinesis") == 500,
             timeout=60, what="the records read again")
    time.sleep(2.5)  # delivered by now (1 s buffer interval)
    assert sorted(local_objects(d.workdir / "data")) == first_names
    assert sorted(delivered_lines(d)) == sorted(data.decode() for _, data in sent)


def reshard_mid_load(sluice_factory, kinesalite, stream, shards, reshard, what):
    """300 records, then `reshard(k)` while sluice reads, then 300 more: every record is delivered once,
    and every record put before the reshard is written before any put after it (children wait)."""
    k = make_stream(kinesalite, stream, shards)
    before = [(f"k{i % 10}", f"before-{i}".encode()) for i in range(300)]
    put(k, stream, before)
    d = pipeline(sluice_factory, kinesalite, stream).start()
    reshard(k)
    wait_for(lambda: k.describe_stream(StreamName=stream)["StreamDescription"]["StreamStatus"] == "ACTIVE", what="the reshard")
    after = [(f"k{i % 10}", f"after-{i}".encode()) for i in range(300)]
    put(k, stream, after)
    wait_for(lambda: len(delivered_lines(d)) >= 600, timeout=90, what=what)
    time.sleep(1.5)
    assert sorted(delivered_lines(d)) == sorted(data.decode() for _, data in before + after)
    # Children wait until their parents are delivered (per-key order holds).
    assert_written_before(d, b"before-", b"after-")


def test_a_shard_split_mid_load_loses_nothing(sluice_factory, kinesalite):
    def split(k):
        shard = k.list_shards(StreamName="split")["Shards"][0]
        lo, hi = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
        k.split_shard(StreamName="split", ShardToSplit=shard["ShardId"], NewStartingHashKey=str((lo + hi) // 2))
    reshard_mid_load(sluice_factory, kinesalite, "split", 1, split, "records from the parent and both children")


def test_a_kinesis_sourced_stream_created_over_the_api(sluice_factory, kinesalite):
    k = make_stream(kinesalite, "api-source", 2)
    d = sluice_factory(f"""
storage: {{ dir: ./var }}
control_plane:
  buckets: {{ "*": {{ local: {{ path: "./data/{{bucket}}" }} }} }}
  kinesis: {{ endpoint: {kinesalite} }}
""").start()
    fh = d.client()
    fh.create_delivery_stream(
        DeliveryStreamName="from-api", DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/api-source",
                                          "RoleARN": "arn:aws:iam::000000000000:role/firehose"},
        ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::lake",
                                            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}})
    desc = fh.describe_delivery_stream(DeliveryStreamName="from-api")["DeliveryStreamDescription"]
    assert desc["DeliveryStreamType"] == "KinesisStreamAsSource"
    source = desc["Source"]["KinesisStreamSourceDescription"]
    assert source["KinesisStreamARN"].endswith(":stream/api-source") and "DeliveryStartTimestamp" in source
    time.sleep(1.5)  # LATEST: records put after the stream was created are read
    sent = [(f"k{i}", f"{i}\n".encode()) for i in range(100)]
    put(k, "api-source", sent)
    root = d.workdir / "data" / "lake"
    wait_for(lambda: sum(len(b.splitlines()) for b in local_objects(root).values()) >= 100, timeout=60, what="the records")
    lines = sorted(line for b in local_objects(root).values() for line in b.decode().splitlines())
    assert lines == sorted(str(i) for i in range(100))


def test_kill9_under_load_loses_nothing(sluice_factory, kinesalite):
    k = make_stream(kinesalite, "crash", 2)
    sent = [(f"k{i % 13}", f"r{i}".encode()) for i in range(6000)]
    put(k, "crash", sent[:3000])
    d = pipeline(sluice_factory, kinesalite, "crash").start()
    wait_for(lambda: len(delivered_lines(d)) >= 500, timeout=60, what="some records delivered")
    put(k, "crash", sent[3000:4500])
    d.kill9()
    put(k, "crash", sent[4500:])
    d.start()
    wait_for(lambda: set(delivered_lines(d)) >= {data.decode() for _, data in sent}, timeout=90, what="every record")
    time.sleep(1.5)
    lines = delivered_lines(d)
    assert set(lines) == {data.decode() for _, data in sent}  # nothing lost
    # What a crash can repeat: records read but not yet checkpointed (README: "Kinesis source").
    assert len(lines) - len(sent) <= (8 + 2) * 2000 + 3000


def leased(sluice_factory, kinesalite, dynalite, stream, name, duration=3):
    """A daemon sharing `stream` through the lease table `leases-<stream>`, named `name` in it."""
    return sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: from-kinesis
    source:
      kinesis:
        stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/{stream}
        endpoint: {kinesalite}
        starting_position: TRIM_HORIZON
        leases:
          dynamodb: {{ table: leases-{stream}, endpoint: {dynalite} }}
          owner: {name}
          lease_duration_seconds: {duration}
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    destination: {{ local: {{ path: ./data, append_delimiter: true }} }}
""", name=name)


def lease_owners(dynalite, stream):
    table = boto3.client("dynamodb", endpoint_url=dynalite, region_name="us-east-1")
    items = table.scan(TableName=f"leases-{stream}", ConsistentRead=True)["Items"]
    return {i["leaseKey"]["S"]: i.get("leaseOwner", {}).get("S") for i in items}


def held(d):
    return d.metric("sluice_kinesis_leases_held", "from-kinesis")


def test_finished_leases_of_shards_gone_from_the_stream_are_deleted(sluice_factory, kinesalite, dynalite):
    """The KCL's lease cleanup: once a shard is trimmed from the stream (after the retention
    period), its finished lease is deleted. kinesalite never trims, so the leases of two shards it
    does not have are written beforehand: a finished one goes, an unfinished one stays (its records
    expired unread) with a warning."""
    k = make_stream(kinesalite, "trim", 1)
    table = boto3.client("dynamodb", endpoint_url=dynalite, region_name="us-east-1")
    table.create_table(TableName="leases-trim", KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                       BillingMode="PAY_PER_REQUEST")
    for shard, checkpoint in [("shardId-000000000098", "49590338271490256608559692538361571095921575989136588898"),
                              ("shardId-000000000099", "SHARD_END")]:
        table.put_item(TableName="leases-trim", Item={"leaseKey": {"S": shard}, "leaseCounter": {"N": "7"},
                                                      "checkpoint": {"S": checkpoint}})
    d = leased(sluice_factory, kinesalite, dynalite, "trim", "solo").start()
    put(k, "trim", [("k", b"after cleanup")])
    wait_for(lambda: delivered_lines(d) == ["after cleanup"], timeout=30, what="the record")
    wait_for(lambda: "shardId-000000000099" not in lease_owners(dynalite, "trim"), timeout=30, what="the cleanup")
    assert set(lease_owners(dynalite, "trim")) == {"shardId-000000000000", "shardId-000000000098"}
    assert "shardId-000000000098" in d.log() and "expired unread" in d.log()


def test_two_daemons_share_the_shards_and_hand_them_over_without_duplicates(sluice_factory, kinesalite, dynalite):
    k = make_stream(kinesalite, "shared", 4)
    a = leased(sluice_factory, kinesalite, dynalite, "shared", "daemon-a").start()
    wait_for(lambda: held(a) == 4, timeout=30, what="the first daemon to take every shard")
    first = [(f"k{i % 41}", f"first-{i}".encode()) for i in range(4000)]
    put(k, "shared", first[:2000])
    b = leased(sluice_factory, kinesalite, dynalite, "shared", "daemon-b").start()
    put(k, "shared", first[2000:])
    # B asks A for its fair share; A hands each shard over once what it read from it is delivered.
    wait_for(lambda: held(a) == 2 and held(b) == 2, timeout=40, what="two shards each")
    assert sorted(lease_owners(dynalite, "shared").values()) == ["daemon-a", "daemon-a", "daemon-b", "daemon-b"]
    second = [(f"k{i % 41}", f"second-{i}".encode()) for i in range(2000)]
    put(k, "shared", second)
    both = lambda: delivered_lines(a) + delivered_lines(b)  # noqa: E731
    wait_for(lambda: len(both()) >= 6000, timeout=60, what="6000 records between the two")
    assert len(delivered_lines(b)) > 0
    # SIGTERM: B writes its final checkpoint and frees its leases; A takes them at once.
    assert b.stop() == 0
    wait_for(lambda: held(a) == 4, timeout=20, what="the remaining daemon to take the freed shards")
    third = [(f"k{i % 41}", f"third-{i}".encode()) for i in range(2000)]
    put(k, "shared", third)
    wait_for(lambda: len(both()) >= 8000, timeout=60, what="8000 records")
    time.sleep(3)  # anything read twice would show up by now
    assert sorted(both()) == sorted(data.decode() for _, data in first + second + third)
    assert set(lease_owners(dynalite, "shared").values()) == {"daemon-a"}
    assert "handed the lease over" in a.log()


def test_a_killed_daemons_shards_are_taken_over_after_the_lease_expires(sluice_factory, kinesalite, dynalite):
    k = make_stream(kinesalite, "takeover", 4)
    a = leased(sluice_factory, kinesalite, dynalite, "takeover", "daemon-a").start()
    b = leased(sluice_factory, kinesalite, dynalite, "takeover", "daemon-b").start()
    wait_for(lambda: held(a) == 2 and held(b) == 2, timeout=40, what="two shards each")
    sent = [(f"k{i % 29}", f"r{i}".encode()) for i in range(6000)]
    put(k, "takeover", sent[:3000])
    wait_for(lambda: len(delivered_lines(b)) >= 200, timeout=60, what="the second daemon delivering")
    b.kill9()
    put(k, "takeover", sent[3000:])
    # A sees B's lease counters stand still for a lease duration (3 s) and takes the shards.
    wait_for(lambda: held(a) == 4, timeout=30, what="the surviving daemon to take the dead one's shards")
    want = {data.decode() for _, data in sent}
    wait_for(lambda: set(delivered_lines(a) + delivered_lines(b)) >= want, timeout=60, what="every record")
    lines = delivered_lines(a) + delivered_lines(b)
    assert set(lines) == want  # nothing lost
    # Repeated at most: what B read after its last checkpoint (README: "Kinesis source").
    assert len(lines) - len(sent) <= (8 + 2) * 2000
    assert "took a lease" in a.log() and "daemon-b" in a.log()


def test_a_shard_merge_mid_load_loses_nothing_and_keeps_order(sluice_factory, kinesalite):
    def merge(k):
        shards = sorted(k.list_shards(StreamName="merge")["Shards"], key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
        k.merge_shards(StreamName="merge", ShardToMerge=shards[0]["ShardId"], AdjacentShardToMerge=shards[1]["ShardId"])
    reshard_mid_load(sluice_factory, kinesalite, "merge", 2, merge, "records from both parents and the child")


def test_arns_carry_the_configured_account_and_region_for_a_stream_given_by_name(sluice_factory, kinesalite):
    """Regression (issue #23): loading the config once fixed a process-wide identity before the daemon set
    it, so with api.account_id/api.region and a stream given by name every ARN said 000000000000/us-east-1."""
    make_stream(kinesalite, "named", 1)
    d = sluice_factory(f"""
api: {{ account_id: "123456789012", region: eu-west-1 }}
storage: {{ dir: ./var }}
pipelines:
  - name: by-name
    source: {{ kinesis: {{ stream_name: named, endpoint: {kinesalite}, starting_position: TRIM_HORIZON }} }}
    destination: {{ local: {{ path: ./data }} }}
""").start()
    desc = d.client().describe_delivery_stream(DeliveryStreamName="by-name")["DeliveryStreamDescription"]
    assert desc["DeliveryStreamARN"] == "arn:aws:firehose:eu-west-1:123456789012:deliverystream/by-name"
    source = desc["Source"]["KinesisStreamSourceDescription"]
    assert source["KinesisStreamARN"] == "arn:aws:kinesis:eu-west-1:123456789012:stream/named"
    assert source["RoleARN"] == "arn:aws:iam::123456789012:role/sluice"
    assert desc["Destinations"][0]["ExtendedS3DestinationDescription"]["RoleARN"] == "arn:aws:iam::123456789012:role/sluice"
