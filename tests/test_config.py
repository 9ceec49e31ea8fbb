"""`sluice validate`: errors name the file, line and field; ${ENV} interpolation."""

import os
import subprocess
import textwrap

from conftest import BINARY


def validate(tmp_path, text, env=None):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text))
    r = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    return r.returncode, r.stdout + r.stderr, str(path)


def test_a_valid_file_passes(tmp_path):
    code, out, _ = validate(tmp_path, """
        pipelines:
          - name: clicks
            destination: { local: { path: ./d } }
        """)
    assert code == 0, out
    assert "OK" in out


def test_unknown_field_names_file_line_and_field(tmp_path):
    code, out, path = validate(tmp_path, """
        pipelines:
          - name: clicks
            buffering: { size_mb: 5, interval_secs: 10 }
            destination: { local: { path: ./d } }
        """)
    assert code != 0
    assert f"{path}:4:" in out, out
    assert "interval_secs" in out


def test_range_and_prefix_errors_are_all_reported(tmp_path):
    code, out, path = validate(tmp_path, """
        pipelines:
          - name: clicks
            buffering: { size_mb: 0, interval_seconds: 901 }
            destination:
              s3:
                bucket: b
                prefix: "x/!{timestamp:yyyy}/"
        """)
    assert code != 0
    assert f"{path}:4:" in out and "pipelines[0].buffering.size_mb" in out
    assert "pipelines[0].buffering.interval_seconds" in out
    assert f"{path}:8:" in out and "error_output_prefix" in out, out
    assert "3 problems" in out


def test_environment_variables_are_interpolated(tmp_path):
    text = """
        pipelines:
          - name: ${STREAM}
            destination: { s3: { bucket: "${BUCKET:-fallback}", region: "${REGION}" } }
        """
    code, out, _ = validate(tmp_path, text, env={"STREAM": "clicks", "REGION": "eu-west-1"})
    assert code == 0, out
    code, out, path = validate(tmp_path, text, env={"STREAM": "clicks"})
    assert code != 0
    assert "line 4" in out and "REGION" in out


def test_every_example_config_validates():
    examples = sorted((BINARY.parent.parent.parent / "config").glob("*.yaml"))
    assert examples, "config/ holds example pipelines"
    for path in examples:
        # Paths in the examples (plugin modules) are relative to the repository root.
        r = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True,
                           cwd=BINARY.parent.parent.parent)
        assert r.returncode == 0, f"{path}: {r.stderr}"


def test_a_secret_in_a_bad_value_is_never_printed(tmp_path):
    """Issue #9: `name: "${AWS_SECRET_ACCESS_KEY}"` used to print the secret in the error."""
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    code, out, path = validate(tmp_path, """
        pipelines:
          - name: "${AWS_SECRET_ACCESS_KEY}"
            destination: { local: { path: ./d } }
        """, env={"AWS_SECRET_ACCESS_KEY": secret})
    assert code != 0
    assert secret not in out
    assert "${AWS_SECRET_ACCESS_KEY}" in out and f"{path}:3:" in out, out


def test_a_module_that_never_ends_is_refused_without_reading_it(tmp_path):
    code, out, _ = validate(tmp_path, """
        pipelines:
          - name: p
            processors: [ { wasm: { module: /dev/zero } } ]
            destination: { local: { path: ./d } }
        """)
    assert code != 0
    assert "/dev/zero is not a regular file" in out, out


def test_listen_takes_a_host_name(tmp_path):
    code, out, _ = validate(tmp_path, """
        api: { listen: "localhost:4573" }
        pipelines:
          - name: p
            destination: { local: { path: ./d } }
        """)
    assert code == 0, out
    code, out, _ = validate(tmp_path, """
        api: { listen: "no-such-host.invalid:4573" }
        """)
    assert code != 0 and "api.listen" in out and "localhost:4573" in out, out
