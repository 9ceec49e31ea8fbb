//! Record format conversion (spec §5): JSON records → Parquet or ORC files from a declared schema.
//!
//! A batch is converted in two steps so that per-record failures never fail a file: [`decode`]
//! turns every record into rows (or a [`ConversionFailure`] for that record alone), then the rows
//! are written as one Parquet or ORC file. Both formats compress inside the file, so the
//! destination's own compression must stay unset.

pub mod decode;
pub mod hive_type;
pub mod infer;
pub mod orc;
pub mod parquet;
pub mod timestamp;

use std::io::{self, Write};

use arrow_array::RecordBatch;

pub use decode::{ConversionFailure, FailKind, InputRules};
pub use hive_type::HiveType;

use crate::record::Record;

#[derive(Clone, Debug, PartialEq)]
pub struct ConversionSpec {
    pub schema: SchemaSpec,
    pub input: InputRules,
    pub output: OutputFormat,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaSpec {
    /// Columns from the config (inline or a schema file).
    Declared(Vec<(String, HiveType)>),
    /// Learned from the records; see [`infer`].
    Infer,
}

#[derive(Clone, Debug, PartialEq)]
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

    /// Decodes `records` into rows of `columns` (the declared ones, or the inferred ones in force).
    pub fn convert(&self, columns: &[(String, HiveType)], records: &[Record]) -> io::Result<Converted> {
        if columns.is_empty() {
            // Only possible with `schema: infer` before any key had a non-null value: nothing to
            // write, so the records go to the error prefix rather than vanish.
            let failure = ConversionFailure {
                kind: FailKind::Malformed,
                message: "Data does not match the schema. No column has a known type yet (schema: infer learns \
                          types from non-null values)"
                    .into(),
            };
            let table = RecordBatch::new_empty(std::sync::Arc::new(arrow_schema::Schema::empty()));
            return Ok(Converted { table, failures: (0..records.len()).map(|i| (i, failure.clone())).collect() });
        }
        let mut decoder = decode::Decoder::new(columns, self.input.clone());
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
    pub fn write(&self, columns: &[(String, HiveType)], table: &RecordBatch, out: impl Write + Send) -> io::Result<()> {
        match &self.output {
            OutputFormat::Parquet(p) => p.write(table, out).map_err(io::Error::other),
            OutputFormat::Orc(o) => o.write(columns, table, out),
        }
    }
}
