//! `source: firehose_http_endpoint`: the receiving side of Firehose's HTTP endpoint delivery
//! protocol 1.0 (spec §7), so an AWS Firehose stream, or another sluice, can deliver here.
//!
//! This module owns the protocol: the headers a request must carry, the body's limits and
//! encoding, and cutting the decoded records into WAL frames. `config.rs` owns the options,
//! `request_memory.rs` the on-disk memory of request ids that makes a resent request append only
//! what was not written. The API's handler (`api/firehose_http.rs`) reads the body, calls
//! [`check_headers`], [`decode`] and [`next_frame`], and answers.

pub mod config;
pub mod request_memory;

use std::io::Read;

use base64::Engine;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::buffer::wal::FrameBuilder;
use crate::config::kit::Secret;

/// The protocol's limits: 64 MiB of body before compression, 10,000 records, 1,024,000 bytes each.
pub const MAX_BODY: usize = 64 << 20;
const MAX_RECORDS: usize = 10_000;
const MAX_RECORD: usize = 1_024_000;
/// Records are written in frames of about this much, like PutRecordBatch's at most.
const FRAME_BYTES: usize = 4 << 20;

/// Why a delivery request is refused; each maps to the protocol's status (the sender retries only
/// 5xx and 408).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Refusal {
    /// 401: the access key is not one of the pipeline's.
    #[error("the access key is not valid")]
    Unauthorized,
    /// 400: the request is not one this protocol version sends.
    #[error("{0}")]
    BadRequest(String),
    /// 413: over the protocol's limits (the sender does not retry it).
    #[error("{0}")]
    TooLarge(String),
}

/// A delivery request's body (spec §7).
#[derive(Deserialize)]
pub struct DeliveryRequest {
    #[serde(rename = "requestId")]
    pub request_id: String,
    pub records: Vec<DeliveryRecord>,
}

#[derive(Deserialize)]
pub struct DeliveryRecord {
    data: String,
}

/// Checks the access key (when the pipeline has any) and the protocol version. `header` gives a
/// request header's value, or "" when absent.
pub fn check_headers<'h>(access_keys: &[Secret], header: impl Fn(&str) -> &'h str) -> Result<(), Refusal> {
    if !access_keys.is_empty() {
        let given = header("x-amz-firehose-access-key");
        // Every key is compared, so the time taken does not tell which one nearly matched.
        let valid =
            access_keys.iter().fold(false, |ok, k| ok | bool::from(given.as_bytes().ct_eq(k.expose().as_bytes())));
        if !valid {
            return Err(Refusal::Unauthorized);
        }
    }
    if header("x-amz-firehose-protocol-version") != "1.0" {
        return Err(Refusal::BadRequest("X-Amz-Firehose-Protocol-Version must be 1.0".into()));
    }
    Ok(())
}

/// The request in `raw` (gzip-decoded when `gzip`), checked against the header's request id (when
/// the header had one) and the record limit.
pub fn decode(raw: &[u8], gzip: bool, header_request_id: &str) -> Result<DeliveryRequest, Refusal> {
    let mut inflated = Vec::new();
    let body = if gzip {
        let read = flate2::read::GzDecoder::new(raw).take(MAX_BODY as u64 + 1).read_to_end(&mut inflated);
        match read {
            Ok(n) if n > MAX_BODY => {
                return Err(Refusal::TooLarge(format!("the body exceeds {MAX_BODY} bytes uncompressed")))
            }
            Ok(_) => &inflated[..],
            Err(e) => return Err(Refusal::BadRequest(format!("the body is not valid gzip: {e}"))),
        }
    } else {
        raw
    };
    let request: DeliveryRequest = serde_json::from_slice(body)
        .map_err(|e| Refusal::BadRequest(format!("the body is not a Firehose delivery request: {e}")))?;
    if request.request_id != header_request_id && !header_request_id.is_empty() {
        return Err(Refusal::BadRequest("the body's requestId differs from X-Amz-Firehose-Request-Id".into()));
    }
    if request.records.len() > MAX_RECORDS {
        return Err(Refusal::TooLarge(format!("more than {MAX_RECORDS} records")));
    }
    Ok(request)
}

/// A WAL frame of the records from `first` on, up to about [`FRAME_BYTES`] (at least one record),
/// with each record's decoded size.
pub fn next_frame(
    records: &[DeliveryRecord],
    first: usize,
    now_ms: i64,
) -> Result<(FrameBuilder, Vec<usize>), Refusal> {
    // Sized to what is left (base64 is 4/3 of the data), not to the frame limit.
    let left: usize = records[first..].iter().map(|r| r.data.len().div_ceil(4) * 3).sum();
    let mut frame = FrameBuilder::new(now_ms, records.len() - first, left.min(FRAME_BYTES + MAX_RECORD));
    let mut bytes = 0;
    let mut sizes = Vec::new();
    for (i, record) in records.iter().enumerate().skip(first) {
        if bytes >= FRAME_BYTES {
            break;
        }
        let pushed =
            frame.push_with(|buf| base64::engine::general_purpose::STANDARD.decode_vec(record.data.as_bytes(), buf));
        match pushed {
            Ok(len) if len > MAX_RECORD => {
                return Err(Refusal::TooLarge(format!("records[{i}] exceeds {MAX_RECORD} bytes")))
            }
            Ok(len) => {
                bytes += len;
                sizes.push(len);
            }
            Err(e) => return Err(Refusal::BadRequest(format!("records[{i}].data is not base64: {e}"))),
        }
    }
    Ok((frame, sizes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> &'a str + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map_or("", |(_, v)| *v)
    }

    #[test]
    fn a_wrong_key_or_version_is_refused_and_any_key_passes_without_keys() {
        let keys = [Secret::new("right".into())];
        let ok = [("x-amz-firehose-access-key", "right"), ("x-amz-firehose-protocol-version", "1.0")];
        assert_eq!(check_headers(&keys, headers(&ok)), Ok(()));
        let wrong = [("x-amz-firehose-access-key", "wrong"), ("x-amz-firehose-protocol-version", "1.0")];
        assert_eq!(check_headers(&keys, headers(&wrong)), Err(Refusal::Unauthorized));
        assert_eq!(check_headers(&[], headers(&wrong)), Ok(()));
        let old = [("x-amz-firehose-protocol-version", "0.9")];
        assert!(matches!(check_headers(&[], headers(&old)), Err(Refusal::BadRequest(_))));
    }

    #[test]
    fn a_request_decodes_and_mismatched_ids_or_bad_base64_are_refused() {
        let body = br#"{"requestId":"r1","timestamp":1,"records":[{"data":"aGVsbG8="},{"data":"!!"}]}"#;
        let request = decode(body, false, "r1").unwrap();
        assert_eq!(request.records.len(), 2);
        assert!(matches!(decode(body, false, "other"), Err(Refusal::BadRequest(_))));
        let (frame, sizes) = next_frame(&request.records[..1], 0, 0).unwrap();
        assert_eq!(sizes, vec![5]);
        drop(frame);
        let refused = next_frame(&request.records, 0, 0).err().unwrap();
        assert!(refused.to_string().contains("records[1].data is not base64"), "{refused}");
    }
}
