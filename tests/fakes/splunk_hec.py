"""A FAKE Splunk HTTP Event Collector, written for sluice's tests (no Splunk can run here).

It follows HEC's public protocol strictly: `POST /services/collector/event` (newline- or
concatenated JSON objects, each with an `event` key) or `/services/collector/raw`, with
`Authorization: Splunk <token>` and an `X-Splunk-Request-Channel` GUID (required when indexer
acknowledgement is on, as it is here). A good request gets `{"text":"Success","code":0,"ackId":n}`;
`POST /services/collector/ack` with `{"acks":[n]}` answers `{"acks":{"n":bool}}`, true only after
`ack_after_polls` polls. A wrong token gets HEC's 403 `{"text":"Invalid token","code":4}`.
`hang_first_post` receives the first event request and never answers it.
"""

import json
import re

from fakes.base import FakeServer

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class FakeHec(FakeServer):
    def __init__(self, token, ack_after_polls=2, hang_first_post=False):
        super().__init__()
        self.token = token
        self.hang_first_post = hang_first_post
        self.ack_after_polls = ack_after_polls
        self.pending = {}      # ack id -> (events, polls so far)
        self.indexed = []      # events acknowledged as indexed
        self.posts = 0

    @property
    def url(self):
        return self.base_url

    def handle(self, h):
        body = h.rfile.read(int(h.headers.get("Content-Length", "0")))
        if h.headers.get("Authorization") != f"Splunk {self.token}":
            return self.reply(h, 403, {"text": "Invalid token", "code": 4})
        if not UUID.match(h.headers.get("X-Splunk-Request-Channel", "")):
            self.violation("missing channel")
            return self.reply(h, 400, {"text": "Data channel is missing", "code": 10})
        if h.path == "/services/collector/ack":
            acks = json.loads(body)["acks"]
            out = {}
            with self.lock:
                for a in acks:
                    events, polls = self.pending.get(a, ([], 0))
                    done = polls + 1 >= self.ack_after_polls
                    out[str(a)] = done
                    if done and a in self.pending:
                        self.indexed.extend(events)
                        del self.pending[a]
                    elif a in self.pending:
                        self.pending[a] = (events, polls + 1)
            return self.reply(h, 200, {"acks": out})
        if h.path == "/services/collector/event":
            try:
                decoder, text, events, pos = json.JSONDecoder(), body.decode(), [], 0
                while pos < len(text):
                    while pos < len(text) and text[pos].isspace():
                        pos += 1
                    if pos >= len(text):
                        break
                    obj, pos = decoder.raw_decode(text, pos)
                    if "event" not in obj:
                        raise ValueError("an event object needs an `event` key")
                    events.append(obj["event"])
            except ValueError as e:
                self.violation(str(e))
                return self.reply(h, 400, {"text": "Invalid data format", "code": 6})
        elif h.path == "/services/collector/raw":
            events = [body.decode(errors="replace")]
        else:
            return self.reply(h, 404, {"text": "The requested URL was not found", "code": 404})
        with self.lock:
            self.posts += 1
            ack = self.posts
            hang = self.hang_first_post and ack == 1
            if not hang:
                self.pending[ack] = (events, 0)
        if hang:  # the first request is received but never answered (kill -9 tests)
            import time
            time.sleep(3600)
        self.reply(h, 200, {"text": "Success", "code": 0, "ackId": ack})
