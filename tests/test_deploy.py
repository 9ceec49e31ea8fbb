"""deploy/: the files a user installs. The systemd unit is `Type=notify`, so sluice must tell systemd when
it is ready and when it stops (checked here over a real NOTIFY_SOCKET); the Kubernetes sidecar's config must
validate; the unit and the manifests must say what they claim."""

import configparser
import os
import signal
import socket
import subprocess

import yaml

from conftest import BINARY, ROOT, free_port, http_get, wait_for

DEPLOY = ROOT / "deploy"


def test_sluice_notifies_systemd_when_ready_and_when_stopping(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    (tmp_path / "c.yaml").write_text("storage: { dir: ./var }\n")
    port = free_port()
    proc = subprocess.Popen([str(BINARY), "run", "--config", "c.yaml", "--listen", f"127.0.0.1:{port}"], cwd=tmp_path,
                            env={**os.environ, "NOTIFY_SOCKET": path}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        message = sock.recv(4096).decode()
        assert "READY=1" in message and f"127.0.0.1:{port}" in message
        assert http_get(f"http://127.0.0.1:{port}/health")[0] == 200  # ready means accepting
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in sock.recv(4096).decode()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_the_systemd_unit_is_type_notify_with_a_watchdog():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(DEPLOY / "systemd" / "sluice.service")
    service = unit["Service"]
    assert service["Type"] == "notify" and service["KillSignal"] == "SIGTERM"
    assert int(service["WatchdogSec"]) > 0 and service["ExecStart"].startswith("/usr/local/bin/sluice run --config ")


def test_the_kubernetes_sidecar_config_validates(tmp_path):
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "sidecar.yaml").read_text()))
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    (tmp_path / "sluice.yaml").write_text(config_map["data"]["sluice.yaml"])
    out = subprocess.run([str(BINARY), "validate", str(tmp_path / "sluice.yaml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (sidecar,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "sluice"]
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert any(d["kind"] == "NetworkPolicy" for d in docs)
