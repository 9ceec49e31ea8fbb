//! Firehose's `CompressionFormat`s as streaming writers.
//!
//! Every codec is a `Write` adapter, so an encoder can stream records through it into upload
//! chunks without materialising the whole object twice.

use std::io::{self, Write};

use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Compression {
    #[default]
    #[serde(rename = "UNCOMPRESSED")]
    Uncompressed,
    #[serde(rename = "GZIP")]
    Gzip,
    #[serde(rename = "ZIP")]
    Zip,
    /// The snappy-java stream format (magic `\x82SNAPPY\0`), which is what Firehose writes.
    Snappy,
    #[serde(rename = "HADOOP_SNAPPY")]
    HadoopSnappy,
    /// Beyond Firehose: zstd frames, `.zst`.
    #[serde(rename = "ZSTD")]
    Zstd,
}

impl Compression {
    /// The extension Firehose appends when `FileExtension` is not set.
    pub fn default_extension(self) -> &'static str {
        match self {
            Compression::Uncompressed => "",
            Compression::Gzip => ".gz",
            Compression::Zip => ".zip",
            // Firehose probes show `.snappy` for both snappy flavours (the docs say `.hsnappy`).
            Compression::Snappy | Compression::HadoopSnappy => ".snappy",
            Compression::Zstd => ".zst",
        }
    }

    /// The `Content-Encoding` Firehose sets on S3 objects.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::Uncompressed => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zip => Some("zip"),
            Compression::Snappy => Some("snappy-java"),
            Compression::HadoopSnappy => Some("hadoop-snappy"),
            Compression::Zstd => Some("zstd"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Uncompressed => "UNCOMPRESSED",
            Compression::Gzip => "GZIP",
            Compression::Zip => "ZIP",
            Compression::Snappy => "Snappy",
            Compression::HadoopSnappy => "HADOOP_SNAPPY",
            Compression::Zstd => "ZSTD",
        }
    }

    /// Whether two streams of this codec written one after the other read back as one stream
    /// of both contents, so an object may be encoded in parts (`buffer::parts`). GZIP: a file is
    /// a series of members (RFC 1952 §2.2; gzip, Python, Java, Go, Node and Hadoop read them all,
    /// and Firehose's own objects of CloudWatch Logs records are such series). Hadoop snappy: a
    /// series of independent blocks. Not snappy-java (one stream header), not ZIP (one entry),
    /// and not ZSTD: its frames concatenate by the format, but python-zstandard's readers stop
    /// after the first frame unless asked not to, so a zstd object stays one frame.
    pub fn concatenates(self) -> bool {
        matches!(self, Compression::Uncompressed | Compression::Gzip | Compression::HadoopSnappy)
    }

    /// Wraps `inner` in this codec, at `level` or the codec's default (GZIP 6, ZSTD 3). `entry_name`
    /// names the single entry of a ZIP archive.
    pub fn writer<'a, W: Write + Send + 'a>(
        self,
        inner: W,
        entry_name: &str,
        level: Option<u32>,
    ) -> io::Result<Box<dyn FinishWrite + 'a>> {
        Ok(match self {
            Compression::Uncompressed => Box::new(Plain(inner)),
            Compression::Gzip => {
                Box::new(flate2::write::GzEncoder::new(inner, flate2::Compression::new(level.unwrap_or(6))))
            }
            Compression::Zip => Box::new(ZipOne::new(inner, entry_name)?),
            Compression::Snappy => Box::new(SnappyJava::new(inner)?),
            Compression::HadoopSnappy => Box::new(HadoopSnappy::new(inner)),
            Compression::Zstd => Box::new(zstd::stream::write::Encoder::new(inner, level.map_or(3, |l| l as i32))?),
        })
    }
}

/// A writer that must be told when the stream ends (to write trailers and flush).
pub trait FinishWrite: Write + Send {
    fn finish_stream(self: Box<Self>) -> io::Result<()>;
}

struct Plain<W>(W);

impl<W: Write> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> FinishWrite for Plain<W> {
    fn finish_stream(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> FinishWrite for flate2::write::GzEncoder<W> {
    fn finish_stream(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.flush()
    }
}

impl<W: Write + Send> FinishWrite for zstd::stream::write::Encoder<'_, W> {
    fn finish_stream(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.flush()
    }
}

/// A ZIP archive holding one deflated entry, written as a stream (data descriptors, no seeking).
struct ZipOne<W: Write> {
    zip: zip::ZipWriter<zip::write::StreamWriter<W>>,
}

impl<W: Write> ZipOne<W> {
    fn new(inner: W, entry_name: &str) -> io::Result<Self> {
        let mut zip = zip::ZipWriter::new_stream(inner);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file(entry_name, options).map_err(io::Error::other)?;
        Ok(Self { zip })
    }
}

impl<W: Write> Write for ZipOne<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.zip.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.zip.flush()
    }
}

impl<W: Write + Send> FinishWrite for ZipOne<W> {
    fn finish_stream(self: Box<Self>) -> io::Result<()> {
        let mut inner = self.zip.finish().map_err(io::Error::other)?.into_inner();
        inner.flush()
    }
}

/// snappy-java's `SnappyOutputStream` format: a 16-byte header (magic, version 1, compatible
/// version 1), then blocks of `[u32 BE compressed length][raw snappy block]`, each block holding
/// at most 32 KiB of input (snappy-java's default block size).
struct SnappyJava<W: Write> {
    inner: W,
    pending: Vec<u8>,
    encoder: snap::raw::Encoder,
    scratch: Vec<u8>,
}

const SNAPPY_JAVA_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const SNAPPY_JAVA_BLOCK: usize = 32 * 1024;

impl<W: Write> SnappyJava<W> {
    fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(SNAPPY_JAVA_MAGIC)?;
        inner.write_all(&1i32.to_be_bytes())?;
        inner.write_all(&1i32.to_be_bytes())?;
        Ok(Self {
            inner,
            pending: Vec::with_capacity(SNAPPY_JAVA_BLOCK),
            encoder: snap::raw::Encoder::new(),
            scratch: Vec::new(),
        })
    }

    fn emit(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.scratch.resize(snap::raw::max_compress_len(self.pending.len()), 0);
        let n = self.encoder.compress(&self.pending, &mut self.scratch).map_err(io::Error::other)?;
        self.inner.write_all(&(n as u32).to_be_bytes())?;
        self.inner.write_all(&self.scratch[..n])?;
        self.pending.clear();
        Ok(())
    }
}

impl<W: Write> Write for SnappyJava<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = (SNAPPY_JAVA_BLOCK - self.pending.len()).min(buf.len());
        self.pending.extend_from_slice(&buf[..take]);
        if self.pending.len() == SNAPPY_JAVA_BLOCK {
            self.emit()?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write + Send> FinishWrite for SnappyJava<W> {
    fn finish_stream(mut self: Box<Self>) -> io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

/// Hadoop's `BlockCompressorStream` framing used by `SnappyCodec`: for each block of at most
/// 256 KiB of input (`io.compression.codec.snappy.buffersize`), `[u32 BE uncompressed length]`
/// followed by one `[u32 BE compressed length][raw snappy block]` chunk.
struct HadoopSnappy<W: Write> {
    inner: W,
    pending: Vec<u8>,
    encoder: snap::raw::Encoder,
    scratch: Vec<u8>,
}

const HADOOP_SNAPPY_BLOCK: usize = 256 * 1024;

impl<W: Write> HadoopSnappy<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::with_capacity(HADOOP_SNAPPY_BLOCK),
            encoder: snap::raw::Encoder::new(),
            scratch: Vec::new(),
        }
    }

    fn emit(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.scratch.resize(snap::raw::max_compress_len(self.pending.len()), 0);
        let n = self.encoder.compress(&self.pending, &mut self.scratch).map_err(io::Error::other)?;
        self.inner.write_all(&(self.pending.len() as u32).to_be_bytes())?;
        self.inner.write_all(&(n as u32).to_be_bytes())?;
        self.inner.write_all(&self.scratch[..n])?;
        self.pending.clear();
        Ok(())
    }
}

impl<W: Write> Write for HadoopSnappy<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = (HADOOP_SNAPPY_BLOCK - self.pending.len()).min(buf.len());
        self.pending.extend_from_slice(&buf[..take]);
        if self.pending.len() == HADOOP_SNAPPY_BLOCK {
            self.emit()?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write + Send> FinishWrite for HadoopSnappy<W> {
    fn finish_stream(mut self: Box<Self>) -> io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = c.writer(&mut out, "entry", None).unwrap();
        w.write_all(data).unwrap();
        w.finish_stream().unwrap();
        out
    }

    fn sample() -> Vec<u8> {
        (0..100_000).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect()
    }

    #[test]
    fn gzip_and_zstd_round_trip() {
        let data = sample();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&compress(Compression::Gzip, &data)[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(zstd::decode_all(&compress(Compression::Zstd, &data)[..]).unwrap(), data);
    }

    #[test]
    fn a_level_trades_speed_for_size_and_still_decodes() {
        let data: Vec<u8> =
            (0..100_000).flat_map(|i| format!("{{\"n\":{},\"v\":{}}}\n", i, i * 7 % 13).into_bytes()).collect();
        let at = |c: Compression, level| {
            let mut out = Vec::new();
            let mut w = c.writer(&mut out, "entry", Some(level)).unwrap();
            w.write_all(&data).unwrap();
            w.finish_stream().unwrap();
            out
        };
        let (fast, small) = (at(Compression::Gzip, 1), at(Compression::Gzip, 9));
        assert!(fast.len() > small.len(), "{} vs {}", fast.len(), small.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&fast[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let (zstd_fast, zstd_small) = (at(Compression::Zstd, 1), at(Compression::Zstd, 19));
        assert_ne!(zstd_fast, zstd_small, "the level reaches the zstd encoder");
        assert_eq!(zstd::decode_all(&zstd_fast[..]).unwrap(), data);
    }

    #[test]
    fn snappy_java_blocks_decode() {
        let data = sample();
        let out = compress(Compression::Snappy, &data);
        assert_eq!(&out[..8], SNAPPY_JAVA_MAGIC);
        let mut pos = 16;
        let mut back = Vec::new();
        while pos < out.len() {
            let n = u32::from_be_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
            back.extend(snap::raw::Decoder::new().decompress_vec(&out[pos + 4..pos + 4 + n]).unwrap());
            pos += 4 + n;
        }
        assert_eq!(back, data);
    }

    #[test]
    fn hadoop_snappy_blocks_decode() {
        let data = sample();
        let out = compress(Compression::HadoopSnappy, &data);
        let (mut pos, mut back) = (0, Vec::new());
        while pos < out.len() {
            let raw = u32::from_be_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
            let n = u32::from_be_bytes(out[pos + 4..pos + 8].try_into().unwrap()) as usize;
            let block = snap::raw::Decoder::new().decompress_vec(&out[pos + 8..pos + 8 + n]).unwrap();
            assert_eq!(block.len(), raw);
            back.extend(block);
            pos += 8 + n;
        }
        assert_eq!(back, data);
    }

    #[test]
    fn uncompressed_is_identity() {
        assert_eq!(compress(Compression::Uncompressed, b"abc"), b"abc");
    }
}
