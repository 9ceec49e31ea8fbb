"""`sluice tap` and `sluice top` against a running daemon under load: live records at each stage, capped
and sampled; a daemon with api.auth only taps for signed, allowed keys; top shows every pipeline."""

import json
import subprocess
import threading
import time
import urllib.request
import urllib.error

from conftest import BINARY, wait_for

CONFIG = """
{auth}
pipelines:
  - name: orders
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    processors:
      - metadata_extraction: {{ query: '{{c: .customer}}' }}
    dynamic_partitioning: {{ enabled: true }}
    destination: {{ local: {{ path: ./out, prefix: "c=!{{partitionKeyFromQuery:c}}/", error_output_prefix: "errors/" }} }}
"""


def load(d, stop):
    fh = d.client()
    n = 0
    while not stop.is_set():
        records = [{"Data": json.dumps({"customer": f"c{i % 3}", "n": n + i}).encode()} for i in range(50)]
        records.append({"Data": b"not json"})
        fh.put_record_batch(DeliveryStreamName="orders", Records=records)
        n += 50
        time.sleep(0.02)


def tap(d, *args, env=None):
    out = subprocess.run([str(BINARY), "tap", "orders", "--endpoint", d.endpoint, *args], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_tap_shows_each_stage_and_top_shows_the_pipeline(sluice_factory):
    d = sluice_factory(CONFIG.format(auth="")).start()
    stop = threading.Event()
    loader = threading.Thread(target=load, args=(d, stop), daemon=True)
    loader.start()
    try:
        processed = tap(d, "--stage", "processed", "--limit", "5")
        assert len(processed) == 5 and all(r["stage"] == "processed" for r in processed)
        assert all(r["partition"].endswith(json.loads(r["data"])["customer"]) for r in processed)
        failed = tap(d, "--stage", "failed", "--limit", "3")
        assert [r["data"] for r in failed] == ["not json"] * 3 and all(r["errorCode"] for r in failed)
        incoming = tap(d, "--stage", "incoming", "--limit", "3", "--sample", "0.5")
        assert len(incoming) == 3
        delivered = tap(d, "--stage", "delivered", "--limit", "2")
        assert len(delivered) == 2 and all(r["stage"] == "delivered" for r in delivered)
        # The rate cap holds: 30 records at 10 a second (a burst of 10, then 10 a second) take two seconds.
        started = time.monotonic()
        assert len(tap(d, "--stage", "processed", "--limit", "30", "--rate", "10")) == 30
        assert time.monotonic() - started >= 1.5
        top = subprocess.run([str(BINARY), "top", "--endpoint", d.endpoint, "--iterations", "2", "--interval", "1"],
                             capture_output=True, text=True, timeout=30)
        assert top.returncode == 0, top.stderr
        # Piped (not a terminal): tables follow each other, no screen-clearing escapes.
        assert "\x1b" not in top.stdout
        last = ("PIPELINE" + top.stdout.split("PIPELINE")[-1]).splitlines()
        assert last[0].split()[:3] == ["PIPELINE", "IN/s", "DELIVERED/s"]
        row = next(line.split() for line in last if line.startswith("orders"))
        assert float(row[1]) > 0  # records are coming in
    finally:
        stop.set()
        loader.join(10)
    try:
        urllib.request.urlopen(d.endpoint + "/tap/orders?stage=nowhere", timeout=5)
        raise AssertionError("a bad stage must be refused")
    except urllib.error.HTTPError as e:
        assert e.code == 400


def test_tap_with_auth_needs_a_signed_allowed_key(sluice_factory):
    auth = """api:
  auth:
    access_keys:
      - { id: AKIDTAP, secret: tap-secret }
      - { id: AKIDPUT, secret: put-secret, actions: ["PutRecord*"] }"""
    d = sluice_factory(CONFIG.format(auth=auth)).start()
    try:
        urllib.request.urlopen(d.endpoint + "/tap/orders?limit=1", timeout=5)
        raise AssertionError("an unsigned tap must be refused")
    except urllib.error.HTTPError as e:
        assert e.code in (400, 403)
    import os
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    refused = subprocess.run([str(BINARY), "tap", "orders", "--endpoint", d.endpoint, "--limit", "1"], capture_output=True,
                             text=True, timeout=30, env={**base, "AWS_ACCESS_KEY_ID": "AKIDPUT", "AWS_SECRET_ACCESS_KEY": "put-secret"})
    assert refused.returncode != 0 and "firehose:Tap" in refused.stderr
    stop = threading.Event()
    fh_env = {**base, "AWS_ACCESS_KEY_ID": "AKIDTAP", "AWS_SECRET_ACCESS_KEY": "tap-secret"}

    def put():
        import boto3
        fh = boto3.client("firehose", endpoint_url=d.endpoint, region_name="us-east-1",
                          aws_access_key_id="AKIDTAP", aws_secret_access_key="tap-secret")
        while not stop.is_set():
            fh.put_record(DeliveryStreamName="orders", Record={"Data": b'{"customer":"x"}'})
            time.sleep(0.05)
    t = threading.Thread(target=put, daemon=True)
    t.start()
    try:
        assert len(tap(d, "--limit", "2", env=fh_env)) == 2
        # With the daemon's config, the tool signs with its first key: no AWS_* variables needed.
        assert len(tap(d, "--limit", "1", "--config", str(d.config_path), env=base)) == 1
    finally:
        stop.set()
        t.join(10)
