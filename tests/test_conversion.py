"""Record format conversion: boto3 → sluice → Parquet/ORC files, read back by pyarrow and duckdb
(independent readers we did not write) and compared value by value."""

import base64
import datetime as dt
import decimal
import json
import re
from pathlib import Path

import duckdb
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

from conftest import local_objects, wait_for
from test_config import validate

SCHEMA = [
    ("event_id", "string"), ("ts", "timestamp"), ("amount", "decimal(12,2)"), ("tags", "array<string>"),
    ("user", "struct<id:bigint,country:string>"), ("attrs", "map<string,string>"), ("tiny", "tinyint"),
    ("small", "smallint"), ("n", "int"), ("f", "float"), ("d", "double"), ("ok", "boolean"), ("day", "date"),
    ("code", "char(3)"), ("label", "varchar(5)"), ("blob", "binary"),
    ("nested", "array<struct<k:string,v:array<decimal(38,10)>>>"),
]


def schema_yaml(columns):
    """The schema as the flow-style YAML the pipeline block embeds."""
    return "{ columns: [" + ", ".join(f'{{ name: {n}, type: "{t}" }}' for n, t in columns) + "] }"

UTC = dt.timezone.utc

# Each record, and the row a reader must give back for it.
CASES = [
    (
        {"event_id": "e1", "timestamp": "2026-11-23T10:15:30.123456Z", "amount": 1234567890.12, "tags": ["a", "b"],
         "user": {"id": 9007199254740993, "country": "NZ"}, "attrs": {"k": "v", "empty": ""}, "tiny": -128,
         "small": 32767, "n": -2147483648, "f": 1.5, "d": 1e308, "ok": True, "day": "2026-02-28", "code": "ab",
         "label": "abcdefg", "blob": "bytes", "nested": [{"k": "x", "v": ["__RAW__0.0000000001", "__RAW__-12345678901234567890.5"]}]},
        {"event_id": "e1", "ts": dt.datetime(2026, 11, 23, 10, 15, 30, 123456), "amount": decimal.Decimal("1234567890.12"),
         "tags": ["a", "b"], "user": {"id": 9007199254740993, "country": "NZ"}, "attrs": {"k": "v", "empty": ""},
         "tiny": -128, "small": 32767, "n": -2147483648, "f": 1.5, "d": 1e308, "ok": True, "day": dt.date(2026, 2, 28),
         "code": "ab ", "label": "abcde", "blob": b"bytes",
         "nested": [{"k": "x", "v": [decimal.Decimal("0.0000000001"), decimal.Decimal("-12345678901234567890.5000000000")]}]},
    ),
    (
        # Missing keys are null, unknown keys ignored, keys matched case-insensitively, OpenX coercions.
        {"EVENT_ID": "ünïcødé ✓", "timestamp": 1700000000123, "amount": "-0.5", "n": "42", "ok": "false",
         "user": {"ID": 1}, "extra": {"ignored": True}, "tags": [], "attrs": {}, "d": -0.0, "label": ""},
        {"event_id": "ünïcødé ✓", "ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123000), "amount": decimal.Decimal("-0.50"),
         "tags": [], "user": {"id": 1, "country": None}, "attrs": {}, "tiny": None, "small": None, "n": 42, "f": None,
         "d": -0.0, "ok": False, "day": None, "code": None, "label": "", "blob": None, "nested": None},
    ),
    (
        # Timestamp range edges and the other accepted forms.
        {"event_id": "edge-low", "timestamp": "0001-01-01 00:00:00", "day": "0001-01-01", "tags": None, "user": None},
        {"event_id": "edge-low", "ts": dt.datetime(1, 1, 1), "day": dt.date(1, 1, 1)},
    ),
    (
        {"event_id": "edge-high", "timestamp": "9999-12-31T23:59:59.999999Z", "day": "9999-12-31", "amount": 9999999999.99},
        {"event_id": "edge-high", "ts": dt.datetime(9999, 12, 31, 23, 59, 59, 999999), "day": dt.date(9999, 12, 31),
         "amount": decimal.Decimal("9999999999.99")},
    ),
    (
        {"event_id": "float-seconds", "timestamp": 1700000000.5, "amount": 1e-3},
        {"event_id": "float-seconds", "ts": dt.datetime(2023, 11, 14, 22, 13, 20, 500000), "amount": decimal.Decimal("0.00")},
    ),
]

BAD = [
    (b'{"event_id": "broken"', "DataFormatConversion.ParseError", "not valid JSON"),
    (b'[{"event_id": "array"}]', "DataFormatConversion.ParseError", "expected a JSON object"),
    (json.dumps({"event_id": "too-big", "amount": 12345678901.5}).encode(), "DataFormatConversion.MalformedData",
     "Data does not match the schema. Column 'amount': 12345678901.5 is out of range for decimal(12,2)"),
    (json.dumps({"event_id": "not-array", "tags": "a"}).encode(), "DataFormatConversion.MalformedData",
     "Data does not match the schema. Column 'tags': Start of Array expected, found a string"),
    (json.dumps({"event_id": "bad-nested", "user": {"id": "x"}}).encode(), "DataFormatConversion.MalformedData",
     "Column 'user.id'"),
    (json.dumps({"event_id": "tiny", "tiny": 300}).encode(), "DataFormatConversion.MalformedData", "300 is out of range for tinyint"),
]

COLUMNS = ["event_id", "ts", "amount", "tags", "user", "attrs", "tiny", "small", "n", "f", "d", "ok", "day", "code",
           "label", "blob", "nested"]


def raw_json(rec):
    """JSON text where "__RAW__<n>" strings become the number literal <n>, so exact decimals reach sluice
    as written (Python's json would round them through float)."""
    return re.sub(r'"__RAW__([^"]*)"', r"\1", json.dumps(rec)).encode()


def expected_rows(cases=None):
    return {want["event_id"]: {c: want.get(c) for c in COLUMNS} for _, want in (cases or CASES)}


def pipeline(output, schema=SCHEMA, input_block="input: { openx_json: { column_to_json_key_mappings: { ts: timestamp } } }"):
    return f"""
        pipelines:
          - name: lake
            buffering: {{ size_mb: 8, interval_seconds: 1 }}
            destination:
              local:
                path: ./data
                prefix: "events/"
                error_output_prefix: "errors/!{{firehose:error-output-type}}/"
                format_conversion:
                  schema: {schema_yaml(schema)}
                  {input_block}
                  output: {output}
        """


def put(d, records):
    for i in range(0, len(records), 500):  # PutRecordBatch takes at most 500 records
        r = d.client().put_record_batch(DeliveryStreamName="lake", Records=[{"Data": x} for x in records[i:i + 500]])
        assert r["FailedPutCount"] == 0


def deliver_cases(sluice_factory, output, cases=None):
    d = sluice_factory(pipeline(output)).start()
    good = [raw_json(rec) for rec, _ in (cases or CASES)]
    put(d, good + [raw for raw, _, _ in BAD])
    root = d.workdir / "data"
    wait_for(lambda: [k for k in local_objects(root) if k.startswith("errors/")] and
             [k for k in local_objects(root) if k.startswith("events/")], what="a data object and an error object")
    return d, root


def check_error_records(root, before_ms):
    objects = local_objects(root)
    keys = [k for k in objects if k.startswith("errors/")]
    assert all(k.startswith("errors/format-conversion-failed/") for k in keys), keys
    lines = [json.loads(line) for k in keys for line in objects[k].splitlines()]
    assert len(lines) == len(BAD)
    by_raw = {base64.b64decode(e["rawData"]): e for e in lines}
    for raw, code, message in BAD:
        e = by_raw[raw]
        assert set(e) == {"attemptsMade", "arrivalTimestamp", "lastErrorCode", "lastErrorMessage",
                          "attemptEndingTimestamp", "rawData"}, e
        assert e["lastErrorCode"] == code
        assert message in e["lastErrorMessage"], e["lastErrorMessage"]
        assert e["attemptsMade"] == 1
        assert before_ms - 60_000 <= e["arrivalTimestamp"] <= e["attemptEndingTimestamp"]


def normalise(value):
    """pyarrow gives maps as lists of (key, value) pairs; compare them as dicts."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return dict(value)
    return value


def read_parquet_both(path):
    """The rows of a Parquet file as pyarrow reads them, after checking duckdb reads the same values."""
    rows = pq.read_table(path).to_pylist()
    con = duckdb.connect()
    result = con.execute(f"SELECT * FROM read_parquet('{path}')")
    names = [c[0] for c in result.description]
    duck = [dict(zip(names, r)) for r in result.fetchall()]
    assert [{k: normalise(v) for k, v in r.items()} for r in rows] == duck, f"pyarrow and duckdb disagree on {path}"
    return rows


def assert_rows(rows, what, cases=None):
    want = expected_rows(cases)
    assert len(rows) == len(want), what
    for row in rows:
        exp = want[row["event_id"]]
        for c in COLUMNS:
            got = row[c]
            if c == "attrs" and got is not None:
                got = normalise(got) if got else {}
            assert got == exp[c], f"{what}: {row['event_id']}.{c}: {got!r} != {exp[c]!r}"


@pytest.mark.parametrize("compression", ["ZSTD", "SNAPPY", "GZIP", "UNCOMPRESSED"])
def test_parquet_files_read_back_value_by_value_in_pyarrow_and_duckdb(sluice_factory, compression):
    before = int(dt.datetime.now(UTC).timestamp() * 1000)
    d, root = deliver_cases(sluice_factory, f"{{ parquet: {{ compression: {compression}, enable_dictionary_compression: true }} }}")
    data = [k for k in local_objects(root) if k.startswith("events/")]
    assert len(data) == 1 and data[0].endswith(".parquet"), data
    path = root / data[0]

    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == len(CASES)
    col = meta.row_group(0).column(0)
    assert col.compression == compression
    assert col.statistics.has_min_max and col.statistics.null_count == 0
    schema = pq.read_schema(path)
    assert str(schema.field("ts").type) == "timestamp[us]"
    assert str(schema.field("amount").type) == "decimal128(12, 2)"

    assert_rows(pq.read_table(path).to_pylist(), "pyarrow")

    con = duckdb.connect()
    rows = con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
    names = [c[0] for c in con.description]
    duck = [dict(zip(names, r)) for r in rows]
    assert_rows(duck, "duckdb")
    # duckdb's own typing of the columns a lake query relies on.
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{path}'))").fetchall())
    assert types["ts"] == "TIMESTAMP" and types["amount"] == "DECIMAL(12,2)" and types["day"] == "DATE"
    assert types["user"] == "STRUCT(id BIGINT, country VARCHAR)" and types["attrs"] == "MAP(VARCHAR, VARCHAR)"
    check_error_records(root, before)


def test_hive_json_is_strict_and_reads_its_timestamp_formats(sluice_factory):
    schema = [("id", "int"), ("ts", "timestamp"), ("tags", "array<string>")]
    d = sluice_factory(pipeline("{ parquet: { compression: SNAPPY } }", schema=schema,
                                input_block="input: { hive_json: { timestamp_formats: [\"dd/MM/yyyy HH:mm:ss\", millis] } }")).start()
    put(d, [b'{"id": 1, "ts": "23/11/2026 10:00:00"}', b'{"id": 2, "ts": 1500}', b'{"id": "3"}', b'{"id": 4, "tags": {"a": 1}}'])
    root = d.workdir / "data"
    objects = wait_for(lambda: (lambda o: o if len(o) == 2 else None)(local_objects(root)), what="data and error objects")
    data = next(k for k in objects if k.startswith("events/"))
    rows = read_parquet_both(root / data)
    assert rows == [{"id": 1, "ts": dt.datetime(2026, 11, 23, 10), "tags": None},
                    {"id": 2, "ts": dt.datetime(1970, 1, 1, 0, 0, 1, 500000), "tags": None}]
    errors = [json.loads(line) for k in objects if k.startswith("errors/") for line in objects[k].splitlines()]
    messages = sorted(e["lastErrorMessage"] for e in errors)
    assert "Current token (VALUE_STRING) not numeric" in messages[0] and "Start of Array expected" in messages[1], messages


def test_validate_rejects_bad_types_options_and_compression_with_conversion(tmp_path):
    code, out, _ = validate(tmp_path, """
        pipelines:
          - name: lake
            destination:
              local:
                path: ./data
                compression: GZIP
                format_conversion:
                  schema: { columns: [ { name: a, type: "decmal(3,1)" }, { name: b, type: "array<int" } ] }
                  output: { parquet: { compression: LZO, writer_version: V3 } }
          - name: orc
            destination:
              local:
                path: ./data2
                format_conversion:
                  schema: { file: missing.yaml }
                  output: { orc: { bloom_filter_columns: [a], row_index_stride: 500, bloom_filter_false_positive_probability: 1.5 } }
        """)
    assert code != 0
    assert "pipelines[0].destination.local.compression`: must be unset (or UNCOMPRESSED) with format_conversion" in out
    assert "schema.columns[0].type`: `decmal(3,1)`: unknown type `decmal`" in out
    assert "schema.columns[1].type`: `array<int`: expected `>`" in out
    assert "output.parquet.compression`: `LZO` is not one of UNCOMPRESSED, SNAPPY, GZIP, ZSTD" in out
    assert "output.parquet.writer_version`: `V3` is not one of V1, V2" in out
    # Relative to the config file, and said as the daemon would open it.
    assert f"pipelines[1].destination.local.format_conversion.schema.file`: cannot read `{tmp_path / 'missing.yaml'}`" in out
    assert "output.orc.row_index_stride`: must be at least 1000" in out
    assert "output.orc.bloom_filter_false_positive_probability`: must be between 0 and 1" in out

    # An unknown option is a parse error naming the field and what is allowed.
    code, out, _ = validate(tmp_path, """
        pipelines:
          - name: lake
            destination:
              local:
                path: ./data
                format_conversion:
                  schema: { columns: [ { name: a, type: int } ] }
                  output: { orc: { compresion: ZLIB } }
        """)
    assert code != 0 and "unknown field `compresion`" in out and ":9:" in out, out


def test_schema_file_and_validate_accepts_a_good_config(tmp_path):
    (tmp_path / "events.yaml").write_text("columns:\n  - { name: a, type: 'map<string,array<struct<x:int>>>' }\n")
    code, out, _ = validate(tmp_path, f"""
        pipelines:
          - name: lake
            destination:
              local:
                path: ./data
                format_conversion:
                  schema: {{ file: {tmp_path / 'events.yaml'} }}
                  output: {{ orc: {{ compression: ZLIB }} }}
        """)
    assert code == 0, out


# pyarrow's ORC reader converts timestamps to nanoseconds and refuses years 1 and 9999, so the ORC
# cases move the timestamp edges to the edges of that range (the Rust test in src/format/convert/orc
# reads years 1 and 9999 back through orc-rust). Dates keep their full-range edges.
def orc_cases():
    cases = [(dict(rec), dict(want)) for rec, want in CASES]
    for rec, want in cases:
        if want["event_id"] == "edge-low":
            rec["timestamp"], want["ts"] = "1677-09-22 00:00:00", dt.datetime(1677, 9, 22)
        if want["event_id"] == "edge-high":
            rec["timestamp"], want["ts"] = "2262-04-11T23:47:16.854775Z", dt.datetime(2262, 4, 11, 23, 47, 16, 854775)
    return cases


@pytest.mark.parametrize("compression", ["ZLIB", "SNAPPY", "ZSTD", "NONE"])
def test_orc_files_read_back_value_by_value_in_pyarrow_orc_and_duckdb(sluice_factory, compression):
    before = int(dt.datetime.now(UTC).timestamp() * 1000)
    cases = orc_cases()
    d, root = deliver_cases(sluice_factory, f"{{ orc: {{ compression: {compression}, row_index_stride: 1000, "
                                            f"bloom_filter_columns: [event_id, n], stripe_size_bytes: 8MiB }} }}", cases)
    data = [k for k in local_objects(root) if k.startswith("events/")]
    assert len(data) == 1 and data[0].endswith(".orc"), data
    path = root / data[0]

    f = orc.ORCFile(path)
    assert f.nrows == len(cases)
    assert f.compression == ("UNCOMPRESSED" if compression == "NONE" else compression)
    assert str(f.schema.field("amount").type) == "decimal128(12, 2)"
    assert str(f.schema.field("code").type) == "string"
    table = f.read()
    rows = table.to_pylist()
    for row in rows:
        if row["ts"] is not None and hasattr(row["ts"], "to_pydatetime"):
            row["ts"] = row["ts"].to_pydatetime()
    assert_rows(rows, "pyarrow.orc", cases)

    # duckdb has no ORC reader here, so it queries the table pyarrow.orc decoded (an Arrow scan).
    con = duckdb.connect()
    con.register("events", table)
    total, countries, first = con.execute(
        "SELECT sum(amount), count(DISTINCT \"user\".country), min(ts) FROM events").fetchall()[0]
    assert total == sum(w["amount"] for _, w in cases if w.get("amount") is not None)
    assert countries == 1 and first == dt.datetime(1677, 9, 22)
    check_error_records(root, before)


def test_schema_infer_learns_evolves_and_survives_a_restart(sluice_factory):
    config = """
        pipelines:
          - name: lake
            buffering: { size_mb: 8, interval_seconds: 1 }
            destination:
              local:
                path: ./data
                prefix: "events/"
                error_output_prefix: "errors/!{firehose:error-output-type}/"
                format_conversion:
                  schema: infer
                  output: { parquet: { compression: ZSTD } }
        """
    d = sluice_factory(config).start()
    root = d.workdir / "data"

    def by_first_id(n):
        """{first id in the file: path} once there are n Parquet files (files are told apart by content:
        a replay after the restart may rewrite an earlier one)."""
        def ready():
            paths = [root / k for k in local_objects(root) if k.startswith("events/")]
            return {pq.read_table(p).column("id")[0].as_py(): p for p in paths} if len(paths) == n else None
        return wait_for(ready, what=f"{n} parquet files")

    put(d, [b'{"id": 1, "Name": "a", "later": null}', b'{"id": 2, "name": "b", "tags": []}'])
    by_first_id(1)
    put(d, [b'{"id": 3.5, "name": "c", "user": {"country": "NZ", "langs": ["en", "mi"]}, "tags": ["x"]}'])
    files = by_first_id(2)
    t1 = pq.read_table(files[1])
    read_parquet_both(files[1])
    assert t1.schema.names == ["id", "name"] and str(t1.schema.field("id").type) == "int64"
    assert t1.to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    t2 = pq.read_table(files[3.5])
    read_parquet_both(files[3.5])
    assert t2.schema.names == ["id", "name", "tags", "user"]
    assert str(t2.schema.field("id").type) == "double"
    assert t2.to_pylist() == [{"id": 3.5, "name": "c", "tags": ["x"], "user": {"country": "NZ", "langs": ["en", "mi"]}}]

    # duckdb reads the evolving lake as one table, matching columns by name.
    rows = duckdb.connect().execute(
        f"SELECT id, name, \"user\".country FROM read_parquet('{root}/events/**/*.parquet', union_by_name=true) ORDER BY id").fetchall()
    assert rows == [(1.0, "a", None), (2.0, "b", None), (3.5, "c", "NZ")]

    d.stop()
    d.start()
    put(d, [b'{"id": 4}', b'"not an object"'])
    files = by_first_id(3)
    t3 = pq.read_table(files[4])
    read_parquet_both(files[4])
    assert t3.schema.names == ["id", "name", "tags", "user"], "the schema was kept across the restart"
    assert t3.to_pylist() == [{"id": 4.0, "name": None, "tags": None, "user": None}]
    # The batch's error object is written right after its Parquet file: wait for it too.
    errors = wait_for(lambda: [json.loads(line) for k, body in local_objects(root).items()
                               if k.startswith("errors/") for line in body.splitlines()], what="the error record")
    assert [e["lastErrorCode"] for e in errors] == ["DataFormatConversion.ParseError"]


def test_validate_names_the_schema_field(tmp_path):
    code, out, _ = validate(tmp_path, """
        pipelines:
          - name: lake
            destination:
              local:
                path: ./data
                format_conversion:
                  schema: infered
                  output: { parquet: {} }
        """)
    assert code != 0 and "format_conversion.schema`: `infered`: expected `infer`, `columns: [...]` or `file: <path>`" in out, out
    code, out, _ = validate(tmp_path, """
        pipelines:
          - name: lake
            destination:
              local:
                path: ./data
                format_conversion:
                  schema: { colums: [] }
                  output: { parquet: {} }
        """)
    assert code != 0 and "unknown field `colums`" in out and ":8:" in out, out


def test_partitioned_parquet_lake_on_s3(sluice_factory, moto, bucket, tmp_path):
    """The MinIO data-lake shape on a real S3 API (moto_server): jq partition keys → one Parquet file
    per partition, read back from the bucket by pyarrow; metrics count conversions."""
    d = sluice_factory(f"""
        pipelines:
          - name: lake
            buffering: {{ size_mb: 8, interval_seconds: 1 }}
            processors:
              - metadata_extraction: {{ query: '{{country: .user.country}}', json_parsing_engine: JQ-1.6 }}
            dynamic_partitioning: {{ enabled: true }}
            destination:
              s3:
                bucket: {bucket}
                endpoint: {moto.endpoint}
                force_path_style: true
                prefix: "events/country=!{{partitionKeyFromQuery:country}}/"
                error_output_prefix: "errors/!{{firehose:error-output-type}}/"
                format_conversion:
                  schema: {{ columns: [ {{ name: id, type: int }}, {{ name: user, type: "struct<country:string>" }} ] }}
                  output: {{ parquet: {{ compression: SNAPPY }} }}
        """).start()
    records = [json.dumps({"id": i, "user": {"country": ["NZ", "DE"][i % 2]}}).encode() for i in range(1000)]
    records.append(json.dumps({"id": "x", "user": {"country": "NZ"}}).encode())
    put(d, records)

    def rows_by_prefix():
        out = {}
        for key, body in moto.objects(bucket).items():
            prefix = key.rsplit("/", 1)[0]
            if key.endswith(".parquet"):
                assert re.match(r"events/country=(NZ|DE)/lake-1-.*[0-9a-f]\.parquet$", key), key
                local = tmp_path / key.replace("/", "_")
                local.write_bytes(body)
                out.setdefault(prefix, []).extend(read_parquet_both(local))
            else:
                assert prefix.startswith("errors/format-conversion-failed"), key
                out.setdefault("errors", []).extend(json.loads(line) for line in body.splitlines())
        return out if sum(len(v) for v in out.values()) == 1001 else None

    rows = wait_for(rows_by_prefix, what="1000 rows in two partitions and one error record")
    assert sorted(r["id"] for r in rows["events/country=DE"]) == list(range(1, 1000, 2))
    assert sorted(r["id"] for r in rows["events/country=NZ"]) == list(range(0, 1000, 2))
    assert {r["user"]["country"] for r in rows["events/country=DE"]} == {"DE"}
    [error] = rows["errors"]
    assert error["lastErrorCode"] == "DataFormatConversion.MalformedData"
    assert base64.b64decode(error["rawData"]) == records[-1]
    assert wait_for(lambda: d.metric("sluice_succeed_conversion_records_total", "lake") == 1000, what="metric")
    assert d.metric("sluice_failed_conversion_records_total", "lake") == 1


def test_describe_delivery_stream_shows_the_conversion_in_firehose_shape(sluice_factory):
    d = sluice_factory(pipeline("{ orc: { compression: ZLIB, bloom_filter_columns: [event_id] } }",
                                input_block='input: { hive_json: { timestamp_formats: ["yyyy-MM-dd HH:mm", millis] } }')).start()
    desc = d.client().describe_delivery_stream(DeliveryStreamName="lake")["DeliveryStreamDescription"]
    ext = desc["Destinations"][0]["ExtendedS3DestinationDescription"]
    conv = ext["DataFormatConversionConfiguration"]
    assert conv["Enabled"] is True
    assert conv["InputFormatConfiguration"]["Deserializer"] == {"HiveJsonSerDe": {"TimestampFormats": ["yyyy-MM-dd HH:mm", "millis"]}}
    orc_serde = conv["OutputFormatConfiguration"]["Serializer"]["OrcSerDe"]
    assert orc_serde["Compression"] == "ZLIB" and orc_serde["BloomFilterColumns"] == ["event_id"]
    assert orc_serde["RowIndexStride"] == 10000 and orc_serde["FormatVersion"] == "V0_12"
    assert ext["CompressionFormat"] == "UNCOMPRESSED" and ext["FileExtension"] == ".orc"


def test_processor_failures_in_a_converting_pipeline_are_json_error_objects(sluice_factory):
    """Error objects are newline-delimited JSON whatever the data format: no `.parquet` on them."""
    d = sluice_factory(pipeline("{ parquet: {} }").replace(
        "            destination:", "            processors: [ { decompression: { format: GZIP } } ]\n            destination:", 1)).start()
    import gzip
    put(d, [gzip.compress(b'{"event_id": "ok"}'), b"not gzip"])
    root = d.workdir / "data"
    objects = wait_for(lambda: (lambda o: o if len(o) == 2 else None)(local_objects(root)), what="a data and an error object")
    [error_key] = [k for k in objects if k.startswith("errors/")]
    assert error_key.startswith("errors/decompression-failed/") and not error_key.endswith(".parquet"), error_key
    assert base64.b64decode(json.loads(objects[error_key])["rawData"]) == b"not gzip"
    [data_key] = [k for k in objects if k.startswith("events/")]
    assert data_key.endswith(".parquet") and read_parquet_both(root / data_key)[0]["event_id"] == "ok"
