//! Replay after a crash: re-cut exactly the batches that were recorded before it.
//!
//! At start the source hands over the batch intents it kept (`buffer::intent`). While the pipeline
//! re-reads records from the delivered watermark, every output whose source sequence a recorded
//! batch holds (same lane, same partition) goes into that batch instead of the batcher. Once the
//! read has passed a recorded batch's last sequence, the batch is complete and is sent again,
//! with the same records and therefore the same identity (object key, request id, document ids).
//!
//! A recorded batch holding a sequence *below* the watermark was delivered before the crash (the
//! watermark passes a sequence only when every output of it is delivered, and a batch is
//! delivered whole), so its outputs are dropped on replay rather than sent a second time in a
//! smaller batch under a new identity.
//!
//! Processing must be deterministic for this to hold (the built-ins are; a WASM plugin that is
//! not may route an output elsewhere on replay, which then goes through normal batching, and a
//! recorded batch that receives nothing is skipped with a warning).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::intent::{BatchIntent, Lane};
use super::{Batch, PartitionKey};
use crate::process::PartitionKeys;
use crate::record::{Record, Seq};

/// Where one output goes during replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Into the recorded batch with this index.
    Recorded(usize),
    /// Nowhere: its recorded batch was delivered before the crash.
    Delivered,
    /// No recorded batch holds it: normal batching.
    Fresh,
}

struct Recorded {
    lane: Lane,
    intent: BatchIntent,
    last: Seq,
    delivered: bool,
    batch: Option<Batch>,
}

#[derive(Default)]
pub struct ReplayPlan {
    recorded: Vec<Option<Recorded>>,
    by_partition: HashMap<(Lane, PartitionKey), Vec<usize>>,
}

impl ReplayPlan {
    /// Keeps the intents that matter above `delivered_below`: pending ones to re-cut, and
    /// delivered ones whose outputs above the watermark must be dropped.
    pub fn new(intents: Vec<BatchIntent>, delivered_below: Seq) -> Self {
        let mut plan = Self::default();
        for intent in intents {
            let (Some(first), Some(last)) = (intent.seqs.first(), intent.seqs.last()) else { continue };
            if last < delivered_below {
                continue;
            }
            let index = plan.recorded.len();
            plan.by_partition.entry((intent.lane, intent.partition.clone())).or_default().push(index);
            plan.recorded.push(Some(Recorded {
                lane: intent.lane,
                last,
                delivered: first < delivered_below,
                batch: None,
                intent,
            }));
        }
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.by_partition.is_empty()
    }

    /// Recorded batches still waiting for records (for the recovery log line).
    pub fn pending(&self) -> usize {
        self.recorded.iter().flatten().filter(|r| !r.delivered).count()
    }

    pub fn route(&self, lane: Lane, partition: &PartitionKey, seq: Seq) -> Route {
        if self.by_partition.is_empty() {
            return Route::Fresh; // the common case: nothing to replay, no lookup per record
        }
        let Some(indexes) = self.by_partition.get(&(lane, partition.clone())) else {
            return Route::Fresh;
        };
        for &i in indexes {
            if let Some(r) = &self.recorded[i] {
                if r.intent.seqs.contains(seq) {
                    return if r.delivered { Route::Delivered } else { Route::Recorded(i) };
                }
            }
        }
        Route::Fresh
    }

    /// Adds an output to the recorded batch `index` (from [`Self::route`]).
    pub fn push(&mut self, index: usize, keys: Option<&Arc<PartitionKeys>>, record: Record, weight: usize) {
        if let Some(Some(r)) = self.recorded.get_mut(index) {
            let partition = r.intent.partition.clone();
            r.batch.get_or_insert_with(|| Batch::new(partition, keys.cloned(), Instant::now())).push(record, weight);
        }
    }

    /// The recorded batches that are complete once every record up to `read_through` has been
    /// placed, with their lanes. Delivered ones are forgotten.
    pub fn complete(&mut self, read_through: Seq) -> Vec<(Lane, Batch)> {
        self.take_where(|r| r.last <= read_through)
    }

    /// Every recorded batch left (the source ended).
    pub fn drain(&mut self) -> Vec<(Lane, Batch)> {
        self.take_where(|_| true)
    }

    fn take_where(&mut self, done: impl Fn(&Recorded) -> bool) -> Vec<(Lane, Batch)> {
        let mut out = Vec::new();
        for slot in self.recorded.iter_mut() {
            if !slot.as_ref().is_some_and(&done) {
                continue;
            }
            let Some(r) = slot.take() else { continue };
            match r.batch {
                Some(batch) => out.push((r.lane, batch)),
                None if !r.delivered => tracing::warn!(
                    partition = %r.intent.partition,
                    first_seq = r.intent.seqs.first().unwrap_or_default(),
                    "a batch recorded before the crash received no records on replay (non-deterministic processing?); skipped"
                ),
                None => {}
            }
        }
        if !out.is_empty() || self.recorded.iter().all(Option::is_none) {
            let live: Vec<bool> = self.recorded.iter().map(Option::is_some).collect();
            self.by_partition.retain(|_, indexes| {
                indexes.retain(|&i| live[i]);
                !indexes.is_empty()
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SeqRanges;
    use bytes::Bytes;

    fn intent(lane: Lane, partition: &str, seqs: &[u64]) -> BatchIntent {
        let mut r = SeqRanges::default();
        seqs.iter().for_each(|&s| r.push(s));
        BatchIntent { branch: 0, lane, partition: partition.into(), seqs: r }
    }

    fn rec(seq: u64) -> Record {
        Record::new(seq, 1, Bytes::from(format!("r{seq}")))
    }

    #[test]
    fn outputs_return_to_their_recorded_batches_and_complete_in_order() {
        let a = intent(Lane::Data, "p=a", &[10, 12, 14]);
        let b = intent(Lane::Data, "p=b", &[11, 13]);
        let e = intent(Lane::Errors, "processing-failed", &[12]);
        let mut plan = ReplayPlan::new(vec![a, b, e], 10);
        assert_eq!(plan.pending(), 3);
        let (pa, pb): (PartitionKey, PartitionKey) = ("p=a".into(), "p=b".into());
        assert_eq!(plan.route(Lane::Data, &pa, 12), Route::Recorded(0));
        assert_eq!(plan.route(Lane::Data, &pb, 12), Route::Fresh, "same sequence, other partition");
        assert_eq!(plan.route(Lane::Errors, &"processing-failed".into(), 12), Route::Recorded(2));
        assert_eq!(plan.route(Lane::Data, &pa, 15), Route::Fresh);
        for seq in 10..=13 {
            let key = if seq % 2 == 0 { &pa } else { &pb };
            if let Route::Recorded(i) = plan.route(Lane::Data, key, seq) {
                plan.push(i, None, rec(seq), 3);
            }
        }
        let done = plan.complete(13);
        assert_eq!(done.len(), 1, "b is complete at 13; a waits for 14; the error batch got nothing yet");
        assert_eq!(done[0].1.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [11, 13]);
        let rest = plan.drain();
        assert_eq!(rest.len(), 1, "a is sent with what it has; the empty error batch is skipped");
        assert!(plan.is_empty());
    }

    #[test]
    fn a_batch_partly_below_the_watermark_was_delivered_and_its_outputs_are_dropped() {
        let plan = ReplayPlan::new(
            vec![intent(Lane::Data, "p", &[5, 20]), intent(Lane::Data, "p", &[1, 2]), intent(Lane::Data, "p", &[21])],
            10,
        );
        assert_eq!(plan.route(Lane::Data, &"p".into(), 20), Route::Delivered);
        assert_eq!(
            plan.route(Lane::Data, &"p".into(), 21),
            Route::Recorded(1),
            "the batch wholly below 10 was dropped"
        );
        assert_eq!(plan.pending(), 1);
    }
}
