"""Hot reload with the real binary, under load: SIGHUP and --watch-config add, remove and change
pipelines, refuse an invalid config whole, and pick up a changed WASM module; every acknowledged
record is delivered exactly once."""

import json
import shutil
import signal
import threading
import time

from botocore.exceptions import ClientError

from conftest import ROOT, local_objects, wait_for

PLUGINS = ROOT / "transforms" / "target" / "wasm32-wasip1" / "release"


def config(pipelines):
    """pipelines: (name, extra pipeline YAML, extra local destination settings)."""
    text = "storage: { dir: ./var }\npipelines:\n"
    for name, extra, *dest in pipelines:
        text += f"""  - name: {name}
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
{extra}    destination: {{ local: {{ path: ./out/{name}, append_delimiter: true{''.join(dest)} }} }}
"""
    return text


class Loader(threading.Thread):
    """Puts numbered records to the given streams until stopped, retrying what is refused (503 while a
    pipeline is swapped); remembers what was acknowledged."""

    def __init__(self, client, streams):
        super().__init__(daemon=True)
        self.client, self.streams, self.stop = client, list(streams), threading.Event()
        self.acked = {s: [] for s in streams}
        self.n = 0

    def add(self, stream):
        self.acked.setdefault(stream, [])
        self.streams.append(stream)

    def run(self):
        while not self.stop.is_set():
            for stream in list(self.streams):
                batch = [json.dumps({"s": stream, "n": self.n + i}) for i in range(50)]
                self.n += 50
                pending = batch
                while pending and not self.stop.is_set():
                    try:
                        out = self.client.put_record_batch(DeliveryStreamName=stream,
                                                           Records=[{"Data": r.encode()} for r in pending])
                    except ClientError as e:
                        code = e.response["Error"]["Code"]
                        if code == "ResourceNotFoundException" and stream not in self.streams:
                            break  # removed by the reload while this batch was retried: none of it was acknowledged
                        assert code == "ServiceUnavailableException", e
                        time.sleep(0.05)
                        continue
                    failed = [r for r, res in zip(pending, out["RequestResponses"]) if "ErrorCode" in res]
                    self.acked[stream] += [r for r, res in zip(pending, out["RequestResponses"]) if "ErrorCode" not in res]
                    pending = failed
            time.sleep(0.01)


def delivered(d, stream):
    return [line for body in local_objects(d.workdir / "out" / stream).values() for line in body.decode().splitlines()]


def test_reload_under_load_adds_removes_and_changes_pipelines_without_loss_or_duplicates(sluice_factory):
    d = sluice_factory(config([("kept", ""), ("changed", ""), ("removed", "")]))
    d.start(args=["--watch-config"])
    loader = Loader(d.client(), ["kept", "changed", "removed"])
    loader.start()
    time.sleep(1.5)
    # 1. SIGHUP: `changed` gets a prefix, `removed` goes, `added` comes.
    d.config_path.write_text(config([("kept", ""), ("changed", "", ', prefix: "v2/"'), ("added", "")]))
    loader.streams.remove("removed")
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in d.log(), timeout=20, what="the first reload")
    loader.add("added")
    time.sleep(1.5)
    # 2. An invalid config is refused whole: the running pipelines keep going.
    good = d.config_path.read_text()
    d.config_path.write_text(good.replace("buffering:", "bufering:", 1))
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.metrics().get("sluice_config_reload_failed") == 1.0, timeout=20, what="the refusal")
    assert "config reload refused" in d.log() and "bufering" in d.log()
    # Each problem is its own JSON log line with its place as fields (the log is JSON off a terminal).
    problems = [json.loads(line)["fields"] for line in d.log().splitlines() if '"config problem"' in line]
    assert problems and problems[0]["field"].endswith("bufering") and problems[0]["line"] > 0, problems
    assert "unknown field `bufering`" in problems[0]["problem"] and problems[0]["file"].endswith("sluice.yaml")
    time.sleep(1)
    # 3. --watch-config: fixing the file is enough; `kept` changes its buffering too.
    d.config_path.write_text(good.replace("size_mb: 1, interval_seconds: 1", "size_mb: 2, interval_seconds: 1", 1))
    wait_for(lambda: d.metrics().get("sluice_config_reload_failed") == 0.0, timeout=20, what="the watched reload")
    time.sleep(1.5)
    loader.stop.set()
    loader.join(30)
    for stream, acked in loader.acked.items():
        wait_for(lambda: len(delivered(d, stream)) >= len(acked), timeout=30, what=f"{stream}'s records")
    time.sleep(1.5)
    for stream, acked in loader.acked.items():
        got = delivered(d, stream)
        assert acked and sorted(got) == sorted(acked), f"{stream}: {len(got)} delivered, {len(acked)} acknowledged"
    # The changed pipeline wrote under its new prefix after the reload, and under the default before.
    keys = local_objects(d.workdir / "out" / "changed").keys()
    assert any(k.startswith("v2/") for k in keys) and any(not k.startswith("v2/") for k in keys)
    assert d.metrics()['sluice_config_reloads_total{result="applied"}'] == 2
    assert d.metrics()['sluice_config_reloads_total{result="refused"}'] == 1
    assert d.stop() == 0


def test_a_changed_wasm_module_is_reloaded(sluice_factory):
    assert (PLUGINS / "redact.wasm").exists(), "scripts/test.sh builds the example plugins"
    d = sluice_factory(config([("users", """    processors:
      - wasm: { module: ./module.wasm, config: { fields: [password] } }
""")]))
    d.workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(PLUGINS / "passthrough.wasm", d.workdir / "module.wasm")
    d.start(args=["--watch-config"])
    fh = d.client()
    fh.put_record(DeliveryStreamName="users", Record={"Data": b'{"user":"a","password":"p"}'})
    wait_for(lambda: delivered(d, "users"), timeout=20, what="the first record")
    shutil.copy(PLUGINS / "redact.wasm", d.workdir / "module.wasm")
    wait_for(lambda: "config reloaded" in d.log(), timeout=20, what="the module change to be picked up")
    while True:
        try:
            fh.put_record(DeliveryStreamName="users", Record={"Data": b'{"user":"b","password":"p"}'})
            break
        except ClientError:
            time.sleep(0.05)
    wait_for(lambda: len(delivered(d, "users")) >= 2, timeout=20, what="the second record")
    first, second = sorted((json.loads(line) for line in delivered(d, "users")), key=lambda r: r["user"])
    assert first["password"] == "p" and second["password"] == "[REDACTED]"
