//! Firehose's RecordDeAggregation: one record in, up to 500 sub-records out.
//!
//! * `JSON`: concatenated JSON objects or JSON lines (`{"a":1}{"a":2}`, `{"a":1}\n{"a":2}`); each
//!   object becomes a record, byte for byte. Anything that is not a JSON object fails the record.
//! * `DELIMITED`: split on a delimiter (base64 in the config, as Firehose takes it); empty pieces
//!   are skipped.
//! * `KPL`: Kinesis Producer Library aggregates (magic `F3 89 9A C2`, protobuf `AggregatedRecord`,
//!   MD5 trailer). A record without the magic is passed through unchanged, as the KCL does; a
//!   truncated, corrupt or mis-hashed aggregate fails the record and never panics.

use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;

use super::{ErrorOutputType, Failed, Item, Processor};
use crate::record::{KinesisMetadata, Origin};

/// Firehose's limit on sub-records per record.
pub const MAX_SUB_RECORDS: usize = 500;
pub const CODE: &str = "RecordDeAggregation.Failed";
const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const MD5_LEN: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubRecordType {
    Json,
    Delimited(Vec<u8>),
    Kpl,
}

pub struct Deaggregate {
    pub kind: SubRecordType,
}

impl Processor for Deaggregate {
    fn name(&self) -> &'static str {
        "record_deaggregation"
    }

    fn process(&self, items: Vec<Item>, failed: &mut Vec<Failed>) -> Vec<Item> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let data = &item.record.data;
            let split = match &self.kind {
                SubRecordType::Json => split_json(data).map(unkeyed),
                SubRecordType::Delimited(d) => Ok(unkeyed(split_delimited(data, d))),
                SubRecordType::Kpl => split_kpl(data),
            };
            match split {
                Ok(parts) if parts.len() > MAX_SUB_RECORDS => failed.push(Failed::new(
                    item.record,
                    ErrorOutputType::ProcessingFailed,
                    CODE,
                    format!("the record holds {} sub-records; at most {MAX_SUB_RECORDS} are allowed", parts.len()),
                )),
                Ok(parts) => out.extend(parts.into_iter().enumerate().map(|(i, (data, key))| {
                    let mut sub = item.derive(data);
                    if let (Some(key), Some(kinesis)) = (key, item.record.kinesis()) {
                        // A KPL user record has its own partition key and sub-sequence number.
                        sub.record.origin = Some(Arc::new(Origin::Kinesis(KinesisMetadata {
                            subsequence_number: i as u64,
                            partition_key: key,
                            ..kinesis.clone()
                        })));
                    }
                    sub
                })),
                Err(message) => failed.push(Failed::new(item.record, ErrorOutputType::ProcessingFailed, CODE, message)),
            }
        }
        out
    }
}

/// Sub-records that keep their source record's partition key.
fn unkeyed(parts: Vec<Bytes>) -> Vec<(Bytes, Option<String>)> {
    parts.into_iter().map(|p| (p, None)).collect()
}

fn split_json(data: &Bytes) -> Result<Vec<Bytes>, String> {
    let mut parts = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(data).into_iter::<serde::de::IgnoredAny>();
    let mut start = 0;
    while let Some(value) = stream.next() {
        value.map_err(|e| format!("the record is not concatenated JSON objects: {e}"))?;
        let end = stream.byte_offset();
        let raw = data.slice(start..end);
        let lead = raw.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(raw.len());
        if raw.get(lead) != Some(&b'{') {
            return Err("JSON de-aggregation accepts only JSON objects (not arrays or scalars)".into());
        }
        parts.push(raw.slice(lead..));
        start = end;
    }
    Ok(parts)
}

fn split_delimited(data: &Bytes, delimiter: &[u8]) -> Vec<Bytes> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while !delimiter.is_empty() && i + delimiter.len() <= data.len() {
        if &data[i..i + delimiter.len()] == delimiter {
            if i > start {
                parts.push(data.slice(start..i));
            }
            i += delimiter.len();
            start = i;
        } else {
            i += 1;
        }
    }
    if start < data.len() {
        parts.push(data.slice(start..));
    }
    parts
}

#[derive(Clone, PartialEq, Message)]
struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<KplRecord>,
}

#[derive(Clone, PartialEq, Message)]
struct KplRecord {
    #[prost(uint64, required, tag = "1")]
    partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "bytes", required, tag = "3")]
    data: Bytes,
    #[prost(message, repeated, tag = "4")]
    tags: Vec<KplTag>,
}

#[derive(Clone, PartialEq, Message)]
struct KplTag {
    #[prost(string, required, tag = "1")]
    key: String,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

/// Builds a KPL aggregate (for `sluice bench`; the tests use a real aggregator instead).
pub fn kpl_aggregate(records: &[Bytes]) -> Bytes {
    let aggregate = AggregatedRecord {
        partition_key_table: vec!["pk".into()],
        explicit_hash_key_table: vec![],
        records: records
            .iter()
            .map(|d| KplRecord { partition_key_index: 0, explicit_hash_key_index: None, data: d.clone(), tags: vec![] })
            .collect(),
    };
    let body = aggregate.encode_to_vec();
    let mut out = KPL_MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    Bytes::from(out)
}

/// The user records of a KPL aggregate with their partition keys; a record that is not an
/// aggregate comes back whole, keeping its own key.
fn split_kpl(data: &Bytes) -> Result<Vec<(Bytes, Option<String>)>, String> {
    if !data.starts_with(&KPL_MAGIC) {
        return Ok(vec![(data.clone(), None)]);
    }
    if data.len() < KPL_MAGIC.len() + MD5_LEN {
        return Err("KPL aggregate is truncated: shorter than its magic and checksum".into());
    }
    let body = data.slice(KPL_MAGIC.len()..data.len() - MD5_LEN);
    let digest = Md5::digest(&body);
    if digest[..] != data[data.len() - MD5_LEN..] {
        return Err("KPL aggregate checksum mismatch: the record is truncated or corrupt".into());
    }
    let aggregate =
        AggregatedRecord::decode(body).map_err(|e| format!("KPL aggregate is not a valid AggregatedRecord: {e}"))?;
    let keys = &aggregate.partition_key_table;
    let mut parts = Vec::with_capacity(aggregate.records.len());
    for (i, r) in aggregate.records.into_iter().enumerate() {
        let key = usize::try_from(r.partition_key_index).ok().and_then(|k| keys.get(k));
        let Some(key) = key else {
            return Err(format!("KPL sub-record {i} names partition key {} of {}", r.partition_key_index, keys.len()));
        };
        parts.push((r.data, Some(key.clone())));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn run(kind: SubRecordType, data: &[u8]) -> (Vec<String>, Vec<Failed>) {
        let mut failed = Vec::new();
        let item = Item::new(Record::new(9, 0, Bytes::copy_from_slice(data)));
        let out = Deaggregate { kind }.process(vec![item], &mut failed);
        (out.iter().map(|i| String::from_utf8_lossy(&i.record.data).into_owned()).collect(), failed)
    }

    fn kpl(records: &[&[u8]]) -> Vec<u8> {
        let agg = AggregatedRecord {
            partition_key_table: vec!["pk".into()],
            explicit_hash_key_table: vec![],
            records: records
                .iter()
                .map(|d| KplRecord {
                    partition_key_index: 0,
                    explicit_hash_key_index: None,
                    data: Bytes::copy_from_slice(d),
                    tags: vec![],
                })
                .collect(),
        };
        let body = agg.encode_to_vec();
        let mut out = KPL_MAGIC.to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&Md5::digest(&body));
        out
    }

    #[test]
    fn json_accepts_concatenated_objects_and_lines_but_not_arrays() {
        assert_eq!(run(SubRecordType::Json, br#"{"a":1}{"a":2}"#).0, [r#"{"a":1}"#, r#"{"a":2}"#]);
        assert_eq!(run(SubRecordType::Json, b"{\"a\":1}\n {\"b\":[1,2]}\n").0, [r#"{"a":1}"#, r#"{"b":[1,2]}"#]);
        assert_eq!(run(SubRecordType::Json, b"[1,2]").1.len(), 1);
        assert_eq!(run(SubRecordType::Json, b"{\"a\":").1.len(), 1);
    }

    #[test]
    fn delimited_splits_on_the_delimiter() {
        assert_eq!(run(SubRecordType::Delimited(b"####".to_vec()), b"a####bb########c####").0, ["a", "bb", "c"]);
    }

    #[test]
    fn kpl_round_trips_and_rejects_damage() {
        let good = kpl(&[b"one", b"two"]);
        assert_eq!(run(SubRecordType::Kpl, &good).0, ["one", "two"]);
        assert_eq!(run(SubRecordType::Kpl, b"plain record").0, ["plain record"]);
        let mut flipped = good.clone();
        flipped[10] ^= 0x01;
        assert_eq!(run(SubRecordType::Kpl, &flipped).1.len(), 1);
        for cut in [5, 12, good.len() - 1] {
            assert_eq!(run(SubRecordType::Kpl, &good[..cut]).1.len(), 1, "truncated at {cut}");
        }
    }

    #[test]
    fn kpl_user_records_carry_their_own_partition_key_and_subsequence_number() {
        let mut body = kpl(&[b"one", b"two"])[KPL_MAGIC.len()..].to_vec();
        body.truncate(body.len() - MD5_LEN);
        let mut agg = AggregatedRecord::decode(&body[..]).unwrap();
        agg.partition_key_table = vec!["alpha".into(), "beta".into()];
        agg.records[1].partition_key_index = 1;
        let body = agg.encode_to_vec();
        let data = [&KPL_MAGIC[..], &body, &Md5::digest(&body)].concat();
        let kinesis = KinesisMetadata {
            shard_id: Arc::from("shardId-000000000001"),
            sequence_number: "4960".into(),
            subsequence_number: 0,
            partition_key: "outer".into(),
        };
        let record =
            Record { origin: Some(Arc::new(Origin::Kinesis(kinesis))), ..Record::new(3, 0, Bytes::from(data)) };
        let out = Deaggregate { kind: SubRecordType::Kpl }.process(vec![Item::new(record)], &mut Vec::new());
        let meta: Vec<_> = out.iter().map(|i| i.record.kinesis().cloned().unwrap()).collect();
        assert_eq!((meta[0].partition_key.as_str(), meta[0].subsequence_number), ("alpha", 0));
        assert_eq!((meta[1].partition_key.as_str(), meta[1].subsequence_number), ("beta", 1));
        assert!(meta.iter().all(|m| m.sequence_number == "4960" && &*m.shard_id == "shardId-000000000001"));
    }

    #[test]
    fn more_than_500_sub_records_fail_the_record() {
        let many = "{}".repeat(501);
        let (ok, failed) = run(SubRecordType::Json, many.as_bytes());
        assert!(ok.is_empty());
        assert!(failed[0].message.contains("501"));
    }
}
