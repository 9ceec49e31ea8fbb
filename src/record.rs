//! The unit that flows through a pipeline.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

/// A pipeline-local position. For Direct PUT it is the WAL sequence number; a stream source maps
/// it to its own checkpoint (shard sequence number, file offset). Positions only ever grow, which
/// is what lets the delivery tracker compute a single "delivered below" watermark.
pub type Seq = u64;

/// One record as a client sent it, plus where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: Seq,
    /// Approximate arrival time, epoch milliseconds (Firehose's `approximateArrivalTimestamp`).
    pub arrival_ms: i64,
    pub data: Bytes,
    /// Where the record sits in a stream it was read from (a Kinesis shard, a Kafka partition);
    /// `None` for every other source. Shared, so the outputs of one source record cost one pointer
    /// each.
    pub origin: Option<Arc<Origin>>,
}

impl Record {
    /// A record without stream metadata (every source but Kinesis and Kafka).
    pub fn new(seq: Seq, arrival_ms: i64, data: Bytes) -> Self {
        Self { seq, arrival_ms, data, origin: None }
    }

    /// Its Kinesis position, for a record read from a Kinesis Data Stream.
    pub fn kinesis(&self) -> Option<&KinesisMetadata> {
        match self.origin.as_deref() {
            Some(Origin::Kinesis(k)) => Some(k),
            _ => None,
        }
    }

    /// Its Kafka position, key and headers, for a record read from a Kafka topic.
    pub fn kafka(&self) -> Option<&KafkaMetadata> {
        match self.origin.as_deref() {
            Some(Origin::Kafka(k)) => Some(k),
            _ => None,
        }
    }
}

/// The stream position a record was read from. Positions are the same for every daemon reading
/// the stream, which is what lets a batch be named from them (see `Batch::identity`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Kinesis(KinesisMetadata),
    Kafka(KafkaMetadata),
}

/// A Kafka record's place (topic, partition, offset), its timestamp, key and headers: what
/// plugins receive (ABI version 3) and what its error record names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaMetadata {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The record's own timestamp (producer or broker time, as the topic says), epoch ms.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Bytes>,
    /// In the order the producer wrote them; a header without a value has an empty one.
    pub headers: Vec<(String, Bytes)>,
}

/// A Kinesis record's position and key: Firehose's `kinesisRecordMetadata` (given to transform
/// plugins) and the `sequenceNumber`/`subSequenceNumber` of its error records. It also names a
/// batch deterministically from stream positions (see `Batch::identity`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KinesisMetadata {
    pub shard_id: Arc<str>,
    pub sequence_number: String,
    /// The position inside a KPL aggregate; 0 for a record that was not aggregated.
    pub subsequence_number: u64,
    pub partition_key: String,
}

/// Sequence numbers held by a batch, kept as coalesced ranges so that a 5 MiB object of 20,000
/// consecutive records costs one range, not 20,000 entries.
///
/// As pushed, this is a multiset in push order: a sequence appears once per output of that
/// source record (the delivery tracker counts outputs this way). [`SeqRanges::normalized`] gives
/// the distinct sequences, sorted, which is what identifies a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqRanges(Vec<Range<Seq>>);

impl SeqRanges {
    pub fn push(&mut self, seq: Seq) {
        match self.0.last_mut() {
            Some(last) if last.end == seq => last.end += 1,
            _ => self.0.push(seq..seq + 1),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Range<Seq>> {
        self.0.iter()
    }

    pub fn first(&self) -> Option<Seq> {
        self.0.first().map(|r| r.start)
    }

    /// The highest sequence held.
    pub fn last(&self) -> Option<Seq> {
        self.0.last().map(|r| r.end - 1)
    }

    /// Whether `seq` is held (binary search over the ranges).
    pub fn contains(&self, seq: Seq) -> bool {
        let i = self.0.partition_point(|r| r.end <= seq);
        self.0.get(i).is_some_and(|r| r.start <= seq)
    }

    /// The distinct sequences held, as sorted, merged ranges.
    pub fn normalized(&self) -> SeqRanges {
        let mut ranges = self.0.clone();
        ranges.sort_by_key(|r| r.start);
        let mut out: Vec<Range<Seq>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match out.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => out.push(r),
            }
        }
        SeqRanges(out)
    }

    /// Appends a whole range; ranges must come in increasing order (a decoder's input).
    pub fn push_range(&mut self, range: Range<Seq>) {
        if range.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some(last) if last.end == range.start => last.end = range.end,
            _ => self.0.push(range),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> u64 {
        self.0.iter().map(|r| r.end - r.start).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_sequences_coalesce() {
        let mut r = SeqRanges::default();
        for s in [1, 2, 3, 7, 8, 10] {
            r.push(s);
        }
        assert_eq!(r.iter().cloned().collect::<Vec<_>>(), vec![1..4, 7..9, 10..11]);
        assert_eq!(r.len(), 6);
        assert_eq!(r.first(), Some(1));
        assert_eq!(r.last(), Some(10));
        assert!(r.contains(1) && r.contains(3) && r.contains(8) && r.contains(10));
        assert!(!r.contains(0) && !r.contains(4) && !r.contains(9) && !r.contains(11));
    }

    #[test]
    fn normalized_drops_repeats_and_sorts() {
        let mut r = SeqRanges::default();
        for s in [5, 5, 6, 2, 9, 3, 6] {
            r.push(s);
        }
        assert_eq!(r.len(), 7, "as pushed: one entry per output");
        assert_eq!(r.normalized().iter().cloned().collect::<Vec<_>>(), vec![2..4, 5..7, 9..10]);
    }
}
