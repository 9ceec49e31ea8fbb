//! What the HTTP-speaking destinations share: a client built the same way (no redirects, a private
//! CA when configured), requests cut by record count and size, and response bodies read with a cap.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::SinkError;
use crate::record::Record;

/// A client that never follows redirects and trusts `ca_file`'s certificates besides the system's.
pub fn client(timeout: Duration, ca_file: Option<&Path>) -> Result<reqwest::Client, SinkError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .no_gzip();
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca).map_err(|e| SinkError::Setup(format!("cannot read {}: {e}", ca.display())))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| SinkError::Setup(e.to_string()))? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| SinkError::Setup(format!("cannot build the HTTP client: {e}")))
}

/// Cuts `records` into requests of at most `max_records` records and `max_bytes` bytes, where a
/// record costs `cost(record)` bytes on the wire. A single record larger than `max_bytes` still gets
/// a request of its own.
pub fn split(
    records: &[Record],
    max_records: usize,
    max_bytes: usize,
    cost: impl Fn(&Record) -> usize,
) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        let size = cost(r);
        if i > start && (i - start == max_records || bytes + size > max_bytes) {
            parts.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < records.len() {
        parts.push(start..records.len());
    }
    parts
}

/// Why a response body could not be read.
pub enum ReadError {
    TooLarge,
    Broken(reqwest::Error),
}

/// Reads a response body, refusing more than `limit` bytes (a misbehaving server cannot make
/// sluice buffer a 3 GB answer).
pub async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Broken)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn requests_are_cut_by_count_and_size() {
        let small: Vec<Record> = (0..25_000).map(|seq| Record::new(seq, 0, Bytes::from_static(b"x"))).collect();
        assert_eq!(split(&small, 10_000, usize::MAX, |_| 1), vec![0..10_000, 10_000..20_000, 20_000..25_000]);
        let big: Vec<Record> = (0..5).map(|seq| Record::new(seq, 0, Bytes::from(vec![b'a'; 100]))).collect();
        assert_eq!(split(&big, 100, 250, |r| r.data.len()), vec![0..2, 2..4, 4..5]);
        assert_eq!(split(&big, 100, 50, |r| r.data.len()).len(), 5, "an oversize record goes alone");
        assert!(split(&[], 1, 1, |_| 1).is_empty());
    }
}
