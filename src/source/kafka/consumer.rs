//! The Kafka consumer: a thread that polls librdkafka and hands records to the source, and the
//! consumer-group callbacks that decide which partitions this daemon reads.
//!
//! librdkafka wants one thread polling; its group callbacks (rebalances, commits, statistics) run
//! inside that poll. So the consumer lives on its own thread and talks to the pipeline's task
//! through a bounded channel. When the channel is full (the destinations are slower than the
//! topic), the thread pauses its partitions and keeps polling: heartbeats and rebalances go on,
//! the member is never thrown out of the group for being slow, and nothing is fetched that could
//! not be held.
//!
//! Ownership of a partition is a *generation*: each assignment gets a new number, and records
//! read under an older one are dropped (not numbered, not committed) rather than mixed with the
//! new reading. On revocation the thread waits up to `revoke_grace` for what it handed over from
//! the partition to be delivered, commits exactly the delivered prefix, and lets the partition go:
//! it finishes or abandons, never half-commits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use tokio::sync::mpsc;

use super::config::Starting;
use super::cuts::{decode, Progress};
use super::KafkaMetrics;
use crate::buffer::cut_marks::CutMark;

/// A partition: (topic, partition number).
pub(super) type PartitionId = (Arc<str>, i32);

/// Records handed over per message, at most (and at most [`MAX_FETCHED_BYTES`]).
const MAX_FETCHED_RECORDS: usize = 5_000;
const MAX_FETCHED_BYTES: usize = 4 << 20;
/// How long one poll waits when nothing is pending.
const POLL: Duration = Duration::from_millis(100);
/// How often offsets whose commit failed (the broker was away) are committed again.
const RECOMMIT_EVERY: Duration = Duration::from_secs(5);

/// One record as read, before the source numbers it.
pub(super) struct FetchedRecord {
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<Bytes>,
    pub headers: Vec<(String, Bytes)>,
    pub data: Bytes,
    /// Buffers to cut after this record (it ended a batch of an earlier reading).
    pub marks: Vec<CutMark>,
}

/// Records of one partition, read under one generation of its assignment, in offset order.
pub(super) struct Fetched {
    pub partition: PartitionId,
    pub generation: u64,
    pub records: Vec<FetchedRecord>,
}

/// What this daemon holds of one partition.
pub(super) struct Owned {
    pub generation: u64,
    /// The offset after the last record handed to the pipeline.
    pub read_to: Option<i64>,
    /// What is delivered and committed, and the batches cut (`cuts.rs`).
    pub progress: Progress,
    /// AT_TIMESTAMP in a partition the group had no offset for: records older are skipped.
    pub skip_before_ms: Option<i64>,
}

/// What the consumer thread, its callbacks and the source share.
#[derive(Default)]
pub(super) struct Assignment {
    pub owned: HashMap<PartitionId, Owned>,
    next_generation: u64,
    /// A commit failed: commit every delivered offset again.
    pub recommit: bool,
}

pub(super) type SharedAssignment = Arc<Mutex<Assignment>>;

pub(super) fn lock(a: &SharedAssignment) -> MutexGuard<'_, Assignment> {
    a.lock().unwrap_or_else(|p| p.into_inner())
}

/// The group callbacks (they run inside `poll`, on the consumer thread).
pub(super) struct GroupContext {
    pub assignment: SharedAssignment,
    pub starting: Starting,
    pub revoke_grace: Duration,
    /// Set when the source is gone: a revocation then lets go at once.
    pub stopping: Arc<AtomicBool>,
    /// Asks the pipeline to cut its buffers when partitions are being revoked.
    pub marks: Arc<crate::buffer::cut_marks::CutMarks>,
    /// Where `/ready` learns that the brokers cannot be reached (or refuse the credentials).
    pub status: Arc<crate::status::PipelineStatus>,
    /// The bootstrap list, for the reason `/ready` gives.
    pub brokers: String,
    pub metrics: KafkaMetrics,
    pub pipeline: String,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let pipeline = &self.pipeline;
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::warn!(pipeline = %pipeline, facility, "kafka: {message}")
            }
            RDKafkaLogLevel::Warning | RDKafkaLogLevel::Notice => {
                tracing::info!(pipeline = %pipeline, facility, "kafka: {message}")
            }
            RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => {
                tracing::debug!(pipeline = %pipeline, facility, "kafka: {message}")
            }
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::RDKafkaErrorCode as Code;
        match error.rdkafka_error_code() {
            Some(Code::Authentication | Code::SaslAuthenticationFailed) => {
                self.status.set_source_problem(Some(format!(
                    "the Kafka brokers ({}) refuse sluice's credentials",
                    self.brokers
                )));
                tracing::warn!(pipeline = %self.pipeline, error = %error, "kafka consumer: {reason}");
            }
            // Already in librdkafka's own log line (`log` above); whether the cluster is
            // reachable at all is decided from the statistics.
            Some(Code::BrokerTransportFailure | Code::AllBrokersDown) => {
                tracing::debug!(pipeline = %self.pipeline, error = %error, "kafka consumer: {reason}")
            }
            _ => {
                tracing::warn!(pipeline = %self.pipeline, error = %error, "kafka consumer: {reason}; librdkafka retries by itself")
            }
        }
    }

    fn stats(&self, stats: Statistics) {
        // Reachable when a broker is up (after a restart, librdkafka may only have its bootstrap
        // entries: those count too).
        if stats.brokers.values().any(|b| b.state == "UP") {
            self.status.set_source_problem(None);
        } else if !stats.brokers.is_empty() {
            self.status.set_source_problem(Some(format!("cannot reach any Kafka broker of {}", self.brokers)));
        }
        // consumer_lag: the partition's end minus the committed offset, i.e. records not yet
        // delivered (librdkafka reports -1 until it knows both).
        for (topic, t) in &stats.topics {
            for (number, p) in &t.partitions {
                if *number >= 0 && p.consumer_lag >= 0 {
                    self.metrics.lag(topic, *number).set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else { return };
        let ids: Vec<PartitionId> =
            tpl.elements().iter().map(|e| (Arc::<str>::from(e.topic()), e.partition())).collect();
        let deadline = Instant::now() + self.revoke_grace;
        let lost = consumer.assignment_lost();
        // Finish: have the buffers cut now (not at their interval), and wait until everything
        // handed over from these partitions is delivered.
        if !lost {
            self.marks.request_flush();
        }
        while !lost && !self.stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
            let a = lock(&self.assignment);
            let pending = ids.iter().any(|id| a.owned.get(id).is_some_and(|o| o.read_to > o.progress.delivered_to));
            drop(a);
            if !pending {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Commit exactly the delivered prefix, then let go.
        let mut commit = TopicPartitionList::new();
        let mut abandoned = Vec::new();
        let mut a = lock(&self.assignment);
        for id in &ids {
            if let Some(o) = a.owned.remove(id) {
                add(&mut commit, id, &o.progress);
                if o.read_to > o.progress.delivered_to {
                    abandoned.push(format!("{}/{}", id.0, id.1));
                }
            }
        }
        let held = a.owned.len();
        drop(a);
        if commit.count() > 0 && !lost {
            if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                self.metrics.commit_failures.increment(1);
                tracing::warn!(pipeline = %self.pipeline, error = %e, "cannot commit the offsets of partitions being revoked; their next owner reads what was delivered since the last commit again");
            }
        }
        self.metrics.partitions.set(held as f64);
        if abandoned.is_empty() {
            tracing::info!(pipeline = %self.pipeline, partitions = ids.len(), "partitions revoked after everything read from them was delivered and committed");
        } else {
            tracing::warn!(pipeline = %self.pipeline, partitions = %abandoned.join(","), lost, "partitions revoked with records still being delivered: their offsets stay uncommitted, so the next owner reads them again (under the same object names)");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.metrics.rebalances.increment(1);
                // The group's offsets: where AT_TIMESTAMP applies (no offset yet), and the cuts
                // of batches an earlier reading sent (`cuts.rs`).
                let committed = consumer.committed_offsets((*tpl).clone(), Duration::from_secs(10));
                if let Err(e) = &committed {
                    tracing::warn!(pipeline = %self.pipeline, error = %e, "cannot read the group's committed offsets; batches read again may be cut differently (and AT_TIMESTAMP applies to every partition assigned now)");
                }
                let mut a = lock(&self.assignment);
                for e in tpl.elements() {
                    let id: PartitionId = (Arc::from(e.topic()), e.partition());
                    let (has_offset, metadata) = match &committed {
                        Ok(c) => (
                            c.find_partition(e.topic(), e.partition())
                                .is_some_and(|c| matches!(c.offset(), Offset::Offset(_))),
                            metadata(c, e.topic(), e.partition()),
                        ),
                        Err(_) => (false, Vec::new()),
                    };
                    a.next_generation += 1;
                    let skip_before_ms = match self.starting {
                        Starting::AtTimestamp(ms) if !has_offset => Some(ms),
                        _ => None,
                    };
                    let progress = Progress::inherit(decode(&metadata));
                    if progress.replaying() {
                        tracing::info!(pipeline = %self.pipeline, topic = %id.0, partition = id.1, batches = progress.cuts.len(), "re-cutting the batches an earlier reading sent, so they overwrite their copies");
                    }
                    let owned = Owned { generation: a.next_generation, read_to: None, progress, skip_before_ms };
                    a.owned.insert(id, owned);
                }
                self.metrics.partitions.set(a.owned.len() as f64);
                tracing::info!(pipeline = %self.pipeline, assigned = tpl.count(), holding = a.owned.len(), "partitions assigned by the consumer group");
            }
            Rebalance::Error(e) => {
                tracing::warn!(pipeline = %self.pipeline, error = %e, "the consumer group's rebalance failed; librdkafka rejoins by itself")
            }
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            self.metrics.commit_failures.increment(1);
            lock(&self.assignment).recommit = true;
            tracing::warn!(pipeline = %self.pipeline, error = %e, "cannot commit offsets; retrying in a few seconds (until then a restart reads the delivered records again)");
        }
    }
}

pub(super) type GroupConsumer = BaseConsumer<GroupContext>;

/// The consumer thread's loop: poll, group records per partition, hand them over.
pub(super) struct Poller {
    pub consumer: Arc<GroupConsumer>,
    pub tx: mpsc::Sender<Vec<Fetched>>,
    pub assignment: SharedAssignment,
    pub stopping: Arc<AtomicBool>,
    pub pipeline: String,
}

impl Poller {
    pub fn run(self) {
        let mut pending: Vec<Fetched> = Vec::new();
        let (mut records, mut bytes) = (0usize, 0usize);
        let mut last_recommit = Instant::now();
        let mut last_error: Option<Instant> = None;
        while !self.stopping.load(Ordering::Relaxed) {
            let wait = if records > 0 { Duration::ZERO } else { POLL };
            match self.consumer.poll(wait) {
                Some(Ok(m)) => {
                    if let Some(size) = self.keep(&m, &mut pending) {
                        records += 1;
                        bytes += size;
                    }
                    if records < MAX_FETCHED_RECORDS && bytes < MAX_FETCHED_BYTES {
                        continue;
                    }
                }
                // Broker away, topic missing ...: librdkafka retries; say so now and then.
                Some(Err(e)) if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) => {
                    last_error = Some(Instant::now());
                    tracing::warn!(pipeline = %self.pipeline, error = %e, "kafka consumer error; still trying");
                }
                Some(Err(_)) => {}
                None => {}
            }
            if !pending.is_empty() && !self.hand_over(std::mem::take(&mut pending)) {
                break;
            }
            (records, bytes) = (0, 0);
            if last_recommit.elapsed() >= RECOMMIT_EVERY {
                last_recommit = Instant::now();
                self.recommit();
            }
        }
    }

    /// Adds `m` to its partition's group if this daemon owns the partition; its size if kept.
    fn keep(&self, m: &rdkafka::message::BorrowedMessage<'_>, pending: &mut Vec<Fetched>) -> Option<usize> {
        let timestamp_ms = m.timestamp().to_millis();
        let (generation, topic, marks) = {
            let a = lock(&self.assignment);
            let (id, owned) = a.owned.get_key_value(&(Arc::from(m.topic()), m.partition()))?;
            if let (Some(before), Some(ts)) = (owned.skip_before_ms, timestamp_ms) {
                if ts < before {
                    return None;
                }
            }
            let marks = if owned.progress.replaying() { owned.progress.marks_at(m.offset()) } else { Vec::new() };
            (owned.generation, id.0.clone(), marks)
        };
        let record = FetchedRecord {
            offset: m.offset(),
            timestamp_ms,
            key: m.key().map(Bytes::copy_from_slice),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.map(Bytes::copy_from_slice).unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default(),
            data: m.payload().map(Bytes::copy_from_slice).unwrap_or_default(),
            marks,
        };
        let size = record.data.len() + record.key.as_ref().map_or(0, |k| k.len());
        match pending.iter_mut().find(|f| *f.partition.0 == *topic && f.partition.1 == m.partition()) {
            Some(f) if f.generation == generation => f.records.push(record),
            _ => pending.push(Fetched { partition: (topic, m.partition()), generation, records: vec![record] }),
        }
        Some(size)
    }

    /// Sends `batch` to the source, pausing the partitions while the channel is full. False when
    /// the source is gone.
    fn hand_over(&self, batch: Vec<Fetched>) -> bool {
        let mut batch = batch;
        let mut paused: Option<TopicPartitionList> = None;
        loop {
            // What is handed over is counted as read once sent: a revocation (which runs inside
            // `poll`, on this thread) then waits for it to be delivered.
            let read: Vec<(PartitionId, u64, i64)> = batch
                .iter()
                .filter_map(|f| Some((f.partition.clone(), f.generation, f.records.last()?.offset + 1)))
                .collect();
            match self.tx.try_send(batch) {
                Ok(()) => {
                    let mut a = lock(&self.assignment);
                    for (id, generation, to) in read {
                        if let Some(o) = a.owned.get_mut(&id).filter(|o| o.generation == generation) {
                            o.read_to = o.read_to.max(Some(to));
                        }
                    }
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    batch = back;
                    if paused.is_none() {
                        let assigned = self.consumer.assignment().unwrap_or_default();
                        let _ = self.consumer.pause(&assigned);
                        paused = Some(assigned);
                    }
                    if self.stopping.load(Ordering::Relaxed) {
                        return false;
                    }
                    // Keeps the group session alive; paused partitions fetch nothing, and a record
                    // fetched before the pause is kept in order after this batch.
                    if let Some(Ok(m)) = self.consumer.poll(POLL) {
                        let mut late = Vec::new();
                        if self.keep(&m, &mut late).is_some() {
                            batch.extend(late);
                        }
                    }
                }
            }
        }
        if let Some(p) = paused {
            // What the group took away meanwhile is not resumed (and not assigned any more).
            let assigned = self.consumer.assignment().unwrap_or_default();
            let still: Vec<_> = p
                .elements()
                .iter()
                .filter(|e| assigned.find_partition(e.topic(), e.partition()).is_some())
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            let mut resume = TopicPartitionList::new();
            for (t, p) in &still {
                resume.add_partition(t, *p);
            }
            let _ = self.consumer.resume(&resume);
        }
        true
    }

    /// Commits every delivered offset again after a failed commit.
    fn recommit(&self) {
        let mut a = lock(&self.assignment);
        if !std::mem::take(&mut a.recommit) {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (id, o) in &a.owned {
            add(&mut tpl, id, &o.progress);
        }
        drop(a);
        if tpl.count() > 0 {
            let _ = self.consumer.commit(&tpl, CommitMode::Async);
        }
    }
}

/// Adds the partition's commit (offset and cut list) to `tpl`, if it has read anything.
pub(super) fn add(tpl: &mut TopicPartitionList, id: &PartitionId, progress: &Progress) {
    if let Some((offset, metadata)) = progress.commit() {
        if tpl.add_partition_offset(&id.0, id.1, Offset::Offset(offset)).is_ok() {
            if let Some(mut e) = tpl.find_partition(&id.0, id.1) {
                e.set_metadata(metadata);
            }
        }
    }
}

/// A partition's commit metadata as bytes. (rdkafka's own accessor insists on UTF-8 and panics
/// otherwise; metadata is whatever any client of the group committed.)
fn metadata(tpl: &TopicPartitionList, topic: &str, partition: i32) -> Vec<u8> {
    // SAFETY: `tpl` owns a valid librdkafka list of `cnt` elements for as long as it lives, and
    // each element's metadata is `metadata_size` bytes at `metadata` (or null).
    unsafe {
        let list = &*tpl.ptr();
        let elems = std::slice::from_raw_parts(list.elems, list.cnt.max(0) as usize);
        for e in elems {
            if e.partition != partition || e.topic.is_null() {
                continue;
            }
            if std::ffi::CStr::from_ptr(e.topic).to_bytes() != topic.as_bytes() {
                continue;
            }
            if e.metadata.is_null() || e.metadata_size == 0 {
                return Vec::new();
            }
            return std::slice::from_raw_parts(e.metadata as *const u8, e.metadata_size).to_vec();
        }
    }
    Vec::new()
}
