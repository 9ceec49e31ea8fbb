//! The input batch a plugin receives, in the encoding of the ABI version it speaks
//! (`transforms/ABI.md`).
//!
//! Version 2 adds each record's Kinesis metadata (Firehose's `kinesisRecordMetadata`); version 1
//! modules keep receiving the version 1 encoding, so they run unchanged.

use crate::process::Item;
use crate::record::KinesisMetadata;

/// The ABI versions this sluice speaks; the newest is what the SDK builds.
pub const ABI_VERSIONS: [i32; 2] = [1, 2];

/// The size of the encoded batch: exactly what [`encode`] writes.
pub fn size(items: &[Item], version: i32) -> usize {
    let base = 4 + items.iter().map(|i| 20 + i.record.data.len()).sum::<usize>();
    if version < 2 {
        return base;
    }
    let metadata = |k: &KinesisMetadata| {
        6 + field(&k.shard_id).len() + field(&k.partition_key).len() + field(&k.sequence_number).len() + 8
    };
    base + items.iter().map(|i| 1 + i.record.kinesis.as_deref().map_or(0, metadata)).sum::<usize>()
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
        match item.record.kinesis.as_deref() {
            None => put(&[0]),
            Some(k) => {
                put(&[1]);
                for s in [&*k.shard_id, &k.partition_key, &k.sequence_number] {
                    let s = field(s);
                    put(&(s.len() as u16).to_le_bytes());
                    put(s.as_bytes());
                }
                put(&k.subsequence_number.to_le_bytes());
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
            Item::new(Record { kinesis: Some(Arc::new(kinesis)), ..Record::new(2, 6, Bytes::from_static(b"c")) }),
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
}
