//! Turning a batch of records into an object: its name and prefix (`object_key.rs`, Firehose's key
//! language), a record encoding, then a codec; and Firehose's error records (`error_record.rs`).
//!
//! Row encoders write records as-is (optionally newline-delimited) and the destination's codec
//! compresses them. Columnar encoders (Parquet, ORC) compress inside the file, so they pair with
//! [`Compression::Uncompressed`] at this level.

pub mod compression;
pub mod convert;
pub mod error_record;
pub mod object_key;

use std::io::{self, Write};

pub use compression::Compression;

use crate::record::Record;

/// Writes a batch's records as one object's uncompressed payload.
pub trait RecordEncoder: Send + Sync {
    fn encode(&self, records: &[Record], out: &mut dyn Write) -> io::Result<()>;
}

/// Firehose's default: records concatenated as they came, or each followed by `\n`
/// (`append_delimiter`, what most users want and what Firehose makes them ask for).
pub struct RawEncoder {
    pub append_delimiter: bool,
}

impl RawEncoder {
    /// Bytes a record adds to the object before compression; buffering sizes count these.
    pub fn weight(&self, record: &Record) -> usize {
        record.data.len() + usize::from(self.append_delimiter)
    }
}

impl RecordEncoder for RawEncoder {
    fn encode(&self, records: &[Record], out: &mut dyn Write) -> io::Result<()> {
        for r in records {
            out.write_all(&r.data)?;
            if self.append_delimiter {
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    }
}

/// A complete object format: record encoding, codec and the file extension.
pub struct ObjectFormat {
    pub encoder: RawEncoder,
    pub compression: Compression,
    /// The codec's level, or its default.
    pub compression_level: Option<u32>,
    pub extension: String,
}

impl ObjectFormat {
    /// The entry name inside a ZIP object: the object's file name without its extension.
    pub fn entry_name(&self, key: &str) -> String {
        key.rsplit('/').next().unwrap_or(key).trim_end_matches(&self.extension).to_string()
    }

    /// Encodes and compresses `records` into `sink`. Deterministic, so a retry reproduces the
    /// object byte for byte.
    pub fn write_object(&self, records: &[Record], entry_name: &str, sink: impl Write + Send) -> io::Result<()> {
        let sink = io::BufWriter::with_capacity(256 << 10, sink);
        let mut writer = self.compression.writer(sink, entry_name, self.compression_level)?;
        self.encoder.encode(records, &mut writer)?;
        writer.finish_stream()
    }

    /// Encodes and compresses `records` into a buffer of their own: one part of an object whose
    /// codec [concatenates](Compression::concatenates). No ZIP entry is named (parts never are ZIP).
    pub fn encode_part(&self, records: &[Record], raw_bytes: usize) -> io::Result<Vec<u8>> {
        // About what GZIP makes of JSON lines; the buffer grows when it is not enough.
        let mut out = Vec::with_capacity(raw_bytes / 6 + 64);
        let mut writer = self.compression.writer(&mut out, "", self.compression_level)?;
        self.encoder.encode(records, &mut writer)?;
        writer.finish_stream()?;
        if out.capacity() > out.len() + out.len() / 4 {
            // Parts wait for the rest of their batch: they should not hold a doubling's slack.
            out.shrink_to_fit();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn delimiter_follows_every_record() {
        let records: Vec<Record> =
            ["a", "b"].iter().enumerate().map(|(i, d)| Record::new(i as u64, 0, Bytes::from(*d))).collect();
        let f = ObjectFormat {
            encoder: RawEncoder { append_delimiter: true },
            compression: Compression::Uncompressed,
            compression_level: None,
            extension: String::new(),
        };
        let mut out = Vec::new();
        f.write_object(&records, "x", &mut out).unwrap();
        assert_eq!(out, b"a\nb\n");
        assert_eq!(f.encoder.weight(&records[0]), 2);
    }

    #[test]
    fn parts_of_concatenating_codecs_read_back_as_one_stream() {
        use std::io::Read;
        let records: Vec<Record> =
            (0..3000u64).map(|i| Record::new(i, 0, Bytes::from(format!("{{\"n\":{i}}}")))).collect();
        let format = |compression| ObjectFormat {
            encoder: RawEncoder { append_delimiter: true },
            compression,
            compression_level: None,
            extension: String::new(),
        };
        let mut whole = Vec::new();
        format(Compression::Uncompressed).write_object(&records, "", &mut whole).unwrap();
        let gzip = format(Compression::Gzip);
        let mut object = Vec::new();
        for part in records.chunks(1000) {
            object.extend(gzip.encode_part(part, 0).unwrap());
        }
        let mut read = Vec::new();
        flate2::read::MultiGzDecoder::new(&object[..]).read_to_end(&mut read).unwrap();
        assert!(read == whole, "gzip members in a row are the records in order");
        assert!(Compression::Gzip.concatenates() && !Compression::Zip.concatenates());
        assert!(!Compression::Snappy.concatenates() && !Compression::Zstd.concatenates());
    }
}
