//! Parquet output through the arrow/parquet crates, with ParquetSerDe's knobs (spec §5).

use std::io::Write;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetCompression {
    Uncompressed,
    Snappy,
    Gzip,
    Zstd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetOptions {
    pub compression: ParquetCompression,
    /// Target data page size (Firehose default 1 MiB, minimum 64 KiB).
    pub page_size_bytes: usize,
    /// Target row group size (Firehose's HDFS block size; default 256 MiB).
    pub block_size_bytes: usize,
    pub enable_dictionary_compression: bool,
    /// V1 (Firehose's default) or V2 data pages.
    pub writer_version_2: bool,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        Self {
            compression: ParquetCompression::Snappy,
            page_size_bytes: 1 << 20,
            block_size_bytes: 256 << 20,
            enable_dictionary_compression: false,
            writer_version_2: false,
        }
    }
}

impl ParquetOptions {
    fn properties(&self) -> Result<WriterProperties, ParquetError> {
        let compression = match self.compression {
            ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Gzip => Compression::GZIP(GzipLevel::default()),
            // Level 3 is zstd's own default: the best speed/ratio trade for a write-once lake file.
            ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::try_new(3)?),
        };
        Ok(WriterProperties::builder()
            .set_compression(compression)
            .set_data_page_size_limit(self.page_size_bytes.max(1))
            .set_dictionary_enabled(self.enable_dictionary_compression)
            .set_writer_version(if self.writer_version_2 {
                WriterVersion::PARQUET_2_0
            } else {
                WriterVersion::PARQUET_1_0
            })
            .set_max_row_group_row_count(None)
            .set_max_row_group_bytes(Some(self.block_size_bytes.max(1)))
            // Page-level min/max and null counts: what query engines prune with.
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_created_by(concat!("sluice version ", env!("CARGO_PKG_VERSION")).to_string())
            .build())
    }

    /// Writes one Parquet file holding `batch`.
    pub fn write<W: Write + Send>(&self, batch: &RecordBatch, out: W) -> Result<(), ParquetError> {
        let mut writer = ArrowWriter::try_new(out, batch.schema(), Some(self.properties()?))?;
        // Hand the writer slices so that row groups can close at the byte limit mid-batch.
        const SLICE_ROWS: usize = 8192;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = SLICE_ROWS.min(batch.num_rows() - offset);
            writer.write(&batch.slice(offset, len))?;
            offset += len;
        }
        writer.close()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use bytes::Bytes;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    #[test]
    fn row_groups_close_at_the_block_size() {
        let n = 200_000;
        let schema =
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true), Field::new("s", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("value {i:>20}")))),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        let opts = ParquetOptions { block_size_bytes: 1 << 20, ..Default::default() };
        opts.write(&batch, &mut out).unwrap();
        let meta = SerializedFileReader::new(Bytes::from(out)).unwrap().metadata().clone();
        assert_eq!(meta.file_metadata().num_rows(), n);
        assert!(meta.num_row_groups() > 3, "{} row groups", meta.num_row_groups());
        assert!(meta.file_metadata().created_by().unwrap_or_default().starts_with("sluice"));
    }
}
