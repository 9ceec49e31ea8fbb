//! `POST /http-endpoint/<pipeline>`: the HTTP side of `source: firehose_http_endpoint` (the
//! protocol itself, its limits and decoding live in `source/firehose_http/`).
//!
//! A request's records are made durable in the pipeline's WAL before the 200, exactly as a
//! PutRecordBatch's are. Firehose resends a failed request with the same `X-Amz-Firehose-Request-Id`,
//! so sluice remembers on disk how many records of each request it has already written: a retry
//! after a lost response, or after storage was full part-way, appends only the rest. The answer is
//! the protocol's JSON (`requestId`, `timestamp`, `errorMessage`); 413 for a body over the limits
//! (the sender does not retry it), 401 for a wrong access key, 503 while storage is full (retried).

use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::clock::now_ms;
use crate::config::SourceSpec;
use crate::source::firehose_http::{check_headers, decode, next_frame, Refusal, MAX_BODY};

fn answer(status: StatusCode, request_id: &str, error: Option<String>) -> Response {
    let mut body = serde_json::json!({ "requestId": request_id, "timestamp": now_ms() });
    if let (Some(message), Some(o)) = (error, body.as_object_mut()) {
        o.insert("errorMessage".into(), message.into());
    }
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn refuse(refusal: Refusal, request_id: &str) -> Response {
    let status = match refusal {
        Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
        Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
        Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
    };
    answer(status, request_id, Some(refusal.to_string()))
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
    if let Err(refusal) = check_headers(access_keys, header) {
        return refuse(refusal, &request_id);
    }
    // Firehose retries a 503 with the same request id.
    let Some(_reserved) = state.memory.reserve(&headers, MAX_BODY) else {
        super::memory::drain(body, MAX_BODY, state.body_timeout).await;
        return answer(StatusCode::SERVICE_UNAVAILABLE, &request_id, Some(super::memory::REFUSAL.into()));
    };
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
    let gzip = header("content-encoding").eq_ignore_ascii_case("gzip");
    let request = match decode(&raw, gzip, &request_id) {
        Ok(r) => r,
        Err(refusal) => return refuse(refusal, &request_id),
    };
    let Some(memory) = pipeline.request_memory.clone() else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, &request_id, Some("the pipeline is restarting; retry".into()));
    };
    let mut written = memory.lock().unwrap_or_else(|p| p.into_inner()).written(&request.request_id);
    while written < request.records.len() {
        let (frame, sizes) = match next_frame(&request.records, written, now_ms()) {
            Ok(f) => f,
            Err(refusal) => return refuse(refusal, &request_id),
        };
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
