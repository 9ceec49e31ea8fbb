//! The API's HTTP server: our own accept loop over hyper, so that abusive or broken clients
//! cannot exhaust what legitimate producers need.
//!
//! * **At most `max_connections` at once.** Beyond that a connection gets an immediate
//!   `503 ServiceUnavailableException` and is closed, so it holds a descriptor for microseconds.
//!   The limit is capped at three quarters of the process's descriptor limit: the rest is reserved
//!   for WAL segments, checkpoints and destination connections (issue #9: 1,124 idle connections
//!   used to exhaust `nofile` 1024 and stop the WAL).
//! * **Header timeout.** hyper starts this timer whenever a connection waits for a request head,
//!   so it bounds both a slowloris client (headers trickled a byte at a time) and an idle
//!   keep-alive connection.
//! * **Body timeout and size** are enforced by the handler (`api::dispatch`), which knows the
//!   operation's limits.
//! * **EMFILE on accept** is survived: the loop backs off briefly instead of spinning or exiting.
//! * **Shutdown** stops accepting and lets requests in progress finish (their records are
//!   acknowledged only once durable, so an interrupted one is simply retried by the client).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// The answer to a connection over the limit: a complete response, then the connection closes.
const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/x-amz-json-1.1\r\n\
x-amzn-errortype: ServiceUnavailableException\r\n\
connection: close\r\n\
content-length: 98\r\n\r\n\
{\"__type\":\"ServiceUnavailableException\",\"message\":\"Slow down: too many connections; retry later.\"}";

/// Raises the soft descriptor limit to the hard limit (systemd and most shells start services at
/// a soft 1024) and returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

/// `configured`, capped to leave a quarter of the descriptors for storage and destinations.
pub fn effective_max_connections(configured: usize, fd_limit: u64) -> usize {
    let cap = usize::try_from(fd_limit / 4 * 3).unwrap_or(usize::MAX).max(16);
    configured.min(cap)
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for open requests.
/// With `tls`, each connection is a TLS handshake first (bounded by the header timeout).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    tls: Option<Arc<crate::tls::TlsReloader>>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let metrics = ConnectionMetrics::new();
    let mut builder = http1::Builder::new();
    // `half_close`: while a request is being answered hyper otherwise keeps reading the connection
    // to notice a client that hangs up, and that read needs a fresh buffer (~256–400 KiB) while
    // the request still holds slices of the old one: 320 MiB/s of churn under issue #29's load
    // (BENCHMARKS.md, "No read while a request is answered"). A client that hangs up is then noticed
    // when its answer is written, which changes nothing for an ingest: the request is finished
    // either way once its frame is queued for the WAL.
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true).half_close(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE/ENFILE/ECONNABORTED: nothing to do but wait for descriptors to free.
                    tracing::warn!(error = %e, "cannot accept a connection; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.refused.increment(1);
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(OVER_LIMIT)).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let open = metrics.open.clone();
        open.increment(1.0);
        match &tls {
            None => {
                let watched = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = watched.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    open.decrement(1.0);
                    drop(permit);
                });
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let handshake_timeout = limits.header_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let connection = builder.serve_connection(TokioIo::new(tls_stream), service);
                            if let Err(e) = watcher.watch(connection).await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                    open.decrement(1.0);
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

struct ConnectionMetrics {
    open: metrics::Gauge,
    refused: metrics::Counter,
}

impl ConnectionMetrics {
    fn new() -> Self {
        Self {
            open: metrics::gauge!("sluice_api_connections"),
            refused: metrics::counter!("sluice_api_connections_refused_total"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canned_over_limit_response_is_well_formed() {
        let text = std::str::from_utf8(OVER_LIMIT).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["__type"], "ServiceUnavailableException");
    }

    #[test]
    fn connections_leave_a_quarter_of_the_descriptors() {
        assert_eq!(effective_max_connections(10_000, 1024), 768);
        assert_eq!(effective_max_connections(100, 1_048_576), 100);
        assert_eq!(effective_max_connections(100, 8), 16);
    }
}
