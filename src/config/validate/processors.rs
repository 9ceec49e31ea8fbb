//! Validation of `processors:`: the built-ins in Firehose's order, and WASM plugins.

use super::*;

pub(super) fn processors(
    c: &mut Checker,
    p: &RawPipeline,
    field: &str,
    dynamic_partitioning: bool,
) -> Vec<ProcessorSpec> {
    // Firehose runs built-ins in this order; a list in another order would not do what it says.
    const ORDER: [&str; 5] = [
        "decompression",
        "cloudwatch_log_processing",
        "record_deaggregation",
        "metadata_extraction",
        "append_delimiter",
    ];
    let mut out = Vec::new();
    let mut last_rank = None;
    for (i, raw) in p.processors.iter().enumerate() {
        let at = format!("{field}.processors[{i}]");
        let (name, spec) = match &raw.value {
            RawProcessor::Decompression(d) => {
                if d.format.value != "GZIP" {
                    c.at(&d.format, &format!("{at}.decompression.format"), "only GZIP is supported (as in Firehose)");
                }
                ("decompression", Some(ProcessorSpec::GzipDecompression))
            }
            RawProcessor::CloudwatchLogProcessing(cw) => {
                if !out.contains(&ProcessorSpec::GzipDecompression) {
                    c.at(raw, &at, "cloudwatch_log_processing must follow a decompression processor (CloudWatch Logs data is gzipped)");
                }
                (
                    "cloudwatch_log_processing",
                    cw.data_message_extraction.then_some(ProcessorSpec::CloudWatchLogProcessing),
                )
            }
            RawProcessor::RecordDeaggregation(d) => {
                let kind = match (d.sub_record_type.value.as_str(), &d.delimiter) {
                    ("JSON", None) => Some(SubRecordType::Json),
                    ("KPL", None) => Some(SubRecordType::Kpl),
                    ("DELIMITED", Some(delim)) => {
                        use base64::Engine;
                        match base64::engine::general_purpose::STANDARD.decode(&delim.value) {
                            Ok(bytes) if !bytes.is_empty() => Some(SubRecordType::Delimited(bytes)),
                            _ => {
                                c.at(delim, &format!("{at}.record_deaggregation.delimiter"), "must be a non-empty base64 string (Firehose takes the delimiter in base64: `IyMjIw==` is `####`)");
                                None
                            }
                        }
                    }
                    ("DELIMITED", None) => {
                        c.at(
                            &d.sub_record_type,
                            &format!("{at}.record_deaggregation.delimiter"),
                            "is required for DELIMITED",
                        );
                        None
                    }
                    ("JSON" | "KPL", Some(delim)) => {
                        c.at(delim, &format!("{at}.record_deaggregation.delimiter"), "applies only to DELIMITED");
                        None
                    }
                    (other, _) => {
                        c.at(
                            &d.sub_record_type,
                            &format!("{at}.record_deaggregation.sub_record_type"),
                            format!(
                                "`{other}` is not one of JSON, DELIMITED, KPL{}",
                                crate::config::teach::hint(other, ["JSON", "DELIMITED", "KPL"])
                            ),
                        );
                        None
                    }
                };
                ("record_deaggregation", kind.map(ProcessorSpec::Deaggregation))
            }
            RawProcessor::MetadataExtraction(m) => {
                if let Some(engine) = &m.json_parsing_engine {
                    if engine.value != "JQ-1.6" {
                        c.at(
                            engine,
                            &format!("{at}.metadata_extraction.json_parsing_engine"),
                            "only JQ-1.6 is supported (as in Firehose)",
                        );
                    }
                }
                if !dynamic_partitioning {
                    c.at(
                        raw,
                        &at,
                        "metadata_extraction needs `dynamic_partitioning: { enabled: true }` (Firehose rule)",
                    );
                }
                let spec = match crate::process::metadata::MetadataExtraction::compile(&m.query.value) {
                    Ok(_) => Some(ProcessorSpec::MetadataExtraction(m.query.value.clone())),
                    Err(e) => {
                        c.at(&m.query, &format!("{at}.metadata_extraction.query"), e.to_string());
                        None
                    }
                };
                ("metadata_extraction", spec)
            }
            RawProcessor::AppendDelimiter(_) => ("append_delimiter", Some(ProcessorSpec::AppendDelimiter)),
            RawProcessor::Wasm(w) => ("wasm", wasm_processor(c, w, &format!("{at}.wasm"))),
            RawProcessor::Parse(p) => ("parse", parse_processor(c, p, &format!("{at}.parse"))),
            RawProcessor::Jq(j) => match crate::process::jq::JqProgram::compile(&j.query.value) {
                Ok(_) => ("jq", Some(ProcessorSpec::Jq { query: j.query.value.clone(), raw_output: j.raw_output })),
                Err(e) => {
                    c.at(&j.query, &format!("{at}.jq.query"), e.to_string());
                    ("jq", None)
                }
            },
        };
        // A plugin or jq transform may sit anywhere; the built-ins keep Firehose's order around it.
        if name == "wasm" || name == "jq" || name == "parse" {
            out.extend(spec);
            continue;
        }
        let rank = ORDER.iter().position(|n| *n == name);
        if rank <= last_rank {
            c.at(
                raw,
                &at,
                format!(
                    "`{name}` is out of order or repeated: built-in processors run in Firehose's order ({})",
                    ORDER.join(" → ")
                ),
            );
        }
        last_rank = rank;
        out.extend(spec);
    }
    out
}

fn parse_processor(c: &mut Checker, p: &crate::config::RawParse, at: &str) -> Option<ProcessorSpec> {
    use crate::process::parse::{Format, ParseSpec};
    let before = c.errors.len();
    let only = |c: &mut Checker, value: &Option<Spanned<String>>, name: &str, format: &str| {
        if let Some(v) = value {
            c.at(v, &format!("{at}.{name}"), format!("applies to `format: {format}` only"));
        }
    };
    let format = match p.format.value.as_str() {
        "regex" => match &p.pattern {
            Some(pattern) => match regex::Regex::new(&pattern.value) {
                Ok(re) if re.capture_names().flatten().next().is_some() => Some(Format::Regex(re)),
                Ok(_) => {
                    c.at(
                        pattern,
                        &format!("{at}.pattern"),
                        "has no named capture: write `(?P<name>...)` for each field",
                    );
                    None
                }
                Err(e) => {
                    c.at(pattern, &format!("{at}.pattern"), format!("is not a valid regex: {e}"));
                    None
                }
            },
            None => {
                c.at(&p.format, &format!("{at}.pattern"), "is required for `format: regex`");
                None
            }
        },
        "csv" => {
            let delimiter = match &p.delimiter {
                Some(d) if d.value.len() == 1 => d.value.as_bytes()[0],
                Some(d) => {
                    c.at(d, &format!("{at}.delimiter"), "must be one ASCII character");
                    b','
                }
                None => b',',
            };
            match &p.columns {
                Some(cols) if !cols.value.is_empty() => Some(Format::Csv { columns: cols.value.clone(), delimiter }),
                Some(cols) => {
                    c.at(cols, &format!("{at}.columns"), "must name at least one column");
                    None
                }
                None => {
                    c.at(
                        &p.format,
                        &format!("{at}.columns"),
                        "is required for `format: csv` (the column names, in order)",
                    );
                    None
                }
            }
        }
        "logfmt" => Some(Format::Logfmt),
        "syslog" => Some(Format::Syslog),
        "cri" => Some(Format::Cri),
        "docker_json" => Some(Format::DockerJson),
        "json" => Some(Format::Json),
        other => {
            const FORMATS: [&str; 7] = ["regex", "logfmt", "syslog", "cri", "docker_json", "json", "csv"];
            let hint = crate::config::teach::hint(other, FORMATS);
            c.at(
                &p.format,
                &format!("{at}.format"),
                format!("unknown format `{other}`{hint} (one of: {})", FORMATS.join(", ")),
            );
            None
        }
    };
    if p.format.value != "regex" {
        only(c, &p.pattern, "pattern", "regex");
    }
    if p.format.value != "csv" {
        only(c, &p.delimiter, "delimiter", "csv");
        if let Some(cols) = &p.columns {
            c.at(cols, &format!("{at}.columns"), "applies to `format: csv` only");
        }
    }
    let keep_unparsed = match p.on_failure.as_ref().map(|o| o.value.as_str()) {
        None | Some("error") => false,
        Some("keep") => true,
        Some(other) => {
            if let Some(o) = &p.on_failure {
                c.at(o, &format!("{at}.on_failure"), format!("`{other}` is not `error` or `keep`"));
            }
            false
        }
    };
    for (value, name) in [(&p.field, "field"), (&p.target, "target")] {
        if let Some(v) = value.as_ref().filter(|v| v.value.is_empty()) {
            c.at(v, &format!("{at}.{name}"), "must not be empty");
        }
    }
    if c.errors.len() > before {
        return None;
    }
    Some(ProcessorSpec::Parse(ParseSpec {
        format: format?,
        field: p.field.as_ref().map(|f| f.value.clone()),
        target: p.target.as_ref().map(|t| t.value.clone()),
        keep_unparsed,
    }))
}

fn wasm_processor(c: &mut Checker, w: &crate::config::RawWasm, at: &str) -> Option<ProcessorSpec> {
    let before = c.errors.len();
    let size_mb = w.buffer_size_mb.as_ref().map_or(1.0, |s| s.value);
    if let Some(s) = &w.buffer_size_mb {
        if !(0.2..=3.0).contains(&s.value) {
            c.at(s, &format!("{at}.buffer_size_mb"), "must be between 0.2 and 3 (Firehose's processor range)");
        }
    }
    if let Some(s) = &w.buffer_interval_seconds {
        if s.value > 900 {
            c.at(s, &format!("{at}.buffer_interval_seconds"), "must be between 0 and 900");
        }
    }
    let retries = w.number_of_retries.as_ref().map_or(3, |r| r.value);
    if let Some(r) = &w.number_of_retries {
        if r.value > 300 {
            c.at(r, &format!("{at}.number_of_retries"), "must be at most 300");
        }
    }
    let timeout_ms = w.timeout_ms.as_ref().map_or(1_000, |t| t.value);
    if let Some(t) = &w.timeout_ms {
        if !(1..=300_000).contains(&t.value) {
            c.at(t, &format!("{at}.timeout_ms"), "must be between 1 and 300000 (Lambda's 5 minutes)");
        }
    }
    let memory_mb = w.memory_limit_mb.as_ref().map_or(256, |m| m.value);
    if let Some(m) = &w.memory_limit_mb {
        if !(1..=4096).contains(&m.value) {
            c.at(m, &format!("{at}.memory_limit_mb"), "must be between 1 and 4096");
        }
    }
    if c.errors.len() > before {
        return None;
    }
    let settings = crate::process::wasm::WasmSettings {
        module: c.path(&w.module.value),
        config_json: w.config.as_ref().map_or_else(|| "{}".to_string(), |v| v.to_string()),
        max_invocation_bytes: (size_mb * MIB) as usize,
        retries,
        timeout: Duration::from_millis(timeout_ms),
        memory_limit_bytes: (memory_mb as usize) << 20,
        lambda_arn: None,
    };
    // Loading compiles the module, checks its ABI version and runs its sluice_init with the config,
    // so `sluice validate` catches a missing file, a bad module and a refused config.
    match crate::process::wasm::WasmProcessor::load(settings.clone()) {
        Ok(_) => Some(ProcessorSpec::Wasm(settings)),
        Err(e) => {
            c.at(&w.module, &format!("{at}.module"), e);
            None
        }
    }
}
