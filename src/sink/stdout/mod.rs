//! `destination: stdout`: every record on standard output, one per line (NDJSON for JSON records),
//! for trying a pipeline (`sluice run --config try.yaml | jq .`) and for containers whose runtime
//! collects standard output. Logs go to standard error, so the two never mix.
//!
//! A batch is written and flushed whole; a write that fails (a closed pipe) is retried as any
//! sending destination's is, then its records go to the backup store's error prefix.

pub mod config;
pub mod firehose;

use std::io::Write;

use async_trait::async_trait;

use super::destination::{Destination, Outcome, SendError};
use crate::process::ErrorOutputType;
use crate::record::Record;

pub struct Stdout;

#[async_trait]
impl Destination for Stdout {
    fn name(&self) -> &str {
        "stdout"
    }

    fn error_output_type(&self) -> ErrorOutputType {
        ErrorOutputType::DeliveryFailed("stdout-failed")
    }

    fn requests(&self, records: &[Record]) -> Vec<std::ops::Range<usize>> {
        std::iter::once(0..records.len()).collect()
    }

    async fn send(&self, _request_id: &str, records: &[Record], indexes: &[usize]) -> Outcome {
        let mut text = Vec::with_capacity(indexes.iter().map(|&i| records[i].data.len() + 1).sum());
        for &i in indexes {
            let data = &records[i].data;
            text.extend_from_slice(data);
            if !data.ends_with(b"\n") {
                text.push(b'\n');
            }
        }
        // One locked write per batch: lines of concurrent batches never interleave.
        let written = tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            out.write_all(&text).and_then(|()| out.flush())
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        match written {
            Ok(()) => Outcome::Delivered,
            Err(e) => {
                Outcome::Failed(SendError::retry("Stdout.WriteFailed", format!("cannot write to standard output: {e}")))
            }
        }
    }
}
