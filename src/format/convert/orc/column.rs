//! One stripe's streams for one column (and, recursively, its children), in ORC's `DIRECT`
//! (version 1) encoding.
//!
//! `rows` are the indices of `array` that exist at this level: every row for a top-level column,
//! only the non-null parents' rows for a struct's fields, and the flattened element ranges of the
//! non-null rows for a list's or map's children. ORC stores nothing for children of a null parent.

use std::io;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType,
};
use arrow_array::Array;
use orc_rust::proto::stream::Kind as StreamKind;

use super::encoding::{boolean_rle, byte_rle, write_uvarint, zigzag128, IntRle};
use super::stats::Stats;
use crate::format::convert::HiveType;

/// Seconds from the Unix epoch to ORC's timestamp base, 2015-01-01 00:00:00 (UTC writer zone).
const ORC_TIMESTAMP_BASE: i64 = 1_420_070_400;

pub struct RawStream {
    pub kind: StreamKind,
    pub column: u32,
    pub bytes: Vec<u8>,
}

pub struct StripeStreams {
    pub streams: Vec<RawStream>,
    pub stats: Vec<Stats>,
}

impl StripeStreams {
    pub fn new(columns: usize) -> Self {
        Self { streams: Vec::new(), stats: vec![Stats::default(); columns] }
    }

    fn push(&mut self, kind: StreamKind, column: u32, bytes: Vec<u8>) {
        self.streams.push(RawStream { kind, column, bytes });
    }
}

fn mismatch(ty: &HiveType) -> io::Error {
    io::Error::other(format!("internal: the Arrow array does not match ORC column type {ty}"))
}

/// Encodes `array[rows]` as column `*next_id` (and its children after it, in preorder).
pub fn encode_column(
    array: &dyn Array,
    rows: &[usize],
    ty: &HiveType,
    next_id: &mut u32,
    out: &mut StripeStreams,
) -> io::Result<()> {
    let id = *next_id;
    *next_id += 1;
    let stats = id as usize;

    // PRESENT, only when something is null.
    let present: Vec<usize> = rows.iter().copied().filter(|&r| array.is_valid(r)).collect();
    if present.len() != rows.len() {
        out.push(StreamKind::Present, id, boolean_rle(rows.iter().map(|&r| array.is_valid(r))));
        out.stats[stats].add_null();
    }

    match ty {
        HiveType::Boolean => {
            let a = array.as_boolean_opt().ok_or_else(|| mismatch(ty))?;
            let st = &mut out.stats[stats];
            present.iter().for_each(|&r| st.boolean(a.value(r)));
            out.push(StreamKind::Data, id, boolean_rle(present.iter().map(|&r| a.value(r))));
        }
        HiveType::TinyInt => {
            let a = array.as_primitive_opt::<Int8Type>().ok_or_else(|| mismatch(ty))?;
            let st = &mut out.stats[stats];
            let bytes: Vec<u8> = present
                .iter()
                .map(|&r| {
                    st.int(i64::from(a.value(r)));
                    a.value(r) as u8
                })
                .collect();
            out.push(StreamKind::Data, id, byte_rle(&bytes));
        }
        HiveType::SmallInt => {
            let a = array.as_primitive_opt::<Int16Type>().ok_or_else(|| mismatch(ty))?;
            ints(out, id, present.iter().map(|&r| i64::from(a.value(r))));
        }
        HiveType::Int => {
            let a = array.as_primitive_opt::<Int32Type>().ok_or_else(|| mismatch(ty))?;
            ints(out, id, present.iter().map(|&r| i64::from(a.value(r))));
        }
        HiveType::BigInt => {
            let a = array.as_primitive_opt::<Int64Type>().ok_or_else(|| mismatch(ty))?;
            ints(out, id, present.iter().map(|&r| a.value(r)));
        }
        HiveType::Float => {
            let a = array.as_primitive_opt::<Float32Type>().ok_or_else(|| mismatch(ty))?;
            let st = &mut out.stats[stats];
            let mut bytes = Vec::with_capacity(present.len() * 4);
            for &r in &present {
                st.double(f64::from(a.value(r)));
                bytes.extend_from_slice(&a.value(r).to_le_bytes());
            }
            out.push(StreamKind::Data, id, bytes);
        }
        HiveType::Double => {
            let a = array.as_primitive_opt::<Float64Type>().ok_or_else(|| mismatch(ty))?;
            let st = &mut out.stats[stats];
            let mut bytes = Vec::with_capacity(present.len() * 8);
            for &r in &present {
                st.double(a.value(r));
                bytes.extend_from_slice(&a.value(r).to_le_bytes());
            }
            out.push(StreamKind::Data, id, bytes);
        }
        HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) => {
            let a = array.as_string_opt::<i32>().ok_or_else(|| mismatch(ty))?;
            let st = &mut out.stats[stats];
            let mut data = Vec::new();
            let mut lengths = IntRle::new(false);
            for &r in &present {
                let v = a.value(r).as_bytes();
                st.string(v);
                data.extend_from_slice(v);
                lengths.push(v.len() as i64);
            }
            out.push(StreamKind::Data, id, data);
            out.push(StreamKind::Length, id, lengths.finish());
        }
        HiveType::Binary => {
            let a = array.as_binary_opt::<i32>().ok_or_else(|| mismatch(ty))?;
            let st = &mut out.stats[stats];
            let mut data = Vec::new();
            let mut lengths = IntRle::new(false);
            for &r in &present {
                let v = a.value(r);
                st.binary(v.len());
                data.extend_from_slice(v);
                lengths.push(v.len() as i64);
            }
            out.push(StreamKind::Data, id, data);
            out.push(StreamKind::Length, id, lengths.finish());
        }
        HiveType::Date => {
            let a = array.as_primitive_opt::<Date32Type>().ok_or_else(|| mismatch(ty))?;
            let st = &mut out.stats[stats];
            let mut data = IntRle::new(true);
            for &r in &present {
                st.date(a.value(r));
                data.push(i64::from(a.value(r)));
            }
            out.push(StreamKind::Data, id, data.finish());
        }
        HiveType::Timestamp => {
            let a = array.as_primitive_opt::<TimestampMicrosecondType>().ok_or_else(|| mismatch(ty))?;
            let st = &mut out.stats[stats];
            let (mut seconds, mut nanos) = (IntRle::new(true), IntRle::new(false));
            for &r in &present {
                let micros = a.value(r);
                st.timestamp(micros);
                let mut secs = micros.div_euclid(1_000_000);
                let ns = micros.rem_euclid(1_000_000) * 1000;
                // ORC-763: readers subtract a second from negative seconds whose nanoseconds exceed
                // 999,999, so writers add it first. (The interval (-1 s, 0) cannot round-trip.)
                if secs < 0 && ns > 999_999 {
                    secs += 1;
                }
                seconds.push(secs - ORC_TIMESTAMP_BASE);
                nanos.push(encode_nanos(ns as u64) as i64);
            }
            out.push(StreamKind::Data, id, seconds.finish());
            out.push(StreamKind::Secondary, id, nanos.finish());
        }
        HiveType::Decimal { scale, .. } => {
            let a = array.as_primitive_opt::<Decimal128Type>().ok_or_else(|| mismatch(ty))?;
            let st = &mut out.stats[stats];
            let mut data = Vec::new();
            let mut scales = IntRle::new(true);
            for &r in &present {
                let v = a.value(r);
                st.decimal(v, *scale);
                write_uvarint(&mut data, zigzag128(v));
                scales.push(i64::from(*scale));
            }
            out.push(StreamKind::Data, id, data);
            out.push(StreamKind::Secondary, id, scales.finish());
        }
        HiveType::Array(element) => {
            let a = array.as_list_opt::<i32>().ok_or_else(|| mismatch(ty))?;
            let offsets = a.value_offsets();
            let (lengths, children) = child_ranges(offsets, &present, &mut out.stats[stats]);
            out.push(StreamKind::Length, id, lengths);
            encode_column(a.values().as_ref(), &children, element, next_id, out)?;
        }
        HiveType::Map(key, value) => {
            let a = array.as_map_opt().ok_or_else(|| mismatch(ty))?;
            let offsets = a.value_offsets();
            let (lengths, children) = child_ranges(offsets, &present, &mut out.stats[stats]);
            out.push(StreamKind::Length, id, lengths);
            encode_column(a.keys().as_ref(), &children, key, next_id, out)?;
            encode_column(a.values().as_ref(), &children, value, next_id, out)?;
        }
        HiveType::Struct(fields) => {
            let a = array.as_struct_opt().ok_or_else(|| mismatch(ty))?;
            out.stats[stats].add_values(present.len() as u64);
            for ((_, field_ty), child) in fields.iter().zip(a.columns()) {
                encode_column(child.as_ref(), &present, field_ty, next_id, out)?;
            }
        }
    }
    Ok(())
}

fn ints(out: &mut StripeStreams, id: u32, values: impl Iterator<Item = i64>) {
    let st = &mut out.stats[id as usize];
    let mut data = IntRle::new(true);
    for v in values {
        st.int(v);
        data.push(v);
    }
    out.push(StreamKind::Data, id, data.finish());
}

/// The LENGTH stream of a list or map and the child rows it covers.
fn child_ranges(offsets: &[i32], present: &[usize], stats: &mut Stats) -> (Vec<u8>, Vec<usize>) {
    let mut lengths = IntRle::new(false);
    let mut children = Vec::new();
    for &r in present {
        let (start, end) = (offsets[r] as usize, offsets[r + 1] as usize);
        lengths.push((end - start) as i64);
        stats.collection((end - start) as u64);
        children.extend(start..end);
    }
    (lengths.finish(), children)
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
}
