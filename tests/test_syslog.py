"""`source: syslog`: the real `logger` (util-linux) sends RFC 5424 and RFC 3164 messages over UDP and TCP
(newline framing and RFC 6587 octet counting); a Python client sends over TLS; a malformed message is kept
raw and flagged. Every record lands as JSON with the parsed fields."""

import json
import shutil
import socket
import ssl
import subprocess

import pytest

from conftest import free_port, local_objects, wait_for
from test_http_endpoint import make_certificates


def pipeline(sluice_factory, mode, port, extra=""):
    return sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - name: syslog
    source:
      syslog: {{ listen: 127.0.0.1:{port}, mode: {mode}{extra} }}
    buffering: {{ size_mb: 1, interval_seconds: 1 }}
    destination: {{ local: {{ path: ./out, append_delimiter: true }} }}
""").start()


def records(d):
    return [json.loads(line) for body in local_objects(d.workdir / "out").values() for line in body.splitlines()]


def logger(*args):
    assert shutil.which("logger"), "util-linux's logger is part of every Debian system"
    subprocess.run(["logger", *args], check=True, capture_output=True, timeout=10)


def test_logger_over_udp_in_both_formats(sluice_factory):
    port = free_port()
    d = pipeline(sluice_factory, "udp", port)
    logger("-n", "127.0.0.1", "-P", str(port), "-d", "--rfc5424", "-t", "billing", "-p", "local3.warning",
           "--sd-id", "meta@32473", "--sd-param", 'region="eu"', "invoice 42 overdue")
    logger("-n", "127.0.0.1", "-P", str(port), "-d", "--rfc3164", "-t", "cron", "-p", "cron.info", "job done")
    got = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(records(d)), timeout=20, what="two messages")
    by_app = {r["app"]: r for r in got}
    b = by_app["billing"]
    assert (b["facility"], b["severity"], b["message"], b["protocol"]) == ("local3", "warning", "invoice 42 overdue", "rfc5424")
    assert b["structured_data"]["meta@32473"]["region"] == "eu" and b["source_ip"] == "127.0.0.1"
    c = by_app["cron"]
    assert (c["facility"], c["severity"], c["message"], c["protocol"]) == ("cron", "info", "job done", "rfc3164")


def test_logger_over_tcp_with_newlines_and_octet_counting(sluice_factory):
    port = free_port()
    d = pipeline(sluice_factory, "tcp", port)
    logger("-n", "127.0.0.1", "-P", str(port), "-T", "-t", "plain", "framed by a newline")
    logger("-n", "127.0.0.1", "-P", str(port), "-T", "--octet-count", "-t", "counted", "framed by its length\nwith a newline inside")
    got = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(records(d)), timeout=20, what="two messages")
    by_app = {r["app"]: r for r in got}
    assert by_app["plain"]["message"] == "framed by a newline"
    assert by_app["counted"]["message"].startswith("framed by its length")


def test_tls_octet_counted_messages_and_a_malformed_one(sluice_factory, tmp_path):
    ca, (cert, key) = make_certificates(tmp_path)
    port = free_port()
    d = pipeline(sluice_factory, "tls", port, extra=f", tls: {{ cert_file: {cert}, key_file: {key} }}")
    context = ssl.create_default_context(cafile=str(ca))
    messages = [b"<34>1 2026-12-06T10:00:00Z web01 su - ID47 - 'su root' failed on /dev/pts/8",
                b"not syslog at all"]
    # The connection stays open until the messages are delivered, as a syslog client's does: closing it
    # with the server's TLS session tickets unread makes the kernel reset it, dropping unread data.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            for m in messages:
                tls.sendall(str(len(m)).encode() + b" " + m)
            got = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(records(d)), timeout=20, what="two messages")
    ok = next(r for r in got if not r.get("malformed"))
    assert (ok["facility"], ok["severity"], ok["host"], ok["app"], ok["msgid"]) == ("auth", "crit", "web01", "su", "ID47")
    bad = next(r for r in got if r.get("malformed"))
    assert bad["message"] == "not syslog at all"


def test_a_port_in_use_fails_the_start_with_the_reason(sluice_factory):
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        d = sluice_factory(f"""
storage: {{ dir: ./var }}
pipelines:
  - {{ name: syslog, source: {{ syslog: {{ listen: 127.0.0.1:{port}, mode: tcp }} }}, destination: {{ local: {{ path: ./out }} }} }}
""")
        with pytest.raises(AssertionError):
            d.start(timeout=10)
        assert f"cannot listen for syslog on 127.0.0.1:{port}" in d.log() and "in use" in d.log(), d.log()[-2000:]
    finally:
        taken.close()
