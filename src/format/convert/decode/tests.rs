use arrow_array::cast::AsArray;
use arrow_array::Array;

use super::*;

fn openx() -> InputRules {
    InputRules::OpenX { case_insensitive: true, dots_to_underscores: false, column_to_json_key: HashMap::new() }
}

fn hive() -> InputRules {
    InputRules::Hive { timestamp_formats: Vec::new() }
}

fn columns(spec: &[(&str, &str)]) -> Vec<(String, HiveType)> {
    spec.iter().map(|(n, t)| (n.to_string(), HiveType::parse(t).unwrap())).collect()
}

#[test]
fn a_failed_record_leaves_nothing_behind() {
    let mut d = Decoder::new(&columns(&[("a", "int"), ("tags", "array<struct<k:string>>")]), openx());
    d.push(br#"{"a":1,"tags":[{"k":"x"}]}"#).unwrap();
    // The second object of a concatenated record fails after the first was decoded.
    let e = d.push(br#"{"a":2,"tags":[{"k":"y"}]}{"a":3,"tags":[{"k":"z"}, 5]}"#).unwrap_err();
    assert_eq!(e.kind, FailKind::Malformed);
    assert!(e.message.contains("Column 'tags[1]'") && e.message.contains("Start of Object expected"), "{}", e.message);
    d.push(br#"{"a":4}"#).unwrap();
    let batch = d.finish().unwrap();
    assert_eq!(batch.num_rows(), 2);
    let a = batch.column(0).as_primitive::<Int32Type>();
    assert_eq!((a.value(0), a.value(1)), (1, 4));
    let tags = batch.column(1).as_list::<i32>();
    assert_eq!(tags.value_offsets(), &[0, 1, 1]);
    assert_eq!(tags.values().len(), 1, "the failed record's elements were removed too");
    assert!(tags.is_null(1));
}

#[test]
fn concatenated_objects_are_rows_and_junk_is_a_parse_error() {
    let mut d = Decoder::new(&columns(&[("a", "bigint")]), openx());
    d.push(b"{\"a\":1} {\"a\":2}\n{\"a\":3}").unwrap();
    assert_eq!(d.rows(), 3);
    for bad in [&b"{\"a\":1"[..], b"[1,2]", b"", b"  ", b"{\"a\":1} x", b"nul"] {
        let e = d.push(bad).unwrap_err();
        assert_eq!(e.kind, FailKind::Parse, "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(d.rows(), 3);
}

#[test]
fn openx_key_rules() {
    let mut mappings = HashMap::new();
    mappings.insert("ts".to_string(), "timestamp".to_string());
    let rules = InputRules::OpenX { case_insensitive: true, dots_to_underscores: true, column_to_json_key: mappings };
    let mut d = Decoder::new(&columns(&[("user_id", "int"), ("ts", "timestamp"), ("name", "string")]), rules);
    d.push(br#"{"User.Id": 7, "TimeStamp": "2026-11-23T00:00:00Z", "NAME": "x", "extra": {"ignored": [1]}}"#).unwrap();
    let b = d.finish().unwrap();
    assert_eq!(b.column(0).as_primitive::<Int32Type>().value(0), 7);
    assert_eq!(b.column(1).as_primitive::<TimestampMicrosecondType>().value(0), 1_795_392_000_000_000);
    assert_eq!(b.column(2).as_string::<i32>().value(0), "x");
}

#[test]
fn openx_coerces_where_hive_fails() {
    let cols = columns(&[("n", "int"), ("s", "string"), ("b", "boolean")]);
    let mut o = Decoder::new(&cols, openx());
    o.push(br#"{"n":"42","s":{"a":[1, 2]},"b":"TRUE"}"#).unwrap();
    let b = o.finish().unwrap();
    assert_eq!(b.column(0).as_primitive::<Int32Type>().value(0), 42);
    assert_eq!(b.column(1).as_string::<i32>().value(0), r#"{"a":[1, 2]}"#);
    assert!(b.column(2).as_boolean().value(0));

    let mut h = Decoder::new(&cols, hive());
    let e = h.push(br#"{"n":"42"}"#).unwrap_err();
    assert_eq!(e.kind, FailKind::Malformed);
    assert!(e.message.contains("Current token (VALUE_STRING) not numeric"), "{}", e.message);
    assert!(h.push(br#"{"s":{"a":1}}"#).unwrap_err().message.contains("Column 's'"));
    h.push(br#"{"n":42,"s":12.50}"#).unwrap();
    assert_eq!(h.finish().unwrap().column(1).as_string::<i32>().value(0), "12.50");
}

#[test]
fn values_that_do_not_fit_are_malformed() {
    let cols = columns(&[("t", "tinyint"), ("d", "decimal(5,2)"), ("v", "varchar(3)"), ("c", "char(4)")]);
    let mut d = Decoder::new(&cols, openx());
    for bad in [r#"{"t":128}"#, r#"{"t":1.5}"#, r#"{"d":1000}"#, r#"{"d":"abc"}"#, r#"{"t":[1]}"#] {
        assert_eq!(d.push(bad.as_bytes()).unwrap_err().kind, FailKind::Malformed, "{bad}");
    }
    d.push(r#"{"t":-128,"d":999.995,"v":"abcdé","c":"é"}"#.as_bytes()).unwrap_err(); // rounds up past precision
    d.push(r#"{"t":-128,"d":-999.994,"v":"abcdé","c":"é"}"#.as_bytes()).unwrap();
    let b = d.finish().unwrap();
    assert_eq!(b.column(0).as_primitive::<Int8Type>().value(0), -128);
    assert_eq!(b.column(1).as_primitive::<Decimal128Type>().value(0), -99999);
    assert_eq!(b.column(2).as_string::<i32>().value(0), "abc");
    assert_eq!(b.column(3).as_string::<i32>().value(0), "é   ");
}

#[test]
fn decimals_are_exact() {
    assert_eq!(parse_decimal("12.345", 12, 2), Ok(1235));
    assert_eq!(parse_decimal("-12.344", 12, 2), Ok(-1234));
    assert_eq!(parse_decimal("1e3", 6, 2), Ok(100000));
    assert_eq!(parse_decimal("1.5E-1", 4, 2), Ok(15));
    assert_eq!(parse_decimal("0.000", 3, 3), Ok(0));
    assert_eq!(
        parse_decimal("99999999999999999999999999999999999999", 38, 0),
        Ok(99999999999999999999999999999999999999)
    );
    assert!(parse_decimal("999999999999999999999999999999999999999", 38, 0).is_err());
    assert!(parse_decimal("1e400", 38, 0).is_err());
    assert_eq!(parse_decimal("1e-400", 38, 2), Ok(0));
    assert!(parse_decimal("1.2.3", 5, 1).is_err());
}

#[test]
fn maps_convert_keys_and_duplicate_keys_keep_the_last_value() {
    let mut d = Decoder::new(&columns(&[("m", "map<int,string>"), ("a", "int")]), openx());
    d.push(br#"{"a":1,"m":{"1":"x","2":null},"a":2}"#).unwrap();
    assert!(d.push(br#"{"m":{"one":"x"}}"#).unwrap_err().message.contains("Column 'm[one]'"));
    let b = d.finish().unwrap();
    assert_eq!(b.column(1).as_primitive::<Int32Type>().value(0), 2);
    let m = b.column(0).as_map();
    assert_eq!(m.keys().as_primitive::<Int32Type>().values(), &[1, 2]);
    assert!(m.values().is_null(1));
}

/// Mutated and truncated records (bit flips, cut-offs, spliced bytes) never panic the decoder or
/// the writers: each record either becomes a row or fails alone, and the file is still written.
#[test]
fn hostile_input_fails_per_record_and_never_panics() {
    let cols = columns(&[
        ("s", "string"),
        ("d", "decimal(10,3)"),
        ("ts", "timestamp"),
        ("day", "date"),
        ("v", "varchar(3)"),
        ("m", "map<int,array<struct<x:double,y:boolean>>>"),
        ("b", "binary"),
        ("n", "smallint"),
    ]);
    let seed = r#"{"s":"é\u0041\n","d":-12.3456,"ts":"2026-11-23T10:15:30.5+01:00","day":"2026-02-28","v":"abcd",
                    "m":{"1":[{"x":1e3,"y":true},null],"-2":[]},"b":"raw","n":-32768}{"s":null}"#
        .as_bytes();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut d = Decoder::new(&cols, openx());
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..20_000 {
        let mut r = seed.to_vec();
        for _ in 0..(next() % 4) {
            let i = (next() as usize) % r.len();
            match next() % 3 {
                0 => r[i] ^= 1 << (next() % 8),
                1 => r.truncate(i.max(1)),
                _ => r.insert(i, b"{}[]\",:-.e0\\"[(next() % 12) as usize]),
            }
        }
        match d.push(&r) {
            Ok(()) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    assert!(ok > 0 && failed > 0, "{ok} ok, {failed} failed");
    let rows = d.rows();
    let table = d.finish().unwrap();
    assert_eq!(table.num_rows(), rows);
    let parquet = super::super::parquet::ParquetOptions::default();
    parquet.write(&table, Vec::new()).unwrap();
    let orc =
        super::super::orc::OrcOptions { bloom_filter_columns: vec!["s".into(), "d".into()], ..Default::default() };
    orc.write(&cols, &table, Vec::new()).unwrap();
}
