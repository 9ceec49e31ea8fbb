//! The unit that flows through a pipeline.

use std::ops::Range;

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
}

/// Sequence numbers held by a batch, kept as coalesced ranges so that a 5 MiB object of 20,000
/// consecutive records costs one range, not 20,000 entries.
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
    }
}
