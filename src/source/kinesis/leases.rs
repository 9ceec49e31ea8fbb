//! Several daemons on one stream: shards shared through a DynamoDB lease table, in the KCL's style
//! (`lease_table.rs` has the item shape).
//!
//! Every tick (a third of the lease duration) this daemon:
//! 1. adds leases for shards that have none (every `LIST_SHARDS_EVERY`);
//! 2. reads the whole table;
//! 3. renews each lease it holds, writing the delivered checkpoint in the same conditional update
//!    (`leaseOwner = me`); a refused renewal means the lease was taken, and its reader is stopped;
//!    a finished shard is written `SHARD_END` and let go; a shard handed back is given to the
//!    daemon that asked for it;
//! 4. stops reading a shard another daemon asked for (`handoffTo`): the lease is handed over once
//!    everything read from it is delivered, so rebalancing repeats nothing;
//! 5. takes its fair share, ceil(unfinished leases / live daemons): free leases first, then leases
//!    whose counter has not moved for a lease duration (a dead owner), then, at most one per tick,
//!    asks the busiest daemon for one;
//! 6. starts a reader for each lease it holds whose parent shards are finished.
//!
//! Two daemons never read a shard at once: a reader only hands over pages while its lease is
//! surely held (two thirds of the lease duration after the last renewal was sent, `ReadPermit`),
//! and another daemon takes a lease only after watching its counter stand still for a whole
//! lease duration. After a crash the next holder starts at the last checkpoint, so what the dead
//! daemon delivered after it is delivered again (the README gives the bound); a SIGTERM writes the
//! final checkpoint and frees every lease, so nothing is repeated.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::checkpoint::Checkpoint;
use super::client::KinesisClient;
use super::config::{LeaseSpec, StartingPosition};
use super::lease_table::{n, s, Lease, LeaseTable, Written, SHARD_END};
use super::reader::ReadPermit;
use super::{ReaderSpawner, LIST_SHARDS_EVERY};

/// What the source tells the coordinator at shutdown.
pub enum LeaseControl {
    /// The pipeline is draining: stop reading and taking leases, keep renewing those held.
    StopReading,
    /// The final checkpoint is in memory: write it and free every lease.
    Release(oneshot::Sender<()>),
}

/// A lease this daemon holds.
struct Held {
    generation: u64,
    permit: Arc<ReadPermit>,
    reader: Option<JoinHandle<()>>,
    /// Asked for by this daemon: reading has stopped, the lease goes there once delivered.
    handing_to: Option<String>,
    /// The checkpoint last written to the table.
    written: Option<String>,
}

pub struct LeaseCoordinator {
    pub table: LeaseTable,
    pub spec: LeaseSpec,
    pub client: Arc<KinesisClient>,
    pub stream: String,
    pub starting_position: StartingPosition,
    pub spawner: ReaderSpawner,
    pub checkpoint: Arc<Mutex<Checkpoint>>,
    pub pipeline: String,
    held: BTreeMap<String, Held>,
    /// Each lease's counter and since when it has stood still, as this daemon saw it.
    seen: HashMap<String, (u64, Instant)>,
    shards_listed: Option<HashSet<String>>,
    /// Unfinished leases of shards gone from the stream, already warned about.
    warned_trimmed: HashSet<String>,
    last_list: Option<Instant>,
    generation: u64,
    reading: bool,
}

impl LeaseCoordinator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        table: LeaseTable,
        spec: LeaseSpec,
        client: Arc<KinesisClient>,
        stream: String,
        starting_position: StartingPosition,
        spawner: ReaderSpawner,
        checkpoint: Arc<Mutex<Checkpoint>>,
        pipeline: String,
    ) -> Self {
        Self {
            table,
            spec,
            client,
            stream,
            starting_position,
            spawner,
            checkpoint,
            pipeline,
            held: BTreeMap::new(),
            seen: HashMap::new(),
            shards_listed: None,
            warned_trimmed: HashSet::new(),
            last_list: None,
            generation: 0,
            reading: true,
        }
    }

    fn me(&self) -> &str {
        &self.spec.owner
    }

    /// How long after a renewal was sent its reader may go on reading.
    fn permit_until(&self, sent: Instant) -> Instant {
        sent + self.spec.lease_duration * 2 / 3
    }

    pub async fn run(mut self, mut control: mpsc::Receiver<LeaseControl>) {
        let mut backoff = Duration::from_secs(1);
        while let Err(e) = self.table.ensure().await {
            tracing::warn!(pipeline = %self.pipeline, table = %self.table.name, error = %e, "cannot open the lease table; retrying");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                c = control.recv() => match c {
                    Some(LeaseControl::Release(done)) => {
                        let _ = done.send(());
                        return;
                    }
                    Some(LeaseControl::StopReading) => {}
                    None => return,
                },
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
        let tick = (self.spec.lease_duration / 3).max(Duration::from_millis(200));
        loop {
            if let Err(e) = self.round().await {
                tracing::warn!(pipeline = %self.pipeline, table = %self.table.name, error = %e, "lease table call failed; retrying next round");
            }
            self.spawner.metrics.leases_held.set(self.held.len() as f64);
            let reading = self.held.values().filter(|h| h.reader.as_ref().is_some_and(|r| !r.is_finished())).count();
            self.spawner.metrics.shards_reading.set(reading as f64);
            let deadline = tokio::time::Instant::now() + tick;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    c = control.recv() => match c {
                        Some(LeaseControl::StopReading) => self.stop_reading(),
                        Some(LeaseControl::Release(done)) => {
                            self.release_all().await;
                            let _ = done.send(());
                            return;
                        }
                        None => return,
                    },
                }
            }
        }
    }

    fn stop_reading(&mut self) {
        self.reading = false;
        for held in self.held.values_mut() {
            if let Some(r) = held.reader.take() {
                r.abort();
            }
        }
    }

    async fn round(&mut self) -> Result<(), crate::aws::request::AwsCallError> {
        if self.reading && self.last_list.is_none_or(|t| t.elapsed() >= LIST_SHARDS_EVERY) {
            self.add_missing_leases().await?;
        }
        let leases = self.table.scan().await?;
        let now = Instant::now();
        for lease in &leases {
            match self.seen.get(&lease.shard) {
                Some((counter, _)) if *counter == lease.counter => {}
                _ => {
                    self.seen.insert(lease.shard.clone(), (lease.counter, now));
                }
            }
        }
        self.renew().await;
        if !self.reading {
            return Ok(());
        }
        self.answer_requests(&leases);
        self.adopt_own(&leases).await?;
        self.take_fair_share(&leases).await?;
        self.start_readers(&leases);
        Ok(())
    }

    /// Adds a free lease for every shard of the stream that has none.
    async fn add_missing_leases(&mut self) -> Result<(), crate::aws::request::AwsCallError> {
        let shards = match self.client.list_shards(&self.stream).await {
            Ok(s) => s,
            Err(e) => {
                if matches!(e, super::client::KinesisError::Throttled(_)) {
                    self.spawner.metrics.throttled_list_shards.increment(1);
                }
                tracing::warn!(pipeline = %self.pipeline, stream = %self.stream, error = %e, "cannot list the stream's shards; retrying");
                return Ok(());
            }
        };
        self.last_list = Some(Instant::now());
        let listed: HashSet<String> = shards.iter().map(|s| s.shard_id.clone()).collect();
        let leases = self.table.scan().await?;
        self.delete_trimmed(&leases, &listed).await?;
        let existing: HashSet<String> = leases.into_iter().map(|l| l.shard).collect();
        for shard in &shards {
            if existing.contains(&shard.shard_id) {
                continue;
            }
            let parents: Vec<String> = [&shard.parent_shard_id, &shard.adjacent_parent_shard_id]
                .into_iter()
                .flatten()
                .filter(|p| listed.contains(*p) || existing.contains(*p))
                .cloned()
                .collect();
            // A child is read from its start; a root shard where the config says, with LATEST
            // pinned to when this pipeline first started.
            let start = if !parents.is_empty() {
                "TRIM_HORIZON".to_string()
            } else {
                match self.starting_position {
                    StartingPosition::TrimHorizon => "TRIM_HORIZON".to_string(),
                    StartingPosition::AtTimestamp(ms) => format!("AT_TIMESTAMP:{ms}"),
                    StartingPosition::Latest => format!("AT_TIMESTAMP:{}", self.spawner.delivery_start_ms),
                }
            };
            if self.table.create(&shard.shard_id, &start, &parents).await? == Written::Done {
                tracing::info!(pipeline = %self.pipeline, shard = %shard.shard_id, "added a lease");
            }
        }
        self.shards_listed = Some(listed);
        Ok(())
    }

    /// Deletes the leases of shards that are finished and no longer in the stream (trimmed after
    /// the retention period), as the KCL's lease cleanup does, so the table does not grow with
    /// every reshard. Their children need nothing from them: a parent that has neither a lease nor
    /// a place in the stream counts as finished (`start_readers`). A shard trimmed before it was
    /// read to its end keeps its lease, and a warning says its records expired unread.
    async fn delete_trimmed(
        &mut self,
        leases: &[Lease],
        listed: &HashSet<String>,
    ) -> Result<(), crate::aws::request::AwsCallError> {
        for lease in leases.iter().filter(|l| !listed.contains(&l.shard)) {
            if !lease.finished() {
                if self.warned_trimmed.insert(lease.shard.clone()) {
                    tracing::warn!(pipeline = %self.pipeline, shard = %lease.shard, "the shard left the stream before it was read to its end; records past its checkpoint expired unread");
                }
                continue;
            }
            if self.table.delete_finished(&lease.shard).await? == Written::Done {
                tracing::info!(pipeline = %self.pipeline, shard = %lease.shard, "the shard was trimmed from the stream; its finished lease is deleted");
            }
        }
        Ok(())
    }

    /// Renews every lease held, with its checkpoint; lets go of finished ones and hands over
    /// those asked for once delivered.
    async fn renew(&mut self) {
        let shards: Vec<String> = self.held.keys().cloned().collect();
        for shard in shards {
            let (sequence, finished, handed_back) = {
                let c = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
                match c.shards.get(&shard) {
                    Some(e) if self.held.get(&shard).is_some_and(|h| h.generation == e.generation) => {
                        (e.sequence.clone(), e.finished, e.handed_back)
                    }
                    _ => (None, false, false),
                }
            };
            let Some(held) = self.held.get(&shard) else { continue };
            let sent = Instant::now();
            let me = s(self.me());
            let result = if finished {
                self.table
                    .update(
                        &shard,
                        "SET checkpoint = :end, leaseCounter = leaseCounter + :one REMOVE leaseOwner, handoffTo",
                        "leaseOwner = :me",
                        json!({ ":end": s(SHARD_END), ":one": n(1), ":me": me }),
                    )
                    .await
            } else if let (true, Some(to)) = (handed_back, held.handing_to.clone()) {
                let cp = sequence.clone().or(held.written.clone()).unwrap_or_else(|| "TRIM_HORIZON".into());
                self.table
                    .update(
                        &shard,
                        "SET checkpoint = :cp, leaseOwner = :to, leaseCounter = leaseCounter + :one REMOVE handoffTo",
                        "leaseOwner = :me",
                        json!({ ":cp": s(&cp), ":to": s(&to), ":one": n(1), ":me": me }),
                    )
                    .await
            } else {
                match sequence.as_ref().filter(|seq| held.written.as_ref() != Some(*seq)) {
                    Some(seq) => {
                        self.table
                            .update(
                                &shard,
                                "SET checkpoint = :cp, leaseCounter = leaseCounter + :one",
                                "leaseOwner = :me",
                                json!({ ":cp": s(seq), ":one": n(1), ":me": me }),
                            )
                            .await
                    }
                    None => {
                        self.table
                            .update(
                                &shard,
                                "SET leaseCounter = leaseCounter + :one",
                                "leaseOwner = :me",
                                json!({ ":one": n(1), ":me": me }),
                            )
                            .await
                    }
                }
            };
            match result {
                Ok(Written::Done) if finished || handed_back => {
                    let to = held.handing_to.clone();
                    self.drop_lease(&shard);
                    match to {
                        Some(to) if !finished => {
                            tracing::info!(pipeline = %self.pipeline, shard = %shard, to = %to, "handed the lease over after delivering what was read")
                        }
                        _ => tracing::info!(pipeline = %self.pipeline, shard = %shard, "shard finished; lease let go"),
                    }
                }
                Ok(Written::Done) => {
                    let until = self.permit_until(sent);
                    if let Some(h) = self.held.get_mut(&shard) {
                        h.permit.extend(until);
                        if sequence.is_some() {
                            h.written = sequence;
                        }
                    }
                }
                Ok(Written::Refused) => {
                    tracing::warn!(pipeline = %self.pipeline, shard = %shard, "lost the lease to another daemon; stopped reading the shard");
                    self.drop_lease(&shard);
                }
                Err(e) => {
                    tracing::warn!(pipeline = %self.pipeline, shard = %shard, error = %e, "cannot renew the lease; reading pauses until a renewal succeeds");
                }
            }
        }
    }

    fn drop_lease(&mut self, shard: &str) {
        if let Some(held) = self.held.remove(shard) {
            held.permit.stop();
            if let Some(r) = held.reader {
                r.abort();
            }
        }
    }

    /// Stops reading the shards other daemons asked for; each is handed over once delivered.
    fn answer_requests(&mut self, leases: &[Lease]) {
        for lease in leases {
            let (Some(to), Some(held)) = (&lease.handoff_to, self.held.get_mut(&lease.shard)) else { continue };
            if held.handing_to.is_some() || lease.owner.as_deref() != Some(self.spec.owner.as_str()) {
                continue;
            }
            tracing::info!(pipeline = %self.pipeline, shard = %lease.shard, to = %to, "another daemon asked for this shard; handing it over once what was read is delivered");
            held.handing_to = Some(to.clone());
            held.permit.stop();
            if held.reader.is_none() {
                // Never read (waiting for its parents): nothing to deliver first.
                self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()).hand_back(&lease.shard, held.generation);
            }
        }
    }

    /// Leases that name this daemon but are not held here: handed over on request, or held by
    /// this daemon's previous run under the same name.
    async fn adopt_own(&mut self, leases: &[Lease]) -> Result<(), crate::aws::request::AwsCallError> {
        for lease in leases {
            if lease.owner.as_deref() == Some(self.me()) && !self.held.contains_key(&lease.shard) && !lease.finished() {
                self.take(lease, true).await?;
            }
        }
        Ok(())
    }

    /// Takes a lease whose counter is still `lease.counter` (a compare-and-swap: every change of
    /// a lease bumps its counter).
    async fn take(&mut self, lease: &Lease, own: bool) -> Result<bool, crate::aws::request::AwsCallError> {
        let sent = Instant::now();
        let written = self
            .table
            .update(
                &lease.shard,
                "SET leaseOwner = :me, leaseCounter = leaseCounter + :one REMOVE handoffTo",
                "leaseCounter = :counter",
                json!({ ":me": s(self.me()), ":one": n(1), ":counter": n(lease.counter) }),
            )
            .await?;
        if written == Written::Refused {
            return Ok(false);
        }
        self.generation += 1;
        let generation = self.generation;
        self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()).hold(
            &lease.shard,
            generation,
            lease.checkpoint.clone(),
        );
        self.held.insert(
            lease.shard.clone(),
            Held {
                generation,
                permit: ReadPermit::until(self.permit_until(sent)),
                reader: None,
                handing_to: None,
                written: lease.checkpoint.clone(),
            },
        );
        let how = if own { "took back its own lease" } else { "took a lease" };
        tracing::info!(pipeline = %self.pipeline, shard = %lease.shard, previous_owner = ?lease.owner, "{how}");
        Ok(true)
    }

    fn expired(&self, lease: &Lease) -> bool {
        lease.owner.is_none()
            || self.seen.get(&lease.shard).is_some_and(|(_, since)| since.elapsed() >= self.spec.lease_duration)
    }

    async fn take_fair_share(&mut self, leases: &[Lease]) -> Result<(), crate::aws::request::AwsCallError> {
        let me = self.me().to_string();
        let unfinished: Vec<&Lease> = leases.iter().filter(|l| !l.finished()).collect();
        let mut live: HashMap<&str, usize> = HashMap::new();
        live.insert(&me, 0);
        for l in &unfinished {
            if let (Some(owner), false) = (l.owner.as_deref(), self.expired(l)) {
                *live.entry(owner).or_default() += 1;
            }
        }
        if unfinished.is_empty() {
            return Ok(());
        }
        let target = unfinished.len().div_ceil(live.len());
        let asked = unfinished
            .iter()
            .filter(|l| l.handoff_to.as_deref() == Some(&me) && l.owner.as_deref() != Some(&me))
            .count();
        let mut mine = self.held.values().filter(|h| h.handing_to.is_none()).count() + asked;
        let mut took = false;
        let takeable: Vec<&Lease> =
            unfinished.iter().copied().filter(|l| l.owner.as_deref() != Some(&me) && self.expired(l)).collect();
        for lease in takeable {
            if mine >= target {
                break;
            }
            if self.take(lease, false).await? {
                mine += 1;
                took = true;
            }
        }
        if took || mine >= target {
            return Ok(());
        }
        // Nothing free: ask the busiest daemon above its share for one lease.
        let Some((&busiest, &count)) = live.iter().filter(|(o, _)| **o != me).max_by_key(|(_, c)| **c) else {
            return Ok(());
        };
        if count <= target {
            return Ok(());
        }
        let Some(lease) = unfinished.iter().find(|l| l.owner.as_deref() == Some(busiest) && l.handoff_to.is_none())
        else {
            return Ok(());
        };
        let asked = self
            .table
            .update(
                &lease.shard,
                "SET handoffTo = :me",
                "leaseOwner = :owner AND attribute_not_exists(handoffTo)",
                json!({ ":me": s(&me), ":owner": s(busiest) }),
            )
            .await?;
        if asked == Written::Done {
            tracing::info!(pipeline = %self.pipeline, shard = %lease.shard, owner = %busiest, "asked for a lease to even out the load");
        }
        Ok(())
    }

    /// Starts reading each held lease whose parents are finished.
    fn start_readers(&mut self, leases: &[Lease]) {
        let Some(listed) = &self.shards_listed else { return };
        let by_shard: HashMap<&str, &Lease> = leases.iter().map(|l| (l.shard.as_str(), l)).collect();
        for (shard, held) in &mut self.held {
            if held.reader.is_some() || held.handing_to.is_some() {
                continue;
            }
            let Some(lease) = by_shard.get(shard.as_str()) else { continue };
            let parents_done = lease.parents.iter().all(|p| match by_shard.get(p.as_str()) {
                Some(parent) => parent.finished(),
                None => !listed.contains(p),
            });
            if !parents_done {
                continue;
            }
            let position = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()).position(shard);
            held.reader = Some(self.spawner.spawn(shard, held.generation, held.permit.clone(), position, false));
        }
    }

    /// Shutdown: writes each lease's final checkpoint and frees it for the other daemons.
    async fn release_all(&mut self) {
        self.stop_reading();
        self.renew().await;
        let shards: Vec<String> = self.held.keys().cloned().collect();
        for shard in shards {
            let result = self
                .table
                .update(
                    &shard,
                    "SET leaseCounter = leaseCounter + :one REMOVE leaseOwner, handoffTo",
                    "leaseOwner = :me",
                    json!({ ":one": n(1), ":me": s(self.me()) }),
                )
                .await;
            match result {
                Ok(_) => tracing::info!(pipeline = %self.pipeline, shard = %shard, "lease freed at shutdown"),
                Err(e) => {
                    tracing::warn!(pipeline = %self.pipeline, shard = %shard, error = %e, "cannot free the lease; another daemon takes it when it expires")
                }
            }
            self.drop_lease(&shard);
        }
        self.spawner.metrics.leases_held.set(0.0);
    }
}
