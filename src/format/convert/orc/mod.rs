//! ORC output, written by sluice on top of orc-rust's public protobuf definitions.
//!
//! orc-rust's own writer handles only flat primitive columns (and panics on others), so sluice
//! encodes columns itself: every Hive type including decimal and nested array/map/struct, with
//! the version-1 run-length encodings (`DIRECT`, which every ORC reader supports), per-stripe and
//! per-file column statistics, and ZLIB/SNAPPY/ZSTD compression framed in ORC's 3-byte chunk
//! headers, a row index (positions and statistics every `row_index_stride` rows) in every stripe,
//! and bloom filters for the columns that ask for them.
//!
//! File layout: `ORC` | stripes (data streams, stripe footer) | metadata (stripe statistics) |
//! footer | postscript | postscript length.

mod bloom;
mod column;
mod encoding;
mod stats;

use std::io::{self, Write};

use arrow_array::RecordBatch;
use orc_rust::proto;
use prost::Message;

use super::HiveType;
use bloom::Bloom;
use column::{encode_column, ColumnOut, StripeStreams};
use stats::Stats;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrcCompression {
    None,
    Zlib,
    Snappy,
    Zstd,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OrcOptions {
    pub compression: OrcCompression,
    /// Target uncompressed stripe size (Firehose default 64 MiB).
    pub stripe_size_bytes: usize,
    /// Rows per row-index entry (Firehose default 10,000).
    pub row_index_stride: usize,
    /// Top-level primitive columns that get a bloom filter per row group.
    pub bloom_filter_columns: Vec<String>,
    pub bloom_filter_fpp: f64,
    /// Mark files as ORC 0.11 rather than 0.12 (Firehose's FormatVersion V0_11).
    pub format_0_11: bool,
    /// String columns whose distinct values are at most this fraction of their values in a stripe
    /// are dictionary-encoded (Hive's default 0.8; 0 turns dictionaries off).
    pub dictionary_key_threshold: f64,
}

impl Default for OrcOptions {
    fn default() -> Self {
        Self {
            compression: OrcCompression::Snappy,
            stripe_size_bytes: 64 << 20,
            row_index_stride: 10_000,
            bloom_filter_columns: Vec::new(),
            bloom_filter_fpp: 0.05,
            format_0_11: false,
            dictionary_key_threshold: 0.8,
        }
    }
}

/// Size of each compressed chunk (ORC's default, 256 KiB).
const COMPRESSION_BLOCK: usize = 256 << 10;
/// Fewest rows per stripe, so a stripe's fixed costs stay small against its data.
const MIN_STRIPE_ROWS: usize = 1024;

impl OrcOptions {
    /// Writes one ORC file holding `table`, whose columns follow `columns`.
    pub fn write(&self, columns: &[(String, HiveType)], table: &RecordBatch, mut out: impl Write) -> io::Result<()> {
        let root = HiveType::Struct(columns.to_vec());
        let mut types = Vec::new();
        type_tree(&root, &mut types);
        let column_count = types.len();
        let bloom_ids: Vec<u32> = columns
            .iter()
            .zip(types[0].subtypes.iter())
            .filter(|((name, ty), _)| ty.is_primitive() && self.bloom_filter_columns.iter().any(|b| b == name))
            .map(|(_, id)| *id)
            .collect();
        let stride = self.row_index_stride.max(1);

        let rows = table.num_rows();
        let memory = table.get_array_memory_size().max(1);
        let rows_per_stripe = ((self.stripe_size_bytes as u128 * rows as u128 / memory as u128) as usize)
            .max(MIN_STRIPE_ROWS)
            .min(rows.max(1));

        out.write_all(b"ORC")?;
        let mut offset = 3u64;
        let mut stripes = Vec::new();
        let mut stripe_stats = Vec::new();
        let mut file_stats = vec![Stats::default(); column_count];
        let mut start = 0;
        while start < rows {
            let len = rows_per_stripe.min(rows - start);
            let slice = table.slice(start, len);
            let mut s = StripeStreams::new(
                column_count,
                bloom_ids.clone(),
                self.bloom_filter_fpp,
                stride,
                self.dictionary_key_threshold,
            );
            let selected: Vec<usize> = (0..len).collect();
            let starts: Vec<usize> = (0..len).step_by(stride).collect();
            // The root struct: every row present, one value per row in each group.
            s.stats[0].add_values(len as u64);
            s.columns[0].group_stats = starts
                .iter()
                .enumerate()
                .map(|(g, &st)| {
                    let mut stats = Stats::default();
                    stats.add_values((starts.get(g + 1).copied().unwrap_or(len) - st) as u64);
                    stats
                })
                .collect();
            let mut next_id = 1u32;
            for ((_, ty), array) in columns.iter().zip(slice.columns()) {
                encode_column(array.as_ref(), &selected, &starts, ty, &mut next_id, &mut s)?;
            }
            let stripe = self.write_stripe(&mut out, s.columns, column_count, starts.len())?;
            stripes.push(proto::StripeInformation {
                offset: Some(offset),
                index_length: Some(stripe.index_length),
                data_length: Some(stripe.data_length),
                footer_length: Some(stripe.footer_length),
                number_of_rows: Some(len as u64),
                ..Default::default()
            });
            offset += stripe.index_length + stripe.data_length + stripe.footer_length;
            for (file, stripe) in file_stats.iter_mut().zip(&s.stats) {
                file.merge(stripe);
            }
            stripe_stats.push(proto::StripeStatistics { col_stats: s.stats.iter().map(Stats::to_proto).collect() });
            start += len;
        }

        let metadata = self.compress(&proto::Metadata { stripe_stats }.encode_to_vec())?;
        out.write_all(&metadata)?;
        let footer = proto::Footer {
            header_length: Some(3),
            content_length: Some(offset),
            stripes,
            types,
            number_of_rows: Some(rows as u64),
            statistics: file_stats.iter().map(Stats::to_proto).collect(),
            row_index_stride: Some(stride as u32),
            software_version: Some(concat!("sluice ", env!("CARGO_PKG_VERSION")).into()),
            ..Default::default()
        };
        let footer = self.compress(&footer.encode_to_vec())?;
        out.write_all(&footer)?;
        let postscript = proto::PostScript {
            footer_length: Some(footer.len() as u64),
            compression: Some(self.compression_kind() as i32),
            compression_block_size: (self.compression != OrcCompression::None).then_some(COMPRESSION_BLOCK as u64),
            version: if self.format_0_11 { vec![0, 11] } else { vec![0, 12] },
            metadata_length: Some(metadata.len() as u64),
            // ORC-135: timestamp statistics and bloom filters are in UTC, as this writer makes them.
            writer_version: Some(6),
            magic: Some("ORC".into()),
            ..Default::default()
        }
        .encode_to_vec();
        out.write_all(&postscript)?;
        let ps_len = u8::try_from(postscript.len()).map_err(|_| io::Error::other("ORC postscript too long"))?;
        out.write_all(&[ps_len])?;
        out.flush()
    }

    /// Writes a stripe: the index section (each column's ROW_INDEX, then its BLOOM_FILTER_UTF8),
    /// the data section (each column's streams), and the stripe footer.
    fn write_stripe(
        &self,
        out: &mut impl Write,
        columns: Vec<ColumnOut>,
        column_count: usize,
        groups: usize,
    ) -> io::Result<StripeSizes> {
        let mut footer = proto::StripeFooter { writer_timezone: Some("UTC".into()), ..Default::default() };
        let mut index_streams = Vec::new();
        let mut data_streams = Vec::new();
        for (id, column) in columns.into_iter().enumerate() {
            let mut positions: Vec<Vec<u64>> = vec![Vec::new(); groups];
            for stream in column.streams {
                let marks: Vec<usize> = stream.marks.iter().map(|m| m.offset).collect();
                let (bytes, chunk_starts) = self.compress_marked(&stream.bytes, &marks)?;
                for (g, (mark, chunk_start)) in stream.marks.iter().zip(chunk_starts).enumerate() {
                    if let Some(p) = positions.get_mut(g) {
                        if self.compression == OrcCompression::None {
                            p.push(mark.offset as u64);
                        } else {
                            // The chunk starts exactly at the mark, so 0 bytes into it.
                            p.extend([chunk_start, 0]);
                        }
                        p.extend(&mark.extra);
                    }
                }
                data_streams.push((stream.kind, id as u32, bytes));
            }
            let entries = positions
                .into_iter()
                .enumerate()
                .map(|(g, positions)| proto::RowIndexEntry {
                    positions,
                    statistics: column.group_stats.get(g).map(Stats::to_proto),
                })
                .collect();
            let index = proto::RowIndex { entry: entries }.encode_to_vec();
            index_streams.push((proto::stream::Kind::RowIndex, id as u32, self.compress(&index)?));
            let mut encoding = match column.dictionary_size {
                Some(size) => proto::ColumnEncoding {
                    kind: Some(proto::column_encoding::Kind::Dictionary as i32),
                    dictionary_size: Some(size),
                    ..Default::default()
                },
                None => proto::ColumnEncoding {
                    kind: Some(proto::column_encoding::Kind::Direct as i32),
                    ..Default::default()
                },
            };
            if let Some(blooms) = column.blooms {
                let index = proto::BloomFilterIndex { bloom_filter: blooms.iter().map(Bloom::to_proto).collect() };
                index_streams.push((
                    proto::stream::Kind::BloomFilterUtf8,
                    id as u32,
                    self.compress(&index.encode_to_vec())?,
                ));
                encoding.bloom_encoding = Some(1);
            }
            footer.columns.push(encoding);
        }
        debug_assert_eq!(footer.columns.len(), column_count);
        let mut sizes = StripeSizes::default();
        let index_count = index_streams.len();
        for (i, (kind, column, bytes)) in index_streams.into_iter().chain(data_streams).enumerate() {
            out.write_all(&bytes)?;
            let length = bytes.len() as u64;
            if i < index_count {
                sizes.index_length += length;
            } else {
                sizes.data_length += length;
            }
            footer.streams.push(proto::Stream { kind: Some(kind as i32), column: Some(column), length: Some(length) });
        }
        let footer_bytes = self.compress(&footer.encode_to_vec())?;
        out.write_all(&footer_bytes)?;
        sizes.footer_length = footer_bytes.len() as u64;
        Ok(sizes)
    }

    /// [`Self::compress`], with a new chunk started at every mark; returns where each mark's chunk
    /// starts in the compressed stream.
    fn compress_marked(&self, raw: &[u8], marks: &[usize]) -> io::Result<(Vec<u8>, Vec<u64>)> {
        if self.compression == OrcCompression::None {
            return Ok((raw.to_vec(), marks.iter().map(|m| *m as u64).collect()));
        }
        let mut out = Vec::with_capacity(raw.len() / 2 + 16);
        let mut starts = Vec::with_capacity(marks.len());
        let mut from = 0;
        for &m in marks {
            let m = m.min(raw.len()).max(from);
            out.extend(self.compress(&raw[from..m])?);
            starts.push(out.len() as u64);
            from = m;
        }
        out.extend(self.compress(&raw[from..])?);
        Ok((out, starts))
    }

    fn compression_kind(&self) -> proto::CompressionKind {
        match self.compression {
            OrcCompression::None => proto::CompressionKind::None,
            OrcCompression::Zlib => proto::CompressionKind::Zlib,
            OrcCompression::Snappy => proto::CompressionKind::Snappy,
            OrcCompression::Zstd => proto::CompressionKind::Zstd,
        }
    }

    /// ORC's compression framing: chunks of at most [`COMPRESSION_BLOCK`] bytes, each with a
    /// 3-byte little-endian header `length << 1 | original`, stored as-is when compressing does
    /// not make it smaller. Without compression the bytes go as they are, with no headers.
    fn compress(&self, raw: &[u8]) -> io::Result<Vec<u8>> {
        if self.compression == OrcCompression::None {
            return Ok(raw.to_vec());
        }
        let mut out = Vec::with_capacity(raw.len() / 2 + 16);
        let mut zstd = match self.compression {
            OrcCompression::Zstd => Some(zstd::bulk::Compressor::new(3)?),
            _ => None,
        };
        let mut snappy = snap::raw::Encoder::new();
        for chunk in raw.chunks(COMPRESSION_BLOCK) {
            let compressed = match self.compression {
                OrcCompression::Zlib => {
                    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                    e.write_all(chunk)?;
                    e.finish()?
                }
                OrcCompression::Snappy => snappy.compress_vec(chunk).map_err(io::Error::other)?,
                OrcCompression::Zstd => match zstd.as_mut() {
                    Some(z) => z.compress(chunk)?,
                    None => chunk.to_vec(),
                },
                OrcCompression::None => chunk.to_vec(),
            };
            let (body, original) = if compressed.len() < chunk.len() { (&compressed[..], 0) } else { (chunk, 1) };
            let header = ((body.len() as u32) << 1) | original;
            out.extend_from_slice(&header.to_le_bytes()[..3]);
            out.extend_from_slice(body);
        }
        Ok(out)
    }
}

#[derive(Default)]
struct StripeSizes {
    index_length: u64,
    data_length: u64,
    footer_length: u64,
}

/// The ORC type list: the table's types flattened in preorder, column 0 being the root struct.
fn type_tree(ty: &HiveType, out: &mut Vec<proto::Type>) {
    use proto::r#type::Kind;
    let index = out.len();
    out.push(proto::Type::default());
    let mut t = proto::Type::default();
    let kind = match ty {
        HiveType::Boolean => Kind::Boolean,
        HiveType::TinyInt => Kind::Byte,
        HiveType::SmallInt => Kind::Short,
        HiveType::Int => Kind::Int,
        HiveType::BigInt => Kind::Long,
        HiveType::Float => Kind::Float,
        HiveType::Double => Kind::Double,
        HiveType::String => Kind::String,
        HiveType::Binary => Kind::Binary,
        HiveType::Timestamp => Kind::Timestamp,
        HiveType::Date => Kind::Date,
        HiveType::Char(n) => {
            t.maximum_length = Some(*n);
            Kind::Char
        }
        HiveType::Varchar(n) => {
            t.maximum_length = Some(*n);
            Kind::Varchar
        }
        HiveType::Decimal { precision, scale } => {
            t.precision = Some(u32::from(*precision));
            t.scale = Some(u32::from(*scale));
            Kind::Decimal
        }
        HiveType::Array(element) => {
            t.subtypes.push(out.len() as u32);
            type_tree(element, out);
            Kind::List
        }
        HiveType::Map(key, value) => {
            t.subtypes.push(out.len() as u32);
            type_tree(key, out);
            t.subtypes.push(out.len() as u32);
            type_tree(value, out);
            Kind::Map
        }
        HiveType::Struct(fields) => {
            for (name, field) in fields {
                t.field_names.push(name.clone());
                t.subtypes.push(out.len() as u32);
                type_tree(field, out);
            }
            Kind::Struct
        }
    };
    t.kind = Some(kind as i32);
    out[index] = t;
}

#[cfg(test)]
mod tests;
