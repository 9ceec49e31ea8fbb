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
    assert f"{path}:4:" in out and "`REGION` is not set" in out, out


def test_every_unset_variable_is_listed_at_once(tmp_path):
    code, out, path = validate(tmp_path, """
        pipelines:
          - name: ${STREAM}
            destination: { s3: { bucket: "${BUCKET}", region: "${REGION:-us-east-1}", endpoint: "${ENDPOINT}" } }
        """, env={"STREAM": "", "BUCKET": ""})
    assert code != 0
    for name, line in [("STREAM", 3), ("BUCKET", 4), ("ENDPOINT", 4)]:
        assert f"{path}:{line}:" in out and f"`{name}` is not set" in out, out
    assert "`REGION` is not set" not in out, "a variable with a default is not an error"
    assert "3 problems" in out, out


def test_all_errors_of_a_file_in_one_run_with_suggestions_and_frames(tmp_path):
    code, out, path = validate(tmp_path, """
        pipelines:
          - name: clicks
            bufering: { size_mb: 1 }
            destination:
              local:
                path: ./d
                compresion: GZIP
          - name: bad name!
            destination: { local: { path: ./e, prefx: "p/" } }
        """)
    assert code != 0
    lines = out.splitlines()
    assert f"{path}:4:5: `pipelines[0].bufering`: unknown field `bufering`; did you mean `buffering`?" in out, out
    assert f"{path}:8:9: `pipelines[0].destination.local.compresion`: unknown field `compresion`; did you mean `compression`?" in out, out
    assert f"{path}:10:40: `pipelines[1].destination.local.prefx`: unknown field `prefx`; did you mean `prefix`?" in out, out
    assert f"{path}:9:" in out and "is not a valid DeliveryStreamName" in out, "semantic errors come after the unknown fields"
    assert "4 problems" in out, out
    frame = lines.index(next(l for l in lines if "`bufering`" in l))
    assert lines[frame + 2] == "4 |     bufering: { size_mb: 1 }", lines[frame:frame + 4]
    assert lines[frame + 3] == "  |     ^", lines[frame:frame + 4]


def test_enum_values_get_suggestions(tmp_path):
    code, out, path = validate(tmp_path, """
        pipelines:
          - name: clicks
            destination: { local: { path: ./d, compression: GZIPP } }
        """)
    assert code != 0
    assert "unknown value `GZIPP`; did you mean `GZIP`?" in out, out


def test_validate_takes_several_files_and_directories_and_knows_a_schema_file(tmp_path):
    root = BINARY.parent.parent.parent
    good = tmp_path / "good.yaml"
    good.write_text("pipelines:\n  - { name: a, destination: { local: { path: ./a } } }\n")
    bad = tmp_path / "sub" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text("pipelines:\n  - { nme: a, destination: { local: { path: ./a } } }\n")
    r = subprocess.run([str(BINARY), "validate", str(good), str(bad.parent), str(root / "config/schemas/events.yaml")],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert f"{good}: OK (1 pipeline)" in r.stdout, r.stdout
    assert f"{root / 'config/schemas/events.yaml'}: OK: a table schema" in r.stdout, r.stdout
    assert f"{bad}:2:" in r.stderr and "did you mean `name`?" in r.stderr, r.stderr
    assert "1 of 3 files are invalid" in r.stderr, r.stderr
    r = subprocess.run([str(BINARY), "validate", str(root / "config")], capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr


def test_a_bad_schema_file_is_reported_against_its_own_lines(tmp_path):
    schema = tmp_path / "s.yaml"
    schema.write_text("columns:\n  - { name: a, type: string }\n  - { name: b, type: strng }\n")
    code, out, path = validate(tmp_path, f"""
        pipelines:
          - name: p
            destination:
              local:
                path: ./d
                format_conversion:
                  schema: {{ file: {schema} }}
                  output: {{ parquet: {{}} }}
        """)
    assert code != 0
    assert f"{schema}:3:" in out and "strng" in out, out


def test_sluice_config_names_the_file_for_validate():
    root = BINARY.parent.parent.parent
    r = subprocess.run([str(BINARY), "validate"], capture_output=True, text=True, cwd=root,
                       env={**os.environ, "SLUICE_CONFIG": "config/local.yaml"})
    assert r.returncode == 0 and "config/local.yaml: OK" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([str(BINARY), "run", "--help"], capture_output=True, text=True)
    assert "SLUICE_CONFIG" in r.stdout and "--config-dir" in r.stdout and "The pipeline config file" in r.stdout, r.stdout


def test_bench_is_listed_as_a_tool_not_a_daemon_command():
    r = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True)
    commands, _, tools = r.stdout.partition("Tools (not daemon operation):")
    assert "bench" not in commands and "bench" in tools, r.stdout


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


def test_validate_reports_every_problem_of_a_file_past_unset_variables_and_type_errors(tmp_path):
    # One unset variable, a value of the wrong type (with its field path), an unknown enum value and
    # a semantic error: all four in one run (issue #25: this took four rounds).
    code, out, path = validate(tmp_path, """
        pipelines:
          - name: clicks
            buffering: { size_mb: five, interval_seconds: 60 }
            destination:
              s3:
                bucket: "${NOT_SET_ANYWHERE}"
                compression: GZ
                error_output_prefix: "errors/!{timestamp:yyyy}/"
                prefix: "x/!{firehose:random-string}/"
        """, env={"NOT_SET_ANYWHERE": ""})
    assert code != 0
    assert "NOT_SET_ANYWHERE" in out, out
    assert f"{path}:4:" in out and "pipelines[0].buffering.size_mb" in out, out
    assert f"{path}:8:" in out and "GZIP" in out, out
    assert "pipelines[0].destination.s3.error_output_prefix" in out, out
    # The emptied bucket is the unset variable's consequence, not a fifth problem.
    assert "(4 problems)" in out and "bucket` " not in out, out
    assert "invalid floating point" in out and "at line 4" not in out, "the location is said once"


def test_paths_in_a_config_are_relative_to_its_file_not_the_working_directory(tmp_path, moto):
    conf = tmp_path / "etc"
    (conf / "schemas").mkdir(parents=True)
    (conf / "schemas" / "orders.yaml").write_text("columns:\n  - { name: id, type: bigint }\n")
    (conf / "p.yaml").write_text(textwrap.dedent("""
        storage: { dir: ./state }
        pipelines:
          - name: orders
            destination:
              local:
                path: ./out
                format_conversion:
                  schema: { file: schemas/orders.yaml }
                  input: { openx_json: {} }
                  output: { parquet: {} }
        """))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([str(BINARY), "validate", "p.yaml"], cwd=conf, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([str(BINARY), "validate", str(conf / "p.yaml")], cwd=elsewhere, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_parse_processors_are_validated(tmp_path):
    code, out, _ = validate(tmp_path, """
        pipelines:
          - name: logs
            processors:
              - parse: { format: logfnt }
              - parse: { format: regex, pattern: '^\\S+ \\d+$' }
              - parse: { format: csv }
              - parse: { format: cri, pattern: 'x', on_failure: ignore }
            destination: { local: { path: ./d } }
        """)
    assert code != 0
    assert "processors[0].parse.format`: unknown format `logfnt`; did you mean `logfmt`?" in out, out
    assert "processors[1].parse.pattern`: has no named capture" in out
    assert "processors[2].parse.columns`: is required for `format: csv`" in out
    assert "processors[3].parse.pattern`: applies to `format: regex` only" in out
    assert "processors[3].parse.on_failure`: `ignore` is not `error` or `keep`" in out


def test_two_syslog_pipelines_cannot_listen_on_one_address(tmp_path):
    code, out, _ = validate(tmp_path, """
        pipelines:
          - { name: a, source: { syslog: { listen: 127.0.0.1:5514, mode: tcp } }, destination: { local: { path: ./a } } }
          - { name: b, source: { syslog: { listen: 127.0.0.1:5514, mode: tcp } }, destination: { local: { path: ./b } } }
          - { name: d, source: { syslog: { listen: 127.0.0.1:5515, mode: tls } }, destination: { local: { path: ./d } } }
          - { name: c, source: { syslog: { listen: 127.0.0.1:5514, mode: udp } }, destination: { local: { path: ./c } } }
        """)
    assert code != 0
    assert "pipelines a and b both listen for syslog on 127.0.0.1:5514" in out, out
    assert "source.syslog.tls`: is required with `mode: tls`" in out
    assert "pipelines a and c" not in out, "UDP and TCP may share a port number"
