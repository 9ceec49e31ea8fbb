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
//! when some records of a converted batch fail).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use thiserror::Error;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::buffer::intent::{BatchIntent, Lane, NoLedger, SharedLedger};
use crate::buffer::partition::{self, Partitioner};
use crate::buffer::replay::{ReplayPlan, Route};
use crate::buffer::wal::{self, StorageBudget, WalOptions};
use crate::buffer::{Batch, Batcher, DeliveryTracker, PartitionKey};
use crate::config::{PipelineSpec, ProcessorSpec, StorageSettings};
use crate::format::convert::infer::SchemaInference;
use crate::format::convert::{ConversionFailure, ConversionSpec, FailKind, SchemaSpec};
use crate::format::{error_record, ObjectFormat, RawEncoder};
use crate::metrics::PipelineMetrics;
use crate::process::cloudwatch::CloudWatchLogProcessing;
use crate::process::deaggregate::Deaggregate;
use crate::process::decompress::GzipDecompression;
use crate::process::metadata::MetadataExtraction;
use crate::process::wasm::WasmProcessor;
use crate::process::{Chain, ErrorOutputType, Failed, Item, Processor};
use crate::record::{Record, Seq, SeqRanges};
use crate::sink::object_key::{
    fnv1a, object_name, splitmix64, KeyTemplate, PartitionSource, RenderContext, DEFAULT_TIME_PATH,
};
use crate::sink::ObjectSink;
use crate::source::direct_put::{DirectPutIngest, DirectPutSource};
use crate::source::Source;

/// Firehose's VersionId for a stream that was never updated; it appears in every object name.
const STREAM_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("pipeline `{name}`: {message}")]
    Processor { name: String, message: String },
    #[error("pipeline `{name}`: {source}")]
    Wal { name: String, source: wal::WalError },
    #[error("pipeline `{name}`: {source}")]
    Sink { name: String, source: crate::sink::SinkError },
}

/// What the API needs of a running pipeline.
pub struct PipelineHandle {
    pub spec: PipelineSpec,
    pub ingest: DirectPutIngest,
    pub metrics: PipelineMetrics,
    pub created_at: SystemTime,
    /// Stable per-stream value folded into RecordIds and object names.
    pub seed: u64,
}

/// Opens the pipeline's WAL (replaying whatever was not delivered) and starts its task.
pub fn start(
    spec: PipelineSpec,
    storage: &StorageSettings,
    global: Arc<StorageBudget>,
) -> Result<(Arc<PipelineHandle>, JoinHandle<()>), PipelineError> {
    let name = spec.name.clone();
    let limit = spec.max_wal_bytes.map_or(storage.max_bytes, |m| m.min(storage.max_bytes));
    let budget = StorageBudget::new(limit, Some(global));
    let dir = storage.dir.join("pipelines").join(&name).join("wal");
    let (appender, reader, report) =
        wal::open(WalOptions { dir, segment_bytes: storage.segment_bytes, budget: budget.clone() })
            .map_err(|source| PipelineError::Wal { name: name.clone(), source })?;
    if report.undelivered_records > 0 || report.torn_bytes_cut > 0 {
        tracing::info!(pipeline = %name, records = report.undelivered_records, bytes = report.undelivered_bytes, torn_bytes_cut = report.torn_bytes_cut, "replaying undelivered records from the WAL");
    }

    let d = &spec.destination;
    let sink = ObjectSink::new(&d.store, d.compression.content_encoding())
        .map_err(|source| PipelineError::Sink { name: name.clone(), source })?;
    // The append_delimiter processor runs last in Firehose, after partitioning, and only adds a
    // newline to delivered records, so it is applied by the encoder: error records then carry the
    // record as it was processed, without the delimiter.
    let delimit = d.append_delimiter || spec.processors.contains(&ProcessorSpec::AppendDelimiter);
    let format = ObjectFormat {
        encoder: RawEncoder { append_delimiter: delimit },
        compression: d.compression,
        extension: d.file_extension.clone(),
    };
    // Error output is newline-delimited JSON, compressed like the data. Converted data's
    // extension (.parquet/.orc) does not describe it, so error objects then keep the codec's.
    let error_format = ObjectFormat {
        encoder: RawEncoder { append_delimiter: true },
        compression: d.compression,
        extension: if d.format_conversion.is_some() {
            d.compression.default_extension().to_string()
        } else {
            d.file_extension.clone()
        },
    };
    let chain =
        build_chain(&spec.processors).map_err(|message| PipelineError::Processor { name: name.clone(), message })?;
    let partitioner = Partitioner::new(&d.prefix);
    let metrics = PipelineMetrics::new(&name);
    let seed = fnv1a(&[name.as_bytes()]);
    let inference = match &d.format_conversion {
        Some(c) if c.schema == SchemaSpec::Infer => {
            let (fold, dots) = c.input.key_rules();
            let path = storage.dir.join("pipelines").join(&name).join("schema.json");
            let inference = SchemaInference::load(Some(path), fold, dots)
                .map_err(|e| PipelineError::Processor { name: name.clone(), message: e.to_string() })?;
            Some(Arc::new(std::sync::Mutex::new(inference)))
        }
        _ => None,
    };
    let delivery = Arc::new(Delivery {
        spec: spec.clone(),
        inference,
        sink,
        format: Arc::new(format),
        error_format: Arc::new(error_format),
        metrics: metrics.clone(),
    });
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let max_in_memory = spec.buffering.size_bytes * (spec.delivery.concurrency + 2);
    let runner = Runner {
        delivery,
        chain: Arc::new(chain),
        partitioner,
        max_partitions: spec.dynamic_partitioning.map(|d| d.max_active_partitions),
        data: Batcher::new(spec.buffering),
        errors: Batcher::new(spec.buffering),
        tracker: DeliveryTracker::new(0),
        uploads: Arc::new(Semaphore::new(spec.delivery.concurrency)),
        done_tx,
        in_flight: HashMap::new(),
        uploads_in_flight: 0,
        in_memory: 0,
        buffer_budget: max_in_memory / 2,
        partition_limit_hit: false,
        ledger: Arc::new(NoLedger),
        replay: ReplayPlan::default(),
    };
    let source = DirectPutSource::new(reader, appender.clone(), report.controls);
    let handle = Arc::new(PipelineHandle {
        spec,
        ingest: DirectPutIngest::new(appender, budget, limit),
        metrics,
        created_at: SystemTime::now(),
        seed,
    });
    let task = tokio::spawn(run(Box::new(source), runner, done_rx));
    Ok((handle, task))
}

/// The configured processors, built once per pipeline.
fn build_chain(specs: &[ProcessorSpec]) -> Result<Chain, String> {
    let mut processors: Vec<Arc<dyn Processor>> = Vec::new();
    for spec in specs {
        processors.push(match spec {
            ProcessorSpec::GzipDecompression => Arc::new(GzipDecompression),
            ProcessorSpec::CloudWatchLogProcessing => Arc::new(CloudWatchLogProcessing),
            ProcessorSpec::Deaggregation(kind) => Arc::new(Deaggregate { kind: kind.clone() }),
            ProcessorSpec::MetadataExtraction(query) => Arc::new(MetadataExtraction::compile(query)?),
            ProcessorSpec::AppendDelimiter => continue, // applied by the encoder, see start()
            ProcessorSpec::Wasm(settings) => Arc::new(WasmProcessor::load(settings.clone())?),
        });
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Chain::new(processors).with_parallelism(cores))
}

/// A finished object: these records no longer need the WAL.
struct Done {
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
    let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
    r.tracker = DeliveryTracker::new(source.delivered_below());
    r.ledger = source.ledger();
    r.replay = ReplayPlan::new(source.take_recovered_intents(), source.delivered_below());
    if !r.replay.is_empty() {
        tracing::info!(pipeline = %name, batches = r.replay.pending(), "re-cutting the batches recorded before the restart, under their recorded identities");
    }

    loop {
        let deadline = r.next_deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            read = source.next_batch(read_chunk), if source_open && r.in_memory < max_in_memory => match read {
                Ok(Some(records)) => {
                    let watermark = r.on_records(records).await;
                    commit(&mut source, watermark, &name).await;
                }
                Ok(None) => {
                    source_open = false;
                    r.flush_all();
                }
                Err(e) => {
                    // Only damage under a running reader gets here; stop reading rather than skip
                    // records, and keep delivering what is already buffered.
                    tracing::error!(pipeline = %name, error = %e, "cannot read the WAL; delivery of new records is stopped until restart");
                    source_open = false;
                    r.flush_all();
                }
            },
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
    in_flight: HashMap<PartitionKey, usize>,
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
}

impl Runner {
    /// Processes freshly read records and places every output in a buffer (or, replaying after a
    /// crash, in the batch recorded for it). Returns the watermark if records that produced no
    /// output moved it.
    async fn on_records(&mut self, records: Vec<Record>) -> Option<Seq> {
        let now = Instant::now();
        let read_through = records.last().map(|r| r.seq);
        if self.replay.is_empty() && self.chain.is_empty() && !self.partitioner.is_partitioned() {
            // Fast path: each record is exactly one output, all in one buffer.
            self.tracker.on_read(&records);
            let root = PartitionKey::from("");
            for record in records {
                let weight = self.delivery.format.encoder.weight(&record);
                self.in_memory += weight;
                if let Some(full) = self.data.push(&root, record, weight, now) {
                    self.dispatch(full, None, false);
                }
            }
        } else {
            let sources: Vec<(Seq, i64)> = records.iter().map(|r| (r.seq, r.arrival_ms)).collect();
            let (items, mut failed) = self.process(records).await;
            let mut outputs: HashMap<Seq, u64> = HashMap::with_capacity(sources.len());
            self.partition_limit_hit = false;
            for item in items {
                let seq = item.record.seq;
                let key = match self.partitioner.key(&item) {
                    Ok(key) => key,
                    Err((code, message)) => {
                        failed.push(Failed::new(item.record, ErrorOutputType::ProcessingFailed, code, message));
                        continue;
                    }
                };
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
                            self.dispatch(full, None, false);
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
                let data = error_record::render(&f, ending);
                let weight = data.len() + 1;
                let record = Record { data, ..f.record };
                match route {
                    Route::Recorded(batch) => self.replay.push(batch, None, record, weight),
                    _ => {
                        if let Some(full) = self.errors.push(&lane_key, record, weight, now) {
                            self.dispatch(full, Some(f.kind), false);
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
            self.dispatch(full, None, false);
        }
        for full in self.errors.take_full() {
            let kind = error_kind(&full.partition);
            self.dispatch(full, kind, false);
        }
        if let Some(seq) = read_through {
            for (lane, batch) in self.replay.complete(seq) {
                self.dispatch_recorded(lane, batch);
            }
        }
        // Many partitions must not mean unbounded memory: flush the biggest buffers early.
        while self.data.buffered_bytes() + self.errors.buffered_bytes() > self.buffer_budget {
            match self.data.take_largest() {
                Some(b) => self.dispatch(b, None, false),
                None => match self.errors.take_largest() {
                    Some(b) => {
                        let kind = error_kind(&b.partition);
                        self.dispatch(b, kind, false);
                    }
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
    fn dispatch(&mut self, batch: Batch, error_type: Option<ErrorOutputType>, recorded: bool) {
        self.uploads_in_flight += 1;
        if error_type.is_none() {
            *self.in_flight.entry(batch.partition.clone()).or_default() += 1;
        }
        let lane = if error_type.is_some() { Lane::Errors } else { Lane::Data };
        let intent = (!recorded).then(|| BatchIntent {
            lane,
            partition: batch.partition.clone(),
            seqs: batch.seqs.normalized(),
        });
        let (delivery, uploads, done_tx) = (self.delivery.clone(), self.uploads.clone(), self.done_tx.clone());
        let ledger = self.ledger.clone();
        tokio::spawn(async move {
            if let Some(intent) = intent {
                if let Err(e) = ledger.record(&intent).await {
                    tracing::warn!(pipeline = %delivery.spec.name, error = %e, "sending a batch whose identity could not be recorded; a crash before it is delivered could repeat it");
                }
            }
            let Ok(_permit) = uploads.acquire_owned().await else { return };
            let done = delivery.deliver(batch, error_type).await;
            let _ = done_tx.send(done);
        });
    }

    fn dispatch_recorded(&mut self, lane: Lane, batch: Batch) {
        let kind = match lane {
            Lane::Data => None,
            Lane::Errors => error_kind(&batch.partition),
        };
        self.dispatch(batch, kind, true);
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
            self.dispatch(b, None, false);
        }
        for b in self.errors.due(now) {
            let kind = error_kind(&b.partition);
            self.dispatch(b, kind, false);
        }
    }

    fn flush_all(&mut self) {
        for b in self.data.drain() {
            self.dispatch(b, None, false);
        }
        for b in self.errors.drain() {
            let kind = error_kind(&b.partition);
            self.dispatch(b, kind, false);
        }
        for (lane, b) in self.replay.drain() {
            self.dispatch_recorded(lane, b);
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
        let age = self.tracker.oldest_pending_arrival_ms().map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0);
        m.data_freshness_seconds.set(age);
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

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Everything needed to turn a batch into an object, shared by the pipeline's upload tasks.
struct Delivery {
    spec: PipelineSpec,
    /// The learned schema of a `schema: infer` pipeline, shared by its upload tasks.
    inference: Option<Arc<std::sync::Mutex<SchemaInference>>>,
    sink: ObjectSink,
    format: Arc<ObjectFormat>,
    error_format: Arc<ObjectFormat>,
    metrics: PipelineMetrics,
}

impl Delivery {
    /// `<prefix><stream>-<version>-<time>-<uuid><ext>`, all derived from the batch's partition,
    /// first sequence number and oldest arrival, so a re-delivery overwrites the same key.
    /// Error batches use the error prefix with their `!{firehose:error-output-type}`; `kind`
    /// separates the key spaces of data, error batches and a converted batch's failed records.
    fn object_key(&self, batch: &Batch, error_type: Option<ErrorOutputType>, kind: &str, ext: &str) -> String {
        let partition_seed = fnv1a(&[self.spec.name.as_bytes(), kind.as_bytes(), batch.partition.as_bytes()]);
        let first_seq = batch.first_seq();
        let keys = batch.keys.clone();
        let lookup = move |source: &PartitionSource, key: &str| {
            let keys = keys.as_deref()?;
            let map = match source {
                PartitionSource::Query => &keys.query,
                PartitionSource::Lambda => &keys.lambda,
            };
            map.get(key).cloned()
        };
        let ctx = RenderContext {
            oldest_arrival_ms: batch.oldest_arrival_ms,
            error_output_type: error_type.map(ErrorOutputType::as_str),
            partition_key: &lookup,
            seed: partition_seed ^ splitmix64(first_seq),
        };
        let d = &self.spec.destination;
        let template = if error_type.is_some() { &d.error_prefix } else { &d.prefix };
        let prefix = template.render(&ctx).unwrap_or_else(|e| {
            // Partition values were checked before batching and validation renders every prefix
            // once, so this is a safety net: deliver under the default time path, never drop.
            tracing::warn!(pipeline = %self.spec.name, error = %e, "prefix could not be evaluated; using the default time path");
            KeyTemplate::parse(DEFAULT_TIME_PATH).map(|t| t.render(&ctx).unwrap_or_default()).unwrap_or_default()
        });
        let name =
            object_name(&self.spec.name, STREAM_VERSION, batch.oldest_arrival_ms, partition_seed, first_seq, ext);
        format!("{prefix}{name}")
    }

    /// Delivers a batch: converted to Parquet/ORC when the destination asks for it, otherwise
    /// encoded as records. Returns once everything in it is written (or expired).
    async fn deliver(&self, batch: Batch, error_type: Option<ErrorOutputType>) -> Done {
        match (&self.spec.destination.format_conversion, error_type) {
            (Some(conversion), None) => self.deliver_converted(&batch, conversion.clone()).await,
            _ => {
                let kind = if error_type.is_some() { "errors" } else { "data" };
                let format = if error_type.is_some() { &self.error_format } else { &self.format };
                let key = self.object_key(&batch, error_type, kind, &format.extension);
                let records = Arc::new(batch.records.clone());
                self.write_records(&key, &batch, error_type.is_none(), records, format.clone()).await;
            }
        }
        Done { seqs: batch.seqs, bytes: batch.bytes, partition: error_type.is_none().then_some(batch.partition) }
    }

    /// Format conversion (spec §5): the rows that convert become one Parquet/ORC object, and each
    /// record that does not goes to the error prefix as `format-conversion-failed`, in an object
    /// keyed from the same batch so a re-delivery after a crash overwrites both.
    async fn deliver_converted(&self, batch: &Batch, conversion: Arc<ConversionSpec>) {
        let records = Arc::new(batch.records.clone());
        let (file, failures) = {
            let (records, inference) = (records.clone(), self.inference.clone());
            tokio::task::spawn_blocking(move || convert_batch(&conversion, inference.as_deref(), &records)).await
        }
        .unwrap_or_else(|e| (None, all_failed(records.len(), &e.to_string())));
        let converted_count = (records.len() - failures.len()) as u64;
        let failed_bytes: usize = failures.iter().map(|(i, _)| records[*i].data.len()).sum();
        self.metrics.succeed_conversion_records.increment(converted_count);
        self.metrics.succeed_conversion_bytes.increment((batch.bytes.saturating_sub(failed_bytes)) as u64);
        self.metrics.failed_conversion_records.increment(failures.len() as u64);
        self.metrics.failed_conversion_bytes.increment(failed_bytes as u64);
        if let Some(file) = file {
            let key = self.object_key(batch, None, "data", &self.spec.destination.file_extension);
            self.write_retrying(&key, batch, true, converted_count, || {
                let file = file.clone();
                move |out: &mut (dyn std::io::Write + Send)| out.write_all(&file)
            })
            .await;
        }
        if failures.is_empty() {
            return;
        }
        let kind = ErrorOutputType::FormatConversionFailed;
        self.metrics.error_records(kind).increment(failures.len() as u64);
        let now = now_ms();
        let error_records: Vec<Record> = failures
            .into_iter()
            .map(|(i, f)| {
                let record = records[i].clone();
                let failed = Failed::new(record.clone(), kind, f.kind.code(), f.message);
                Record { data: error_record::render(&failed, now), ..record }
            })
            .collect();
        let key = self.object_key(batch, Some(kind), "conversion-errors", &self.error_format.extension);
        self.write_records(&key, batch, false, Arc::new(error_records), self.error_format.clone()).await;
    }

    /// Writes `records` encoded as `format` to `key`, with [`Self::write_retrying`].
    async fn write_records(
        &self,
        key: &str,
        batch: &Batch,
        is_data: bool,
        records: Arc<Vec<Record>>,
        format: Arc<ObjectFormat>,
    ) {
        let entry = format.entry_name(key);
        self.write_retrying(key, batch, is_data, records.len() as u64, || {
            let (records, format, entry) = (records.clone(), format.clone(), entry.clone());
            move |out: &mut (dyn std::io::Write + Send)| format.write_object(&records, &entry, out)
        })
        .await;
    }

    /// Writes one object, retrying with exponential backoff and jitter until it succeeds or the
    /// batch's oldest record passes the retention period (then it is dropped, logged and counted).
    /// `encoder` makes a fresh encoding closure for each attempt.
    async fn write_retrying<E, F>(&self, key: &str, batch: &Batch, is_data: bool, count: u64, encoder: E)
    where
        E: Fn() -> F,
        F: FnOnce(&mut (dyn std::io::Write + Send)) -> std::io::Result<()> + Send + 'static,
    {
        let d = &self.spec.delivery;
        let mut backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(d.retry_initial)
            .with_max_delay(d.retry_max)
            .without_max_times()
            .build();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match self.sink.write_with(key, encoder()).await {
                Ok(()) => {
                    if is_data {
                        self.metrics.delivered_records.increment(count);
                        self.metrics.delivered_bytes.increment(batch.bytes as u64);
                    }
                    self.metrics.delivered_objects.increment(1);
                    tracing::debug!(pipeline = %self.spec.name, key, records = count, bytes = batch.bytes, "delivered");
                    return;
                }
                Err(e) => {
                    self.metrics.delivery_failures.increment(1);
                    let age = Duration::from_millis((now_ms() - batch.oldest_arrival_ms).max(0) as u64);
                    if age > self.spec.retention {
                        tracing::error!(pipeline = %self.spec.name, key, records = count, attempts, error = %e, "dropping records older than the retention period after failed deliveries");
                        self.metrics.expired_records.increment(count);
                        return;
                    }
                    let wait = backoff.next().unwrap_or(d.retry_max);
                    tracing::warn!(pipeline = %self.spec.name, destination = self.sink.describe(), key, attempts, error = %e, retry_in_ms = wait.as_millis() as u64, "delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Converts a batch and encodes its file, once (retried uploads send the same bytes). Returns the
/// file, if any row converted, and the records that did not. Never fails as a whole: an internal
/// error (never a record's fault) sends every record to the error prefix rather than losing it or
/// retrying a batch that can never encode.
fn convert_batch(
    conversion: &ConversionSpec,
    inference: Option<&std::sync::Mutex<SchemaInference>>,
    records: &[Record],
) -> (Option<bytes::Bytes>, Vec<(usize, ConversionFailure)>) {
    let columns = match (&conversion.schema, inference) {
        (SchemaSpec::Declared(columns), _) => columns.clone(),
        (SchemaSpec::Infer, Some(inference)) => {
            let mut inference = inference.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            inference.evolve(records).unwrap_or_else(|e| {
                // The schema could not be saved: it still applies, and is learned again from the
                // records after a restart.
                tracing::warn!(error = %e, "cannot save the inferred schema");
                inference.columns()
            })
        }
        (SchemaSpec::Infer, None) => Vec::new(),
    };
    let converted = match conversion.convert(&columns, records) {
        Ok(c) => c,
        Err(e) => return (None, all_failed(records.len(), &e.to_string())),
    };
    if converted.table.num_rows() == 0 {
        return (None, converted.failures);
    }
    let mut file = Vec::new();
    match conversion.write(&columns, &converted.table, &mut file) {
        Ok(()) => (Some(bytes::Bytes::from(file)), converted.failures),
        Err(e) => (None, all_failed(records.len(), &format!("writing the file failed: {e}"))),
    }
}

fn all_failed(records: usize, message: &str) -> Vec<(usize, ConversionFailure)> {
    let failure = ConversionFailure {
        kind: FailKind::Malformed,
        message: format!("Internal error while converting the batch (the record is kept here): {message}"),
    };
    (0..records).map(|i| (i, failure.clone())).collect()
}
