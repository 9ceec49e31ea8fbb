"""Buffering, object naming and every compression format, read back with independent decoders."""

import gzip
import io
import json
import re
import struct
import subprocess
import time
import zipfile
import zlib
from datetime import datetime, timezone

import cramjam
import pytest
import snappy
import zstandard

from conftest import local_objects, wait_for

KEY_RE = re.compile(
    r"^(?P<prefix>.*?)(?P<stream>[A-Za-z0-9_.-]+)-1-(?P<time>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)-"
    r"(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?P<ext>.*)$"
)


def records(n, start=0):
    return [json.dumps({"id": i, "pad": "x" * 200}).encode() for i in range(start, start + n)]


def put_all(client, stream, data, batch=500):
    for i in range(0, len(data), batch):
        r = client.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": d} for d in data[i:i + batch]])
        assert r["FailedPutCount"] == 0


def snappy_java_decode(blob):
    """snappy-java stream: 8-byte magic, two big-endian ints, then [len][raw snappy block]..."""
    assert blob[:8] == b"\x82SNAPPY\x00", blob[:8]
    assert struct.unpack(">ii", blob[8:16]) == (1, 1)
    pos, out = 16, b""
    while pos < len(blob):
        (n,) = struct.unpack(">I", blob[pos:pos + 4])
        out += bytes(cramjam.snappy.decompress_raw(blob[pos + 4:pos + 4 + n]))
        pos += 4 + n
    return out


DECODERS = {
    "UNCOMPRESSED": ("", lambda b: b),
    "GZIP": (".gz", gzip.decompress),
    "ZIP": (".zip", lambda b: (lambda z: z.read(z.namelist()[0]) if len(z.namelist()) == 1 else None)(zipfile.ZipFile(io.BytesIO(b)))),
    "Snappy": (".snappy", snappy_java_decode),
    "HADOOP_SNAPPY": (".snappy", lambda b: snappy.HadoopStreamDecompressor().decompress(b)),
    "ZSTD": (".zst", lambda b: zstandard.ZstdDecompressor().stream_reader(io.BytesIO(b)).read()),
}


@pytest.mark.parametrize("compression", list(DECODERS))
def test_every_compression_round_trips_through_moto_s3(sluice_factory, moto, bucket, compression):
    ext, decode = DECODERS[compression]
    d = sluice_factory(f"""
        pipelines:
          - name: events
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            destination:
              s3:
                bucket: {bucket}
                endpoint: {moto.endpoint}
                region: us-east-1
                force_path_style: true
                compression: {compression}
                append_delimiter: true
        """).start()
    data = records(3000)
    put_all(d.client(), "events", data)
    objects = wait_for(lambda: (lambda o: o if sum(len(decode(v).splitlines()) for v in o.values()) >= 3000 else None)(moto.objects(bucket)),
                       what=f"{compression} objects")
    lines = [line for key in sorted(objects, key=lambda k: KEY_RE.match(k)["uuid"][-12:]) for line in decode(objects[key]).splitlines()]
    assert lines == data, "every record, once, in order"
    for key in objects:
        m = KEY_RE.match(key)
        assert m, key
        assert m["ext"] == ext
        assert m["stream"] == "events"
        assert re.fullmatch(r"\d{4}/\d\d/\d\d/\d\d/", m["prefix"]), "default YYYY/MM/dd/HH/ prefix"
    s3 = moto.s3()
    head = s3.head_object(Bucket=bucket, Key=next(iter(objects)))
    assert head["ContentType"] == "application/octet-stream"


def test_local_default_names_objects_like_firehose(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: clicks
            buffering: { size_mb: 1, interval_seconds: 1 }
            destination:
              local: { path: ./data, prefix: "clicks/!{timestamp:yyyy/MM/dd}/!{firehose:random-string}/", error_output_prefix: "errors/!{firehose:error-output-type}/", file_extension: ".json" }
        """).start()
    before = datetime.now(timezone.utc).replace(microsecond=0)
    d.client().put_record(DeliveryStreamName="clicks", Record={"Data": b"hello"})
    objects = wait_for(lambda: local_objects(d.workdir / "data"), what="an object")
    (key, body), = objects.items()
    assert body == b"hello", "Firehose's default: no delimiter"
    m = KEY_RE.match(key.split("/", 5)[-1])
    parts = key.split("/")
    assert parts[0] == "clicks"
    assert "/".join(parts[1:4]) == before.strftime("%Y/%m/%d")
    assert re.fullmatch(r"[a-z0-9]{11}", parts[4]), "11-character random string"
    assert m["ext"] == ".json"
    written = datetime.strptime(m["time"], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=timezone.utc)
    assert abs((written - before).total_seconds()) <= 2, "the name carries the oldest record's arrival time"


def test_static_prefix_gets_the_time_path_appended_without_a_slash(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: s
            buffering: { size_mb: 1, interval_seconds: 0 }
            destination: { local: { path: ./data, prefix: logs } }
        """).start()
    d.client().put_record(DeliveryStreamName="s", Record={"Data": b"x"})
    key = next(iter(wait_for(lambda: local_objects(d.workdir / "data"), what="an object")))
    assert re.match(r"^logs\d{4}/\d\d/\d\d/\d\d/s-1-", key), key


def test_objects_come_out_at_the_configured_size_under_load(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: big
            buffering: { size_mb: 1, interval_seconds: 900 }
            destination: { local: { path: ./data, append_delimiter: true } }
        """).start()
    data = records(20_000)  # ~4.3 MiB of NDJSON
    put_all(d.client(), "big", data)
    size = 1 << 20
    full = wait_for(lambda: (lambda o: o if len(o) >= 4 else None)(local_objects(d.workdir / "data")), what="four full objects")
    assert all(0.9 * size <= len(b) <= size for b in full.values()), sorted(len(b) for b in full.values())
    assert d.stop() == 0, "SIGTERM exits 0"
    everything = local_objects(d.workdir / "data")
    assert len(everything) == 5, "the partial buffer is flushed on SIGTERM"
    lines = sorted(line for b in everything.values() for line in b.splitlines())
    assert lines == sorted(data)


def test_interval_zero_delivers_at_once(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: fast
            buffering: { size_mb: 5, interval_seconds: 0 }
            destination: { local: { path: ./data } }
        """).start()
    t0 = time.monotonic()
    d.client().put_record(DeliveryStreamName="fast", Record={"Data": b"now"})
    wait_for(lambda: local_objects(d.workdir / "data"), timeout=5, interval=0.01, what="zero-buffering delivery")
    assert time.monotonic() - t0 < 2


def test_interval_flushes_a_partial_buffer(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: slow
            buffering: { size_mb: 5, interval_seconds: 2 }
            destination: { local: { path: ./data } }
        """).start()
    t0 = time.monotonic()
    d.client().put_record(DeliveryStreamName="slow", Record={"Data": b"a"})
    time.sleep(1)
    assert local_objects(d.workdir / "data") == {}, "not before the interval"
    wait_for(lambda: local_objects(d.workdir / "data"), what="interval flush")
    assert 1.9 <= time.monotonic() - t0 < 5


def test_embedded_default_auto_creates_streams_under_data(sluice_factory):
    d = sluice_factory("# unused\n")
    # The embedded default: no --config at all.
    import subprocess, os
    from conftest import BINARY, http_get
    d.workdir.mkdir(parents=True, exist_ok=True)
    log = open(d.log_path, "ab")
    d.proc = subprocess.Popen([str(BINARY), "run", "--listen", f"127.0.0.1:{d.port}"], cwd=d.workdir, stdout=log, stderr=log)
    wait_for(lambda: _up(d), what="embedded default daemon")
    c = d.client()
    c.put_record_batch(DeliveryStreamName="orders", Records=[{"Data": b"o1"}, {"Data": b"o2"}])
    objects = wait_for(lambda: local_objects(d.workdir / "data" / "orders"), timeout=15, what="auto-created stream delivery")
    assert b"".join(objects.values()) == b"o1\no2\n"
    assert (d.workdir / "var" / "sluice").is_dir(), "state under ./var/sluice"
    # Stream names that could escape ./data are refused, not created.
    for hostile in ["..", "."]:
        with pytest.raises(Exception):
            c.put_record(DeliveryStreamName=hostile, Record={"Data": b"x"})
    assert sorted(p.name for p in (d.workdir / "data").iterdir()) == ["orders"]
    assert d.stop() == 0


def _up(d):
    from conftest import http_get
    try:
        return http_get(d.endpoint + "/health")[0] == 200
    except OSError:
        return False


def test_large_objects_stream_through_multipart_upload(sluice_factory, moto, bucket):
    d = sluice_factory(f"""
        pipelines:
          - name: big
            buffering: {{ size_mb: 20, interval_seconds: 900 }}
            destination:
              s3: {{ bucket: {bucket}, endpoint: "{moto.endpoint}", region: us-east-1, force_path_style: true, append_delimiter: true }}
        """).start()
    data = [json.dumps({"id": i, "pad": "z" * 1000}).encode() for i in range(17_000)]  # ~17.3 MB
    put_all(d.client(), "big", data, batch=100)
    assert d.stop() == 0
    objects = moto.objects(bucket)
    assert len(objects) == 1
    (key, body), = objects.items()
    assert body.splitlines() == data
    etag = moto.s3().head_object(Bucket=bucket, Key=key)["ETag"]
    assert re.search(r"-\d+\"$", etag), f"a multipart upload's ETag ends in -<parts>: {etag}"


def gzip_members(blob):
    """How many gzip members follow one another in `blob` (each a complete stream)."""
    members = 0
    while blob:
        z = zlib.decompressobj(wbits=31)
        z.decompress(blob)
        assert z.eof, "a member ends where the next begins"
        blob, members = z.unused_data, members + 1
    return members


def test_a_filling_buffer_is_encoded_in_parts_into_one_gzip_object(sluice_factory):
    """Issue #29: a buffer holds compressed parts, not records, while it fills. The object is the parts
    one after the other (gzip members, RFC 1952), which gzip itself and Python read as one stream."""
    d = sluice_factory("""
        pipelines:
          - name: parts
            buffering: { size_mb: 1, interval_seconds: 3 }
            destination: { local: { path: ./data, compression: GZIP, append_delimiter: true } }
        """).start()
    data = records(4000)  # ~860 KB: under the 1 MiB buffer, so the interval cuts one object of parts
    put_all(d.client(), "parts", data)
    root = d.workdir / "data"
    objects = wait_for(lambda: (lambda o: o if sum(len(gzip.decompress(b).splitlines()) for b in o.values()) >= 4000 else None)(local_objects(root)),
                       what="the object")
    assert len(objects) == 1
    (key, body), = objects.items()
    assert gzip.decompress(body).splitlines() == data, "every record once, in order"
    assert gzip_members(body) == 4, "three parts of 256 KiB (a quarter of the buffer) and the rest"
    unzipped = subprocess.run(["gzip", "-dc", str(root / key)], check=True, capture_output=True).stdout
    assert unzipped.splitlines() == data, "the gzip tool reads the whole object"
