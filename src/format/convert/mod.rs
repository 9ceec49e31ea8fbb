//! Record format conversion (spec §5): JSON records → Parquet or ORC files from a declared schema.
//!
//! A batch is converted in two steps so that per-record failures never fail a file: [`decode`]
//! turns every record into rows (or a [`ConversionFailure`] for that record alone), then the rows
//! are written as one Parquet or ORC file. Both formats compress inside the file, so the
//! destination's own compression must stay unset.

pub mod decode;
pub mod hive_type;
pub mod orc;
pub mod parquet;
pub mod timestamp;

use std::io::{self, Write};

use arrow_array::RecordBatch;

pub use decode::{ConversionFailure, FailKind, InputRules};
pub use hive_type::HiveType;

use crate::record::Record;

#[derive(Clone, Debug)]
pub struct ConversionSpec {
    pub columns: Vec<(String, HiveType)>,
    pub input: InputRules,
    pub output: OutputFormat,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet(parquet::ParquetOptions),
    Orc(orc::OrcOptions),
}

/// A batch after decoding: the rows that converted, and each record that did not, by its index.
pub struct Converted {
    pub table: RecordBatch,
    pub failures: Vec<(usize, ConversionFailure)>,
}

impl ConversionSpec {
    /// Firehose names converted objects `.parquet` / `.orc` (spec §4).
    pub fn extension(&self) -> &'static str {
        match self.output {
            OutputFormat::Parquet(_) => ".parquet",
            OutputFormat::Orc(_) => ".orc",
        }
    }

    pub fn convert(&self, records: &[Record]) -> io::Result<Converted> {
        let mut decoder = decode::Decoder::new(&self.columns, self.input.clone());
        let mut failures = Vec::new();
        for (i, r) in records.iter().enumerate() {
            if let Err(f) = decoder.push(&r.data) {
                failures.push((i, f));
            }
        }
        let table = decoder.finish().map_err(io::Error::other)?;
        Ok(Converted { table, failures })
    }

    /// Writes `table` as one file. Deterministic, so a retried upload has the same bytes.
    pub fn write(&self, table: &RecordBatch, out: impl Write + Send) -> io::Result<()> {
        match &self.output {
            OutputFormat::Parquet(p) => p.write(table, out).map_err(io::Error::other),
            OutputFormat::Orc(o) => o.write(&self.columns, table, out),
        }
    }
}
