"""The Iceberg destination against real catalogs and an independent reader: pyiceberg (with pyarrow)
reads every table sluice writes. Catalogs: a SQL catalog on SQLite with a local warehouse, a SQL
catalog on PostgreSQL (tests/pg.py: Debian's server), and moto's Glue with moto's S3 as Firehose's
catalog and store. Checked: rows, snapshots (one per batch and table, each naming its batch), schema
(created tables, added columns), routing by JSONQuery, refused records in the error prefix with the
reason, kill -9 under load and two daemons on one table — every acknowledged record in the table once.
"""

import base64
import json
import os
import time

import pytest

from conftest import BINARY, ROOT, IdProducer, local_objects, wait_for
from pg import PASSWORD, Cluster

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType, TimestampType, TimestamptzType


def sql_catalog(uri, warehouse):
    return SqlCatalog("sluice", uri=uri, warehouse=warehouse)


def rows(catalog, table):
    catalog_table = catalog.load_table(table)
    return catalog_table.scan().to_arrow().to_pylist(), catalog_table


def wait_logged(d, predicate, timeout, what):
    """wait_for, with the daemon's last log lines in the failure (what the catalog said)."""
    try:
        return wait_for(predicate, timeout=timeout, what=what)
    except AssertionError as e:
        tail = "\n".join(line[:800] for line in d.log().splitlines()[-10:])
        raise AssertionError(f"{e}\n--- the daemon's log ---\n{tail}") from None


def error_records(d, backup="backup"):
    return [json.loads(line) for path, body in local_objects(d.workdir / backup).items()
            if path.startswith("errors/") for line in body.decode().splitlines()]


def iceberg_pipeline(sluice_factory, catalog_block, target, name="daemon", extra="", buffering="size_mb: 1, interval_seconds: 1"):
    return sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: lake
    buffering: {{ {buffering} }}
    destination:
      iceberg:
        catalog: {catalog_block}
        {target}
        retry_duration_seconds: 3600
        backup: {{ local: {{ path: ./backup, error_output_prefix: "errors/!{{firehose:error-output-type}}/" }} }}
{extra}
""", name=name)


def put(d, records, stream="lake"):
    out = d.client().put_record_batch(DeliveryStreamName=stream, Records=[
        {"Data": r if isinstance(r, bytes) else json.dumps(r).encode()} for r in records])
    assert out["FailedPutCount"] == 0


EVENTS = Schema(NestedField(1, "id", LongType(), required=False), NestedField(2, "msg", StringType(), required=False),
                NestedField(3, "ts", TimestamptzType(), required=False))


def test_a_sql_catalog_table_gets_the_rows_one_snapshot_per_batch_and_bad_records_go_to_the_error_prefix(
        sluice_factory, tmp_path):
    db, warehouse = tmp_path / "catalog.db", tmp_path / "warehouse"
    warehouse.mkdir()
    reader = sql_catalog(f"sqlite:///{db}", f"file://{warehouse}")
    reader.create_namespace("logs")
    reader.create_table("logs.events", schema=EVENTS)
    d = iceberg_pipeline(sluice_factory, f"{{ type: sql, uri: 'sqlite://{db}', warehouse: {warehouse} }}",
                         "database: logs\n        table: events").start()
    good = [{"id": i, "msg": f"m{i}", "ts": "2026-12-06T10:00:00Z", "extra": "ignored"} for i in range(300)]
    bad = {b"{not json": "not valid JSON", b"[1, 2]": "not a JSON object",
           json.dumps({"id": "seven"}).encode(): "seven"}
    put(d, good[:150] + list(bad) + good[150:])
    wait_for(lambda: len(rows(reader, "logs.events")[0]) == 300, timeout=30, what="300 rows")
    wait_for(lambda: len(error_records(d)) == 3, timeout=10, what="3 error records")
    got, table = rows(reader, "logs.events")
    assert sorted(r["id"] for r in got) == list(range(300))
    assert got[0]["ts"].isoformat() == "2026-12-06T10:00:00+00:00"
    assert [f.name for f in table.schema().fields] == ["id", "msg", "ts"]  # no evolution: "extra" ignored
    summaries = [s.summary for s in table.snapshots()]
    assert len(summaries) == 1 and summaries[0]["sluice.batch-id"] and summaries[0]["sluice.records"] == "300"
    assert summaries[0]["added-records"] == "300"
    errors = {base64.b64decode(e["rawData"]): e for e in error_records(d)}
    assert set(errors) == set(bad)
    for raw, words in bad.items():
        assert errors[raw]["errorCode"] == "Iceberg.InvalidRecord" and words in errors[raw]["errorMessage"], errors[raw]
    assert all(path.startswith("errors/iceberg-failed/") for path in local_objects(d.workdir / "backup"))
    # A second batch is a second snapshot.
    put(d, [{"id": 1000 + i, "msg": "second"} for i in range(10)])
    wait_for(lambda: len(rows(reader, "logs.events")[0]) == 310, timeout=30, what="310 rows")
    _, table = rows(reader, "logs.events")
    ids = [s.summary["sluice.batch-id"] for s in table.snapshots()]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert d.metric("sluice_delivery_to_iceberg_records_total", "lake") == 310
    desc = d.client().describe_delivery_stream(DeliveryStreamName="lake")["DeliveryStreamDescription"]
    ice = desc["Destinations"][0]["IcebergDestinationDescription"]
    assert ice["DestinationTableConfigurationList"] == [
        {"DestinationDatabaseName": "logs", "DestinationTableName": "events"}]
    assert ice["CatalogConfiguration"]["WarehouseLocation"] == f"file://{warehouse}"


def test_records_naming_a_missing_table_go_to_the_error_prefix_when_tables_are_not_created(sluice_factory, tmp_path):
    db, warehouse = tmp_path / "catalog.db", tmp_path / "warehouse"
    warehouse.mkdir()
    d = iceberg_pipeline(sluice_factory, f"{{ type: sql, uri: 'sqlite://{db}', warehouse: {warehouse} }}",
                         "database: logs\n        table: nowhere").start()
    put(d, [{"id": i} for i in range(5)])
    wait_for(lambda: len(error_records(d)) == 5, timeout=30, what="5 error records")
    e = error_records(d)[0]
    assert e["errorCode"] == "Iceberg.TableNotFound" and "logs.nowhere" in e["errorMessage"], e


def test_a_wasm_plugins_partition_keys_route_records_to_tables(sluice_factory, tmp_path):
    """Where Firehose lets a Lambda return `otfMetadata`, a sluice plugin sets partition keys of those names
    (here the `route` example plugin copies each record's `destinationTableName` field into the key of that name)."""
    db, warehouse = tmp_path / "catalog.db", tmp_path / "warehouse"
    warehouse.mkdir()
    plugin = ROOT / "transforms" / "target" / "wasm32-wasip1" / "release" / "route.wasm"
    d = sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: lake
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    processors:
      - wasm: {{ module: {plugin}, config: {{ keys: [destinationTableName] }} }}
    destination:
      iceberg:
        catalog: {{ type: sql, uri: 'sqlite://{db}', warehouse: {warehouse} }}
        database: plugged
        table: unused
        create_tables: true
        backup: {{ local: {{ path: ./backup, error_output_prefix: "errors/!{{firehose:error-output-type}}/" }} }}
""").start()
    put(d, [{"destinationTableName": ["left", "right"][i % 3 == 0], "id": i} for i in range(30)])
    reader = sql_catalog(f"sqlite:///{db}", f"file://{warehouse}")
    def both_tables():
        if not reader.namespace_exists("plugged") or {t[1] for t in reader.list_tables("plugged")} != {"left", "right"}:
            return False
        return len(rows(reader, "plugged.left")[0]) + len(rows(reader, "plugged.right")[0]) == 30

    wait_logged(d, both_tables, timeout=30, what="both tables")
    assert sorted(r["id"] for r in rows(reader, "plugged.right")[0]) == list(range(0, 30, 3))
    assert not error_records(d)


@pytest.fixture(scope="module")
def pg():
    cluster = Cluster()
    yield cluster
    cluster.close()


def start_producer(d, first=0):
    """Records {"id": n, "msg": ...} into `lake` until stopped (conftest.IdProducer)."""
    return IdProducer(d, "lake", lambda i: {"id": i, "msg": f"row {i}"}, first)


def pg_table(pg, tmp_path, namespace):
    """A table `<namespace>.events` in a SQL catalog on PostgreSQL, made by pyiceberg: the catalog block for
    sluice and the reader."""
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    uri = f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{pg.port}/postgres"
    reader = sql_catalog(uri, f"file://{warehouse}")
    reader.create_namespace(namespace)
    reader.create_table(f"{namespace}.events", schema=EVENTS)
    return f"{{ type: sql, uri: '{pg.url}', warehouse: {warehouse} }}", reader


def env():
    return {**os.environ, "PG_PASSWORD": PASSWORD}


def all_ids(reader, table):
    return [r["id"] for r in reader.load_table(table).scan(selected_fields=("id",)).to_arrow().to_pylist()]


def test_kill9_under_load_commits_every_acknowledged_record_once_through_a_postgres_catalog(
        sluice_factory, pg, tmp_path):
    block, reader = pg_table(pg, tmp_path, "crash")
    d = iceberg_pipeline(sluice_factory, block, "database: crash\n        table: events",
                         buffering="size_mb: 1, interval_seconds: 1").start(env=env())
    producer = start_producer(d)
    wait_for(lambda: len(all_ids(reader, "crash.events")) > 2000, timeout=60, what="rows before the crash")
    d.kill9()
    time.sleep(0.5)
    d.start(env=env())
    time.sleep(2)
    producer.stop()
    wait_for(lambda: set(all_ids(reader, "crash.events")) >= producer.acked, timeout=90,
             what="every acknowledged record")
    time.sleep(3)  # a duplicate would be committed by now
    ids = all_ids(reader, "crash.events")
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} rows committed twice"
    assert set(ids) <= set(range(producer.sent))
    assert PASSWORD not in d.log()


def test_two_daemons_appending_to_one_table_lose_and_repeat_nothing(sluice_factory, pg, tmp_path):
    """Optimistic concurrency: both commit to one table every second or so; conflicts are retried."""
    block, reader = pg_table(pg, tmp_path, "shared")
    daemons = [iceberg_pipeline(sluice_factory, block, "database: shared\n        table: events",
                                name=f"d{i}", buffering="size_mb: 1, interval_seconds: 1").start(env=env())
               for i in range(2)]
    producers = [start_producer(d, first=i * 10_000_000) for i, d in enumerate(daemons)]
    time.sleep(8)
    for p in producers:
        p.stop()
    acked = producers[0].acked | producers[1].acked
    wait_for(lambda: set(all_ids(reader, "shared.events")) >= acked, timeout=60, what="both daemons' records")
    time.sleep(2)
    ids = all_ids(reader, "shared.events")
    assert len(ids) == len(set(ids))
    snapshots = list(reader.load_table("shared.events").snapshots())
    assert len({s.summary["sluice.batch-id"] for s in snapshots}) == len(snapshots) >= 4


@pytest.fixture(scope="module")
def lake(moto):
    import boto3
    boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1").create_bucket(Bucket="lake")
    return moto


def glue_reader(moto):
    from pyiceberg.catalog.glue import GlueCatalog
    creds = {"client.access-key-id": "testing", "client.secret-access-key": "testing", "client.region": "us-east-1"}
    return GlueCatalog("glue", **{"glue.endpoint": moto.endpoint, "s3.endpoint": moto.endpoint, **creds})


GLUE = "{ type: glue, uri: %s, s3_endpoint: %s, region: us-east-1, warehouse: s3://lake/warehouse }"


def test_glue_routing_creates_tables_and_adds_columns_and_refuses_what_it_cannot_place(sluice_factory, lake):
    """Firehose's own setup: the Glue catalog (moto) and S3 (moto); records routed by JSONQuery to a
    table per kind, tables created from the records, a new key becoming a column."""
    d = iceberg_pipeline(
        sluice_factory, GLUE % (lake.endpoint, lake.endpoint),
        """routing: '{destinationDatabaseName: "web", destinationTableName: .kind, operation: .op}'
        create_tables: true
        schema_evolution: true
        tables: [ { database: web, table: clicks, partition_by: [country] } ]""").start()
    clicks = [{"kind": "clicks", "id": i, "country": ["de", "fr"][i % 2], "ts": "2026-12-06T00:00:00Z"} for i in range(40)]
    views = [{"kind": "views", "id": i, "page": f"/p/{i}"} for i in range(25)]
    refused = [{"id": 1, "no": "kind"}, {"kind": "clicks", "id": 99, "op": "delete"}]
    put(d, clicks + views + refused)
    reader = glue_reader(lake)
    wait_for(lambda: len(error_records(d)) == 2, timeout=60, what="2 error records")
    wait_for(lambda: reader.table_exists("web.views") and len(rows(reader, "web.views")[0]) == 25, timeout=30,
             what="the views table")
    got, table = rows(reader, "web.clicks")
    assert sorted(r["id"] for r in got) == list(range(40))
    assert [f.name for f in table.spec().fields] == ["country"]
    assert {f.name for f in table.schema().fields} == {"kind", "id", "country", "ts"}
    codes = sorted(e["errorCode"] for e in error_records(d))
    assert codes == ["Iceberg.RoutingFailed", "Iceberg.UnsupportedOperation"]
    # A key the table lacks becomes a column; older rows read it as null.
    put(d, [{"kind": "views", "id": 100, "page": "/new", "referrer": "search"}])
    wait_for(lambda: len(rows(reader, "web.views")[0]) == 26, timeout=30, what="the 26th view")
    got, table = rows(reader, "web.views")
    assert "referrer" in {f.name for f in table.schema().fields}
    assert {r["id"]: r["referrer"] for r in got}[100] == "search" and {r["id"]: r["referrer"] for r in got}[0] is None


def test_create_delivery_stream_with_an_iceberg_destination_over_the_api(sluice_factory, lake):
    d = sluice_factory(f"""
storage: {{ dir: ./var }}
control_plane:
  buckets: {{ "*": {{ local: {{ path: "./buckets/{{bucket}}" }} }} }}
  iceberg_catalogs:
    "*": {{ type: glue, uri: {lake.endpoint}, s3_endpoint: {lake.endpoint}, region: us-east-1, warehouse: s3://lake/w }}
""").start()
    reader = glue_reader(lake)
    reader.create_namespace("api")
    # timestamp, not timestamptz: iceberg-rust 0.10's Glue catalog has no Glue type for timestamptz.
    schema = Schema(NestedField(1, "id", LongType(), required=False), NestedField(2, "msg", StringType(), required=False),
                    NestedField(3, "ts", TimestampType(), required=False))
    reader.create_table("api.events", schema=schema, location="s3://lake/api/events")
    c = d.client()
    c.create_delivery_stream(
        DeliveryStreamName="to-iceberg", DeliveryStreamType="DirectPut",
        IcebergDestinationConfiguration={
            "DestinationTableConfigurationList": [{"DestinationDatabaseName": "api", "DestinationTableName": "events"}],
            "BufferingHints": {"IntervalInSeconds": 1, "SizeInMBs": 1},
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "CatalogConfiguration": {"CatalogARN": "arn:aws:glue:us-east-1:123456789012:catalog"},
            "S3Configuration": {"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                                "BucketARN": "arn:aws:s3:::errors", "ErrorOutputPrefix": "iceberg-errors/"}})
    wait_for(lambda: c.describe_delivery_stream(DeliveryStreamName="to-iceberg")["DeliveryStreamDescription"]
             ["DeliveryStreamStatus"] == "ACTIVE", timeout=20, what="ACTIVE")
    put(d, [{"id": i, "msg": "api", "ts": "2026-12-06T12:00:00"} for i in range(20)], stream="to-iceberg")
    wait_logged(d, lambda: len(rows(reader, "api.events")[0]) == 20, timeout=30, what="20 rows")
    desc = c.describe_delivery_stream(DeliveryStreamName="to-iceberg")["DeliveryStreamDescription"]
    ice = desc["Destinations"][0]["IcebergDestinationDescription"]
    assert ice["CatalogConfiguration"]["CatalogARN"] == "arn:aws:glue:us-east-1:123456789012:catalog"
    assert ice["DestinationTableConfigurationList"][0]["DestinationTableName"] == "events"


def test_config_mistakes_are_named(tmp_path):
    import subprocess
    (tmp_path / "bad.yaml").write_text("""
pipelines:
  - name: a
    destination:
      iceberg:
        catalog: { type: sql, uri: "sqlite::memory:", properties: { pool.max-connections: lots } }
        database: Logs
        tables: [ { database: logs, table: events, unique_keys: [id] } ]
        backup: { local: { path: ./b } }
  - name: b
    destination:
      iceberg:
        catalog: { type: hive, uri: "thrift://x" }
        routing: "{destinationTableName: .t"
        backup: { local: { path: ./b } }
""")
    r = subprocess.run([str(BINARY), "validate", "--config", str(tmp_path / "bad.yaml")], capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "an in-memory catalog forgets every commit on restart" in out
    assert "is needed for a sql catalog" in out
    assert "`database` needs `table` beside it" in out
    assert "must be 1-255 of a-z 0-9 _ -" in out
    assert "updates and deletes (Iceberg equality deletes) are not supported yet" in out
    assert "glue" in out and "rest" in out  # the catalog kinds offered for `hive`
    assert "is not a jq query" in out
    assert "properties.pool.max-connections" in out and "is not a valid value for this catalog property" in out
