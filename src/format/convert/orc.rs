//! ORC output. Placeholder until the writer lands.

use std::io::{self, Write};

use arrow_array::RecordBatch;

use super::HiveType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrcCompression {
    None,
    Zlib,
    Snappy,
    Zstd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrcOptions {
    pub compression: OrcCompression,
    pub stripe_size_bytes: usize,
    pub block_size_bytes: usize,
}

impl Default for OrcOptions {
    fn default() -> Self {
        Self { compression: OrcCompression::Snappy, stripe_size_bytes: 64 << 20, block_size_bytes: 256 << 20 }
    }
}

impl OrcOptions {
    pub fn write(&self, _columns: &[(String, HiveType)], _table: &RecordBatch, _out: impl Write) -> io::Result<()> {
        Err(io::Error::other("ORC is not written yet"))
    }
}
