//! Turns deliveries that finish in any order into one "everything below N is delivered" watermark.
//!
//! Records are registered in read order as spans; a finished object reports the sequence ranges
//! it held; the watermark advances past the leading spans whose records are all accounted for.
//! Memory is one small entry per span read (a WAL frame), not per record.

use std::collections::VecDeque;

use crate::record::{Record, Seq, SeqRanges};

#[derive(Debug)]
struct Span {
    start: Seq,
    end: Seq,
    remaining: u64,
    arrival_ms: i64,
}

#[derive(Debug)]
pub struct DeliveryTracker {
    spans: VecDeque<Span>,
    delivered_below: Seq,
}

impl DeliveryTracker {
    pub fn new(delivered_below: Seq) -> Self {
        Self { spans: VecDeque::new(), delivered_below }
    }

    /// Registers records as read (in sequence order), each with one output.
    pub fn on_read(&mut self, records: &[Record]) {
        for r in records {
            self.add(r.seq, r.arrival_ms, 1);
        }
    }

    /// Registers one source record (in sequence order) that produced `outputs` records to deliver:
    /// 0 when it was dropped, several when it was de-aggregated. Its sequence counts as delivered
    /// once that many outputs have been reported done.
    pub fn add(&mut self, seq: Seq, arrival_ms: i64, outputs: u64) {
        match self.spans.back_mut() {
            Some(s) if s.end == seq && s.arrival_ms == arrival_ms => {
                s.end += 1;
                s.remaining += outputs;
            }
            _ => {
                // A gap (records skipped below a watermark, or a source that numbers sparsely)
                // counts as delivered: nothing there will ever be reported.
                self.spans.push_back(Span { start: seq, end: seq + 1, remaining: outputs, arrival_ms });
            }
        }
    }

    /// Moves the watermark past leading spans with nothing left to deliver (records that were
    /// all dropped). Returns the new watermark if it moved.
    pub fn advance(&mut self) -> Option<Seq> {
        self.on_done(&SeqRanges::default())
    }

    /// Marks records as finished (delivered, or written to the error output, or expired).
    /// Returns the new watermark if it moved.
    pub fn on_done(&mut self, seqs: &SeqRanges) -> Option<Seq> {
        for range in seqs.iter() {
            let mut i = self.spans.partition_point(|s| s.end <= range.start);
            while let Some(span) = self.spans.get_mut(i) {
                if span.start >= range.end {
                    break;
                }
                let overlap = range.end.min(span.end) - range.start.max(span.start);
                span.remaining = span.remaining.saturating_sub(overlap);
                i += 1;
            }
        }
        let before = self.delivered_below;
        while let Some(front) = self.spans.front() {
            if front.remaining > 0 {
                break;
            }
            self.delivered_below = self.delivered_below.max(front.end);
            self.spans.pop_front();
        }
        (self.delivered_below > before).then_some(self.delivered_below)
    }

    pub fn delivered_below(&self) -> Seq {
        self.delivered_below
    }

    /// Arrival time of the oldest record read but not delivered (for DataFreshness).
    pub fn oldest_pending_arrival_ms(&self) -> Option<i64> {
        self.spans.iter().find(|s| s.remaining > 0).map(|s| s.arrival_ms)
    }

    pub fn pending_records(&self) -> u64 {
        self.spans.iter().map(|s| s.remaining).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn recs(range: std::ops::Range<u64>, arrival: i64) -> Vec<Record> {
        range.map(|seq| Record::new(seq, arrival, Bytes::new())).collect()
    }

    fn ranges(seqs: &[u64]) -> SeqRanges {
        let mut r = SeqRanges::default();
        seqs.iter().for_each(|&s| r.push(s));
        r
    }

    #[test]
    fn out_of_order_completion_advances_only_when_the_gap_closes() {
        let mut t = DeliveryTracker::new(0);
        t.on_read(&recs(0..10, 1));
        t.on_read(&recs(10..20, 2));
        assert_eq!(t.on_done(&ranges(&(10..20).collect::<Vec<_>>())), None);
        assert_eq!(t.oldest_pending_arrival_ms(), Some(1));
        assert_eq!(t.on_done(&ranges(&(0..10).collect::<Vec<_>>())), Some(20));
        assert_eq!(t.pending_records(), 0);
        assert_eq!(t.oldest_pending_arrival_ms(), None);
    }

    #[test]
    fn fan_out_and_drops_are_counted_per_source_record() {
        let mut t = DeliveryTracker::new(0);
        t.add(0, 1, 0); // dropped
        assert_eq!(t.advance(), Some(1));
        t.add(1, 1, 3); // de-aggregated into three
        t.add(2, 1, 1);
        assert_eq!(t.on_done(&ranges(&[1, 2])), None, "one of three outputs of 1 is not enough");
        assert_eq!(t.on_done(&ranges(&[1])), None);
        assert_eq!(t.on_done(&ranges(&[1])), Some(3));
    }

    #[test]
    fn interleaved_partitions_complete_a_span_together() {
        let mut t = DeliveryTracker::new(5);
        t.on_read(&recs(5..11, 1));
        assert_eq!(t.on_done(&ranges(&[5, 7, 9])), None);
        assert_eq!(t.on_done(&ranges(&[6, 8, 10])), Some(11));
    }
}
