"""The AWS SDK for JavaScript v3 (`@aws-sdk/client-firehose`, from npm; scripts/test.sh installs it
into tests/js) as a third client: the control plane and SigV4 verification, from another SDK's
serializer and signer."""

import json
import subprocess

from conftest import ROOT, local_objects, wait_for

JS = ROOT / "tests" / "js"
KEY = ("AKIDSLUICEJAVASCRIPT", "js-secret-0123456789abcdef")


def test_the_javascript_sdk_manages_a_stream_with_sigv4(sluice_factory):
    assert (JS / "node_modules" / "@aws-sdk" / "client-firehose").exists(), "run `npm ci --prefix tests/js` (scripts/test.sh does)"
    d = sluice_factory(f"""
storage: {{ dir: ./var }}
api:
  auth:
    access_keys: [{{ id: {KEY[0]}, secret: "{KEY[1]}" }}]
control_plane:
  buckets:
    "*": {{ local: {{ path: "./data/{{bucket}}" }} }}
""").start()
    run = subprocess.run(["node", str(JS / "control_plane.mjs"), d.endpoint, *KEY], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out == {
        "arn": "arn:aws:firehose:us-east-1:000000000000:deliverystream/js-stream",
        "status": "ACTIVE",
        "created_is_date": True,
        "version": "2",
        "prefix": "js-v2/",
        "tags": [{"Key": "sdk", "Value": "js"}],
        "failed": 0,
        "wrong_secret": "InvalidSignatureException",
    }
    # The delete drained the two records into the bucket's directory under the updated prefix.
    objects = wait_for(lambda: local_objects(d.workdir / "data" / "js-bucket"), what="the drained records")
    assert sorted(objects) == [k for k in sorted(objects) if k.startswith("js-v2/")]
    assert sorted(b"".join(objects.values()).split()) == [b"one", b"two"]
