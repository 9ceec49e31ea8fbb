"""The log shipper's sources with the real binary: stdin, plain HTTP, and tailed files (rotation by
rename and by copytruncate under a fast writer, kill -9 during rotation, multiline, a 10 MB line, a
deleted file, 2,000 files, restart from the checkpoint)."""

import base64
import gzip
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

from conftest import BINARY, free_port, local_objects, wait_for


def lines_in(root):
    return [line for body in local_objects(root).values() for line in body.decode(errors="replace").splitlines()]


def post(url, body, headers=None):
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


# --- stdin -------------------------------------------------------------------------------------

def test_stdin_lines_are_delivered_and_the_daemon_exits_0_at_end_of_input(tmp_path):
    (tmp_path / "pipe.yaml").write_text("""
storage: { dir: ./var }
pipelines:
  - name: piped
    source: { stdin: {} }
    buffering: { size_mb: 1, interval_seconds: 60 }
    destination: { local: { path: ./out } }
""")
    sent = [json.dumps({"i": i}) for i in range(20000)]
    body = ("\n".join(sent)).encode()  # the last line has no newline: it is taken at end of input
    proc = subprocess.run([str(BINARY), "run", "--config", "pipe.yaml", "--listen", f"127.0.0.1:{free_port()}"],
                          input=body, cwd=tmp_path, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    # The 60 s buffer interval did not hold the exit: end of input flushes everything.
    assert lines_in(tmp_path / "out") == sent


# --- http --------------------------------------------------------------------------------------

HTTP_CONFIG = """
storage: { dir: ./var }
pipelines:
  - name: curl-friendly
    source: { http: { format: ndjson, bearer_token: s3cret, max_line_bytes: 1KiB } }
    buffering: { size_mb: 1, interval_seconds: 1 }
    destination: { local: { path: ./ndjson } }
  - name: raw
    source: { http: { path: /ingest/raw-things, format: raw } }
    buffering: { size_mb: 1, interval_seconds: 1 }
    destination: { local: { path: ./raw, append_delimiter: true } }
"""


def test_http_source_takes_ndjson_gzip_and_raw_bodies_and_refuses_bad_ones_whole(sluice_factory):
    d = sluice_factory(HTTP_CONFIG).start()
    url = d.endpoint + "/ingest/curl-friendly"
    auth = {"Authorization": "Bearer s3cret"}
    assert post(url, b'{"a":1}\n\n{"a":2}\n', auth) == (200, {"accepted": 2})
    gz = gzip.compress(b'{"a":3}\n{"a":4}')
    assert post(url, gz, {**auth, "Content-Encoding": "gzip"}) == (200, {"accepted": 2})
    status, body = post(url, b'{"a":5}\nnot json\n', auth)
    assert status == 400 and "line 2 is not JSON" in body["error"] and "nothing was written" in body["error"]
    status, body = post(url, b'{"a":6}\n"' + b"x" * 2000 + b'"\n', auth)
    assert status == 413 and "line 2 exceeds max_line_bytes" in body["error"]
    assert post(url, b'{"a":7}\n')[0] == 401
    assert post(url, b'{"a":7}\n', {"Authorization": "Bearer wrong"})[0] == 401
    assert post(url, b"\x1f\x8b junk", {**auth, "Content-Encoding": "gzip"})[0] == 400
    assert post(d.endpoint + "/ingest/nothing-here", b"{}")[0] == 404
    assert post(d.endpoint + "/ingest/raw-things", b"one record\nwith two lines") == (200, {"accepted": 1})
    wait_for(lambda: len(lines_in(d.workdir / "ndjson")) >= 4, timeout=15, what="the ndjson records")
    wait_for(lambda: local_objects(d.workdir / "raw"), timeout=15, what="the raw record")
    time.sleep(1.5)
    assert sorted(lines_in(d.workdir / "ndjson")) == [f'{{"a":{i}}}' for i in range(1, 5)]
    assert list(local_objects(d.workdir / "raw").values()) == [b"one record\nwith two lines\n"]
    assert "s3cret" not in d.log()


# --- files -------------------------------------------------------------------------------------

def file_pipeline(sluice_factory, extra="", include='["./logs/*.log"]', name="daemon", raw=True):
    """A file pipeline into ./out; `raw` lines (not wrapped as JSON) unless said otherwise."""
    return sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: tail
    source:
      file:
        include: {include}
        start_at: beginning
        glob_interval_ms: 200
        raw: {"true" if raw else "false"}
{extra}
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    destination: {{ local: {{ path: ./out }} }}
""", name=name)


class Writer(threading.Thread):
    """Writes `total` numbered lines to logs/app.log at about `rate` lines/s, rotating every
    `every` lines: by rename-and-create (`app.log` → `app.log.<n>`) or by copytruncate."""

    def __init__(self, logs, total, rate, every, mode):
        super().__init__(daemon=True)
        self.logs, self.total, self.rate, self.every, self.mode = logs, total, rate, every, mode
        self.rotations = 0

    def run(self):
        path = self.logs / "app.log"
        f = open(path, "a")
        start = time.monotonic()
        for i in range(self.total):
            f.write(f"line-{i:07d} " + "x" * 180 + "\n")
            if i % 1000 == 999:
                f.flush()
                ahead = (i + 1) / self.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            if i % self.every == self.every - 1:
                f.flush()
                self.rotations += 1
                if self.mode == "rename":
                    f.close()
                    os.rename(path, self.logs / f"app.log.{self.rotations}")
                    f = open(path, "a")
                else:
                    # copytruncate, as logrotate does it; lines written between the copy and the
                    # truncation would be lost by any tailer, so this writer pauses like the app's
                    # buffer would and gives the tailer time to read up to here.
                    time.sleep(0.4)
                    shutil.copyfile(path, self.logs / f"app.log.{self.rotations}")
                    f.truncate(0)
                    f.seek(0)
        f.close()


def expected(total):
    return [f"line-{i:07d} " + "x" * 180 for i in range(total)]


def rotate_under_a_writer(sluice_factory, total, every, mode):
    """Tails logs/app.log while a Writer rotates it; returns the daemon, the writer and what was delivered."""
    d = file_pipeline(sluice_factory)
    (d.workdir / "logs").mkdir(parents=True)
    d.start()
    w = Writer(d.workdir / "logs", total=total, rate=50_000, every=every, mode=mode)
    w.start()
    w.join(60)
    wait_for(lambda: len(lines_in(d.workdir / "out")) >= total, timeout=60, what="every line")
    time.sleep(1.5)  # anything read twice would show up by now
    return d, w, lines_in(d.workdir / "out")


def test_rename_rotation_under_a_fast_writer_delivers_every_line_once(sluice_factory):
    d, w, got = rotate_under_a_writer(sluice_factory, 150_000, 40_000, "rename")
    assert len(got) == 150_000 and sorted(got) == expected(150_000)
    assert w.rotations == 3 and "letting it go" in d.log()


def test_copytruncate_rotation_reads_the_file_again_from_its_start(sluice_factory):
    d, _, got = rotate_under_a_writer(sluice_factory, 60_000, 20_000, "copytruncate")
    assert sorted(got) == expected(60_000)
    assert d.metric("sluice_file_truncations_total", "tail") == 3


def test_kill9_during_rotation_loses_nothing(sluice_factory):
    # Rotated files stay matched (app.log*), so a file renamed while sluice is down is found again.
    d = file_pipeline(sluice_factory, include='["./logs/app.log*"]')
    (d.workdir / "logs").mkdir(parents=True)
    d.start()
    w = Writer(d.workdir / "logs", total=150_000, rate=50_000, every=30_000, mode="rename")
    w.start()
    wait_for(lambda: len(lines_in(d.workdir / "out")) >= 20_000, timeout=30, what="some lines delivered")
    d.kill9()
    time.sleep(0.5)
    d.start()
    w.join(60)
    want = set(expected(150_000))
    wait_for(lambda: set(lines_in(d.workdir / "out")) >= want, timeout=60, what="every line after the crash")
    time.sleep(1.5)
    got = lines_in(d.workdir / "out")
    assert set(got) == want
    # Read twice at most: what was read after the last checkpoint (README: "Tailing files").
    assert len(got) - len(want) <= 16 * 5_000 + 2 * 5_000


def test_a_restart_resumes_after_the_checkpoint_without_duplicates(sluice_factory):
    d = file_pipeline(sluice_factory)
    logs = d.workdir / "logs"
    logs.mkdir(parents=True)
    (logs / "a.log").write_text("".join(f"first-{i}\n" for i in range(1000)))
    d.start()
    wait_for(lambda: len(lines_in(d.workdir / "out")) >= 1000, timeout=30, what="the first lines")
    assert d.stop() == 0
    with open(logs / "a.log", "a") as f:
        f.write("".join(f"second-{i}\n" for i in range(1000)))
        f.write("held until complete")  # no newline: not a line yet
    d.start()
    wait_for(lambda: len(lines_in(d.workdir / "out")) >= 2000, timeout=30, what="the lines written while stopped")
    time.sleep(1.5)
    with open(logs / "a.log", "a") as f:
        f.write(" now\n")
    wait_for(lambda: len(lines_in(d.workdir / "out")) >= 2001, timeout=30, what="the completed line")
    time.sleep(1.5)
    got = lines_in(d.workdir / "out")
    assert sorted(got) == sorted([f"first-{i}" for i in range(1000)] + [f"second-{i}" for i in range(1000)]
                                 + ["held until complete now"])


def test_multiline_long_lines_headers_fields_and_a_deleted_file(sluice_factory):
    d = file_pipeline(sluice_factory, raw=False, extra="""        multiline: { start_pattern: '^\\d{4}-\\d{2}-\\d{2}', timeout_ms: 500 }
        max_line_bytes: 1MiB
        truncated_line_terminator: "[cut]"
        skip_header_lines: 1
        fields: { host: web-1 }""")
    logs = d.workdir / "logs"
    logs.mkdir(parents=True)
    trace = "2026-12-02 ERROR boom\n  at a.b(C.java:1)\n  at d.e(F.java:2)\n"
    (logs / "app.log").write_text("#header\n" + trace + "2026-12-02 INFO " + "y" * (10 << 20) + "\n2026-12-02 INFO after\n")
    d.start()
    wait_for(lambda: len(lines_in(d.workdir / "out")) >= 3, timeout=30, what="three records")
    time.sleep(1.5)
    records = [json.loads(line) for line in lines_in(d.workdir / "out")]
    by_start = {r["message"][:21]: r for r in records}
    assert by_start["2026-12-02 ERROR boom"]["message"] == trace.rstrip("\n")
    long = by_start["2026-12-02 INFO yyyyy"]["message"]
    assert len(long) == (1 << 20) + len("[cut]") and long.endswith("[cut]")
    assert by_start["2026-12-02 INFO after"]["host"] == "web-1"
    assert all(r["file"].endswith("app.log") for r in records) and len(records) == 3
    assert d.metric("sluice_lines_truncated_total", "tail") == 1
    # A file deleted right after more lines were written: its open descriptor reads them first.
    with open(logs / "app.log", "a") as f:
        f.write("".join(f"2026-12-02 last {i}\n" for i in range(100)))
    os.remove(logs / "app.log")
    wait_for(lambda: len(lines_in(d.workdir / "out")) >= 103, timeout=30, what="the deleted file's last lines")
    wait_for(lambda: "letting it go" in d.log(), timeout=10, what="the deleted file let go")


def test_two_thousand_files(sluice_factory):
    d = file_pipeline(sluice_factory, include='["./logs/**/*.log"]')
    logs = d.workdir / "logs"
    for i in range(2000):
        sub = logs / f"d{i % 20}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.log").write_text("".join(f"file{i}-line{j}\n" for j in range(10)))
    d.start()
    wait_for(lambda: len(lines_in(d.workdir / "out")) >= 20_000, timeout=90, what="20,000 lines from 2,000 files")
    time.sleep(1.5)
    got = lines_in(d.workdir / "out")
    assert sorted(got) == sorted(f"file{i}-line{j}" for i in range(2000) for j in range(10))
    assert d.metric("sluice_files_tracked", "tail") == 2000


def test_a_file_source_that_cannot_read_its_paths_is_not_ready(sluice_factory):
    d = file_pipeline(sluice_factory, include='["./missing-dir/*.log"]')
    d.start()
    wait_for(lambda: d.ready()[0] == 503, timeout=10, what="/ready to say 503")
    status, body = d.ready()
    assert "missing-dir (No such file or directory" in body["pipelines"]["tail"]["reason"]
    assert body["pipelines"]["tail"]["source_healthy"] is False
    (d.workdir / "missing-dir").mkdir()
    (d.workdir / "missing-dir" / "a.log").write_text("hello\n")
    wait_for(lambda: d.ready()[0] == 200, timeout=10, what="/ready once the directory exists")
    wait_for(lambda: lines_in(d.workdir / "out") == ["hello"], timeout=15, what="the line")


# --- journald ----------------------------------------------------------------------------------
# Real journal files: systemd-journal-remote (Debian's package; scripts/test.sh installs it) writes
# entries given in the journal export format into a journal file, and sluice reads the directory
# through the real journalctl, as it reads a host's journal.

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"


def write_journal(directory, name, first, count):
    assert os.path.exists(JOURNAL_REMOTE), "scripts/test.sh installs Debian's systemd-journal-remote for this"
    now = int(time.time() * 1e6)
    export = "".join(
        f"__REALTIME_TIMESTAMP={now + i}\n__MONOTONIC_TIMESTAMP={i + 1}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n"
        f"MESSAGE=entry {i}\n_SYSTEMD_UNIT={'nginx' if i % 2 == 0 else 'cron'}.service\nPRIORITY=6\n\n"
        for i in range(first, first + count))
    subprocess.run([JOURNAL_REMOTE, f"--output={directory / name}", "-"], input=export.encode(), check=True,
                   capture_output=True)


def journald_pipeline(sluice_factory, journal_dir, journalctl="journalctl"):
    return sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: system
    source: {{ journald: {{ units: [nginx.service], directory: "{journal_dir}", journalctl: {journalctl} }} }}
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    destination: {{ local: {{ path: ./out }} }}
""")


def messages(d):
    return [json.loads(line)["MESSAGE"] for line in lines_in(d.workdir / "out")]


def test_journal_entries_are_delivered_and_a_restart_continues_after_the_cursor(sluice_factory, tmp_path):
    journal = tmp_path / "journal"
    journal.mkdir()
    write_journal(journal, "a.journal", 0, 100)
    d = journald_pipeline(sluice_factory, journal).start()
    wait_for(lambda: len(messages(d)) >= 50, timeout=30, what="the nginx entries")
    entry = json.loads(lines_in(d.workdir / "out")[0])
    assert entry["_SYSTEMD_UNIT"] == "nginx.service" and "__CURSOR" in entry
    write_journal(journal, "b.journal", 100, 100)  # followed while running
    wait_for(lambda: len(messages(d)) >= 100, timeout=30, what="entries written while following")
    assert d.stop() == 0
    write_journal(journal, "c.journal", 200, 100)  # written while sluice is stopped
    d.start()
    wait_for(lambda: len(messages(d)) >= 150, timeout=30, what="entries written while stopped")
    time.sleep(2)
    assert sorted(messages(d)) == sorted(f"entry {i}" for i in range(0, 300, 2))  # each once, nginx only


def test_a_journal_reader_that_cannot_run_is_not_ready(sluice_factory, tmp_path):
    d = journald_pipeline(sluice_factory, tmp_path, journalctl="/nonexistent/journalctl").start()
    wait_for(lambda: d.ready()[0] == 503, timeout=10, what="/ready to say 503")
    assert "cannot run /nonexistent/journalctl" in d.ready()[1]["pipelines"]["system"]["reason"]


def test_cri_lines_from_a_pod_log_are_parsed_and_lines_that_do_not_parse_go_to_the_error_prefix(sluice_factory):
    d = sluice_factory("""
storage: { dir: ./var }
pipelines:
  - name: pods
    source:
      file: { include: ["./logs/*.log"], start_at: beginning, glob_interval_ms: 200, fields: { host: node-1 } }
    processors:
      - parse: { format: cri, field: message }
      - parse: { format: logfmt, field: message, target: kv, on_failure: keep }
    buffering: { size_mb: 1, interval_seconds: 1 }
    destination: { local: { path: ./out, append_delimiter: true, error_output_prefix: "errors/!{firehose:error-output-type}/" } }
""")
    logs = d.workdir / "logs"
    logs.mkdir(parents=True)
    (logs / "app.log").write_text(
        "2026-12-06T10:00:00.000000001Z stdout F level=info msg=\"started\" port=8080\n"
        "2026-12-06T10:00:01.000000002Z stderr F plain words, no pairs\n"
        "this line is not CRI\n")
    d.start()
    wait_for(lambda: len(lines_in(d.workdir / "out")) >= 3, timeout=30, what="two records and an error record")
    objects = local_objects(d.workdir / "out")
    records = [json.loads(line) for k, body in objects.items() if not k.startswith("errors/") for line in body.splitlines()]
    errors = [json.loads(line) for k, body in objects.items() if k.startswith("errors/processing-failed/")
              for line in body.splitlines()]
    first, second = sorted(records, key=lambda r: r["timestamp"])
    assert first["stream"] == "stdout" and first["partial"] is False and first["host"] == "node-1"
    assert first["kv"] == {"level": "info", "msg": "started", "port": "8080"}
    assert second["message"] == "plain words, no pairs" and "kv" not in second   # kept as it was
    (error,) = errors
    assert error["errorCode"] == "Parse.Failed" and "not a CRI log line" in error["errorMessage"]
    assert "this line is not CRI" in base64.b64decode(error["rawData"]).decode()


def test_lines_are_wrapped_with_their_host_and_file_by_default_and_cri_lines_parse_where_read(sluice_factory):
    import socket
    d = file_pipeline(sluice_factory, raw=False, extra="        parse: cri")
    logs = d.workdir / "logs"
    logs.mkdir(parents=True)
    (logs / "app.log").write_text("2026-12-06T10:00:00.000000001Z stdout P split \n"
                                  "2026-12-06T10:00:00.000000002Z stdout F line\n"
                                  "2026-12-06T10:00:01Z stderr F second\n"
                                  "not a CRI line\n")
    d.start()
    wait_for(lambda: len(lines_in(d.workdir / "out")) >= 3, timeout=30, what="three records")
    records = sorted((json.loads(line) for body in local_objects(d.workdir / "out").values()
                      for line in body.splitlines()), key=lambda r: r["message"])
    host, file = socket.gethostname(), str(logs / "app.log")
    assert records == [
        {"file": file, "host": host, "malformed": True, "message": "not a CRI line"},
        {"file": file, "host": host, "message": "second", "partial": False, "stream": "stderr",
         "timestamp": "2026-12-06T10:00:01Z"},
        {"file": file, "host": host, "message": "split line", "partial": False, "stream": "stdout",
         "timestamp": "2026-12-06T10:00:00.000000001Z"},
    ]


def test_pod_logs_are_parsed_and_land_under_their_namespace_and_pod(sluice_factory):
    # The DaemonSet's pipeline (deploy/kubernetes/daemonset.yaml) on a local copy of /var/log/pods.
    d = sluice_factory("""
storage: { dir: ./var }
pipelines:
  - name: node-logs
    source:
      file: { include: ["./pods/*/*/*.log"], start_at: beginning, glob_interval_ms: 200, fields: { node: n1 }, parse: cri }
    processors:
      - metadata_extraction: { query: '{namespace: .kubernetes.namespace, pod: .kubernetes.pod}' }
      - append_delimiter: {}
    dynamic_partitioning: { enabled: true }
    buffering: { size_mb: 1, interval_seconds: 1 }
    destination:
      local:
        path: ./out
        prefix: "namespace=!{partitionKeyFromQuery:namespace}/pod=!{partitionKeyFromQuery:pod}/"
        error_output_prefix: "errors/!{firehose:error-output-type}/"
""")
    for ns, pod in [("shop", "cart-7d9f"), ("auth", "login-5c2a")]:
        logs = d.workdir / "pods" / f"{ns}_{pod}_0b6c7a1e-1111-2222-3333-444455556666" / "server"
        logs.mkdir(parents=True)
        # The runtime split the line in two (tag P, then F): one record.
        (logs / "0.log").write_text(f"2026-12-06T10:00:00.000000001Z stdout P hello \n"
                                    f"2026-12-06T10:00:00.000000002Z stdout F from {pod}\n")
    d.start()
    objects = wait_for(lambda: (lambda o: o if len(o) == 2 else None)(local_objects(d.workdir / "out")), timeout=30,
                       what="one object per pod")
    by_prefix = {"/".join(k.split("/")[:2]): json.loads(v) for k, v in objects.items()}
    cart = by_prefix["namespace=shop/pod=cart-7d9f"]
    assert cart["message"] == "hello from cart-7d9f" and cart["partial"] is False
    assert cart["stream"] == "stdout" and cart["node"] == "n1"
    assert cart["kubernetes"] == {"namespace": "shop", "pod": "cart-7d9f", "container": "server",
                                  "uid": "0b6c7a1e-1111-2222-3333-444455556666"}
    assert "namespace=auth/pod=login-5c2a" in by_prefix and cart["host"]


def test_the_stdout_destination_prints_each_record_on_its_own_line(sluice_factory):
    d = sluice_factory("""
storage: { dir: ./var }
pipelines:
  - name: try
    buffering: { size_mb: 1, interval_seconds: 1 }
    processors: [ { parse: { format: logfmt } } ]
    destination: { stdout: {} }
""").start()
    d.client().put_record_batch(DeliveryStreamName="try", Records=[
        {"Data": b"level=info msg=one"}, {"Data": b"level=warn msg=two\n"}, {"Data": b"no pairs"}])
    wait_for(lambda: '{"level":"warn","msg":"two"}' in d.log(), timeout=20, what="the records on standard output")
    printed = [line for line in d.log().splitlines() if line.startswith('{"level"')]
    assert printed == ['{"level":"info","msg":"one"}', '{"level":"warn","msg":"two"}']
    # What fails before output goes to the default backup's error prefix, beside the config file.
    errors = wait_for(lambda: local_objects(d.workdir / "stdout-errors"), timeout=20, what="the error record")
    assert all(k.startswith("processing-failed/") for k in errors) and b"Parse.Failed" in b"".join(errors.values())
