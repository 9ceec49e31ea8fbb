//! The delivery side of the WAL: reads committed records in order and reports what is delivered.
//!
//! Frames committed a moment ago come from memory (`recent.rs`), older ones from the segment files;
//! both are decoded by the same [`super::Frame::decode`].

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::frame::{parse_header, record_count, SEGMENT_MAGIC};
use super::Frame;
use super::{io_err, read_frame, read_full, Command, Committed, SegmentMeta, Shared, WalError, FRAME_HEADER};
use crate::record::{Record, Seq};

/// Where the reader is: an open segment and the writer epoch it was opened in.
struct Position {
    reader: BufReader<File>,
    path: PathBuf,
    epoch: u64,
}

/// Reads committed records in order, from the delivered watermark on, and frees what is delivered.
pub struct WalReader {
    shared: Arc<Shared>,
    committed: watch::Receiver<Committed>,
    next_seq: Seq,
    position: Option<Position>,
    resume: Option<(Arc<PathBuf>, u64)>,
    delivered_below: Seq,
    /// Sends releases to the writer task.
    control: mpsc::UnboundedSender<Command>,
}

impl WalReader {
    pub(super) fn new(shared: Arc<Shared>, delivered_below: Seq, control: mpsc::UnboundedSender<Command>) -> Self {
        let committed = shared.committed.subscribe();
        Self { shared, committed, next_seq: delivered_below, position: None, resume: None, delivered_below, control }
    }

    /// Waits for committed records and returns up to about `max_bytes` of them.
    /// Returns `Ok(None)` once the WAL is closed and everything committed has been read.
    ///
    /// Cancel-safe: the only await is the wait for the writer's commit signal; reading is done
    /// synchronously, which is cheap because freshly committed frames are in the page cache.
    /// An error (no file descriptor to open the next segment, say) leaves the reader where it
    /// was, so the caller can retry.
    pub async fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Vec<Record>>, WalError> {
        loop {
            let committed = *self.committed.borrow_and_update();
            if self.next_seq < committed.end {
                let mut state = ReadState {
                    shared: self.shared.clone(),
                    next_seq: self.next_seq,
                    position: self.position.take(),
                    resume: self.resume.take(),
                };
                let result = state.read(committed.end, max_bytes);
                self.next_seq = state.next_seq;
                self.position = state.position;
                self.resume = state.resume;
                let records = result?;
                if !records.is_empty() {
                    return Ok(Some(records));
                }
                if self.next_seq < committed.end {
                    // Committed records exist but could not be reached (should not happen: the
                    // writer lists a segment before writing to it). Retry shortly rather than
                    // spin, and never wait for a signal that an idle writer would not send.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
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

    /// Everything below `seq` is delivered. The writer task, which owns the segment files,
    /// persists the watermark (within half a second) and deletes the segments it covers. Without
    /// `force` this returns at once; with `force` (shutdown) it waits until the checkpoint is on disk.
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

/// The segment that holds `seq`: the last one (in log order) starting at or below it. A segment of
/// control frames only shares its first sequence with the next, which is then the one chosen.
fn holding(shared: &Shared, seq: Seq) -> Option<SegmentMeta> {
    let segments = shared.segments();
    segments.iter().rev().find(|s| s.first_seq <= seq).or(segments.first()).cloned()
}

struct ReadState {
    shared: Arc<Shared>,
    next_seq: Seq,
    position: Option<Position>,
    /// Where the file continues after frames taken from memory: a segment and an offset in it.
    resume: Option<(Arc<PathBuf>, u64)>,
}

impl ReadState {
    /// Reads up to `max_bytes` of records below `committed`. An error after some records were
    /// read returns those records (the position has moved past them); the error comes back on the
    /// next call, which starts at the first record not returned.
    fn read(&mut self, committed: Seq, max_bytes: usize) -> Result<Vec<Record>, WalError> {
        let mut out = Vec::new();
        match self.read_into(&mut out, committed, max_bytes) {
            Err(e) if out.is_empty() => Err(e),
            Err(e) => {
                tracing::debug!(error = %e, records = out.len(), "WAL read stopped early; returning what was read");
                self.position = None;
                Ok(out)
            }
            Ok(()) => Ok(out),
        }
    }

    fn read_into(&mut self, out: &mut Vec<Record>, committed: Seq, max_bytes: usize) -> Result<(), WalError> {
        let mut bytes = 0;
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        if self.position.as_ref().is_some_and(|p| p.epoch != epoch) {
            // The writer cut an unsynced tail since this file was opened: do not trust buffered bytes.
            self.position = None;
        }
        while self.next_seq < committed && bytes < max_bytes {
            if let Some(frame) = self.take_recent() {
                for record in frame.records_from(self.next_seq) {
                    bytes += record.data.len();
                    out.push(record);
                }
                self.next_seq = self.next_seq.max(frame.end_seq());
                continue;
            }
            if self.position.is_none() {
                self.position = Some(self.open_resumed(epoch)?);
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
                    // End of this segment: committed data continues in the segment that holds
                    // `next_seq`, if that is another one (this one may even have been deleted).
                    let moved_on = holding(&self.shared, self.next_seq).is_some_and(|s| s.path != pos.path);
                    if !moved_on {
                        break;
                    }
                    self.position = None;
                }
                Err(reason) => {
                    return Err(WalError::Corrupt { path: pos.path.clone(), offset, reason });
                }
            }
        }
        Ok(())
    }

    /// The frame holding `next_seq` if the writer still has it in memory. The file position moves
    /// past it: the next read from disk resumes right after it.
    fn take_recent(&mut self) -> Option<Frame> {
        let recent = self.shared.recent().take(self.next_seq)?;
        let (len, crc) = parse_header(recent.bytes.get(..FRAME_HEADER)?.try_into().ok()?);
        let frame = match Frame::decode(recent.bytes.slice(FRAME_HEADER..), crc) {
            Ok(frame) if len == recent.bytes.len() - FRAME_HEADER => frame,
            // Cannot happen (these are the bytes the writer checksummed); the file is the truth.
            _ => {
                tracing::warn!(seq = self.next_seq, "a frame kept in memory does not decode; reading it from the file");
                return None;
            }
        };
        self.position = None;
        self.resume = Some((recent.path, recent.end_offset));
        Some(frame)
    }

    /// Opens the file where the frames taken from memory left off, or else the segment holding
    /// `next_seq` at the frame containing it.
    fn open_resumed(&mut self, epoch: u64) -> Result<Position, WalError> {
        if let Some((path, offset)) = self.resume.take() {
            let holds = holding(&self.shared, self.next_seq).is_some_and(|s| s.path == *path);
            if holds {
                let file = File::open(&*path).map_err(io_err(&path))?;
                let mut reader = BufReader::with_capacity(1 << 20, file);
                reader.seek(SeekFrom::Start(offset)).map_err(io_err(&path))?;
                return Ok(Position { reader, path: (*path).clone(), epoch });
            }
        }
        self.open_at(self.next_seq, epoch)
    }

    /// Opens the segment holding `seq` and skips to the frame containing it.
    fn open_at(&self, seq: Seq, epoch: u64) -> Result<Position, WalError> {
        let Some(meta) = holding(&self.shared, seq) else {
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
            let count = record_count(u32::from_le_bytes(header[24..28].try_into().unwrap_or([0; 4])));
            if first + u64::from(count) > seq {
                reader.seek(SeekFrom::Start(offset)).map_err(io_err(&meta.path))?;
                break;
            }
            reader.seek(SeekFrom::Start(offset + (FRAME_HEADER + len) as u64)).map_err(io_err(&meta.path))?;
        }
        Ok(Position { reader, path: meta.path, epoch })
    }
}
