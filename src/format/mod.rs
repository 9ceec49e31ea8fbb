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
}
