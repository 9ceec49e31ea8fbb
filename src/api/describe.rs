//! DescribeDeliveryStream and ListDeliveryStreams. A stream created over the API is described
//! from its stored request (`control::describe`); one declared in YAML from its running spec.

use std::time::UNIX_EPOCH;

use axum::body::Bytes;
use axum::response::Response;
use serde::Deserialize;

use super::model::{ListInput, ListOutput};
use super::{ok_json, parse, ApiError, ApiState};
use crate::config::StoreSpec;

use crate::format::convert::orc::OrcCompression;
use crate::format::convert::parquet::ParquetCompression;
use crate::format::convert::{ConversionSpec, InputRules, OutputFormat};
use crate::pipeline::PipelineHandle;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeInput {
    delivery_stream_name: String,
    limit: Option<i64>,
    exclusive_start_destination_id: Option<String>,
}

const DESTINATION_ID: &str = "destinationId-000000000001";

pub(super) fn describe(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let input: DescribeInput = parse(body)?;
    let name = &input.delivery_stream_name;
    super::check_name(name)?;
    if let Some(limit) = input.limit {
        if !(1..=10_000).contains(&limit) {
            return Err(ApiError::constraint("limit", "Member must have value between 1 and 10000"));
        }
    }
    // One destination per stream: starting after it leaves none.
    let past_the_only_destination = input.exclusive_start_destination_id.as_deref() == Some(DESTINATION_ID);
    let not_found = || ApiError::ResourceNotFound(state.daemon.not_found(name).to_string());
    let mut description = match state.daemon.stored_stream(name) {
        Some(stored) => {
            let created = stored.created_ms as f64 / 1000.0;
            let mut d = serde_json::json!({
                "DeliveryStreamName": stored.name,
                "DeliveryStreamARN": state.daemon.identity().stream_arn(&stored.name),
                "DeliveryStreamStatus": stored.status.name(),
                "DeliveryStreamType": stored.stream_type,
                "DeliveryStreamEncryptionConfiguration": crate::stored::describe::encryption(&stored),
                "VersionId": stored.version.to_string(),
                "CreateTimestamp": created,
                "LastUpdateTimestamp": stored.updated_ms as f64 / 1000.0,
                "Destinations": [crate::stored::describe::destination(&stored)],
                "HasMoreDestinations": false,
            });
            if let (Some(source), Some(o)) = (&stored.source, d.as_object_mut()) {
                let start =
                    state.daemon.get(name).and_then(|p| p.status.source_start_ms()).unwrap_or(stored.created_ms);
                let mut description = source.clone();
                if let Some(s) = description.as_object_mut() {
                    s.insert("DeliveryStartTimestamp".into(), (start as f64 / 1000.0).into());
                }
                // The request's source member, described under its Firehose name.
                let member = match stored.stream_type.as_str() {
                    crate::source::kafka::firehose::STREAM_TYPE => "MSKSourceDescription",
                    _ => "KinesisStreamSourceDescription",
                };
                o.insert("Source".into(), serde_json::json!({ member: description }));
            }
            d
        }
        None => describe_stream(&*state.daemon.get(name).ok_or_else(not_found)?, state.daemon.identity()),
    };
    if past_the_only_destination {
        if let Some(o) = description.as_object_mut() {
            o.insert("Destinations".into(), serde_json::json!([]));
        }
    }
    Ok(ok_json(&serde_json::json!({ "DeliveryStreamDescription": description })))
}

/// Firehose's `DataFormatConversionConfiguration` for a converting destination. The schema comes
/// from the config, not Glue, so `SchemaConfiguration` names no table.
fn data_format_conversion(c: &ConversionSpec) -> serde_json::Value {
    let deserializer = match &c.input {
        InputRules::OpenX { case_insensitive, dots_to_underscores, column_to_json_key } => serde_json::json!({
            "OpenXJsonSerDe": {
                "CaseInsensitive": case_insensitive,
                "ConvertDotsInJsonKeysToUnderscores": dots_to_underscores,
                "ColumnToJsonKeyMappings": column_to_json_key,
            }
        }),
        InputRules::Hive { timestamp_formats } => serde_json::json!({
            "HiveJsonSerDe": {
                "TimestampFormats": timestamp_formats.iter().map(|f| f.as_configured()).collect::<Vec<_>>(),
            }
        }),
    };
    let serializer = match &c.output {
        OutputFormat::Parquet(p) => serde_json::json!({
            "ParquetSerDe": {
                "BlockSizeBytes": p.block_size_bytes,
                "PageSizeBytes": p.page_size_bytes,
                "Compression": match p.compression {
                    ParquetCompression::Uncompressed => "UNCOMPRESSED",
                    ParquetCompression::Snappy => "SNAPPY",
                    ParquetCompression::Gzip => "GZIP",
                    ParquetCompression::Zstd => "ZSTD",
                },
                "EnableDictionaryCompression": p.enable_dictionary_compression,
                "MaxPaddingBytes": 0,
                "WriterVersion": if p.writer_version_2 { "V2" } else { "V1" },
            }
        }),
        OutputFormat::Orc(o) => serde_json::json!({
            "OrcSerDe": {
                "StripeSizeBytes": o.stripe_size_bytes,
                "RowIndexStride": o.row_index_stride,
                "EnablePadding": false,
                "Compression": match o.compression {
                    OrcCompression::None => "NONE",
                    OrcCompression::Zlib => "ZLIB",
                    OrcCompression::Snappy => "SNAPPY",
                    OrcCompression::Zstd => "ZSTD",
                },
                "BloomFilterColumns": o.bloom_filter_columns,
                "BloomFilterFalsePositiveProbability": o.bloom_filter_fpp,
                "DictionaryKeyThreshold": o.dictionary_key_threshold,
                "FormatVersion": if o.format_0_11 { "V0_11" } else { "V0_12" },
            }
        }),
    };
    serde_json::json!({
        "Enabled": true,
        "SchemaConfiguration": {},
        "InputFormatConfiguration": { "Deserializer": deserializer },
        "OutputFormatConfiguration": { "Serializer": serializer },
    })
}

/// Firehose's DeliveryStreamType for a pipeline's source.
pub(super) fn stream_type(spec: &crate::config::PipelineSpec) -> &'static str {
    crate::config::sources::stream_type(&spec.source)
}

fn describe_stream(p: &PipelineHandle, id: &crate::identity::Identity) -> serde_json::Value {
    let spec = &p.spec;
    let d = &spec.store;
    let created = p.created_at.duration_since(UNIX_EPOCH).map_or(0.0, |t| t.as_secs_f64());
    let bucket_arn = match &d.store {
        StoreSpec::S3 { bucket, .. } => format!("arn:aws:s3:::{bucket}"),
        StoreSpec::Local { path } => format!("file://{}", path.display()),
    };
    let s3 = serde_json::json!({
        "RoleARN": id.role_arn(),
        "BucketARN": bucket_arn,
        "Prefix": d.configured_prefix.clone().unwrap_or_default(),
        "ErrorOutputPrefix": d.configured_error_prefix.clone().unwrap_or_default(),
        "BufferingHints": {
            "SizeInMBs": spec.buffering.size_bytes >> 20,
            "IntervalInSeconds": spec.buffering.interval.as_secs(),
        },
        "CompressionFormat": d.compression.name(),
        "EncryptionConfiguration": { "NoEncryptionConfig": "NoEncryption" },
        "CloudWatchLoggingOptions": { "Enabled": false },
    });
    let mut extended = s3.clone();
    if let Some(obj) = extended.as_object_mut() {
        obj.insert("S3BackupMode".into(), "Disabled".into());
        obj.insert("FileExtension".into(), d.file_extension.clone().into());
        obj.insert("ProcessingConfiguration".into(), processing_configuration(spec));
        obj.insert(
            "DynamicPartitioningConfiguration".into(),
            serde_json::json!({ "Enabled": spec.dynamic_partitioning.is_some() }),
        );
        if let Some(c) = &d.format_conversion {
            obj.insert("DataFormatConversionConfiguration".into(), data_format_conversion(c));
        }
    }
    let destination = match spec.sending.as_deref() {
        Some(endpoint) => {
            let (key, description) = endpoint.describe(&describe_context(spec, s3, id));
            serde_json::json!({ "DestinationId": DESTINATION_ID, key: description })
        }
        None => serde_json::json!({
            "DestinationId": DESTINATION_ID,
            "ExtendedS3DestinationDescription": extended,
            "S3DestinationDescription": s3,
        }),
    };
    let mut description = serde_json::json!({
            "DeliveryStreamName": spec.name,
            "DeliveryStreamARN": id.stream_arn(&spec.name),
            "DeliveryStreamStatus": "ACTIVE",
            "DeliveryStreamType": stream_type(spec),
            "DeliveryStreamEncryptionConfiguration": { "Status": "DISABLED" },
            "VersionId": spec.version.to_string(),
            "CreateTimestamp": created,
            "LastUpdateTimestamp": created,
            "Destinations": [destination],
            "HasMoreDestinations": false,
    });
    let start = p.status.source_start_ms().map_or(created, |ms| ms as f64 / 1000.0);
    if let (Some(source), Some(o)) =
        (crate::config::sources::describe(&spec.source, &id.role_arn(), start), description.as_object_mut())
    {
        o.insert("Source".into(), source);
    }
    description
}

/// What every destination's description shares (`config::kit::DescribeContext`).
fn describe_context(
    spec: &crate::config::PipelineSpec,
    backup: serde_json::Value,
    id: &crate::identity::Identity,
) -> crate::config::kit::DescribeContext {
    crate::config::kit::DescribeContext {
        role_arn: id.role_arn(),
        backup,
        processing: processing_configuration(spec),
        buffering: serde_json::json!({
            "SizeInMBs": spec.buffering.size_bytes >> 20,
            "IntervalInSeconds": spec.buffering.interval.as_secs(),
        }),
    }
}

pub(super) fn list(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let input: ListInput = if body.iter().all(u8::is_ascii_whitespace) { ListInput::default() } else { parse(body)? };
    let limit = input.limit.unwrap_or(10);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::constraint("limit", "Member must have value between 1 and 10000"));
    }
    let wanted = input.delivery_stream_type.as_deref();
    if let Some(t) = wanted {
        if !super::control::STREAM_TYPES.contains(&t) {
            return Err(ApiError::constraint(
                "deliveryStreamType",
                "Member must satisfy enum value set: [DirectPut, KinesisStreamAsSource, MSKAsSource, DatabaseAsSource]",
            ));
        }
    }
    let mut all: std::collections::BTreeSet<String> = state.daemon.names().into_iter().collect();
    all.extend(state.daemon.stored_stream_names());
    let names: Vec<String> = all
        .into_iter()
        .filter(|n| input.exclusive_start_delivery_stream_name.as_ref().is_none_or(|s| n > s))
        .filter(|n| {
            let t = match (state.daemon.stored_stream(n), state.daemon.get(n)) {
                (Some(s), _) => s.stream_type,
                (None, Some(p)) => stream_type(&p.spec).to_string(),
                (None, None) => "DirectPut".to_string(),
            };
            wanted.is_none_or(|w| w == t)
        })
        .collect();
    let has_more = names.len() > limit as usize;
    Ok(ok_json(&ListOutput {
        delivery_stream_names: names.into_iter().take(limit as usize).collect(),
        has_more_delivery_streams: has_more,
    }))
}

/// The pipeline's processors as Firehose's `ProcessingConfiguration`. A WASM plugin is described
/// as the `Lambda` processor it stands in for (its module path as `LambdaArn`); the jq transform,
/// KPL de-aggregation and `parse:` have no Firehose equivalent and appear as the sluice extensions
/// `Jq`, `SubRecordType: KPL` and `Parse`.
fn processing_configuration(spec: &crate::config::PipelineSpec) -> serde_json::Value {
    use crate::config::ProcessorSpec;
    use crate::process::deaggregate::SubRecordType;
    use base64::Engine;
    let param = |name: &str, value: String| serde_json::json!({ "ParameterName": name, "ParameterValue": value });
    let processors: Vec<serde_json::Value> = spec
        .processors
        .iter()
        .map(|p| match p {
            ProcessorSpec::GzipDecompression => serde_json::json!({ "Type": "Decompression",
                "Parameters": [param("CompressionFormat", "GZIP".into())] }),
            ProcessorSpec::CloudWatchLogProcessing => serde_json::json!({ "Type": "CloudWatchLogProcessing",
                "Parameters": [param("DataMessageExtraction", "true".into())] }),
            ProcessorSpec::Deaggregation(kind) => {
                let params = match kind {
                    SubRecordType::Json => vec![param("SubRecordType", "JSON".into())],
                    SubRecordType::Kpl => vec![param("SubRecordType", "KPL".into())],
                    SubRecordType::Delimited(d) => vec![
                        param("SubRecordType", "DELIMITED".into()),
                        param("Delimiter", base64::engine::general_purpose::STANDARD.encode(d)),
                    ],
                };
                serde_json::json!({ "Type": "RecordDeAggregation", "Parameters": params })
            }
            ProcessorSpec::MetadataExtraction(query) => serde_json::json!({ "Type": "MetadataExtraction",
                "Parameters": [param("MetadataExtractionQuery", query.clone()), param("JsonParsingEngine", "JQ-1.6".into())] }),
            ProcessorSpec::Jq { query, raw_output } => serde_json::json!({ "Type": "Jq",
                "Parameters": [param("Query", query.clone()), param("RawOutput", raw_output.to_string())] }),
            ProcessorSpec::AppendDelimiter => serde_json::json!({ "Type": "AppendDelimiterToRecord", "Parameters": [] }),
            ProcessorSpec::Wasm(w) => serde_json::json!({ "Type": "Lambda", "Parameters": [
                param("LambdaArn", w.module.display().to_string()),
                param("NumberOfRetries", w.retries.to_string()),
                param("BufferSizeInMBs", format!("{}", w.max_invocation_bytes as f64 / (1 << 20) as f64)),
            ] }),
            ProcessorSpec::Parse(p) => {
                use crate::process::parse::Format;
                let format = match &p.format {
                    Format::Regex(_) => "regex",
                    Format::Logfmt => "logfmt",
                    Format::Syslog => "syslog",
                    Format::Cri => "cri",
                    Format::DockerJson => "docker_json",
                    Format::Json => "json",
                    Format::Csv { .. } => "csv",
                };
                let mut params = vec![param("Format", format.into())];
                if let Format::Regex(re) = &p.format {
                    params.push(param("Pattern", re.as_str().into()));
                }
                if let Some(field) = &p.field {
                    params.push(param("Field", field.clone()));
                }
                serde_json::json!({ "Type": "Parse", "Parameters": params })
            }
        })
        .collect();
    serde_json::json!({ "Enabled": !processors.is_empty(), "Processors": processors })
}
