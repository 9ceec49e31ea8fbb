"""`sluice test` with the real binary: the example tests for every config in config/ pass, and a wrong
expectation fails with a readable diff and a non-zero exit."""

import subprocess

from conftest import BINARY, ROOT


def sluice_test(*files, cwd=ROOT):
    return subprocess.run([str(BINARY), "test", *map(str, files)], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_every_example_config_has_passing_tests():
    configs = {p.stem for p in (ROOT / "config").glob("*.yaml")}
    tests = sorted((ROOT / "config" / "tests").glob("*.test.yaml"))
    assert configs == {p.name.removesuffix(".test.yaml") for p in tests}, "every config/ file has a tests file"
    out = sluice_test(*tests)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 failed" in out.stdout


def test_a_wrong_expectation_fails_with_a_diff(tmp_path):
    (tmp_path / "pipe.yaml").write_text("""
pipelines:
  - name: orders
    processors:
      - metadata_extraction: { query: '{c: .customer}' }
    dynamic_partitioning: { enabled: true }
    destination: { local: { path: ./out, prefix: "c=!{partitionKeyFromQuery:c}/", error_output_prefix: "errors/" } }
""")
    (tmp_path / "pipe.test.yaml").write_text("""
config: pipe.yaml
tests:
  - name: partitioned by customer
    pipeline: orders
    input: ['{"customer":"acme"}', '{"nobody":1}']
    expect:
      records: [{ prefix: "c=globex/", partition_keys: { c: acme } }]
      errors: [{ error_code: DynamicPartitioning.MetadataExtractionFailed }]
""")
    out = sluice_test(tmp_path / "pipe.test.yaml", cwd=tmp_path)
    assert out.returncode != 0
    assert "FAIL" in out.stdout and 'expected "c=globex/"' in out.stdout and 'got      "c=acme/"' in out.stdout
    assert "1 failed" in out.stdout
