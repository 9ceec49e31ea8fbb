//! `sluice test`: unit tests for pipeline configs, as `vector test` has them.
//!
//! A tests file names a config and lists cases; each case puts input records through one
//! pipeline's processors and partitioning, exactly as the daemon would but with no network, no
//! WAL and no destination, and compares what comes out: each record's data, partition keys and
//! the object prefix it would go to, and each failed record's error code, error-output type and
//! error prefix. Only the fields a case names are compared. A failure prints a readable diff and
//! the command exits non-zero.
//!
//! ```yaml
//! config: partitioned.yaml            # relative to this file
//! tests:
//!   - name: orders are partitioned by customer and year
//!     pipeline: orders
//!     arrival: 2026-12-02T10:00:00Z    # the clock for !{timestamp:..} (default: now)
//!     input:
//!       - '{"customer_id":"c1","ts":"2026-03-01T10:00:00Z"}'
//!     expect:
//!       records:
//!         - { data: "{\"customer_id\":\"c1\",\"ts\":\"2026-03-01T10:00:00Z\"}\n", prefix: "customer_id=c1/year=2026/", partition_keys: { customer_id: c1, year: "2026" } }
//!       errors:
//!         - { error_code: DynamicPartitioning.MetadataExtractionFailed, error_output_type: processing-failed, prefix: "errors/processing-failed/2026/12/02/" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bytes::Bytes;
use serde::Deserialize;

use sluice::buffer::partition::Partitioner;
use sluice::format::object_key::{PartitionSource, RenderContext};
use sluice::process::ErrorOutputType;
use sluice::record::Record;

#[derive(clap::Args)]
pub struct TestArgs {
    /// Tests files (YAML).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestsFile {
    /// The config under test, relative to the tests file.
    config: PathBuf,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    pipeline: String,
    arrival: Option<String>,
    input: Vec<String>,
    #[serde(default)]
    expect: Expect,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    records: Option<Vec<ExpectedRecord>>,
    errors: Option<Vec<ExpectedError>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedRecord {
    data: Option<String>,
    prefix: Option<String>,
    partition_keys: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedError {
    error_code: Option<String>,
    error_output_type: Option<String>,
    prefix: Option<String>,
}

/// What a case produced.
struct Outcome {
    records: Vec<(String, String, BTreeMap<String, String>)>,
    errors: Vec<(String, String, String)>,
}

pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let (mut passed, mut failed) = (0, 0);
    for file in &args.files {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let tests: TestsFile =
            serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a tests file: {e}", file.display()))?;
        let config_path = file.parent().unwrap_or(Path::new(".")).join(&tests.config);
        let config = sluice::config::load_file(&config_path).map_err(|errors| {
            super::validate::report(&config_path, "config", &errors);
            anyhow::anyhow!("{}: the config under test is invalid", config_path.display())
        })?;
        for case in &tests.tests {
            match check(&config, case) {
                Ok(()) => {
                    passed += 1;
                    println!("ok    {}: {}", file.display(), case.name);
                }
                Err(diff) => {
                    failed += 1;
                    println!("FAIL  {}: {}\n{}", file.display(), case.name, indent(&format!("{diff:#}")));
                }
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} config test(s) failed");
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      {l}\n")).collect()
}

fn check(config: &sluice::config::Config, case: &Case) -> anyhow::Result<()> {
    let outcome = simulate(config, case)?;
    let mut problems = Vec::new();
    if let Some(expected) = &case.expect.records {
        if expected.len() != outcome.records.len() {
            problems.push(format!("expected {} record(s), got {}", expected.len(), outcome.records.len()));
        }
        for (i, (want, (data, prefix, keys))) in expected.iter().zip(&outcome.records).enumerate() {
            compare(&mut problems, &format!("records[{i}].data"), want.data.as_ref(), data);
            compare(&mut problems, &format!("records[{i}].prefix"), want.prefix.as_ref(), prefix);
            if let Some(k) = &want.partition_keys {
                if k != keys {
                    problems.push(format!("records[{i}].partition_keys: expected {k:?}, got {keys:?}"));
                }
            }
        }
    }
    if let Some(expected) = &case.expect.errors {
        if expected.len() != outcome.errors.len() {
            problems.push(format!("expected {} error record(s), got {}", expected.len(), outcome.errors.len()));
        }
        for (i, (want, (code, kind, prefix))) in expected.iter().zip(&outcome.errors).enumerate() {
            compare(&mut problems, &format!("errors[{i}].error_code"), want.error_code.as_ref(), code);
            compare(&mut problems, &format!("errors[{i}].error_output_type"), want.error_output_type.as_ref(), kind);
            compare(&mut problems, &format!("errors[{i}].prefix"), want.prefix.as_ref(), prefix);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("\n"))
    }
}

fn compare(problems: &mut Vec<String>, field: &str, want: Option<&String>, got: &str) {
    if let Some(want) = want {
        if want != got {
            problems.push(format!("{field}:\n  expected {want:?}\n  got      {got:?}"));
        }
    }
}

/// Puts the case's input through the pipeline's processors and partitioning.
fn simulate(config: &sluice::config::Config, case: &Case) -> anyhow::Result<Outcome> {
    let Some(spec) = config.pipelines.iter().find(|p| p.name == case.pipeline) else {
        bail!("the config has no pipeline named {}", case.pipeline);
    };
    let arrival_ms = match &case.arrival {
        Some(t) => {
            chrono::DateTime::parse_from_rfc3339(t).with_context(|| format!("arrival {t:?}"))?.timestamp_millis()
        }
        None => sluice::pipeline::now_ms(),
    };
    let chain = sluice::pipeline::build_chain(&spec.processors, None).map_err(anyhow::Error::msg)?;
    let records: Vec<Record> = case
        .input
        .iter()
        .enumerate()
        .map(|(i, data)| Record::new(i as u64, arrival_ms, Bytes::from(data.clone())))
        .collect();
    let (items, failed) = chain.run(records);
    let partitioner = Partitioner::new(&spec.store.prefix);
    let render = |item_keys: Option<&sluice::process::PartitionKeys>, error: Option<ErrorOutputType>| {
        let lookup = |source: &PartitionSource, key: &str| {
            let keys = item_keys?;
            let map = match source {
                PartitionSource::Query => &keys.query,
                PartitionSource::Lambda => &keys.lambda,
            };
            map.get(key).cloned()
        };
        let ctx = RenderContext {
            oldest_arrival_ms: arrival_ms,
            error_output_type: error.map(ErrorOutputType::as_str),
            partition_key: &lookup,
            seed: 0,
        };
        let template = if error.is_some() { &spec.store.error_prefix } else { &spec.store.prefix };
        template.render(&ctx).unwrap_or_else(|e| format!("<cannot render the prefix: {e}>"))
    };
    let mut outcome = Outcome { records: Vec::new(), errors: Vec::new() };
    for f in &failed {
        outcome.errors.push((f.code.clone(), f.kind.as_str().to_string(), render(None, Some(f.kind))));
    }
    for item in items {
        match partitioner.key(&item) {
            Ok(_) => {
                let keys = item.keys.as_deref();
                let flat = keys.map(|k| k.query.iter().chain(&k.lambda).map(|(a, b)| (a.clone(), b.clone())).collect());
                outcome.records.push((
                    String::from_utf8_lossy(&item.record.data).into_owned(),
                    render(keys, None),
                    flat.unwrap_or_default(),
                ));
            }
            Err((code, _)) => {
                let kind = ErrorOutputType::ProcessingFailed;
                outcome.errors.push((code.to_string(), kind.as_str().to_string(), render(None, Some(kind))));
            }
        }
    }
    Ok(outcome)
}
