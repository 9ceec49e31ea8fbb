//! The input batch a plugin receives, in the encoding of the ABI version it speaks
//! (`transforms/ABI.md`).
//!
//! Version 2 adds each record's Kinesis metadata (Firehose's `kinesisRecordMetadata`); version 3
//! its Kafka topic, partition, offset, timestamp, key and headers. Older modules keep receiving
//! their version's encoding (a version 2 module sees a Kafka record as one without metadata), so
//! they run unchanged.

use crate::process::Item;
use crate::record::{KafkaMetadata, KinesisMetadata, Origin};

/// The ABI versions this sluice speaks; the newest is what the SDK builds.
pub const ABI_VERSIONS: [i32; 3] = [1, 2, 3];

/// The origin tags after a record's data (version 2 and later).
const NO_ORIGIN: u8 = 0;
const KINESIS: u8 = 1;
const KAFKA: u8 = 2;
/// A Kafka key length that says "no key" (an empty key is a key).
const NO_KEY: u32 = u32::MAX;

/// What a record's origin is written as for a module speaking `version`.
fn origin(item: &Item, version: i32) -> Option<&Origin> {
    match item.record.origin.as_deref() {
        Some(Origin::Kafka(_)) if version < 3 => None,
        other => other,
    }
}

fn kinesis_size(k: &KinesisMetadata) -> usize {
    6 + field(&k.shard_id).len() + field(&k.partition_key).len() + field(&k.sequence_number).len() + 8
}

fn kafka_size(k: &KafkaMetadata) -> usize {
    let key = k.key.as_ref().map_or(0, |key| capped(key).len());
    let headers = k.headers.iter().take(u16::MAX as usize);
    2 + field(&k.topic).len()
        + 4
        + 8
        + 8
        + 4
        + key
        + 2
        + headers.map(|(name, value)| 2 + field(name).len() + 4 + capped(value).len()).sum::<usize>()
}

/// A Kafka key or header value as written: at most `u32::MAX - 1` bytes (Kafka's own message
/// size limit keeps them far below).
fn capped(b: &[u8]) -> &[u8] {
    &b[..b.len().min(NO_KEY as usize - 1)]
}

/// The size of the encoded batch: exactly what [`encode`] writes.
pub fn size(items: &[Item], version: i32) -> usize {
    let base = 4 + items.iter().map(|i| 20 + i.record.data.len()).sum::<usize>();
    if version < 2 {
        return base;
    }
    let metadata = |i: &Item| match origin(i, version) {
        None => 0,
        Some(Origin::Kinesis(k)) => kinesis_size(k),
        Some(Origin::Kafka(k)) => kafka_size(k),
    };
    base + items.iter().map(|i| 1 + metadata(i)).sum::<usize>()
}

/// A string field as written: at most `u16::MAX` bytes (Kinesis keeps these far shorter: shard
/// ids and sequence numbers are at most 128 characters, partition keys 256), cut on a character
/// boundary in the impossible case.
fn field(s: &str) -> &str {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Writes the batch into `buf`, which is exactly [`size`] bytes long.
pub fn encode(items: &[Item], version: i32, buf: &mut [u8]) {
    let mut pos = 0;
    let mut put = |bytes: &[u8]| {
        buf[pos..pos + bytes.len()].copy_from_slice(bytes);
        pos += bytes.len();
    };
    put(&(items.len() as u32).to_le_bytes());
    for (id, item) in items.iter().enumerate() {
        put(&(id as u64).to_le_bytes());
        put(&item.record.arrival_ms.to_le_bytes());
        put(&(item.record.data.len() as u32).to_le_bytes());
        put(&item.record.data);
        if version < 2 {
            continue;
        }
        match origin(item, version) {
            None => put(&[NO_ORIGIN]),
            Some(Origin::Kinesis(k)) => {
                put(&[KINESIS]);
                for s in [&*k.shard_id, &k.partition_key, &k.sequence_number] {
                    let s = field(s);
                    put(&(s.len() as u16).to_le_bytes());
                    put(s.as_bytes());
                }
                put(&k.subsequence_number.to_le_bytes());
            }
            Some(Origin::Kafka(k)) => {
                put(&[KAFKA]);
                let topic = field(&k.topic);
                put(&(topic.len() as u16).to_le_bytes());
                put(topic.as_bytes());
                put(&k.partition.to_le_bytes());
                put(&k.offset.to_le_bytes());
                put(&k.timestamp_ms.unwrap_or(i64::MIN).to_le_bytes());
                match &k.key {
                    None => put(&NO_KEY.to_le_bytes()),
                    Some(key) => {
                        let key = capped(key);
                        put(&(key.len() as u32).to_le_bytes());
                        put(key);
                    }
                }
                let headers = &k.headers[..k.headers.len().min(u16::MAX as usize)];
                put(&(headers.len() as u16).to_le_bytes());
                for (name, value) in headers {
                    let (name, value) = (field(name), capped(value));
                    put(&(name.len() as u16).to_le_bytes());
                    put(name.as_bytes());
                    put(&(value.len() as u32).to_le_bytes());
                    put(value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::record::Record;

    #[test]
    fn version_2_appends_the_kinesis_metadata_and_sizes_match() {
        let kinesis = KinesisMetadata {
            shard_id: Arc::from("shardId-000000000002"),
            sequence_number: "4959".into(),
            subsequence_number: 7,
            partition_key: "user-1".into(),
        };
        let items = vec![
            Item::new(Record::new(1, 5, Bytes::from_static(b"ab"))),
            Item::new(Record {
                origin: Some(Arc::new(crate::record::Origin::Kinesis(kinesis))),
                ..Record::new(2, 6, Bytes::from_static(b"c"))
            }),
        ];
        let mut v1 = vec![0; size(&items, 1)];
        encode(&items, 1, &mut v1);
        assert_eq!(v1.len(), 4 + 22 + 21);
        let mut v2 = vec![0; size(&items, 2)];
        encode(&items, 2, &mut v2);
        let second = &v2[4 + 22 + 1..];
        assert_eq!(&second[..8], &1u64.to_le_bytes());
        assert_eq!(&second[20..21], b"c");
        assert_eq!(second[21], 1, "has metadata");
        assert_eq!(&second[22..24], &20u16.to_le_bytes());
        assert_eq!(&second[24..44], b"shardId-000000000002");
        assert_eq!(&second[44..46], &6u16.to_le_bytes());
        assert_eq!(&second[46..52], b"user-1");
        assert_eq!(&second[52..54], &4u16.to_le_bytes());
        assert_eq!(&second[54..58], b"4959");
        assert_eq!(&second[58..66], &7u64.to_le_bytes());
        assert_eq!(v2[4 + 22], 0, "the first record has none");
    }

    #[test]
    fn version_3_appends_kafka_metadata_and_version_2_sees_none() {
        let kafka = KafkaMetadata {
            topic: Arc::from("logs"),
            partition: 3,
            offset: 42,
            timestamp_ms: Some(1_700_000_000_000),
            key: Some(Bytes::from_static(b"k1")),
            headers: vec![("trace".into(), Bytes::from_static(b"abc"))],
        };
        let items = vec![Item::new(Record {
            origin: Some(Arc::new(Origin::Kafka(kafka))),
            ..Record::new(1, 5, Bytes::from_static(b"ab"))
        })];
        let mut v2 = vec![0; size(&items, 2)];
        encode(&items, 2, &mut v2);
        assert_eq!(v2.len(), 4 + 22 + 1);
        assert_eq!(v2[26], NO_ORIGIN, "a version 2 module does not know Kafka metadata");
        let mut v3 = vec![0; size(&items, 3)];
        encode(&items, 3, &mut v3);
        let m = &v3[4 + 22..];
        assert_eq!(m[0], KAFKA);
        assert_eq!(&m[1..3], &4u16.to_le_bytes());
        assert_eq!(&m[3..7], b"logs");
        assert_eq!(&m[7..11], &3i32.to_le_bytes());
        assert_eq!(&m[11..19], &42i64.to_le_bytes());
        assert_eq!(&m[19..27], &1_700_000_000_000i64.to_le_bytes());
        assert_eq!(&m[27..31], &2u32.to_le_bytes());
        assert_eq!(&m[31..33], b"k1");
        assert_eq!(&m[33..35], &1u16.to_le_bytes());
        assert_eq!(&m[35..37], &5u16.to_le_bytes());
        assert_eq!(&m[37..42], b"trace");
        assert_eq!(&m[42..46], &3u32.to_le_bytes());
        assert_eq!(&m[46..49], b"abc");
        assert_eq!(m.len(), 49, "size() is exactly what encode() writes");
    }
}
