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

mod build;
mod delivery;
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
use delivery::Delivery;
use tap::{partition_text, tap_event, Stage};

/// A finished object: these records no longer need the WAL.
pub(crate) struct Done {
    seqs: SeqRanges,
    bytes: usize,
    /// The data partition the object belonged to (`None` for error output).
    partition: Option<PartitionKey>,
}

async fn run(mut source: Box<dyn Source>, mut r: Runner, mut done_rx: mpsc::UnboundedReceiver<Done>) {
    let name = r.delivery.spec.name.clone();
    let buffering = r.delivery.spec.buffering;
    // Records read but not yet delivered stay under this bound; beyond it they wait in the WAL.
    let max_in_memory = buffering.size_bytes * (r.delivery.spec.delivery.concurrency + 2);
    let read_chunk = buffering.size_bytes.clamp(64 << 10, 4 << 20);
    let mut source_open = true;
    // After a read error that may pass (no descriptor to open the next segment), reading pauses.
    let mut read_paused: Option<(tokio::time::Instant, Duration)> = None;
    let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
    r.tracker = DeliveryTracker::new(source.delivered_below());
    r.ledger = source.ledger();
    r.replay = ReplayPlan::new(source.take_recovered_intents(), source.delivered_below());
    if !r.replay.is_empty() {
        tracing::info!(pipeline = %name, batches = r.replay.pending(), "re-cutting the batches recorded before the restart, under their recorded identities");
    }

    loop {
        let deadline = r.next_deadline().map(tokio::time::Instant::from_std);
        let can_read = read_paused.is_none_or(|(until, _)| tokio::time::Instant::now() >= until);
        tokio::select! {
            read = source.next_batch(read_chunk), if source_open && can_read && r.in_memory < max_in_memory => match read {
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
            Some(done) = done_rx.recv() => {
                let watermark = r.on_done(done);
                commit(&mut source, watermark, &name).await;
            },
            _ = sleep_until(deadline), if deadline.is_some() => r.flush_due(),
            _ = metrics_tick.tick() => r.report(),
        }
        if !source_open && r.idle() {
            break;
        }
    }
    if let Err(e) = source.commit(r.tracker.delivered_below(), true).await {
        tracing::error!(pipeline = %name, error = %e, "cannot persist the final checkpoint; some records will be delivered again on restart");
    }
    r.delivery.metrics.data_freshness_seconds.set(0.0);
    tracing::info!(pipeline = %name, "pipeline drained");
}

async fn commit(source: &mut Box<dyn Source>, watermark: Option<Seq>, name: &str) {
    if let Some(w) = watermark {
        if let Err(e) = source.commit(w, false).await {
            tracing::error!(pipeline = %name, error = %e, "cannot record delivery progress; records may be delivered again after a restart");
        }
    }
}

/// The pipeline task's state between the source and the uploads.
struct Runner {
    delivery: Arc<Delivery>,
    chain: Arc<Chain>,
    partitioner: Partitioner,
    max_partitions: Option<usize>,
    /// One buffer per data partition, and one per error-output type.
    data: Batcher,
    errors: Batcher,
    tracker: DeliveryTracker,
    uploads: Arc<Semaphore>,
    done_tx: mpsc::UnboundedSender<Done>,
    /// Data partitions with objects being uploaded (they count as active partitions).
    in_flight: HashMap<PartitionKey, usize, foldhash::fast::RandomState>,
    uploads_in_flight: usize,
    /// Bytes read and not yet delivered: buffered or uploading.
    in_memory: usize,
    /// Buffers together may hold this much before the largest is flushed early.
    buffer_budget: usize,
    partition_limit_hit: bool,
    /// Where batch intents are recorded before their first send.
    ledger: SharedLedger,
    /// Batches recorded before a crash, re-cut while the backlog is replayed.
    replay: ReplayPlan,
    taps: Arc<tap::Taps>,
}

impl Runner {
    /// Processes freshly read records and places every output in a buffer (or, replaying after a
    /// crash, in the batch recorded for it). Returns the watermark if records that produced no
    /// output moved it.
    async fn on_records(&mut self, records: Vec<Record>) -> Option<Seq> {
        let now = Instant::now();
        let read_through = records.last().map(|r| r.seq);
        if self.taps.wants(Stage::Incoming) {
            self.taps.offer(Stage::Incoming, &records, |r| tap_event(Stage::Incoming, r, None));
        }
        if self.replay.is_empty() && self.chain.is_empty() && !self.partitioner.is_partitioned() {
            // Fast path: each record is exactly one output, all in one buffer.
            if self.taps.wants(Stage::Processed) {
                self.taps.offer(Stage::Processed, &records, |r| tap_event(Stage::Processed, r, None));
            }
            self.tracker.on_read(&records);
            let root = PartitionKey::from("");
            for record in records {
                let weight = self.delivery.format.encoder.weight(&record);
                self.in_memory += weight;
                if let Some(full) = self.data.push(&root, record, weight, now) {
                    self.dispatch(Lane::Data, full, false);
                }
            }
        } else {
            let sources: Vec<(Seq, i64)> = records.iter().map(|r| (r.seq, r.arrival_ms)).collect();
            let (items, mut failed) = self.process(records).await;
            // A record read from the WAL is a slice of its whole request frame (up to 4 MiB).
            // Spread over many partition buffers, one such slice would keep the whole frame alive
            // until its partition flushes, so memory would grow with the number of partitions
            // (issue #9 measured 393 MB against 192 MB). Partitioned outputs are copied, one
            // allocation per partition per read (`copy_per_partition`).
            let own_copies = self.partitioner.is_partitioned();
            let mut outputs: HashMap<Seq, u64, foldhash::fast::RandomState> =
                HashMap::with_capacity_and_hasher(sources.len(), Default::default());
            self.partition_limit_hit = false;
            let mut keyed = Vec::with_capacity(items.len());
            for item in items {
                match self.partitioner.key_interned(&item) {
                    Ok(key) => keyed.push((item, key)),
                    Err((code, message)) => {
                        failed.push(Failed::new(item.record, ErrorOutputType::ProcessingFailed, code, message))
                    }
                }
            }
            if own_copies {
                partition::copy_per_partition(&mut keyed);
            }
            if self.taps.wants(Stage::Processed) {
                self.taps.offer(Stage::Processed, &keyed, |(item, _)| {
                    tap_event(Stage::Processed, &item.record, partition_text(item.keys.as_deref()))
                });
            }
            if self.taps.wants(Stage::Failed) {
                self.taps.offer(Stage::Failed, &failed, |f| tap_event(Stage::Failed, &f.record, Some(f.code.clone())));
            }
            for (item, key) in keyed {
                let seq = item.record.seq;
                let weight = self.delivery.format.encoder.weight(&item.record);
                match self.replay.route(Lane::Data, &key, seq) {
                    Route::Delivered => continue,
                    Route::Recorded(batch) => self.replay.push(batch, item.keys.as_ref(), item.record, weight),
                    Route::Fresh => {
                        if let Err((code, message)) = self.admit_partition(&key) {
                            failed.push(Failed::new(item.record, ErrorOutputType::ProcessingFailed, code, message));
                            continue;
                        }
                        if let Some(full) = self.data.push_keyed(&key, item.keys.as_ref(), item.record, weight, now) {
                            self.dispatch(Lane::Data, full, false);
                        }
                    }
                }
                self.in_memory += weight;
                *outputs.entry(seq).or_default() += 1;
            }
            let ending = now_ms();
            for f in failed {
                let seq = f.record.seq;
                let lane_key = PartitionKey::from(f.kind.as_str());
                let route = self.replay.route(Lane::Errors, &lane_key, seq);
                if route == Route::Delivered {
                    continue;
                }
                self.delivery.metrics.error_records(f.kind).increment(1);
                self.delivery.status.note_error(ending, f.kind.as_str(), &f.code, &f.message, &f.record.data);
                let data = error_record::render(&f, ending);
                let weight = data.len() + 1;
                let record = Record { data, ..f.record };
                match route {
                    Route::Recorded(batch) => self.replay.push(batch, None, record, weight),
                    _ => {
                        if let Some(full) = self.errors.push(&lane_key, record, weight, now) {
                            self.dispatch(Lane::Errors, full, false);
                        }
                    }
                }
                self.in_memory += weight;
                *outputs.entry(seq).or_default() += 1;
            }
            for (seq, arrival_ms) in sources {
                self.tracker.add(seq, arrival_ms, outputs.remove(&seq).unwrap_or(0));
            }
        }
        // Cut only now that every output of the read is placed (see Batcher::push_keyed).
        for full in self.data.take_full() {
            self.dispatch(Lane::Data, full, false);
        }
        for full in self.errors.take_full() {
            self.dispatch(Lane::Errors, full, false);
        }
        if let Some(seq) = read_through {
            for (lane, batch) in self.replay.complete(seq) {
                self.dispatch(lane, batch, true);
            }
        }
        // Many partitions must not mean unbounded memory: flush the biggest buffers early.
        while self.data.buffered_bytes() + self.errors.buffered_bytes() > self.buffer_budget {
            match self.data.take_largest() {
                Some(b) => self.dispatch(Lane::Data, b, false),
                None => match self.errors.take_largest() {
                    Some(b) => self.dispatch(Lane::Errors, b, false),
                    None => break,
                },
            }
        }
        if self.delivery.spec.buffering.interval.is_zero() {
            self.flush_all();
        }
        self.tracker.advance()
    }

    /// Runs the processors off the async runtime (they are CPU work: jq, decompression).
    async fn process(&self, records: Vec<Record>) -> (Vec<Item>, Vec<Failed>) {
        if self.chain.is_empty() {
            return (records.into_iter().map(Item::new).collect(), Vec::new());
        }
        let chain = self.chain.clone();
        let backup = records.clone(); // cheap: the data is reference-counted
        match tokio::task::spawn_blocking(move || chain.run(records)).await {
            Ok(result) => result,
            Err(e) => {
                // A processor panicked: keep every record, in the error output.
                tracing::error!(pipeline = %self.delivery.spec.name, error = %e, "a processor panicked; its batch goes to the error output");
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
                (Vec::new(), failed)
            }
        }
    }

    /// Enforces the active-partition limit for a record about to open or join `key`'s buffer.
    fn admit_partition(&mut self, key: &PartitionKey) -> Result<(), (&'static str, String)> {
        if let Some(max) = self.max_partitions {
            if !self.data.contains(key) && !self.in_flight.contains_key(key) && self.active_partitions() >= max {
                self.partition_limit_hit = true;
                return Err((
                    partition::CODE_EXCEEDED,
                    format!("the delivery stream already has {max} active partitions (max_active_partitions)"),
                ));
            }
        }
        Ok(())
    }

    fn active_partitions(&self) -> usize {
        self.data.partitions() + self.in_flight.keys().filter(|k| !self.data.contains(k)).count()
    }

    /// Sends a batch. A freshly cut one (`recorded == false`) first has its intent recorded, so
    /// that after a crash it is re-cut exactly ([`ReplayPlan`]); if the intent cannot be written
    /// (the WAL is recovering from a full disk), the batch is sent anyway: delivering, which frees
    /// the space, matters more than the small chance of a duplicate after a crash.
    /// An error batch's partition is its error-output type.
    fn dispatch(&mut self, lane: Lane, batch: Batch, recorded: bool) {
        self.uploads_in_flight += 1;
        let error_type = match lane {
            Lane::Data => {
                *self.in_flight.entry(batch.partition.clone()).or_default() += 1;
                None
            }
            Lane::Errors => error_kind(&batch.partition),
        };
        let intent = (!recorded).then(|| BatchIntent {
            lane,
            partition: batch.partition.clone(),
            seqs: batch.seqs.normalized(),
        });
        let (delivery, uploads, done_tx) = (self.delivery.clone(), self.uploads.clone(), self.done_tx.clone());
        let ledger = self.ledger.clone();
        let tapped = (error_type.is_none() && self.taps.wants(Stage::Delivered))
            .then(|| (self.taps.clone(), batch.records.clone(), partition_text(batch.keys.as_deref())));
        tokio::spawn(async move {
            if let Some(intent) = intent {
                if let Err(e) = ledger.record(&intent).await {
                    tracing::warn!(pipeline = %delivery.spec.name, error = %e, "sending a batch whose identity could not be recorded; a crash before it is delivered could repeat it");
                }
            }
            let Ok(_permit) = uploads.acquire_owned().await else { return };
            let done = delivery.deliver(batch, error_type).await;
            if let Some((taps, records, partition)) = tapped {
                taps.offer(Stage::Delivered, &records, |r| tap_event(Stage::Delivered, r, partition.clone()));
            }
            let _ = done_tx.send(done);
        });
    }

    fn on_done(&mut self, done: Done) -> Option<Seq> {
        self.uploads_in_flight -= 1;
        self.in_memory -= done.bytes;
        if let Some(p) = done.partition {
            if let Some(n) = self.in_flight.get_mut(&p) {
                *n -= 1;
                if *n == 0 {
                    self.in_flight.remove(&p);
                }
            }
        }
        self.tracker.on_done(&done.seqs)
    }

    fn flush_due(&mut self) {
        let now = Instant::now();
        for b in self.data.due(now) {
            self.dispatch(Lane::Data, b, false);
        }
        for b in self.errors.due(now) {
            self.dispatch(Lane::Errors, b, false);
        }
    }

    fn flush_all(&mut self) {
        for b in self.data.drain() {
            self.dispatch(Lane::Data, b, false);
        }
        for b in self.errors.drain() {
            self.dispatch(Lane::Errors, b, false);
        }
        for (lane, b) in self.replay.drain() {
            self.dispatch(lane, b, true);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.data.next_deadline(), self.errors.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn idle(&self) -> bool {
        self.uploads_in_flight == 0 && self.data.is_empty() && self.errors.is_empty()
    }

    fn report(&self) {
        let m = &self.delivery.metrics;
        let oldest = self.tracker.oldest_pending_arrival_ms();
        let age = oldest.map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0);
        m.data_freshness_seconds.set(age);
        m.buffered_bytes.set(self.in_memory as f64);
        m.buffer_limit_bytes.set((self.buffer_budget * 2) as f64);
        self.delivery.status.set_progress(self.idle() && self.tracker.pending_records() == 0, oldest);
        if self.partitioner.is_partitioned() {
            m.partition_count.set(self.active_partitions() as f64);
            m.partition_count_exceeded.set(if self.partition_limit_hit { 1.0 } else { 0.0 });
        }
    }
}

fn error_kind(partition: &PartitionKey) -> Option<ErrorOutputType> {
    [ErrorOutputType::ProcessingFailed, ErrorOutputType::DecompressionFailed, ErrorOutputType::FormatConversionFailed]
        .into_iter()
        .find(|k| k.as_str() == &**partition)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
