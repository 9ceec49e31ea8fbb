"""The Splunk HEC destination against a strict HEC fake (tests/fakes/splunk_hec.py)."""

import base64
import json

from conftest import local_objects, wait_for, wait_for_lines
from fakes.splunk_hec import FakeHec


def config(url, token, retry=300):
    return f"""
        pipelines:
          - name: hec
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            delivery: {{ retry_initial_ms: 100, retry_max_ms: 400 }}
            destination:
              splunk:
                hec_endpoint: "{url}"
                hec_endpoint_type: Event
                hec_token: {token}
                retry_duration_seconds: {retry}
                backup: {{ local: {{ path: ./backup, error_output_prefix: "errors/!{{firehose:error-output-type}}/" }} }}
        """


def test_events_are_delivered_once_acknowledged(sluice_factory):
    hec = FakeHec("0b1c2d3e-aaaa-bbbb-cccc-123456789abc", ack_after_polls=3).start()
    try:
        d = sluice_factory(config(hec.url, "0b1c2d3e-aaaa-bbbb-cccc-123456789abc")).start()
        c = d.client()
        c.put_record_batch(DeliveryStreamName="hec", Records=[
            {"Data": json.dumps({"n": 1}).encode()}, {"Data": b"plain text line"}])
        wait_for(lambda: len(hec.indexed) == 2, timeout=30, what="both events indexed")
        assert hec.violations == []
        assert sorted(map(json.dumps, hec.indexed)) == sorted([json.dumps({"n": 1}), json.dumps("plain text line")])
        assert "0b1c2d3e-aaaa" not in d.log(), "the token is never logged"
        assert d.metrics()['sluice_delivery_to_splunk_data_ack_latency_seconds_count{delivery_stream_name="hec"}'] >= 1
        desc = c.describe_delivery_stream(DeliveryStreamName="hec")["DeliveryStreamDescription"]
        s = desc["Destinations"][0]["SplunkDestinationDescription"]
        assert s["HECEndpointType"] == "Event" and s["HECAcknowledgmentTimeoutInSeconds"] == 180
        assert "0b1c2d3e" not in json.dumps(desc, default=str)
    finally:
        hec.stop()


def test_an_invalid_token_ends_in_splunk_failed_records(sluice_factory):
    hec = FakeHec("right-token").start()
    try:
        d = sluice_factory(config(hec.url, "wrong-token", retry=1)).start()
        d.client().put_record(DeliveryStreamName="hec", Record={"Data": b'{"n": 2}'})
        objects = wait_for_lines(lambda: local_objects(d.workdir / "backup"), 1, timeout=30, what="the error record")
        (key,) = objects
        assert key.startswith("errors/splunk-failed/")
        (err,) = [json.loads(line) for line in objects[key].splitlines()]
        assert err["errorCode"] == "Splunk.InvalidToken" and "Invalid token" in err["errorMessage"]
        assert base64.b64decode(err["rawData"]) == b'{"n": 2}'
        assert hec.indexed == []
    finally:
        hec.stop()


def test_kill_9_mid_request_delivers_every_event_after_restart(sluice_factory):
    hec = FakeHec("tok-kill", hang_first_post=True).start()
    try:
        d = sluice_factory(config(hec.url, "tok-kill")).start()
        d.client().put_record_batch(DeliveryStreamName="hec", Records=[{"Data": json.dumps({"n": i}).encode()} for i in range(3)])
        wait_for(lambda: hec.posts >= 1, what="the first request")
        d.kill9()
        d.start()
        wait_for(lambda: len(hec.indexed) == 3, timeout=30, what="the replayed events indexed")
        assert sorted(e["n"] for e in hec.indexed) == [0, 1, 2]
    finally:
        hec.stop()
