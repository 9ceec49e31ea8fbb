//! One stripe's streams for one column (and, recursively, its children), in ORC's `DIRECT`
//! (version 1) encoding, with what the row index needs: a position in every stream and statistics
//! for each row group, and optionally a bloom filter per row group.
//!
//! `rows` are the indices of `array` that exist at this level: every row for a top-level column,
//! only the non-null parents' rows for a struct's fields, and the flattened element ranges of the
//! non-null rows for a list's or map's children. ORC stores nothing for children of a null parent.
//! `starts[g]` is where row group `g` begins within `rows`.
//!
//! Positions are kept simple by construction: at each row group's start every run-length encoder
//! ends its run (so "values into the run" is always 0) and the compressor starts a new chunk (so
//! "bytes into the chunk" is always 0). Only booleans can start mid-byte, which ORC's bit position
//! covers.
//!
//! `encode_column` writes PRESENT and hands the values to one function per type family (booleans,
//! integers, floats, strings, timestamps, decimals, collections); a struct's fields and a
//! collection's elements follow as child columns. The file is a little over 600 lines because the
//! families share the row-group and mark conventions above, which are easier to check side by side.

use std::collections::HashMap;
use std::io;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType,
};
use arrow_array::Array;
use orc_rust::proto::stream::Kind as StreamKind;

use super::bloom::Bloom;
use super::encoding::{byte_rle, write_uvarint, zigzag128, IntRle};
use super::stats::{decimal_text, Stats};
use crate::format::convert::HiveType;

/// Seconds from the Unix epoch to ORC's timestamp base, 2015-01-01 00:00:00 (UTC writer zone).
const ORC_TIMESTAMP_BASE: i64 = 1_420_070_400;

/// Where a row group starts in a stream: the uncompressed byte offset, then the encoder's own
/// position values (run offset, bit offset).
#[derive(Clone, Debug)]
pub struct Mark {
    pub offset: usize,
    pub extra: Vec<u64>,
}

pub struct StreamBuf {
    pub kind: StreamKind,
    pub bytes: Vec<u8>,
    /// One per row group.
    pub marks: Vec<Mark>,
}

/// A column's output for one stripe. `streams` are in the order readers consume index positions.
#[derive(Default)]
pub struct ColumnOut {
    pub streams: Vec<StreamBuf>,
    pub group_stats: Vec<Stats>,
    pub blooms: Option<Vec<Bloom>>,
    /// Entries of a dictionary-encoded string column (`None`: direct encoding).
    pub dictionary_size: Option<u32>,
}

pub struct StripeStreams {
    pub columns: Vec<ColumnOut>,
    pub stats: Vec<Stats>,
    /// Column ids that get bloom filters, and the filters' target false-positive rate and size.
    bloom_columns: Vec<u32>,
    bloom_fpp: f64,
    bloom_expected: usize,
    /// Strings use a dictionary when distinct values / values is at most this (0: never).
    dictionary_threshold: f64,
}

impl StripeStreams {
    pub fn new(
        columns: usize,
        bloom_columns: Vec<u32>,
        bloom_fpp: f64,
        bloom_expected: usize,
        dictionary_threshold: f64,
    ) -> Self {
        Self {
            columns: (0..columns).map(|_| ColumnOut::default()).collect(),
            stats: vec![Stats::default(); columns],
            bloom_columns,
            bloom_fpp,
            bloom_expected,
            dictionary_threshold,
        }
    }
}

fn mismatch(ty: &HiveType) -> io::Error {
    io::Error::other(format!("internal: the Arrow array does not match ORC column type {ty}"))
}

/// The rows of group `g`.
fn group<'a>(rows: &'a [usize], starts: &[usize], g: usize) -> &'a [usize] {
    let end = starts.get(g + 1).copied().unwrap_or(rows.len());
    &rows[starts[g]..end]
}

/// The non-null rows of a column at this level, and where each row group starts among them.
struct Present {
    rows: Vec<usize>,
    starts: Vec<usize>,
}

impl Present {
    fn groups(&self) -> usize {
        self.starts.len()
    }

    fn group(&self, g: usize) -> &[usize] {
        group(&self.rows, &self.starts, g)
    }
}

/// What the row index keeps per row group: statistics, and a bloom filter when asked for.
struct GroupIndex {
    stats: Vec<Stats>,
    blooms: Option<Vec<Bloom>>,
}

impl GroupIndex {
    fn long(&mut self, g: usize, v: i64) {
        if let Some(b) = self.blooms.as_mut() {
            b[g].add_long(v);
        }
    }

    fn bytes(&mut self, g: usize, v: &[u8]) {
        if let Some(b) = self.blooms.as_mut() {
            b[g].add_bytes(v);
        }
    }
}

/// A list's or map's children (or a struct's fields), encoded after their parent.
struct Children<'a> {
    columns: Vec<(&'a dyn Array, &'a HiveType)>,
    rows: Vec<usize>,
    starts: Vec<usize>,
}

/// Encodes `array[rows]` as column `*next_id` (and its children after it, in preorder): the
/// PRESENT stream, then the streams of the type's family (one function each below).
pub fn encode_column<'a>(
    array: &'a dyn Array,
    rows: &[usize],
    starts: &[usize],
    ty: &'a HiveType,
    next_id: &mut u32,
    out: &mut StripeStreams,
) -> io::Result<()> {
    let id = *next_id;
    *next_id += 1;
    let col = id as usize;
    let groups = starts.len();
    let mut index = GroupIndex {
        stats: vec![Stats::default(); groups],
        blooms: out
            .bloom_columns
            .contains(&id)
            .then(|| (0..groups).map(|_| Bloom::new(out.bloom_expected, out.bloom_fpp)).collect::<Vec<_>>()),
    };

    // PRESENT, only when something is null; and the non-null rows with their group starts.
    let mut present = Present { rows: Vec::with_capacity(rows.len()), starts: Vec::with_capacity(groups) };
    for (g, stats) in index.stats.iter_mut().enumerate() {
        present.starts.push(present.rows.len());
        for &r in group(rows, starts, g) {
            if array.is_valid(r) {
                present.rows.push(r);
            } else {
                stats.add_null();
            }
        }
    }
    let mut streams = Vec::new();
    if present.rows.len() != rows.len() {
        streams.push(booleans(StreamKind::Present, rows.iter().map(|&r| array.is_valid(r)), starts));
    }

    let (p, ix, st) = (&present, &mut index, &mut streams);
    let mut dictionary_size = None;
    let children = match ty {
        HiveType::Boolean => boolean_column(array, ty, p, ix, st).map(|()| None)?,
        HiveType::TinyInt => tinyint_column(array, ty, p, ix, st).map(|()| None)?,
        HiveType::SmallInt | HiveType::Int | HiveType::BigInt | HiveType::Date => {
            integer_column(array, ty, p, ix, st).map(|()| None)?
        }
        HiveType::Float | HiveType::Double => float_column(array, ty, p, ix, st).map(|()| None)?,
        HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) | HiveType::Binary => {
            dictionary_size = string_column(array, ty, p, ix, st, out.dictionary_threshold)?;
            None
        }
        HiveType::Timestamp => timestamp_column(array, ty, p, ix, st).map(|()| None)?,
        HiveType::Decimal { scale, .. } => decimal_column(array, ty, *scale, p, ix, st).map(|()| None)?,
        HiveType::Array(_) | HiveType::Map(..) => Some(collection_column(array, ty, p, ix, st)?),
        HiveType::Struct(fields) => {
            let a = array.as_struct_opt().ok_or_else(|| mismatch(ty))?;
            for (g, stats) in ix.stats.iter_mut().enumerate() {
                stats.add_values(p.group(g).len() as u64);
            }
            let columns = a.columns().iter().zip(fields).map(|(child, (_, field_ty))| (child.as_ref(), field_ty));
            Some(Children { columns: columns.collect(), rows: present.rows.clone(), starts: present.starts.clone() })
        }
    };
    let GroupIndex { stats: group_stats, blooms } = index;
    finish_column(out, col, ColumnOut { streams, group_stats, blooms, dictionary_size });
    if let Some(children) = children {
        for (child, child_ty) in children.columns {
            encode_column(child, &children.rows, &children.starts, child_ty, next_id, out)?;
        }
    }
    Ok(())
}

fn boolean_column(
    array: &dyn Array,
    ty: &HiveType,
    p: &Present,
    ix: &mut GroupIndex,
    streams: &mut Vec<StreamBuf>,
) -> io::Result<()> {
    let a = array.as_boolean_opt().ok_or_else(|| mismatch(ty))?;
    for g in 0..p.groups() {
        for &r in p.group(g) {
            ix.stats[g].boolean(a.value(r));
            ix.long(g, i64::from(a.value(r)));
        }
    }
    streams.push(booleans(StreamKind::Data, p.rows.iter().map(|&r| a.value(r)), &p.starts));
    Ok(())
}

fn tinyint_column(
    array: &dyn Array,
    ty: &HiveType,
    p: &Present,
    ix: &mut GroupIndex,
    streams: &mut Vec<StreamBuf>,
) -> io::Result<()> {
    let a = array.as_primitive_opt::<Int8Type>().ok_or_else(|| mismatch(ty))?;
    let mut data = StreamBuf { kind: StreamKind::Data, bytes: Vec::new(), marks: Vec::new() };
    for g in 0..p.groups() {
        data.marks.push(Mark { offset: data.bytes.len(), extra: vec![0] });
        let values: Vec<u8> = p
            .group(g)
            .iter()
            .map(|&r| {
                let v = a.value(r);
                ix.stats[g].int(i64::from(v));
                ix.long(g, i64::from(v));
                v as u8
            })
            .collect();
        data.bytes.extend(byte_rle(&values));
    }
    streams.push(data);
    Ok(())
}

/// SMALLINT, INT, BIGINT and DATE: signed integer RLE.
fn integer_column(
    array: &dyn Array,
    ty: &HiveType,
    p: &Present,
    ix: &mut GroupIndex,
    streams: &mut Vec<StreamBuf>,
) -> io::Result<()> {
    let value: Box<dyn Fn(usize) -> i64> = match ty {
        HiveType::SmallInt => {
            let a = array.as_primitive_opt::<Int16Type>().ok_or_else(|| mismatch(ty))?;
            Box::new(move |r| i64::from(a.value(r)))
        }
        HiveType::Int => {
            let a = array.as_primitive_opt::<Int32Type>().ok_or_else(|| mismatch(ty))?;
            Box::new(move |r| i64::from(a.value(r)))
        }
        HiveType::Date => {
            let a = array.as_primitive_opt::<Date32Type>().ok_or_else(|| mismatch(ty))?;
            Box::new(move |r| i64::from(a.value(r)))
        }
        _ => {
            let a = array.as_primitive_opt::<Int64Type>().ok_or_else(|| mismatch(ty))?;
            Box::new(move |r| a.value(r))
        }
    };
    let mut rle = IntRle::new(true);
    let mut marks = Vec::with_capacity(p.groups());
    for g in 0..p.groups() {
        marks.push(Mark { offset: rle.mark(), extra: vec![0] });
        for &r in p.group(g) {
            let v = value(r);
            if matches!(ty, HiveType::Date) {
                ix.stats[g].date(v as i32);
            } else {
                ix.stats[g].int(v);
            }
            ix.long(g, v);
            rle.push(v);
        }
    }
    streams.push(StreamBuf { kind: StreamKind::Data, bytes: rle.finish(), marks });
    Ok(())
}

/// FLOAT and DOUBLE: little-endian IEEE 754.
fn float_column(
    array: &dyn Array,
    ty: &HiveType,
    p: &Present,
    ix: &mut GroupIndex,
    streams: &mut Vec<StreamBuf>,
) -> io::Result<()> {
    let value: Box<dyn Fn(usize) -> (f64, Vec<u8>)> = match ty {
        HiveType::Float => {
            let a = array.as_primitive_opt::<Float32Type>().ok_or_else(|| mismatch(ty))?;
            Box::new(move |r| (f64::from(a.value(r)), a.value(r).to_le_bytes().to_vec()))
        }
        _ => {
            let a = array.as_primitive_opt::<Float64Type>().ok_or_else(|| mismatch(ty))?;
            Box::new(move |r| (a.value(r), a.value(r).to_le_bytes().to_vec()))
        }
    };
    let mut data = StreamBuf { kind: StreamKind::Data, bytes: Vec::new(), marks: Vec::new() };
    for g in 0..p.groups() {
        data.marks.push(Mark { offset: data.bytes.len(), extra: vec![] });
        for &r in p.group(g) {
            let (v, bytes) = value(r);
            ix.stats[g].double(v);
            ix.long(g, v.to_bits() as i64);
            data.bytes.extend_from_slice(&bytes);
        }
    }
    streams.push(data);
    Ok(())
}

/// STRING, CHAR, VARCHAR (dictionary-encoded when few values repeat, else direct) and BINARY
/// (direct). Returns the dictionary's size when one is used.
fn string_column<'a>(
    array: &'a dyn Array,
    ty: &HiveType,
    p: &Present,
    ix: &mut GroupIndex,
    streams: &mut Vec<StreamBuf>,
    dictionary_threshold: f64,
) -> io::Result<Option<u32>> {
    let value: Box<dyn Fn(usize) -> &'a [u8] + 'a> = if matches!(ty, HiveType::Binary) {
        let a = array.as_binary_opt::<i32>().ok_or_else(|| mismatch(ty))?;
        Box::new(move |r| a.value(r))
    } else {
        let a = array.as_string_opt::<i32>().ok_or_else(|| mismatch(ty))?;
        Box::new(move |r| a.value(r).as_bytes())
    };
    let binary = matches!(ty, HiveType::Binary);
    for g in 0..p.groups() {
        for &r in p.group(g) {
            let v = value(r);
            if binary {
                ix.stats[g].binary(v.len());
            } else {
                ix.stats[g].string(v);
            }
            ix.bytes(g, v);
        }
    }
    let dictionary = if binary { None } else { dictionary(&p.rows, &value, dictionary_threshold) };
    if let Some((entries, indices)) = dictionary {
        // DICTIONARY: DATA holds each value's index into the sorted entries, which go to
        // DICTIONARY_DATA and LENGTH once per stripe (no index positions for those two).
        let mut rows_rle = IntRle::new(false);
        let mut marks = Vec::with_capacity(p.groups());
        for g in 0..p.groups() {
            marks.push(Mark { offset: rows_rle.mark(), extra: vec![0] });
            let end = p.starts.get(g + 1).copied().unwrap_or(p.rows.len());
            indices[p.starts[g]..end].iter().for_each(|i| rows_rle.push(i64::from(*i)));
        }
        let mut lengths = IntRle::new(false);
        entries.iter().for_each(|e| lengths.push(e.len() as i64));
        streams.push(StreamBuf { kind: StreamKind::Data, bytes: rows_rle.finish(), marks });
        streams.push(StreamBuf { kind: StreamKind::DictionaryData, bytes: entries.concat(), marks: Vec::new() });
        streams.push(StreamBuf { kind: StreamKind::Length, bytes: lengths.finish(), marks: Vec::new() });
        return Ok(Some(entries.len() as u32));
    }
    let mut data = StreamBuf { kind: StreamKind::Data, bytes: Vec::new(), marks: Vec::new() };
    let mut lengths = IntRle::new(false);
    let mut length_marks = Vec::with_capacity(p.groups());
    for g in 0..p.groups() {
        data.marks.push(Mark { offset: data.bytes.len(), extra: vec![] });
        length_marks.push(Mark { offset: lengths.mark(), extra: vec![0] });
        for &r in p.group(g) {
            let v = value(r);
            data.bytes.extend_from_slice(v);
            lengths.push(v.len() as i64);
        }
    }
    streams.push(data);
    streams.push(StreamBuf { kind: StreamKind::Length, bytes: lengths.finish(), marks: length_marks });
    Ok(None)
}

/// TIMESTAMP: seconds from ORC's base (DATA) and encoded nanoseconds (SECONDARY).
fn timestamp_column(
    array: &dyn Array,
    ty: &HiveType,
    p: &Present,
    ix: &mut GroupIndex,
    streams: &mut Vec<StreamBuf>,
) -> io::Result<()> {
    let a = array.as_primitive_opt::<TimestampMicrosecondType>().ok_or_else(|| mismatch(ty))?;
    let (mut seconds, mut nanos) = (IntRle::new(true), IntRle::new(false));
    let (mut second_marks, mut nano_marks) = (Vec::new(), Vec::new());
    for g in 0..p.groups() {
        second_marks.push(Mark { offset: seconds.mark(), extra: vec![0] });
        nano_marks.push(Mark { offset: nanos.mark(), extra: vec![0] });
        for &r in p.group(g) {
            let micros = a.value(r);
            ix.stats[g].timestamp(micros);
            // ORC-135 bloom filters hash timestamps as UTC milliseconds.
            ix.long(g, micros.div_euclid(1000));
            let mut secs = micros.div_euclid(1_000_000);
            let ns = micros.rem_euclid(1_000_000) * 1000;
            // ORC-763: readers subtract a second from negative seconds whose nanoseconds
            // exceed 999,999, so writers add it first. (The interval (-1 s, 0) cannot round-trip.)
            if secs < 0 && ns > 999_999 {
                secs += 1;
            }
            seconds.push(secs - ORC_TIMESTAMP_BASE);
            nanos.push(encode_nanos(ns as u64) as i64);
        }
    }
    streams.push(StreamBuf { kind: StreamKind::Data, bytes: seconds.finish(), marks: second_marks });
    streams.push(StreamBuf { kind: StreamKind::Secondary, bytes: nanos.finish(), marks: nano_marks });
    Ok(())
}

/// DECIMAL: zigzag varint unscaled values (DATA) and their scale (SECONDARY).
fn decimal_column(
    array: &dyn Array,
    ty: &HiveType,
    scale: u8,
    p: &Present,
    ix: &mut GroupIndex,
    streams: &mut Vec<StreamBuf>,
) -> io::Result<()> {
    let a = array.as_primitive_opt::<Decimal128Type>().ok_or_else(|| mismatch(ty))?;
    let mut data = StreamBuf { kind: StreamKind::Data, bytes: Vec::new(), marks: Vec::new() };
    let mut scales = IntRle::new(true);
    let mut scale_marks = Vec::with_capacity(p.groups());
    for g in 0..p.groups() {
        data.marks.push(Mark { offset: data.bytes.len(), extra: vec![] });
        scale_marks.push(Mark { offset: scales.mark(), extra: vec![0] });
        for &r in p.group(g) {
            let v = a.value(r);
            ix.stats[g].decimal(v, scale);
            ix.bytes(g, decimal_text(v, scale).as_bytes());
            write_uvarint(&mut data.bytes, zigzag128(v));
            scales.push(i64::from(scale));
        }
    }
    streams.push(data);
    streams.push(StreamBuf { kind: StreamKind::Secondary, bytes: scales.finish(), marks: scale_marks });
    Ok(())
}

/// ARRAY and MAP: each row's length (LENGTH); the elements (or keys and values) are child columns
/// over the flattened element ranges.
fn collection_column<'a>(
    array: &'a dyn Array,
    ty: &'a HiveType,
    p: &Present,
    ix: &mut GroupIndex,
    streams: &mut Vec<StreamBuf>,
) -> io::Result<Children<'a>> {
    let (offsets, columns): (&[i32], Vec<(&dyn Array, &HiveType)>) = match ty {
        HiveType::Array(element) => {
            let a = array.as_list_opt::<i32>().ok_or_else(|| mismatch(ty))?;
            (a.value_offsets(), vec![(a.values().as_ref(), element.as_ref())])
        }
        HiveType::Map(key, value) => {
            let a = array.as_map_opt().ok_or_else(|| mismatch(ty))?;
            (a.value_offsets(), vec![(a.keys().as_ref(), key.as_ref()), (a.values().as_ref(), value.as_ref())])
        }
        _ => return Err(mismatch(ty)),
    };
    let mut lengths = IntRle::new(false);
    let mut marks = Vec::with_capacity(p.groups());
    let mut rows = Vec::new();
    let mut starts = Vec::with_capacity(p.groups());
    for g in 0..p.groups() {
        marks.push(Mark { offset: lengths.mark(), extra: vec![0] });
        starts.push(rows.len());
        for &r in p.group(g) {
            let (start, end) = (offsets[r] as usize, offsets[r + 1] as usize);
            lengths.push((end - start) as i64);
            ix.stats[g].collection((end - start) as u64);
            rows.extend(start..end);
        }
    }
    streams.push(StreamBuf { kind: StreamKind::Length, bytes: lengths.finish(), marks });
    Ok(Children { columns, rows, starts })
}

fn finish_column(out: &mut StripeStreams, col: usize, column: ColumnOut) {
    for g in &column.group_stats {
        out.stats[col].merge(g);
    }
    out.columns[col] = column;
}

/// A dictionary for a string column: the sorted distinct values, and each present value's index
/// into them (in `present` order). `None` when there are too many distinct values for a dictionary
/// to pay off (distinct / values > `threshold`, Hive's `orc.dictionary.key.threshold` rule).
fn dictionary<'v>(
    present: &[usize],
    value: &dyn Fn(usize) -> &'v [u8],
    threshold: f64,
) -> Option<(Vec<&'v [u8]>, Vec<u32>)> {
    if threshold <= 0.0 || present.is_empty() {
        return None;
    }
    let limit = (threshold * present.len() as f64) as usize;
    // One hash lookup per value: ids in order of first appearance, remapped to sorted order below.
    let mut ids: HashMap<&[u8], u32, foldhash::fast::RandomState> = HashMap::default();
    let mut rows = Vec::with_capacity(present.len());
    for &r in present {
        let next = ids.len() as u32;
        rows.push(*ids.entry(value(r)).or_insert(next));
        if ids.len() > limit {
            return None;
        }
    }
    let mut entries: Vec<(&[u8], u32)> = ids.into_iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut sorted_position = vec![0u32; entries.len()];
    for (position, (_, id)) in entries.iter().enumerate() {
        sorted_position[*id as usize] = position as u32;
    }
    rows.iter_mut().for_each(|id| *id = sorted_position[*id as usize]);
    Some((entries.into_iter().map(|(v, _)| v).collect(), rows))
}

/// A boolean stream (PRESENT or a boolean column's DATA): bits packed most-significant first, then
/// byte RLE. Each row group starts a new RLE group at the byte holding its first bit, and its
/// position records that bit.
fn booleans(kind: StreamKind, bits: impl Iterator<Item = bool>, starts: &[usize]) -> StreamBuf {
    let mut packed = Vec::new();
    let (mut byte, mut n) = (0u8, 0usize);
    for b in bits {
        byte = (byte << 1) | u8::from(b);
        n += 1;
        if n % 8 == 0 {
            packed.push(byte);
            byte = 0;
        }
    }
    if n % 8 != 0 {
        packed.push(byte << (8 - n % 8));
    }
    let mut bytes = Vec::new();
    let mut marks = Vec::with_capacity(starts.len());
    let mut segment_start = 0usize;
    for &bit in starts {
        let at = (bit / 8).min(packed.len());
        if at > segment_start {
            bytes.extend(byte_rle(&packed[segment_start..at]));
            segment_start = at;
        }
        marks.push(Mark { offset: bytes.len(), extra: vec![0, (bit % 8) as u64] });
    }
    bytes.extend(byte_rle(&packed[segment_start..]));
    StreamBuf { kind, bytes, marks }
}

/// ORC's nanosecond encoding: with two or more trailing decimal zeros, the value without them
/// and (zeros − 1) in the low three bits; otherwise the value shifted left by three.
fn encode_nanos(nanos: u64) -> u64 {
    if nanos == 0 {
        return 0;
    }
    let (mut v, mut zeros) = (nanos, 0u64);
    while v % 10 == 0 && zeros < 8 {
        v /= 10;
        zeros += 1;
    }
    if zeros >= 2 {
        (v << 3) | (zeros - 1)
    } else {
        nanos << 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_drop_trailing_zeros() {
        assert_eq!(encode_nanos(0), 0);
        assert_eq!(encode_nanos(1000), (1 << 3) | 2);
        assert_eq!(encode_nanos(123_456_000), (123_456 << 3) | 2);
        assert_eq!(encode_nanos(100_000_000), (1 << 3) | 7);
        assert_eq!(encode_nanos(10), 10 << 3);
    }

    #[test]
    fn dictionaries_are_sorted_and_index_every_value() {
        let values: [&[u8]; 5] = [b"b", b"a", b"b", b"c", b"a"];
        let get = |r: usize| values[r];
        let (entries, indices) = dictionary(&[0, 1, 2, 3, 4], &get, 0.8).unwrap();
        assert_eq!(entries, [&b"a"[..], b"b", b"c"]);
        assert_eq!(indices, [1, 0, 1, 2, 0]);
        assert!(dictionary(&[0, 1, 2, 3, 4], &get, 0.5).is_none(), "3 distinct of 5 is above 0.5");
        assert!(dictionary(&[0, 1, 2], &get, 0.0).is_none(), "0 turns dictionaries off");
    }

    #[test]
    fn boolean_groups_start_new_rle_groups_at_their_byte() {
        // 20 bits, groups at 0, 10 and 16: the second starts inside byte 1, the third at byte 2.
        let bits = (0..20).map(|i| i % 3 == 0);
        let s = booleans(StreamKind::Present, bits, &[0, 10, 16]);
        let offsets: Vec<(usize, Vec<u64>)> = s.marks.iter().map(|m| (m.offset, m.extra.clone())).collect();
        // Segment [byte 0] = 1 literal: 2 bytes; segment [byte 1] = 2 bytes; the rest after that.
        assert_eq!(offsets, vec![(0, vec![0, 0]), (2, vec![0, 2]), (4, vec![0, 0])]);
    }
}
