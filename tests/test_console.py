"""The built-in web console (`/console`), loaded in a real headless browser (Debian's chromium) against a
running daemon: what it shows is read from the DOM after its scripts ran, and a screenshot is kept as a
test artifact (target/test-artifacts/console.png). Its login (HTTP Basic with api.auth's keys) and its
tap are checked over plain HTTP."""

import base64
import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, wait_for

ARTIFACTS = ROOT / "target" / "test-artifacts"

CONFIG = """
storage: { dir: ./var }
pipelines:
  - name: orders
    buffering: { size_mb: 1, interval_seconds: 1 }
    processors: [ { jq: { query: "{id: .id, total: .total}" } } ]
    destination: { local: { path: ./out, error_output_prefix: "errors/!{firehose:error-output-type}/" } }
  - name: webhooks
    destination:
      http_endpoint:
        url: http://127.0.0.1:9/nowhere
        retry_duration_seconds: 60
        backup: { local: { path: ./backup } }
"""


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "scripts/test.sh installs Debian's chromium for the console tests"
    return path


def browse(url, *args, budget_ms=6000):
    """Runs headless chromium on `url` with `args` (e.g. --dump-dom); returns its stdout."""
    out = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--no-first-run", "--hide-scrollbars", "--window-size=1400,1100",
                          f"--virtual-time-budget={budget_ms}", *args, url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def load(d, stop):
    fh = d.client()
    n = 0
    while not stop.is_set():
        records = [{"Data": json.dumps({"id": n + i, "total": i}).encode()} for i in range(50)]
        records.append({"Data": b"this is not json"})
        fh.put_record_batch(DeliveryStreamName="orders", Records=records)
        n += 50
        time.sleep(0.2)


@pytest.fixture
def loaded(sluice_factory):
    d = sluice_factory(CONFIG).start()
    stop = threading.Event()
    loader = threading.Thread(target=load, args=(d, stop), daemon=True)
    loader.start()
    yield d
    stop.set()
    loader.join(10)


def state(d):
    with urllib.request.urlopen(d.endpoint + "/console/api/state", timeout=5) as r:
        return json.loads(r.read())


def test_the_console_shows_streams_status_charts_and_errors_in_a_real_browser(loaded):
    d = loaded
    # Two samples (taken every 5 s) make a rate; wait until the daemon has them.
    wait_for(lambda: any(s["name"] == "orders" and len(s["history"]) >= 3 and s["history"][-1]["in_per_s"] > 0
                         for s in state(d)["streams"]), timeout=40, what="three samples of the orders stream")
    dom = browse(d.endpoint + "/console", "--dump-dom")
    assert '<article class="stream" data-stream="orders">' in dom, dom[:3000]
    assert '<article class="stream" data-stream="webhooks">' in dom
    assert "direct_put → local" in dom and "direct_put → http_endpoint, local (backup)" in dom
    assert '<span class="badge ready">ready</span>' in dom
    assert '<span class="badge not-ready">not ready</span>' in dom and "the destination check failed" in dom
    assert "JQProcessing.Failed" in dom and "processing-failed" in dom and "this is not json" in dom
    assert dom.count("<canvas") >= 2, "a uPlot chart per stream"
    assert "cannot reach the daemon" not in dom and "streams, 1 not ready" in dom
    orders = dom[dom.index('data-stream="orders"'):dom.index('data-stream="webhooks"')]
    figure = orders[orders.index('<dd class="in">') + len('<dd class="in">'):].split("<")[0]
    assert figure not in ("", "–", "0") and float(figure.rstrip("k")) > 0, figure
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "console.png"
    shot.unlink(missing_ok=True)
    browse(d.endpoint + "/console", f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_console_tap_streams_live_records(loaded):
    d = loaded
    with urllib.request.urlopen(d.endpoint + "/console/api/tap/orders?stage=processed&limit=3", timeout=20) as r:
        lines = [json.loads(line) for line in r.read().decode().splitlines()]
    assert len(lines) == 3 and all(line["stage"] == "processed" and "total" in line["data"] for line in lines)


def get(url, user=None, secret=None):
    request = urllib.request.Request(url)
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def test_with_api_auth_the_console_asks_for_a_key_and_shows_only_allowed_streams(sluice_factory):
    d = sluice_factory("""
        api:
          auth:
            access_keys:
              - { id: AKIDADMIN, secret: "admin-secret-1" }
              - { id: AKIDCLICKS, secret: "clicks-secret-1", streams: ["clicks*"], actions: ["Console", "DescribeDeliveryStream"] }
              - { id: AKIDPUTONLY, secret: "put-secret-1", actions: ["PutRecord*"] }
        storage: { dir: ./var }
        pipelines:
          - { name: clicks, destination: { local: { path: ./c } } }
          - { name: orders, destination: { local: { path: ./o } } }
        """).start()
    status, headers, _ = get(d.endpoint + "/console")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
    assert get(d.endpoint + "/console/api/state", "AKIDADMIN", "wrong-secret")[0] == 401
    assert get(d.endpoint + "/console/api/state", "AKIDPUTONLY", "put-secret-1")[0] == 403
    status, _, page = get(d.endpoint + "/console", "AKIDADMIN", "admin-secret-1")
    assert status == 200 and "uPlot.iife.min.js" in page
    status, _, body = get(d.endpoint + "/console/api/state", "AKIDADMIN", "admin-secret-1")
    assert status == 200 and [s["name"] for s in json.loads(body)["streams"]] == ["clicks", "orders"]
    status, _, body = get(d.endpoint + "/console/api/state", "AKIDCLICKS", "clicks-secret-1")
    assert status == 200 and [s["name"] for s in json.loads(body)["streams"]] == ["clicks"]
    assert get(d.endpoint + "/console/api/tap/orders?limit=1", "AKIDCLICKS", "clicks-secret-1")[0] == 403
    assert "admin-secret-1" not in d.log() and "clicks-secret-1" not in d.log()
