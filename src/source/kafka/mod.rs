//! A Kafka (or Amazon MSK) topic as a pipeline's source (Firehose's MSKAsSource), read in a
//! consumer group.
//!
//! Scale-out is Kafka's own: daemons with the same `group_id` share the topic's partitions, and the
//! group moves partitions when a member joins, leaves or goes silent (killed: after
//! `session_timeout_seconds`). Like the Kinesis source, the topic is its own durable log: records
//! are not copied into the WAL, and **offsets are committed to the group only after delivery**,
//! per partition, up to the last record below the pipeline's delivered watermark
//! (`positions.rs`). A crash or a rebalance therefore repeats at most what was delivered but not
//! yet committed, and never skips anything.
//!
//! What is repeated lands under the same names: a batch holds one partition's records and is named
//! from the (topic, partition, offset) of every record in it (`Batch::identity`), with no
//! per-daemon seed, and where each batch ended is committed to the group before it is sent
//! (`cuts.rs`). So a batch read again, by this daemon after a restart or by another member after
//! a rebalance, is cut at the same record and overwrites its earlier copy (objects), repeats its
//! request id (HTTP) or its document ids (OpenSearch).
//!
//! The consumer runs on its own thread (`consumer.rs`); this module numbers what it reads in the
//! pipeline's sequence space, gives each record its Kafka metadata (`Origin::Kafka`), records
//! batch cuts (the ledger) and commits.

pub mod config;
mod consumer;
mod cuts;
pub mod firehose;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::TopicPartitionList;
use tokio::sync::mpsc;

use super::{Source, SourceError};
use crate::buffer::cut_marks::CutMarks;
use crate::buffer::intent::{BatchIntent, BatchLedger, LedgerError, SharedLedger};
use crate::record::{KafkaMetadata, Origin, Record, Seq};
use config::{KafkaSourceSpec, Starting, Topics};
use consumer::{add, lock, Assignment, Fetched, GroupConsumer, GroupContext, PartitionId, Poller, SharedAssignment};

/// Record groups in flight between the consumer thread and the pipeline.
const HANDOVERS_IN_FLIGHT: usize = 4;

/// The source's metrics; Firehose's names for MSK where it has them (`DataReadFromSource.*`).
#[derive(Clone)]
pub struct KafkaMetrics {
    pipeline: String,
    pub records: metrics::Counter,
    pub bytes: metrics::Counter,
    pub partitions: metrics::Gauge,
    pub rebalances: metrics::Counter,
    pub commit_failures: metrics::Counter,
}

impl KafkaMetrics {
    fn new(pipeline: &str) -> Self {
        let p = pipeline.to_string();
        Self {
            pipeline: p.clone(),
            records: metrics::counter!("sluice_data_read_from_source_records_total", "delivery_stream_name" => p.clone()),
            bytes: metrics::counter!("sluice_data_read_from_source_bytes_total", "delivery_stream_name" => p.clone()),
            partitions: metrics::gauge!("sluice_kafka_partitions_assigned", "delivery_stream_name" => p.clone()),
            rebalances: metrics::counter!("sluice_kafka_rebalances_total", "delivery_stream_name" => p.clone()),
            commit_failures: metrics::counter!("sluice_kafka_commit_failures_total", "delivery_stream_name" => p),
        }
    }

    /// Records in the partition not yet delivered (its end minus the committed offset).
    pub fn lag(&self, topic: &str, partition: i32) -> metrics::Gauge {
        metrics::gauge!("sluice_kafka_consumer_lag", "delivery_stream_name" => self.pipeline.clone(),
            "topic" => topic.to_string(), "partition" => partition.to_string())
    }
}

pub struct KafkaSource {
    /// The pipeline's WAL, used only for its end: it closes at shutdown.
    closer: Box<dyn Source>,
    rx: mpsc::Receiver<Vec<Fetched>>,
    consumer: Arc<GroupConsumer>,
    assignment: SharedAssignment,
    stopping: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The next record's pipeline sequence.
    next_seq: Seq,
    /// With one destination, a partition's delivered prefix takes in whole delivered batches
    /// (`cuts::Progress::advance`).
    whole_batches: bool,
    marks: Arc<CutMarks>,
    delivered_below: Seq,
    metrics: KafkaMetrics,
    pipeline: String,
}

impl KafkaSource {
    /// Joins the consumer group and starts reading.
    pub fn open(
        spec: &KafkaSourceSpec,
        pipeline: &str,
        destinations: usize,
        closer: Box<dyn Source>,
        status: Arc<crate::status::PipelineStatus>,
    ) -> Result<Self, String> {
        let metrics = KafkaMetrics::new(pipeline);
        let assignment: SharedAssignment = Arc::new(std::sync::Mutex::new(Assignment::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let marks = Arc::new(CutMarks::default());
        let context = GroupContext {
            marks: marks.clone(),
            status,
            brokers: spec.connection.brokers.join(","),
            assignment: assignment.clone(),
            starting: spec.starting,
            revoke_grace: spec.revoke_grace,
            stopping: stopping.clone(),
            metrics: metrics.clone(),
            pipeline: pipeline.to_string(),
        };
        let mut c = spec.connection.client_config();
        c.set("group.id", &spec.group_id)
            .set("client.id", format!("sluice-{pipeline}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", spec.session_timeout.as_millis().to_string())
            .set("heartbeat.interval.ms", (spec.session_timeout.as_millis() / 3).max(100).to_string())
            .set(
                "auto.offset.reset",
                match spec.starting {
                    Starting::Latest => "latest",
                    Starting::Earliest | Starting::AtTimestamp(_) => "earliest",
                },
            )
            .set("statistics.interval.ms", "5000")
            // Fetch in sizeable chunks without holding much: at most 16 MiB queued per daemon.
            .set("queued.max.messages.kbytes", "16384");
        spec.connection.apply_options(&mut c);
        let consumer: GroupConsumer =
            c.create_with_context(context).map_err(|e| format!("cannot create the Kafka consumer: {e}"))?;
        let topics: Vec<&str> = match &spec.topics {
            Topics::Names(names) => names.iter().map(String::as_str).collect(),
            Topics::Pattern(p) => vec![p.as_str()],
        };
        consumer.subscribe(&topics).map_err(|e| format!("cannot subscribe to {}: {e}", topics.join(", ")))?;
        let consumer = Arc::new(consumer);
        let (tx, rx) = mpsc::channel(HANDOVERS_IN_FLIGHT);
        let poller = Poller {
            consumer: consumer.clone(),
            tx,
            assignment: assignment.clone(),
            stopping: stopping.clone(),
            pipeline: pipeline.to_string(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("kafka-{pipeline}"))
            .spawn(move || poller.run())
            .map_err(|e| format!("cannot start the Kafka consumer thread: {e}"))?;
        let delivered_below = closer.delivered_below();
        Ok(Self {
            closer,
            rx,
            consumer,
            assignment,
            stopping,
            thread: Some(thread),
            next_seq: delivered_below,
            whole_batches: destinations == 1,
            marks,
            delivered_below,
            metrics,
            pipeline: pipeline.to_string(),
        })
    }

    /// Numbers what the consumer read, dropping groups read under a generation this daemon no
    /// longer holds (the partition was revoked meanwhile: its next owner reads them).
    fn take(&mut self, fetched: Vec<Fetched>) -> Vec<Record> {
        let mut out = Vec::with_capacity(fetched.iter().map(|f| f.records.len()).sum());
        let mut a = lock(&self.assignment);
        for f in fetched {
            let Some(owned) = a.owned.get_mut(&f.partition).filter(|o| o.generation == f.generation) else {
                continue;
            };
            let (topic, partition) = f.partition.clone();
            self.metrics.records.increment(f.records.len() as u64);
            self.metrics.bytes.increment(f.records.iter().map(|r| r.data.len() as u64).sum());
            for r in f.records {
                let seq = self.next_seq;
                self.next_seq += 1;
                owned.progress.read(seq, r.offset);
                self.marks.add(seq, r.marks);
                let arrival_ms = r.timestamp_ms.unwrap_or_else(crate::clock::now_ms);
                let origin = Origin::Kafka(KafkaMetadata {
                    topic: topic.clone(),
                    partition,
                    offset: r.offset,
                    timestamp_ms: r.timestamp_ms,
                    key: r.key,
                    headers: r.headers,
                });
                out.push(Record { seq, arrival_ms, data: r.data, origin: Some(Arc::new(origin)) });
            }
        }
        out
    }

    /// The commits now that everything below `delivered_below` is delivered: every partition
    /// whose delivered prefix moved, with its cut list.
    fn advance(&mut self, delivered_below: Seq) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        let mut a = lock(&self.assignment);
        for (id, o) in a.owned.iter_mut() {
            if o.progress.advance(delivered_below, self.whole_batches).is_some() {
                add(&mut tpl, id, &o.progress);
            }
        }
        drop(a);
        self.marks.forget_below(delivered_below);
        tpl
    }
}

/// Records each batch's cut in the group before the batch is sent (`cuts.rs`).
struct KafkaLedger {
    assignment: SharedAssignment,
    consumer: Arc<GroupConsumer>,
}

#[async_trait]
impl BatchLedger for KafkaLedger {
    async fn record(&self, intent: &BatchIntent) -> Result<(), LedgerError> {
        // The batch's partition is folded into its buffer key (`cut_marks::with_source_partition`).
        let Some(id) = source_partition(&intent.partition) else { return Ok(()) };
        let (assignment, consumer) = (self.assignment.clone(), self.consumer.clone());
        let mark = cuts::mark(intent.branch, intent.lane, &intent.partition);
        let seqs = intent.seqs.clone();
        let commit = move || -> Result<(), LedgerError> {
            let mut a = lock(&assignment);
            let Some(owned) = a.owned.get_mut(&id) else { return Ok(()) };
            if !owned.progress.cut(mark, seqs) {
                return Ok(());
            }
            let mut tpl = TopicPartitionList::new();
            add(&mut tpl, &id, &owned.progress);
            // Committed while the lock is held, so commits leave in the order of their lists.
            consumer
                .commit(&tpl, CommitMode::Sync)
                .map_err(|e| LedgerError(format!("cannot commit the batch's cut to the group: {e}")))
        };
        tokio::task::spawn_blocking(commit).await.map_err(|e| LedgerError(e.to_string()))?
    }
}

/// The Kafka partition a buffer key names (`<key>\u{1e}<topic>/<partition>`).
fn source_partition(key: &str) -> Option<PartitionId> {
    let (_, tp) = key.rsplit_once('\u{1e}')?;
    let (topic, partition) = tp.rsplit_once('/')?;
    Some((Arc::from(topic), partition.parse().ok()?))
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        // The thread sees `stopping` within one poll (100 ms); the consumer leaves the group when
        // its last handle (this one or the thread's) is dropped.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl Source for KafkaSource {
    fn delivered_below(&self) -> Seq {
        self.delivered_below
    }

    fn ledger(&self) -> SharedLedger {
        Arc::new(KafkaLedger { assignment: self.assignment.clone(), consumer: self.consumer.clone() })
    }

    fn cut_marks(&self) -> Option<Arc<CutMarks>> {
        Some(self.marks.clone())
    }

    async fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<Record>>, SourceError> {
        loop {
            tokio::select! {
                fetched = self.rx.recv() => {
                    let Some(fetched) = fetched else { return Ok(None) };
                    let records = self.take(fetched);
                    if !records.is_empty() {
                        return Ok(Some(records));
                    }
                }
                end = self.closer.next_batch(max_bytes) => {
                    // Shutdown: stop reading (the group keeps this member until the final commit
                    // and the consumer's close); what was read but not handed over is read again.
                    if end?.is_none() {
                        self.rx.close();
                        return Ok(None);
                    }
                }
            }
        }
    }

    async fn commit(&mut self, delivered_below: Seq, force: bool) -> Result<(), SourceError> {
        self.delivered_below = self.delivered_below.max(delivered_below);
        let tpl = self.advance(delivered_below);
        if tpl.count() > 0 {
            let consumer = self.consumer.clone();
            let pipeline = self.pipeline.clone();
            let metrics = self.metrics.clone();
            let commit = move || {
                let mode = if force { CommitMode::Sync } else { CommitMode::Async };
                if let Err(e) = consumer.commit(&tpl, mode) {
                    metrics.commit_failures.increment(1);
                    tracing::warn!(pipeline = %pipeline, error = %e, "cannot commit offsets; what was delivered since the last commit is read again after a restart or rebalance");
                }
            };
            if force {
                // A synchronous commit waits for the broker: off the async workers.
                let _ = tokio::time::timeout(Duration::from_secs(15), tokio::task::spawn_blocking(commit)).await;
            } else {
                commit();
            }
        }
        self.closer.commit(0, force).await
    }
}
