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
//! (Lambda / WASM) → metadata extraction → append delimiter. The last one only adds `\n` to
//! delivered records, so the encoder applies it after partitioning (see `pipeline::start`).

pub mod cloudwatch;
pub mod deaggregate;
pub mod decompress;
pub mod jq;
pub mod metadata;
pub mod parse;
pub mod route;
pub mod wasm;

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

/// Firehose's `!{firehose:error-output-type}` values: where in a record's life it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorOutputType {
    ProcessingFailed,
    DecompressionFailed,
    FormatConversionFailed,
    /// A destination gave the records up (refused, or not taken within its retry duration). The
    /// value is Firehose's name for that destination's failures (`splunk-failed`,
    /// `AmazonOpenSearchService-failed`, ...), which each sink declares in its own folder.
    DeliveryFailed(&'static str),
}

impl ErrorOutputType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorOutputType::ProcessingFailed => "processing-failed",
            ErrorOutputType::DecompressionFailed => "decompression-failed",
            ErrorOutputType::FormatConversionFailed => "format-conversion-failed",
            ErrorOutputType::DeliveryFailed(name) => name,
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
    /// Invocations tried before giving up (Firehose's `attemptsMade`).
    pub attempts: u32,
    /// The transform plugin that failed it, written where Firehose writes `lambdaArn`.
    pub lambda_arn: Option<Arc<str>>,
    /// Destination-specific fields of the error record (`esDocumentId`, `esIndexName`, ...).
    pub detail: Vec<(&'static str, String)>,
}

impl Failed {
    pub fn new(record: Record, kind: ErrorOutputType, code: &str, message: impl Into<String>) -> Self {
        Self {
            record,
            kind,
            code: code.to_string(),
            message: message.into(),
            attempts: 1,
            lambda_arn: None,
            detail: Vec::new(),
        }
    }
}

pub trait Processor: Send + Sync {
    fn name(&self) -> &'static str;
    fn process(&self, items: Vec<Item>, failed: &mut Vec<Failed>) -> Vec<Item>;
}

/// The configured processors, in order.
#[derive(Clone)]
pub struct Chain {
    processors: Vec<Arc<dyn Processor>>,
    /// Chunks of one batch processed at once, one thread each.
    parallelism: usize,
    timers: Option<ChainTimers>,
}

/// Where the chain reports its time (ExecuteProcessing.Duration, JQProcessing.Duration).
#[derive(Clone)]
pub struct ChainTimers {
    pub processing: metrics::Histogram,
    pub jq: metrics::Histogram,
}

/// Processors whose time counts as JQProcessing.Duration.
fn is_jq(p: &dyn Processor) -> bool {
    matches!(p.name(), "metadata_extraction" | "jq")
}

impl Default for Chain {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

/// Batches smaller than this per thread are processed on one thread (threads cost more).
const MIN_RECORDS_PER_THREAD: usize = 512;

impl Chain {
    pub fn new(processors: Vec<Arc<dyn Processor>>) -> Self {
        Self { processors, parallelism: 1, timers: None }
    }

    /// Reports the chain's and jq's time per batch to these histograms.
    pub fn with_timers(mut self, timers: ChainTimers) -> Self {
        self.timers = Some(timers);
        self
    }

    /// Lets one batch be split over `threads` threads (outputs keep their order).
    pub fn with_parallelism(mut self, threads: usize) -> Self {
        self.parallelism = threads.max(1);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.processors.is_empty()
    }

    /// Runs every processor over the batch. Large batches are cut into contiguous chunks that go
    /// through the whole chain on their own threads; results are joined in order.
    pub fn run(&self, records: Vec<Record>) -> (Vec<Item>, Vec<Failed>) {
        let started = std::time::Instant::now();
        let result = self.run_untimed(records);
        if let Some(t) = &self.timers {
            t.processing.record(started.elapsed());
        }
        result
    }

    fn run_untimed(&self, records: Vec<Record>) -> (Vec<Item>, Vec<Failed>) {
        let threads = self.parallelism.min(records.len() / MIN_RECORDS_PER_THREAD).max(1);
        if threads == 1 {
            return self.run_one(records);
        }
        let per_thread = records.len().div_ceil(threads);
        let mut chunks = Vec::with_capacity(threads);
        let mut rest = records;
        while rest.len() > per_thread {
            let tail = rest.split_off(per_thread);
            chunks.push(std::mem::replace(&mut rest, tail));
        }
        chunks.push(rest);
        std::thread::scope(|scope| {
            let running: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let backup = chunk.clone(); // cheap: record data is reference-counted
                    (scope.spawn(move || self.run_one(chunk)), backup)
                })
                .collect();
            let (mut items, mut failed) = (Vec::new(), Vec::new());
            for (handle, backup) in running {
                match handle.join() {
                    Ok((i, f)) => {
                        items.extend(i);
                        failed.extend(f);
                    }
                    // A processor panicked on this chunk: keep its records, in the error output.
                    Err(_) => failed.extend(backup.into_iter().map(|r| {
                        Failed::new(
                            r,
                            ErrorOutputType::ProcessingFailed,
                            "Processing.Panicked",
                            "a processor panicked on this batch",
                        )
                    })),
                }
            }
            (items, failed)
        })
    }

    fn run_one(&self, records: Vec<Record>) -> (Vec<Item>, Vec<Failed>) {
        let mut failed = Vec::new();
        let mut items: Vec<Item> = records.into_iter().map(Item::new).collect();
        for p in &self.processors {
            if items.is_empty() {
                break;
            }
            match &self.timers {
                Some(t) if is_jq(p.as_ref()) => {
                    let started = std::time::Instant::now();
                    items = p.process(items, &mut failed);
                    t.jq.record(started.elapsed());
                }
                _ => items = p.process(items, &mut failed),
            }
        }
        (items, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Split;

    impl Processor for Split {
        fn name(&self) -> &'static str {
            "split"
        }
        fn process(&self, items: Vec<Item>, failed: &mut Vec<Failed>) -> Vec<Item> {
            let mut out = Vec::new();
            for item in items {
                match item.record.data.as_ref() {
                    b"bad" => failed.push(Failed::new(item.record, ErrorOutputType::ProcessingFailed, "X", "bad")),
                    data => out.extend(data.split(|b| *b == b',').map(|p| item.derive(Bytes::copy_from_slice(p)))),
                }
            }
            out
        }
    }

    #[test]
    fn parallel_chunks_keep_the_order_of_outputs() {
        let records: Vec<Record> = (0..5000).map(|seq| Record::new(seq, 1, Bytes::from(format!("{seq},x")))).collect();
        let (one, _) = Chain::new(vec![Arc::new(Split)]).run(records.clone());
        let (many, _) = Chain::new(vec![Arc::new(Split)]).with_parallelism(4).run(records);
        assert_eq!(one.len(), 10_000);
        let key = |items: &[Item]| items.iter().map(|i| (i.record.seq, i.record.data.clone())).collect::<Vec<_>>();
        assert_eq!(key(&one), key(&many));
    }

    #[test]
    fn outputs_keep_their_source_sequence() {
        let chain = Chain::new(vec![Arc::new(Split)]);
        let rec = |seq, d: &'static [u8]| Record::new(seq, 1, Bytes::from_static(d));
        let (items, failed) = chain.run(vec![rec(1, b"a,b"), rec(2, b"bad"), rec(3, b"c")]);
        let seqs: Vec<_> = items.iter().map(|i| (i.record.seq, i.record.data.clone())).collect();
        assert_eq!(seqs, vec![(1, Bytes::from("a")), (1, Bytes::from("b")), (3, Bytes::from("c"))]);
        assert_eq!(failed[0].record.seq, 2);
    }
}
