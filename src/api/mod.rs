//! The Firehose API, wire-compatible with the AWS SDKs and CLI (`POST /` with
//! `X-Amz-Target: Firehose_20150804.<Operation>`, JSON 1.1), plus `/health`, `/ready` and
//! `/metrics`. Every operation of the model is answered: `put.rs` (data), `describe.rs`
//! (read), `control.rs` (create, update, delete, tags, encryption). With `api.auth` each request's
//! SigV4 signature is verified (`auth.rs`) and the key's permissions checked before it is handled.

mod auth;
pub mod console;
mod control;
mod describe;
mod error;
mod firehose_http;
mod health;
mod http_source;
pub mod memory;
mod model;
mod put;
pub mod server;
mod tap;

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

pub use error::ApiError;

use crate::daemon::{Daemon, LookupError};
use crate::pipeline::PipelineHandle;

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const TARGET_PREFIX: &str = "Firehose_20150804.";
/// Firehose limits (spec §1).
pub const MAX_RECORD_BYTES: usize = 1_024_000;
pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// Enough for a 4 MiB batch in base64 plus JSON; larger bodies cannot be valid.
const MAX_BODY_BYTES: usize = 8 << 20;

#[derive(Clone)]
pub struct ApiState {
    pub daemon: Arc<Daemon>,
    pub metrics: PrometheusHandle,
    /// How long a request body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// How long `/ready` reports records given up to the error prefix.
    pub give_up_window: std::time::Duration,
    /// The console's charts (sampled by the daemon whether or not a browser is open).
    pub history: std::sync::Arc<console::history::History>,
    /// `storage.max_memory`: what request bodies may take at once.
    pub memory: memory::RequestMemory,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", post(dispatch))
        .route("/http-endpoint/{stream}", post(firehose_http::receive))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::render_metrics))
        .route("/tap/{stream}", get(tap::tap))
        .merge(console::routes())
        .fallback(http_source::receive)
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

async fn dispatch(State(state): State<ApiState>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let operation = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(|op| OPERATIONS.iter().find(|known| **known == op))
        .copied()
        .unwrap_or("unknown");
    let response = handle(state, target, &method, &uri, &headers, body).await;
    metrics::counter!("sluice_api_responses_total", "operation" => operation, "status" => response.status().as_str().to_string())
        .increment(1);
    response
}

async fn handle(
    state: ApiState,
    target: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Response {
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
    // Held until the answer: the body, its records and its WAL frame live until then.
    let Some(_reserved) = state.memory.reserve(headers, MAX_BODY_BYTES) else {
        let refusal = ApiError::ServiceUnavailable(memory::REFUSAL.into()).into_response();
        return match memory::drain(body, MAX_BODY_BYTES, state.body_timeout).await {
            true => refusal,
            false => close_after(refusal),
        };
    };
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
    if let Err(e) = authorize(&state, operation, method, uri, headers, &body) {
        return e.into_response();
    }
    let result = match operation {
        "PutRecord" => put::put_record(&state, &body).await,
        "PutRecordBatch" => put::put_record_batch(&state, &body).await,
        "DescribeDeliveryStream" => describe::describe(&state, &body),
        "ListDeliveryStreams" => describe::list(&state, &body),
        "CreateDeliveryStream" => control::create(&state, &body).await,
        "DeleteDeliveryStream" => control::delete(&state, &body).await,
        "UpdateDestination" => control::update(&state, &body).await,
        "TagDeliveryStream" => control::tag(&state, &body).await,
        "UntagDeliveryStream" => control::untag(&state, &body).await,
        "ListTagsForDeliveryStream" => control::list_tags(&state, &body),
        "StartDeliveryStreamEncryption" => control::start_encryption(&state, &body).await,
        "StopDeliveryStreamEncryption" => control::stop_encryption(&state, &body).await,
        other => Err(ApiError::UnknownOperation(format!("unknown operation {other}"))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// With `api.auth`: the signature is verified, then the key's `actions` and `streams` are checked.
fn authorize(
    state: &ApiState,
    operation: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let Some(keys) = &state.daemon.config.security.access_keys else { return Ok(()) };
    let key = auth::authenticate(keys, method, uri, headers, body, std::time::SystemTime::now())?;
    let identity = state.daemon.identity();
    let stream = if key.streams.is_empty() || operation == "ListDeliveryStreams" {
        None
    } else {
        #[derive(serde::Deserialize)]
        struct Named<'a> {
            #[serde(rename = "DeliveryStreamName", borrow)]
            name: Option<std::borrow::Cow<'a, str>>,
        }
        serde_json::from_slice::<Named>(body).ok().and_then(|n| n.name).map(|n| n.into_owned())
    };
    if key.allows(operation, stream.as_deref()) {
        return Ok(());
    }
    let resource = stream.map_or_else(|| identity.any_stream_arn(), |s| identity.stream_arn(&s));
    Err(ApiError::AccessDenied(format!(
        "User: {} is not authorized to perform: firehose:{operation} on resource: {resource}",
        identity.user_arn(&key.id)
    )))
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

/// The DeliveryStreamName rules of the model.
fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 64 {
        return Err(ApiError::constraint("deliveryStreamName", "Member must have length between 1 and 64"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(ApiError::constraint(
            "deliveryStreamName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(())
}

fn stream(state: &ApiState, name: &str) -> Result<Arc<PipelineHandle>, ApiError> {
    check_name(name)?;
    state.daemon.lookup(name).map_err(|e| match e {
        LookupError::NotFound { .. } | LookupError::AutoCreateLimit { .. } => ApiError::ResourceNotFound(e.to_string()),
        LookupError::Closing(_) => ApiError::ServiceUnavailable(e.to_string()),
        LookupError::Failed(m) => ApiError::InternalFailure(m),
    })
}
