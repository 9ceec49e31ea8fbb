//! Frames the writer has just committed, handed to the reader from memory.
//!
//! Under load the reader follows the writer closely: it is woken by every group commit and reads
//! the frames that were fsynced a moment ago. Reading them back from the segment file allocated a
//! second copy of every frame (~109 KiB per `PutRecordBatch` of 500 records) while the first was
//! being freed; with a thousand requests a second that churn alone kept tens of MiB of freed
//! memory waiting for the allocator to return it (BENCHMARKS.md, issue #29). So the writer keeps
//! the bytes it wrote after the fsync, and a reader that is caught up takes them from here.
//!
//! Only committed (fsynced) frames enter, so nothing here can be cut by the writer's recovery.
//! The bytes are exactly those on disk and the reader decodes them with the same
//! [`super::Frame::decode`] as a read from the file (checksum included), so delivery from memory
//! and replay from disk cannot disagree. A reader that falls behind by more than
//! [`RECENT_FRAMES_BYTES`] finds the oldest frames gone and reads them from the file, as before;
//! the file position it needs is kept with every frame, so it resumes without a scan.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::record::Seq;

/// Committed frames kept for the reader, per WAL: a few group commits' worth under load (16
/// connections commit ~1.7 MiB at a time), and the most a stalled pipeline holds here (counted in
/// BENCHMARKS.md, "The bound across pipelines, connections and plugins").
pub const RECENT_FRAMES_BYTES: usize = 4 << 20;

/// A committed frame: its bytes as written (header included) and where they are in the log.
#[derive(Debug)]
pub(super) struct RecentFrame {
    pub first_seq: Seq,
    pub end_seq: Seq,
    pub bytes: Bytes,
    /// The segment that holds the frame, and the offset just past it there.
    pub path: Arc<PathBuf>,
    pub end_offset: u64,
}

/// The frames in log order, bounded by bytes.
#[derive(Debug)]
pub(super) struct RecentFrames {
    frames: VecDeque<RecentFrame>,
    bytes: usize,
    limit: usize,
}

impl RecentFrames {
    pub fn new(limit: usize) -> Self {
        Self { frames: VecDeque::new(), bytes: 0, limit }
    }

    /// Adds a frame just committed, dropping the oldest beyond the limit. A frame of records only:
    /// control frames are never delivered, and a frame larger than the limit is not kept.
    pub fn push(&mut self, frame: RecentFrame) {
        if frame.bytes.len() > self.limit {
            return;
        }
        self.bytes += frame.bytes.len();
        self.frames.push_back(frame);
        while self.bytes > self.limit {
            self.pop_front();
        }
    }

    /// The frame holding `seq`, taken out together with every older frame (the reader never goes
    /// back). `None` when that frame is not here: it was dropped, or not committed yet.
    pub fn take(&mut self, seq: Seq) -> Option<RecentFrame> {
        while self.frames.front().is_some_and(|f| f.end_seq <= seq) {
            self.pop_front();
        }
        if self.frames.front().is_some_and(|f| f.first_seq <= seq) {
            return self.pop_front();
        }
        None
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn pop_front(&mut self) -> Option<RecentFrame> {
        let frame = self.frames.pop_front()?;
        self.bytes -= frame.bytes.len();
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first_seq: Seq, end_seq: Seq, len: usize) -> RecentFrame {
        RecentFrame {
            first_seq,
            end_seq,
            bytes: Bytes::from(vec![0u8; len]),
            path: Arc::new(PathBuf::from("0.wal")),
            end_offset: 0,
        }
    }

    #[test]
    fn the_reader_takes_the_frame_holding_its_sequence_and_older_frames_go() {
        let mut recent = RecentFrames::new(1000);
        recent.push(frame(0, 5, 100));
        recent.push(frame(5, 9, 100));
        recent.push(frame(9, 12, 100));
        // Sequence 6 is inside the second frame: the first is passed over and dropped.
        let taken = recent.take(6).map(|f| (f.first_seq, f.end_seq));
        assert_eq!(taken, Some((5, 9)));
        assert_eq!(recent.bytes(), 100);
        assert!(recent.take(12).is_none(), "a frame not committed yet is not here");
        assert_eq!(recent.bytes(), 0);
    }

    #[test]
    fn the_oldest_frames_are_dropped_beyond_the_limit_and_a_lagging_reader_finds_none() {
        let mut recent = RecentFrames::new(250);
        recent.push(frame(0, 1, 100));
        recent.push(frame(1, 2, 100));
        recent.push(frame(2, 3, 100));
        assert_eq!(recent.bytes(), 200);
        assert!(recent.take(0).is_none(), "frame 0 was dropped: the reader reads it from the file");
        assert_eq!(recent.take(1).map(|f| f.first_seq), Some(1));
    }

    #[test]
    fn a_frame_larger_than_the_limit_is_not_kept() {
        let mut recent = RecentFrames::new(50);
        recent.push(frame(0, 1, 100));
        assert_eq!(recent.bytes(), 0);
        assert!(recent.take(0).is_none());
    }
}
