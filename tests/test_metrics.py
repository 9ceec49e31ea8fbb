"""Every metric /metrics shows is documented in docs/metrics.md, and the latency histograms fill in."""

import re

from conftest import ROOT, local_objects, wait_for_lines


def test_every_metric_is_documented_and_latencies_are_recorded(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: m
            buffering: { size_mb: 1, interval_seconds: 0 }
            processors:
              - jq: { query: '{id: .id}' }
            destination: { local: { path: ./d } }
        """).start()
    c = d.client()
    c.put_record(DeliveryStreamName="m", Record={"Data": b'{"id": 1}'})
    c.put_record_batch(DeliveryStreamName="m", Records=[{"Data": b'{"id": 2}'}])
    try:
        c.describe_delivery_stream(DeliveryStreamName="nope")
    except c.exceptions.ResourceNotFoundException:
        pass
    wait_for_lines(lambda: local_objects(d.workdir / "d"), 2, what="two records")
    m = d.metrics()
    first_cells = re.findall(r"^\| ([^|]+)\|", (ROOT / "docs/metrics.md").read_text(), re.M)
    documented = {name for cell in first_cells for name in re.findall(r"`(sluice_[a-z0-9_]+)`", cell)}
    undocumented = sorted(n for n in {k.split("{")[0] for k in m} if n not in documented
                          and re.sub(r"_(bucket|sum|count)$", "", n) not in documented)
    assert not undocumented, f"add these to docs/metrics.md: {undocumented}"

    s = 'delivery_stream_name="m"'
    assert m[f'sluice_put_latency_seconds_count{{{s},operation="PutRecord"}}'] == 1
    assert m[f'sluice_put_latency_seconds_count{{{s},operation="PutRecordBatch"}}'] == 1
    assert m[f"sluice_execute_processing_duration_seconds_count{{{s}}}"] >= 1
    assert m[f"sluice_jq_processing_duration_seconds_count{{{s}}}"] >= 1
    assert m[f"sluice_delivery_latency_seconds_count{{{s}}}"] >= 1
    assert m['sluice_api_responses_total{operation="PutRecord",status="200"}'] >= 1
    assert m['sluice_api_responses_total{operation="DescribeDeliveryStream",status="400"}'] >= 1
    assert any(k.startswith("sluice_build_info{") for k in m)
