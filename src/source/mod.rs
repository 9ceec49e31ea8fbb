//! Where records come from.
//!
//! A [`Source`] hands the pipeline records in sequence order and learns, through
//! [`Source::commit`], when everything below a sequence number has been delivered. That split is
//! what lets sources with their own durable log (a Kinesis shard, a tailed file) skip the WAL:
//! they map sequence numbers to their own positions and checkpoint those on commit. Direct PUT has
//! no upstream log, so its source is the WAL and commit frees WAL segments.

pub mod direct_put;
pub mod file;
pub mod firehose_http;
pub mod http;
pub mod journald;
pub mod json_wrap;
pub mod kafka;
pub mod kinesis;
pub mod lines;
pub mod positions;
pub mod quota;
pub mod stdin;
pub mod syslog;

use async_trait::async_trait;
use thiserror::Error;

use crate::buffer::intent::{BatchIntent, SharedLedger};
use crate::record::{Record, Seq};

#[derive(Debug, Error)]
pub enum SourceError {
    #[error(transparent)]
    Wal(#[from] crate::buffer::wal::WalError),
}

impl SourceError {
    /// An error that may pass by itself (an I/O error such as no free descriptor), as opposed to
    /// damage, which retrying cannot fix.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Wal(crate::buffer::wal::WalError::Io { .. }))
    }
}

/// The source a pipeline reads: its WAL (Direct PUT and everything that arrives into the WAL:
/// HTTP, stdin), or a log of its own (a Kinesis stream, files) with the WAL kept for its end.
/// `destinations`: how many the pipeline delivers to (a Kafka source commits whole batches only
/// with one).
pub fn open(
    spec: &crate::config::SourceSpec,
    destinations: usize,
    dir: &std::path::Path,
    pipeline: &str,
    wal: direct_put::DirectPutSource,
    status: &std::sync::Arc<crate::status::PipelineStatus>,
) -> Result<Box<dyn Source>, String> {
    use crate::config::SourceSpec;
    Ok(match spec {
        SourceSpec::Kinesis(k) => {
            let kinesis = kinesis::KinesisSource::open(k, dir, pipeline, Box::new(wal))?;
            status.set_source_start_ms(kinesis.delivery_start_ms());
            Box::new(kinesis)
        }
        SourceSpec::Kafka(k) => {
            let kafka = kafka::KafkaSource::open(k, pipeline, destinations, Box::new(wal), status.clone())?;
            Box::new(kafka)
        }
        SourceSpec::File(f) => Box::new(file::FileSource::open(f, dir, pipeline, Box::new(wal), status.clone())?),
        SourceSpec::Journald(j) => {
            Box::new(journald::JournaldSource::open(j, dir, pipeline, Box::new(wal), status.clone())?)
        }
        SourceSpec::DirectPut
        | SourceSpec::FirehoseHttpEndpoint { .. }
        | SourceSpec::Stdin { .. }
        | SourceSpec::Http(_)
        | SourceSpec::Syslog(_) => Box::new(wal),
    })
}

#[async_trait]
pub trait Source: Send {
    /// Where delivery resumes: everything below was delivered before (a restart's watermark).
    fn delivered_below(&self) -> Seq;

    /// Waits for the next records, about `max_bytes` of them. `Ok(None)` means the source has
    /// ended (shutdown) and everything it will ever produce has been returned.
    ///
    /// Must be cancel-safe: the pipeline polls it inside `select!`.
    async fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<Record>>, SourceError>;

    /// Everything below `delivered_below` is delivered or in the error output; the source may
    /// forget it. `force` asks for the checkpoint to be persisted now (shutdown).
    async fn commit(&mut self, delivered_below: Seq, force: bool) -> Result<(), SourceError>;

    /// Where the pipeline records each batch's intent before sending it (`buffer::intent`). A
    /// stream source re-reads from its checkpoint after a crash and records none by default.
    fn ledger(&self) -> SharedLedger {
        std::sync::Arc::new(crate::buffer::intent::NoLedger)
    }

    /// Where batches of records read again must be cut (`buffer::cut_marks`): a stream source
    /// that keeps where its batches ended (Kafka) marks those records; `None` for the others.
    fn cut_marks(&self) -> Option<std::sync::Arc<crate::buffer::cut_marks::CutMarks>> {
        None
    }

    /// The intents recorded before a crash, for replay to re-cut the same batches. Taken once.
    fn take_recovered_intents(&mut self) -> Vec<BatchIntent> {
        Vec::new()
    }
}

/// Writes a stream source's checkpoint at most once a second when it changed, and always when
/// forced (shutdown): often enough to bound what a crash repeats, rarely enough to cost nothing.
pub struct CheckpointPacer {
    last: std::time::Instant,
    /// Changed since last written (a change that was not yet due is written by a later call).
    dirty: bool,
}

impl Default for CheckpointPacer {
    fn default() -> Self {
        Self { last: std::time::Instant::now(), dirty: false }
    }
}

impl CheckpointPacer {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    /// Runs `save` if it is due; a failure is logged (what it costs: `what` after the last
    /// written checkpoint is read again after a restart).
    pub fn persist(
        &mut self,
        changed: bool,
        force: bool,
        pipeline: &str,
        what: &str,
        save: impl FnOnce() -> std::io::Result<()>,
    ) {
        self.dirty |= changed;
        if !(force || (self.dirty && self.last.elapsed() >= Self::EVERY)) {
            return;
        }
        self.last = std::time::Instant::now();
        self.dirty = false;
        if let Err(e) = save() {
            tracing::warn!(pipeline = %pipeline, error = %e, "cannot write the source's checkpoint; {what} after the last one written will be read again after a restart");
        }
    }
}
