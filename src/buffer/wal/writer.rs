//! The WAL's writer task: group commit, segment rolling, checkpoints and deletion, and
//! recovery from I/O errors without a restart.
//!
//! **After an I/O error** (a full disk, no file descriptors left, EIO) the writer is *degraded*:
//! appends are refused at once with [`WalError::Unavailable`], and with backoff (100 ms doubling
//! to 5 s) it tries to start over: cut the active segment back to its last fsynced frame (those
//! frames were acknowledged; the rest never were) and open a fresh segment. Writing to the same
//! file again is not safe after a failed fsync: the kernel may have dropped the dirty pages and
//! marked them clean ("fsyncgate"), so a later fsync would succeed without the data on disk.
//! Deletion of delivered segments and checkpoints keep working meanwhile: they need no new space.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

use super::checkpoint::Checkpoint;
use super::frame::SEGMENT_MAGIC;
use super::recent::RecentFrame;
use super::{create_segment, io_err, Command, PendingFrame, SegmentMeta, Shared, WalError};
use crate::record::Seq;

/// Frames gathered into one group commit at most (bounds the latency of the first in the group).
const GROUP_COMMIT_BYTES: usize = 16 << 20;
/// The delivered watermark is persisted at most this often (and at once when a segment can be
/// deleted, or at shutdown): replay after a crash then starts at most about this far back.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

struct Degraded {
    reason: String,
    retry_at: Instant,
}

/// The active segment as of the last successful fsync: what recovery cuts back to.
struct SyncedPoint {
    path: PathBuf,
    bytes: u64,
    frames: u64,
}

pub(super) struct WriterStart {
    pub shared: Arc<Shared>,
    pub file: File,
    pub path: PathBuf,
    pub serial: u64,
    pub next_seq: Seq,
    pub segment_bytes: u64,
    pub checkpoint: Checkpoint,
    pub delivered_below: Seq,
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    file: File,
    /// Bytes and frames in the active segment, written (not necessarily synced).
    bytes: u64,
    frames: u64,
    synced: SyncedPoint,
    /// Serial of the active segment; the next one gets the next number.
    serial: u64,
    next_seq: Seq,
    segment_bytes: u64,
    closed: bool,
    checkpoint: Checkpoint,
    /// The highest watermark reported, and the one persisted.
    released: Seq,
    checkpointed: Seq,
    last_checkpoint: Instant,
    degraded: Option<Degraded>,
    backoff: Duration,
}

impl Writer {
    pub(super) fn new(start: WriterStart) -> Self {
        Self {
            shared: start.shared,
            file: start.file,
            bytes: 0,
            frames: 0,
            synced: SyncedPoint { path: start.path, bytes: 0, frames: 0 },
            serial: start.serial,
            next_seq: start.next_seq,
            segment_bytes: start.segment_bytes,
            closed: false,
            checkpoint: start.checkpoint,
            released: start.delivered_below,
            checkpointed: start.delivered_below,
            last_checkpoint: Instant::now(),
            degraded: None,
            backoff: RETRY_FIRST,
        }
    }
    /// Serves commands until every handle is dropped. After `Close` appends are refused, but
    /// releases are still served so the final checkpoint can be written at shutdown.
    ///
    /// An async task, not a thread: waiting costs nothing, and each group's file I/O runs on
    /// tokio's shared blocking pool, so a thousand idle streams hold no thread (issue #9).
    pub(super) async fn run(mut self, mut rx: UnboundedReceiver<Command>) {
        loop {
            let first = match self.next_wakeup() {
                None => rx.recv().await,
                Some(at) => match tokio::time::timeout_at(at.into(), rx.recv()).await {
                    Ok(cmd) => cmd,
                    Err(_) => {
                        // Nothing arrived: time to retry a degraded writer or to checkpoint.
                        match blocking(self, Vec::new()).await {
                            Some(w) => self = w,
                            None => return,
                        }
                        continue;
                    }
                },
            };
            let Some(first) = first else { break };
            let mut commands = vec![first];
            let mut queued = 0;
            while queued < GROUP_COMMIT_BYTES {
                let Ok(cmd) = rx.try_recv() else { break };
                if let Command::Append { frame, .. } = &cmd {
                    queued += frame.bytes.len();
                }
                commands.push(cmd);
            }
            match blocking(self, commands).await {
                Some(w) => self = w,
                None => return,
            }
        }
        let _ = tokio::task::spawn_blocking(move || self.persist_if_due(true)).await;
    }

    /// One round of work: recover if due, commit the appends as one group, then closes and releases.
    fn serve(&mut self, commands: Vec<Command>) {
        self.try_recover();
        self.persist_if_due(false);
        let mut group = Vec::new();
        let mut closes = Vec::new();
        let mut releases = Vec::new();
        for cmd in commands {
            match cmd {
                Command::Append { frame, reply } => group.push((frame, reply)),
                Command::Close { reply } => closes.push(reply),
                Command::Release { delivered_below, force, reply } => releases.push((delivered_below, force, reply)),
            }
        }
        self.commit(&mut group);
        if !closes.is_empty() {
            self.closed = true;
            self.shared.committed.send_modify(|c| c.closed = true);
            closes.into_iter().for_each(|reply| {
                let _ = reply.send(());
            });
        }
        for (delivered_below, force, reply) in releases {
            let result = self.release(delivered_below, force);
            match reply {
                Some(reply) => {
                    let _ = reply.send(result);
                }
                None => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "cannot free delivered WAL segments yet; retrying at the next release");
                    }
                }
            }
        }
    }

    /// When the loop must wake up without a command: to retry a degraded writer, or to persist a
    /// watermark that moved since the last checkpoint.
    fn next_wakeup(&self) -> Option<Instant> {
        let retry = self.degraded.as_ref().map(|d| d.retry_at);
        let checkpoint = (self.released > self.checkpointed).then(|| self.last_checkpoint + CHECKPOINT_EVERY);
        match (retry, checkpoint) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records the watermark, deletes every inactive segment wholly below it (checkpointing
    /// first, so the checkpoint never lags a deletion), and checkpoints on the timer. A fully
    /// delivered active segment is rolled first, so an idle pipeline frees its space too; if
    /// that roll fails (no space for a new file), deletion goes ahead without it.
    fn release(&mut self, delivered_below: Seq, force: bool) -> Result<(), WalError> {
        self.released = self.released.max(delivered_below);
        let active_done = self.frames > 0 && self.next_seq <= self.released && self.degraded.is_none() && !self.closed;
        if active_done {
            // Between groups every written frame is synced, so the new segment is the synced point.
            match self.roll() {
                Ok(()) => self.mark_synced(),
                Err(e) => tracing::debug!(error = %e, "cannot roll the delivered active segment yet"),
            }
        }
        let deletable: Vec<SegmentMeta> = {
            let segments = self.shared.segments();
            let inactive = segments.len().saturating_sub(1);
            segments.iter().take(inactive).take_while(|s| s.end_seq <= self.released).cloned().collect()
        };
        if !deletable.is_empty() || force {
            self.persist(self.released)?;
        } else {
            self.persist_if_due(false);
        }
        for seg in &deletable {
            fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            self.shared.budget.release(seg.bytes);
            self.shared.segments().retain(|s| s.path != seg.path);
        }
        Ok(())
    }

    fn persist_if_due(&mut self, now: bool) {
        if self.released > self.checkpointed && (now || self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY) {
            if let Err(e) = self.persist(self.released) {
                tracing::warn!(error = %e, "cannot persist the delivered watermark yet; a crash now would replay a little more");
            }
        }
    }

    fn persist(&mut self, delivered_below: Seq) -> Result<(), WalError> {
        if delivered_below > self.checkpointed {
            self.checkpoint.write(delivered_below)?;
            self.checkpointed = delivered_below;
            self.last_checkpoint = Instant::now();
        }
        Ok(())
    }

    fn commit(&mut self, group: &mut Vec<(PendingFrame, oneshot::Sender<Result<u64, WalError>>)>) {
        if group.is_empty() {
            return;
        }
        if self.closed {
            // Closed to records, not to batch intents: the pipeline still cuts and records its
            // last batches while it drains (shutdown, UpdateDestination), and a crash during that
            // drain must find their identities.
            let (controls, records): (Vec<_>, Vec<_>) = group.drain(..).partition(|(frame, _)| frame.control);
            for (_, reply) in records {
                let _ = reply.send(Err(WalError::Closed));
            }
            *group = controls;
            if group.is_empty() {
                return;
            }
        }
        if let Some(d) = &self.degraded {
            for (_, reply) in group.drain(..) {
                let _ = reply.send(Err(WalError::Unavailable(d.reason.clone())));
            }
            return;
        }
        // Where each frame ends up: its first sequence (the append's answer), and the segment and the
        // offset just past it there (for `recent.rs`).
        let mut placed: Vec<(Seq, Arc<PathBuf>, u64)> = Vec::with_capacity(group.len());
        let mut control_bytes = 0;
        let result = (|| -> Result<(), WalError> {
            for (frame, _) in group.iter_mut() {
                let size = frame.bytes.len() as u64;
                if self.frames > 0 && self.bytes + size > self.segment_bytes {
                    self.roll()?;
                }
                let first_seq = self.next_seq;
                frame.seal(first_seq);
                let path = self.active_path();
                self.file.write_all(&frame.bytes).map_err(io_err(&path))?;
                self.next_seq += u64::from(frame.count);
                self.bytes += size;
                self.frames += 1;
                placed.push((first_seq, Arc::new(path), SEGMENT_MAGIC.len() as u64 + self.bytes));
                if frame.control {
                    control_bytes += size;
                }
                if let Some(active) = self.shared.segments().last_mut() {
                    active.end_seq = self.next_seq;
                    active.bytes += size;
                }
            }
            let path = self.active_path();
            self.file.sync_data().map_err(io_err(&path))
        })();
        match result {
            Ok(()) => {
                self.mark_synced();
                self.backoff = RETRY_FIRST;
                // Ingest reserved its frames' bytes before appending; control frames are ours.
                self.shared.budget.force_reserve(control_bytes);
                // The frames go to the reader before it learns they are committed.
                let mut recent = self.shared.recent();
                for ((frame, _), (first_seq, path, end_offset)) in group.iter_mut().zip(&placed) {
                    if !frame.control && frame.count > 0 {
                        recent.push(RecentFrame {
                            first_seq: *first_seq,
                            end_seq: first_seq + u64::from(frame.count),
                            bytes: Bytes::from(std::mem::take(&mut frame.bytes)),
                            path: path.clone(),
                            end_offset: *end_offset,
                        });
                    }
                }
                drop(recent);
                let end = self.next_seq;
                self.shared.committed.send_modify(|c| c.end = end);
                for ((_, reply), (first_seq, ..)) in group.drain(..).zip(placed) {
                    let _ = reply.send(Ok(first_seq));
                }
            }
            Err(e) => {
                let public = e.public();
                tracing::error!(error = %e, "WAL write failed; refusing appends while it recovers");
                self.degrade(public.clone());
                for (_, reply) in group.drain(..) {
                    let _ = reply.send(Err(WalError::Unavailable(public.clone())));
                }
            }
        }
    }

    fn degrade(&mut self, reason: String) {
        self.shared.set_unavailable(Some(reason.clone()));
        self.degraded = Some(Degraded { reason, retry_at: Instant::now() + self.backoff });
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
    }

    /// Once the backoff has passed, drops the unsynced tail and starts a fresh segment.
    fn try_recover(&mut self) {
        let Some(d) = &self.degraded else { return };
        if Instant::now() < d.retry_at {
            return;
        }
        match self.restart_segment() {
            Ok(()) => {
                tracing::info!("WAL writes work again; accepting records");
                self.degraded = None;
                self.shared.set_unavailable(None);
            }
            Err(e) => {
                tracing::debug!(error = %e, "the WAL is still not writable");
                self.degrade(e.public());
            }
        }
    }

    fn restart_segment(&mut self) -> Result<(), WalError> {
        let synced_end = self.shared.committed.borrow().end;
        // Segments begun since the last fsync hold only frames that were never acknowledged.
        let abandoned: Vec<PathBuf> = {
            let segments = self.shared.segments();
            let synced_at = segments.iter().position(|s| s.path == self.synced.path).unwrap_or(segments.len());
            segments.iter().skip(synced_at + 1).map(|s| s.path.clone()).collect()
        };
        for path in &abandoned {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(WalError::Io { path: path.clone(), source: e }),
            }
            self.shared.segments().retain(|s| &s.path != path);
        }
        // Truncation frees space; it never needs any.
        let path = self.synced.path.clone();
        let f = OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
        f.set_len(SEGMENT_MAGIC.len() as u64 + self.synced.bytes).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))?;
        if let Some(active) = self.shared.segments().iter_mut().find(|s| s.path == path) {
            active.end_seq = synced_end;
            active.bytes = self.synced.bytes;
        }
        self.next_seq = synced_end;
        self.bytes = self.synced.bytes;
        self.frames = self.synced.frames;
        // Never write to that file again (see the module doc): continue in a fresh segment.
        self.start_segment()?;
        self.mark_synced();
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn mark_synced(&mut self) {
        self.synced = SyncedPoint { path: self.active_path(), bytes: self.bytes, frames: self.frames };
    }

    fn active_path(&self) -> PathBuf {
        self.shared.segments().last().map(|s| s.path.clone()).unwrap_or_default()
    }

    /// Starts a new segment at `next_seq`. Does not move the synced point: frames written before
    /// a roll inside a group are only synced when the group's fsync succeeds.
    fn roll(&mut self) -> Result<(), WalError> {
        let old = self.active_path();
        self.file.sync_data().map_err(io_err(&old))?;
        self.start_segment()
    }

    fn start_segment(&mut self) -> Result<(), WalError> {
        let (file, path) = create_segment(&self.shared.dir, self.next_seq, self.serial + 1)?;
        self.serial += 1;
        self.file = file;
        self.bytes = 0;
        self.frames = 0;
        self.shared.segments().push(SegmentMeta { first_seq: self.next_seq, end_seq: self.next_seq, bytes: 0, path });
        Ok(())
    }
}

/// Runs a round of the writer's work on the blocking pool and hands the writer back. A panic in
/// it loses the writer: appends waiting on it then fail (`Closed`) and nothing is acknowledged
/// that is not on disk.
async fn blocking(mut writer: Writer, commands: Vec<Command>) -> Option<Writer> {
    let shared = writer.shared.clone();
    match tokio::task::spawn_blocking(move || {
        writer.serve(commands);
        writer
    })
    .await
    {
        Ok(writer) => Some(writer),
        Err(e) => {
            tracing::error!(error = %e, "the WAL writer failed; this pipeline accepts no more records until restarted");
            shared.set_unavailable(Some("internal error in the storage writer".into()));
            None
        }
    }
}
