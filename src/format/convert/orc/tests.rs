//! Files from this writer read back by orc-rust's reader (code we did not write), value for value.
//! tests/test_conversion.py reads them with pyarrow.orc as well.

use std::collections::HashMap;

use arrow_array::Array;
use bytes::Bytes;
use orc_rust::ArrowReaderBuilder;

use super::*;
use crate::format::convert::decode::{Decoder, InputRules};
use arrow_array::cast::AsArray;
use prost::Message;

fn columns() -> Vec<(String, HiveType)> {
    [
        ("s", "string"),
        ("c", "char(3)"),
        ("v", "varchar(4)"),
        ("b", "boolean"),
        ("t", "tinyint"),
        ("sm", "smallint"),
        ("i", "int"),
        ("l", "bigint"),
        ("f", "float"),
        ("d", "double"),
        ("day", "date"),
        ("ts", "timestamp"),
        ("dec", "decimal(38,6)"),
        ("bin", "binary"),
        ("arr", "array<array<int>>"),
        ("m", "map<string,struct<x:bigint,y:array<string>>>"),
        ("st", "struct<id:bigint,tags:array<string>,inner:struct<z:double>>"),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), HiveType::parse(t).unwrap()))
    .collect()
}

fn table(rows: usize) -> RecordBatch {
    let rules =
        InputRules::OpenX { case_insensitive: true, dots_to_underscores: false, column_to_json_key: HashMap::new() };
    let mut d = Decoder::new(&columns(), rules);
    for i in 0..rows as i64 {
        let record = if i % 7 == 3 {
            // Every column null, nested parents included.
            "{}".to_string()
        } else {
            format!(
                r#"{{"s":"row {i} ✓","c":"x","v":"abcdef","b":{b},"t":{t},"sm":{sm},"i":{i32},"l":{l},"f":{i}.5,"d":{d},
                   "day":"{day}","ts":"{ts}","dec":"{dec}","bin":"b{i}","arr":[[{i},null],[],null],
                   "m":{{"k{i}":{{"x":{i},"y":["a",null]}},"n":null}},"st":{{"id":{i},"tags":[],"inner":{{"z":-0.25}}}}}}"#,
                b = i % 3 == 0,
                t = (i % 256) - 128,
                sm = i * 13 % 65536 - 32768,
                i32 = if i % 2 == 0 { i32::MIN as i64 + i } else { i32::MAX as i64 - i },
                l = if i % 5 == 0 { i64::MIN + i } else { i * 1_000_003 },
                d = (i as f64) * 1e-3,
                day = if i % 2 == 0 { "1969-12-31" } else { "2026-11-23" },
                ts = match i % 6 {
                    0 => "1969-12-31T23:59:58.123456Z".to_string(),
                    1 => "2015-01-01T00:00:00Z".to_string(),
                    2 => format!("2026-11-23T10:{:02}:00.000001Z", i % 60),
                    3 => "0001-01-01T00:00:00Z".to_string(),
                    4 => "9999-12-31T23:59:59.999999Z".to_string(),
                    _ => "1900-01-01T00:00:00.5Z".to_string(),
                },
                dec =
                    if i % 2 == 0 { format!("-{i}.000001") } else { "99999999999999999999999999999999.999999".into() },
            )
        };
        d.push(record.as_bytes()).unwrap();
    }
    d.finish().unwrap()
}

fn read_back(bytes: Vec<u8>, schema: arrow_schema::SchemaRef) -> Vec<RecordBatch> {
    let reader = ArrowReaderBuilder::try_new(Bytes::from(bytes)).unwrap().with_schema(schema).build();
    reader.collect::<Result<Vec<_>, _>>().unwrap()
}

#[test]
fn every_type_round_trips_through_orc_rusts_reader_with_each_codec() {
    let t = table(3000);
    for compression in [OrcCompression::None, OrcCompression::Zlib, OrcCompression::Snappy, OrcCompression::Zstd] {
        // A small stripe size forces several stripes.
        let opts = OrcOptions {
            compression,
            stripe_size_bytes: 64 << 10,
            row_index_stride: 1000,
            bloom_filter_columns: vec!["s".into(), "i".into(), "ts".into()],
            ..Default::default()
        };
        let mut out = Vec::new();
        opts.write(&columns(), &t, &mut out).unwrap();
        let batches = read_back(out, t.schema());
        let back = arrow_select_concat(&batches);
        assert_eq!(back.num_rows(), t.num_rows(), "{compression:?}");
        for (i, (got, want)) in back.columns().iter().zip(t.columns()).enumerate() {
            assert_eq!(got.to_data(), want.to_data(), "{compression:?}: column {}", t.schema().field(i).name());
        }
    }
}

#[test]
fn statistics_describe_the_file() {
    let t = table(100);
    let mut out = Vec::new();
    OrcOptions { compression: OrcCompression::Zlib, ..Default::default() }.write(&columns(), &t, &mut out).unwrap();
    let reader = ArrowReaderBuilder::try_new(Bytes::from(out)).unwrap();
    let meta = reader.file_metadata();
    assert_eq!(meta.number_of_rows(), 100);
    let stats = meta.column_file_statistics();
    // Column 7 is `i` (column 0 is the root struct); rows with i % 7 == 3 are null.
    let i = &stats[7];
    assert_eq!(i.number_of_values(), 100 - 14);
    assert!(i.has_null());
}

/// Concatenates batches column by column (the reader returns one per 8192 rows by default).
fn arrow_select_concat(batches: &[RecordBatch]) -> RecordBatch {
    let schema = batches[0].schema();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow_select::concat::concat(&parts).unwrap()
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

/// Splits ORC's compression framing: (compressed offset, is_original, body) for each chunk.
fn chunks(stream: &[u8]) -> Vec<(usize, bool, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let header = u32::from_le_bytes([stream[at], stream[at + 1], stream[at + 2], 0]);
        let (len, original) = ((header >> 1) as usize, header & 1 == 1);
        out.push((at, original, &stream[at + 3..at + 3 + len]));
        at += 3 + len;
    }
    out
}

#[test]
fn every_mark_starts_a_compressed_chunk_that_begins_at_the_marked_byte() {
    let raw: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 % 7).collect();
    let marks = [0, 300_000, 300_000, 900_000, 1_000_000];
    let opts = OrcOptions { compression: OrcCompression::Zlib, ..Default::default() };
    let (compressed, starts) = opts.compress_marked(&raw, &marks).unwrap();
    // Inflate chunk by chunk, remembering the uncompressed offset where each chunk begins.
    let mut inflated = Vec::new();
    let mut chunk_at = std::collections::HashMap::new();
    for (offset, original, body) in chunks(&compressed) {
        chunk_at.insert(offset as u64, inflated.len());
        if original {
            inflated.extend_from_slice(body);
        } else {
            let mut d = flate2::read::DeflateDecoder::new(body);
            std::io::Read::read_to_end(&mut d, &mut inflated).unwrap();
        }
    }
    assert_eq!(inflated, raw);
    for (mark, start) in marks.iter().zip(starts) {
        if *mark < raw.len() {
            assert_eq!(chunk_at.get(&start), Some(mark), "mark {mark} → compressed offset {start}");
        } else {
            assert_eq!(start as usize, compressed.len());
        }
    }
}

/// Reads the stripe's streams of an uncompressed file: (kind, column) → bytes.
fn stripe_streams(file: &[u8]) -> (proto::Footer, HashMap<(i32, u32), Vec<u8>>) {
    let ps_len = file[file.len() - 1] as usize;
    let ps = proto::PostScript::decode(&file[file.len() - 1 - ps_len..file.len() - 1]).unwrap();
    let footer_len = ps.footer_length() as usize;
    let footer_start = file.len() - 1 - ps_len - footer_len;
    let footer = proto::Footer::decode(&file[footer_start..footer_start + footer_len]).unwrap();
    let stripe = &footer.stripes[0];
    let footer_at = (stripe.offset() + stripe.index_length() + stripe.data_length()) as usize;
    let sf = proto::StripeFooter::decode(&file[footer_at..footer_at + stripe.footer_length() as usize]).unwrap();
    let mut at = stripe.offset() as usize;
    let mut streams = HashMap::new();
    for s in &sf.streams {
        let len = s.length() as usize;
        streams.insert((s.kind() as i32, s.column()), file[at..at + len].to_vec());
        at += len;
    }
    (footer, streams)
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// The first value of an integer RLE v1 run or literal group starting at `at`.
fn first_int(b: &[u8], at: usize, signed: bool) -> i64 {
    let mut p = at + 1;
    if (b[at] as i8) >= 0 {
        p += 1; // delta byte
    }
    let v = varint(b, &mut p);
    if signed {
        ((v >> 1) as i64) ^ -((v & 1) as i64)
    } else {
        v as i64
    }
}

/// The bit at `bit` of the first byte of a byte-RLE group starting at `at`.
fn first_bit(b: &[u8], at: usize, bit: u64) -> bool {
    // A run (control ≥ 0) and a literal group both put their first byte right after the control byte.
    b[at + 1] & (0x80 >> bit) != 0
}

#[test]
fn row_index_positions_point_at_each_row_groups_first_value() {
    let t = table(3500);
    let opts = OrcOptions { compression: OrcCompression::None, row_index_stride: 1000, ..Default::default() };
    let mut out = Vec::new();
    opts.write(&columns(), &t, &mut out).unwrap();
    let (footer, streams) = stripe_streams(&out);
    assert_eq!(footer.row_index_stride, Some(1000));
    assert_eq!(footer.stripes.len(), 1);
    let index = |col: u32| proto::RowIndex::decode(&streams[&(proto::stream::Kind::RowIndex as i32, col)][..]).unwrap();
    let data = |kind: proto::stream::Kind, col: u32| &streams[&(kind as i32, col)];
    use proto::stream::Kind::{Data, Length, Present};

    // Column 7 is `i` (int, null on rows with i % 7 == 3): PRESENT [offset, 0, bit], DATA [offset, 0].
    let ints = t.column(6).as_primitive::<arrow_array::types::Int32Type>();
    let entries = index(7).entry;
    assert_eq!(entries.len(), 4);
    for (g, e) in entries.iter().enumerate() {
        let first = g * 1000;
        let p = &e.positions;
        assert_eq!(p.len(), 5, "{p:?}");
        assert_eq!(p[1], 0);
        assert_eq!(first_bit(data(Present, 7), p[0] as usize, p[2]), ints.is_valid(first), "group {g}");
        let first_value = (first..).find(|&r| ints.is_valid(r)).unwrap();
        assert_eq!(first_int(data(Data, 7), p[3] as usize, true), i64::from(ints.value(first_value)), "group {g}");
        let rows = (first..(first + 1000).min(3500)).filter(|&r| ints.is_valid(r)).count() as u64;
        assert_eq!(e.statistics.as_ref().unwrap().number_of_values(), rows);
    }

    // Column 1 is `s` (string): PRESENT, DATA [offset], LENGTH [offset, 0].
    let strings = t.column(0).as_string::<i32>();
    for (g, e) in index(1).entry.iter().enumerate() {
        let first_value = (g * 1000..).find(|&r| strings.is_valid(r)).unwrap();
        let want = strings.value(first_value).as_bytes();
        let p = &e.positions;
        assert_eq!(&data(Data, 1)[p[3] as usize..p[3] as usize + want.len()], want, "group {g}");
        assert_eq!(first_int(data(Length, 1), p[4] as usize, false), want.len() as i64);
    }
}
