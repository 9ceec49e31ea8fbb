"""deploy/: the files a user installs. The systemd unit is `Type=notify`, so sluice must tell systemd when
it is ready and when it stops (checked here over a real NOTIFY_SOCKET); `systemd-analyze verify` checks the
unit; every Kubernetes manifest passes kubernetes-validate's strict schema check (the API's OpenAPI
schemas, offline) and every sluice config in them passes `sluice validate`.

Not run here: building the container image (no Docker daemon) and applying the manifests (no cluster)."""

import configparser
import os
import shutil
import signal
import socket
import subprocess

import yaml

from conftest import BINARY, ROOT, VENV_BIN as VENV, free_port, http_get, wait_for

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
    assert int(service["WatchdogSec"]) > 0 and service["ExecStart"].startswith("/usr/bin/sluice run --config ")


def test_systemd_analyze_verifies_the_unit(tmp_path):
    assert shutil.which("systemd-analyze"), "scripts/test.sh installs Debian's systemd package for this"
    # verify also checks that ExecStart's program exists: point it at the binary under test.
    unit = (DEPLOY / "systemd" / "sluice.service").read_text().replace("/usr/bin/sluice", str(BINARY))
    (tmp_path / "sluice.service").write_text(unit)
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "sluice.service")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read_string(unit)
    s = service["Service"]
    assert s["DynamicUser"] == "yes" and s["StateDirectory"] == "sluice" and s["ProtectSystem"] == "strict"
    assert s["NoNewPrivileges"] == "true" and s["ExecReload"] == "/bin/kill -HUP $MAINPID"  # hot reload


def sluice_validates(tmp_path, text, env=None):
    path = tmp_path / "sluice.yaml"
    path.write_text(text)
    out = subprocess.run([str(BINARY), "validate", str(path)], capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_example_host_config_validates(tmp_path):
    sluice_validates(tmp_path, (DEPLOY / "systemd" / "sluice.yaml").read_text())


def test_every_kubernetes_manifest_passes_the_strict_schema_check_and_its_config_validates(tmp_path):
    manifests = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    assert {m.name for m in manifests} >= {"sidecar.yaml", "daemonset.yaml", "gateway.yaml"}
    out = subprocess.run([str(VENV / "kubernetes-validate"), "--strict", "--quiet", *map(str, manifests)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    keys = {"SLUICE_ACCESS_KEY_ID": "AKIDEXAMPLE", "SLUICE_SECRET_ACCESS_KEY": "example-secret"}
    for manifest in manifests:
        for doc in yaml.safe_load_all(manifest.read_text()):
            if doc["kind"] == "ConfigMap":
                sluice_validates(tmp_path, doc["data"]["sluice.yaml"], keys)


def test_the_manifests_say_what_they_claim():
    docs = {m.stem: list(yaml.safe_load_all(m.read_text())) for m in (DEPLOY / "kubernetes").glob("*.yaml")}
    kind = lambda name, k: next(d for d in docs[name] if d["kind"] == k)  # noqa: E731
    sidecar = kind("sidecar", "Deployment")["spec"]["template"]["spec"]
    mounts = {c["name"]: {m["name"] for m in c.get("volumeMounts", [])} for c in sidecar["containers"]}
    assert "logs" in mounts["app"] and "logs" in mounts["sluice"]  # the shared log volume
    (sluice,) = [c for c in sidecar["containers"] if c["name"] == "sluice"]
    assert sluice["readinessProbe"]["httpGet"]["path"] == "/ready"
    node = kind("daemonset", "DaemonSet")["spec"]["template"]["spec"]
    assert any(v.get("hostPath", {}).get("path") == "/var/log/pods" for v in node["volumes"])
    gateway = kind("gateway", "StatefulSet")["spec"]
    assert gateway["volumeClaimTemplates"][0]["metadata"]["name"] == "wal"
    assert "preStop" in gateway["template"]["spec"]["containers"][0]["lifecycle"]
    assert kind("gateway", "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert kind("gateway", "Service")["spec"]["ports"][0]["port"] == 4573


def test_the_container_health_check_asks_the_daemon_itself(tmp_path):
    dockerfile = (DEPLOY / "container" / "Dockerfile").read_text()
    assert 'HEALTHCHECK' in dockerfile and '"/usr/local/bin/sluice", "health"' in dockerfile
    assert "USER sluice" in dockerfile and 'VOLUME ["/var/lib/sluice"]' in dockerfile
    port = free_port()
    url = f"http://127.0.0.1:{port}/health"
    assert subprocess.run([str(BINARY), "health", "--url", url], capture_output=True).returncode != 0
    (tmp_path / "c.yaml").write_text("storage: { dir: ./var }\n")
    proc = subprocess.Popen([str(BINARY), "run", "--config", "c.yaml", "--listen", f"127.0.0.1:{port}"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: subprocess.run([str(BINARY), "health", "--url", url], capture_output=True).returncode == 0,
                 20, what="sluice health to pass")
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_tools_find_the_daemon_by_endpoint_environment_or_its_config(tmp_path):
    port = free_port()
    (tmp_path / "c.yaml").write_text(f"api: {{ listen: 0.0.0.0:{port} }}\nstorage: {{ dir: ./var }}\n")
    proc = subprocess.Popen([str(BINARY), "run", "--config", "c.yaml", "--insecure-no-auth"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def health(*args, env=None):
            return subprocess.run([str(BINARY), "health", *args], capture_output=True, text=True,
                                  env={**os.environ, **(env or {})})
        wait_for(lambda: health("--endpoint", f"http://127.0.0.1:{port}").returncode == 0, 20, what="the daemon")
        # $SLUICE_ENDPOINT, and the daemon's own config (0.0.0.0 is reached on loopback) from elsewhere.
        assert health(env={"SLUICE_ENDPOINT": f"http://127.0.0.1:{port}"}).returncode == 0
        assert health("--config", str(tmp_path / "c.yaml")).returncode == 0
        wrong = health(env={"SLUICE_ENDPOINT": "http://127.0.0.1:9"})
        assert wrong.returncode != 0 and "cannot reach http://127.0.0.1:9/health" in wrong.stderr
        # `--log-format` is `run`'s alone; the other commands' help is about them.
        assert "--log-format" not in subprocess.run([str(BINARY), "health", "--help"], capture_output=True,
                                                    text=True).stdout
    finally:
        proc.terminate()
        proc.wait(30)
