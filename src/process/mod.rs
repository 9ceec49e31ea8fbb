//! Processors: what happens to records between the WAL and the buffers.
//!
//! A processor takes a whole batch (records cross processor boundaries a batch at a time, as in
//! Arroyo) and returns the records that continue, pushing the ones it rejects onto `failed` with
//! a Firehose error type, code and message. Every output keeps the sequence number of the source
//! record it came from, so a record that fans out (de-aggregation) or is dropped is still tracked
//! exactly: its WAL space is freed only once all of its outputs, error records included, are
//! delivered.
//!
//! Built-ins run in Firehose's order: decompression → CloudWatch Logs processing → de-aggregation →
//! (Lambda / WASM) → metadata extraction → append delimiter.

pub mod cloudwatch;
pub mod deaggregate;
pub mod decompress;
pub mod metadata;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::record::Record;

/// Partition keys a record produced (`!{partitionKeyFromQuery:k}` / `!{partitionKeyFromLambda:k}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionKeys {
    pub query: BTreeMap<String, String>,
    pub lambda: BTreeMap<String, String>,
}

/// A record on its way through the processors.
#[derive(Clone, Debug)]
pub struct Item {
    pub record: Record,
    pub keys: Option<Arc<PartitionKeys>>,
}

impl Item {
    pub fn new(record: Record) -> Self {
        Self { record, keys: None }
    }

    /// A new record derived from this one (same sequence number and arrival time).
    pub fn derive(&self, data: Bytes) -> Self {
        Self { record: Record { data, ..self.record.clone() }, keys: self.keys.clone() }
    }
}

/// Firehose's `!{firehose:error-output-type}` values that sluice produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorOutputType {
    ProcessingFailed,
    DecompressionFailed,
    FormatConversionFailed,
}

impl ErrorOutputType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorOutputType::ProcessingFailed => "processing-failed",
            ErrorOutputType::DecompressionFailed => "decompression-failed",
            ErrorOutputType::FormatConversionFailed => "format-conversion-failed",
        }
    }
}

/// A record that goes to the error output instead of the destination.
#[derive(Clone, Debug)]
pub struct Failed {
    /// The record as it was when it failed (Firehose's `rawData`).
    pub record: Record,
    pub kind: ErrorOutputType,
    pub code: String,
    pub message: String,
}

impl Failed {
    pub fn new(record: Record, kind: ErrorOutputType, code: &str, message: impl Into<String>) -> Self {
        Self { record, kind, code: code.to_string(), message: message.into() }
    }
}

pub trait Processor: Send + Sync {
    fn name(&self) -> &'static str;
    fn process(&self, items: Vec<Item>, failed: &mut Vec<Failed>) -> Vec<Item>;
}

/// Adds `\n` after each record (Firehose's AppendDelimiterToRecord).
pub struct AppendDelimiter;

impl Processor for AppendDelimiter {
    fn name(&self) -> &'static str {
        "append_delimiter"
    }

    fn process(&self, items: Vec<Item>, _failed: &mut Vec<Failed>) -> Vec<Item> {
        items
            .into_iter()
            .map(|mut item| {
                let mut data = Vec::with_capacity(item.record.data.len() + 1);
                data.extend_from_slice(&item.record.data);
                data.push(b'\n');
                item.record.data = Bytes::from(data);
                item
            })
            .collect()
    }
}

/// The configured processors, in order.
#[derive(Clone, Default)]
pub struct Chain {
    processors: Vec<Arc<dyn Processor>>,
}

impl Chain {
    pub fn new(processors: Vec<Arc<dyn Processor>>) -> Self {
        Self { processors }
    }

    pub fn is_empty(&self) -> bool {
        self.processors.is_empty()
    }

    pub fn run(&self, records: Vec<Record>) -> (Vec<Item>, Vec<Failed>) {
        let mut failed = Vec::new();
        let mut items: Vec<Item> = records.into_iter().map(Item::new).collect();
        for p in &self.processors {
            if items.is_empty() {
                break;
            }
            items = p.process(items, &mut failed);
        }
        (items, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_delimiter_adds_a_newline_and_keeps_the_sequence() {
        let chain = Chain::new(vec![Arc::new(AppendDelimiter)]);
        let (items, failed) = chain.run(vec![Record { seq: 7, arrival_ms: 1, data: Bytes::from_static(b"a") }]);
        assert!(failed.is_empty());
        assert_eq!(&items[0].record.data[..], b"a\n");
        assert_eq!(items[0].record.seq, 7);
    }
}
