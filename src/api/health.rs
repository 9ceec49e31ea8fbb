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

/// Why a pipeline is not ready (none: it is), and its readiness details for `/ready`.
pub(super) fn readiness(
    p: &crate::pipeline::PipelineHandle,
    now: i64,
    give_up_window: std::time::Duration,
) -> (Vec<String>, serde_json::Value) {
    let wal = p.ingest.unavailable();
    let mut reasons = Vec::new();
    if let Some(why) = &wal {
        reasons.push(format!("the WAL cannot write: {why}"));
    }
    let source = p.status.source_problem();
    if let Some(why) = &source {
        reasons.push(format!("the source cannot read: {why}"));
    }
    let window = give_up_window.as_millis() as i64;
    let mut destinations = serde_json::Map::new();
    let mut first = None;
    for d in &p.destinations {
        let (mut own, details) = destination_readiness(&d.status, now, window);
        if let Some(route) = &d.name {
            own.iter_mut().for_each(|r| *r = format!("destination `{route}`: {r}"));
            destinations.insert(route.clone(), details.clone());
        }
        reasons.extend(own);
        first.get_or_insert(details);
    }
    let first = first.unwrap_or_default();
    let mut details = serde_json::json!({
        "ready": reasons.is_empty(),
        "reason": (!reasons.is_empty()).then(|| reasons.join("; ")),
        "wal_writable": wal.is_none(),
        // Direct PUT's source is the API itself: it is healthy when its WAL can write.
        "source_healthy": wal.is_none() && source.is_none(),
        "destination_check_passed": first["destination_check_passed"],
        "delivery_failures_in_row": first["delivery_failures_in_row"],
        "last_delivery_error": first["last_delivery_error"],
        "last_give_up": first["last_give_up"],
        "oldest_undelivered_age_seconds": p.status.oldest_undelivered_ms().map(|t| (now - t).max(0) as f64 / 1000.0),
    });
    if !destinations.is_empty() {
        // The fields above describe the first destination (as Describe does); each is here.
        details["destinations"] = serde_json::Value::Object(destinations);
    }
    (reasons, details)
}

/// One destination's reasons not to be ready, and its details.
fn destination_readiness(
    status: &crate::status::PipelineStatus,
    now: i64,
    window: i64,
) -> (Vec<String>, serde_json::Value) {
    let (failures, last_error) = status.failures();
    let mut reasons = Vec::new();
    let check = status.check_error();
    if let Some(why) = &check {
        reasons.push(format!("the destination check failed: {why}"));
    }
    if failures >= NOT_READY_AFTER_FAILURES {
        reasons.push(format!("{failures} deliveries failed in a row"));
    }
    let gave_up = if window > 0 { status.given_up_since(now - window) } else { None };
    if let Some((at, what)) = &gave_up {
        reasons.push(format!("{what} {} s ago", (now - at).max(0) / 1000));
    }
    let details = serde_json::json!({
        "ready": reasons.is_empty(),
        "destination_check_passed": check.is_none(),
        "delivery_failures_in_row": failures,
        "last_delivery_error": last_error,
        "last_give_up": gave_up.map(|(at, what)| serde_json::json!({ "at_ms": at, "what": what })),
        "oldest_undelivered_age_seconds": status.oldest_undelivered_ms().map(|t| (now - t).max(0) as f64 / 1000.0),
    });
    (reasons, details)
}

/// Readiness, per pipeline, with a reason: 503 when any pipeline cannot take or deliver records.
/// (`/health` is liveness: the process answers.)
pub(super) async fn ready(State(state): State<ApiState>) -> Response {
    let now = now_ms();
    let mut all_ready = true;
    let mut pipelines = serde_json::Map::new();
    for p in state.daemon.all() {
        let (reasons, details) = readiness(&p, now, state.give_up_window);
        all_ready &= reasons.is_empty();
        pipelines.insert(p.spec.name.clone(), details);
    }
    let status = if all_ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({ "ready": all_ready, "pipelines": pipelines });
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

/// WAL bytes are read when asked for, not on every write.
pub(super) fn refresh_wal_gauges(pipelines: &[std::sync::Arc<crate::pipeline::PipelineHandle>]) {
    for p in pipelines {
        p.metrics.wal_bytes.set(p.ingest.used_bytes() as f64);
    }
}

pub(super) async fn render_metrics(State(state): State<ApiState>) -> Response {
    refresh_wal_gauges(&state.daemon.all());
    let current: std::collections::HashSet<String> = state.daemon.names().into_iter().collect();
    let text = only_current_pipelines(&state.metrics.render(), &current);
    (StatusCode::OK, [("content-type", "text/plain; version=0.0.4")], text).into_response()
}

/// The rendered page without the series of pipelines that no longer exist: the recorder keeps
/// every series it has seen, and a removed (or renamed) pipeline's should leave with it.
fn only_current_pipelines(page: &str, current: &std::collections::HashSet<String>) -> String {
    const LABEL: &str = "delivery_stream_name=\"";
    let mut out = String::with_capacity(page.len());
    for line in page.lines() {
        let stream = line.find(LABEL).map(|at| &line[at + LABEL.len()..]).and_then(|rest| rest.split('"').next());
        if line.starts_with('#') || stream.is_none_or(|s| current.contains(s)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_of_removed_pipelines_are_left_out() {
        let page = "# HELP x a\n# TYPE x counter\nx{delivery_stream_name=\"kept\"} 1\nx{delivery_stream_name=\"gone\"} 2\ny 3\n";
        let current = ["kept".to_string()].into_iter().collect();
        assert_eq!(
            only_current_pipelines(page, &current),
            "# HELP x a\n# TYPE x counter\nx{delivery_stream_name=\"kept\"} 1\ny 3\n"
        );
    }
}
