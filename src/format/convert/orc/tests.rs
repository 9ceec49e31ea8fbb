//! Files from this writer read back by orc-rust's reader (code we did not write), value for value.
//! tests/test_conversion.py reads them with pyarrow.orc as well.

use std::collections::HashMap;

use arrow_array::Array;
use bytes::Bytes;
use orc_rust::ArrowReaderBuilder;

use super::*;
use crate::format::convert::decode::{Decoder, InputRules};

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
        let opts = OrcOptions { compression, stripe_size_bytes: 64 << 10 };
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
    OrcOptions { compression: OrcCompression::Zlib, stripe_size_bytes: 64 << 20 }
        .write(&columns(), &t, &mut out)
        .unwrap();
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
