//! The Firehose Direct PUT API, wire-compatible with the AWS SDKs and CLI (`POST /` with
//! `X-Amz-Target: Firehose_20150804.<Operation>`, JSON 1.1), plus `/health` and `/metrics`.
//!
//! Requests are not authenticated yet: signatures are accepted and ignored.

mod error;
mod model;
pub mod server;

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

pub use error::ApiError;
use model::*;

use crate::buffer::wal::FrameBuilder;
use crate::config::StoreSpec;
use crate::daemon::{Daemon, LookupError, ACCOUNT_ID};
use crate::format::convert::orc::OrcCompression;
use crate::format::convert::parquet::ParquetCompression;
use crate::format::convert::{ConversionSpec, InputRules, OutputFormat};
use crate::pipeline::{now_ms, PipelineHandle};
use crate::source::direct_put::IngestError;

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const TARGET_PREFIX: &str = "Firehose_20150804.";
/// Firehose limits (spec §1).
pub const MAX_RECORD_BYTES: usize = 1_024_000;
pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// Per-record ErrorMessage for records refused because the WAL is full.
const STORAGE_FULL_RECORD_MESSAGE: &str = "storage for this delivery stream is full; retry this record later";
/// Enough for a 4 MiB batch in base64 plus JSON; larger bodies cannot be valid.
const MAX_BODY_BYTES: usize = 8 << 20;

#[derive(Clone)]
pub struct ApiState {
    pub daemon: Arc<Daemon>,
    pub metrics: PrometheusHandle,
    /// How long a request body may take to arrive.
    pub body_timeout: std::time::Duration,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", post(dispatch))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

pub(crate) fn request_id() -> HeaderValue {
    HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn ok_json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            let headers = response.headers_mut();
            headers.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
            headers.insert("x-amzn-requestid", request_id());
            response
        }
        Err(e) => ApiError::InternalFailure(e.to_string()).into_response(),
    }
}

/// The operations a response is counted under; anything else is `unknown` (the label set stays
/// bounded whatever clients send).
const OPERATIONS: &[&str] = &[
    "PutRecord",
    "PutRecordBatch",
    "DescribeDeliveryStream",
    "ListDeliveryStreams",
    "CreateDeliveryStream",
    "DeleteDeliveryStream",
    "UpdateDestination",
    "TagDeliveryStream",
    "UntagDeliveryStream",
    "ListTagsForDeliveryStream",
    "StartDeliveryStreamEncryption",
    "StopDeliveryStreamEncryption",
];

async fn dispatch(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let operation = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(|op| OPERATIONS.iter().find(|known| **known == op))
        .copied()
        .unwrap_or("unknown");
    let response = handle(state, target, &headers, body).await;
    metrics::counter!("sluice_api_responses_total", "operation" => operation, "status" => response.status().as_str().to_string())
        .increment(1);
    response
}

async fn handle(state: ApiState, target: &str, headers: &HeaderMap, body: Body) -> Response {
    let Some(operation) = target.strip_prefix(TARGET_PREFIX) else {
        return ApiError::UnknownOperation(format!(
            "unknown X-Amz-Target `{target}`: expected {TARGET_PREFIX}<Operation>"
        ))
        .into_response();
    };
    let too_large = || {
        ApiError::InvalidArgument(format!(
            "request body exceeds {MAX_BODY_BYTES} bytes; a batch may hold at most 4 MiB of data"
        ))
        .into_response()
    };
    // Refuse a declared oversize body before reading any of it (and without waiting for it).
    let declared = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return close_after(too_large());
    }
    let body = match tokio::time::timeout(state.body_timeout, to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return close_after(too_large()),
        Err(_) => {
            return close_after(
                ApiError::RequestTimeout(format!(
                    "the request body did not arrive within {} seconds",
                    state.body_timeout.as_secs()
                ))
                .into_response(),
            )
        }
    };
    let result = match operation {
        "PutRecord" => put_record(&state, &body).await,
        "PutRecordBatch" => put_record_batch(&state, &body).await,
        "DescribeDeliveryStream" => describe(&state, &body),
        "ListDeliveryStreams" => list(&state, &body),
        "CreateDeliveryStream"
        | "DeleteDeliveryStream"
        | "UpdateDestination"
        | "TagDeliveryStream"
        | "UntagDeliveryStream"
        | "ListTagsForDeliveryStream"
        | "StartDeliveryStreamEncryption"
        | "StopDeliveryStreamEncryption" => Err(ApiError::InvalidArgument(format!(
            "{operation} is not supported: sluice delivery streams are declared in its config file"
        ))),
        other => Err(ApiError::UnknownOperation(format!("unknown operation {other}"))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The rest of the body is not read, so the connection cannot carry another request.
fn close_after(mut response: Response) -> Response {
    response.headers_mut().insert("connection", HeaderValue::from_static("close"));
    response
}

/// Maps serde errors: a missing member is a constraint violation, anything else is malformed JSON.
fn parse<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        match text.strip_prefix("missing field `") {
            Some(rest) => {
                let member = rest.split('`').next().unwrap_or("");
                let member = lower_first(member);
                ApiError::Validation(format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"))
            }
            None => ApiError::InvalidArgument(format!("the request body is not valid JSON for this operation: {text}")),
        }
    })
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
}

fn stream(state: &ApiState, name: &str) -> Result<Arc<PipelineHandle>, ApiError> {
    if name.is_empty() || name.len() > 64 {
        return Err(ApiError::constraint("deliveryStreamName", "Member must have length between 1 and 64"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(ApiError::constraint(
            "deliveryStreamName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    state.daemon.lookup(name).map_err(|e| match e {
        LookupError::NotFound(_) | LookupError::AutoCreateLimit { .. } => ApiError::ResourceNotFound(e.to_string()),
        LookupError::Closing(_) => ApiError::ServiceUnavailable(e.to_string()),
        LookupError::Failed(m) => ApiError::InternalFailure(m),
    })
}

/// Decodes records straight into a WAL frame, enforcing Firehose's per-record and per-batch limits.
/// Returns the frame and each record's decoded size.
fn build_frame(
    records: &[RecordIn<'_>],
    member: impl Fn(usize) -> String,
) -> Result<(FrameBuilder, Vec<usize>), ApiError> {
    let estimate: usize = records.iter().map(|r| r.data.len() / 4 * 3).sum();
    let mut frame = FrameBuilder::new(now_ms(), estimate.min(MAX_BATCH_BYTES + 4096));
    let mut total = 0usize;
    let mut sizes = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        if record.data.len() / 4 * 3 > MAX_RECORD_BYTES + 3 {
            return Err(ApiError::constraint(&member(i), "Member must have length less than or equal to 1024000"));
        }
        let len = frame
            .push_with(|buf| base64::engine::general_purpose::STANDARD.decode_vec(record.data.as_bytes(), buf))
            .map_err(|e| ApiError::InvalidArgument(format!("{} is not valid base64: {e}", member(i))))?;
        if len > MAX_RECORD_BYTES {
            return Err(ApiError::constraint(&member(i), "Member must have length less than or equal to 1024000"));
        }
        total += len;
        sizes.push(len);
    }
    if total > MAX_BATCH_BYTES {
        return Err(ApiError::InvalidArgument(format!(
            "Records size exceeds 4 MB limit: the batch holds {total} bytes of data"
        )));
    }
    Ok((frame, sizes))
}

fn ingest_error(e: IngestError) -> ApiError {
    match e {
        IngestError::Full { .. } | IngestError::Closed | IngestError::Unavailable(_) => {
            ApiError::ServiceUnavailable(e.to_string())
        }
    }
}

fn record_id(pipeline: &PipelineHandle, seq: u64) -> RecordId {
    RecordId { seed: pipeline.seed, seq }
}

async fn put_record(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let input: PutRecordInput = parse(body)?;
    // Validate before the lookup: a refused request must not auto-create its stream.
    let (frame, sizes) = build_frame(std::slice::from_ref(&input.record), |_| "record.data".to_string())?;
    let pipeline = stream(state, &input.delivery_stream_name)?;
    let bytes: usize = sizes.iter().sum();
    match pipeline.ingest.put(frame).await {
        Ok(accepted) => {
            pipeline.status.put_accepted(now_ms());
            let m = &pipeline.metrics;
            m.incoming_records.increment(1);
            m.incoming_bytes.increment(bytes as u64);
            m.incoming_put_requests.increment(1);
            m.put_record_latency.record(started.elapsed());
            Ok(ok_json(&PutRecordOutput { record_id: record_id(&pipeline, accepted.first_seq), encrypted: false }))
        }
        Err(e) => {
            pipeline.metrics.throttled_records.increment(1);
            Err(ingest_error(e))
        }
    }
}

async fn put_record_batch(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let input: PutRecordBatchInput = parse(body)?;
    // Validate before the lookup: a refused request must not auto-create its stream.
    let n = input.records.len();
    if n == 0 {
        return Err(ApiError::constraint("records", "Member must have length greater than or equal to 1"));
    }
    if n > MAX_BATCH_RECORDS {
        return Err(ApiError::constraint("records", "Member must have length less than or equal to 500"));
    }
    let (frame, sizes) = build_frame(&input.records, |i| format!("records.{}.member.data", i + 1))?;
    let pipeline = stream(state, &input.delivery_stream_name)?;
    drop(input);
    let m = &pipeline.metrics;
    let accepted = match pipeline.ingest.put(frame).await {
        Ok(a) => a,
        Err(e) => {
            // Nothing fit: refuse the whole call with a 503, which SDKs retry with backoff.
            m.throttled_records.increment(n as u64);
            return Err(ingest_error(e));
        }
    };
    pipeline.status.put_accepted(now_ms());
    let k = accepted.accepted;
    let mut responses = Vec::with_capacity(n);
    for i in 0..k {
        responses.push(RecordResult {
            record_id: Some(record_id(&pipeline, accepted.first_seq + i as u64)),
            error_code: None,
            error_message: None,
        });
    }
    if k < n {
        let message = STORAGE_FULL_RECORD_MESSAGE.to_string();
        for _ in k..n {
            responses.push(RecordResult {
                record_id: None,
                error_code: Some("ServiceUnavailableException"),
                error_message: Some(message.clone()),
            });
        }
        m.throttled_records.increment((n - k) as u64);
    }
    m.incoming_records.increment(k as u64);
    m.incoming_bytes.increment(sizes.iter().take(k).map(|&s| s as u64).sum());
    m.incoming_put_requests.increment(1);
    m.put_record_batch_latency.record(started.elapsed());
    Ok(ok_json(&PutRecordBatchOutput { failed_put_count: n - k, encrypted: false, request_responses: responses }))
}

fn describe(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let input: StreamNameInput = parse(body)?;
    let p = state.daemon.get(&input.delivery_stream_name).ok_or_else(|| {
        ApiError::ResourceNotFound(LookupError::NotFound(input.delivery_stream_name.clone()).to_string())
    })?;
    Ok(ok_json(&describe_stream(&p)))
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

fn describe_stream(p: &PipelineHandle) -> serde_json::Value {
    let spec = &p.spec;
    let d = &spec.destination;
    let created = p.created_at.duration_since(UNIX_EPOCH).map_or(0.0, |t| t.as_secs_f64());
    let bucket_arn = match &d.store {
        StoreSpec::S3 { bucket, .. } => format!("arn:aws:s3:::{bucket}"),
        StoreSpec::Local { path } => format!("file://{}", path.display()),
    };
    let s3 = serde_json::json!({
        "RoleARN": format!("arn:aws:iam::{ACCOUNT_ID}:role/sluice"),
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
        obj.insert("ProcessingConfiguration".into(), serde_json::json!({ "Enabled": false, "Processors": [] }));
        if let Some(c) = &d.format_conversion {
            obj.insert("DataFormatConversionConfiguration".into(), data_format_conversion(c));
        }
    }
    let destination = match spec.endpoint.as_deref() {
        Some(crate::config::EndpointSpec::Http(h)) => serde_json::json!({
            "DestinationId": "destinationId-000000000001",
            "HttpEndpointDestinationDescription": http_endpoint_description(spec, h, s3),
        }),
        Some(crate::config::EndpointSpec::Search(s)) => serde_json::json!({
            "DestinationId": "destinationId-000000000001",
            (if s.elasticsearch { "ElasticsearchDestinationDescription" } else { "AmazonopensearchserviceDestinationDescription" }):
                search_description(spec, s, s3),
        }),
        Some(crate::config::EndpointSpec::Splunk(s)) => serde_json::json!({
            "DestinationId": "destinationId-000000000001",
            "SplunkDestinationDescription": {
                "HECEndpoint": s.endpoint,
                "HECEndpointType": if s.raw { "Raw" } else { "Event" },
                "HECAcknowledgmentTimeoutInSeconds": s.ack_timeout.as_secs(),
                "RetryOptions": { "DurationInSeconds": s.retry_duration.as_secs() },
                "S3BackupMode": if s.backup_all { "AllEvents" } else { "FailedEventsOnly" },
                "S3DestinationDescription": s3,
                "ProcessingConfiguration": { "Enabled": false, "Processors": [] },
                "CloudWatchLoggingOptions": { "Enabled": false },
                "BufferingHints": {
                    "SizeInMBs": spec.buffering.size_bytes >> 20,
                    "IntervalInSeconds": spec.buffering.interval.as_secs(),
                },
            },
        }),
        None => serde_json::json!({
            "DestinationId": "destinationId-000000000001",
            "ExtendedS3DestinationDescription": extended,
            "S3DestinationDescription": s3,
        }),
    };
    serde_json::json!({
        "DeliveryStreamDescription": {
            "DeliveryStreamName": spec.name,
            "DeliveryStreamARN": crate::daemon::stream_arn(&spec.name),
            "DeliveryStreamStatus": "ACTIVE",
            "DeliveryStreamType": "DirectPut",
            "DeliveryStreamEncryptionConfiguration": { "Status": "DISABLED" },
            "VersionId": "1",
            "CreateTimestamp": created,
            "LastUpdateTimestamp": created,
            "Destinations": [destination],
            "HasMoreDestinations": false,
        }
    })
}

/// Firehose's `HttpEndpointDestinationDescription`. The access key is never described (Firehose
/// omits it too).
fn http_endpoint_description(
    spec: &crate::config::PipelineSpec,
    h: &crate::config::HttpEndpointSpec,
    backup: serde_json::Value,
) -> serde_json::Value {
    let attributes: Vec<serde_json::Value> = h
        .common_attributes
        .iter()
        .map(|(k, v)| serde_json::json!({ "AttributeName": k, "AttributeValue": v }))
        .collect();
    let mut endpoint = serde_json::json!({ "Url": h.url });
    if let (Some(name), Some(obj)) = (&h.name, endpoint.as_object_mut()) {
        obj.insert("Name".into(), name.clone().into());
    }
    serde_json::json!({
        "EndpointConfiguration": endpoint,
        "BufferingHints": {
            "SizeInMBs": spec.buffering.size_bytes >> 20,
            "IntervalInSeconds": spec.buffering.interval.as_secs(),
        },
        "CloudWatchLoggingOptions": { "Enabled": false },
        "RequestConfiguration": {
            "ContentEncoding": if h.gzip { "GZIP" } else { "NONE" },
            "CommonAttributes": attributes,
        },
        "ProcessingConfiguration": { "Enabled": false, "Processors": [] },
        "RoleARN": format!("arn:aws:iam::{ACCOUNT_ID}:role/sluice"),
        "RetryOptions": { "DurationInSeconds": h.retry_duration.as_secs() },
        "S3BackupMode": if h.backup_all { "AllData" } else { "FailedDataOnly" },
        "S3DestinationDescription": backup,
    })
}

/// Firehose's `AmazonopensearchserviceDestinationDescription` / `ElasticsearchDestinationDescription`
/// (credentials are never described).
fn search_description(
    spec: &crate::config::PipelineSpec,
    s: &crate::config::SearchSpec,
    backup: serde_json::Value,
) -> serde_json::Value {
    let mut d = serde_json::json!({
        "RoleARN": format!("arn:aws:iam::{ACCOUNT_ID}:role/sluice"),
        "ClusterEndpoint": s.endpoint,
        "IndexName": s.index,
        "IndexRotationPeriod": s.rotation.name(),
        "BufferingHints": {
            "SizeInMBs": spec.buffering.size_bytes >> 20,
            "IntervalInSeconds": spec.buffering.interval.as_secs(),
        },
        "RetryOptions": { "DurationInSeconds": s.retry_duration.as_secs() },
        "S3BackupMode": if s.backup_all { "AllDocuments" } else { "FailedDocumentsOnly" },
        "S3DestinationDescription": backup,
        "ProcessingConfiguration": { "Enabled": false, "Processors": [] },
        "CloudWatchLoggingOptions": { "Enabled": false },
        "DocumentIdOptions": {
            "DefaultDocumentIdFormat": if s.document_ids { "FIREHOSE_DEFAULT" } else { "NO_DOCUMENT_ID" },
        },
    });
    if let (Some(t), Some(obj)) = (&s.type_name, d.as_object_mut()) {
        obj.insert("TypeName".into(), t.clone().into());
    }
    d
}

fn list(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let input: ListInput = if body.iter().all(u8::is_ascii_whitespace) { ListInput::default() } else { parse(body)? };
    let limit = input.limit.unwrap_or(10);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::constraint("limit", "Member must have value between 1 and 10000"));
    }
    let only_direct_put = matches!(input.delivery_stream_type.as_deref(), None | Some("DirectPut"));
    let names: Vec<String> = if only_direct_put {
        state
            .daemon
            .names()
            .into_iter()
            .filter(|n| input.exclusive_start_delivery_stream_name.as_ref().is_none_or(|s| n > s))
            .collect()
    } else {
        Vec::new()
    };
    let has_more = names.len() > limit as usize;
    Ok(ok_json(&ListOutput {
        delivery_stream_names: names.into_iter().take(limit as usize).collect(),
        has_more_delivery_streams: has_more,
    }))
}

async fn health(State(state): State<ApiState>) -> Response {
    let body = serde_json::json!({ "status": "ok", "delivery_streams": state.daemon.names().len() });
    (StatusCode::OK, [("content-type", "application/json")], body.to_string()).into_response()
}

/// Deliveries failing this many times in a row make a pipeline not ready.
const NOT_READY_AFTER_FAILURES: u64 = 3;

/// Readiness, per pipeline, with a reason: 503 when any pipeline cannot take or deliver records.
/// (`/health` is liveness: the process answers.)
async fn ready(State(state): State<ApiState>) -> Response {
    let now = now_ms();
    let mut all_ready = true;
    let mut pipelines = serde_json::Map::new();
    for p in state.daemon.all() {
        let wal = p.ingest.unavailable();
        let (failures, last_error) = p.status.failures();
        let mut reasons = Vec::new();
        if let Some(why) = &wal {
            reasons.push(format!("the WAL cannot write: {why}"));
        }
        let check = p.status.check_error();
        if let Some(why) = &check {
            reasons.push(format!("the destination check failed: {why}"));
        }
        if failures >= NOT_READY_AFTER_FAILURES {
            reasons.push(format!("{failures} deliveries failed in a row"));
        }
        all_ready &= reasons.is_empty();
        pipelines.insert(
            p.spec.name.clone(),
            serde_json::json!({
                "ready": reasons.is_empty(),
                "reason": (!reasons.is_empty()).then(|| reasons.join("; ")),
                "wal_writable": wal.is_none(),
                // Direct PUT's source is the API itself: it is healthy when its WAL can write.
                "source_healthy": wal.is_none(),
                "destination_check_passed": check.is_none(),
                "delivery_failures_in_row": failures,
                "last_delivery_error": last_error,
                "oldest_undelivered_age_seconds": p.status.oldest_undelivered_ms().map(|t| (now - t).max(0) as f64 / 1000.0),
            }),
        );
    }
    let status = if all_ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({ "ready": all_ready, "pipelines": pipelines });
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

async fn render_metrics(State(state): State<ApiState>) -> Response {
    for p in state.daemon.all() {
        p.metrics.wal_bytes.set(p.ingest.used_bytes() as f64);
    }
    (StatusCode::OK, [("content-type", "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
