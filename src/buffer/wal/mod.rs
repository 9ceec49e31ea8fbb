//! The per-pipeline write-ahead log: what makes an acknowledged record survive `kill -9`.
//!
//! * Request handlers build a [`FrameBuilder`] and call [`WalAppender::append`]. One writer
//!   task (`writer.rs`) owns the active segment: it takes every frame queued since its last fsync,
//!   writes them, calls `fdatasync` once and only then answers all of them (group commit).
//! * Delivery reads the log back through [`WalReader`] (`reader.rs`), the same code that replays
//!   it after a restart, so steady state and recovery cannot drift apart, and a slow destination
//!   costs disk, not memory. The reader only reads below the committed sequence the writer
//!   publishes after each fsync, and waits on that signal, so it never stalls after a quiet period.
//! * Batch intents (`buffer::intent`) are written as control frames in the same group commits, so
//!   a batch's identity is exactly as durable as its records, at no extra fsync under load.
//! * The delivered watermark is persisted in place (`checkpoint.rs`); a segment is deleted only
//!   when every record in it is below the persisted watermark. Neither needs new disk space.
//! * A write or fsync error does not stop the pipeline for good: the writer drops what was not
//!   fsynced (it was never acknowledged), starts a fresh segment and retries with backoff, and
//!   refuses appends meanwhile with [`WalError::Unavailable`], which names the cause but no path.
//! * Opening scans every segment, checks every checksum, cuts a torn tail at the first bad frame,
//!   resumes sequence numbers where they stopped, and collects the control frames for replay.

mod budget;
mod checkpoint;
mod frame;
mod reader;
mod recent;
mod writer;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

pub use budget::StorageBudget;
pub use frame::{Frame, FrameBuilder, PendingFrame, FRAME_HEADER};
pub use reader::WalReader;
pub use recent::RECENT_FRAMES_BYTES;

use crate::record::Seq;
use checkpoint::Checkpoint;
use frame::{parse_header, MAX_BODY, SEGMENT_MAGIC, SEGMENT_MAGIC_V1};
use recent::RecentFrames;

#[derive(Debug, Error)]
pub enum WalError {
    /// Carries the path, for operators' logs. Never shown to API clients: see [`Self::public`].
    #[error("WAL I/O error in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The writer is recovering from an I/O error and refuses appends until it has.
    #[error("the delivery stream cannot write to its storage right now ({0}); retry later")]
    Unavailable(String),
    #[error("the WAL is closed")]
    Closed,
    #[error("WAL segment {path} is damaged at offset {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
}

impl WalError {
    /// The cause in words fit for a client: the OS's description, without a server path.
    pub fn public(&self) -> String {
        match self {
            WalError::Io { source, .. } => describe_io(source),
            WalError::Unavailable(reason) => reason.clone(),
            WalError::Closed => "the delivery stream is shutting down".into(),
            WalError::Corrupt { .. } => "the delivery stream's storage is damaged".into(),
        }
    }
}

/// `No space left on device (os error 28)` → `no space left on device`.
fn describe_io(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
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
    /// Bumped when the writer abandons a segment's unsynced tail: readers reopen their position
    /// rather than trust bytes they may have buffered from it.
    epoch: AtomicU64,
    /// Why appends are refused right now (`None` when healthy), for `/ready`.
    unavailable: Mutex<Option<String>>,
    /// Frames just committed, for a reader that keeps up (`recent.rs`).
    recent: Mutex<RecentFrames>,
}

impl Shared {
    fn segments(&self) -> MutexGuard<'_, Vec<SegmentMeta>> {
        // A panic while holding this lock cannot leave the list half-updated (every update is a
        // single push, pop or field write), so a poisoned lock is still safe to use.
        self.segments.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn recent(&self) -> MutexGuard<'_, RecentFrames> {
        // Pushes and takes leave the queue whole between statements, so a poisoned lock is usable.
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_unavailable(&self, reason: Option<String>) {
        *self.unavailable.lock().unwrap_or_else(|p| p.into_inner()) = reason;
    }
}

pub struct WalOptions {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub budget: Arc<StorageBudget>,
    /// Committed frames kept in memory for the reader ([`RECENT_FRAMES_BYTES`]; 0: read every frame
    /// back from the file).
    pub recent_frames_bytes: usize,
}

/// What recovery found, for logs, metrics and replay.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    pub segments: usize,
    pub undelivered_records: u64,
    pub undelivered_bytes: u64,
    pub torn_bytes_cut: u64,
    pub delivered_below: Seq,
    /// Where sequence numbers continue: the next record appended gets this one.
    pub next_seq: Seq,
    /// Payloads of the control frames in the segments kept (batch intents), in log order.
    pub controls: Vec<Bytes>,
}

/// Opens (recovering if needed) the WAL in `opts.dir` and starts its writer task. Must be called
/// within a tokio runtime.
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
    let (checkpoint, delivered_below) = Checkpoint::open(&dir)?;
    let mut report = RecoveryReport { delivered_below, ..Default::default() };

    let mut segments = Vec::new();
    let mut max_serial = 0;
    for (serial, path) in list_segments(&dir)? {
        max_serial = max_serial.max(serial);
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
        report.undelivered_records += end_seq.saturating_sub(first_seq.max(delivered_below));
        report.undelivered_bytes += scan.frame_bytes;
        report.controls.extend(scan.controls);
        opts.budget.force_reserve(scan.frame_bytes);
        segments.push(SegmentMeta { first_seq, end_seq, bytes: scan.frame_bytes, path });
    }
    sync_dir(&dir)?;
    report.segments = segments.len();

    let next_seq = segments.last().map_or(delivered_below, |s| s.end_seq.max(delivered_below));
    report.next_seq = next_seq;
    let (committed, _) = watch::channel(Committed { end: next_seq, closed: false });
    let shared = Arc::new(Shared {
        dir: dir.clone(),
        segments: Mutex::new(segments),
        committed,
        budget: opts.budget,
        epoch: AtomicU64::new(0),
        unavailable: Mutex::new(None),
        recent: Mutex::new(RecentFrames::new(opts.recent_frames_bytes)),
    });

    let (file, path) = create_segment(&dir, next_seq, max_serial + 1)?;
    shared.segments().push(SegmentMeta { first_seq: next_seq, end_seq: next_seq, bytes: 0, path: path.clone() });

    let (tx, rx) = mpsc::unbounded_channel();
    let writer = writer::Writer::new(writer::WriterStart {
        shared: shared.clone(),
        file,
        path,
        serial: max_serial + 1,
        next_seq,
        segment_bytes: opts.segment_bytes,
        checkpoint,
        delivered_below,
    });
    tokio::spawn(writer.run(rx));

    let reader = WalReader::new(shared.clone(), delivered_below, tx.clone());
    Ok((WalAppender { tx, shared }, reader, report))
}

/// `<first_seq>.<serial>.wal`. The serial makes names unique: a segment holding only control
/// frames shares its first sequence with the next one. Names without a serial (written before
/// serials existed) read as serial 0. Segments sort by `(first_seq, serial)`, which is log order.
fn segment_path(dir: &Path, first_seq: Seq, serial: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.{serial:010}.wal"))
}

fn parse_segment_name(name: &str) -> Option<(Seq, u64)> {
    let stem = name.strip_suffix(".wal")?;
    match stem.split_once('.') {
        Some((seq, serial)) => Some((seq.parse().ok()?, serial.parse().ok()?)),
        None => Some((stem.parse().ok()?, 0)),
    }
}

/// Segment files in log order, with their serials.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if let Some((seq, serial)) = path.file_name().and_then(|n| n.to_str()).and_then(parse_segment_name) {
            found.push(((seq, serial), path));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|((_, serial), p)| (serial, p)).collect())
}

/// Creates a segment with its header, durably. A file it could not finish (a full disk) is
/// removed again, so the next attempt can create it.
fn create_segment(dir: &Path, first_seq: Seq, serial: u64) -> Result<(File, PathBuf), WalError> {
    let path = segment_path(dir, first_seq, serial);
    let mut f = OpenOptions::new().create_new(true).write(true).open(&path).map_err(io_err(&path))?;
    let written =
        f.write_all(SEGMENT_MAGIC).and_then(|()| f.sync_all()).map_err(io_err(&path)).and_then(|()| sync_dir(dir));
    match written {
        Ok(()) => Ok((f, path)),
        Err(e) => {
            drop(f);
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

struct SegmentScan {
    /// `(first_seq, end_seq)` of the frames found, control frames included.
    range: Option<(Seq, Seq)>,
    valid_len: u64,
    torn_bytes: u64,
    frame_bytes: u64,
    controls: Vec<Bytes>,
}

/// Reads every frame of a segment, stopping at the first one that is incomplete or fails its checksum.
fn scan_segment(path: &Path) -> Result<SegmentScan, WalError> {
    let file = File::open(path).map_err(io_err(path))?;
    let total = file.metadata().map_err(io_err(path))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    let mut scan = SegmentScan { range: None, valid_len: 0, torn_bytes: total, frame_bytes: 0, controls: Vec::new() };
    if r.read_exact(&mut magic).is_err() || (&magic != SEGMENT_MAGIC && &magic != SEGMENT_MAGIC_V1) {
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
        scan.controls.extend(frame.control_payload());
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
    shared: Arc<Shared>,
}

impl WalAppender {
    /// Writes the frame and returns its first sequence number once it is on disk.
    pub async fn append(&self, frame: PendingFrame) -> Result<Seq, WalError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Append { frame, reply }).map_err(|_| WalError::Closed)?;
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// Writes a control frame (a batch intent) and returns once it is on disk.
    pub async fn append_control(&self, payload: &[u8]) -> Result<(), WalError> {
        self.append(PendingFrame::control(payload)).await.map(|_| ())
    }

    /// Stops accepting appends; the reader drains what was committed and then reports the end.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Close { reply }).is_ok() {
            let _ = rx.await;
        }
    }

    /// Why appends are refused right now, if they are (the writer is recovering from an I/O error).
    pub fn unavailable(&self) -> Option<String> {
        self.shared.unavailable.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests;
