"""The OpenSearch/Elasticsearch destination against a strict `_bulk` fake (tests/fakes/opensearch.py)."""

import base64
import json
import time
from datetime import datetime, timezone

from conftest import local_objects, wait_for, wait_for_lines
from fakes.opensearch import FakeOpenSearch


def config(url, extra="", retry=300, kind="opensearch"):
    return f"""
        pipelines:
          - name: search
            buffering: {{ size_mb: 1, interval_seconds: 1 }}
            delivery: {{ retry_initial_ms: 100, retry_max_ms: 400 }}
            destination:
              {kind}:
                endpoint: "{url}"
                index: logs
                index_rotation: OneDay
                auth: {{ basic: {{ username: ingest, password: s3cret-pw }} }}
                retry_duration_seconds: {retry}
                {extra}
                backup: {{ local: {{ path: ./backup, error_output_prefix: "errors/!{{firehose:error-output-type}}/" }} }}
        """


def put(d, docs):
    r = d.client().put_record_batch(DeliveryStreamName="search", Records=[{"Data": json.dumps(x).encode()} for x in docs])
    assert r["FailedPutCount"] == 0


def test_partial_bulk_failures_retry_only_failed_items_and_reject_the_rest(sluice_factory):
    fake = FakeOpenSearch("ingest", "s3cret-pw").start()
    try:
        d = sluice_factory(config(fake.url)).start()
        docs = [{"n": 1}, {"n": 2, "throttle": 2}, {"n": 3, "reject": True}, {"n": 4}]
        put(d, docs)
        wait_for(lambda: len(fake.docs) == 3, timeout=30, what="three documents indexed")
        objects = wait_for_lines(lambda: local_objects(d.workdir / "backup"), 1, what="the rejected document")
        assert fake.violations == []
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        assert {i for i, _ in fake.docs} == {f"logs-{day}"}
        assert sorted(doc["n"] for doc in fake.docs.values()) == [1, 2, 4]
        # The first request carried all four; then only the throttled one, twice.
        assert [len(r) for r in fake.requests] == [4, 1, 1], fake.requests
        assert fake.requests[1] == fake.requests[2] and fake.requests[1][0] in fake.requests[0], "same _id on retry"
        (err,) = [json.loads(line) for k, v in objects.items() for line in v.splitlines()]
        assert list(objects)[0].startswith("errors/AmazonOpenSearchService-failed/")
        assert err["errorCode"] == "400"
        assert err["errorMessage"] == "mapper_parsing_exception: failed to parse field [reject]"
        assert err["esIndexName"] == f"logs-{day}" and err["esDocumentId"] == fake.requests[0][2]
        assert json.loads(base64.b64decode(err["rawData"])) == docs[2]
        assert "s3cret-pw" not in d.log()
        wait_for(lambda: d.metrics().get('sluice_delivery_to_amazon_opensearch_service_records_total{delivery_stream_name="search"}') == 3,
                 what="the indexed-documents metric")
        desc = d.client().describe_delivery_stream(DeliveryStreamName="search")["DeliveryStreamDescription"]
        o = desc["Destinations"][0]["AmazonopensearchserviceDestinationDescription"]
        assert o["IndexName"] == "logs" and o["IndexRotationPeriod"] == "OneDay"
        assert o["DocumentIdOptions"] == {"DefaultDocumentIdFormat": "FIREHOSE_DEFAULT"}
        assert "s3cret" not in json.dumps(desc, default=str)
    finally:
        fake.stop()


def test_kill_9_mid_bulk_resends_the_same_document_ids(sluice_factory):
    fake = FakeOpenSearch("ingest", "s3cret-pw", hang_first=True).start()
    try:
        d = sluice_factory(config(fake.url, kind="elasticsearch")).start()
        put(d, [{"n": i} for i in range(5)])
        wait_for(lambda: fake.requests, what="the first _bulk request")
        d.kill9()
        d.start()
        wait_for(lambda: len(fake.docs) == 5, timeout=30, what="the replayed documents")
        assert fake.requests[1] == fake.requests[0], "the replay sends the same ids"
        assert sorted(doc["n"] for doc in fake.docs.values()) == list(range(5))
        desc = d.client().describe_delivery_stream(DeliveryStreamName="search")["DeliveryStreamDescription"]
        assert "ElasticsearchDestinationDescription" in desc["Destinations"][0]
    finally:
        fake.stop()


def test_the_retry_duration_ends_throttled_documents_in_error_records(sluice_factory):
    fake = FakeOpenSearch("ingest", "s3cret-pw").start()
    try:
        d = sluice_factory(config(fake.url, retry=1)).start()
        put(d, [{"n": 1, "throttle": 1000}])
        objects = wait_for_lines(lambda: local_objects(d.workdir / "backup"), 1, timeout=30, what="the error record")
        (err,) = [json.loads(line) for v in objects.values() for line in v.splitlines()]
        assert err["errorCode"] == "429" and "es_rejected_execution_exception" in err["errorMessage"]
        assert err["attemptsMade"] >= 2
        # Given up after the retry duration, a document still names its index and id.
        assert err["esIndexName"].startswith("logs") and err["esDocumentId"] == fake.requests[0][0]
    finally:
        fake.stop()


def test_aws_sigv4_requests_verify_with_botocore(sluice_factory):
    import os
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    fake = FakeOpenSearch(sigv4=("AKIDEXAMPLE", secret, "es", "eu-west-1")).start()
    try:
        d = sluice_factory(f"""
            pipelines:
              - name: search
                buffering: {{ size_mb: 1, interval_seconds: 1 }}
                destination:
                  opensearch:
                    endpoint: "{fake.url}"
                    index: signed
                    index_rotation: NoRotation
                    auth: {{ aws_sigv4: {{ service: es, region: eu-west-1 }} }}
                    backup: {{ local: {{ path: ./backup }} }}
            """)
        d.start(env={**os.environ, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": secret})
        put(d, [{"signed": True}])
        wait_for(lambda: fake.docs, timeout=30, what="the signed request accepted")
        assert fake.violations == [] and list(fake.docs)[0][0] == "signed"
        assert secret not in d.log()
        # The same request signed with a wrong secret is refused by the verifier.
        wrong = sluice_factory(d.config_path.read_text().replace("index: signed", "index: wrong"), name="wrong")
        wrong.start(env={**os.environ, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
        put(wrong, [{"signed": False}])
        wait_for(lambda: "missing or invalid SigV4 signature" in fake.violations, what="the bad signature refused")
        assert all(index == "signed" for index, _ in fake.docs)
    finally:
        fake.stop()
