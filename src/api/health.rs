//! `/health` (liveness), `/ready` (readiness, per pipeline, with reasons) and `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::clock::now_ms;

pub(super) async fn health(State(state): State<ApiState>) -> Response {
    let body = serde_json::json!({ "status": "ok", "delivery_streams": state.daemon.names().len() });
    (StatusCode::OK, [("content-type", "application/json")], body.to_string()).into_response()
}

/// Deliveries failing this many times in a row make a pipeline not ready.
const NOT_READY_AFTER_FAILURES: u64 = 3;

/// Readiness, per pipeline, with a reason: 503 when any pipeline cannot take or deliver records.
/// (`/health` is liveness: the process answers.)
pub(super) async fn ready(State(state): State<ApiState>) -> Response {
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
        let source = p.status.source_problem();
        if let Some(why) = &source {
            reasons.push(format!("the source cannot read: {why}"));
        }
        let check = p.status.check_error();
        if let Some(why) = &check {
            reasons.push(format!("the destination check failed: {why}"));
        }
        if failures >= NOT_READY_AFTER_FAILURES {
            reasons.push(format!("{failures} deliveries failed in a row"));
        }
        let window = state.give_up_window.as_millis() as i64;
        let gave_up = if window > 0 { p.status.given_up_since(now - window) } else { None };
        if let Some((at, what)) = &gave_up {
            reasons.push(format!("{what} {} s ago", (now - at).max(0) / 1000));
        }
        all_ready &= reasons.is_empty();
        pipelines.insert(
            p.spec.name.clone(),
            serde_json::json!({
                "ready": reasons.is_empty(),
                "reason": (!reasons.is_empty()).then(|| reasons.join("; ")),
                "wal_writable": wal.is_none(),
                // Direct PUT's source is the API itself: it is healthy when its WAL can write.
                "source_healthy": wal.is_none() && source.is_none(),
                "destination_check_passed": check.is_none(),
                "delivery_failures_in_row": failures,
                "last_delivery_error": last_error,
                "last_give_up": gave_up.map(|(at, what)| serde_json::json!({ "at_ms": at, "what": what })),
                "oldest_undelivered_age_seconds": p.status.oldest_undelivered_ms().map(|t| (now - t).max(0) as f64 / 1000.0),
            }),
        );
    }
    let status = if all_ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({ "ready": all_ready, "pipelines": pipelines });
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

pub(super) async fn render_metrics(State(state): State<ApiState>) -> Response {
    for p in state.daemon.all() {
        p.metrics.wal_bytes.set(p.ingest.used_bytes() as f64);
    }
    (StatusCode::OK, [("content-type", "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
