"""The PostgreSQL destination against a real server (tests/pg.py: Debian's PostgreSQL in a throwaway
cluster): typed columns and a jsonb document column, bad rows isolated into the error output while
the rest loads, the database stopped for 30 s under load, and sluice killed with -9 under load —
counting rows: 0 lost, 0 duplicated.
"""

import json
import time

import pytest

from conftest import IdProducer, local_objects, wait_for
from pg import PASSWORD, Cluster


@pytest.fixture(scope="module")
def pg():
    cluster = Cluster()
    yield cluster
    cluster.close()


def env():
    import os
    return {**os.environ, "PG_PASSWORD": PASSWORD}


def pipeline(sluice_factory, pg, table, target, name="daemon", retry=3600, extra=""):
    return sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: to-pg
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    destination:
      postgres:
        url: {pg.url}
        table: {table}
        {target}
        retry_duration_seconds: {retry}
        backup: {{ local: {{ path: ./backup, error_output_prefix: "errors/!{{firehose:error-output-type}}/" }} }}
{extra}
""", name=name)


def error_records(d):
    return [json.loads(line) for path, body in local_objects(d.workdir / "backup").items()
            if path.startswith("errors/") for line in body.decode().splitlines()]


def start_producer(d):
    """Records {"id": n, "body": ...} into `to-pg` until stopped (conftest.IdProducer)."""
    return IdProducer(d, "to-pg", lambda i: {"id": i, "body": f"row {i}"})


def stop_and_count(pg, table, producer, timeout):
    """Stops the load, waits until every acknowledged record is a row, and checks no row is there
    twice (0 duplicated). Returns the ids loaded and the ids acknowledged."""
    producer.stop()
    ids = lambda: [int(r[0]) for r in pg.sql(f"SELECT id FROM {table}")]  # noqa: E731
    wait_for(lambda: set(ids()) >= producer.acked, timeout=timeout, what="every acknowledged row")
    time.sleep(2)  # a duplicate would be loaded by now
    loaded = ids()
    assert len(loaded) == len(set(loaded)), "a row loaded twice"
    return set(loaded), producer.acked


def test_typed_columns_and_a_jsonb_document_load_with_the_tables_own_types(sluice_factory, pg):
    pg.sql("CREATE TABLE typed (user_id bigint NOT NULL, event_type text, ts timestamptz, payload jsonb, "
           "amount numeric(10,2), ok boolean)")
    pg.sql("CREATE TABLE docs (id bigserial PRIMARY KEY, doc jsonb NOT NULL)")
    d = pipeline(sluice_factory, pg, "typed", "columns: [user_id, event_type, ts, payload, amount, ok]",
                 extra="""  - name: docs
    buffering: { size_mb: 1, interval_seconds: 1 }
    destination:
      postgres:
        url: %s
        table: public.docs
        jsonb_column: doc
        backup: { local: { path: ./backup-docs } }
""" % pg.url).start(env=env())
    records = [{"user_id": i, "event_type": "click\tor\\tab" if i == 0 else f"e{i % 3}",
                "ts": f"2026-12-01T10:00:{i % 60:02d}Z", "payload": {"n": i, "tags": ["a", "b"]},
                "amount": f"{i}.25", "ok": i % 2 == 0, "ignored": "x"} for i in range(500)]
    c = d.client()
    c.put_record_batch(DeliveryStreamName="to-pg", Records=[{"Data": json.dumps(r).encode()} for r in records])
    c.put_record_batch(DeliveryStreamName="docs", Records=[{"Data": json.dumps(r).encode()} for r in records[:50]])
    wait_for(lambda: pg.value("SELECT count(*) FROM typed") == "500", timeout=30, what="500 typed rows")
    wait_for(lambda: pg.value("SELECT count(*) FROM docs") == "50", timeout=30, what="50 documents")
    assert pg.sql("SELECT ts, payload->'tags'->>1, amount, ok FROM typed WHERE user_id = 0") == [
        ["2026-12-01 10:00:00+00", "b", "0.25", "t"]]
    # A tab and a backslash survive COPY's text escaping.
    assert pg.value("SELECT user_id FROM typed WHERE event_type = E'click\\tor\\\\tab'") == "0"
    assert pg.value("SELECT sum(amount) FROM typed") == "124875.00"  # numeric(10,2), exact
    assert pg.value("SELECT count(*) FROM typed WHERE ok") == "250"
    assert pg.value("SELECT doc->>'event_type' FROM docs WHERE (doc->>'user_id')::int = 1") == "e1"
    # A sluice extension (Firehose has no PostgreSQL destination), so boto3 drops it: read the raw answer.
    status, _, body = d.raw("DescribeDeliveryStream", {"DeliveryStreamName": "to-pg"})
    desc = body["DeliveryStreamDescription"]
    pg_desc = desc["Destinations"][0]["PostgresDestinationDescription"]
    assert pg_desc["TableName"] == "typed" and pg_desc["S3BackupMode"] == "FailedDataOnly"
    assert PASSWORD not in json.dumps(desc, default=str) and PASSWORD not in d.log()
    assert d.metric("sluice_delivery_to_postgres_records_total", "to-pg") == 500


def test_bad_rows_go_to_the_error_output_with_the_databases_message_and_the_rest_loads(sluice_factory, pg):
    pg.sql("CREATE TABLE strict (id int PRIMARY KEY, ts timestamptz, amount numeric(5,2), code text NOT NULL "
           "CHECK (code <> 'forbidden'))")
    d = pipeline(sluice_factory, pg, "strict", "columns: [id, ts, amount, code]").start(env=env())
    good = [{"id": i, "ts": "2026-12-01T00:00:00Z", "amount": 1.5, "code": "c"} for i in range(200)]
    bad = {
        "not json": b"{not json",
        "missing code": json.dumps({"id": 1000, "amount": 1}).encode(),
        "bad time": json.dumps({"id": 1001, "ts": "yesterday-ish", "code": "c"}).encode(),
        "too large": json.dumps({"id": 1002, "amount": 123456.5, "code": "c"}).encode(),
        "check": json.dumps({"id": 1003, "code": "forbidden"}).encode(),
        "duplicate": json.dumps({"id": 5, "code": "again"}).encode(),
        "not a number": json.dumps({"id": "seven", "code": "c"}).encode(),
    }
    batch = [json.dumps(r).encode() for r in good[:100]] + list(bad.values()) + [json.dumps(r).encode() for r in good[100:]]
    d.client().put_record_batch(DeliveryStreamName="to-pg", Records=[{"Data": x} for x in batch])
    wait_for(lambda: len(error_records(d)) >= len(bad), timeout=30, what="the error records")
    assert pg.value("SELECT count(*) FROM strict") == "200"
    assert pg.value("SELECT count(*) FROM strict WHERE id >= 1000") == "0"
    errors = {e["rawData"]: e for e in error_records(d)}
    assert len(errors) == len(bad)
    import base64
    by_case = {case: errors[base64.b64encode(raw).decode()] for case, raw in bad.items()}
    assert by_case["not json"]["errorCode"] == "Postgres.InvalidRecord"
    assert "no value for column \"code\"" in by_case["missing code"]["errorMessage"]
    assert by_case["bad time"]["errorCode"] == "Postgres.DataError"
    assert "invalid input syntax for type timestamp with time zone" in by_case["bad time"]["errorMessage"]
    assert "numeric field overflow" in by_case["too large"]["errorMessage"]
    assert "violates check constraint" in by_case["check"]["errorMessage"]
    assert "duplicate key value violates unique constraint" in by_case["duplicate"]["errorMessage"]
    assert "invalid input syntax for type integer" in by_case["not a number"]["errorMessage"]
    assert all(e["attemptsMade"] == 1 for e in errors.values())
    assert d.metric("sluice_delivery_to_postgres_records_total", "to-pg") == 200


def test_the_database_stopped_for_30_s_under_load_loses_and_repeats_nothing(sluice_factory, pg):
    pg.sql("CREATE TABLE outage (id bigint NOT NULL, body text)")
    d = pipeline(sluice_factory, pg, "outage", "columns: [id, body]").start(env=env())
    producer = start_producer(d)
    wait_for(lambda: int(pg.value("SELECT count(*) FROM outage")) > 1000, timeout=30, what="rows before the outage")
    pg.stop()
    time.sleep(30)
    pg.start()
    time.sleep(3)
    loaded, acked = stop_and_count(pg, "outage", producer, timeout=90)
    assert loaded == acked  # 0 lost (and nothing that was not acknowledged)
    assert not error_records(d)
    assert "Postgres.ConnectionFailed" in d.log() and PASSWORD not in d.log()


def test_kill9_under_load_loses_and_repeats_nothing(sluice_factory, pg):
    pg.sql("CREATE TABLE crash (id bigint NOT NULL, body text)")
    d = pipeline(sluice_factory, pg, "crash", "columns: [id, body]").start(env=env())
    producer = start_producer(d)
    wait_for(lambda: int(pg.value("SELECT count(*) FROM crash")) > 2000, timeout=30, what="rows before the crash")
    d.kill9()
    time.sleep(0.5)
    d.start(env=env())
    time.sleep(2)
    loaded, acked = stop_and_count(pg, "crash", producer, timeout=60)
    assert loaded >= acked  # 0 lost (a put cut by the kill may have been written, unacknowledged)
    assert int(pg.value(f"SELECT count(*) FROM crash WHERE id >= {producer.sent}")) == 0


def test_a_batch_committed_just_before_a_crash_is_not_loaded_again(sluice_factory, pg):
    """The exactly-once ledger, made deterministic: a deferred trigger holds the COMMIT for 3 s, sluice
    is killed with -9 meanwhile, and the database completes the commit. sluice never learnt of it, so
    after the restart it replays the batch; the batch id, committed with the rows, says it is loaded."""
    pg.sql("CREATE TABLE replayed (id bigint NOT NULL, body text)")
    pg.sql("CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
           "IF NEW.id = 0 THEN PERFORM pg_sleep(3); END IF; RETURN NULL; END $$")
    pg.sql("CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON replayed DEFERRABLE INITIALLY DEFERRED "
           "FOR EACH ROW EXECUTE FUNCTION slow_commit()")
    d = pipeline(sluice_factory, pg, "replayed", "columns: [id, body]").start(env=env())
    d.client().put_record_batch(DeliveryStreamName="to-pg", Records=[
        {"Data": json.dumps({"id": i, "body": "once"}).encode()} for i in range(10)])
    wait_for(lambda: pg.value("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") == "1",
             timeout=30, what="the commit in progress")
    d.kill9()
    wait_for(lambda: pg.value("SELECT count(*) FROM replayed") == "10", timeout=30, what="the commit to complete")
    d.start(env=env())
    wait_for(lambda: "batch already loaded; skipped" in d.log(), timeout=30, what="the replayed batch")
    time.sleep(4)  # a second load would hold its own commit for 3 s
    assert pg.value("SELECT count(*) FROM replayed") == "10"


def test_config_mistakes_are_named_and_the_password_is_never_printed(tmp_path):
    import subprocess
    from conftest import BINARY
    secret = "s3cr3t-Pa55word"
    (tmp_path / "bad.yaml").write_text(f"""
pipelines:
  - name: a
    destination:
      postgres:
        url: mysql://loader:{secret}@db:3306/x
        table: events
        columns: [a]
        jsonb_column: doc
        s3_backup_mode: Sometimes
        backup: {{ local: {{ path: ./b }} }}
  - name: b
    destination:
      postgres:
        url: "postgres://loader:{secret}@db:5432/x?sslmode=bogus"
        table: events
        backup: {{ local: {{ path: ./b }} }}
""")
    r = subprocess.run([str(BINARY), "validate", "--config", str(tmp_path / "bad.yaml")], capture_output=True, text=True)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "must be a postgres:// URL" in out
    assert "give `columns` or `jsonb_column`, not both" in out
    assert "s3_backup_mode" in out and "FailedDataOnly" in out
    assert "is not a PostgreSQL URL" in out and "needs `columns: [..]` or `jsonb_column: <column>`" in out
    assert secret not in out


def test_a_table_locked_longer_than_the_lock_timeout_is_retried_until_it_is_free(sluice_factory, pg):
    """An ACCESS EXCLUSIVE lock held for 14 s: COPY gives up after lock_timeout (10 s), the attempt is
    retried, and the rows load once the lock is released — once each."""
    import os
    import subprocess
    pg.sql("CREATE TABLE locked (id bigint NOT NULL)")
    holder = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", "postgres", "-c",
                               "BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(14); COMMIT;"],
                              env={**os.environ, "PGPASSWORD": PASSWORD}, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: pg.value("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                                  "WHERE c.relname = 'locked' AND l.mode = 'AccessExclusiveLock'") == "1",
                 timeout=10, what="the lock")
        d = pipeline(sluice_factory, pg, "locked", "columns: [id]").start(env=env())
        d.client().put_record_batch(DeliveryStreamName="to-pg", Records=[
            {"Data": json.dumps({"id": i}).encode()} for i in range(100)])
        wait_for(lambda: "lock timeout" in d.log(), timeout=30, what="the lock timeout")
        assert holder.wait(30) == 0
        wait_for(lambda: pg.value("SELECT count(*) FROM locked") == "100", timeout=60, what="the rows after the lock")
        time.sleep(1)
        assert pg.value("SELECT count(DISTINCT id) FROM locked") == "100" and not error_records(d)
    finally:
        holder.kill()
