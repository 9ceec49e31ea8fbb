"""A new user's first hour (issue #10): startup checks, honest readiness, JSON logs, a config directory."""

import json
import os
import subprocess

from conftest import BINARY, MotoServer, Sluice, free_port, wait_for, local_objects, wait_for_lines


def no_aws_env(home):
    """The environment of a machine with no AWS credentials anywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(home)
    # Keep the instance metadata step fast and offline: nothing listens there.
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    return env


S3_CONFIG = """
    pipelines:
      - name: lake
        buffering: {{ size_mb: 1, interval_seconds: 1 }}
        delivery: {{ retry_initial_ms: 100, retry_max_ms: 500 }}
        destination: {{ s3: {{ bucket: {bucket}, endpoint: "{endpoint}", force_path_style: true }} }}
    """


def test_require_healthy_refuses_to_start_without_credentials_and_names_the_chain(tmp_path, moto, bucket):
    d = Sluice(tmp_path / "d", S3_CONFIG.format(bucket=bucket, endpoint=moto.endpoint))
    r = subprocess.run([str(BINARY), "run", "--config", str(d.config_path), "--listen", f"127.0.0.1:{d.port}",
                        "--require-healthy"], capture_output=True, text=True, cwd=d.workdir,
                       env=no_aws_env(tmp_path), timeout=60)
    assert r.returncode != 0, r.stderr
    assert "--require-healthy: destination checks failed" in r.stderr, r.stderr
    assert f"lake: cannot list bucket `{bucket}`: no AWS credentials were found" in r.stderr, r.stderr
    for place in ["AWS_ACCESS_KEY_ID", "~/.aws/credentials", "AWS_WEB_IDENTITY_TOKEN_FILE",
                  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "169.254.169.254"]:
        assert place in r.stderr, (place, r.stderr)


def test_a_failed_check_without_require_healthy_is_a_warning_and_not_ready(tmp_path, moto, bucket):
    d = Sluice(tmp_path / "d", S3_CONFIG.format(bucket=bucket, endpoint=moto.endpoint))
    d.start(env=no_aws_env(tmp_path))
    try:
        status, body = d.ready()
        assert status == 503, body
        lake = body["pipelines"]["lake"]
        assert lake["destination_check_passed"] is False
        assert "the destination check failed: cannot list bucket" in lake["reason"], lake
        assert "destination check failed" in d.log()
        r = d.client().put_record(DeliveryStreamName="lake", Record={"Data": b"kept in the WAL\n"})
        assert r["RecordId"], "records are still accepted and kept"
    finally:
        d.stop()


def test_ready_goes_503_while_the_store_is_down_and_200_after(tmp_path):
    store = MotoServer().start()
    try:
        store.s3().create_bucket(Bucket="lake")
        d = Sluice(tmp_path / "d", S3_CONFIG.format(bucket="lake", endpoint=store.endpoint)).start()
        assert d.ready()[0] == 200
        store.stop()
        c = d.client()
        c.put_record(DeliveryStreamName="lake", Record={"Data": b"during the outage\n"})
        wait_for(lambda: d.ready()[0] == 503, timeout=60, what="/ready 503 while the store is down")
        status, body = d.ready()
        assert "deliveries failed in a row" in body["pipelines"]["lake"]["reason"], body
        assert body["pipelines"]["lake"]["oldest_undelivered_age_seconds"] > 0, body
        store = MotoServer(port=store.port).start()
        store.s3().create_bucket(Bucket="lake")  # moto keeps nothing across restarts
        wait_for(lambda: d.ready()[0] == 200, timeout=60, what="/ready 200 once deliveries succeed")
        assert b"during the outage\n" in b"".join(store.objects("lake").values())
        d.stop()
    finally:
        store.stop()


def test_json_log_lines_parse(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: p
            destination: { local: { path: ./d } }
        """)
    d.start(args=["--log-format", "json"])
    d.client().put_record(DeliveryStreamName="p", Record={"Data": b"x\n"})
    d.stop()
    lines = [line for line in d.log().splitlines() if line.strip()]
    assert lines, "the daemon logged something"
    events = [json.loads(line) for line in lines]
    assert all({"timestamp", "level", "fields"} <= set(e) for e in events), events[:3]
    accepting = [e for e in events if "accepting Firehose API requests" in e["fields"].get("message", "")]
    assert accepting and accepting[0]["level"] == "INFO" and "address" in accepting[0]["fields"], events
    assert "\x1b[" not in d.log()


def test_auto_log_format_is_json_when_not_a_terminal(sluice_factory):
    d = sluice_factory("""
        pipelines:
          - name: p
            destination: { local: { path: ./d } }
        """).start()
    d.stop()
    first = d.log().splitlines()[0]
    assert json.loads(first)["level"] in {"INFO", "WARN"}, first


def test_run_config_dir_loads_every_file(tmp_path):
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "a.yaml").write_text("pipelines:\n  - { name: a, buffering: { interval_seconds: 0 }, destination: { local: { path: ./a } } }\n")
    (conf / "b.yaml").write_text("pipelines:\n  - { name: b, buffering: { interval_seconds: 0 }, destination: { local: { path: ./b } } }\n")
    d = Sluice(tmp_path / "d", "pipelines: []\n")
    os.remove(d.config_path)
    port = d.port
    log = open(d.log_path, "ab")
    d.proc = subprocess.Popen([str(BINARY), "run", "--listen", f"127.0.0.1:{port}"], cwd=d.workdir, stdout=log, stderr=log,
                              env={**os.environ, "SLUICE_CONFIG_DIR": str(conf)})
    def up():
        assert d.proc.poll() is None, d.log()
        try:
            return d.ready()[0] == 200
        except OSError:
            return False

    try:
        wait_for(up, what="the daemon on a config directory")
        c = d.client()
        for name in ["a", "b"]:
            c.put_record(DeliveryStreamName=name, Record={"Data": f"to {name}\n".encode()})
        for name in ["a", "b"]:
            # `path: ./a` is relative to the file that says it (conf.d/a.yaml), not the working directory.
            objects = wait_for_lines(lambda: local_objects(conf / name), 1, what=f"pipeline {name}")
            assert b"".join(objects.values()) == f"to {name}\n".encode()
    finally:
        d.stop()
