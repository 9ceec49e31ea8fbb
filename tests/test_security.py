"""API security with real clients: SigV4 access keys (boto3, the AWS CLI, presigned query
strings), each authentication failure with AWS's error name, per-key stream and action limits,
the refusal to listen publicly without auth, TLS with certificate reload, and throughput quotas.
"""

import datetime
import json
import subprocess
import time
import urllib.request
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest
from botocore.config import Config

from conftest import BINARY, VENV_BIN, free_port, wait_for

ADMIN = ("AKIDSLUICEADMIN0001", "admin-secret-0123456789abcdef")
CLICKS = ("AKIDSLUICECLICKS001", "clicks-secret-0123456789abcdef")

AUTH_CONFIG = f"""
storage: {{ dir: ./var }}
api:
  auth:
    access_keys:
      - {{ id: {ADMIN[0]}, secret: "{ADMIN[1]}" }}
      - {{ id: {CLICKS[0]}, secret: "${{CLICKS_SECRET}}", streams: ["clicks*"], actions: ["PutRecord*"] }}
auto_create:
  destination: {{ local: {{ path: "./data/{{stream}}" }} }}
"""


def client(d, key, **kwargs):
    return boto3.client("firehose", endpoint_url=d.endpoint, region_name="us-east-1",
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=Config(retries={"max_attempts": 1}), **kwargs)


def error(call):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def signed(d, target, body, key, when=None, presign=False):
    """A request signed by botocore's own signer (header or query form), optionally at another time."""
    request = botocore.awsrequest.AWSRequest(method="POST", url=d.endpoint + "/", data=json.dumps(body).encode(), headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"Firehose_20150804.{target}"})
    credentials = botocore.credentials.Credentials(*key)
    signer = botocore.auth.SigV4QueryAuth(credentials, "firehose", "us-east-1", expires=60) if presign \
        else botocore.auth.SigV4Auth(credentials, "firehose", "us-east-1")
    with mock.patch("botocore.auth.get_current_datetime", return_value=when or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)):
        signer.add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, data=prepared.body if isinstance(prepared.body, bytes) else prepared.body.encode(), method="POST", headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def secured(sluice_factory):
    d = sluice_factory(AUTH_CONFIG)
    return d.start(env={**__import__("os").environ, "CLICKS_SECRET": CLICKS[1]})


def test_signed_requests_pass_and_each_failure_has_aws_error_name(secured):
    d = secured
    admin = client(d, ADMIN)
    admin.put_record(DeliveryStreamName="orders", Record={"Data": b"x"})
    assert "orders" in admin.list_delivery_streams()["DeliveryStreamNames"]

    assert error(lambda: client(d, (ADMIN[0], "wrong-secret-0123456789")).list_delivery_streams())[0] == "InvalidSignatureException"
    code, message, status = error(lambda: client(d, ("AKIDNOBODY000000000", ADMIN[1])).list_delivery_streams())
    assert (code, status) == ("UnrecognizedClientException", 400) and message == "The security token included in the request is invalid."
    status, body = d.raw("ListDeliveryStreams", {})[::2]
    assert (status, body["__type"]) == (400, "MissingAuthenticationTokenException")
    status, _, body = d.raw("ListDeliveryStreams", {}, headers={"Authorization": "AWS4-HMAC-SHA256 Credential=AKIDSLUICEADMIN0001/20261202/us-east-1/firehose/aws4_request"})
    assert (status, body["__type"]) == (400, "IncompleteSignatureException")

    # The clock: five minutes either way.
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert signed(d, "ListDeliveryStreams", {}, ADMIN, when=now - datetime.timedelta(minutes=4))[0] == 200
    status, body = signed(d, "ListDeliveryStreams", {}, ADMIN, when=now - datetime.timedelta(minutes=6))
    assert (status, body["__type"]) == (400, "InvalidSignatureException") and body["message"].startswith("Signature expired")
    status, body = signed(d, "ListDeliveryStreams", {}, ADMIN, when=now + datetime.timedelta(minutes=6))
    assert (status, body["__type"]) == (400, "InvalidSignatureException") and "not yet current" in body["message"]
    # The presigned (query string) form.
    assert signed(d, "ListDeliveryStreams", {}, ADMIN, presign=True)[0] == 200
    assert signed(d, "ListDeliveryStreams", {}, (ADMIN[0], "wrong-secret-0123456789"), presign=True)[1]["__type"] == "InvalidSignatureException"
    # Secrets never reach the log.
    assert ADMIN[1] not in d.log() and CLICKS[1] not in d.log()


def test_keys_are_limited_to_their_streams_and_actions(secured):
    clicks = client(secured, CLICKS)
    clicks.put_record(DeliveryStreamName="clicks-web", Record={"Data": b"x"})
    clicks.put_record_batch(DeliveryStreamName="clicks-app", Records=[{"Data": b"y"}])
    code, message, _ = error(lambda: clicks.put_record(DeliveryStreamName="orders", Record={"Data": b"x"}))
    assert code == "AccessDeniedException"
    assert message == (f"User: arn:aws:iam::000000000000:user/{CLICKS[0]} is not authorized to perform: firehose:PutRecord "
                       "on resource: arn:aws:firehose:us-east-1:000000000000:deliverystream/orders")
    assert error(lambda: clicks.describe_delivery_stream(DeliveryStreamName="clicks-web"))[0] == "AccessDeniedException"


def test_the_aws_cli_signs_and_is_verified(secured):
    def aws(key):
        env = {"AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1], "PATH": "/usr/bin:/bin"}
        return subprocess.run([str(VENV_BIN / "aws"), "firehose", "list-delivery-streams", "--endpoint-url", secured.endpoint,
                               "--region", "us-east-1"], capture_output=True, text=True, env=env, timeout=60)
    assert aws(ADMIN).returncode == 0
    wrong = aws((ADMIN[0], "wrong-secret-0123456789"))
    assert wrong.returncode != 0 and "InvalidSignatureException" in wrong.stderr


def test_a_public_address_needs_auth_or_an_explicit_flag(tmp_path):
    (tmp_path / "c.yaml").write_text("storage: { dir: ./var }\n")
    port = free_port()
    out = subprocess.run([str(BINARY), "run", "--config", "c.yaml", "--listen", f"0.0.0.0:{port}"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "without authentication" in out.stderr and "--insecure-no-auth" in out.stderr
    proc = subprocess.Popen([str(BINARY), "run", "--config", "c.yaml", "--listen", f"0.0.0.0:{port}", "--insecure-no-auth"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _up(f"http://127.0.0.1:{port}/health"), what="sluice with --insecure-no-auth")
    finally:
        proc.kill()
        proc.wait()


def _up(url):
    try:
        return urllib.request.urlopen(url, timeout=1).status == 200
    except OSError:
        return False


def make_cert(directory, name):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(directory / f"{name}.key"),
                    "-out", str(directory / f"{name}.crt")], check=True, capture_output=True)


def test_tls_serves_and_reloads_a_renewed_certificate(sluice_factory, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_cert(certs, "first")
    make_cert(certs, "second")
    (certs / "tls.crt").write_bytes((certs / "first.crt").read_bytes())
    (certs / "tls.key").write_bytes((certs / "first.key").read_bytes())
    d = sluice_factory(f"""
storage: {{ dir: ./var }}
api:
  tls: {{ cert_file: {certs / "tls.crt"}, key_file: {certs / "tls.key"} }}
auto_create:
  destination: {{ local: {{ path: "./data/{{stream}}" }} }}
""")
    d.endpoint_override = None
    port = d.port
    https = f"https://127.0.0.1:{port}"
    # /health over plain HTTP fails now: start() cannot poll it, so start by hand.
    d.proc = subprocess.Popen([str(BINARY), "run", "--config", str(d.config_path), "--listen", f"127.0.0.1:{port}"],
                              cwd=d.workdir, stdout=open(d.log_path, "ab"), stderr=subprocess.STDOUT)

    def fh(cert):
        return boto3.client("firehose", endpoint_url=https, region_name="us-east-1", verify=str(certs / f"{cert}.crt"),
                            config=Config(retries={"max_attempts": 1}))

    wait_for(lambda: _listing(fh("first")), what="sluice over TLS")
    fh("first").put_record(DeliveryStreamName="secure", Record={"Data": b"x"})
    with pytest.raises(botocore.exceptions.SSLError):
        fh("second").list_delivery_streams()
    # Renewal: new files in place; new connections get the new certificate within ~10 s.
    (certs / "tls.key").write_bytes((certs / "second.key").read_bytes())
    (certs / "tls.crt").write_bytes((certs / "second.crt").read_bytes())
    wait_for(lambda: _listing(fh("second")), timeout=25, interval=0.5, what="the renewed certificate")
    assert "reloaded a TLS certificate" in d.log()


def _listing(fh):
    try:
        fh.list_delivery_streams()
        return True
    except (botocore.exceptions.SSLError, botocore.exceptions.EndpointConnectionError):
        return False


def test_quotas_throttle_like_firehose(sluice_factory):
    d = sluice_factory("""
storage: { dir: ./var }
pipelines:
  - name: limited
    quotas: { records_per_second: 10, bytes_per_second: 1MiB, requests_per_second: 1000 }
    destination: { local: { path: ./data/limited } }
""").start()
    fh = d.client()
    out = fh.put_record_batch(DeliveryStreamName="limited", Records=[{"Data": f"{i}".encode()} for i in range(25)])
    assert out["FailedPutCount"] == 15
    assert all("RecordId" in r for r in out["RequestResponses"][:10])
    assert all(r == {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."} for r in out["RequestResponses"][10:])
    # By hand: an SDK would retry the 503 (as Firehose expects it to).
    status, _, body = d.raw("PutRecord", {"DeliveryStreamName": "limited", "Record": {"Data": "eA=="}})
    assert (status, body) == (503, {"__type": "ServiceUnavailableException", "message": "Slow down."})
    time.sleep(1.1)
    assert fh.put_record_batch(DeliveryStreamName="limited", Records=[{"Data": b"y"}] * 5)["FailedPutCount"] == 0
    assert d.metric("sluice_throttled_records_total", "limited") == 16
    assert d.metric("sluice_records_per_second_limit", "limited") == 10
    assert d.metric("sluice_bytes_per_second_limit", "limited") == 1 << 20
    assert d.metric("sluice_put_requests_per_second_limit", "limited") == 1000
