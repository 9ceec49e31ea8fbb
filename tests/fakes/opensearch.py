"""A FAKE OpenSearch `_bulk` endpoint, written for sluice's tests (no OpenSearch can run here).

It follows the public `_bulk` API strictly: `POST /_bulk` with `Content-Type: application/x-ndjson`, a body of
newline-terminated action/document pairs, each action `{"index": {"_index": ..., "_id": ...}}` with an
explicit index; anything else is a 400 for the whole request and recorded in `violations`. Documents are
stored by (index, id), as OpenSearch does, so a re-sent document overwrites instead of duplicating. Per
document it answers like a cluster would: a document with `"reject": true` gets a 400
`mapper_parsing_exception` item; one with `"throttle": n` gets a 429 item for its first n attempts; the
request as a whole is a 200 with `errors: true` when any item failed. `hang_first` makes the first request
never answer (for kill -9 tests). With `sigv4`, each request's AWS Signature Version 4 is recomputed with
botocore's signer and must match.
"""

import base64
import json
import time

from fakes.base import FakeServer


class FakeOpenSearch(FakeServer):
    def __init__(self, username=None, password=None, hang_first=False, sigv4=None):
        super().__init__()
        # sigv4: (access key id, secret, service, region): every request must carry a valid signature.
        self.sigv4 = sigv4
        self.auth = None
        if username is not None:
            self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.hang_first = hang_first
        self.docs = {}           # (index, id) -> document
        self.attempts = {}       # id -> attempts seen
        self.requests = []       # ids per request

    @property
    def url(self):
        return self.base_url + "/"

    def parse(self, handler, body):
        if handler.path != "/_bulk":
            raise ValueError(f"path {handler.path}")
        if handler.headers.get("Content-Type") != "application/x-ndjson":
            raise ValueError("Content-Type must be application/x-ndjson")
        if self.auth is not None and handler.headers.get("Authorization") != self.auth:
            raise ValueError("wrong or missing credentials")
        if self.sigv4 is not None and not sigv4_valid(handler, body, *self.sigv4):
            raise ValueError("missing or invalid SigV4 signature")
        if not body.endswith(b"\n"):
            raise ValueError("the body must end with a newline")
        lines = body[:-1].split(b"\n")
        if len(lines) % 2:
            raise ValueError("actions and documents must come in pairs")
        pairs = []
        for action, doc in zip(lines[::2], lines[1::2]):
            a = json.loads(action)
            if list(a) != ["index"] or "_index" not in a["index"]:
                raise ValueError(f"action {a} must be an index with an explicit _index")
            pairs.append((a["index"], doc))
        return pairs

    def handle(self, handler):
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        try:
            pairs = self.parse(handler, body)
        except (ValueError, json.JSONDecodeError) as e:
            self.violation(str(e))
            return self.reply(handler, 400, {"error": {"type": "illegal_argument_exception", "reason": str(e)}, "status": 400})
        with self.lock:
            first = not self.requests
            self.requests.append([a.get("_id") for a, _ in pairs])
        if first and self.hang_first:
            time.sleep(3600)
        items, errors = [], False
        for action, raw in pairs:
            index, doc_id = action["_index"], action.get("_id") or f"auto-{time.time_ns()}"
            with self.lock:
                n = self.attempts[doc_id] = self.attempts.get(doc_id, 0) + 1
            try:
                doc = json.loads(raw)
            except json.JSONDecodeError:
                doc = None
            if not isinstance(doc, dict) or doc.get("reject"):
                errors = True
                items.append({"index": {"_index": index, "_id": doc_id, "status": 400, "error": {
                    "type": "mapper_parsing_exception", "reason": "failed to parse field [reject]"}}})
            elif n <= doc.get("throttle", 0):
                errors = True
                items.append({"index": {"_index": index, "_id": doc_id, "status": 429, "error": {
                    "type": "es_rejected_execution_exception", "reason": "rejected execution"}}})
            else:
                with self.lock:
                    self.docs[(index, doc_id)] = doc
                items.append({"index": {"_index": index, "_id": doc_id, "status": 201, "result": "created"}})
        self.reply(handler, 200, {"took": 1, "errors": errors, "items": items})


def sigv4_valid(handler, body, key_id, secret, service, region):
    """Recomputes the request's SigV4 signature with botocore (a signer we did not write)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    auth = handler.headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    if not parts.get("Credential", "").startswith(f"{key_id}/") or f"/{region}/{service}/aws4_request" not in parts["Credential"]:
        return False
    signed = parts["SignedHeaders"].split(";")
    headers = {name: handler.headers.get(name, "") for name in signed}
    if "host" not in headers or "x-amz-date" not in headers:
        return False
    request = AWSRequest(method="POST", url=f"http://{headers['host']}{handler.path}", data=body, headers=headers)
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(key_id, secret), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return expected == parts["Signature"]
