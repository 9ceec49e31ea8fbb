//! Record format conversion (spec §5): JSON records → Parquet or ORC files from a declared schema.

pub mod decode;
pub mod hive_type;
pub mod timestamp;
