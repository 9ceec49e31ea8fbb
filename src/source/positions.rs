//! Mapping pipeline sequence numbers back to a stream source's own positions (a shard's sequence
//! number, a file's offset), so its checkpoint moves exactly as far as delivery has.
//!
//! A source reads from several parts (shards, files), each in order. Every record gets the next
//! pipeline sequence and is remembered with its part's position; when the pipeline's delivered
//! watermark passes records, their part's checkpoint may move to the last of them. A part that
//! ends (a closed shard, a file let go) is reported once everything read from it is delivered.
//! Each reading of a part has a generation: positions of an earlier reading (a lease lost and
//! taken again, a file truncated under us) are dropped rather than mixed with the new one's.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::record::Seq;

struct Part<P> {
    generation: u64,
    outstanding: VecDeque<(Seq, P)>,
    /// Nothing more comes from this reading: done once everything below is delivered.
    ended_below: Option<Seq>,
    /// Why it ended, for the source (a lease handed back rather than a shard read to its end).
    handing_back: bool,
}

/// What moved when the watermark advanced.
pub enum Moved<'a, P> {
    /// Everything of `part` up to `position` is delivered.
    Position { part: &'a str, generation: u64, position: P },
    /// Everything read from `part` is delivered and nothing more comes.
    Ended { part: &'a str, generation: u64, handing_back: bool },
}

pub struct Positions<P> {
    parts: BTreeMap<Arc<str>, Part<P>>,
    next_seq: Seq,
}

impl<P> Positions<P> {
    /// Numbering continues from `next_seq` (the persisted watermark, so names after a restart
    /// never reuse those of delivered records).
    pub fn new(next_seq: Seq) -> Self {
        Self { parts: BTreeMap::new(), next_seq }
    }

    fn part(&mut self, part: Arc<str>, generation: u64) -> &mut Part<P> {
        let entry = self.parts.entry(part).or_insert_with(|| Part {
            generation,
            outstanding: VecDeque::new(),
            ended_below: None,
            handing_back: false,
        });
        if entry.generation != generation {
            *entry = Part { generation, outstanding: VecDeque::new(), ended_below: None, handing_back: false };
        }
        entry
    }

    /// Numbers the records of one read of `part`, in order: `(position, data)` → sequences.
    pub fn number<D>(
        &mut self,
        part: Arc<str>,
        generation: u64,
        records: impl IntoIterator<Item = (P, D)>,
        mut each: impl FnMut(Seq, D),
    ) {
        let mut seq = self.next_seq;
        let entry = self.part(part, generation);
        for (position, data) in records {
            entry.outstanding.push_back((seq, position));
            each(seq, data);
            seq += 1;
        }
        self.next_seq = seq;
    }

    /// Nothing more comes from this reading of `part`.
    pub fn end(&mut self, part: Arc<str>, generation: u64, handing_back: bool) {
        let next = self.next_seq;
        let entry = self.part(part, generation);
        entry.ended_below = Some(next);
        entry.handing_back = handing_back;
    }

    /// Reports, per part, the last position below `delivered_below` and parts that are done;
    /// done parts are forgotten.
    pub fn advance(&mut self, delivered_below: Seq, mut moved: impl FnMut(Moved<'_, P>)) {
        let mut done = Vec::new();
        for (name, part) in &mut self.parts {
            let mut last = None;
            while part.outstanding.front().is_some_and(|(seq, _)| *seq < delivered_below) {
                last = part.outstanding.pop_front().map(|(_, position)| position);
            }
            if let Some(position) = last {
                moved(Moved::Position { part: name, generation: part.generation, position });
            }
            if part.outstanding.is_empty() && part.ended_below.is_some_and(|end| end <= delivered_below) {
                moved(Moved::Ended { part: name, generation: part.generation, handing_back: part.handing_back });
                done.push(name.clone());
            }
        }
        for name in done {
            self.parts.remove(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moves(p: &mut Positions<u64>, below: Seq) -> Vec<String> {
        let mut out = Vec::new();
        p.advance(below, |m| match m {
            Moved::Position { part, generation, position } => out.push(format!("{part}@{generation}:{position}")),
            Moved::Ended { part, generation, .. } => out.push(format!("{part}@{generation} ended")),
        });
        out
    }

    #[test]
    fn checkpoints_follow_the_watermark_per_part() {
        let mut p = Positions::new(10);
        let mut seqs = Vec::new();
        p.number(Arc::from("a"), 1, [(100, ()), (200, ())], |s, ()| seqs.push(s));
        p.number(Arc::from("b"), 1, [(7, ())], |s, ()| seqs.push(s));
        p.number(Arc::from("a"), 1, [(300, ())], |s, ()| seqs.push(s));
        assert_eq!(seqs, vec![10, 11, 12, 13]);
        assert_eq!(moves(&mut p, 11), vec!["a@1:100"]);
        // Ended when sequence 14 was next: done once everything below 14 is delivered (records of
        // other parts numbered before the end may still be in flight).
        p.end(Arc::from("b"), 1, false);
        assert_eq!(moves(&mut p, 13), vec!["a@1:200", "b@1:7"]);
        assert_eq!(moves(&mut p, 14), vec!["a@1:300", "b@1 ended"]);
    }

    #[test]
    fn a_new_reading_of_a_part_replaces_the_old_one() {
        let mut p = Positions::new(0);
        p.number(Arc::from("f"), 1, [(50, ())], |_, ()| {});
        p.number(Arc::from("f"), 2, [(5, ())], |_, ()| {});
        assert_eq!(moves(&mut p, 2), vec!["f@2:5"]);
    }
}
