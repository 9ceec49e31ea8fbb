"""Fan-out: one pipeline, several destinations (`destinations:`), each with its own buffering, retries,
backup, error output, `when:` condition, metrics and readiness. The OpenSearch peer is the strict `_bulk`
fake of tests/fakes/opensearch.py (no OpenSearch can run here)."""

import gzip
import json
from collections import Counter

from conftest import local_objects, wait_for
from fakes.opensearch import FakeOpenSearch
from test_durability import assert_exactly_once, kill_9_rounds


class FlakyOpenSearch(FakeOpenSearch):
    """The fake, answering 503 to every `_bulk` while `down` is set (a cluster that is unavailable)."""

    def __init__(self):
        super().__init__()
        self.down = True

    def handle(self, handler):
        if self.down:
            handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
            return self.reply(handler, 503, {"error": "unavailable", "status": 503})
        return super().handle(handler)


def search(url, pad=18):
    """The OpenSearch list item, indented to sit at column `pad` of the config around it."""
    item = ["- name: search", "  opensearch:", f'    endpoint: "{url}"', "    index: logs",
            "    backup: { local: { path: ./search-backup } }"]
    return ("\n" + " " * pad).join(item)


def put(d, stream, docs):
    c = d.client()
    for i in range(0, len(docs), 500):
        r = c.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": json.dumps(x).encode()} for x in docs[i:i + 500]])
        assert r["FailedPutCount"] == 0


def lines(root):
    out = []
    for name, body in local_objects(root).items():
        out += (gzip.decompress(body) if name.endswith(".gz") else body).splitlines()
    return [json.loads(x) for x in out]


def test_every_destination_gets_every_record_with_its_own_metrics_and_readiness(sluice_factory):
    fake = FakeOpenSearch().start()
    try:
        d = sluice_factory(f"""
            pipelines:
              - name: logs
                buffering: {{ size_mb: 1, interval_seconds: 1 }}
                destinations:
                  - name: archive
                    local: {{ path: ./archive, compression: GZIP, append_delimiter: true }}
                    buffering: {{ interval_seconds: 2 }}
                  {search(fake.url)}
            """).start()
        put(d, "logs", [{"n": i, "level": "info"} for i in range(1200)])
        wait_for(lambda: len(lines(d.workdir / "archive")) == 1200, what="the archive")
        wait_for(lambda: len(fake.docs) == 1200, what="the search documents")
        assert sorted(x["n"] for x in lines(d.workdir / "archive")) == list(range(1200))
        assert sorted(doc["n"] for doc in fake.docs.values()) == list(range(1200))
        assert fake.violations == []
        m = d.metrics()
        assert m['sluice_delivery_to_local_records_total{delivery_stream_name="logs",destination="archive"}'] == 1200
        assert m['sluice_delivery_to_amazon_opensearch_service_records_total{delivery_stream_name="logs",destination="search"}'] == 1200
        assert m['sluice_incoming_records_total{delivery_stream_name="logs"}'] == 1200
        status, body = d.ready()
        ready = body["pipelines"]["logs"]
        assert status == 200 and ready["ready"]
        assert set(ready["destinations"]) == {"archive", "search"}
        assert all(x["ready"] and x["destination_check_passed"] for x in ready["destinations"].values())
        # Describe shows the first destination (the Firehose shape has room for one).
        desc = d.client().describe_delivery_stream(DeliveryStreamName="logs")["DeliveryStreamDescription"]
        assert len(desc["Destinations"]) == 1
    finally:
        fake.stop()


def test_when_routes_records_and_counts_what_no_destination_takes(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: app
            buffering: { size_mb: 1, interval_seconds: 1 }
            processors:
              - parse: { format: logfmt }
            destinations:
              - when: '.level != "debug"'
                local: { path: ./kept, append_delimiter: true }
              - name: errors
                when: '.level == "error"'
                local: { path: ./errors, append_delimiter: true }
        """).start()
    levels = ["info", "error", "debug", "warn", "error"] * 40
    c = d.client()
    r = c.put_record_batch(DeliveryStreamName="app", Records=[{"Data": f"level={l} n={i}".encode()} for i, l in enumerate(levels)])
    assert r["FailedPutCount"] == 0
    wait_for(lambda: len(lines(d.workdir / "kept")) == 160, what="everything but debug")
    wait_for(lambda: len(lines(d.workdir / "errors")) == 80, what="the errors")
    assert {x["level"] for x in lines(d.workdir / "kept")} == {"info", "error", "warn"}
    assert {x["level"] for x in lines(d.workdir / "errors")} == {"error"}
    wait_for(lambda: d.metric("sluice_unrouted_records_total", "app") == 40, what="debug records counted as unrouted")
    # Nothing waits for the records no destination took.
    wait_for(lambda: d.ready()[1]["pipelines"]["app"]["oldest_undelivered_age_seconds"] is None,
             what="nothing left undelivered")


def test_a_failing_destination_holds_back_no_other_and_catches_up_exactly_once(sluice_factory):
    fake = FlakyOpenSearch().start()
    try:
        # Memory allowance per destination: 1 MiB × (concurrency 1 + 2) = 3 MiB; 8 MiB is put.
        d = sluice_factory(f"""
            pipelines:
              - name: logs
                buffering: {{ size_mb: 1, interval_seconds: 1 }}
                delivery: {{ concurrency: 1, retry_initial_ms: 100, retry_max_ms: 300 }}
                destinations:
                  - local: {{ path: ./archive, append_delimiter: true }}
                  {search(fake.url)}
            """).start()
        docs = [{"n": i, "pad": "x" * 1000} for i in range(8000)]
        put(d, "logs", docs)
        wait_for(lambda: len(lines(d.workdir / "archive")) == 8000, timeout=60, what="the archive, while search is down")
        assert len(fake.docs) == 0
        wait_for(lambda: d.metrics().get('sluice_spill_bytes{delivery_stream_name="logs",destination="search"}', 0) > 1 << 20,
                 what="search's backlog on disk")
        status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(d.ready()), what="search not ready")
        ready = body["pipelines"]["logs"]
        assert status == 503 and "destination `search`:" in ready["reason"], ready
        assert ready["destinations"]["local"]["ready"]
        fake.down = False
        wait_for(lambda: len(fake.docs) == 8000, timeout=90, what="search to catch up")
        assert sorted(doc["n"] for doc in fake.docs.values()) == list(range(8000))
        wait_for(lambda: d.metric("sluice_spill_bytes", "logs") == 0, what="the backlog to drain")
        wait_for(lambda: d.metric("sluice_wal_bytes", "logs") < 1 << 20, what="the WAL to be freed")
        assert len(lines(d.workdir / "archive")) == 8000, "the archive got nothing twice"
        assert d.stop() == 0
    finally:
        fake.stop()


def test_kill_9_under_load_delivers_once_to_each_destination(sluice_factory):
    """Two destinations write one directory (their names must not collide) and a third indexes in the
    OpenSearch fake, where a re-cut batch would show as documents with new ids."""
    fake = FakeOpenSearch().start()
    try:
        d = sluice_factory(f"""
            storage:
              segment_bytes: 256KiB
            pipelines:
              - name: load
                buffering: {{ size_mb: 1, interval_seconds: 1 }}
                destinations:
                  - name: a
                    local: {{ path: ./shared, append_delimiter: true }}
                  - name: b
                    local: {{ path: ./shared, append_delimiter: true }}
                    buffering: {{ size_mb: 2, interval_seconds: 2 }}
                  {search(fake.url)}
            """)

        def batch(tag, n):
            return [(f"{tag}-{n + i}", json.dumps({"k": f"{tag}-{n + i}", "pad": "p" * 150}).encode()) for i in range(200)]

        acked = kill_9_rounds(d, "load", batch, workers=2, per_round=4_000, rounds=5)
        d.start()

        def shared_keys():
            return [x["k"] for x in lines(d.workdir / "shared")]

        # Keys in flight at the last kill (never acknowledged) may arrive at one destination before
        # the other (each has its own interval): wait until both have settled.
        wait_for(lambda: acked <= set(shared_keys()) and all(n >= 2 for n in Counter(shared_keys()).values()),
                 timeout=120, what="both local destinations")
        wait_for(lambda: acked <= {doc["k"] for doc in fake.docs.values()}, timeout=120, what="the search documents")
        counts = Counter(shared_keys())
        assert all(n == 2 for n in counts.values()), [(k, n) for k, n in counts.items() if n != 2][:5]
        assert_exactly_once(acked, [doc["k"] for doc in fake.docs.values()], "search documents")
        assert d.stop() == 0
    finally:
        fake.stop()
