//! `source: http`: plain HTTP posts on the API port, for `curl` and anything that can POST.
//!
//! `POST <path>` with an NDJSON body (one record per line, each checked to be JSON), a `lines`
//! body (one record per line, any text) or a `raw` body (one record); `Content-Encoding: gzip`
//! is decoded. Records are written to the pipeline's WAL and the 200 comes only after the fsync,
//! as PutRecordBatch's does. A request is checked whole before anything is written, so a 400 or
//! 413 writes nothing. 401 without the bearer token, 503 (with `Retry-After`) while storage is full:
//! the answer's `accepted` says how many leading records were written before it filled.

use std::io::Read;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::ApiState;
use crate::config::SourceSpec;
use crate::source::direct_put::{ingest_all, IngestError};
use crate::source::http::config::HttpSourceSpec;
use crate::source::http::BodyError;

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, format!("{body}\n")).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
    }
    response
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, serde_json::json!({ "error": message.into() }))
}

/// Why a request is refused before anything is written.
struct Refusal(StatusCode, String);

impl From<Refusal> for Response {
    fn from(Refusal(status, message): Refusal) -> Response {
        refuse(status, message)
    }
}

/// Every request the other routes do not take: a `source: http` pipeline's path, or 404.
pub(super) async fn receive(
    State(state): State<ApiState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let found = state.daemon.all().into_iter().find_map(|p| match &p.spec.source {
        SourceSpec::Http(h) if h.path == uri.path() => Some((h.clone(), p)),
        _ => None,
    });
    let Some((spec, pipeline)) = found else {
        return refuse(StatusCode::NOT_FOUND, format!("nothing is served at {}", uri.path()));
    };
    if method != Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "records are sent with POST");
    }
    if let Some(token) = &spec.bearer_token {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        let given = given.strip_prefix("Bearer ").unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
            return refuse(StatusCode::UNAUTHORIZED, "a valid `Authorization: Bearer <token>` header is required");
        }
    }
    let Some(_reserved) = state.memory.reserve(&headers, spec.max_body_bytes) else {
        super::memory::drain(body, spec.max_body_bytes, state.body_timeout).await;
        return refuse(StatusCode::SERVICE_UNAVAILABLE, super::memory::REFUSAL);
    };
    let body = match read_body(&state, &spec, &headers, body).await {
        Ok(b) => b,
        Err(refusal) => return refusal.into(),
    };
    let records = match split(&spec, &body) {
        Ok(r) => r,
        Err(refusal) => return refusal.into(),
    };
    match ingest_all(pipeline.port(), &records).await {
        Ok(()) => {
            pipeline.metrics.incoming_put_requests.increment(1);
            answer(StatusCode::OK, serde_json::json!({ "accepted": records.len() }))
        }
        Err((written, e)) => {
            let status = match e {
                IngestError::Closed | IngestError::Full { .. } | IngestError::Unavailable(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            answer(status, serde_json::json!({ "accepted": written, "error": e.to_string() }))
        }
    }
}

/// The body, decompressed, within `max_body_bytes`.
async fn read_body(
    state: &ApiState,
    spec: &HttpSourceSpec,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, Refusal> {
    let max = spec.max_body_bytes;
    let too_large = || Refusal(StatusCode::PAYLOAD_TOO_LARGE, format!("the body exceeds max_body_bytes ({max} bytes)"));
    let raw = match tokio::time::timeout(state.body_timeout, to_bytes(body, max)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return Err(too_large()),
        Err(_) => return Err(Refusal(StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time".into())),
    };
    let encoding = headers.get("content-encoding").and_then(|v| v.to_str().ok()).unwrap_or("");
    if encoding.eq_ignore_ascii_case("gzip") {
        let mut out = Vec::new();
        return match flate2::read::MultiGzDecoder::new(&raw[..]).take(max as u64 + 1).read_to_end(&mut out) {
            Ok(n) if n > max => Err(too_large()),
            Ok(_) => Ok(out),
            Err(e) => Err(Refusal(StatusCode::BAD_REQUEST, format!("the body is not valid gzip: {e}"))),
        };
    }
    if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("identity") {
        return Err(Refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {encoding} is not supported (gzip is)"),
        ));
    }
    Ok(raw.to_vec())
}

/// The body's records (`source::http::split`), or the refusal that says why none was written.
fn split(spec: &HttpSourceSpec, body: &[u8]) -> Result<Vec<Vec<u8>>, Refusal> {
    crate::source::http::split(spec, body).map_err(|e| match e {
        BodyError::TooLarge(m) => Refusal(StatusCode::PAYLOAD_TOO_LARGE, m),
        BodyError::Invalid(m) => Refusal(StatusCode::BAD_REQUEST, m),
    })
}
