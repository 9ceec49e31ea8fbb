//! Where batches must be cut while a stream is read again, so that a re-read batch holds exactly
//! the records it held before and lands under the same name.
//!
//! A batch of stream records is named from their positions (`Batch::identity`); read again after
//! a crash or by another consumer, it overwrites its earlier copy only if it is cut at the same
//! record. Size cuts repeat by themselves (the same records weigh the same), but an interval cut
//! depends on when records arrived. So a source that can (Kafka: in its committed offsets'
//! metadata, `source/kafka/cuts.rs`) keeps where each batch it sent ended, and when it reads those
//! records again it marks the record that ended a batch: the pipeline cuts that buffer right after
//! placing it.
//!
//! Records of different source partitions never share a batch when this is used (their buffer keys
//! carry the source partition, [`with_source_partition`]), so "cut after this record" is enough to
//! describe a batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::intent::Lane;
use super::PartitionKey;
use crate::hash::fnv1a;
use crate::record::{Record, Seq};

/// One buffer to cut after a record: the destination's index, the lane, and the buffer's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CutMark {
    pub branch: u8,
    pub lane: Lane,
    pub key_hash: u32,
}

/// A buffer key as a short number (what a source keeps and marks records with).
pub fn key_hash(key: &str) -> u32 {
    fnv1a(&[key.as_bytes()]) as u32
}

/// Separates a buffer key from the source partition folded into it.
const SOURCE_PARTITION: char = '\u{1e}';

/// `key` with the record's source partition folded in (Kafka: `topic/partition`), so that no batch
/// mixes partitions; `key` itself for records of other sources. Prefixes are rendered from a
/// batch's partition-key values, not from this text, so object keys do not change.
pub fn with_source_partition(key: &PartitionKey, record: &Record) -> PartitionKey {
    match record.kafka() {
        Some(k) => PartitionKey::from(format!("{key}{SOURCE_PARTITION}{}/{}", k.topic, k.partition)),
        None => key.clone(),
    }
}

/// [`with_source_partition`] without an allocation per record: keys seen are kept.
#[derive(Default)]
pub struct SourcePartitionKeys {
    cache: HashMap<(PartitionKey, std::sync::Arc<str>, i32), PartitionKey, foldhash::fast::RandomState>,
}

/// Keys kept at most; past it the cache starts over.
const MAX_CACHED: usize = 10_000;

impl SourcePartitionKeys {
    pub fn get(&mut self, key: &PartitionKey, record: &Record) -> PartitionKey {
        let Some(k) = record.kafka() else { return key.clone() };
        let id = (key.clone(), k.topic.clone(), k.partition);
        if let Some(found) = self.cache.get(&id) {
            return found.clone();
        }
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        let made = with_source_partition(key, record);
        self.cache.insert(id, made.clone());
        made
    }
}

/// A buffer key without the source partition [`with_source_partition`] folded in.
pub fn without_source_partition(key: &str) -> &str {
    key.split(SOURCE_PARTITION).next().unwrap_or(key)
}

/// Marked records, by pipeline sequence, until the pipeline places them.
#[derive(Default)]
pub struct CutMarks {
    /// How many records are marked: the common case (none) costs one atomic load per record.
    count: AtomicUsize,
    marks: Mutex<HashMap<Seq, Vec<CutMark>>>,
    /// The source asks for every open buffer to be cut now (Kafka: partitions are being revoked,
    /// and what was read from them should be delivered and committed before they go).
    flush: AtomicBool,
}

impl CutMarks {
    pub fn add(&self, seq: Seq, marks: Vec<CutMark>) {
        if marks.is_empty() {
            return;
        }
        let mut m = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        if m.insert(seq, marks).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the buffer (`branch`, `lane`, `key`) is to be cut after the record `seq`.
    pub fn cut_after(&self, seq: Seq, branch: u8, lane: Lane, key: &str) -> bool {
        if self.count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let wanted = CutMark { branch, lane, key_hash: key_hash(key) };
        let m = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&seq).is_some_and(|marks| marks.contains(&wanted))
    }

    pub fn request_flush(&self) {
        self.flush.store(true, Ordering::Relaxed);
    }

    /// Whether a flush was asked for since the last call.
    pub fn take_flush_request(&self) -> bool {
        self.flush.swap(false, Ordering::Relaxed)
    }

    /// Marks of records every destination has placed are not needed any more.
    pub fn forget_below(&self, seq: Seq) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut m = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|s, _| *s >= seq);
        self.count.store(m.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;

    #[test]
    fn marks_name_one_buffer_of_one_destination() {
        let marks = CutMarks::default();
        assert!(!marks.cut_after(5, 0, Lane::Data, "k"));
        marks.add(5, vec![CutMark { branch: 0, lane: Lane::Data, key_hash: key_hash("k") }]);
        assert!(marks.cut_after(5, 0, Lane::Data, "k"));
        assert!(!marks.cut_after(5, 1, Lane::Data, "k"), "another destination");
        assert!(!marks.cut_after(5, 0, Lane::Errors, "k"), "the error lane");
        assert!(!marks.cut_after(5, 0, Lane::Data, "other"));
        assert!(!marks.cut_after(6, 0, Lane::Data, "k"));
        marks.forget_below(6);
        assert!(!marks.cut_after(5, 0, Lane::Data, "k"));
    }

    #[test]
    fn kafka_records_carry_their_partition_in_the_buffer_key() {
        let kafka = crate::record::KafkaMetadata {
            topic: Arc::from("logs"),
            partition: 3,
            offset: 9,
            timestamp_ms: None,
            key: None,
            headers: vec![],
        };
        let r =
            Record { origin: Some(Arc::new(crate::record::Origin::Kafka(kafka))), ..Record::new(1, 1, Bytes::new()) };
        let key = with_source_partition(&PartitionKey::from("processing-failed"), &r);
        assert_ne!(&*key, "processing-failed");
        assert_eq!(without_source_partition(&key), "processing-failed");
        let plain = Record::new(1, 1, Bytes::new());
        assert_eq!(&*with_source_partition(&PartitionKey::from("p"), &plain), "p");
    }
}
