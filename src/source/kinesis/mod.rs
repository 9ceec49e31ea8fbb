//! A Kinesis Data Stream as a pipeline's source (Firehose's KinesisStreamAsSource).
//!
//! The stream is its own durable log, so records are not copied into the WAL. One task per shard
//! reads (`reader.rs`); this source numbers the records in the pipeline's sequence space and keeps,
//! per shard, which pipeline sequence each Kinesis position got. When the pipeline commits a
//! watermark, every shard's checkpoint moves to the last record below it and is persisted
//! (`checkpoint.rs`); a restart resumes after it. So nothing is skipped, and what a crash can
//! repeat is bounded by what was read but not yet checkpointed.
//!
//! Resharding: a child shard is read only once its parents are finished, meaning read to their end
//! and delivered, so per-key order holds across a split or a merge.
//!
//! Alone, this daemon reads every shard and keeps the checkpoint in its state dir (`coordinate`
//! below). With `leases:`, shards are shared with other daemons through a DynamoDB table that also
//! holds the checkpoints (`leases.rs`); the state dir then keeps only the pipeline's watermark.
//!
//! The pipeline still owns an (empty) WAL for a Kinesis pipeline: puts are refused at the API, and
//! its closing is the shutdown signal this source follows, as Direct PUT's does.

mod checkpoint;
pub mod client;
pub mod config;
pub mod firehose;
mod lease_table;
mod leases;
mod reader;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::positions::{Moved, Positions};
use super::{CheckpointPacer, Source, SourceError};
use crate::record::{KinesisMetadata, Origin, Record, Seq};
use checkpoint::Checkpoint;
use client::KinesisClient;
use config::KinesisSourceSpec;
use leases::{LeaseControl, LeaseCoordinator};
use reader::{ReadPermit, ReaderMsg, ShardReader};

/// How often the shard list is read again (new shards after a reshard).
pub(super) const LIST_SHARDS_EVERY: Duration = Duration::from_secs(10);
/// GetRecords pages read ahead of the pipeline (each at most `reader::RECORDS_PER_CALL` records).
const PAGES_IN_FLIGHT: usize = 8;

/// Metrics under Firehose's names (spec §10).
#[derive(Clone)]
pub struct KinesisMetrics {
    pub records: metrics::Counter,
    pub bytes: metrics::Counter,
    pub millis_behind: metrics::Gauge,
    pub throttled_get_records: metrics::Counter,
    pub throttled_get_shard_iterator: metrics::Counter,
    pub throttled_list_shards: metrics::Counter,
    pub shards_reading: metrics::Gauge,
    pub leases_held: metrics::Gauge,
}

impl KinesisMetrics {
    fn new(stream: &str) -> Self {
        let s = stream.to_string();
        Self {
            records: metrics::counter!("sluice_data_read_from_kinesis_stream_records_total", "delivery_stream_name" => s.clone()),
            bytes: metrics::counter!("sluice_data_read_from_kinesis_stream_bytes_total", "delivery_stream_name" => s.clone()),
            millis_behind: metrics::gauge!("sluice_kinesis_millis_behind_latest", "delivery_stream_name" => s.clone()),
            throttled_get_records: metrics::counter!("sluice_throttled_get_records_total", "delivery_stream_name" => s.clone()),
            throttled_get_shard_iterator: metrics::counter!("sluice_throttled_get_shard_iterator_total", "delivery_stream_name" => s.clone()),
            throttled_list_shards: metrics::counter!("sluice_throttled_describe_stream_total", "delivery_stream_name" => s.clone()),
            shards_reading: metrics::gauge!("sluice_kinesis_shards_reading", "delivery_stream_name" => s.clone()),
            leases_held: metrics::gauge!("sluice_kinesis_leases_held", "delivery_stream_name" => s),
        }
    }
}

/// Starts shard readers: what every reader of this source shares.
#[derive(Clone)]
pub(super) struct ReaderSpawner {
    client: Arc<KinesisClient>,
    stream: String,
    starting_position: config::StartingPosition,
    delivery_start_ms: i64,
    tx: mpsc::Sender<ReaderMsg>,
    metrics: KinesisMetrics,
    pipeline: String,
}

impl ReaderSpawner {
    /// Reads `shard` after `after` (a checkpoint), or, without one, from its start for a child
    /// shard and from the configured position otherwise.
    fn spawn(
        &self,
        shard: &str,
        generation: u64,
        permit: Arc<ReadPermit>,
        after: Option<String>,
        child: bool,
    ) -> JoinHandle<()> {
        let reader = ShardReader {
            client: self.client.clone(),
            stream: self.stream.clone(),
            shard: Arc::from(shard),
            generation,
            permit,
            after,
            start: if child { config::StartingPosition::TrimHorizon } else { self.starting_position },
            delivery_start_ms: self.delivery_start_ms,
            tx: self.tx.clone(),
            metrics: self.metrics.clone(),
            pipeline: self.pipeline.clone(),
        };
        tokio::spawn(reader.run())
    }
}

pub struct KinesisSource {
    /// The pipeline's WAL, used only for its end: it closes at shutdown.
    closer: Box<dyn Source>,
    rx: mpsc::Receiver<ReaderMsg>,
    coordinator: JoinHandle<()>,
    checkpoint: Arc<Mutex<Checkpoint>>,
    positions: Positions<String>,
    delivered_below: Seq,
    pacer: CheckpointPacer,
    metrics: KinesisMetrics,
    pipeline: String,
    /// With `leases:`: the lease coordinator, told when reading stops and when to let go.
    leases: Option<mpsc::Sender<LeaseControl>>,
}

/// How long a shutdown waits for the final checkpoint and the freed leases to be written.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

impl KinesisSource {
    /// Opens the checkpoint under `dir` and starts reading the stream's shards.
    pub fn open(spec: &KinesisSourceSpec, dir: &Path, pipeline: &str, closer: Box<dyn Source>) -> Result<Self, String> {
        let client = Arc::new(KinesisClient::new(spec.endpoint.as_deref(), &spec.region).map_err(|e| e.to_string())?);
        let checkpoint = Checkpoint::load(&dir.join("kinesis-checkpoint.json")).map_err(|e| e.to_string())?;
        let delivered_below = checkpoint.delivered_below;
        let checkpoint = Arc::new(Mutex::new(checkpoint));
        let metrics = KinesisMetrics::new(pipeline);
        let (tx, rx) = mpsc::channel(PAGES_IN_FLIGHT);
        let spawner = ReaderSpawner {
            client: client.clone(),
            stream: spec.stream_name.clone(),
            starting_position: spec.starting_position,
            delivery_start_ms: checkpoint.lock().unwrap_or_else(|p| p.into_inner()).delivery_start_ms,
            tx,
            metrics: metrics.clone(),
            pipeline: pipeline.to_string(),
        };
        let (coordinator, leases) = match &spec.leases {
            None => (tokio::spawn(coordinate(client, spec.stream_name.clone(), checkpoint.clone(), spawner)), None),
            Some(lease_spec) => {
                let table =
                    lease_table::LeaseTable::new(&lease_spec.table, lease_spec.endpoint.as_deref(), &lease_spec.region)
                        .map_err(|e| e.to_string())?;
                let (control_tx, control_rx) = mpsc::channel(4);
                let coordinator = LeaseCoordinator::new(
                    table,
                    lease_spec.clone(),
                    client,
                    spec.stream_name.clone(),
                    spec.starting_position,
                    spawner,
                    checkpoint.clone(),
                    pipeline.to_string(),
                );
                (tokio::spawn(coordinator.run(control_rx)), Some(control_tx))
            }
        };
        Ok(Self {
            closer,
            rx,
            coordinator,
            checkpoint,
            positions: Positions::new(delivered_below),
            delivered_below,
            pacer: CheckpointPacer::default(),
            metrics,
            pipeline: pipeline.to_string(),
            leases,
        })
    }

    /// Firehose's DeliveryStartTimestamp: when this pipeline first started reading.
    pub fn delivery_start_ms(&self) -> i64 {
        self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()).delivery_start_ms
    }

    fn take(&mut self, msg: ReaderMsg) -> Option<Vec<Record>> {
        match msg {
            ReaderMsg::Records { shard, generation, records, millis_behind } => {
                self.metrics.millis_behind.set(millis_behind as f64);
                self.metrics.records.increment(records.len() as u64);
                self.metrics.bytes.increment(records.iter().map(|r| r.data.len() as u64).sum());
                let mut out = Vec::with_capacity(records.len());
                let numbered = records.into_iter().map(|r| {
                    let metadata = KinesisMetadata {
                        shard_id: shard.clone(),
                        sequence_number: r.sequence_number.clone(),
                        subsequence_number: 0,
                        partition_key: r.partition_key,
                    };
                    (r.sequence_number, (r.arrival_ms, r.data, metadata))
                });
                self.positions.number(shard.clone(), generation, numbered, |seq, (arrival_ms, data, metadata)| {
                    out.push(Record { seq, arrival_ms, data, origin: Some(Arc::new(Origin::Kinesis(metadata))) })
                });
                (!out.is_empty()).then_some(out)
            }
            ReaderMsg::Ended { shard, generation } => self.end(shard, generation, false),
            ReaderMsg::Stopped { shard, generation } => self.end(shard, generation, true),
        }
    }

    /// Nothing more comes from this shard: it is done once what was read is delivered.
    fn end(&mut self, shard: Arc<str>, generation: u64, handing_back: bool) -> Option<Vec<Record>> {
        self.positions.end(shard, generation, handing_back);
        self.advance(self.delivered_below);
        None
    }

    /// Moves every shard's checkpoint to its last record below the watermark.
    fn advance(&mut self, delivered_below: Seq) -> bool {
        let mut changed = false;
        let mut checkpoint = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
        let pipeline = &self.pipeline;
        self.positions.advance(delivered_below, |moved| {
            changed = true;
            match moved {
                Moved::Position { part, generation, position } => checkpoint.set_position(part, generation, position),
                Moved::Ended { part, generation, handing_back: true } => checkpoint.hand_back(part, generation),
                Moved::Ended { part, generation, handing_back: false } => {
                    checkpoint.finish(part, generation);
                    tracing::info!(pipeline = %pipeline, shard = %part, "shard read to its end and delivered; its children may start");
                }
            }
        });
        if delivered_below > checkpoint.delivered_below {
            checkpoint.delivered_below = delivered_below;
            changed = true;
        }
        changed
    }
}

impl Drop for KinesisSource {
    fn drop(&mut self) {
        self.coordinator.abort();
    }
}

#[async_trait]
impl Source for KinesisSource {
    fn delivered_below(&self) -> Seq {
        self.delivered_below
    }

    async fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<Record>>, SourceError> {
        loop {
            tokio::select! {
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { return Ok(None) };
                    if let Some(records) = self.take(msg) {
                        return Ok(Some(records));
                    }
                }
                end = self.closer.next_batch(max_bytes) => {
                    // Shutdown: stop reading; what was read but not handed over is read again
                    // from the checkpoint next time.
                    if end?.is_none() {
                        match &self.leases {
                            // Leases stay held (and renewed) while the pipeline drains.
                            Some(leases) => {
                                let _ = leases.send(LeaseControl::StopReading).await;
                            }
                            None => self.coordinator.abort(),
                        }
                        return Ok(None);
                    }
                }
            }
        }
    }

    async fn commit(&mut self, delivered_below: Seq, force: bool) -> Result<(), SourceError> {
        self.delivered_below = delivered_below;
        let changed = self.advance(delivered_below);
        let checkpoint = &self.checkpoint;
        self.pacer.persist(changed, force, &self.pipeline, "records", || {
            checkpoint.lock().unwrap_or_else(|p| p.into_inner()).clone().save()
        });
        if let Some(leases) = self.leases.take_if(|_| force) {
            // The final checkpoint goes to the lease table and the leases are freed, so other
            // daemons take the shards over at once and repeat nothing.
            let (done, wait) = oneshot::channel();
            if leases.send(LeaseControl::Release(done)).await.is_ok()
                && tokio::time::timeout(RELEASE_TIMEOUT, wait).await.is_err()
            {
                tracing::warn!(pipeline = %self.pipeline, "the lease table did not answer in time; the leases expire instead and what was delivered since the last checkpoint may be delivered again");
            }
        }
        self.closer.commit(0, force).await
    }
}

/// Alone on the stream: lists the shards now and then and starts a reader for each shard that may
/// be read: not finished, not already reading, and whose parents are finished (or gone).
async fn coordinate(
    client: Arc<KinesisClient>,
    stream: String,
    checkpoint: Arc<Mutex<Checkpoint>>,
    spawner: ReaderSpawner,
) {
    let mut running: HashSet<String> = HashSet::new();
    let mut readers: Vec<JoinHandle<()>> = Vec::new();
    let mut backoff = Duration::from_secs(1);
    let metrics = spawner.metrics.clone();
    loop {
        match client.list_shards(&stream).await {
            Ok(shards) => {
                backoff = Duration::from_secs(1);
                let known: HashSet<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
                let finished = checkpoint.lock().unwrap_or_else(|p| p.into_inner()).finished_shards();
                for shard in &shards {
                    if running.contains(&shard.shard_id) || finished.contains(&shard.shard_id) {
                        continue;
                    }
                    let parents = [&shard.parent_shard_id, &shard.adjacent_parent_shard_id];
                    let waiting =
                        parents.iter().filter_map(|p| p.as_deref()).any(|p| known.contains(p) && !finished.contains(p));
                    if waiting {
                        continue;
                    }
                    let child = parents.iter().any(|p| p.as_deref().is_some_and(|p| known.contains(p)));
                    let position = checkpoint.lock().unwrap_or_else(|p| p.into_inner()).position(&shard.shard_id);
                    running.insert(shard.shard_id.clone());
                    readers.push(spawner.spawn(&shard.shard_id, 0, ReadPermit::unlimited(), position, child));
                }
                metrics.shards_reading.set(readers.iter().filter(|r| !r.is_finished()).count() as f64);
            }
            Err(e) => {
                if matches!(e, client::KinesisError::Throttled(_)) {
                    metrics.throttled_list_shards.increment(1);
                }
                tracing::warn!(pipeline = %spawner.pipeline, stream = %stream, error = %e, "cannot list the stream's shards; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(LIST_SHARDS_EVERY) => {}
            _ = spawner.tx.closed() => break,
        }
    }
    for r in readers {
        r.abort();
    }
}
