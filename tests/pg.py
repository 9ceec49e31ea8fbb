"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries (scripts/test.sh installs the
`postgresql` package when missing), `initdb` into a temporary directory and `pg_ctl` on a free loopback
port, with password authentication (scram-sha-256) so the loader's URL carries a real secret. As root,
the binaries run as the `postgres` user (initdb refuses root). Queries go through `psql`.
"""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from conftest import free_port

PASSWORD = "pg-Secret-7f3a"


def _bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, f"PostgreSQL's {name} is missing: apt-get install postgresql (scripts/test.sh does)"
    return found[-1]


class Cluster:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="sluice-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        self.start()

    def _run(self, *argv, check=True):
        argv = list(argv)
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=check, capture_output=True, text=True, cwd=self.dir)

    @property
    def url(self):
        return f"postgres://postgres:${{PG_PASSWORD}}@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def start(self):
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self, mode="fast"):
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def sql(self, statement):
        """Runs SQL with psql; returns the rows as lists of strings."""
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                              "-v", "ON_ERROR_STOP=1", "-AtF", "\t", "-c", statement],
                             env={**os.environ, "PGPASSWORD": PASSWORD}, check=True, capture_output=True, text=True)
        return [line.split("\t") for line in out.stdout.splitlines()]

    def value(self, statement):
        return self.sql(statement)[0][0]

    def close(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
