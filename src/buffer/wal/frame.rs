//! The on-disk frame: one PutRecord/PutRecordBatch request, checksummed as a unit.
//!
//! ```text
//! segment file = "SLUICEW1" frame*
//! frame        = body_len:u32le crc32c(body):u32le body
//! body         = first_seq:u64le arrival_ms:i64le count:u32le (len:u32le data)*count
//!              | first_seq:u64le 0:i64le CONTROL_BIT:u32le payload        (a control frame)
//! ```
//! A request is acknowledged as a whole, so it is written and checksummed as a whole: a torn frame
//! was never acknowledged and is cut on recovery. The magic's last byte is the format version.
//!
//! Control frames (version 2) carry no records: they hold pipeline metadata that must be exactly
//! as durable as the records around it, today a batch intent (see `buffer::intent`). They take no
//! sequence numbers, so `first_seq` of the next frame equals theirs. Version 1 segments (no
//! control frames) are still read; version 1 binaries cannot read version 2 segments.

use bytes::Bytes;
use crc_fast::{checksum, CrcAlgorithm};
use thiserror::Error;

use crate::record::{Record, Seq};

pub const SEGMENT_MAGIC: &[u8; 8] = b"SLUICEW2";
/// Segments written before control frames existed; read the same way.
pub const SEGMENT_MAGIC_V1: &[u8; 8] = b"SLUICEW1";
pub const FRAME_HEADER: usize = 8;
const BODY_HEADER: usize = 20;
const LEN_PREFIX: usize = 4;
/// Larger than any valid frame (500 records of 1,000 KiB plus headers); a bigger length is damage.
pub const MAX_BODY: usize = 600 << 20;
/// Set in a body's `count` field for a control frame.
const CONTROL_BIT: u32 = 1 << 31;

/// The number of records a raw `count` field stands for (none for a control frame).
pub fn record_count(raw: u32) -> u32 {
    if raw & CONTROL_BIT != 0 {
        0
    } else {
        raw
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame checksum mismatch")]
    Checksum,
    #[error("frame body is malformed: {0}")]
    Malformed(&'static str),
}

pub fn crc32c(data: &[u8]) -> u32 {
    checksum(CrcAlgorithm::Crc32Iscsi, data) as u32
}

/// Builds a frame in the request handler, so base64 decodes straight into the bytes the WAL
/// writes and the writer task only stamps the sequence number and checksum.
#[derive(Debug)]
pub struct FrameBuilder {
    buf: Vec<u8>,
    /// End offset of each record in `buf`, for accepting only a prefix when storage is nearly full.
    ends: Vec<usize>,
}

impl FrameBuilder {
    /// A frame sized for `records` records holding `data_bytes` bytes in all. An exact size
    /// matters: one byte short and the frame's buffer (often 100 KiB–4 MiB) is copied into one of
    /// twice the size, so every request would allocate and copy its data twice.
    pub fn new(arrival_ms: i64, records: usize, data_bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(FRAME_HEADER + BODY_HEADER + records * LEN_PREFIX + data_bytes);
        buf.resize(FRAME_HEADER + 8, 0); // header and first_seq, stamped at commit
        buf.extend_from_slice(&arrival_ms.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        Self { buf, ends: Vec::with_capacity(records) }
    }

    /// Bytes reserved and not written (tests: a frame that had to grow shows half its size here).
    #[cfg(test)]
    pub fn spare_capacity(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    /// Appends one record whose bytes `fill` writes onto the end of the buffer.
    pub fn push_with<E>(&mut self, fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<usize, E> {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; LEN_PREFIX]);
        if let Err(e) = fill(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        let len = self.buf.len() - start - LEN_PREFIX;
        self.buf[start..start + LEN_PREFIX].copy_from_slice(&(len as u32).to_le_bytes());
        self.ends.push(self.buf.len());
        Ok(len)
    }

    pub fn push(&mut self, data: &[u8]) {
        let _ = self.push_with::<()>(|b| {
            b.extend_from_slice(data);
            Ok(())
        });
    }

    pub fn count(&self) -> usize {
        self.ends.len()
    }

    /// Bytes the frame occupies on disk if only the first `n` records are kept.
    pub fn size_with(&self, n: usize) -> usize {
        match n {
            0 => 0,
            n => self.ends.get(n - 1).copied().unwrap_or(self.buf.len()),
        }
    }

    /// Keeps only the first `n` records.
    pub fn truncate(&mut self, n: usize) {
        if n < self.ends.len() {
            let end = self.size_with(n).max(FRAME_HEADER + BODY_HEADER);
            self.buf.truncate(end);
            self.ends.truncate(n);
        }
    }

    pub fn finish(mut self) -> PendingFrame {
        let count = self.ends.len() as u32;
        self.buf[FRAME_HEADER + 16..FRAME_HEADER + 20].copy_from_slice(&count.to_le_bytes());
        PendingFrame { bytes: self.buf, count, control: false }
    }
}

/// A frame waiting for its sequence number.
#[derive(Debug)]
pub struct PendingFrame {
    pub bytes: Vec<u8>,
    /// Records in the frame: the sequence numbers it takes.
    pub count: u32,
    /// A control frame: its bytes are not reserved by ingest, so the writer accounts for them.
    pub control: bool,
}

impl PendingFrame {
    /// A control frame carrying `payload`.
    pub fn control(payload: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(FRAME_HEADER + BODY_HEADER + payload.len());
        bytes.resize(FRAME_HEADER + 16, 0);
        bytes.extend_from_slice(&CONTROL_BIT.to_le_bytes());
        bytes.extend_from_slice(payload);
        Self { bytes, count: 0, control: true }
    }

    /// Stamps the first sequence number, length and checksum; the frame is then ready to write.
    pub fn seal(&mut self, first_seq: Seq) {
        let b = &mut self.bytes;
        b[FRAME_HEADER..FRAME_HEADER + 8].copy_from_slice(&first_seq.to_le_bytes());
        let body_len = (b.len() - FRAME_HEADER) as u32;
        let crc = crc32c(&b[FRAME_HEADER..]);
        b[0..4].copy_from_slice(&body_len.to_le_bytes());
        b[4..8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Parses a frame header: `(body_len, crc)`.
pub fn parse_header(h: &[u8; FRAME_HEADER]) -> (usize, u32) {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    (len, crc)
}

/// A frame read back from disk.
#[derive(Debug, Clone)]
pub struct Frame {
    pub first_seq: Seq,
    pub arrival_ms: i64,
    pub count: u32,
    control: bool,
    body: Bytes,
}

impl Frame {
    /// Checks the checksum and the structure; never panics on damaged input.
    pub fn decode(body: Bytes, crc: u32) -> Result<Self, FrameError> {
        if crc32c(&body) != crc {
            return Err(FrameError::Checksum);
        }
        if body.len() < BODY_HEADER {
            return Err(FrameError::Malformed("shorter than its header"));
        }
        let u64_at = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().unwrap_or([0; 8]));
        let first_seq = u64_at(0);
        let arrival_ms = u64_at(8) as i64;
        let raw_count = u32::from_le_bytes(body[16..20].try_into().unwrap_or([0; 4]));
        let control = raw_count & CONTROL_BIT != 0;
        if control && raw_count != CONTROL_BIT {
            return Err(FrameError::Malformed("a control frame with records"));
        }
        let count = record_count(raw_count);
        let frame = Self { first_seq, arrival_ms, count, control, body };
        // Walk the records once so later iteration can trust the lengths.
        let mut walked = 0u32;
        for r in frame.raw_records() {
            r?;
            walked += 1;
        }
        if walked != count {
            return Err(FrameError::Malformed("record count does not match the body"));
        }
        Ok(frame)
    }

    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    pub fn end_seq(&self) -> Seq {
        self.first_seq + u64::from(self.count)
    }

    /// A control frame's payload; `None` for a frame of records.
    pub fn control_payload(&self) -> Option<Bytes> {
        self.control.then(|| self.body.slice(BODY_HEADER..))
    }

    fn raw_records(&self) -> impl Iterator<Item = Result<Bytes, FrameError>> + '_ {
        let mut pos = if self.control { self.body.len() } else { BODY_HEADER };
        std::iter::from_fn(move || {
            if pos == self.body.len() {
                return None;
            }
            let Some(len_bytes) = self.body.get(pos..pos + LEN_PREFIX) else {
                pos = self.body.len();
                return Some(Err(FrameError::Malformed("truncated record length")));
            };
            let len = u32::from_le_bytes(len_bytes.try_into().unwrap_or([0; 4])) as usize;
            let start = pos + LEN_PREFIX;
            if start + len > self.body.len() {
                pos = self.body.len();
                return Some(Err(FrameError::Malformed("record runs past the frame")));
            }
            pos = start + len;
            Some(Ok(self.body.slice(start..start + len)))
        })
    }

    /// The frame's records with their sequence numbers, skipping those below `from`
    /// (a delivery watermark can fall inside a frame).
    pub fn records_from(&self, from: Seq) -> impl Iterator<Item = Record> + '_ {
        let (first, arrival_ms) = (self.first_seq, self.arrival_ms);
        self.raw_records()
            .filter_map(Result::ok)
            .enumerate()
            .map(move |(i, data)| Record::new(first + i as u64, arrival_ms, data))
            .filter(move |r| r.seq >= from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(records: &[&[u8]], seq: Seq) -> Vec<u8> {
        let mut b = FrameBuilder::new(1234, records.len(), 64);
        for r in records {
            b.push(r);
        }
        let mut f = b.finish();
        f.seal(seq);
        f.bytes
    }

    fn read(bytes: &[u8]) -> Result<Frame, FrameError> {
        let (len, crc) = parse_header(bytes[..8].try_into().unwrap());
        assert_eq!(len, bytes.len() - 8);
        Frame::decode(Bytes::copy_from_slice(&bytes[8..]), crc)
    }

    #[test]
    fn round_trips_records_and_sequence_numbers() {
        let f = read(&built(&[b"a", b"", b"ccc"], 10)).unwrap();
        assert_eq!((f.first_seq, f.arrival_ms, f.count, f.end_seq()), (10, 1234, 3, 13));
        let recs: Vec<_> = f.records_from(11).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].seq, &recs[0].data[..]), (11, &b""[..]));
        assert_eq!((recs[1].seq, &recs[1].data[..]), (12, &b"ccc"[..]));
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let good = built(&[b"hello", b"world"], 1);
        for i in 8..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                assert!(read(&bad).is_err(), "flip at byte {i} bit {bit} went unnoticed");
            }
        }
    }

    #[test]
    fn control_frames_carry_a_payload_and_no_records() {
        let mut f = PendingFrame::control(b"intent");
        f.seal(9);
        let f = read(&f.bytes).unwrap();
        assert_eq!((f.first_seq, f.count, f.end_seq()), (9, 0, 9));
        assert_eq!(f.control_payload().as_deref(), Some(&b"intent"[..]));
        assert_eq!(f.records_from(0).count(), 0);
        let records = read(&built(&[b"a"], 1)).unwrap();
        assert!(records.control_payload().is_none());
    }

    #[test]
    fn a_frame_sized_for_its_records_is_never_copied_into_a_larger_buffer() {
        let records: Vec<Vec<u8>> = (0..500).map(|i| vec![b'x'; 200 + i % 7]).collect();
        let data = records.iter().map(Vec::len).sum();
        let mut b = FrameBuilder::new(0, records.len(), data);
        let (capacity, start) = (b.buf.capacity(), b.buf.as_ptr());
        for r in &records {
            b.push(r);
        }
        assert_eq!((b.buf.capacity(), b.buf.as_ptr()), (capacity, start));
        assert_eq!(b.buf.len(), capacity, "sized exactly");
    }

    #[test]
    fn truncate_keeps_a_prefix() {
        let mut b = FrameBuilder::new(0, 0, 0);
        for r in [&b"aa"[..], b"bbb", b"c"] {
            b.push(r);
        }
        assert_eq!(b.size_with(1), 8 + 20 + 4 + 2);
        b.truncate(2);
        let mut f = b.finish();
        f.seal(5);
        let f = read(&f.bytes).unwrap();
        assert_eq!(
            f.records_from(0).map(|r| r.data.to_vec()).collect::<Vec<_>>(),
            vec![b"aa".to_vec(), b"bbb".to_vec()]
        );
    }
}
