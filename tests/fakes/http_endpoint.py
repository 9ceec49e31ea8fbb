"""A FAKE Firehose HTTP endpoint receiver, written for sluice's tests (no real one can run here).

It follows the public protocol (Amazon Data Firehose "HTTP endpoint delivery request and response
specifications", protocol 1.0) strictly: every request must carry the protocol's headers and a body of
exactly the documented shape, or the fake answers 400 and records the violation (a test then fails on
`violations`). It answers as told: `script` is a list of behaviours used one per request ("ok", "500",
"503", "413", "garbage", "wrong-id", "hang", and the hostile answers "huge" (declares 3 GB, sends
2 MiB and stalls), "reset" (closes the connection mid-body) and "drip" (a body that never ends, a byte
a second)), then "ok" once it runs out.
"""

import base64
import gzip
import json
import re
import time

from fakes.base import FakeServer

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class FakeHttpEndpoint(FakeServer):
    def __init__(self, access_key=None, gzip_expected=False, common_attributes=None, script=(), tls=None):
        super().__init__(tls=tls)
        self.access_key = access_key
        self.gzip_expected = gzip_expected
        self.common_attributes = common_attributes
        self.script = list(script)
        self.attempts = []      # (request_id, behaviour) for every request
        self.accepted = []      # (request_id, [record bytes]) for every request answered 200

    @property
    def url(self):
        return self.base_url + "/v1/firehose"

    def records(self):
        """Every record accepted, in order of acceptance."""
        with self.lock:
            return [r for _, recs in self.accepted for r in recs]

    def check(self, handler, body):
        """The protocol's request rules; returns the parsed body or raises ValueError."""
        h = handler.headers
        if handler.path != "/v1/firehose":
            raise ValueError(f"path {handler.path}")
        if h.get("X-Amz-Firehose-Protocol-Version") != "1.0":
            raise ValueError("X-Amz-Firehose-Protocol-Version must be 1.0")
        request_id = h.get("X-Amz-Firehose-Request-Id", "")
        if not UUID.match(request_id):
            raise ValueError(f"X-Amz-Firehose-Request-Id {request_id!r} is not a GUID")
        if not h.get("X-Amz-Firehose-Source-Arn", "").startswith("arn:aws:firehose:"):
            raise ValueError("X-Amz-Firehose-Source-Arn missing")
        if h.get("Content-Type") != "application/json":
            raise ValueError("Content-Type must be application/json")
        if self.access_key is not None and h.get("X-Amz-Firehose-Access-Key") != self.access_key:
            raise ValueError("wrong or missing X-Amz-Firehose-Access-Key")
        if self.access_key is None and "X-Amz-Firehose-Access-Key" in h:
            raise ValueError("an access key was sent though none is configured")
        if self.common_attributes is not None:
            attrs = json.loads(h.get("X-Amz-Firehose-Common-Attributes", "{}"))
            if attrs != {"commonAttributes": self.common_attributes}:
                raise ValueError(f"common attributes {attrs}")
        encoding = h.get("Content-Encoding")
        if self.gzip_expected:
            if encoding != "gzip":
                raise ValueError("Content-Encoding gzip expected")
            body = gzip.decompress(body)
        elif encoding is not None:
            raise ValueError("Content-Encoding must be absent without GZIP")
        doc = json.loads(body)
        if set(doc) != {"requestId", "timestamp", "records"}:
            raise ValueError(f"body keys {sorted(doc)}")
        if doc["requestId"] != request_id:
            raise ValueError("body requestId differs from the header")
        if not isinstance(doc["timestamp"], int) or doc["timestamp"] < 1_600_000_000_000:
            raise ValueError("timestamp must be epoch milliseconds")
        if not 1 <= len(doc["records"]) <= 10_000:
            raise ValueError(f"{len(doc['records'])} records")
        records = []
        for r in doc["records"]:
            if set(r) != {"data"}:
                raise ValueError(f"record keys {sorted(r)}")
            records.append(base64.b64decode(r["data"], validate=True))
        return request_id, records

    def handle(self, handler):
        length = int(handler.headers.get("Content-Length", "0"))
        body = handler.rfile.read(length)
        try:
            request_id, records = self.check(handler, body)
        except (ValueError, json.JSONDecodeError, OSError) as e:
            self.violation(str(e))
            return self.reply(handler, 400, {"errorMessage": f"protocol violation: {e}"})
        with self.lock:
            behaviour = self.script.pop(0) if self.script else "ok"
            self.attempts.append((request_id, behaviour))
        if behaviour == "ok":
            with self.lock:
                self.accepted.append((request_id, records))
            return self.reply(handler, 200, {"requestId": request_id, "timestamp": int(time.time() * 1000)})
        if behaviour in ("500", "503", "413"):
            return self.reply(handler, int(behaviour), {"requestId": request_id, "timestamp": int(time.time() * 1000),
                                                        "errorMessage": f"fake says {behaviour}"})
        if behaviour == "garbage":
            return self.reply(handler, 200, None, raw=b"<html>not json</html>")
        if behaviour == "wrong-id":
            return self.reply(handler, 200, {"requestId": "not-yours", "timestamp": int(time.time() * 1000)})
        if behaviour == "hang":
            time.sleep(3600)
        if behaviour in ("huge", "reset", "drip"):
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(3 << 30 if behaviour == "huge" else 1000))
            handler.end_headers()
            try:
                if behaviour == "huge":
                    for _ in range(32):
                        handler.wfile.write(b" " * 65536)
                    time.sleep(30)
                elif behaviour == "reset":
                    handler.wfile.write(b'{"requestId": "')
                    handler.wfile.flush()
                    handler.connection.shutdown(2)
                else:
                    for _ in range(3600):
                        handler.wfile.write(b" ")
                        handler.wfile.flush()
                        time.sleep(1)
            except OSError:
                pass
            handler.close_connection = True
