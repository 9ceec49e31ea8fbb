"""Shared harness for sluice's integration tests.

Everything here is real: the sluice binary as built by `cargo build`, boto3 and the AWS CLI as
clients, and moto_server (from PyPI) as the S3-compatible store. Each test gets its own daemon on
a free loopback port with its own state directory; servers are stopped by PID.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("SLUICE_BIN", ROOT / "target" / "debug" / "sluice"))
VENV_BIN = Path(sys.executable).parent

# moto and boto3 need credentials to sign with; nothing checks them.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


class Sluice:
    """One sluice daemon process."""

    def __init__(self, workdir: Path, config: str, nofile=None):
        assert BINARY.exists(), f"{BINARY} is missing: run `cargo build` (scripts/test.sh does)"
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path = workdir / "sluice.yaml"
        self.config_path.write_text(textwrap.dedent(config))
        self.log_path = workdir / "sluice.log"
        self.proc = None
        self.nofile = nofile  # soft and hard RLIMIT_NOFILE for the daemon, like `ulimit -n`

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=20.0, args=(), env=None):
        """Starts the daemon; `args` are added to `sluice run`, `env` replaces the environment."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(BINARY), "run", "--config", str(self.config_path), "--listen", f"127.0.0.1:{self.port}",
             "--shutdown-timeout-seconds", "20", *args],
            cwd=self.workdir, stdout=log, stderr=log,
            env={**(os.environ if env is None else env), "RUST_LOG": os.environ.get("RUST_LOG", "info")},
            preexec_fn=self._limits,
        )

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"sluice exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return http_get(self.endpoint + "/health")[0] == 200
            except OSError:
                return False

        wait_for(up, timeout, what="sluice /health")
        return self

    def _limits(self):
        if self.nofile:
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def ready(self):
        """(status, body) of /ready."""
        try:
            with urllib.request.urlopen(self.endpoint + "/ready", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"sluice did not exit within {timeout}s of {sig!r}:\n{self.log()[-4000:]}")
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def client(self, **config):
        return boto3.client(
            "firehose", endpoint_url=self.endpoint, region_name="us-east-1",
            config=Config(**{"retries": {"max_attempts": 1, "mode": "standard"}, **config}),
        )

    def raw(self, target, body, headers=None):
        """A hand-made API request, for inputs the SDKs refuse to send."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.endpoint + "/", data=data, method="POST", headers={
            "Content-Type": "application/x-amz-json-1.1",
            **({"X-Amz-Target": f"Firehose_20150804.{target}"} if target else {}),
            **(headers or {}),
        })
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, json.loads(e.read() or b"{}")

    def metrics(self):
        _, text = http_get(self.endpoint + "/metrics")
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def metric(self, name, stream):
        return self.metrics().get(f'{name}{{delivery_stream_name="{stream}"}}', 0.0)


@pytest.fixture
def sluice_factory(tmp_path):
    started = []

    def make(config, name="daemon", nofile=None):
        s = Sluice(tmp_path / name, config, nofile=nofile)
        started.append(s)
        return s

    yield make
    for s in started:
        if s.proc and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


class MotoServer:
    """moto_server, the S3-compatible store the tests deliver to."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.proc = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                return http_get(self.endpoint + "/moto-api/")[0] == 200
            except OSError:
                return False

        wait_for(up, 30, what="moto_server")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def s3(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def objects(self, bucket, prefix=""):
        """{key: bytes} for every object under prefix."""
        s3 = self.s3()
        out = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        return out


@pytest.fixture(scope="session")
def moto():
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto, request):
    name = f"b-{uuid.uuid4().hex[:12]}-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40]
    name = name.rstrip("-")
    moto.s3().create_bucket(Bucket=name)
    return name


def line_count(objects):
    return sum(len(body.splitlines()) for body in objects.values())


def wait_for_lines(get_objects, n, what, timeout=20.0):
    """Waits until the objects returned by get_objects() hold n lines in all, and returns them."""
    return wait_for(lambda: (lambda o: o if line_count(o) == n else None)(get_objects()), timeout=timeout, what=what)


def local_objects(root: Path):
    """{relative key: bytes} for every file under a local destination."""
    # object_store stages a local upload as `<key>#<n>` and renames it when complete: skip those.
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "#" not in p.name}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class IdProducer:
    """Puts records `record(n)` for n = first, first + 1, ... in batches of 100 until stopped, and remembers
    which ids were acknowledged; `sent` is the next id it would send."""

    def __init__(self, d, stream, record, first=0):
        self.client, self.stream, self.record = d.client(), stream, record
        self.acked = set()
        self.sent = first
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping.is_set():
            ids = list(range(self.sent, self.sent + 100))
            self.sent += 100
            try:
                out = self.client.put_record_batch(DeliveryStreamName=self.stream, Records=[
                    {"Data": json.dumps(self.record(i)).encode()} for i in ids])
                self.acked.update(i for i, r in zip(ids, out["RequestResponses"]) if "RecordId" in r)
            except Exception:  # noqa: BLE001 - the daemon is being killed or restarted: not acknowledged
                time.sleep(0.05)
            time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        self.thread.join(10)
