//! `GET /tap/<pipeline>?stage=processed&limit=100&sample=0.1&rate=100`: live records of one stage
//! as chunked NDJSON, one object per record (`stage`, `seq`, `arrivalTimestamp`, `partition` or
//! `errorCode`, and `data` as text, or `dataBase64` when it is not UTF-8). The stream ends after
//! `limit` records (default 100) or when the client goes away. `rate` caps records per second
//! (default 100, at most 10,000) and `sample` picks a fraction, so a tap never slows the pipeline
//! (`pipeline::tap`). With `api.auth`, the request must be signed like any API call and the key
//! allowed the action `Tap` on the stream.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::error::ApiError;
use super::ApiState;
use crate::pipeline::tap::{Stage, TapEvent};

#[derive(Default)]
struct TapQuery {
    stage: Option<String>,
    limit: Option<usize>,
    sample: Option<f64>,
    rate: Option<u32>,
}

impl TapQuery {
    /// The query string's parameters (plain values: no percent-decoding is needed for these).
    fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut q = TapQuery::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = |e: &dyn std::fmt::Display| format!("{name}={value}: {e}\n");
            match name {
                "stage" => q.stage = Some(value.to_string()),
                "limit" => q.limit = Some(value.parse().map_err(|e| bad(&e))?),
                "sample" => q.sample = Some(value.parse().map_err(|e| bad(&e))?),
                "rate" => q.rate = Some(value.parse().map_err(|e| bad(&e))?),
                _ => return Err(format!("unknown parameter {name} (stage, limit, sample, rate)\n")),
            }
        }
        Ok(q)
    }
}

const MAX_RATE: u32 = 10_000;

pub(super) async fn tap(
    State(state): State<ApiState>,
    Path(stream): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(keys) = &state.daemon.config.security.access_keys {
        let key = match super::auth::authenticate(keys, &method, &uri, &headers, b"", std::time::SystemTime::now()) {
            Ok(k) => k,
            Err(e) => return e.into_response(),
        };
        if !key.allows("Tap", Some(&stream)) {
            let message = format!(
                "User: {} is not authorized to perform: firehose:Tap on resource: {}",
                state.daemon.identity().user_arn(&key.id),
                state.daemon.identity().stream_arn(&stream)
            );
            return ApiError::AccessDenied(message).into_response();
        }
    }
    open(&state, &stream, uri.query())
}

/// The tap itself, once the caller is allowed (the API's signed request, or the console's login).
pub(super) fn open(state: &ApiState, stream: &str, query: Option<&str>) -> Response {
    let q = match TapQuery::parse(query) {
        Ok(q) => q,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let Some(pipeline) = state.daemon.get(stream) else {
        return (StatusCode::NOT_FOUND, format!("no delivery stream named {stream}\n")).into_response();
    };
    let stage_name = q.stage.as_deref().unwrap_or("processed");
    let Some(stage) = Stage::parse(stage_name) else {
        let message = format!("stage `{stage_name}` is not incoming, processed, delivered or failed\n");
        return (StatusCode::BAD_REQUEST, message).into_response();
    };
    let limit = q.limit.unwrap_or(100);
    let (rx, guard) = pipeline.taps.open(stage, q.sample.unwrap_or(1.0), q.rate.unwrap_or(100).min(MAX_RATE));
    let lines = futures::stream::unfold((rx, guard, 0usize), move |(mut rx, guard, sent)| async move {
        if sent >= limit {
            return None;
        }
        let event = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(render(&event)), (rx, guard, sent + 1)))
    });
    let mut response = Response::new(Body::from_stream(lines));
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/x-ndjson"));
    response
}

fn render(e: &TapEvent) -> String {
    let mut line = serde_json::json!({ "stage": e.stage.as_str(), "seq": e.seq, "arrivalTimestamp": e.arrival_ms });
    if let Some(o) = line.as_object_mut() {
        if let Some(detail) = &e.detail {
            let name = if e.stage == Stage::Failed { "errorCode" } else { "partition" };
            o.insert(name.into(), detail.clone().into());
        }
        match std::str::from_utf8(&e.data) {
            Ok(text) => o.insert("data".into(), text.into()),
            Err(_) => o.insert("dataBase64".into(), base64::engine::general_purpose::STANDARD.encode(&e.data).into()),
        };
    }
    format!("{line}\n")
}
