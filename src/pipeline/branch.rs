//! One destination's side of a pipeline: from processed records to delivered batches.
//!
//! A pipeline has one [`Branch`] per destination (`destinations:` fans out; `destination:` is one
//! branch). Processing runs once, in the pipeline's loop; each branch then keeps what it needs on
//! its own: its `when:` condition, partitioner, buffers, upload permits, retries, backup and error
//! output, and its own [`DeliveryTracker`]. A source record is delivered when every branch has
//! finished it, so the source's watermark is the lowest of the branches' (`Runner::watermark`): the
//! WAL, a file offset or a shard checkpoint keeps a record until every destination has it.
//!
//! Batch intents carry the branch's index (`BatchIntent::branch`), and every name a branch derives
//! from a batch is salted with its route's name (`NameScope::for_route`), so two destinations writing
//! one bucket never overwrite each other, and a replay after `kill -9` re-cuts each branch's batches
//! under the names they had.

use super::*;

/// A destination's state between the processors and its uploads.
pub(super) struct Branch {
    /// Its position in `destinations:` (0 for a pipeline with one destination).
    pub(super) index: u8,
    /// `when:`: records go here only when it holds.
    pub(super) when: Option<Arc<crate::process::route::Condition>>,
    pub(super) delivery: Arc<Delivery>,
    pub(super) partitioner: Partitioner,
    pub(super) max_partitions: Option<usize>,
    /// One buffer per data partition, and one per error-output type.
    pub(super) data: Batcher,
    pub(super) errors: Batcher,
    pub(super) tracker: DeliveryTracker,
    pub(super) uploads: Arc<Semaphore>,
    pub(super) done_tx: mpsc::UnboundedSender<Done>,
    /// Data partitions with objects being uploaded (they count as active partitions).
    pub(super) in_flight: HashMap<PartitionKey, usize, foldhash::fast::RandomState>,
    pub(super) uploads_in_flight: usize,
    /// Bytes read and not yet delivered: buffered or uploading.
    pub(super) in_memory: usize,
    /// Reading pauses while `in_memory` is at this bound (records wait in the source instead).
    pub(super) max_in_memory: usize,
    /// Buffers together may hold this much before the largest is flushed early.
    pub(super) buffer_budget: usize,
    pub(super) partition_limit_hit: bool,
    /// Where batch intents are recorded before their first send.
    pub(super) ledger: SharedLedger,
    /// Where a re-read stream's batches must be cut (`buffer::cut_marks`); `None` for sources
    /// that need none.
    pub(super) cut_marks: Option<Arc<CutMarks>>,
    /// Buffer keys with the source partition folded in (Kafka records).
    pub(super) source_keys: SourcePartitionKeys,
    /// Batches recorded before a crash, re-cut while the backlog is replayed.
    pub(super) replay: ReplayPlan,
    pub(super) taps: Arc<tap::Taps>,
    /// A fan-out destination's backlog while it is behind (`buffer::spill`); `None` with one
    /// destination, whose backlog is the source itself.
    pub(super) spill: Option<crate::buffer::spill::Spill>,
    /// How much the spill may hold before reading waits for this destination too.
    pub(super) spill_limit: u64,
    /// Since when `in_memory` has been at its bound without a break.
    pub(super) full_since: Option<Instant>,
    /// After the spill could not be read back: not before this is it tried again.
    pub(super) catch_up_after: Option<Instant>,
}

/// A destination at its memory bound holds reading back this long before it starts spilling: a
/// destination that is only slower for a moment costs a short wait, not a second processing of
/// everything it spills; one that is down or much slower spills and lets the others go on.
const SPILL_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

impl Branch {
    /// Whether records read now go to the spill: it already holds some (order), or memory is full.
    pub(super) fn spills(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| !s.is_empty() || self.full_for_long())
    }

    fn full_for_long(&self) -> bool {
        self.in_memory >= self.max_in_memory && self.full_since.is_some_and(|t| t.elapsed() >= SPILL_AFTER)
    }

    /// Notes whether memory is at its bound (called whenever `in_memory` may have changed, and
    /// every second).
    pub(super) fn note_fullness(&mut self) {
        self.full_since = (self.in_memory >= self.max_in_memory).then(|| self.full_since.unwrap_or_else(Instant::now));
    }

    /// Whether the source may be read for this branch: it has memory to spare, or a spill with room.
    pub(super) fn has_room(&self) -> bool {
        match &self.spill {
            None => self.in_memory < self.max_in_memory,
            Some(s) => {
                if s.overflow_bytes() > 0 {
                    self.in_memory + s.overflow_bytes() < self.max_in_memory
                } else if s.is_empty() {
                    self.in_memory < self.max_in_memory || self.full_for_long()
                } else {
                    s.unread_bytes() < self.spill_limit
                }
            }
        }
    }

    /// Whether the branch is behind and has room to read its spill back.
    pub(super) fn can_catch_up(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| !s.is_empty())
            && self.in_memory < self.max_in_memory
            && self.catch_up_after.is_none_or(|t| Instant::now() >= t)
    }

    /// Keeps a read for later; `false` when the branch has no spill.
    pub(super) fn spill_read(&mut self, records: &[Record]) -> bool {
        let Some(spill) = &mut self.spill else { return false };
        if let Err(e) = spill.push(records) {
            tracing::warn!(pipeline = %self.delivery.spec.name, destination = self.index, error = %e, "cannot write the destination's backlog to disk; holding it in memory (reading waits until it drains)");
        }
        true
    }

    /// Reads back about `max_bytes` of the spill. A read that fails takes nothing and is tried
    /// again in 5 s; meanwhile the backlog keeps growing and the destination's watermark stays
    /// below it, so the source keeps its records (a restart delivers them in the worst case).
    pub(super) fn read_spill(&mut self, max_bytes: usize) -> Vec<Record> {
        let Some(spill) = &mut self.spill else { return Vec::new() };
        match spill.read(max_bytes) {
            Ok(records) => {
                self.catch_up_after = None;
                records
            }
            Err(e) => {
                tracing::warn!(pipeline = %self.delivery.spec.name, destination = self.index, error = %e, "cannot read the destination's backlog back; trying again in 5 s");
                self.catch_up_after = Some(Instant::now() + std::time::Duration::from_secs(5));
                Vec::new()
            }
        }
    }

    /// Everything below is delivered by this branch (its spill holds what it has not yet seen).
    pub(super) fn delivered_below(&self) -> Seq {
        let tracked = self.tracker.delivered_below();
        self.spill.as_ref().and_then(|s| s.first_unread()).map_or(tracked, |first| tracked.min(first))
    }

    /// Whether this branch can take records as they are read, with nothing to work out: no
    /// condition, no partitions, no replay (the caller also checks there are no processors).
    pub(super) fn takes_records_as_read(&self) -> bool {
        self.when.is_none() && self.replay.is_empty() && !self.partitioner.is_partitioned() && self.cut_marks.is_none()
    }

    /// The fast path: each record is exactly one output, all in one buffer.
    pub(super) fn push_as_read(&mut self, records: Vec<Record>, now: Instant) {
        self.tracker.on_read(&records);
        let root = PartitionKey::from("");
        for record in records {
            let weight = self.delivery.format.encoder.weight(&record);
            self.in_memory += weight;
            if let Some(full) = self.data.push(&root, record, weight, now) {
                self.dispatch(Lane::Data, full, false);
            }
        }
    }

    /// Places this branch's outputs of one read: `items` it takes (its condition already applied),
    /// `failed` records for its error output, and every source record of the read (`sources`), so
    /// that those with no output here count as done for this branch.
    pub(super) fn place(&mut self, items: Vec<Item>, mut failed: Vec<Failed>, sources: &[(Seq, i64)], now: Instant) {
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
                Ok(key) => {
                    let key = self.source_keys.get(&key, &item.record);
                    keyed.push((item, key))
                }
                Err((code, message)) => {
                    failed.push(Failed::new(item.record, ErrorOutputType::ProcessingFailed, code, message))
                }
            }
        }
        if own_copies {
            partition::copy_per_partition(&mut keyed);
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
                    if self.cut_marks.as_ref().is_some_and(|m| m.cut_after(seq, self.index, Lane::Data, &key)) {
                        if let Some(cut) = self.data.take_partition(&key) {
                            self.dispatch(Lane::Data, cut, false);
                        }
                    }
                }
            }
            self.in_memory += weight;
            *outputs.entry(seq).or_default() += 1;
        }
        let ending = now_ms();
        for f in failed {
            let seq = f.record.seq;
            let lane_key = self.source_keys.get(&PartitionKey::from(f.kind.as_str()), &f.record);
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
                    if self.cut_marks.as_ref().is_some_and(|m| m.cut_after(seq, self.index, Lane::Errors, &lane_key)) {
                        if let Some(cut) = self.errors.take_partition(&lane_key) {
                            self.dispatch(Lane::Errors, cut, false);
                        }
                    }
                }
            }
            self.in_memory += weight;
            *outputs.entry(seq).or_default() += 1;
        }
        for &(seq, arrival_ms) in sources {
            self.tracker.add(seq, arrival_ms, outputs.remove(&seq).unwrap_or(0));
        }
    }

    /// After every output of a read is placed: cuts full buffers, sends recorded batches the read
    /// completed, keeps buffers under their budget, and moves the watermark past dropped records.
    pub(super) fn after_read(&mut self, read_through: Option<Seq>) {
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
        self.tracker.advance();
        self.note_fullness();
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
            branch: self.index,
            lane,
            partition: batch.partition.clone(),
            seqs: batch.seqs.normalized(),
        });
        let (delivery, uploads, done_tx) = (self.delivery.clone(), self.uploads.clone(), self.done_tx.clone());
        let ledger = self.ledger.clone();
        let branch = self.index;
        let tapped = (error_type.is_none() && self.taps.wants(Stage::Delivered))
            .then(|| (self.taps.clone(), batch.records.clone(), partition_text(batch.keys.as_deref())));
        tokio::spawn(async move {
            if let Some(intent) = intent {
                if let Err(e) = ledger.record(&intent).await {
                    tracing::warn!(pipeline = %delivery.spec.name, error = %e, "sending a batch whose identity could not be recorded; a crash before it is delivered could repeat it");
                }
            }
            let Ok(_permit) = uploads.acquire_owned().await else { return };
            let mut done = delivery.deliver(batch, error_type).await;
            done.branch = branch;
            if let Some((taps, records, partition)) = tapped {
                taps.offer(Stage::Delivered, &records, |r| tap_event(Stage::Delivered, r, partition.clone()));
            }
            let _ = done_tx.send(done);
        });
    }

    pub(super) fn on_done(&mut self, done: Done) {
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
        self.tracker.on_done(&done.seqs);
        self.note_fullness();
    }

    pub(super) fn flush_due(&mut self, now: Instant) {
        for b in self.data.due(now) {
            self.dispatch(Lane::Data, b, false);
        }
        for b in self.errors.due(now) {
            self.dispatch(Lane::Errors, b, false);
        }
    }

    pub(super) fn flush_all(&mut self) {
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

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        match (self.data.next_deadline(), self.errors.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn idle(&self) -> bool {
        self.uploads_in_flight == 0
            && self.data.is_empty()
            && self.errors.is_empty()
            && self.spill.as_ref().is_none_or(|s| s.is_empty())
    }

    /// Publishes the branch's gauges and progress; returns (idle with nothing pending, oldest
    /// undelivered arrival) for the pipeline's own status.
    pub(super) fn report(&mut self) -> (bool, Option<i64>) {
        self.note_fullness();
        let m = &self.delivery.metrics;
        let oldest = self.tracker.oldest_pending_arrival_ms();
        let age = oldest.map_or(0.0, |t| (now_ms() - t).max(0) as f64 / 1000.0);
        m.data_freshness_seconds.set(age);
        m.buffered_bytes.set(self.in_memory as f64);
        m.buffer_limit_bytes.set((self.buffer_budget * 2) as f64);
        if let Some(spill) = &self.spill {
            m.spill_bytes.set((spill.unread_bytes() + spill.overflow_bytes() as u64) as f64);
        }
        let behind = self.spill.as_ref().is_some_and(|s| !s.is_empty());
        let settled = self.idle() && self.tracker.pending_records() == 0 && !behind;
        self.delivery.status.set_progress(settled, oldest);
        if self.partitioner.is_partitioned() {
            m.partition_count.set(self.active_partitions() as f64);
            m.partition_count_exceeded.set(if self.partition_limit_hit { 1.0 } else { 0.0 });
        }
        (settled, oldest)
    }
}

fn error_kind(partition: &PartitionKey) -> Option<ErrorOutputType> {
    [ErrorOutputType::ProcessingFailed, ErrorOutputType::DecompressionFailed, ErrorOutputType::FormatConversionFailed]
        .into_iter()
        .find(|k| k.as_str() == without_source_partition(partition))
}
