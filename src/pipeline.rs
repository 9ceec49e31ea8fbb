//! One pipeline, top to bottom: what happens to a record after it is acknowledged.
//!
//! ```text
//! source (WAL reader) ─▶ batcher (size | interval, per partition) ─▶ deliver: key → encode → upload
//!        ▲                                                                     │ (retried with backoff)
//!        └──── commit(watermark) ◀── tracker (out-of-order completions) ◀──────┘
//! ```
//! Processors (WASM, jq, de-aggregation) slot in between the source and the batcher, and failed
//! records go to an error-output batcher beside the main one.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use thiserror::Error;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::buffer::wal::{self, StorageBudget, WalOptions};
use crate::buffer::{Batch, Batcher, DeliveryTracker, PartitionKey};
use crate::config::{PipelineSpec, StorageSettings};
use crate::format::{ObjectFormat, RawEncoder};
use crate::metrics::PipelineMetrics;
use crate::record::SeqRanges;
use crate::sink::object_key::{fnv1a, object_name, splitmix64, KeyTemplate, RenderContext, DEFAULT_TIME_PATH};
use crate::sink::ObjectSink;
use crate::source::direct_put::{DirectPutIngest, DirectPutSource};
use crate::source::Source;

/// Firehose's VersionId for a stream that was never updated; it appears in every object name.
const STREAM_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("pipeline `{name}`: {source}")]
    Wal { name: String, source: wal::WalError },
    #[error("pipeline `{name}`: {source}")]
    Sink {
        name: String,
        source: crate::sink::SinkError,
    },
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
    let limit = spec
        .max_wal_bytes
        .map_or(storage.max_bytes, |m| m.min(storage.max_bytes));
    let budget = StorageBudget::new(limit, Some(global));
    let dir = storage.dir.join("pipelines").join(&name).join("wal");
    let (appender, reader, report) = wal::open(WalOptions {
        dir,
        segment_bytes: storage.segment_bytes,
        budget: budget.clone(),
    })
    .map_err(|source| PipelineError::Wal {
        name: name.clone(),
        source,
    })?;
    if report.undelivered_records > 0 || report.torn_bytes_cut > 0 {
        tracing::info!(pipeline = %name, records = report.undelivered_records, bytes = report.undelivered_bytes, torn_bytes_cut = report.torn_bytes_cut, "replaying undelivered records from the WAL");
    }

    let d = &spec.destination;
    let sink = ObjectSink::new(&d.store, d.compression.content_encoding()).map_err(|source| PipelineError::Sink {
        name: name.clone(),
        source,
    })?;
    let format = ObjectFormat {
        encoder: RawEncoder {
            append_delimiter: d.append_delimiter,
        },
        compression: d.compression,
        extension: d.file_extension.clone(),
    };
    let metrics = PipelineMetrics::new(&name);
    let seed = fnv1a(&[name.as_bytes()]);
    let delivery = Arc::new(Delivery {
        spec: spec.clone(),
        sink,
        format: Arc::new(format),
        metrics: metrics.clone(),
    });
    let handle = Arc::new(PipelineHandle {
        spec,
        ingest: DirectPutIngest::new(appender, budget, limit),
        metrics,
        created_at: SystemTime::now(),
        seed,
    });
    let task = tokio::spawn(run(Box::new(DirectPutSource::new(reader)), delivery));
    Ok((handle, task))
}

/// A finished object: these records no longer need the WAL.
struct Done {
    seqs: SeqRanges,
    bytes: usize,
}

async fn run(mut source: Box<dyn Source>, delivery: Arc<Delivery>) {
    let spec = &delivery.spec;
    let name = spec.name.clone();
    let mut batcher = Batcher::new(spec.buffering);
    let mut tracker = DeliveryTracker::new(source.delivered_below());
    let uploads = Arc::new(Semaphore::new(spec.delivery.concurrency));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let partition: PartitionKey = "".into();
    // Records read but not yet delivered stay under this bound; beyond it they wait in the WAL.
    let max_in_memory = spec.buffering.size_bytes * (spec.delivery.concurrency + 2);
    let read_chunk = spec.buffering.size_bytes.clamp(64 << 10, 4 << 20);
    let mut in_memory = 0usize;
    let mut in_flight = 0usize;
    let mut source_open = true;
    let mut freshness_tick = tokio::time::interval(Duration::from_secs(1));

    let dispatch = |batch: Batch, in_flight: &mut usize| {
        *in_flight += 1;
        let (delivery, uploads, done_tx) = (delivery.clone(), uploads.clone(), done_tx.clone());
        tokio::spawn(async move {
            let Ok(_permit) = uploads.acquire_owned().await else {
                return;
            };
            let done = delivery.deliver(batch).await;
            let _ = done_tx.send(done);
        });
    };

    loop {
        let deadline = batcher.next_deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            read = source.next_batch(read_chunk), if source_open && in_memory < max_in_memory => match read {
                Ok(Some(records)) => {
                    tracker.on_read(&records);
                    let now = Instant::now();
                    for record in records {
                        let weight = delivery.format.encoder.weight(&record);
                        in_memory += weight;
                        if let Some(full) = batcher.push(&partition, record, weight, now) {
                            dispatch(full, &mut in_flight);
                        }
                    }
                    if spec.buffering.interval.is_zero() {
                        batcher.drain().into_iter().for_each(|b| dispatch(b, &mut in_flight));
                    }
                }
                Ok(None) => {
                    source_open = false;
                    batcher.drain().into_iter().for_each(|b| dispatch(b, &mut in_flight));
                }
                Err(e) => {
                    // Only damage under a running reader gets here; stop reading rather than skip
                    // records, and keep delivering what is already buffered.
                    tracing::error!(pipeline = %name, error = %e, "cannot read the WAL; delivery of new records is stopped until restart");
                    source_open = false;
                    batcher.drain().into_iter().for_each(|b| dispatch(b, &mut in_flight));
                }
            },
            Some(done) = done_rx.recv() => {
                in_flight -= 1;
                in_memory -= done.bytes;
                if let Some(watermark) = tracker.on_done(&done.seqs) {
                    if let Err(e) = source.commit(watermark, false).await {
                        tracing::error!(pipeline = %name, error = %e, "cannot record delivery progress; records may be delivered again after a restart");
                    }
                }
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                batcher.due(Instant::now()).into_iter().for_each(|b| dispatch(b, &mut in_flight));
            },
            _ = freshness_tick.tick() => {
                let age = tracker.oldest_pending_arrival_ms().map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0);
                delivery.metrics.data_freshness_seconds.set(age);
            },
        }
        if !source_open && in_flight == 0 && batcher.is_empty() {
            break;
        }
    }
    if let Err(e) = source.commit(tracker.delivered_below(), true).await {
        tracing::error!(pipeline = %name, error = %e, "cannot persist the final checkpoint; some records will be delivered again on restart");
    }
    delivery.metrics.data_freshness_seconds.set(0.0);
    tracing::info!(pipeline = %name, "pipeline drained");
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Everything needed to turn a batch into an object, shared by the pipeline's upload tasks.
struct Delivery {
    spec: PipelineSpec,
    sink: ObjectSink,
    format: Arc<ObjectFormat>,
    metrics: PipelineMetrics,
}

impl Delivery {
    /// `<prefix><stream>-<version>-<time>-<uuid><ext>`, all derived from the batch's first
    /// sequence number and oldest arrival, so a re-delivery overwrites the same key.
    fn object_key(&self, batch: &Batch) -> String {
        let partition_seed = fnv1a(&[self.spec.name.as_bytes(), batch.partition.as_bytes()]);
        let first_seq = batch.first_seq();
        let no_keys = |_: &_, _: &str| None;
        let ctx = RenderContext {
            oldest_arrival_ms: batch.oldest_arrival_ms,
            error_output_type: None,
            partition_key: &no_keys,
            seed: partition_seed ^ splitmix64(first_seq),
        };
        let prefix = self.spec.destination.prefix.render(&ctx).unwrap_or_else(|e| {
            // Validation renders every prefix once, so this only happens with dynamic values.
            tracing::warn!(pipeline = %self.spec.name, error = %e, "prefix could not be evaluated; using the default time path");
            KeyTemplate::parse(DEFAULT_TIME_PATH).map(|t| t.render(&ctx).unwrap_or_default()).unwrap_or_default()
        });
        let ext = &self.format.extension;
        format!(
            "{prefix}{}",
            object_name(
                &self.spec.name,
                STREAM_VERSION,
                batch.oldest_arrival_ms,
                partition_seed,
                first_seq,
                ext
            )
        )
    }

    /// Writes the batch, retrying with exponential backoff and jitter until it succeeds or its
    /// oldest record passes the retention period (then it is dropped, logged and counted).
    async fn deliver(&self, batch: Batch) -> Done {
        let key = self.object_key(&batch);
        let count = batch.records.len() as u64;
        let records = Arc::new(batch.records);
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
            match self.sink.write_object(&key, records.clone(), self.format.clone()).await {
                Ok(()) => {
                    self.metrics.delivered_records.increment(count);
                    self.metrics.delivered_bytes.increment(batch.bytes as u64);
                    self.metrics.delivered_objects.increment(1);
                    tracing::debug!(pipeline = %self.spec.name, key, records = count, bytes = batch.bytes, "delivered");
                    break;
                }
                Err(e) => {
                    self.metrics.delivery_failures.increment(1);
                    let age = Duration::from_millis((now_ms() - batch.oldest_arrival_ms).max(0) as u64);
                    if age > self.spec.retention {
                        tracing::error!(pipeline = %self.spec.name, key, records = count, attempts, error = %e, "dropping records older than the retention period after failed deliveries");
                        self.metrics.expired_records.increment(count);
                        break;
                    }
                    let wait = backoff.next().unwrap_or(d.retry_max);
                    tracing::warn!(pipeline = %self.spec.name, destination = self.sink.describe(), key, attempts, error = %e, retry_in_ms = wait.as_millis() as u64, "delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Done {
            seqs: batch.seqs,
            bytes: batch.bytes,
        }
    }
}
