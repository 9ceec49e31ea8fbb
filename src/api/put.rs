//! PutRecord and PutRecordBatch: records decoded straight into a WAL frame and acknowledged once
//! it is fsynced, within the stream's quotas.

use axum::body::Bytes;
use axum::response::Response;
use base64::Engine;

use super::model::{PutRecordBatchInput, PutRecordBatchOutput, PutRecordInput, RecordId, RecordIn, RecordResult};
use super::{ok_json, parse, stream, ApiError, ApiState};
use super::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_RECORD_BYTES};
use crate::buffer::wal::FrameBuilder;
use crate::pipeline::{now_ms, PipelineHandle};
use crate::source::direct_put::IngestError;
use crate::source::quota::SLOW_DOWN;

/// Per-record ErrorMessage for records refused because the WAL is full.
const STORAGE_FULL_RECORD_MESSAGE: &str = "storage for this delivery stream is full; retry this record later";

/// Decodes records straight into a WAL frame, enforcing Firehose's per-record and per-batch limits.
/// Returns the frame and each record's decoded size.
fn build_frame(
    records: &[RecordIn<'_>],
    member: impl Fn(usize) -> String,
) -> Result<(FrameBuilder, Vec<usize>), ApiError> {
    // What base64 decoding reserves: three bytes per four characters, rounded up.
    let estimate: usize = records.iter().map(|r| r.data.len().div_ceil(4) * 3).sum();
    let mut frame = FrameBuilder::new(now_ms(), records.len(), estimate.min(MAX_BATCH_BYTES + 4096));
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

/// Whether the stream's request quota lets this call in. A stream that reads a Kinesis stream
/// takes no puts, as in Firehose; nor does one that tails files.
fn admit_request(pipeline: &PipelineHandle, records: usize) -> Result<(), ApiError> {
    match &pipeline.spec.source {
        crate::config::SourceSpec::Kinesis(_) => {
            return Err(ApiError::InvalidArgument(
                "This operation is not permitted on KinesisStreamAsSource DeliveryStream type.".into(),
            ))
        }
        crate::config::SourceSpec::Kafka(_) => {
            return Err(ApiError::InvalidArgument(
                "This operation is not permitted on MSKAsSource DeliveryStream type.".into(),
            ))
        }
        // Its records come from the files it tails or the journal, and only from there: its
        // positions are file offsets or journal cursors, so there is no WAL to put into.
        crate::config::SourceSpec::File(_) | crate::config::SourceSpec::Journald(_) => {
            return Err(ApiError::InvalidArgument(format!(
                "This operation is not permitted on delivery stream {}: it reads from the host (source: file or journald).",
                pipeline.spec.name
            )))
        }
        _ => {}
    }
    match &pipeline.throttle {
        Some(t) if !t.admit_request() => {
            pipeline.metrics.throttled_records.increment(records as u64);
            Err(ApiError::ServiceUnavailable(SLOW_DOWN.into()))
        }
        _ => Ok(()),
    }
}

pub(super) async fn put_record(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let input: PutRecordInput = parse(body)?;
    // Validate before the lookup: a refused request must not auto-create its stream.
    let (frame, sizes) = build_frame(std::slice::from_ref(&input.record), |_| "record.data".to_string())?;
    let pipeline = stream(state, &input.delivery_stream_name)?;
    admit_request(&pipeline, 1)?;
    let bytes: usize = sizes.iter().sum();
    if pipeline.throttle.as_ref().is_some_and(|t| t.admit_records([bytes]) == 0) {
        pipeline.metrics.throttled_records.increment(1);
        return Err(ApiError::ServiceUnavailable(SLOW_DOWN.into()));
    }
    match pipeline.ingest.put(frame).await {
        Ok(accepted) => {
            pipeline.status.put_accepted(now_ms());
            let m = &pipeline.metrics;
            m.incoming_records.increment(1);
            m.incoming_bytes.increment(bytes as u64);
            m.incoming_put_requests.increment(1);
            m.put_record_latency.record(started.elapsed());
            Ok(ok_json(&super::model::PutRecordOutput {
                record_id: record_id(&pipeline, accepted.first_seq),
                encrypted: state.daemon.encrypted(&pipeline.spec.name),
            }))
        }
        Err(e) => {
            pipeline.metrics.throttled_records.increment(1);
            Err(ingest_error(e))
        }
    }
}

pub(super) async fn put_record_batch(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
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
    let (mut frame, mut sizes) = build_frame(&input.records, |i| format!("records.{}.member.data", i + 1))?;
    let pipeline = stream(state, &input.delivery_stream_name)?;
    admit_request(&pipeline, n)?;
    // Over the record or byte quota: only the records that fit are written; the rest fail with
    // "Slow down.". The frame is rebuilt for them (only when throttling).
    let quota_admitted = match &pipeline.throttle {
        Some(t) => t.admit_records(sizes.iter().copied()),
        None => n,
    };
    if quota_admitted == 0 {
        return Ok(batch_response(state, &pipeline, 0, 0, 0, n, &sizes, started));
    }
    if quota_admitted < n {
        (frame, sizes) = build_frame(&input.records[..quota_admitted], |i| format!("records.{}.member.data", i + 1))?;
    }
    drop(input);
    match pipeline.ingest.put(frame).await {
        Ok(a) => {
            pipeline.status.put_accepted(now_ms());
            Ok(batch_response(state, &pipeline, a.first_seq, a.accepted, quota_admitted, n, &sizes, started))
        }
        Err(e) => {
            // Nothing fit: refuse the whole call with a 503, which SDKs retry with backoff.
            pipeline.metrics.throttled_records.increment(n as u64);
            Err(ingest_error(e))
        }
    }
}

/// The PutRecordBatch answer: `accepted` records have ids from `first_seq`; of the rest, those
/// the quota admitted found storage full, the others were over the quota.
#[allow(clippy::too_many_arguments)]
fn batch_response(
    state: &ApiState,
    pipeline: &PipelineHandle,
    first_seq: u64,
    accepted: usize,
    quota_admitted: usize,
    n: usize,
    sizes: &[usize],
    started: std::time::Instant,
) -> Response {
    let m = &pipeline.metrics;
    let mut responses = Vec::with_capacity(n);
    for i in 0..accepted {
        responses.push(RecordResult {
            record_id: Some(record_id(pipeline, first_seq + i as u64)),
            error_code: None,
            error_message: None,
        });
    }
    for i in accepted..n {
        let message = if i < quota_admitted { STORAGE_FULL_RECORD_MESSAGE } else { SLOW_DOWN };
        responses.push(RecordResult {
            record_id: None,
            error_code: Some("ServiceUnavailableException"),
            error_message: Some(message.to_string()),
        });
    }
    if accepted < n {
        m.throttled_records.increment((n - accepted) as u64);
    }
    if accepted > 0 {
        m.incoming_records.increment(accepted as u64);
        m.incoming_bytes.increment(sizes.iter().take(accepted).map(|&s| s as u64).sum());
        m.incoming_put_requests.increment(1);
    }
    m.put_record_batch_latency.record(started.elapsed());
    ok_json(&PutRecordBatchOutput {
        failed_put_count: n - accepted,
        encrypted: state.daemon.encrypted(&pipeline.spec.name),
        request_responses: responses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_decodes_into_a_frame_reserved_for_it_once() {
        let encoded: Vec<String> =
            (0..500).map(|i| base64::engine::general_purpose::STANDARD.encode(vec![b'r'; 200 + i % 5])).collect();
        let records: Vec<RecordIn> =
            encoded.iter().map(|d| RecordIn { data: std::borrow::Cow::Borrowed(d.as_str()) }).collect();
        let (frame, sizes) = build_frame(&records, |i| format!("records.{i}.member.data")).unwrap();
        assert_eq!(sizes, (0..500).map(|i| 200 + i % 5).collect::<Vec<_>>());
        // Base64's padding leaves at most two bytes per record unused; a frame that had been
        // reallocated would have about as much spare room as data.
        assert!(frame.spare_capacity() <= 2 * records.len(), "{} bytes spare", frame.spare_capacity());
    }
}
