//! Destinations a batch is *sent* to, rather than written to as an object: the HTTP endpoint,
//! OpenSearch, Splunk HEC and PostgreSQL (a request per part of a batch, per-record outcomes).
//!
//! What they share lives outside them, in `pipeline/sending.rs`: the retry loop ([`RetryPolicy`],
//! backoff with jitter up to a retry duration), request ids derived from the batch's identity,
//! error records in the backup store's error prefix, the `AllData` backup copy, metrics and `/ready`.
//!
//! [`RetryPolicy`]: super::retry::RetryPolicy

use std::ops::Range;

use async_trait::async_trait;

use crate::process::{ErrorOutputType, PartitionKeys};
use crate::record::Record;

/// Why a request (or one record of it) failed, with Firehose's error code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendError {
    pub code: &'static str,
    pub message: String,
    /// Retrying cannot help (an HTTP 413, a mapping error): the records go to the error output.
    pub permanent: bool,
    /// Fields for the record's error record (`esDocumentId`, ...).
    pub detail: Vec<(&'static str, String)>,
}

impl SendError {
    pub fn retry(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), permanent: false, detail: Vec::new() }
    }

    pub fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), permanent: true, detail: Vec::new() }
    }
}

/// What became of one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Nothing was taken.
    Failed(SendError),
    /// Some records were taken. `retry` are indexes (into the request's records) worth sending
    /// again; `rejected` will never be taken; `cause` describes the retryable failures.
    Partial {
        retry: Vec<usize>,
        rejected: Vec<(usize, SendError)>,
        cause: SendError,
    },
}

#[async_trait]
pub trait Destination: Send + Sync {
    /// How logs and metrics name it.
    fn name(&self) -> &str;

    /// The `!{firehose:error-output-type}` of records it gives up on.
    fn error_output_type(&self) -> ErrorOutputType;

    /// The parts of a batch that go in one request each (the destination's size limits).
    fn requests(&self, records: &[Record]) -> Vec<Range<usize>>;

    /// Sends one request of `records[i]` for each `i` in `indexes` (all of them at first, then
    /// the ones to retry). `request_id` and the indexes are the same on every retry and after a
    /// crash and replay, so ids derived from them (document ids) are stable. Indexes in the
    /// outcome are positions in `indexes`.
    async fn send(&self, request_id: &str, records: &[Record], indexes: &[usize]) -> Outcome;

    /// Plugin partition keys (`partitionKeyFromLambda` names) this destination routes by: batches are
    /// split by their values and each batch's keys come to [`Destination::send_keyed`].
    fn routing_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// [`Destination::send`] with the batch's partition keys (what [`Destination::routing_keys`] asked for).
    async fn send_keyed(
        &self,
        request_id: &str,
        records: &[Record],
        indexes: &[usize],
        _keys: Option<&PartitionKeys>,
    ) -> Outcome {
        self.send(request_id, records, indexes).await
    }

    /// Fields an error record for `records[index]` carries besides Firehose's common ones, when
    /// the records are given up as a whole (OpenSearch: `esDocumentId`, `esIndexName`).
    fn record_detail(&self, _request_id: &str, _records: &[Record], _index: usize) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}
