//! The receiving side of Firehose's HTTP endpoint delivery protocol 1.0 (spec §7), for pipelines
//! with `source: firehose_http_endpoint`: an AWS Firehose stream, or another sluice, delivers to
//! `POST /http-endpoint/<pipeline>` on the API port.
//!
//! A request's records are made durable in the pipeline's WAL before the 200, exactly as a
//! PutRecordBatch's are. Firehose resends a failed request with the same `X-Amz-Firehose-Request-Id`,
//! so sluice remembers (on disk, for the last 10,000 requests: `source::request_memory`) how many
//! records of each request it has already written: a retry after a lost response, or after storage was full part-way, appends
//! only the rest. The answer is the protocol's JSON (`requestId`, `timestamp`, `errorMessage`); 413 for
//! a body over the limits (the sender does not retry it), 401 for a wrong access key, 503 while
//! storage is full (retried).

use std::io::Read;

use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::ApiState;
use crate::buffer::wal::FrameBuilder;
use crate::clock::now_ms;
use crate::config::SourceSpec;

/// The protocol's limits: 64 MiB of body before compression, 10,000 records, 1,024,000 bytes each.
const MAX_BODY: usize = 64 << 20;
const MAX_RECORDS: usize = 10_000;
const MAX_RECORD: usize = 1_024_000;
/// Records are written in frames of about this much, like PutRecordBatch's at most.
const FRAME_BYTES: usize = 4 << 20;
#[derive(Deserialize)]
struct DeliveryRequest {
    #[serde(rename = "requestId")]
    request_id: String,
    records: Vec<DeliveryRecord>,
}

#[derive(Deserialize)]
struct DeliveryRecord {
    data: String,
}

fn answer(status: StatusCode, request_id: &str, error: Option<String>) -> Response {
    let mut body = serde_json::json!({ "requestId": request_id, "timestamp": now_ms() });
    if let (Some(message), Some(o)) = (error, body.as_object_mut()) {
        o.insert("errorMessage".into(), message.into());
    }
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    response
}

pub(super) async fn receive(
    State(state): State<ApiState>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let request_id = header("x-amz-firehose-request-id").to_string();
    let Some(pipeline) = state.daemon.get(&stream) else {
        return answer(StatusCode::NOT_FOUND, &request_id, Some(format!("no pipeline named {stream}")));
    };
    let SourceSpec::FirehoseHttpEndpoint { access_keys } = &pipeline.spec.source else {
        return answer(
            StatusCode::NOT_FOUND,
            &request_id,
            Some(format!("pipeline {stream} does not take Firehose HTTP endpoint deliveries (its source is not firehose_http_endpoint)")),
        );
    };
    if !access_keys.is_empty() {
        let given = header("x-amz-firehose-access-key");
        // Every key is compared, so the time taken does not tell which one nearly matched.
        let valid =
            access_keys.iter().fold(false, |ok, k| ok | bool::from(given.as_bytes().ct_eq(k.expose().as_bytes())));
        if !valid {
            return answer(StatusCode::UNAUTHORIZED, &request_id, Some("the access key is not valid".into()));
        }
    }
    if header("x-amz-firehose-protocol-version") != "1.0" {
        return answer(
            StatusCode::BAD_REQUEST,
            &request_id,
            Some("X-Amz-Firehose-Protocol-Version must be 1.0".into()),
        );
    }
    let raw = match tokio::time::timeout(state.body_timeout, to_bytes(body, MAX_BODY)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                &request_id,
                Some(format!("the body exceeds {MAX_BODY} bytes")),
            )
        }
        Err(_) => {
            return answer(StatusCode::REQUEST_TIMEOUT, &request_id, Some("the body did not arrive in time".into()))
        }
    };
    let body = if header("content-encoding").eq_ignore_ascii_case("gzip") {
        let mut out = Vec::new();
        let read = flate2::read::GzDecoder::new(&raw[..]).take(MAX_BODY as u64 + 1).read_to_end(&mut out);
        match read {
            Ok(n) if n > MAX_BODY => {
                return answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &request_id,
                    Some(format!("the body exceeds {MAX_BODY} bytes uncompressed")),
                )
            }
            Ok(_) => out,
            Err(e) => {
                return answer(StatusCode::BAD_REQUEST, &request_id, Some(format!("the body is not valid gzip: {e}")))
            }
        }
    } else {
        raw.to_vec()
    };
    let request: DeliveryRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                &request_id,
                Some(format!("the body is not a Firehose delivery request: {e}")),
            )
        }
    };
    if request.request_id != request_id && !request_id.is_empty() {
        return answer(
            StatusCode::BAD_REQUEST,
            &request_id,
            Some("the body's requestId differs from X-Amz-Firehose-Request-Id".into()),
        );
    }
    if request.records.len() > MAX_RECORDS {
        return answer(StatusCode::PAYLOAD_TOO_LARGE, &request_id, Some(format!("more than {MAX_RECORDS} records")));
    }
    let Some(memory) = pipeline.request_memory.clone() else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, &request_id, Some("the pipeline is restarting; retry".into()));
    };
    let mut written = memory.lock().unwrap_or_else(|p| p.into_inner()).written(&request.request_id);
    while written < request.records.len() {
        // Sized to what is left (base64 is 4/3 of the data), not to the frame limit.
        let left: usize = request.records[written..].iter().map(|r| r.data.len() / 4 * 3).sum();
        let mut frame = FrameBuilder::new(now_ms(), left.min(FRAME_BYTES + MAX_RECORD));
        let mut bytes = 0;
        let mut sizes = Vec::new();
        for (i, record) in request.records.iter().enumerate().skip(written) {
            if bytes >= FRAME_BYTES {
                break;
            }
            let pushed = frame
                .push_with(|buf| base64::engine::general_purpose::STANDARD.decode_vec(record.data.as_bytes(), buf));
            match pushed {
                Ok(len) if len > MAX_RECORD => {
                    return answer(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &request_id,
                        Some(format!("records[{i}] exceeds {MAX_RECORD} bytes")),
                    )
                }
                Ok(len) => {
                    bytes += len;
                    sizes.push(len);
                }
                Err(e) => {
                    return answer(
                        StatusCode::BAD_REQUEST,
                        &request_id,
                        Some(format!("records[{i}].data is not base64: {e}")),
                    )
                }
            }
        }
        match pipeline.ingest.put(frame).await {
            Ok(accepted) => {
                written += accepted.accepted;
                // Durable before the answer, so a retry after a restart appends only the rest.
                let (memory, id) = (memory.clone(), request.request_id.clone());
                let remembered = tokio::task::spawn_blocking(move || {
                    memory.lock().unwrap_or_else(|p| p.into_inner()).record(&id, written)
                })
                .await;
                if let Err(e) = remembered.map_err(std::io::Error::other).and_then(|r| r) {
                    tracing::warn!(pipeline = %stream, error = %e, "cannot remember a delivery request's id; a retry of it would be written again");
                    return answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &request_id,
                        Some("the delivery stream cannot write to its storage right now; retry later".into()),
                    );
                }
                pipeline.status.put_accepted(now_ms());
                let m = &pipeline.metrics;
                m.incoming_records.increment(accepted.accepted as u64);
                m.incoming_bytes.increment(sizes.iter().take(accepted.accepted).map(|&s| s as u64).sum());
            }
            Err(e) => return answer(StatusCode::SERVICE_UNAVAILABLE, &request_id, Some(e.to_string())),
        }
    }
    pipeline.metrics.incoming_put_requests.increment(1);
    answer(StatusCode::OK, &request.request_id, None)
}
