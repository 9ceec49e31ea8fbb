//! `storage.max_memory`: the memory request bodies may take at once, across every connection.
//!
//! Without it, what requests hold is bounded per connection only (a body of up to 8 MiB, its decoded
//! records and its WAL frame), so a thousand clients posting at once could take gigabytes. With it,
//! each request reserves its cost before its body is read — three times its `Content-Length` (the
//! body, the records decoded from it, the frame written to the WAL), or three times the largest
//! body the endpoint takes when the length is not declared — and gives it back when it is answered.
//! A request that does not fit is answered `ServiceUnavailableException` (503) at once; its body is
//! read and dropped a chunk at a time ([`drain`]), never kept, so the client reads the answer on a
//! connection it can reuse: excess load becomes back-pressure the SDKs retry, never growth.

use std::sync::Arc;

use axum::http::HeaderMap;

use crate::buffer::wal::StorageBudget;

/// A request body's memory is this many times its size while it is handled.
pub const COST_FACTOR: u64 = 3;

/// The daemon-wide request-memory budget (`None`: unbounded but per connection).
#[derive(Clone, Default)]
pub struct RequestMemory(Option<Arc<StorageBudget>>);

/// Memory reserved for one request, given back when dropped.
pub struct Reservation {
    budget: Option<Arc<StorageBudget>>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.release(self.bytes);
        }
    }
}

impl RequestMemory {
    pub fn new(max_memory: Option<u64>) -> Self {
        Self(max_memory.map(|limit| StorageBudget::new(limit, None)))
    }

    /// Reserves a request's cost from its declared length (or `max_body` when undeclared), or
    /// `None` when it does not fit now.
    pub fn reserve(&self, headers: &HeaderMap, max_body: usize) -> Option<Reservation> {
        let Some(budget) = &self.0 else { return Some(Reservation { budget: None, bytes: 0 }) };
        let declared = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let bytes = declared.unwrap_or(max_body as u64).min(max_body as u64).saturating_mul(COST_FACTOR);
        if budget.try_reserve(bytes) {
            metrics::gauge!("sluice_request_memory_bytes").set(budget.used() as f64);
            Some(Reservation { budget: Some(budget.clone()), bytes })
        } else {
            metrics::counter!("sluice_request_memory_refusals_total").increment(1);
            None
        }
    }
}

/// Reads a refused request's body to its end without keeping it (a chunk at a time, within
/// `max_body` bytes and `timeout`), so that the client, which is usually still sending, reads the
/// 503 instead of a reset connection, and the connection stays open for its retry. `false` when the
/// body could not be drained: the connection must then be closed.
pub async fn drain(body: axum::body::Body, max_body: usize, timeout: std::time::Duration) -> bool {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    let all = async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    seen += c.len();
                    if seen > max_body {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    };
    tokio::time::timeout(timeout, all).await.unwrap_or(false)
}

/// What a refused request is told.
pub const REFUSAL: &str = "Slow down: storage.max_memory is taken by requests in progress; retry later.";

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(len: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-length", len.to_string().parse().unwrap());
        h
    }

    #[test]
    fn requests_reserve_three_times_their_length_and_give_it_back() {
        let memory = RequestMemory::new(Some(32 << 20));
        let a = memory.reserve(&headers(4 << 20), 8 << 20).expect("12 MiB fits in 32");
        let b = memory.reserve(&headers(4 << 20), 8 << 20).expect("24 MiB fits in 32");
        assert!(memory.reserve(&headers(4 << 20), 8 << 20).is_none(), "36 MiB does not");
        drop(a);
        assert!(memory.reserve(&headers(4 << 20), 8 << 20).is_some());
        drop(b);
        // Undeclared: the largest body the endpoint takes.
        let c = memory.reserve(&HeaderMap::new(), 8 << 20).expect("24 MiB");
        assert!(memory.reserve(&HeaderMap::new(), 8 << 20).is_none());
        drop(c);
        assert!(RequestMemory::new(None).reserve(&HeaderMap::new(), 8 << 20).is_some());
    }
}
