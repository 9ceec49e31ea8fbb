"""The HTTP endpoint destination (Firehose protocol 1.0) against a strict fake receiver (tests/fakes)."""

import base64
import json
import subprocess
import time

import pytest

from conftest import BINARY, local_objects, wait_for, wait_for_lines
from fakes.http_endpoint import FakeHttpEndpoint


@pytest.fixture
def endpoint(request):
    fakes = []

    def make(**kwargs):
        fake = FakeHttpEndpoint(**kwargs).start()
        fakes.append(fake)
        return fake

    yield make
    for f in fakes:
        f.stop()


def config(url, extra="", retry=300, backup_mode="FailedDataOnly"):
    return f"""
        pipelines:
          - name: web
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            delivery: {{ retry_initial_ms: 100, retry_max_ms: 400 }}
            destination:
              http_endpoint:
                url: {url}
                name: fake-collector
                retry_duration_seconds: {retry}
                s3_backup_mode: {backup_mode}
                {extra}
                backup: {{ local: {{ path: ./backup, error_output_prefix: "errors/!{{firehose:error-output-type}}/" }} }}
        """


def put(d, records):
    r = d.client().put_record_batch(DeliveryStreamName="web", Records=[{"Data": x} for x in records])
    assert r["FailedPutCount"] == 0


def test_records_arrive_once_with_every_header_and_gzip(sluice_factory, endpoint):
    fake = endpoint(access_key="sekret-key-123", gzip_expected=True, common_attributes={"env": "prod", "team": "web"})
    d = sluice_factory(config(fake.url, extra="""access_key: sekret-key-123
                content_encoding: GZIP
                common_attributes: { env: prod, team: web }""")).start()
    sent = [f"record {i}".encode() for i in range(1200)]
    put(d, sent[:500])
    put(d, sent[500:1000])
    put(d, sent[1000:])
    wait_for(lambda: len(fake.records()) >= len(sent), what="every record at the endpoint")
    assert fake.violations == []
    assert sorted(fake.records()) == sorted(sent)
    assert "sekret-key-123" not in d.log(), "the access key is never logged"
    # The fake counts a request before sluice has read the answer: wait for sluice's count too.
    wait_for(lambda: d.metrics().get('sluice_delivery_to_http_endpoint_records_total{delivery_stream_name="web"}') == len(sent),
             what="the delivered-records metric")
    (dest,) = d.client().describe_delivery_stream(DeliveryStreamName="web")["DeliveryStreamDescription"]["Destinations"]
    h = dest["HttpEndpointDestinationDescription"]
    assert h["EndpointConfiguration"] == {"Url": fake.url, "Name": "fake-collector"}, "the access key is not described"
    assert h["RequestConfiguration"]["ContentEncoding"] == "GZIP"
    assert {a["AttributeName"]: a["AttributeValue"] for a in h["RequestConfiguration"]["CommonAttributes"]} == {"env": "prod", "team": "web"}
    assert h["RetryOptions"] == {"DurationInSeconds": 300} and h["S3BackupMode"] == "FailedDataOnly"
    assert "sekret" not in json.dumps(dest, default=str)


def test_retries_keep_the_request_id_and_deliver_once(sluice_factory, endpoint):
    fake = endpoint(script=["500", "garbage", "wrong-id", "503"])
    d = sluice_factory(config(fake.url)).start()
    put(d, [b"a", b"b", b"c"])
    wait_for(lambda: fake.records(), timeout=30, what="delivery after the failures")
    ids = [i for i, _ in fake.attempts]
    assert len(ids) == 5 and len(set(ids)) == 1, fake.attempts
    assert sorted(fake.records()) == [b"a", b"b", b"c"]
    assert fake.violations == []
    assert "HttpEndpoint.InvalidResponseFromDestination" in d.log()


def test_the_retry_duration_ends_in_error_records(sluice_factory, endpoint):
    fake = endpoint(script=["503"] * 1000)
    d = sluice_factory(config(fake.url, retry=2)).start()
    put(d, [b"first", b"second"])
    objects = wait_for_lines(lambda: local_objects(d.workdir / "backup"), 2, timeout=30, what="error records")
    errors = [json.loads(line) for k, v in objects.items() for line in v.splitlines()]
    assert all(k.startswith("errors/http-endpoint-failed/") for k in objects), list(objects)
    assert sorted(base64.b64decode(e["rawData"]) for e in errors) == [b"first", b"second"]
    for e in errors:
        assert e["errorCode"] == "HttpEndpoint.DestinationException"
        assert "503" in e["errorMessage"] and "fake says 503" in e["errorMessage"], e
        assert e["attemptsMade"] >= 3
        assert e["attemptEndingTimestamp"] >= e["arrivalTimestamp"]
    assert fake.records() == []


def test_hostile_answers_never_crash_the_daemon_or_lose_a_record(sluice_factory, endpoint):
    fake = endpoint(script=["huge", "reset", "drip", "garbage"])
    d = sluice_factory(config(fake.url, extra="request_timeout_seconds: 2")).start()
    put(d, [b"kept"])
    wait_for(lambda: fake.records(), timeout=60, what="delivery after four hostile answers")
    assert [b for _, b in fake.attempts] == ["huge", "reset", "drip", "garbage", "ok"]
    assert len({i for i, _ in fake.attempts}) == 1, "one request id throughout"
    assert fake.records() == [b"kept"]
    log = d.log()
    for code in ["HttpEndpoint.ResponseTooLarge", "HttpEndpoint.ConnectionReset", "HttpEndpoint.RequestTimeout"]:
        assert code in log, code
    assert d.proc.poll() is None


def make_certificates(d):
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl, as an operator would)."""
    run = lambda *args: subprocess.run(args, cwd=d, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=sluice test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.pem", (str(d / "server.pem"), str(d / "server.key"))


def test_tls_with_a_private_ca_and_a_tls_error(sluice_factory, endpoint, tmp_path):
    ca, server = make_certificates(tmp_path)
    fake = endpoint(tls=server)
    trusted = sluice_factory(config(fake.url, extra=f"tls: {{ ca_file: {ca} }}"), name="trusted").start()
    put(trusted, [b"over tls"])
    wait_for(lambda: fake.records() == [b"over tls"], what="delivery over TLS with the private CA")
    untrusted = sluice_factory(config(fake.url, retry=1), name="untrusted").start()
    put(untrusted, [b"refused"])
    objects = wait_for_lines(lambda: local_objects(untrusted.workdir / "backup"), 1, what="the TLS failure")
    (err,) = [json.loads(line) for v in objects.values() for line in v.splitlines()]
    assert err["errorCode"] == "HttpEndpoint.ConnectionFailed", err
    assert "certificate" in err["errorMessage"].lower(), err
    assert fake.records() == [b"over tls"]


def test_413_is_not_retried(sluice_factory, endpoint):
    fake = endpoint(script=["413"])
    d = sluice_factory(config(fake.url)).start()
    put(d, [b"too big"])
    objects = wait_for_lines(lambda: local_objects(d.workdir / "backup"), 1, what="the error record")
    (err,) = [json.loads(line) for v in objects.values() for line in v.splitlines()]
    assert "413" in err["errorMessage"] and err["attemptsMade"] == 1
    assert len(fake.attempts) == 1
    # Records given up make /ready say so for a while (api.not_ready_after_give_up_seconds).
    status, body = d.ready()
    assert status == 503 and "given up to the error prefix (http-endpoint-failed" in body["pipelines"]["web"]["reason"]
    assert body["pipelines"]["web"]["last_give_up"]["what"].startswith("1 records were given up")


def test_ready_ignores_give_ups_when_the_window_is_zero(sluice_factory, endpoint):
    fake = endpoint(script=["413"])
    d = sluice_factory("\n        api: { not_ready_after_give_up_seconds: 0 }" + config(fake.url)).start()
    put(d, [b"too big"])
    wait_for_lines(lambda: local_objects(d.workdir / "backup"), 1, what="the error record")
    status, body = d.ready()
    assert status == 200 and body["pipelines"]["web"]["last_give_up"] is None, body


def test_all_data_backup_writes_every_record_to_the_store(sluice_factory, endpoint):
    fake = endpoint()
    d = sluice_factory(config(fake.url, backup_mode="AllData")).start()
    put(d, [b"x\n", b"y\n"])
    wait_for(lambda: len(fake.records()) == 2, what="the endpoint")
    objects = wait_for(lambda: local_objects(d.workdir / "backup"), what="the backup copy")
    assert sorted(b"".join(objects.values()).splitlines()) == [b"x", b"y"]
    wait_for(lambda: d.metrics().get('sluice_backup_to_s3_records_total{delivery_stream_name="web"}') == 2,
             what="BackupToS3.Records")
    assert 'sluice_delivery_to_http_endpoint_data_freshness_seconds{delivery_stream_name="web"}' in d.metrics()


def test_kill_9_mid_request_resends_the_same_request_id(sluice_factory, endpoint):
    fake = endpoint(script=["hang"])
    d = sluice_factory(config(fake.url)).start()
    put(d, [b"survives"])
    wait_for(lambda: fake.attempts, what="the first request")
    first_id = fake.attempts[0][0]
    d.kill9()
    d.start()
    wait_for(lambda: fake.records(), timeout=30, what="the replayed request")
    assert fake.accepted[0][0] == first_id, (first_id, fake.accepted)
    assert fake.records() == [b"survives"]


def test_endpoint_options_are_validated(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("""pipelines:
  - name: p
    dynamic_partitioning: { enabled: true }
    destination:
      http_endpoint:
        url: "ftp://nowhere"
        content_encoding: GZIPP
        retry_duration_seconds: 9000
        s3_backup_mode: AllDocuments
        backup: { local: { path: ./b, error_output_prefix: "e/!{firehose:error-output-type}/" } }
""")
    r = subprocess.run([str(BINARY), "validate", str(path)], capture_output=True, text=True)
    assert r.returncode != 0
    for expected in ["http_endpoint.url", "did you mean `GZIP`?", "retry_duration_seconds", "s3_backup_mode",
                     "applies to S3 destinations only"]:
        assert expected in r.stderr, (expected, r.stderr)
