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
        tokio::task::spawn_blocking(move || {
            let encoded = format.encode_part(&records, raw_bytes);
            // The records (and the WAL frames they slice) go now, not when the batch is cut.
            drop(records);
            backlog.finished(raw_bytes);
            encoded.map(Bytes::from).map_err(|e| e.to_string())
        })
    }

    fn enabled(&self) -> bool {
        !self.taps.wants(Stage::Delivered)
    }
}
