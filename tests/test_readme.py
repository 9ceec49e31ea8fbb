"""README.md runs as written: every sh, console and Python block, in order, as a user would paste it.

The harness extracts the fenced blocks and runs them one after another in one fresh working directory, so
state carries from block to block as it does for a reader (the tour's daemon keeps running; its objects
are there for the next block). The one liberty it takes: `cargo run --release -- ARGS` runs the binary the
test suite already built (`target/debug/sluice ARGS`) instead of building a release binary again.

An HTML comment on the line before a block tells the harness what a reader knows from the prose:

- `<!-- readme-test: skip: REASON -->`: not run (REASON must say why, e.g. "this is the test command itself").
- `<!-- readme-test: wait-for GLOB -->`: the prose says to wait (for a delivery); wait until GLOB matches.
- `<!-- readme-test: fragment -->`: a YAML excerpt, not a whole config. Every other YAML block must pass
  `sluice validate`.

A line `cargo run --release -- run ...` starts the daemon in the background (as a second terminal would)
and waits for it to be ready; it is stopped with SIGTERM at the end and must exit 0.
"""

import glob
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import BINARY, ROOT, VENV_BIN, http_get, wait_for

FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!-- readme-test: (.+?) -->\s*$")


def blocks(path):
    """(line, language, text, marker) of every fenced block."""
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        marker = MARKER.match(lines[i - 1]) if i > 0 else None
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        out.append((i + 1, m.group(1), "\n".join(lines[i + 1:end]) + "\n", marker.group(1) if marker else None))
        i = end + 1
    return out


def shell_commands(lang, text):
    """The commands of a block: `$ ` lines of a console transcript, or every non-comment line."""
    lines = text.splitlines()
    if any(line.startswith("$ ") for line in lines):
        return [line[2:] for line in lines if line.startswith("$ ")]
    commands, current = [], ""
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\") + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(current)
            current = ""
    return commands


class Reader:
    """One reader's terminal session."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.daemon = None
        self.env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
        for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"]:
            self.env.pop(k, None)  # the README must say what the CLI needs

    def sh(self, command, where):
        command = re.sub(r"\bcargo run --release -- ", f"{shlex.quote(str(BINARY))} ", command)
        command = command.split(" #", 1)[0].strip()
        if command.startswith(f"{shlex.quote(str(BINARY))} run"):
            return self.start_daemon(command, where)
        r = subprocess.run(["bash", "-c", command], cwd=self.workdir, env=self.env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, f"{where}: `{command}` exited {r.returncode}:\n{r.stdout}\n{r.stderr}"

    def start_daemon(self, command, where):
        assert self.daemon is None, f"{where}: a second daemon"
        log = open(self.workdir / "daemon.log", "ab")
        self.daemon = subprocess.Popen(shlex.split(command), cwd=self.workdir, env=self.env, stdout=log, stderr=log)

        def ready():
            assert self.daemon.poll() is None, f"{where}: the daemon exited:\n{(self.workdir / 'daemon.log').read_text()}"
            try:
                return http_get("http://127.0.0.1:4573/ready")[0] == 200
            except OSError:
                return False

        wait_for(ready, 30, what=f"{where}: the daemon on 127.0.0.1:4573 (is something else using the port?)")

    def python(self, text, where):
        r = subprocess.run([sys.executable, "-c", text], cwd=self.workdir, env=self.env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, f"{where}: the Python block failed:\n{r.stdout}\n{r.stderr}"

    def yaml(self, text, where):
        path = self.workdir / "readme-block.yaml"
        path.write_text(text)
        r = subprocess.run([str(BINARY), "validate", str(path)], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, f"{where}: the config does not validate:\n{r.stderr}"

    def stop(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            code = self.daemon.wait(60)
            assert code == 0, f"the tour's daemon exited {code} on SIGTERM:\n{(self.workdir / 'daemon.log').read_text()}"


def run_document(path, workdir):
    reader = Reader(workdir)
    ran = 0
    try:
        for line, lang, text, marker in blocks(path):
            where = f"{path.name}:{line}"
            if marker and marker.startswith("skip"):
                assert marker.startswith("skip: ") and len(marker) > 12, f"{where}: a skip must say why"
                continue
            if marker and marker.startswith("wait-for "):
                pattern = marker.split(" ", 1)[1]
                wait_for(lambda: glob.glob(str(workdir / pattern)), 30, what=f"{where}: {pattern}")
            if lang in ("sh", "bash", "console"):
                for command in shell_commands(lang, text):
                    reader.sh(command, where)
            elif lang == "python":
                reader.python(text, where)
            elif lang == "yaml" and marker != "fragment":
                reader.yaml(text, where)
            else:
                continue
            ran += 1
    finally:
        reader.stop()
    return ran


def test_readme_runs_as_written(tmp_path):
    assert run_document(ROOT / "README.md", tmp_path) >= 5, "the tour, the CLI line and the config example at least"


def test_every_example_readme_block_runs(tmp_path):
    for doc in sorted((ROOT / "examples").glob("**/README.md")):
        run_document(doc, tmp_path / doc.parent.name)
