//! The built-in web console at `/console`, on the API's port: every stream with its source,
//! destination, readiness (and why not), live charts of records in, delivered and failed per second
//! over the last 15 minutes, buffer fill, WAL bytes, the oldest undelivered record's age, error
//! records by code with the latest ones, and a live tap.
//!
//! Everything is served from the binary (`assets/`, embedded with `include_str!`): one HTML page,
//! its script and style, and uPlot (MIT, vendored from npm) for the charts. No build step, no
//! external requests. The page polls `/console/api/state` every few seconds; the charts come from
//! [`history::History`], which the daemon samples whether or not a browser is open.
//!
//! **Auth**: with `api.auth`, every `/console` request needs HTTP Basic credentials: an access key
//! id and its secret from `api.auth`, allowed the action `Console` (streams are listed when the key
//! may `DescribeDeliveryStream` them, tapped when it may `Tap` them). Browsers ask for them once.
//! Basic credentials travel as plain text: use `api.tls` when the console is reached over a network.

pub mod history;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::ApiState;
use crate::clock::now_ms;
use crate::config::security::AccessKey;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");

/// The console's routes, merged into the API's router.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/assets/{file}", get(asset))
        .route("/console/api/state", get(state))
        .route("/console/api/tap/{stream}", get(tap))
}

/// Why a console request is refused.
enum Refused {
    /// No credentials, or wrong ones: 401 with the Basic challenge, so the browser asks.
    SignIn,
    /// A valid key without the action it needs: 403.
    NotAllowed(String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignIn => {
                let text = "sign in with an access key id and its secret (api.auth)\n";
                let mut r = (StatusCode::UNAUTHORIZED, text).into_response();
                let challenge = HeaderValue::from_static("Basic realm=\"sluice console\", charset=\"UTF-8\"");
                r.headers_mut().insert("www-authenticate", challenge);
                r
            }
            Refused::NotAllowed(message) => (StatusCode::FORBIDDEN, message).into_response(),
        }
    }
}

/// Who is looking: `Ok(None)` without `api.auth`, the key with it.
fn login<'k>(state: &'k ApiState, headers: &HeaderMap) -> Result<Option<&'k AccessKey>, Refused> {
    let Some(keys) = &state.daemon.config.security.access_keys else { return Ok(None) };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((id, secret)) = given.as_deref().and_then(|g| g.split_once(':')) else { return Err(Refused::SignIn) };
    // Every key's secret is compared, so the time taken does not tell which id exists.
    let mut found = None;
    for key in keys {
        let same = bool::from(key.secret.expose().as_bytes().ct_eq(secret.as_bytes()));
        if same && key.id == id {
            found = Some(key);
        }
    }
    let Some(key) = found else { return Err(Refused::SignIn) };
    if !key.allows("Console", None) {
        return Err(Refused::NotAllowed(format!("the access key {} is not allowed the action Console\n", key.id)));
    }
    Ok(Some(key))
}

fn with_type(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}

async fn page(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    match login(&state, &headers) {
        Ok(_) => with_type(INDEX, "text/html; charset=utf-8"),
        Err(r) => r.into_response(),
    }
}

async fn asset(State(state): State<ApiState>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    if let Err(r) = login(&state, &headers) {
        return r.into_response();
    }
    match file.as_str() {
        "console.js" => with_type(SCRIPT, "text/javascript; charset=utf-8"),
        "console.css" => with_type(STYLE, "text/css; charset=utf-8"),
        "uPlot.iife.min.js" => with_type(UPLOT_JS, "text/javascript; charset=utf-8"),
        "uPlot.min.css" => with_type(UPLOT_CSS, "text/css; charset=utf-8"),
        _ => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// Every stream the viewer may see: what it is, whether it is ready, its figures and history.
async fn state(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let key = match login(&state, &headers) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let now = now_ms();
    let mut pipelines = state.daemon.all();
    pipelines.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let streams: Vec<serde_json::Value> = pipelines
        .iter()
        .filter(|p| key.is_none_or(|k| k.allows("DescribeDeliveryStream", Some(&p.spec.name))))
        .map(|p| {
            let (reasons, _) = super::health::readiness(p, now, state.give_up_window);
            let (by_code, latest) = p.status.errors();
            let store = p.spec.store.store.kind();
            let destinations = match p.spec.sending.as_deref() {
                Some(sending) => vec![sending.metric_name().to_string(), format!("{store} (backup)")],
                None => vec![store.to_string()],
            };
            serde_json::json!({
                "name": p.spec.name,
                "source": p.spec.source.kind(),
                "destinations": destinations,
                "ready": reasons.is_empty(),
                "reason": (!reasons.is_empty()).then(|| reasons.join("; ")),
                "wal_bytes": p.ingest.used_bytes(),
                "oldest_undelivered_s": p.status.oldest_undelivered_ms().map(|t| (now - t).max(0) as f64 / 1000.0),
                "errors_by_code": by_code.iter().map(|(t, c, n)| serde_json::json!({ "error_output_type": t, "code": c, "count": n })).collect::<Vec<_>>(),
                "latest_errors": latest,
                "history": state.history.of(&p.spec.name),
            })
        })
        .collect();
    let body = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "now_ms": now,
        "sample_seconds": history::EVERY.as_secs(),
        "streams": streams,
    });
    let mut r = body.to_string().into_response();
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// The live tap, as `GET /tap/<stream>` gives it, behind the console's login.
async fn tap(State(state): State<ApiState>, Path(stream): Path<String>, headers: HeaderMap, uri: Uri) -> Response {
    match login(&state, &headers) {
        Ok(Some(key)) if !key.allows("Tap", Some(&stream)) => {
            (StatusCode::FORBIDDEN, format!("the access key {} may not tap {stream}\n", key.id)).into_response()
        }
        Ok(_) => super::tap::open(&state, &stream, uri.query()),
        Err(r) => r.into_response(),
    }
}
