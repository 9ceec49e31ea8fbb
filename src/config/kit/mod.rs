//! The toolkit a connector's config module (`sink/<kind>/config.rs`) validates with: the problem
//! collector and the checks every destination shares, so each connector owns its own options and
//! rules while errors keep one shape (file, line, column, field, and a hint).

pub use super::validate::Checker;
pub(crate) use super::validate::{choose, store_destination};
pub use super::validate::{ObjectDestination, PartitionContext};
pub use super::{ByteSize, RawDestination, RawObjectStore, RawTls};
pub use serde_saphyr::Spanned;

use std::path::PathBuf;
use std::time::Duration;
pub mod firehose;
pub mod kafka;

/// A destination's delivery metrics, as Firehose names them in CloudWatch: the
/// `sluice_delivery_to_<name>_{records_total, bytes_total, data_freshness_seconds}` series.
pub struct DeliveryMetric {
    /// `<name>` in the series' names.
    pub name: &'static str,
    /// Firehose's metric prefix (`DeliveryToSplunk`), or a note when Firehose has none.
    pub firehose: &'static str,
    /// What one record counted as delivered means for this destination.
    pub delivered: &'static str,
}

/// What every destination's DescribeDeliveryStream description shares, computed once for a stream:
/// each destination's `firehose::describe` places these where its Firehose shape has them.
pub struct DescribeContext {
    pub role_arn: String,
    /// `S3DestinationDescription`: the backup (or staging) store.
    pub backup: serde_json::Value,
    /// `ProcessingConfiguration`.
    pub processing: serde_json::Value,
    /// `BufferingHints`.
    pub buffering: serde_json::Value,
}

/// A value that must never be printed: Debug shows only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An `https://` (or `http://`) URL with a host, as every HTTP-speaking destination needs.
pub(crate) fn http_url(c: &mut Checker, url: &Spanned<String>, field: &str) {
    match reqwest::Url::parse(&url.value) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
        _ => c.at(url, field, "must be an https:// (or http://) URL with a host"),
    }
}

/// `retry_duration_seconds` (Firehose: 0-7200, default 300), shared by every sending destination.
pub(crate) fn retry_duration(c: &mut Checker, value: &Option<Spanned<u64>>, field: &str) -> Duration {
    if let Some(r) = value {
        if r.value > 7200 {
            c.at(r, &format!("{field}.retry_duration_seconds"), "must be between 0 and 7200");
        }
    }
    Duration::from_secs(value.as_ref().map_or(300, |r| r.value))
}

/// `tls: { ca_file }`, which must be readable.
pub(crate) fn ca_file(c: &mut Checker, tls: &Option<Spanned<RawTls>>, field: &str) -> Option<PathBuf> {
    let f = tls.as_ref()?.value.ca_file.as_ref()?;
    let path = c.path(&f.value);
    if let Err(e) = std::fs::read(&path) {
        c.at(f, &format!("{field}.tls.ca_file"), format!("cannot read `{}`: {e}", path.display()));
    }
    Some(path)
}

/// `starting_timestamp` of a stream source with `AT_TIMESTAMP` (Kinesis, Kafka): RFC 3339, as epoch
/// milliseconds; `None` (reported) when missing or not a time.
pub fn starting_timestamp(c: &mut Checker, t: &Option<Spanned<String>>, field: &str) -> Option<i64> {
    let Some(t) = t else {
        c.plain(format!("{field}.starting_timestamp is required with AT_TIMESTAMP"));
        return None;
    };
    match chrono::DateTime::parse_from_rfc3339(&t.value) {
        Ok(at) => Some(at.timestamp_millis()),
        Err(e) => {
            c.at(
                t,
                &format!("{field}.starting_timestamp"),
                format!("is not an RFC 3339 time such as 2026-12-01T00:00:00Z: {e}"),
            );
            None
        }
    }
}

const DEFAULT_MAX_LINE: usize = 1 << 20;

/// `max_line_bytes` of the line sources: 1 byte to 64 MiB, default 1 MiB.
pub fn max_line_bytes(c: &mut Checker, v: Option<&Spanned<ByteSize>>, field: &str) -> usize {
    match v {
        Some(b) if !(1..=64 << 20).contains(&b.value.0) => {
            c.at(b, &format!("{field}.max_line_bytes"), "must be between 1 byte and 64MiB");
            DEFAULT_MAX_LINE
        }
        Some(b) => b.value.0 as usize,
        None => DEFAULT_MAX_LINE,
    }
}
