"""A FAKE Redshift: no Redshift can run here, so this speaks the public PostgreSQL wire protocol v3
(which Redshift speaks) strictly enough for sluice's loader, and records every statement it is sent —
the transcript the Redshift tests compare with.

What it implements: the startup message (an SSLRequest is refused with 'N'), MD5 password
authentication as Redshift uses it (a wrong password is an error), ParameterStatus, BackendKeyData,
ReadyForQuery with the transaction status, and the simple query protocol ('Q') for exactly the
statements a Firehose-style loader sends — BEGIN, COMMIT, ROLLBACK, CREATE TABLE IF NOT EXISTS of the
batch ledger, SELECT from it, COPY ... FROM 's3://...' ... MANIFEST, INSERT into the ledger. Anything
else is an error (42601), as is any statement after an error inside a transaction (25P02) until
ROLLBACK. The ledger is kept: rows INSERTed in a transaction become visible at COMMIT, so a batch
loaded once is found by the next SELECT. COPY can be told to fail the next N times with Redshift's
own message. It does not read S3 or load rows: the COPY statement and the manifest it names are what
the tests check (the manifest in the real S3-compatible store, moto).
"""

import hashlib
import re
import socketserver
import struct
import threading
import time


class FakeRedshift:
    def __init__(self, user, password):
        self.user, self.password = user, password
        self.statements = []          # every statement, in the order received
        self.loaded = set()           # (table_name, batch_id) committed to the ledger
        self.fail_copies = 0          # fail this many COPYs from now on
        self.commit_delay = 0.0       # seconds a COMMIT takes to answer (after it took effect)
        self.lock = threading.Lock()
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                fake._serve(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # --- the protocol ---------------------------------------------------------------------------

    @staticmethod
    def _read(sock, n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("client went away")
            data += chunk
        return data

    @staticmethod
    def _send(sock, kind, payload=b""):
        sock.sendall(kind + struct.pack("!I", len(payload) + 4) + payload)

    def _error(self, sock, code, message):
        fields = b"SERROR\0VERROR\0C" + code.encode() + b"\0M" + message.encode() + b"\0\0"
        self._send(sock, b"E", fields)

    def _serve(self, sock):
        try:
            (length,) = struct.unpack("!I", self._read(sock, 4))
            body = self._read(sock, length - 4)
            if struct.unpack("!I", body[:4])[0] == 80877103:  # SSLRequest: no TLS here
                sock.sendall(b"N")
                (length,) = struct.unpack("!I", self._read(sock, 4))
                body = self._read(sock, length - 4)
            assert struct.unpack("!I", body[:4])[0] == 196608, "protocol 3.0"
            parts = body[4:].split(b"\0")
            params = dict(zip(parts[0::2], parts[1::2]))
            user = params.get(b"user", b"").decode()
            salt = b"\x01\x02\x03\x04"
            self._send(sock, b"R", struct.pack("!I", 5) + salt)
            kind = self._read(sock, 1)
            (length,) = struct.unpack("!I", self._read(sock, 4))
            answer = self._read(sock, length - 4).rstrip(b"\0").decode()
            inner = hashlib.md5((self.password + user).encode()).hexdigest()
            expected = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()
            if kind != b"p" or user != self.user or answer != expected:
                self._error(sock, "28P01", f'password authentication failed for user "{user}"')
                return
            self._send(sock, b"R", struct.pack("!I", 0))
            for k, v in [(b"server_version", b"8.0.2"), (b"client_encoding", b"UTF8"), (b"DateStyle", b"ISO, MDY"),
                         (b"integer_datetimes", b"on"), (b"standard_conforming_strings", b"off")]:
                self._send(sock, b"S", k + b"\0" + v + b"\0")
            self._send(sock, b"K", struct.pack("!II", 4242, 1))
            self._session(sock)
        except (ConnectionError, OSError):
            pass

    def _session(self, sock):
        status, pending = b"I", []
        self._send(sock, b"Z", status)
        while True:
            kind = self._read(sock, 1)
            (length,) = struct.unpack("!I", self._read(sock, 4))
            body = self._read(sock, length - 4)
            if kind == b"X":
                return
            if kind != b"Q":
                self._error(sock, "08P01", f"the fake speaks only the simple query protocol, not {kind!r}")
                self._send(sock, b"Z", status)
                continue
            sql = body.rstrip(b"\0").decode()
            with self.lock:
                self.statements.append(sql)
            status, pending = self._statement(sock, sql, status, pending)
            self._send(sock, b"Z", status)

    def _statement(self, sock, sql, status, pending):
        word = sql.split(None, 1)[0].upper() if sql.strip() else ""
        if status == b"E" and word not in ("ROLLBACK", "COMMIT"):
            self._error(sock, "25P02", "current transaction is aborted, commands ignored until end of transaction block")
            return status, pending
        if word == "BEGIN":
            self._send(sock, b"C", b"BEGIN\0")
            return b"T", []
        if word in ("COMMIT", "ROLLBACK"):
            if word == "COMMIT" and status == b"T":
                with self.lock:
                    self.loaded.update(pending)
                if pending and self.commit_delay:
                    time.sleep(self.commit_delay)  # committed; the answer is late (a client may die meanwhile)
            self._send(sock, b"C", (b"ROLLBACK" if status == b"E" else word.encode()) + b"\0")
            return b"I", []
        if re.fullmatch(r"CREATE TABLE IF NOT EXISTS sluice_loaded_batches \(.*\)", sql, re.S):
            self._send(sock, b"C", b"CREATE TABLE\0")
            return status, pending
        m = re.fullmatch(r"SELECT 1 FROM sluice_loaded_batches WHERE table_name = '(.*)' AND batch_id = '(.*)'", sql)
        if m:
            found = (m.group(1), m.group(2)) in self.loaded
            field = b"?column?\0" + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0)
            self._send(sock, b"T", struct.pack("!h", 1) + field)
            if found:
                self._send(sock, b"D", struct.pack("!hI", 1, 1) + b"1")
            self._send(sock, b"C", f"SELECT {int(found)}\0".encode())
            return status, pending
        if re.fullmatch(r"COPY \S+( \(.*\))? FROM 's3://[^']+' CREDENTIALS 'aws_iam_role=[^']+' MANIFEST.*", sql, re.S):
            with self.lock:
                fail = self.fail_copies > 0
                self.fail_copies -= fail
            if fail:
                self._error(sock, "XX000", "Load into table 'events' failed.  Check 'stl_load_errors' system table for details.")
                return (b"E" if status == b"T" else status), pending
            self._send(sock, b"C", b"COPY\0")
            return status, pending
        m = re.fullmatch(r"INSERT INTO sluice_loaded_batches \(table_name, batch_id\) VALUES \('(.*)', '(.*)'\)", sql)
        if m:
            self._send(sock, b"C", b"INSERT 0 1\0")
            return status, pending + [(m.group(1), m.group(2))]
        self._error(sock, "42601", f"the fake does not know this statement: {sql[:80]}")
        return (b"E" if status == b"T" else status), pending
