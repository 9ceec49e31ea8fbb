//! A CreateDeliveryStream/UpdateDestination configuration (Firehose's JSON) → a sluice pipeline
//! (the same shape as a `pipelines:` entry in YAML), which then goes through the config's own
//! validation. Everything the request says either maps onto something sluice runs or is refused
//! here with InvalidArgumentException naming the member: nothing is accepted and then ignored.
//!
//! ARNs are resolved through `control_plane:` (buckets, Lambda functions, Glue tables).

use serde_json::{json, Map, Value};

use super::StoredStream;
use crate::config::control_plane::ControlPlane;
pub use crate::config::kit::firehose::S3_MEMBERS;
use crate::config::kit::firehose::{object_store, refuse, Members, Result, TranslateError};
use conversion::format_conversion;

/// The S3 destination members; the others sluice can run are `config::destinations::FIREHOSE_MEMBERS`.
pub const S3_DESTINATIONS: &[&str] = &["S3DestinationConfiguration", "ExtendedS3DestinationConfiguration"];

/// Whether sluice can run a destination member.
pub fn supported_destination(member: &str) -> bool {
    S3_DESTINATIONS.contains(&member) || crate::config::destinations::FIREHOSE_MEMBERS.contains(&member)
}

/// Destination members of the Firehose model that sluice cannot deliver to.
pub const UNSUPPORTED_DESTINATIONS: &[&str] =
    &["SnowflakeDestinationConfiguration", "AmazonOpenSearchServerlessDestinationConfiguration"];

mod conversion;

/// The sluice pipeline (as JSON in the YAML config's shape) for a stored stream.
pub fn pipeline(stream: &StoredStream, control: &ControlPlane) -> Result<Value> {
    let key = stream.destination_key.as_str();
    let config = &stream.destination;
    let mut pipeline = Map::new();
    pipeline.insert("name".into(), stream.name.clone().into());
    if let Some(source) = crate::config::sources::translate(&stream.stream_type, stream.source.as_ref(), control)? {
        pipeline.insert("source".into(), source);
    }
    let (destination, buffering, processing) = match key {
        "S3DestinationConfiguration" | "ExtendedS3DestinationConfiguration" => {
            let extended = key.starts_with("Extended");
            let extended_members: Vec<&str> = S3_MEMBERS.iter().chain(EXTENDED_S3_ONLY).copied().collect();
            let m = Members::of(config, key, if extended { &extended_members } else { S3_MEMBERS })?;
            let (mut store, _) = object_store(&m, control)?;
            if extended {
                extended_s3(&m, &mut store, control)?;
            }
            if let Some(dp) = m.get("DynamicPartitioningConfiguration") {
                let dp = Members::of(dp, &m.child("DynamicPartitioningConfiguration"), &["Enabled", "RetryOptions"])?;
                if dp.bool("Enabled")?.unwrap_or(false) {
                    pipeline.insert("dynamic_partitioning".into(), json!({ "enabled": true }));
                }
            }
            if let Some(mode) = m.str("S3BackupMode")? {
                if mode != "Disabled" {
                    return refuse(format!("{}.S3BackupMode {mode} (a copy of the source records) is not supported by sluice; use Disabled", m.path));
                }
            }
            if m.get("S3BackupConfiguration").is_some() {
                return refuse(format!("{} is not supported by sluice", m.child("S3BackupConfiguration")));
            }
            (store, m.get("BufferingHints"), m.get("ProcessingConfiguration").map(|p| (p, m.child("ProcessingConfiguration"))))
        }
        other => match crate::config::destinations::translate(other, config, control) {
            Some(t) => {
                let t = t?;
                (t.destination, t.buffering, t.processing)
            }
            None if UNSUPPORTED_DESTINATIONS.contains(&other) => {
                return refuse(format!("{other} is not supported by sluice: it delivers to S3-compatible stores, local directories, HTTP endpoints, OpenSearch/Elasticsearch, Splunk and Redshift"))
            }
            None => return refuse(format!("{other} is not a destination configuration sluice knows")),
        },
    };
    pipeline.insert("destination".into(), destination);
    if let Some(hints) = buffering {
        let h = Members::of(hints, &format!("{key}.BufferingHints"), &["SizeInMBs", "IntervalInSeconds"])?;
        let mut b = Map::new();
        if let Some(s) = h.number("SizeInMBs")? {
            b.insert("size_mb".into(), s.into());
        }
        if let Some(i) = h.number("IntervalInSeconds")? {
            b.insert("interval_seconds".into(), (i as u64).into());
        }
        pipeline.insert("buffering".into(), b.into());
    }
    if let Some((processing, path)) = processing {
        let processors = processors(processing, &path, control)?;
        if !processors.is_empty() {
            pipeline.insert("processors".into(), processors.into());
        }
    }
    Ok(Value::Object(pipeline))
}

/// Extended S3's members beyond [`S3_MEMBERS`].
const EXTENDED_S3_ONLY: &[&str] = &[
    "ProcessingConfiguration",
    "S3BackupMode",
    "S3BackupConfiguration",
    "DataFormatConversionConfiguration",
    "DynamicPartitioningConfiguration",
    "FileExtension",
    "CustomTimeZone",
];

/// Extended S3's own members, added to the object-store block: FileExtension, CustomTimeZone (UTC
/// only) and DataFormatConversionConfiguration.
fn extended_s3(m: &Members<'_>, block: &mut Value, control: &ControlPlane) -> Result<()> {
    let Some(inner) = block.as_object_mut().and_then(|o| o.values_mut().next()).and_then(Value::as_object_mut) else {
        return refuse("internal: a bucket mapping is not an object");
    };
    if let Some(ext) = m.str("FileExtension")? {
        inner.insert("file_extension".into(), ext.into());
    }
    if let Some(tz) = m.str("CustomTimeZone")? {
        if !matches!(tz, "UTC" | "Etc/UTC" | "") {
            return refuse(format!(
                "{} {tz} is not supported by sluice: prefixes are evaluated in UTC",
                m.child("CustomTimeZone")
            ));
        }
    }
    if let Some(conversion) = m.get("DataFormatConversionConfiguration") {
        if let Some(c) = format_conversion(conversion, &m.child("DataFormatConversionConfiguration"), control)? {
            inner.insert("format_conversion".into(), c);
        }
    }
    Ok(())
}

/// `ProcessingConfiguration` → sluice processors, one for one. A Lambda function becomes the WASM
/// module of the same name in `control_plane.functions.dir`.
fn processors(value: &Value, path: &str, control: &ControlPlane) -> Result<Vec<Value>> {
    let m = Members::of(value, path, &["Enabled", "Processors"])?;
    if !m.bool("Enabled")?.unwrap_or(false) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (i, p) in m.get("Processors").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("{path}.Processors[{i}]");
        let p = Members::of(p, &at, &["Type", "Parameters"])?;
        let kind = p.required_str("Type")?;
        let mut params = std::collections::BTreeMap::new();
        for (j, param) in p.get("Parameters").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let param = Members::of(param, &format!("{at}.Parameters[{j}]"), &["ParameterName", "ParameterValue"])?;
            params.insert(param.required_str("ParameterName")?, param.required_str("ParameterValue")?);
        }
        let known = |names: &[&str]| -> Result<()> {
            match params.keys().find(|k| !names.contains(k)) {
                Some(k) => refuse(format!("{at}: parameter {k} of a {kind} processor is not supported by sluice")),
                None => Ok(()),
            }
        };
        let required = |name: &str| -> Result<&str> {
            params
                .get(name)
                .copied()
                .ok_or_else(|| TranslateError(format!("{at}: a {kind} processor needs the {name} parameter")))
        };
        out.push(match kind {
            "RecordDeAggregation" => {
                known(&["SubRecordType", "Delimiter"])?;
                let mut d = Map::new();
                d.insert("sub_record_type".into(), required("SubRecordType")?.into());
                if let Some(delim) = params.get("Delimiter") {
                    d.insert("delimiter".into(), (*delim).into());
                }
                json!({ "record_deaggregation": d })
            }
            "Decompression" => {
                known(&["CompressionFormat"])?;
                json!({ "decompression": { "format": required("CompressionFormat")? } })
            }
            "CloudWatchLogProcessing" => {
                known(&["DataMessageExtraction"])?;
                let extract = required("DataMessageExtraction")?.eq_ignore_ascii_case("true");
                json!({ "cloudwatch_log_processing": { "data_message_extraction": extract } })
            }
            "MetadataExtraction" => {
                known(&["MetadataExtractionQuery", "JsonParsingEngine"])?;
                let mut d = Map::new();
                d.insert("query".into(), required("MetadataExtractionQuery")?.into());
                if let Some(engine) = params.get("JsonParsingEngine") {
                    d.insert("json_parsing_engine".into(), (*engine).into());
                }
                json!({ "metadata_extraction": d })
            }
            "AppendDelimiterToRecord" => {
                known(&[])?;
                json!({ "append_delimiter": {} })
            }
            "Lambda" => {
                known(&["LambdaArn", "NumberOfRetries", "RoleArn", "BufferSizeInMBs", "BufferIntervalInSeconds"])?;
                let arn = required("LambdaArn")?;
                let Some(dir) = &control.functions_dir else {
                    return refuse(format!("{at}: LambdaArn {arn} cannot run: control_plane.functions.dir is not set, so sluice has no WASM module for it"));
                };
                let function = lambda_function_name(arn)
                    .ok_or_else(|| TranslateError(format!("{at}: `{arn}` is not a Lambda function ARN")))?;
                let module = dir.join(format!("{function}.wasm"));
                let mut d = Map::new();
                d.insert("module".into(), module.to_string_lossy().into_owned().into());
                // A Lambda takes no configuration; a plugin may: `<name>.json` beside the module.
                let config_file = dir.join(format!("{function}.json"));
                if let Ok(text) = std::fs::read_to_string(&config_file) {
                    let config: Value = serde_json::from_str(&text).map_err(|e| {
                        TranslateError(format!("{at}: {} is not valid JSON: {e}", config_file.display()))
                    })?;
                    d.insert("config".into(), config);
                }
                let number = |name: &str| -> Result<Option<f64>> {
                    params
                        .get(name)
                        .map(|v| v.parse::<f64>().map_err(|_| TranslateError(format!("{at}: {name} `{v}` is not a number"))))
                        .transpose()
                };
                if let Some(n) = number("NumberOfRetries")? {
                    d.insert("number_of_retries".into(), (n as u64).into());
                }
                if let Some(n) = number("BufferSizeInMBs")? {
                    d.insert("buffer_size_mb".into(), n.into());
                }
                if let Some(n) = number("BufferIntervalInSeconds")? {
                    d.insert("buffer_interval_seconds".into(), (n as u64).into());
                }
                json!({ "wasm": d })
            }
            other => return refuse(format!("{at}: processor type {other} is not supported by sluice")),
        });
    }
    Ok(out)
}

/// `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]` → `<name>`, which must be a
/// plain file name.
pub fn lambda_function_name(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    let name = parts.by_ref().skip_while(|p| *p != "function").nth(1)?;
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    plain.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_arns_name_a_module() {
        assert_eq!(lambda_function_name("arn:aws:lambda:us-east-1:123456789012:function:redact"), Some("redact"));
        assert_eq!(
            lambda_function_name("arn:aws:lambda:us-east-1:123456789012:function:redact:$LATEST"),
            Some("redact")
        );
        assert_eq!(lambda_function_name("arn:aws:lambda:us-east-1:1:function:../etc"), None);
        assert_eq!(lambda_function_name("redact"), None);
    }
}
