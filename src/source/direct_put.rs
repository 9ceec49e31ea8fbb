//! The Firehose Direct PUT source: API requests → WAL → pipeline.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use thiserror::Error;

use super::{Source, SourceError};
use crate::buffer::intent::{BatchIntent, BatchLedger, LedgerError, SharedLedger};
use crate::buffer::wal::{FrameBuilder, StorageBudget, WalAppender, WalError, WalReader};
use crate::record::{Record, Seq};

#[derive(Debug, Error)]
pub enum IngestError {
    /// No room in the WAL for even one record: Firehose's ServiceUnavailableException.
    #[error("storage for this delivery stream is full ({used} of {limit} bytes); retry later")]
    Full { used: u64, limit: u64 },
    #[error("the delivery stream is shutting down")]
    Closed,
    /// The WAL cannot write right now (full disk, no file descriptors) and is recovering by
    /// itself: Firehose's ServiceUnavailableException. The cause names no server path.
    #[error("the delivery stream cannot write to its storage right now ({0}); retry later")]
    Unavailable(String),
}

/// What a put achieved: the first `accepted` records are durable from `first_seq` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub first_seq: Seq,
    pub accepted: usize,
}

/// The request handlers' handle on a Direct PUT pipeline.
#[derive(Clone)]
pub struct DirectPutIngest {
    appender: WalAppender,
    budget: Arc<StorageBudget>,
    limit: u64,
}

impl DirectPutIngest {
    pub fn new(appender: WalAppender, budget: Arc<StorageBudget>, limit: u64) -> Self {
        Self { appender, budget, limit }
    }

    /// Makes as many leading records durable as storage allows, and returns once they are fsynced.
    /// The rest (if any) are refused, so a client retries exactly those.
    pub async fn put(&self, mut frame: FrameBuilder) -> Result<Accepted, IngestError> {
        let available = self.budget.available() as usize;
        let fits = (1..=frame.count()).rev().find(|&n| frame.size_with(n) <= available).unwrap_or(0);
        let reserved = frame.size_with(fits) as u64;
        if fits == 0 || !self.budget.try_reserve(reserved) {
            return Err(IngestError::Full { used: self.budget.used(), limit: self.limit });
        }
        frame.truncate(fits);
        match self.appender.append(frame.finish()).await {
            Ok(first_seq) => Ok(Accepted { first_seq, accepted: fits }),
            Err(e) => {
                self.budget.release(reserved);
                Err(match e {
                    WalError::Closed => IngestError::Closed,
                    other => IngestError::Unavailable(other.public()),
                })
            }
        }
    }

    pub async fn close(&self) {
        self.appender.close().await;
    }

    pub fn used_bytes(&self) -> u64 {
        self.budget.used()
    }

    /// Why puts are refused right now, if the WAL is recovering from an I/O error.
    pub fn unavailable(&self) -> Option<String> {
        self.appender.unavailable()
    }
}

/// Batch intents as control frames in the WAL: they share the group commits of the records.
struct WalLedger(WalAppender);

#[async_trait]
impl BatchLedger for WalLedger {
    async fn record(&self, intent: &BatchIntent) -> Result<(), LedgerError> {
        self.0.append_control(&intent.encode()).await.map_err(|e| LedgerError(e.to_string()))
    }
}

/// The pipeline's side: reads the WAL, frees it as deliveries complete.
pub struct DirectPutSource {
    reader: WalReader,
    ledger: SharedLedger,
    recovered: Vec<BatchIntent>,
}

impl DirectPutSource {
    /// `controls` are the control-frame payloads recovery found in the WAL.
    pub fn new(reader: WalReader, appender: WalAppender, controls: Vec<Bytes>) -> Self {
        let recovered = controls
            .iter()
            .filter_map(|payload| match BatchIntent::decode(payload) {
                Ok(intent) => Some(intent),
                Err(e) => {
                    // Its frame passed the CRC, so this is a format bug, not damage: replay then
                    // cuts those records afresh (possibly delivering them twice), never loses them.
                    tracing::warn!(error = %e, "ignoring an unreadable batch intent in the WAL");
                    None
                }
            })
            .collect();
        Self { reader, ledger: Arc::new(WalLedger(appender)), recovered }
    }
}

#[async_trait]
impl Source for DirectPutSource {
    fn delivered_below(&self) -> Seq {
        self.reader.delivered_below()
    }

    async fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<Record>>, SourceError> {
        Ok(self.reader.next_batch(max_bytes).await?)
    }

    async fn commit(&mut self, delivered_below: Seq, force: bool) -> Result<(), SourceError> {
        Ok(self.reader.release_below(delivered_below, force).await?)
    }

    fn ledger(&self) -> SharedLedger {
        self.ledger.clone()
    }

    fn take_recovered_intents(&mut self) -> Vec<BatchIntent> {
        std::mem::take(&mut self.recovered)
    }
}

/// Frames of about this much are written at a time by the line sources (like a PutRecordBatch).
const LINE_FRAME_BYTES: usize = 4 << 20;

/// What a WAL-backed source writes through: the pipeline's ingest, the metrics that count what
/// came in and the status `/ready` reads. The pipeline hands it out (`PipelineHandle::port`), so a
/// source never needs the pipeline itself.
#[derive(Clone, Copy)]
pub struct IngestPort<'a> {
    pub ingest: &'a DirectPutIngest,
    pub metrics: &'a crate::metrics::PipelineMetrics,
    pub status: &'a crate::status::PipelineStatus,
}

/// Writes `records` into a WAL-backed pipeline in frames of about 4 MiB, each acknowledged after
/// its fsync, counting them as incoming. `Err((written, e))`: the first `written` records are
/// durable and the rest were refused (storage full, shutting down).
pub async fn ingest_all<R: AsRef<[u8]>>(pipeline: IngestPort<'_>, records: &[R]) -> Result<(), (usize, IngestError)> {
    let mut written = 0;
    while written < records.len() {
        let mut end = written;
        let mut bytes = 0;
        while end < records.len() && (bytes < LINE_FRAME_BYTES || end == written) {
            bytes += records[end].as_ref().len();
            end += 1;
        }
        let mut frame = FrameBuilder::new(crate::clock::now_ms(), end - written, bytes);
        for r in &records[written..end] {
            frame.push(r.as_ref());
        }
        match pipeline.ingest.put(frame).await {
            Ok(accepted) => {
                let m = &pipeline.metrics;
                m.incoming_records.increment(accepted.accepted as u64);
                let taken = &records[written..written + accepted.accepted];
                m.incoming_bytes.increment(taken.iter().map(|r| r.as_ref().len() as u64).sum());
                pipeline.status.put_accepted(crate::clock::now_ms());
                written += accepted.accepted;
            }
            Err(e) => return Err((written, e)),
        }
    }
    Ok(())
}

/// The pipeline's side a listening or reading source (stdin, syslog) writes through, owned by its
/// task: the same handles as [`IngestPort`] borrows.
pub struct OwnedPort {
    pub name: String,
    pub ingest: DirectPutIngest,
    pub metrics: crate::metrics::PipelineMetrics,
    pub status: std::sync::Arc<crate::status::PipelineStatus>,
}

impl OwnedPort {
    pub fn port(&self) -> IngestPort<'_> {
        IngestPort { ingest: &self.ingest, metrics: &self.metrics, status: &self.status }
    }

    /// Writes every record, waiting (with backoff up to a second) while storage is full or the WAL
    /// cannot write: a reading source slows down instead of dropping. `false`: the pipeline closed.
    pub async fn write_waiting<R: AsRef<[u8]>>(&self, records: &[R]) -> bool {
        let mut pending = records;
        let mut wait = std::time::Duration::from_millis(50);
        loop {
            match ingest_all(self.port(), pending).await {
                Ok(()) => return true,
                Err((written, IngestError::Full { .. } | IngestError::Unavailable(_))) => {
                    pending = &pending[written..];
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(1));
                }
                Err((_, IngestError::Closed)) => return false,
            }
        }
    }
}
