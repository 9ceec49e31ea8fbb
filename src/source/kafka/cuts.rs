//! Exactly the same batches after a re-read: where this daemon's batches of a partition end,
//! kept in the consumer group's committed-offset metadata, and how far a partition is delivered.
//!
//! A batch of Kafka records is named from their (topic, partition, offset)s (`Batch::identity`),
//! and holds one partition's records (`buffer::cut_marks::with_source_partition`). When a batch is
//! cut, before it is sent, its last offset is committed to the group as metadata beside the
//! partition's (unchanged) committed offset: `sluice1;<destination>.<lane>.<buffer>.<end>;...`.
//! Whoever reads the partition next, this daemon after `kill -9` or another member after a
//! rebalance, reads that list on assignment and cuts its buffers after the same records
//! (`CutMarks`), so the batch comes out the same and overwrites its earlier copy: nothing in two
//! objects.
//!
//! For that the committed offset must only ever fall on a batch boundary. The pipeline's watermark
//! alone does not give one (it is the lowest undelivered record over *all* partitions, and may
//! fall inside a partition's delivered batch), so with one destination a partition's delivered
//! prefix also takes in every record of its delivered batches ([`Progress::advance`]). With
//! several destinations a batch of one says nothing about the others, and the watermark is used
//! as is: a re-read can then repeat records, as the Kinesis source can.

use std::collections::VecDeque;

use crate::buffer::cut_marks::{key_hash, CutMark};
use crate::buffer::intent::Lane;
use crate::record::{Seq, SeqRanges};

/// What the metadata starts with; anything else (another tool's metadata) is ignored.
const VERSION: &str = "sluice1";
/// Kafka brokers refuse commit metadata past `offset.metadata.max.bytes` (4096 by default).
const MAX_METADATA: usize = 4000;

/// One batch of the partition, cut and not yet committed past.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Cut {
    pub mark: CutMark,
    /// The offset of its last record.
    pub end: i64,
    /// Its records, when cut by this reading; `None` for a cut read from the metadata that this
    /// reading has not cut again yet.
    pub seqs: Option<SeqRanges>,
    pub delivered: bool,
}

/// The metadata for `cuts`: the newest are left out if they do not fit (those batches may then
/// be cut differently when read again).
pub(super) fn encode(cuts: &[Cut]) -> String {
    let mut out = String::from(VERSION);
    for c in cuts {
        let lane = match c.mark.lane {
            Lane::Data => 'd',
            Lane::Errors => 'e',
        };
        let entry = format!(";{}.{lane}.{:x}.{}", c.mark.branch, c.mark.key_hash, c.end);
        if out.len() + entry.len() > MAX_METADATA {
            break;
        }
        out.push_str(&entry);
    }
    out
}

/// The cuts in commit metadata; none for metadata sluice did not write or cannot read.
pub(super) fn decode(metadata: &[u8]) -> Vec<Cut> {
    let Ok(text) = std::str::from_utf8(metadata) else { return Vec::new() };
    let mut parts = text.split(';');
    if parts.next() != Some(VERSION) {
        return Vec::new();
    }
    let entry = |e: &str| -> Option<Cut> {
        let mut f = e.split('.');
        let branch = f.next()?.parse().ok()?;
        let lane = match f.next()? {
            "d" => Lane::Data,
            "e" => Lane::Errors,
            _ => return None,
        };
        let key_hash = u32::from_str_radix(f.next()?, 16).ok()?;
        let end = f.next()?.parse().ok()?;
        Some(Cut { mark: CutMark { branch, lane, key_hash }, end, seqs: None, delivered: false })
    };
    parts.filter_map(entry).collect()
}

/// One partition's progress in one generation of its assignment.
#[derive(Default)]
pub(super) struct Progress {
    /// Records handed to the pipeline and not yet known delivered: (sequence, offset), in order.
    outstanding: VecDeque<(Seq, i64)>,
    /// Batches cut and not committed past, in no particular order.
    pub cuts: Vec<Cut>,
    /// The offset after the delivered prefix: what is committed.
    pub delivered_to: Option<i64>,
    /// The first offset read in this generation (committed, with the cut list, before anything
    /// is delivered).
    pub start: Option<i64>,
}

impl Progress {
    /// Starts from the cuts another reading left in the metadata.
    pub fn inherit(cuts: Vec<Cut>) -> Self {
        Self { cuts, ..Self::default() }
    }

    pub fn read(&mut self, seq: Seq, offset: i64) {
        self.start.get_or_insert(offset);
        self.outstanding.push_back((seq, offset));
    }

    /// The offset of a record handed over and not yet delivered.
    fn offset_of(&self, seq: Seq) -> Option<i64> {
        let i = self.outstanding.partition_point(|(s, _)| *s < seq);
        self.outstanding.get(i).filter(|(s, _)| *s == seq).map(|(_, o)| *o)
    }

    /// A batch cut by this reading; false when its records are not this reading's.
    pub fn cut(&mut self, mark: CutMark, seqs: SeqRanges) -> bool {
        let Some(end) = seqs.last().and_then(|last| self.offset_of(last)) else { return false };
        let cut = Cut { mark, end, seqs: Some(seqs), delivered: false };
        // The same batch again (a cut read from the metadata, now cut anew): it takes its place.
        match self.cuts.iter_mut().find(|c| c.mark == mark && c.end == end) {
            Some(inherited) => *inherited = cut,
            None => self.cuts.push(cut),
        }
        true
    }

    /// Everything below the pipeline's watermark `below` is delivered. Moves the delivered
    /// prefix past those records and, with `whole_batches` (one destination), past every record
    /// of a delivered batch; returns the new prefix if it moved.
    pub fn advance(&mut self, below: Seq, whole_batches: bool) -> Option<i64> {
        for c in &mut self.cuts {
            if c.seqs.as_ref().and_then(SeqRanges::first).is_some_and(|first| first < below) {
                c.delivered = true; // a batch is delivered whole, and its first record is
            }
        }
        let mut to = None;
        while let Some(&(seq, offset)) = self.outstanding.front() {
            let in_delivered_batch = || {
                whole_batches
                    && self.cuts.iter().any(|c| c.delivered && c.seqs.as_ref().is_some_and(|s| s.contains(seq)))
            };
            if seq < below || in_delivered_batch() {
                to = Some(offset + 1);
                self.outstanding.pop_front();
            } else {
                break;
            }
        }
        let moved = to.filter(|t| self.delivered_to.is_none_or(|d| *t > d));
        if let Some(t) = moved {
            self.delivered_to = Some(t);
            self.cuts.retain(|c| c.end >= t);
        }
        moved
    }

    /// What to commit: the offset (delivered prefix, else where this reading started) and the
    /// cuts not yet committed past. `None` before anything was read.
    pub fn commit(&self) -> Option<(i64, String)> {
        let offset = self.delivered_to.or(self.start)?;
        let mut cuts: Vec<&Cut> = self.cuts.iter().filter(|c| c.end >= offset).collect();
        cuts.sort_by_key(|c| c.end);
        Some((offset, encode(&cuts.into_iter().cloned().collect::<Vec<_>>())))
    }

    /// The marks for a record read at `offset`: every inherited cut that ends there.
    pub fn marks_at(&self, offset: i64) -> Vec<CutMark> {
        self.cuts.iter().filter(|c| c.seqs.is_none() && c.end == offset).map(|c| c.mark).collect()
    }

    /// Whether any inherited cut is still ahead of the reading.
    pub fn replaying(&self) -> bool {
        self.cuts.iter().any(|c| c.seqs.is_none())
    }
}

/// The buffer key of a batch as the cut list names it.
pub(super) fn mark(branch: u8, lane: Lane, key: &str) -> CutMark {
    CutMark { branch, lane, key_hash: key_hash(key) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(s: &[Seq]) -> SeqRanges {
        let mut r = SeqRanges::default();
        s.iter().for_each(|&x| r.push(x));
        r
    }

    #[test]
    fn metadata_round_trips_and_ignores_what_it_did_not_write() {
        let cuts = vec![
            Cut { mark: mark(0, Lane::Data, "a"), end: 41, seqs: None, delivered: false },
            Cut { mark: mark(2, Lane::Errors, "b"), end: 99, seqs: None, delivered: false },
        ];
        assert_eq!(decode(encode(&cuts).as_bytes()), cuts);
        assert!(decode(b"").is_empty());
        assert!(decode(b"someone else's").is_empty());
        assert!(decode(&[0xff, 0xfe]).is_empty());
        assert_eq!(decode(b"sluice1;x;0.d.1f.7").len(), 1, "a damaged entry is skipped");
        let many: Vec<Cut> =
            (0..1000).map(|i| Cut { mark: mark(0, Lane::Data, "k"), end: i, seqs: None, delivered: false }).collect();
        assert!(encode(&many).len() <= MAX_METADATA);
    }

    #[test]
    fn the_delivered_prefix_takes_whole_batches_across_the_watermark() {
        // Partition records at offsets 10..16 got sequences interleaved with another partition's.
        let mut p = Progress::default();
        for (seq, offset) in [(1, 10), (3, 11), (5, 12), (7, 13), (9, 14), (11, 15)] {
            p.read(seq, offset);
        }
        let m = mark(0, Lane::Data, "k");
        assert!(p.cut(m, seqs(&[1, 3, 5])));
        assert!(p.cut(m, seqs(&[7, 9])));
        assert_eq!(p.commit().unwrap().0, 10, "nothing delivered: where the reading started");
        let listed = decode(p.commit().unwrap().1.as_bytes());
        assert_eq!(listed.iter().map(|c| c.end).collect::<Vec<_>>(), [12, 14], "both cuts, in offset order");
        // The watermark stops at 4 (another partition's record is undelivered): the first batch
        // is delivered whole, so the prefix is 13, not 12 (which would split the batch).
        assert_eq!(p.advance(4, true), Some(13));
        assert_eq!(p.cuts.len(), 1, "the delivered batch is committed past");
        // Without whole batches (several destinations), only the watermark counts.
        let mut q = Progress::default();
        for (seq, offset) in [(1, 10), (3, 11), (5, 12)] {
            q.read(seq, offset);
        }
        q.cut(m, seqs(&[1, 3, 5]));
        assert_eq!(q.advance(4, false), Some(12));
    }

    #[test]
    fn an_inherited_cut_marks_its_last_record_until_cut_again() {
        let m = mark(0, Lane::Data, "k");
        let mut p = Progress::inherit(vec![Cut { mark: m, end: 12, seqs: None, delivered: false }]);
        assert!(p.replaying());
        assert_eq!(p.marks_at(12), vec![m]);
        assert!(p.marks_at(11).is_empty());
        for (seq, offset) in [(1, 10), (2, 11), (3, 12)] {
            p.read(seq, offset);
        }
        assert!(p.cut(m, seqs(&[1, 2, 3])));
        assert_eq!(p.cuts.len(), 1, "the same batch, not a second one");
        assert!(!p.replaying());
        assert!(p.commit().unwrap().1.ends_with(".12"));
    }
}
