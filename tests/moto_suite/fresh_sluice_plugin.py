"""A pytest plugin for running moto's own Firehose tests against sluice (tests/test_moto_suite.py).

moto's tests in server mode expect a fresh server per test (they call `/moto-api/reset`, which
sluice does not have). This plugin gives each test a fresh sluice on the port the tests were
pointed at: state directory wiped, daemon started before and stopped after.
"""

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

BINARY = os.environ["SLUICE_BIN"]
PORT = os.environ["SLUICE_MOTO_PORT"]
WORKDIR = Path(os.environ["SLUICE_MOTO_WORKDIR"])
CONFIG = """
api:
  listen: 127.0.0.1:{port}
  account_id: "123456789012"
storage:
  dir: ./var
control_plane:
  max_streams: 50
  buckets:
    "*": {{ local: {{ path: "./data/{{bucket}}" }} }}
"""


@pytest.fixture(autouse=True)
def fresh_sluice():
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    (WORKDIR / "sluice.yaml").write_text(CONFIG.format(port=PORT))
    log = open(WORKDIR / "sluice.log", "ab")
    proc = subprocess.Popen([BINARY, "run", "--config", "sluice.yaml"], cwd=WORKDIR, stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    yield
    proc.kill()
    proc.wait()
