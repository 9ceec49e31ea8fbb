//! Encoding a buffer while it fills: an open batch hands each run of records (up to
//! [`PART_BYTES`] before compression) to a [`PartEncoder`] and keeps only the encoded, compressed
//! part, so a buffer that waits for its size or interval holds compressed bytes instead of
//! decoded records and the WAL frames they slice (issue #29: buffered records were the largest part
//! of the heap). The object is the parts in order, which is one valid stream only for codecs whose
//! streams concatenate (`Compression::concatenates`); other batches keep their records until the cut.
//!
//! A part names nothing: the batch's identity, sequences, oldest arrival and record count are kept
//! by the batch as records join it, so the object key and the recorded intent are what they would
//! be without parts, and a replay after a crash (which re-cuts the batch from its records, in one
//! part) writes the same key with the same records.

use bytes::Bytes;

use crate::record::Record;

/// Raw bytes of records encoded together as one part, at most: large enough that a part's stream
/// header and its fresh compression dictionary cost nothing measurable (GZIP's window is 32 KiB),
/// small enough that the records waiting for it are a small fraction of a 5 MiB buffer.
pub const PART_BYTES: usize = 1 << 20;

/// The part size for buffers of `buffer_bytes`: a quarter of the buffer, between 64 KiB and
/// [`PART_BYTES`], so that a small buffer is encoded in parts too.
pub fn part_bytes(buffer_bytes: usize) -> usize {
    (buffer_bytes / 4).clamp(64 << 10, PART_BYTES)
}

/// A part being encoded: its bytes, or why encoding failed (an in-memory encode only fails on a bug).
pub type EncodedPart = tokio::task::JoinHandle<Result<Bytes, String>>;

/// Encodes runs of a batch's records off the caller's thread.
pub trait PartEncoder: Send + Sync {
    /// Starts encoding `records` (`raw_bytes` before compression); the records are dropped as
    /// soon as they are encoded.
    fn start(&self, records: Vec<Record>, raw_bytes: usize) -> EncodedPart;

    /// Whether batches should be encoded early now (a tap that shows delivered records needs
    /// them kept until delivery).
    fn enabled(&self) -> bool;
}
