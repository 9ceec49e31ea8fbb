//! `sluice bench receiver`: a minimal, fast receiver for measuring the sending destinations (the
//! Python fakes in tests/ check the protocols strictly but cannot take hundreds of thousands of
//! records a second). `POST /` answers the Firehose HTTP endpoint protocol with the request id;
//! `POST /_bulk` answers an OpenSearch bulk request with every item created. It prints the records
//! it received each second.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clap::Args;

#[derive(Args, Debug)]
pub struct ReceiverArgs {
    #[arg(long, default_value = "127.0.0.1:4700")]
    listen: std::net::SocketAddr,
}

pub async fn run(a: ReceiverArgs) -> anyhow::Result<()> {
    let received = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .route("/", post(receive))
        .route("/_bulk", post(bulk))
        .layer(axum::extract::DefaultBodyLimit::max(128 << 20))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind(a.listen).await?;
    println!("receiving Firehose HTTP endpoint requests on http://{}/", a.listen);
    tokio::spawn(async move {
        let mut last = 0;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = received.load(Ordering::Relaxed);
            if now != last {
                println!("{now} records received ({} in the last second)", now - last);
                last = now;
            }
        }
    });
    axum::serve(listener, app).await?;
    Ok(())
}

async fn receive(State(received): State<Arc<AtomicU64>>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let gzip = headers.get("content-encoding").is_some_and(|v| v.as_bytes() == b"gzip");
    let body = if gzip {
        let mut out = Vec::with_capacity(body.len() * 4);
        if flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).is_err() {
            return (StatusCode::BAD_REQUEST, String::new());
        }
        Bytes::from(out)
    } else {
        body
    };
    let id = headers.get("x-amz-firehose-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    // Each record is `{"data":"<base64>"}`: one closing brace each, plus the body's own.
    let records = body.iter().filter(|&&b| b == b'}').count().saturating_sub(1);
    received.fetch_add(records as u64, Ordering::Relaxed);
    (StatusCode::OK, format!("{{\"requestId\":\"{id}\",\"timestamp\":{}}}", crate::clock::now_ms()))
}

/// Every document of a `_bulk` request indexed (an action line and a document line each).
async fn bulk(State(received): State<Arc<AtomicU64>>, body: Bytes) -> (StatusCode, String) {
    let documents = body.iter().filter(|&&b| b == b'\n').count() / 2;
    received.fetch_add(documents as u64, Ordering::Relaxed);
    let mut answer = String::with_capacity(32 + documents * 28);
    answer.push_str("{\"took\":1,\"errors\":false,\"items\":[");
    for i in 0..documents {
        if i > 0 {
            answer.push(',');
        }
        answer.push_str("{\"index\":{\"status\":201}}");
    }
    answer.push_str("]}");
    (StatusCode::OK, answer)
}
