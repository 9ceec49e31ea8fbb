"""The runnable scenarios in examples/ keep working: each runs here against the built binary."""

import os
import subprocess
import sys

from conftest import BINARY

REPO = BINARY.parent.parent.parent


def test_datalake_example_loads_parquet_and_duckdb_finds_every_record():
    r = subprocess.run([sys.executable, "examples/datalake/load_and_query.py"], cwd=REPO, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "SLUICE": str(BINARY)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "19998 rows in the lake, 2 records in the error prefix" in r.stdout, r.stdout
    assert "DataFormatConversion.MalformedData - Data does not match the schema. Column 'amount'" in r.stdout
    assert "DataFormatConversion.ParseError - The record is not valid JSON" in r.stdout
