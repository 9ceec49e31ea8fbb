"""`source: firehose_http_endpoint`: sluice receiving Firehose's HTTP endpoint protocol 1.0. Two daemons
chained (one's http_endpoint destination delivers to the other's source), and the protocol's edges by
hand: access key, request-id deduplication of retries, gzip, unknown pipelines.
"""

import base64
import gzip
import json
import time
import urllib.request
import uuid

from conftest import local_objects, wait_for

KEY = "chain-access-key-0123"


def landing(sluice_factory):
    return sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: landing
    source:
      firehose_http_endpoint: {{ access_key: "{KEY}" }}
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    destination: {{ local: {{ path: ./data, append_delimiter: true }} }}
""", name="landing").start()


def lines(d):
    return [line for body in local_objects(d.workdir / "data").values() for line in body.decode().splitlines()]


def deliver(d, records, request_id=None, key=KEY, compress=False, stream="landing"):
    request_id = request_id or str(uuid.uuid4())
    body = json.dumps({"requestId": request_id, "timestamp": int(time.time() * 1000),
                       "records": [{"data": base64.b64encode(r).decode()} for r in records]}).encode()
    headers = {"Content-Type": "application/json", "X-Amz-Firehose-Protocol-Version": "1.0",
               "X-Amz-Firehose-Request-Id": request_id, "X-Amz-Firehose-Access-Key": key,
               "X-Amz-Firehose-Source-Arn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/test"}
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    req = urllib.request.Request(f"{d.endpoint}/http-endpoint/{stream}", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_two_daemons_chained_deliver_every_record_once(sluice_factory):
    b = landing(sluice_factory)
    a = sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: relay
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    destination:
      http_endpoint:
        url: {b.endpoint}/http-endpoint/landing
        name: downstream-sluice
        access_key: "{KEY}"
        content_encoding: GZIP
        retry_duration_seconds: 60
        backup: {{ local: {{ path: ./backup }} }}
""", name="relay").start()
    fh = a.client()
    sent = [json.dumps({"i": i}) for i in range(2000)]
    for i in range(0, len(sent), 500):
        assert fh.put_record_batch(DeliveryStreamName="relay", Records=[{"Data": r.encode()} for r in sent[i:i + 500]])["FailedPutCount"] == 0
    wait_for(lambda: len(lines(b)) >= 2000, timeout=60, what="the records at the second daemon")
    time.sleep(1.5)
    assert sorted(lines(b)) == sorted(sent)
    assert not local_objects(a.workdir / "backup")  # nothing failed over to the backup


def test_the_protocol_edges(sluice_factory):
    d = landing(sluice_factory)
    status, body = deliver(d, [b"x"], request_id="r-1", key="wrong-key")
    assert (status, body["requestId"]) == (401, "r-1") and body["errorMessage"]
    status, body = deliver(d, [b"x"], stream="nope")
    assert status == 404
    # A retry with the same request id (the response was lost) writes nothing twice.
    assert deliver(d, [b"one", b"two"], request_id="r-2")[0] == 200
    status, body = deliver(d, [b"one", b"two"], request_id="r-2")
    assert (status, body["requestId"]) == (200, "r-2") and isinstance(body["timestamp"], int)
    assert deliver(d, [b"three"], compress=True)[0] == 200
    wait_for(lambda: len(lines(d)) >= 3, what="the records")
    time.sleep(1.5)
    assert sorted(lines(d)) == ["one", "three", "two"]
    status, body = deliver(d, [b"x" * 1_024_001])
    assert status == 413


def test_a_retry_after_a_restart_writes_nothing_twice(sluice_factory):
    """The request-id memory is on disk (issue #23): a sender whose answer was lost to a crash resends the
    request with the same id to the restarted daemon, which appends nothing again."""
    d = landing(sluice_factory)
    assert deliver(d, [b"a", b"b", b"c"], request_id="before-the-crash")[0] == 200
    d.kill9()
    d.start()
    status, body = deliver(d, [b"a", b"b", b"c"], request_id="before-the-crash")
    assert (status, body["requestId"]) == (200, "before-the-crash")
    assert deliver(d, [b"d"], request_id="after-the-crash")[0] == 200
    wait_for(lambda: len(lines(d)) >= 4, what="the records")
    time.sleep(1.5)
    assert sorted(lines(d)) == ["a", "b", "c", "d"]
