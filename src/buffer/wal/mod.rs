//! The per-pipeline write-ahead log: what makes an acknowledged record survive `kill -9`.
//!
//! * Request handlers build a [`FrameBuilder`] and call [`WalAppender::append`]. One writer thread
//!   owns the active segment: it takes every frame queued since its last fsync, writes them, calls
//!   `fdatasync` once and only then answers all of them (group commit). Durability costs one fsync
//!   per group, not per request.
//! * Delivery reads the log back through [`WalReader`], the same code that replays it after a
//!   restart, so steady state and recovery cannot drift apart, and a slow destination costs disk,
//!   not memory. The reader only reads below the committed sequence the writer publishes after
//!   each fsync, and waits on that signal, so it never stalls after a quiet period.
//! * The delivered watermark is persisted in `checkpoint` (write, fsync, rename, fsync dir); a
//!   segment is deleted only when every record in it is below the watermark.
//! * Opening scans every segment, checks every checksum, cuts a torn tail at the first bad frame,
//!   and resumes sequence numbers where they stopped.

mod budget;
mod frame;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

pub use budget::StorageBudget;
pub use frame::{Frame, FrameBuilder, PendingFrame, FRAME_HEADER};

use crate::record::{Record, Seq};
use frame::{parse_header, MAX_BODY, SEGMENT_MAGIC};

/// Frames gathered into one group commit at most (bounds the latency of the first in the group).
const GROUP_COMMIT_BYTES: usize = 16 << 20;
const CHECKPOINT_FILE: &str = "checkpoint";

#[derive(Debug, Error)]
pub enum WalError {
    #[error("WAL I/O error in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the WAL stopped accepting writes after an I/O error: {0}")]
    Poisoned(String),
    #[error("the WAL is closed")]
    Closed,
    #[error("WAL segment {path} is damaged at offset {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io { path: path.to_path_buf(), source }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Committed {
    /// Every sequence below this is durable.
    end: Seq,
    /// The writer has stopped; nothing above `end` will ever appear.
    closed: bool,
}

#[derive(Debug, Clone)]
struct SegmentMeta {
    first_seq: Seq,
    /// One past the last sequence written to this segment.
    end_seq: Seq,
    /// Frame bytes counted against the storage budget.
    bytes: u64,
    path: PathBuf,
}

struct Shared {
    dir: PathBuf,
    segments: Mutex<Vec<SegmentMeta>>,
    committed: watch::Sender<Committed>,
    budget: Arc<StorageBudget>,
}

impl Shared {
    fn segments(&self) -> MutexGuard<'_, Vec<SegmentMeta>> {
        // A panic while holding this lock cannot leave the list half-updated (every update is a
        // single push, pop or field write), so a poisoned lock is still safe to use.
        self.segments.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct WalOptions {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub budget: Arc<StorageBudget>,
}

/// What recovery found, for logs and metrics.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    pub segments: usize,
    pub undelivered_records: u64,
    pub undelivered_bytes: u64,
    pub torn_bytes_cut: u64,
    pub delivered_below: Seq,
}

/// Opens (recovering if needed) the WAL in `opts.dir` and starts its writer thread.
pub fn open(opts: WalOptions) -> Result<(WalAppender, WalReader, RecoveryReport), WalError> {
    let dir = opts.dir.clone();
    if !dir.exists() {
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        // Make the new directories' own entries durable, or a crash could lose the whole WAL
        // directory even though the segments inside it were fsynced.
        for ancestor in dir.ancestors().skip(1).take(3) {
            if !ancestor.as_os_str().is_empty() {
                sync_dir(ancestor)?;
            }
        }
    }
    let delivered_below = read_checkpoint(&dir)?;
    let mut report = RecoveryReport { delivered_below, ..Default::default() };

    let mut segments = Vec::new();
    for path in list_segments(&dir)? {
        let scan = scan_segment(&path)?;
        if scan.torn_bytes > 0 {
            tracing::warn!(segment = %path.display(), bytes = scan.torn_bytes, offset = scan.valid_len, "cutting a torn or damaged WAL tail (never acknowledged if it was the tail)");
            let f = OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
            f.set_len(scan.valid_len).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
            report.torn_bytes_cut += scan.torn_bytes;
        }
        let Some((first_seq, end_seq)) = scan.range else {
            fs::remove_file(&path).map_err(io_err(&path))?;
            continue;
        };
        if end_seq <= delivered_below {
            fs::remove_file(&path).map_err(io_err(&path))?;
            continue;
        }
        if let Some(prev) = segments.last() {
            let prev: &SegmentMeta = prev;
            if prev.end_seq != first_seq {
                tracing::error!(segment = %path.display(), expected = prev.end_seq, found = first_seq, "WAL sequence gap: records between these were lost to damage");
            }
        }
        report.undelivered_records += end_seq - first_seq.max(delivered_below);
        report.undelivered_bytes += scan.frame_bytes;
        opts.budget.force_reserve(scan.frame_bytes);
        segments.push(SegmentMeta { first_seq, end_seq, bytes: scan.frame_bytes, path });
    }
    sync_dir(&dir)?;
    report.segments = segments.len();

    let next_seq = segments.last().map_or(delivered_below, |s| s.end_seq.max(delivered_below));
    let (committed, _) = watch::channel(Committed { end: next_seq, closed: false });
    let shared = Arc::new(Shared { dir: dir.clone(), segments: Mutex::new(segments), committed, budget: opts.budget });

    let active = create_segment(&dir, next_seq)?;
    shared.segments().push(SegmentMeta { first_seq: next_seq, end_seq: next_seq, bytes: 0, path: active.1.clone() });

    let (tx, rx) = mpsc::unbounded_channel();
    let writer = Writer {
        shared: shared.clone(),
        file: active.0,
        bytes: 0,
        frames: 0,
        next_seq,
        segment_bytes: opts.segment_bytes,
        poisoned: None,
        closed: false,
        checkpointed: delivered_below,
    };
    let name = format!("wal-{}", dir.file_name().and_then(|n| n.to_str()).unwrap_or("writer"));
    std::thread::Builder::new().name(name).spawn(move || writer.run(rx)).map_err(io_err(&dir))?;

    let start = delivered_below;
    let reader = WalReader {
        shared: shared.clone(),
        committed: shared.committed.subscribe(),
        next_seq: start,
        position: None,
        delivered_below,
        control: tx.clone(),
    };
    Ok((WalAppender { tx }, reader, report))
}

fn segment_path(dir: &Path, first_seq: Seq) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

fn list_segments(dir: &Path) -> Result<Vec<PathBuf>, WalError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<Seq>().ok());
        if let Some(seq) = seq {
            found.push((seq, path));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

fn create_segment(dir: &Path, first_seq: Seq) -> Result<(File, PathBuf), WalError> {
    let path = segment_path(dir, first_seq);
    let mut f = OpenOptions::new().create(true).truncate(true).write(true).open(&path).map_err(io_err(&path))?;
    f.write_all(SEGMENT_MAGIC).map_err(io_err(&path))?;
    f.sync_all().map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok((f, path))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

struct SegmentScan {
    range: Option<(Seq, Seq)>,
    valid_len: u64,
    torn_bytes: u64,
    frame_bytes: u64,
}

/// Reads every frame of a segment, stopping at the first one that is incomplete or fails its checksum.
fn scan_segment(path: &Path) -> Result<SegmentScan, WalError> {
    let file = File::open(path).map_err(io_err(path))?;
    let total = file.metadata().map_err(io_err(path))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    let mut scan = SegmentScan { range: None, valid_len: 0, torn_bytes: total, frame_bytes: 0 };
    if r.read_exact(&mut magic).is_err() || &magic != SEGMENT_MAGIC {
        // A segment without its magic was created but never written: nothing in it was acknowledged.
        return Ok(scan);
    }
    let mut offset = SEGMENT_MAGIC.len() as u64;
    // Stop at the end, at the first damaged frame, or at a frame out of sequence.
    while let Ok(Some(frame)) = read_frame(&mut r) {
        if scan.range.is_some_and(|(_, end)| end != frame.first_seq) {
            break;
        }
        let size = (FRAME_HEADER + frame.body_len()) as u64;
        scan.range = Some((scan.range.map_or(frame.first_seq, |(s, _)| s), frame.end_seq()));
        offset += size;
        scan.frame_bytes += size;
    }
    scan.valid_len = offset;
    scan.torn_bytes = total - offset;
    Ok(scan)
}

/// Reads one frame; `Ok(None)` at a clean end of file.
fn read_frame(r: &mut impl Read) -> Result<Option<Frame>, String> {
    let mut header = [0u8; FRAME_HEADER];
    match read_full(r, &mut header) {
        Ok(0) => return Ok(None),
        Ok(n) if n < FRAME_HEADER => return Err("truncated frame header".into()),
        Ok(_) => {}
        Err(e) => return Err(e.to_string()),
    }
    let (len, crc) = parse_header(&header);
    if len > MAX_BODY {
        return Err(format!("frame length {len} is impossible"));
    }
    let mut body = BytesMut::zeroed(len);
    match read_full(r, &mut body) {
        Ok(n) if n == len => {}
        Ok(_) => return Err("truncated frame body".into()),
        Err(e) => return Err(e.to_string()),
    }
    Frame::decode(body.freeze(), crc).map(Some).map_err(|e| e.to_string())
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_checkpoint(dir: &Path) -> Result<Seq, WalError> {
    let path = dir.join(CHECKPOINT_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().strip_prefix("delivered_below=").and_then(|v| v.parse().ok()).ok_or_else(|| {
            WalError::Corrupt { path, offset: 0, reason: format!("unreadable checkpoint `{}`", text.trim()) }
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(WalError::Io { path, source: e }),
    }
}

fn write_checkpoint(dir: &Path, delivered_below: Seq) -> Result<(), WalError> {
    let tmp = dir.join("checkpoint.tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(format!("delivered_below={delivered_below}\n").as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    let path = dir.join(CHECKPOINT_FILE);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

enum Command {
    Append {
        frame: PendingFrame,
        reply: oneshot::Sender<Result<Seq, WalError>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
    /// Everything below `delivered_below` is delivered: checkpoint it and delete what it covers.
    Release {
        delivered_below: Seq,
        force: bool,
        reply: Option<oneshot::Sender<Result<(), WalError>>>,
    },
}

/// The request handlers' side of the WAL. Cheap to clone.
#[derive(Clone)]
pub struct WalAppender {
    tx: mpsc::UnboundedSender<Command>,
}

impl WalAppender {
    /// Writes the frame and returns its first sequence number once it is on disk.
    pub async fn append(&self, frame: PendingFrame) -> Result<Seq, WalError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Append { frame, reply }).map_err(|_| WalError::Closed)?;
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// Stops accepting appends; the reader drains what was committed and then reports the end.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Close { reply }).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Writer {
    shared: Arc<Shared>,
    file: File,
    bytes: u64,
    frames: u64,
    next_seq: Seq,
    segment_bytes: u64,
    poisoned: Option<String>,
    closed: bool,
    checkpointed: Seq,
}

impl Writer {
    /// Serves commands until every handle is dropped. After `Close` appends are refused, but
    /// releases are still served so the final checkpoint can be written at shutdown.
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut group = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut queued = 0;
            let mut closes = Vec::new();
            let mut releases = Vec::new();
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append { frame, reply } => {
                        queued += frame.bytes.len();
                        group.push((frame, reply));
                    }
                    Command::Close { reply } => closes.push(reply),
                    Command::Release { delivered_below, force, reply } => {
                        releases.push((delivered_below, force, reply))
                    }
                }
                if queued < GROUP_COMMIT_BYTES {
                    next = rx.try_recv().ok();
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
                            tracing::error!(error = %e, "cannot free delivered WAL segments; they are retried at the next release");
                        }
                    }
                }
            }
        }
    }

    /// Persists the watermark and deletes every segment wholly below it. A fully delivered
    /// active segment is rolled first, so an idle pipeline frees its space too.
    fn release(&mut self, delivered_below: Seq, force: bool) -> Result<(), WalError> {
        let active_done =
            self.frames > 0 && self.next_seq <= delivered_below && self.poisoned.is_none() && !self.closed;
        if active_done {
            self.roll()?;
        }
        let deletable: Vec<SegmentMeta> = {
            let segments = self.shared.segments();
            let inactive = segments.len().saturating_sub(1);
            segments.iter().take(inactive).take_while(|s| s.end_seq <= delivered_below).cloned().collect()
        };
        let stale = delivered_below.saturating_sub(self.checkpointed) > 100_000;
        if deletable.is_empty() && !stale && !(force && delivered_below > self.checkpointed) {
            return Ok(());
        }
        if delivered_below > self.checkpointed {
            write_checkpoint(&self.shared.dir, delivered_below)?;
            self.checkpointed = delivered_below;
        }
        for seg in &deletable {
            fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            self.shared.budget.release(seg.bytes);
            self.shared.segments().retain(|s| s.first_seq != seg.first_seq);
        }
        Ok(())
    }

    fn commit(&mut self, group: &mut Vec<(PendingFrame, oneshot::Sender<Result<Seq, WalError>>)>) {
        if group.is_empty() {
            return;
        }
        if self.closed {
            for (_, reply) in group.drain(..) {
                let _ = reply.send(Err(WalError::Closed));
            }
            return;
        }
        if let Some(reason) = &self.poisoned {
            for (_, reply) in group.drain(..) {
                let _ = reply.send(Err(WalError::Poisoned(reason.clone())));
            }
            return;
        }
        let mut firsts = Vec::with_capacity(group.len());
        let result = (|| -> Result<(), WalError> {
            for (frame, _) in group.iter_mut() {
                let size = frame.bytes.len() as u64;
                if self.frames > 0 && self.bytes + size > self.segment_bytes {
                    self.roll()?;
                }
                frame.seal(self.next_seq);
                firsts.push(self.next_seq);
                let path = self.active_path();
                self.file.write_all(&frame.bytes).map_err(io_err(&path))?;
                self.next_seq += u64::from(frame.count);
                self.bytes += size;
                self.frames += 1;
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
                let end = self.next_seq;
                self.shared.committed.send_modify(|c| c.end = end);
                for ((_, reply), first) in group.drain(..).zip(firsts) {
                    let _ = reply.send(Ok(first));
                }
            }
            Err(e) => {
                // After a failed write or fsync the page cache cannot be trusted (fsyncgate), so
                // stop: refuse everything rather than acknowledge what may not be on disk.
                tracing::error!(error = %e, "WAL write failed; this pipeline refuses writes until restarted");
                self.poisoned = Some(e.to_string());
                for (_, reply) in group.drain(..) {
                    let _ = reply.send(Err(WalError::Poisoned(e.to_string())));
                }
            }
        }
    }

    fn active_path(&self) -> PathBuf {
        self.shared.segments().last().map(|s| s.path.clone()).unwrap_or_default()
    }

    fn roll(&mut self) -> Result<(), WalError> {
        let old = self.active_path();
        self.file.sync_data().map_err(io_err(&old))?;
        let (file, path) = create_segment(&self.shared.dir, self.next_seq)?;
        self.file = file;
        self.bytes = 0;
        self.frames = 0;
        self.shared.segments().push(SegmentMeta { first_seq: self.next_seq, end_seq: self.next_seq, bytes: 0, path });
        Ok(())
    }
}

/// Where the reader is: an open segment and the sequence it reads next.
struct Position {
    reader: BufReader<File>,
    segment_first: Seq,
    path: PathBuf,
}

/// Reads committed records in order, from the delivered watermark on, and frees what is delivered.
pub struct WalReader {
    shared: Arc<Shared>,
    committed: watch::Receiver<Committed>,
    next_seq: Seq,
    position: Option<Position>,
    delivered_below: Seq,
    /// Sends releases to the writer thread.
    control: mpsc::UnboundedSender<Command>,
}

impl WalReader {
    /// Waits for committed records and returns up to about `max_bytes` of them.
    /// Returns `Ok(None)` once the WAL is closed and everything committed has been read.
    ///
    /// Cancel-safe: the only await is the wait for the writer's commit signal; reading is done
    /// synchronously, which is cheap because freshly committed frames are in the page cache.
    pub async fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<Record>>, WalError> {
        loop {
            let committed = *self.committed.borrow_and_update();
            if self.next_seq < committed.end {
                let mut state =
                    ReadState { shared: self.shared.clone(), next_seq: self.next_seq, position: self.position.take() };
                let result = state.read(committed.end, max_bytes);
                self.next_seq = state.next_seq;
                self.position = state.position;
                let records = result?;
                if !records.is_empty() {
                    return Ok(Some(records));
                }
                continue;
            }
            if committed.closed {
                return Ok(None);
            }
            if self.committed.changed().await.is_err() {
                return Ok(None);
            }
        }
    }

    /// Everything below `seq` is delivered. The writer thread, which owns the segment files,
    /// persists the watermark and deletes the segments it covers. Without `force` this returns at
    /// once and persisting may be deferred (a crash then re-delivers a little, onto the same object
    /// keys); with `force` (shutdown) it waits until the checkpoint is on disk.
    pub async fn release_below(&mut self, seq: Seq, force: bool) -> Result<(), WalError> {
        if seq <= self.delivered_below && !force {
            return Ok(());
        }
        self.delivered_below = self.delivered_below.max(seq);
        let delivered_below = self.delivered_below;
        if !force {
            return self
                .control
                .send(Command::Release { delivered_below, force, reply: None })
                .map_err(|_| WalError::Closed);
        }
        let (reply, rx) = oneshot::channel();
        self.control
            .send(Command::Release { delivered_below, force, reply: Some(reply) })
            .map_err(|_| WalError::Closed)?;
        rx.await.map_err(|_| WalError::Closed)?
    }

    pub fn delivered_below(&self) -> Seq {
        self.delivered_below
    }
}

struct ReadState {
    shared: Arc<Shared>,
    next_seq: Seq,
    position: Option<Position>,
}

impl ReadState {
    fn read(&mut self, committed: Seq, max_bytes: usize) -> Result<Vec<Record>, WalError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while self.next_seq < committed && bytes < max_bytes {
            if self.position.is_none() {
                self.position = Some(self.open_at(self.next_seq)?);
            }
            let Some(pos) = self.position.as_mut() else {
                break;
            };
            let offset = pos.reader.stream_position().unwrap_or(0);
            match read_frame(&mut pos.reader) {
                Ok(Some(frame)) => {
                    for record in frame.records_from(self.next_seq) {
                        bytes += record.data.len();
                        out.push(record);
                    }
                    self.next_seq = self.next_seq.max(frame.end_seq());
                }
                Ok(None) => {
                    // End of this segment: committed data continues in the next one.
                    let next = self
                        .shared
                        .segments()
                        .iter()
                        .find(|s| s.first_seq > pos.segment_first && s.first_seq <= self.next_seq)
                        .map(|s| s.first_seq);
                    match next {
                        Some(_) => self.position = None,
                        None => break,
                    }
                }
                Err(reason) => {
                    return Err(WalError::Corrupt { path: pos.path.clone(), offset, reason });
                }
            }
        }
        Ok(out)
    }

    /// Opens the segment holding `seq` and skips to the frame containing it.
    fn open_at(&self, seq: Seq) -> Result<Position, WalError> {
        let meta = {
            let segments = self.shared.segments();
            segments.iter().rev().find(|s| s.first_seq <= seq).or(segments.first()).cloned()
        };
        let Some(meta) = meta else {
            return Err(WalError::Corrupt {
                path: self.shared.dir.clone(),
                offset: 0,
                reason: format!("no segment holds sequence {seq}"),
            });
        };
        let file = File::open(&meta.path).map_err(io_err(&meta.path))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        reader.seek(SeekFrom::Start(SEGMENT_MAGIC.len() as u64)).map_err(io_err(&meta.path))?;
        // Skip whole frames that end at or below `seq` by their headers' sequence ranges.
        loop {
            let offset = reader.stream_position().map_err(io_err(&meta.path))?;
            let mut header = [0u8; FRAME_HEADER + 8 + 8 + 4];
            if read_full(&mut reader, &mut header).map_err(io_err(&meta.path))? < header.len() {
                reader.seek(SeekFrom::Start(offset)).map_err(io_err(&meta.path))?;
                break;
            }
            let (len, _) = parse_header(header[..FRAME_HEADER].try_into().unwrap_or(&[0; FRAME_HEADER]));
            let first = u64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8]));
            let count = u32::from_le_bytes(header[24..28].try_into().unwrap_or([0; 4]));
            if first + u64::from(count) > seq {
                reader.seek(SeekFrom::Start(offset)).map_err(io_err(&meta.path))?;
                break;
            }
            reader.seek(SeekFrom::Start(offset + (FRAME_HEADER + len) as u64)).map_err(io_err(&meta.path))?;
        }
        Ok(Position { reader, segment_first: meta.first_seq, path: meta.path })
    }
}

#[cfg(test)]
mod tests;
