//! Size-or-interval buffering, one buffer per partition (Firehose: one per evaluated prefix).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::parts::{part_bytes, EncodedPart, PartEncoder};
use crate::config::Buffering;
use crate::hash::{fnv1a, splitmix64};
use crate::process::PartitionKeys;
use crate::record::{Origin, Record, SeqRanges};

/// Identifies a partition. Without dynamic partitioning every record shares the empty key;
/// dynamic partitioning keys buffers by the partition values a record produced.
pub type PartitionKey = Arc<str>;

/// Records on their way into one object.
#[derive(Debug)]
pub struct Batch {
    pub partition: PartitionKey,
    /// The records not yet encoded: all of them, unless the batcher encodes parts early
    /// (`parts.rs`); then only those after the last part.
    pub records: Vec<Record>,
    /// The batch's first records, encoded in order (`parts.rs`); the object is these, then
    /// `records` encoded.
    pub parts: Vec<EncodedPart>,
    /// Records in `parts`.
    encoded_records: usize,
    /// Bytes of `records` (the rest of `bytes` is in `parts`).
    pending_bytes: usize,
    /// The last record's source sequence: a buffer is never cut between outputs of one.
    last_seq: Option<u64>,
    /// Whether the first record came from a stream (see [`Batch::identity`]).
    stream_named: bool,
    /// The stream positions of every record so far, folded in order ([`Batch::identity`]).
    positions: u64,
    /// Bytes the records will occupy before compression (including delimiters).
    pub bytes: usize,
    pub seqs: SeqRanges,
    /// Arrival of the oldest record: names the object and evaluates `!{timestamp:..}`.
    pub oldest_arrival_ms: i64,
    /// The partition's key values, for `!{partitionKeyFrom...:k}` in the prefix.
    pub keys: Option<Arc<PartitionKeys>>,
    opened: Instant,
}

impl Batch {
    pub(crate) fn new(partition: PartitionKey, keys: Option<Arc<PartitionKeys>>, now: Instant) -> Self {
        Self {
            partition,
            records: Vec::new(),
            parts: Vec::new(),
            encoded_records: 0,
            pending_bytes: 0,
            last_seq: None,
            stream_named: false,
            positions: 0,
            bytes: 0,
            seqs: SeqRanges::default(),
            oldest_arrival_ms: i64::MAX,
            keys,
            opened: now,
        }
    }

    pub(crate) fn push(&mut self, record: Record, weight: usize) {
        if self.last_seq.is_none() {
            self.stream_named = record.origin.is_some();
        }
        self.last_seq = Some(record.seq);
        if self.stream_named {
            // Only a stream-read batch is named by its positions (`identity`).
            self.positions = splitmix64(self.positions ^ position_hash(&record));
        }
        self.bytes += weight;
        self.pending_bytes += weight;
        self.seqs.push(record.seq);
        self.oldest_arrival_ms = self.oldest_arrival_ms.min(record.arrival_ms);
        self.records.push(record);
    }

    /// Bytes of the records not yet encoded (`records`), before compression.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Records in the batch, encoded or not.
    pub fn len(&self) -> usize {
        self.encoded_records + self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands the records not yet encoded to `encoder` as the batch's next part.
    fn encode_pending(&mut self, encoder: &dyn PartEncoder) {
        let records = std::mem::take(&mut self.records);
        self.encoded_records += records.len();
        self.parts.push(encoder.start(records, self.pending_bytes));
        self.pending_bytes = 0;
    }

    /// The object's first sequence number.
    pub fn first_seq(&self) -> u64 {
        self.seqs.first().unwrap_or_default()
    }

    /// Whether [`Batch::identity`] comes from stream positions (a Kinesis shard's sequence
    /// numbers, a Kafka partition's offsets: the same for every daemon reading the stream) rather
    /// than from this state directory's WAL sequences.
    pub fn named_by_stream_positions(&self) -> bool {
        self.stream_named
    }

    /// What names the batch (object key, HTTP request id, document ids) deterministically.
    ///
    /// From the WAL, its first sequence number: replay re-cuts exactly the recorded batches
    /// (`buffer::intent`). From a stream (Kinesis, Kafka), pipeline sequences are numbered afresh
    /// after a restart, so the name comes from the stream positions of *every* record in the
    /// batch: a batch re-read and cut the same way overwrites its earlier copy. It must be every
    /// record, not the first: a batch that starts at the same record but holds others would
    /// overwrite an object whose other records may not be read again (another shard's or
    /// partition's checkpoint may have passed them), and that would lose them.
    pub fn identity(&self) -> u64 {
        if !self.named_by_stream_positions() {
            return self.first_seq();
        }
        self.positions
    }
}

/// A record's stream position as a number (its WAL sequence when it has none).
fn position_hash(r: &Record) -> u64 {
    match r.origin.as_deref() {
        None => r.seq,
        Some(Origin::Kinesis(k)) => {
            fnv1a(&[k.shard_id.as_bytes(), k.sequence_number.as_bytes(), &k.subsequence_number.to_le_bytes()])
        }
        Some(Origin::Kafka(k)) => fnv1a(&[k.topic.as_bytes(), &k.partition.to_le_bytes(), &k.offset.to_le_bytes()]),
    }
}

pub struct Batcher {
    limits: Buffering,
    /// foldhash: looked up once per record, with keys the partitioner built from record data (no
    /// HashDoS concern: a hostile key can at most share a bucket, and partitions are bounded).
    open: HashMap<PartitionKey, Batch, foldhash::fast::RandomState>,
    buffered_bytes: usize,
    /// Encodes open batches a part at a time (`parts.rs`); `None` keeps records until the cut.
    parts: Option<std::sync::Arc<dyn PartEncoder>>,
    /// [`part_bytes`] of the buffer size.
    part_bytes: usize,
}

impl Batcher {
    pub fn new(limits: Buffering) -> Self {
        Self {
            limits,
            open: HashMap::default(),
            buffered_bytes: 0,
            parts: None,
            part_bytes: part_bytes(limits.size_bytes),
        }
    }

    /// A batcher whose open batches are encoded by `encoder` a part at a time ([`part_bytes`]) as
    /// they fill.
    pub fn encoding_parts(limits: Buffering, encoder: std::sync::Arc<dyn PartEncoder>) -> Self {
        Self { parts: Some(encoder), ..Self::new(limits) }
    }

    /// Adds a record weighing `weight` bytes. Returns the partition's buffer if this record would
    /// overflow it (so objects stay at or just under the size).
    ///
    /// A buffer is never cut between two outputs of one source record (a de-aggregated record's
    /// parts stay together, overflowing by at most that record): a batch then holds *all* outputs
    /// of the source sequences it names, which is what its recorded intent says (`intent.rs`).
    /// For the same reason a buffer that is exactly full is not cut here but by
    /// [`Batcher::take_full`] once the read's outputs are all placed.
    pub fn push(&mut self, partition: &PartitionKey, record: Record, weight: usize, now: Instant) -> Option<Batch> {
        self.push_keyed(partition, None, record, weight, now)
    }

    /// [`Batcher::push`] for a partition whose key values the batch must carry.
    pub fn push_keyed(
        &mut self,
        partition: &PartitionKey,
        keys: Option<&Arc<PartitionKeys>>,
        record: Record,
        weight: usize,
        now: Instant,
    ) -> Option<Batch> {
        let limit = self.limits.size_bytes;
        let mut ready = None;
        match self.open.get_mut(partition) {
            Some(batch) => {
                let same_source = batch.last_seq == Some(record.seq);
                if batch.bytes > 0 && batch.bytes + weight > limit && !same_source {
                    let full = std::mem::replace(batch, Batch::new(partition.clone(), keys.cloned(), now));
                    self.buffered_bytes -= full.bytes;
                    ready = Some(full);
                }
                batch.push(record, weight);
                if let Some(encoder) = &self.parts {
                    // A full buffer is cut (and its rest encoded) at once; only one that goes on
                    // filling gains from encoding now.
                    if batch.pending_bytes >= self.part_bytes && batch.bytes < limit && encoder.enabled() {
                        batch.encode_pending(encoder.as_ref());
                    }
                }
            }
            None => {
                let mut batch = Batch::new(partition.clone(), keys.cloned(), now);
                batch.push(record, weight);
                self.open.insert(partition.clone(), batch);
            }
        }
        self.buffered_bytes += weight;
        ready
    }

    /// Buffers at or over the size limit: call once every output of a read is placed.
    pub fn take_full(&mut self) -> Vec<Batch> {
        let limit = self.limits.size_bytes;
        let keys: Vec<PartitionKey> =
            self.open.iter().filter(|(_, b)| b.bytes >= limit).map(|(k, _)| k.clone()).collect();
        keys.iter().filter_map(|k| self.take_partition(k)).collect()
    }

    /// One partition's open batch, cut now (also a re-read stream's recorded cut, `cut_marks.rs`).
    pub fn take_partition(&mut self, partition: &PartitionKey) -> Option<Batch> {
        let batch = self.open.remove(partition)?;
        self.buffered_bytes -= batch.bytes;
        Some(batch)
    }

    /// Batches whose interval has elapsed.
    pub fn due(&mut self, now: Instant) -> Vec<Batch> {
        let interval = self.limits.interval;
        let keys: Vec<PartitionKey> = self
            .open
            .iter()
            .filter(|(_, b)| now.duration_since(b.opened) >= interval)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| self.take_partition(k)).collect()
    }

    /// Every open batch (shutdown, or interval zero).
    pub fn drain(&mut self) -> Vec<Batch> {
        self.buffered_bytes = 0;
        self.open.drain().map(|(_, b)| b).collect()
    }

    /// The biggest open batch, to flush early when buffers together exceed their memory budget.
    pub fn take_largest(&mut self) -> Option<Batch> {
        let key = self.open.iter().max_by_key(|(_, b)| b.bytes).map(|(k, _)| k.clone())?;
        self.take_partition(&key)
    }

    pub fn contains(&self, partition: &PartitionKey) -> bool {
        self.open.contains_key(partition)
    }

    pub fn keys(&self) -> impl Iterator<Item = &PartitionKey> {
        self.open.keys()
    }

    /// When the oldest open batch falls due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open.values().map(|b| b.opened + self.limits.interval).min()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    pub fn partitions(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn rec(seq: u64, len: usize) -> Record {
        Record::new(seq, 1000 + seq as i64, Bytes::from(vec![b'x'; len]))
    }

    fn limits(size: usize, secs: u64) -> Buffering {
        Buffering { size_bytes: size, interval: Duration::from_secs(secs) }
    }

    #[test]
    fn flushes_before_overflowing_so_objects_stay_at_size() {
        let key: PartitionKey = "".into();
        let mut b = Batcher::new(limits(1000, 300));
        let now = Instant::now();
        let mut out = Vec::new();
        for seq in 0..100 {
            out.extend(b.push(&key, rec(seq, 90), 90, now));
        }
        assert_eq!(out.len(), 9);
        assert!(out.iter().all(|batch| batch.bytes == 990 && batch.records.len() == 11));
        assert_eq!(out[1].first_seq(), 11);
        assert_eq!(out[1].oldest_arrival_ms, 1011);
        assert_eq!(b.buffered_bytes(), 90);
    }

    #[test]
    fn exactly_full_is_taken_after_the_read() {
        let key: PartitionKey = "".into();
        let mut b = Batcher::new(limits(100, 300));
        assert!(b.push(&key, rec(0, 50), 50, Instant::now()).is_none());
        assert!(b.push(&key, rec(1, 50), 50, Instant::now()).is_none());
        let full = b.take_full();
        assert_eq!(full.len(), 1);
        assert_eq!(full[0].records.len(), 2);
        assert!(b.is_empty());
    }

    #[test]
    fn outputs_of_one_source_record_are_never_split() {
        let key: PartitionKey = "".into();
        let mut b = Batcher::new(limits(100, 300));
        let now = Instant::now();
        assert!(b.push(&key, rec(0, 60), 60, now).is_none());
        // Three parts of source record 1: the first overflows and cuts before it; the others
        // stay with it even though they overflow too.
        let cut = b.push(&key, rec(1, 60), 60, now).unwrap();
        assert_eq!(cut.records.len(), 1);
        assert!(b.push(&key, rec(1, 60), 60, now).is_none());
        assert!(b.push(&key, rec(1, 60), 60, now).is_none());
        let full = b.take_full();
        assert_eq!(full[0].records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 1, 1]);
    }

    /// Encodes a part as its records' bytes, concatenated.
    struct Concatenate;

    impl PartEncoder for Concatenate {
        fn start(&self, records: Vec<Record>, _raw_bytes: usize) -> EncodedPart {
            tokio::task::spawn_blocking(move || {
                Ok(records.iter().flat_map(|r| r.data.to_vec()).collect::<Vec<_>>().into())
            })
        }
        fn enabled(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn parts_are_encoded_as_a_buffer_fills_and_change_nothing_else() {
        let key: PartitionKey = "".into();
        let size = 7 << 20;
        let record = |seq: u64| Record::new(seq, 1000 + seq as i64, Bytes::from(vec![b'a' + (seq % 26) as u8; 4096]));
        let mut plain = Batcher::new(limits(size, 300));
        let mut parted = Batcher::encoding_parts(limits(size, 300), Arc::new(Concatenate));
        let now = Instant::now();
        let (mut cut_plain, mut cut_parted) = (Vec::new(), Vec::new());
        for seq in 0..4000 {
            cut_plain.extend(plain.push(&key, record(seq), 4096, now));
            cut_parted.extend(parted.push(&key, record(seq), 4096, now));
        }
        assert_eq!(cut_plain.len(), 2);
        assert_eq!(cut_parted.len(), 2);
        for (a, mut b) in cut_plain.into_iter().zip(cut_parted) {
            // Same cut, same names, same counts: only where the records are differs.
            assert_eq!(
                (a.seqs.normalized(), a.bytes, a.oldest_arrival_ms),
                (b.seqs.normalized(), b.bytes, b.oldest_arrival_ms)
            );
            assert_eq!((a.identity(), a.len()), (b.identity(), b.len()));
            assert_eq!(b.parts.len(), 6, "a part per MiB while the buffer fills; the rest stays records");
            assert!(b.records.len() < a.records.len() / 3);
            let mut object = Vec::new();
            for part in std::mem::take(&mut b.parts) {
                object.extend_from_slice(&part.await.unwrap().unwrap());
            }
            b.records.iter().for_each(|r| object.extend_from_slice(&r.data));
            let expected: Vec<u8> = a.records.iter().flat_map(|r| r.data.to_vec()).collect();
            assert!(object == expected, "the parts and the rest, in order, are the batch's records");
        }
    }

    #[test]
    fn interval_applies_per_partition_from_its_first_record() {
        let mut b = Batcher::new(limits(1 << 20, 10));
        let t0 = Instant::now();
        b.push(&"a".into(), rec(0, 1), 1, t0);
        b.push(&"b".into(), rec(1, 1), 1, t0 + Duration::from_secs(5));
        assert_eq!(b.next_deadline(), Some(t0 + Duration::from_secs(10)));
        let due = b.due(t0 + Duration::from_secs(10));
        assert_eq!(due.len(), 1);
        assert_eq!(&*due[0].partition, "a");
        assert_eq!(b.partitions(), 1);
        assert_eq!(b.drain().len(), 1);
    }

    #[test]
    fn a_kinesis_batch_is_named_by_the_positions_of_all_its_records() {
        let at = |seq: u64, position: &str| Record {
            origin: Some(Arc::new(Origin::Kinesis(crate::record::KinesisMetadata {
                shard_id: Arc::from("shardId-000000000000"),
                sequence_number: position.into(),
                subsequence_number: 0,
                partition_key: "k".into(),
            }))),
            ..rec(seq, 1)
        };
        let batch = |records: Vec<Record>| {
            let mut b = Batch::new(Arc::from(""), None, Instant::now());
            records.into_iter().for_each(|r| b.push(r, 1));
            b
        };
        // Re-read after a restart: other pipeline sequences, the same stream records.
        let first = batch(vec![at(5, "100"), at(6, "200")]);
        assert_eq!(first.identity(), batch(vec![at(90, "100"), at(91, "200")]).identity());
        // Same first record, other records: another name, so nothing is overwritten.
        assert_ne!(first.identity(), batch(vec![at(5, "100"), at(6, "300")]).identity());
        assert_ne!(first.identity(), batch(vec![at(5, "100")]).identity());
        // Without stream positions the first sequence names the batch.
        assert_eq!(batch(vec![rec(7, 1), rec(8, 1)]).identity(), 7);
    }

    #[test]
    fn a_kafka_batch_is_named_by_topic_partition_and_offsets() {
        let at = |seq: u64, partition: i32, offset: i64| Record {
            origin: Some(Arc::new(Origin::Kafka(crate::record::KafkaMetadata {
                topic: Arc::from("logs"),
                partition,
                offset,
                timestamp_ms: Some(seq as i64),
                key: None,
                headers: vec![],
            }))),
            ..rec(seq, 1)
        };
        let batch = |records: Vec<Record>| {
            let mut b = Batch::new(Arc::from(""), None, Instant::now());
            records.into_iter().for_each(|r| b.push(r, 1));
            b
        };
        let first = batch(vec![at(5, 0, 10), at(6, 0, 11)]);
        assert!(first.named_by_stream_positions());
        assert_eq!(first.identity(), batch(vec![at(70, 0, 10), at(71, 0, 11)]).identity(), "another daemon, re-read");
        assert_ne!(first.identity(), batch(vec![at(5, 1, 10), at(6, 1, 11)]).identity(), "another partition");
        assert_ne!(first.identity(), batch(vec![at(5, 0, 10)]).identity());
    }
}
