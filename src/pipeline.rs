//! One pipeline, top to bottom: what happens to a record after it is acknowledged.
//!
//! ```text
//! source (WAL reader)
//!   ─▶ processors (decompress → CloudWatch → de-aggregate → wasm → jq; a read is split over the cores)
//!   ─▶ partitioner (one buffer per partition-key set; unsafe keys and the partition limit → failures)
//!   ─▶ batcher (size | interval) ─┐        failures ─▶ error batcher (per error-output-type) ─┐
//!                                 ▼                                                           ▼
//!                      deliver: object key → encode + compress → upload, retried with backoff
//!                               (format conversion: rows → one Parquet/ORC file; records that do
//!                                not convert → format-conversion-failed object, same batch)
//!                                 │
//!   tracker (every output of every source record) ◀───┘ ─▶ commit(watermark) ─▶ source frees the WAL
//! ```
//! `run` is the loop; `Runner` holds its state; `Delivery` turns one batch into one object (two
//! when some records of a converted batch fail). Building a pipeline from its spec (WAL, encoders,
//! processors, destination, source) is `pipeline/build.rs`; delivery, endpoints and tap live beside it.

mod branch;
mod build;
mod delivery;
mod encode_ahead;
mod sending;
mod staged;
pub mod tap;

pub use crate::clock::now_ms;
pub use crate::status::PipelineStatus;
pub use build::{build_chain, start, PipelineError, PipelineHandle};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::buffer::cut_marks::{without_source_partition, CutMarks, SourcePartitionKeys};
use crate::buffer::intent::{BatchIntent, Lane, NoLedger, SharedLedger};
use crate::buffer::names::NameScope;
use crate::buffer::partition::{self, Partitioner};
use crate::buffer::replay::{ReplayPlan, Route};
use crate::buffer::wal::{self, StorageBudget, WalOptions};
use crate::buffer::{Batch, Batcher, DeliveryTracker, PartitionKey};
use crate::config::{PipelineSpec, ProcessorSpec, StorageSettings};
use crate::format::convert::infer::SchemaInference;
use crate::format::convert::SchemaSpec;
use crate::format::{error_record, ObjectFormat, RawEncoder};
use crate::metrics::PipelineMetrics;
use crate::process::cloudwatch::CloudWatchLogProcessing;
use crate::process::deaggregate::Deaggregate;
use crate::process::decompress::GzipDecompression;
use crate::process::jq::{transform::JqTransform, JqProgram};
use crate::process::metadata::MetadataExtraction;
use crate::process::wasm::WasmProcessor;
use crate::process::{Chain, ChainTimers, ErrorOutputType, Failed, Item, Processor};
use crate::record::{Record, Seq, SeqRanges};
use crate::sink::ObjectSink;
use crate::source::direct_put::{DirectPutIngest, DirectPutSource};
use crate::source::Source;
use branch::Branch;
use delivery::Delivery;
use encode_ahead::{EncodeBacklog, ObjectParts};
use tap::{partition_text, tap_event, Stage};

/// A finished object: these records no longer need the WAL.
pub(crate) struct Done {
    seqs: SeqRanges,
    bytes: usize,
    /// The data partition the object belonged to (`None` for error output).
    partition: Option<PartitionKey>,
    /// Which destination delivered it (`Branch::index`).
    branch: u8,
}

async fn run(mut source: Box<dyn Source>, mut r: Runner, mut done_rx: mpsc::UnboundedReceiver<Done>) {
    let name = r.name.clone();
    let largest_buffer = r.branches.iter().map(|b| b.delivery.spec.buffering.size_bytes).max().unwrap_or(0);
    let read_chunk = largest_buffer.clamp(64 << 10, 4 << 20);
    let mut source_open = true;
    // After a read error that may pass (no descriptor to open the next segment), reading pauses.
    let mut read_paused: Option<(tokio::time::Instant, Duration)> = None;
    let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
    let encode_backlog = r.encode_backlog.clone();
    let start = source.delivered_below();
    r.committed = start;
    let ledger = source.ledger();
    let cut_marks = source.cut_marks();
    let mut intents = source.take_recovered_intents();
    for b in &mut r.branches {
        b.tracker = DeliveryTracker::new(start);
        b.ledger = ledger.clone();
        b.cut_marks = cut_marks.clone();
        let (mine, rest) = intents.into_iter().partition(|i: &BatchIntent| i.branch == b.index);
        intents = rest;
        b.replay = ReplayPlan::new(mine, start);
        if !b.replay.is_empty() {
            tracing::info!(pipeline = %name, destination = b.index, batches = b.replay.pending(), "re-cutting the batches recorded before the restart, under their recorded identities");
        }
    }
    if !intents.is_empty() {
        // Recorded by a destination that is no longer configured (the list got shorter).
        tracing::warn!(pipeline = %name, batches = intents.len(), "batches recorded for a destination no longer in the pipeline are not re-sent");
    }

    loop {
        let deadline = r.next_deadline().map(tokio::time::Instant::from_std);
        let can_read = read_paused.is_none_or(|(until, _)| tokio::time::Instant::now() >= until);
        tokio::select! {
            read = source.next_batch(read_chunk), if source_open && can_read && r.has_room() && !encode_backlog.is_full() => match read {
                Ok(Some(records)) => {
                    read_paused = None;
                    let watermark = r.on_records(records).await;
                    commit(&mut source, watermark, &name).await;
                }
                Ok(None) => {
                    source_open = false;
                    r.flush_all();
                }
                Err(e) if e.is_transient() => {
                    // The reader stays where it was: retry with backoff (100 ms doubling to 5 s).
                    let wait = read_paused.map_or(Duration::from_millis(100), |(_, w)| (w * 2).min(Duration::from_secs(5)));
                    tracing::warn!(pipeline = %name, error = %e, retry_in_ms = wait.as_millis() as u64, "cannot read the WAL right now; retrying");
                    read_paused = Some((tokio::time::Instant::now() + wait, wait));
                }
                Err(e) => {
                    // Damage under a running reader: stop reading rather than skip records, and
                    // keep delivering what is already buffered.
                    tracing::error!(pipeline = %name, error = %e, "cannot read the WAL; delivery of new records is stopped until restart");
                    source_open = false;
                    r.flush_all();
                }
            },
            _ = sleep_until(read_paused.map(|(until, _)| until)), if !can_read => {}
            _ = encode_backlog.wait(), if encode_backlog.is_full() => {}
            Some(done) = done_rx.recv() => {
                let watermark = r.on_done(done);
                commit(&mut source, watermark, &name).await;
            },
            _ = sleep_until(deadline), if deadline.is_some() => r.flush_due(),
            _ = std::future::ready(()), if r.can_catch_up() => {
                let watermark = r.catch_up(read_chunk).await;
                commit(&mut source, watermark, &name).await;
            }
            _ = metrics_tick.tick() => {
                r.report();
                if cut_marks.as_ref().is_some_and(|m| m.take_flush_request()) {
                    r.flush_all();
                }
            }
        }
        if !source_open && r.idle() {
            break;
        }
    }
    r.watermark();
    if let Err(e) = source.commit(r.committed, true).await {
        tracing::error!(pipeline = %name, error = %e, "cannot persist the final checkpoint; some records will be delivered again on restart");
    }
    for b in &r.branches {
        b.delivery.metrics.data_freshness_seconds.set(0.0);
    }
    tracing::info!(pipeline = %name, "pipeline drained");
}

async fn commit(source: &mut Box<dyn Source>, watermark: Option<Seq>, name: &str) {
    if let Some(w) = watermark {
        if let Err(e) = source.commit(w, false).await {
            tracing::error!(pipeline = %name, error = %e, "cannot record delivery progress; records may be delivered again after a restart");
        }
    }
}

/// The pipeline task's state between the source and its destinations' uploads.
struct Runner {
    name: String,
    chain: Arc<Chain>,
    /// One per destination, in the order written.
    branches: Vec<Branch>,
    /// The pipeline's own status (intake, progress over every destination).
    status: Arc<PipelineStatus>,
    metrics: PipelineMetrics,
    /// The watermark last handed to the source: the lowest of the branches'.
    committed: Seq,
    taps: Arc<tap::Taps>,
    /// Records handed to the branches' part encoders and not yet encoded: reading waits while
    /// there are too many (`encode_ahead.rs`).
    encode_backlog: Arc<EncodeBacklog>,
}

impl Runner {
    /// Processes freshly read records once and hands every branch the outputs it takes (or,
    /// replaying after a crash, the batches recorded for it). Returns the pipeline's watermark if it
    /// moved.
    async fn on_records(&mut self, records: Vec<Record>) -> Option<Seq> {
        let now = Instant::now();
        let read_through = records.last().map(|r| r.seq);
        if self.taps.wants(Stage::Incoming) {
            self.taps.offer(Stage::Incoming, &records, |r| tap_event(Stage::Incoming, r, None));
        }
        // Destinations that are behind keep the read in their spill and see it later.
        let mut behind = vec![false; self.branches.len()];
        if self.branches.iter().any(Branch::spills) {
            for (i, b) in self.branches.iter_mut().enumerate() {
                behind[i] = b.spills() && b.spill_read(&records);
            }
        }
        if behind.iter().all(|b| *b) {
            // Nobody takes the read now: each destination processes it when it catches up.
        } else if self.chain.is_empty() && self.branches.len() == 1 && self.branches[0].takes_records_as_read() {
            if self.taps.wants(Stage::Processed) {
                self.taps.offer(Stage::Processed, &records, |r| tap_event(Stage::Processed, r, None));
            }
            self.branches[0].push_as_read(records, now);
        } else {
            let sources: Vec<(Seq, i64)> = records.iter().map(|r| (r.seq, r.arrival_ms)).collect();
            let conditions = self.branches.iter().map(|b| b.when.clone()).collect();
            let (items, mut failed, routes) = self.process(records, conditions).await;
            if self.taps.wants(Stage::Processed) {
                self.taps.offer(Stage::Processed, &items, |item| {
                    tap_event(Stage::Processed, &item.record, partition_text(item.keys.as_deref()))
                });
            }
            if self.taps.wants(Stage::Failed) {
                self.taps.offer(Stage::Failed, &failed, |f| tap_event(Stage::Failed, &f.record, Some(f.code.clone())));
            }
            let unrouted = routes.as_ref().map_or(0, |r| r.iter().filter(|m| **m == 0).count());
            if unrouted > 0 {
                self.metrics.unrouted_records.increment(unrouted as u64);
            }
            let last = self.branches.len() - 1;
            let mut items = Some(items);
            for (i, branch) in self.branches.iter_mut().enumerate() {
                if behind[i] {
                    continue;
                }
                // What the processors rejected goes to the first destination's error output once
                // (when it is behind, its own catch-up processes them again).
                let failed = if i == 0 { std::mem::take(&mut failed) } else { Vec::new() };
                let mine = match &routes {
                    None if i == last => items.take().unwrap_or_default(),
                    None => items.as_ref().map_or_else(Vec::new, |all| all.clone()),
                    Some(masks) => items.as_ref().map_or_else(Vec::new, |all| {
                        all.iter()
                            .zip(masks)
                            .filter(|(_, m)| *m & (1 << i) != 0)
                            .map(|(item, _)| item.clone())
                            .collect()
                    }),
                };
                branch.place(mine, failed, &sources, now);
            }
        }
        for (branch, behind) in self.branches.iter_mut().zip(behind) {
            branch.after_read(if behind { None } else { read_through });
        }
        self.watermark()
    }

    /// Lets each destination that is behind read back one chunk of its spill: processed again
    /// (processing is deterministic), its condition applied, placed as if just read.
    async fn catch_up(&mut self, max_bytes: usize) -> Option<Seq> {
        for i in 0..self.branches.len() {
            if !self.branches[i].can_catch_up() {
                continue;
            }
            let records = self.branches[i].read_spill(max_bytes);
            if records.is_empty() {
                continue;
            }
            let now = Instant::now();
            let read_through = records.last().map(|r| r.seq);
            let sources: Vec<(Seq, i64)> = records.iter().map(|r| (r.seq, r.arrival_ms)).collect();
            let (items, failed, routes) = self.process(records, vec![self.branches[i].when.clone()]).await;
            let items = match routes {
                Some(masks) => items.into_iter().zip(masks).filter(|(_, m)| *m != 0).map(|(item, _)| item).collect(),
                None => items,
            };
            let failed = if i == 0 { failed } else { Vec::new() };
            let branch = &mut self.branches[i];
            branch.place(items, failed, &sources, now);
            branch.after_read(read_through);
        }
        self.watermark()
    }

    /// The lowest watermark of the branches, if it moved past what the source was last told.
    fn watermark(&mut self) -> Option<Seq> {
        let lowest = self.branches.iter().map(Branch::delivered_below).min()?;
        (lowest > self.committed).then(|| {
            self.committed = lowest;
            lowest
        })
    }

    /// Runs the processors and the `when:` conditions off the async runtime (they are CPU work:
    /// jq, decompression, parsing). `routes`: per item, a bit per branch that takes it (`None`
    /// when no branch has a condition: every branch takes every item).
    async fn process(
        &self,
        records: Vec<Record>,
        conditions: Vec<Option<Arc<crate::process::route::Condition>>>,
    ) -> (Vec<Item>, Vec<Failed>, Option<Vec<u32>>) {
        let routed = conditions.iter().any(Option::is_some);
        if self.chain.is_empty() && !routed {
            return (records.into_iter().map(Item::new).collect(), Vec::new(), None);
        }
        let chain = self.chain.clone();
        let backup = records.clone(); // cheap: the data is reference-counted
        let work = move || {
            let (items, failed) = chain.run(records);
            let routes = routed.then(|| {
                items
                    .iter()
                    .map(|item| {
                        conditions.iter().enumerate().fold(0u32, |mask, (i, c)| match c {
                            Some(c) if !c.holds(&item.record.data) => mask,
                            _ => mask | (1 << i),
                        })
                    })
                    .collect()
            });
            (items, failed, routes)
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result,
            Err(e) => {
                // A processor panicked: keep every record, in the error output.
                tracing::error!(pipeline = %self.name, error = %e, "a processor panicked; its batch goes to the error output");
                let failed = backup
                    .into_iter()
                    .map(|r| {
                        Failed::new(
                            r,
                            ErrorOutputType::ProcessingFailed,
                            "Processing.Panicked",
                            "a processor panicked on this batch",
                        )
                    })
                    .collect();
                (Vec::new(), failed, None)
            }
        }
    }

    /// Whether every branch has room for another read, in memory or in its spill (records wait
    /// in the source meanwhile).
    fn has_room(&self) -> bool {
        self.branches.iter().all(Branch::has_room)
    }

    fn can_catch_up(&self) -> bool {
        self.branches.iter().any(Branch::can_catch_up)
    }

    fn on_done(&mut self, done: Done) -> Option<Seq> {
        if let Some(branch) = self.branches.get_mut(usize::from(done.branch)) {
            branch.on_done(done);
        }
        self.watermark()
    }

    fn flush_due(&mut self) {
        let now = Instant::now();
        self.branches.iter_mut().for_each(|b| b.flush_due(now));
    }

    fn flush_all(&mut self) {
        self.branches.iter_mut().for_each(Branch::flush_all);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.branches.iter().filter_map(Branch::next_deadline).min()
    }

    fn idle(&self) -> bool {
        self.branches.iter().all(Branch::idle)
    }

    fn report(&mut self) {
        let mut settled = true;
        let mut oldest: Option<i64> = None;
        for b in &mut self.branches {
            let (s, o) = b.report();
            settled &= s;
            oldest = match (oldest, o) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if self.branches.len() > 1 {
            self.status.set_progress(settled, oldest);
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
