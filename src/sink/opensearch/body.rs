//! A `_bulk` request body built in segments of at most [`SEGMENT`] bytes and sent as they are.
//!
//! A whole buffer goes out as one `_bulk` request (5 MiB of records are a 6 MiB body). Built as one
//! `Vec`, every request costs a multi-megabyte allocation; the allocator keeps such blocks for a
//! while after they are freed (mimalloc's purge delay), so a busy OpenSearch destination alone kept
//! tens of megabytes of freed memory resident (BENCHMARKS.md, "Fewer large allocations"). Segments
//! of 64 KiB are reused from the allocator's free lists at once; hyper writes them with vectored
//! writes, so the socket sees the same large writes. The body is copied once, as before, and its
//! SHA-256 (SigV4's payload hash) is taken over the segments instead of over another copy.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use sha2::Digest;

/// The largest segment: under mimalloc's medium size classes, and large enough that a `writev` of
/// hyper's sixteen buffers moves a megabyte.
pub const SEGMENT: usize = 64 << 10;

/// A body being written: full segments, and the one being filled.
#[derive(Default)]
pub struct Segments {
    full: VecDeque<Bytes>,
    current: Vec<u8>,
    len: usize,
}

impl Segments {
    /// Appends `bytes`, starting new segments as they fill.
    pub fn extend(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len();
        while !bytes.is_empty() {
            if self.current.len() == SEGMENT {
                self.full.push_back(Bytes::from(std::mem::take(&mut self.current)));
            }
            if self.current.capacity() == 0 {
                self.current.reserve_exact(SEGMENT);
            }
            let (now, later) = bytes.split_at(bytes.len().min(SEGMENT - self.current.len()));
            self.current.extend_from_slice(now);
            bytes = later;
        }
    }

    /// The finished body.
    pub fn finish(mut self) -> SegmentedBody {
        if !self.current.is_empty() {
            self.full.push_back(Bytes::from(self.current));
        }
        SegmentedBody { segments: self.full, remaining: self.len as u64 }
    }
}

impl std::io::Write for Segments {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.extend(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A finished body: its segments, sent in order with an exact length (so `Content-Length`, not
/// chunked encoding, which some proxies in front of OpenSearch refuse).
pub struct SegmentedBody {
    segments: VecDeque<Bytes>,
    remaining: u64,
}

impl SegmentedBody {
    /// SigV4's payload hash, over the segments in order.
    pub fn sha256(&self) -> [u8; 32] {
        let mut hash = sha2::Sha256::new();
        for segment in &self.segments {
            hash.update(segment);
        }
        hash.finalize().into()
    }

    /// The whole body in one piece (tests and error messages).
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        self.segments.iter().flat_map(|s| s.iter().copied()).collect()
    }
}

impl http_body::Body for SegmentedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.segments.pop_front();
        if let Some(segment) = &next {
            self.remaining -= segment.len() as u64;
        }
        Poll::Ready(next.map(|segment| Ok(http_body::Frame::data(segment))))
    }

    fn is_end_stream(&self) -> bool {
        self.segments.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn segments_hold_the_bytes_in_order_and_no_segment_is_larger_than_the_limit() {
        let mut body = Segments::default();
        let mut expected = Vec::new();
        for n in 0..20_000u32 {
            let line = format!("{{\"n\":{n}}}\n");
            body.write_all(line.as_bytes()).unwrap();
            expected.extend_from_slice(line.as_bytes());
        }
        body.extend(&vec![b'x'; 3 * SEGMENT + 5]);
        expected.extend(std::iter::repeat_n(b'x', 3 * SEGMENT + 5));
        let body = body.finish();
        assert!(body.segments.iter().all(|s| !s.is_empty() && s.len() <= SEGMENT));
        assert_eq!(body.to_vec(), expected);
        assert_eq!(body.sha256(), <[u8; 32]>::from(sha2::Sha256::digest(&expected)));
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(expected.len() as u64));
    }

    #[test]
    fn an_empty_body_has_no_segments() {
        let body = Segments::default().finish();
        assert!(http_body::Body::is_end_stream(&body));
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(0));
    }
}
