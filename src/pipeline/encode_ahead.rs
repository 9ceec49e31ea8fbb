//! The object destinations' [`PartEncoder`]: encodes a filling buffer's records a part at a time on
//! the blocking pool (`buffer::parts`), and holds reading back while too many records wait for it.
//!
//! The wait matters: when encoding is what limits throughput (GZIP on two cores), records would
//! otherwise pile up in front of the encoders until the branch's memory bound, which is the heap
//! this exists to save. With two parts per core queued, reading pauses until a part is
//! done ([`EncodeBacklog::wait`]); the cores stay busy, the queue stays short.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use super::tap::{Stage, Taps};
use crate::buffer::parts::{EncodedPart, PartEncoder, PART_BYTES};
use crate::format::ObjectFormat;
use crate::record::Record;

/// Records waiting to be encoded, shared by a pipeline's encoders and its loop.
pub(super) struct EncodeBacklog {
    waiting: AtomicUsize,
    /// Raw bytes of records handed to encoders and not yet encoded past which reading waits:
    /// two parts per core keeps every core busy with the next part ready.
    limit: usize,
    done: Notify,
}

impl Default for EncodeBacklog {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self { waiting: AtomicUsize::new(0), limit: 2 * cores * PART_BYTES, done: Notify::new() }
    }
}

impl EncodeBacklog {
    /// Whether reading should wait for an encoder.
    pub(super) fn is_full(&self) -> bool {
        self.waiting.load(Ordering::Acquire) >= self.limit
    }

    /// Resolves when a part has been encoded since the last call (at once if one was).
    pub(super) async fn wait(&self) {
        self.done.notified().await
    }

    fn add(&self, bytes: usize) {
        self.waiting.fetch_add(bytes, Ordering::AcqRel);
    }

    fn finished(&self, bytes: usize) {
        self.waiting.fetch_sub(bytes, Ordering::AcqRel);
        self.done.notify_one();
    }
}

/// A part's records in the backlog until it is encoded, or abandoned (a panic, a shutdown): never
/// left counted, or reading would wait for it for ever.
struct Waiting {
    backlog: Arc<EncodeBacklog>,
    bytes: usize,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.backlog.finished(self.bytes);
    }
}

/// Encodes parts in an object destination's format.
pub(super) struct ObjectParts {
    pub(super) format: Arc<ObjectFormat>,
    pub(super) backlog: Arc<EncodeBacklog>,
    pub(super) taps: Arc<Taps>,
}

impl PartEncoder for ObjectParts {
    fn start(&self, records: Vec<Record>, raw_bytes: usize) -> EncodedPart {
        let (format, backlog) = (self.format.clone(), self.backlog.clone());
        backlog.add(raw_bytes);
        let waiting = Waiting { backlog, bytes: raw_bytes };
        tokio::task::spawn_blocking(move || {
            let encoded = format.encode_part(&records, raw_bytes);
            // The records (and the WAL frames they slice) go now, not when the batch is cut.
            drop(records);
            drop(waiting);
            encoded.map(Bytes::from).map_err(|e| e.to_string())
        })
    }

    fn enabled(&self) -> bool {
        !self.taps.wants(Stage::Delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Compression, RawEncoder};

    #[test]
    fn an_abandoned_part_leaves_the_backlog() {
        let backlog = Arc::new(EncodeBacklog::default());
        backlog.add(backlog.limit);
        assert!(backlog.is_full());
        // A part whose encoder panicked, or whose task was dropped at shutdown, drops its
        // `Waiting` all the same: reading must not wait for it for ever.
        drop(Waiting { backlog: backlog.clone(), bytes: backlog.limit });
        assert!(!backlog.is_full());
        assert_eq!(backlog.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_part_is_compressed_and_leaves_the_backlog_when_done() {
        let backlog = Arc::new(EncodeBacklog::default());
        let format = Arc::new(ObjectFormat {
            encoder: RawEncoder { append_delimiter: true },
            compression: Compression::Gzip,
            compression_level: None,
            extension: ".gz".into(),
        });
        let parts = ObjectParts { format, backlog: backlog.clone(), taps: Arc::new(Taps::default()) };
        let records = (0..100u64).map(|i| Record::new(i, 0, Bytes::from(format!("record {i}")))).collect();
        let part = parts.start(records, 1_000).await.unwrap().unwrap();
        assert_eq!(&part[..2], b"\x1f\x8b", "a gzip member");
        assert_eq!(backlog.waiting.load(Ordering::Acquire), 0);
    }
}
