//! A record's stream origin (Kinesis or Kafka position, key and headers) as bytes, for files that
//! hold records for a while: the fan-out spill (`spill.rs`).
//!
//! ```text
//! origin = 0                                                       no origin
//!        | 1 (u32 len, bytes){shard, sequence, partition_key} subsequence:u64     Kinesis
//!        | 2 (u32 len, topic) partition:i32 offset:i64 timestamp:i64 (i64::MIN: none)
//!            key_len:u32 (u32::MAX: no key) key  headers:u32 ((u32 len, name) (u32 len, value))*   Kafka
//! ```

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;

use crate::record::{KafkaMetadata, KinesisMetadata, Origin};

const NONE: u8 = 0;
const KINESIS: u8 = 1;
const KAFKA: u8 = 2;
/// The key length that says "no key" (an empty key is a key).
const NO_KEY: u32 = u32::MAX;

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Stream metadata is far below 4 GiB (Kafka caps a record at its message size); cut, not panic.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX - 1);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

/// Appends `origin` to `out`.
pub fn encode(origin: Option<&Origin>, out: &mut Vec<u8>) {
    match origin {
        None => out.push(NONE),
        Some(Origin::Kinesis(k)) => {
            out.push(KINESIS);
            for text in [&*k.shard_id, k.sequence_number.as_str(), k.partition_key.as_str()] {
                put_bytes(out, text.as_bytes());
            }
            out.extend_from_slice(&k.subsequence_number.to_le_bytes());
        }
        Some(Origin::Kafka(k)) => {
            out.push(KAFKA);
            put_bytes(out, k.topic.as_bytes());
            out.extend_from_slice(&k.partition.to_le_bytes());
            out.extend_from_slice(&k.offset.to_le_bytes());
            out.extend_from_slice(&k.timestamp_ms.unwrap_or(i64::MIN).to_le_bytes());
            match &k.key {
                None => out.extend_from_slice(&NO_KEY.to_le_bytes()),
                Some(key) => put_bytes(out, key),
            }
            out.extend_from_slice(&(k.headers.len() as u32).to_le_bytes());
            for (name, value) in &k.headers {
                put_bytes(out, name.as_bytes());
                put_bytes(out, value);
            }
        }
    }
}

/// Counts what it reads, so the caller knows an entry's size on disk.
struct Counted<'a, R> {
    reader: &'a mut R,
    read: u64,
}

impl<R: Read> Counted<'_, R> {
    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.reader.read_exact(&mut buf)?;
        self.read += N as u64;
        Ok(buf)
    }

    fn bytes_of(&mut self, len: u32) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        self.reader.read_exact(&mut buf)?;
        self.read += u64::from(len);
        Ok(buf)
    }

    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let len = u32::from_le_bytes(self.array()?);
        self.bytes_of(len)
    }

    fn text(&mut self) -> io::Result<String> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }
}

/// Reads an origin [`encode`] wrote; also returns how many bytes it took.
pub fn decode(reader: &mut impl Read) -> io::Result<(Option<Arc<Origin>>, u64)> {
    let mut r = Counted { reader, read: 0 };
    let [tag] = r.array::<1>()?;
    let origin = match tag {
        NONE => None,
        KINESIS => {
            let shard_id: Arc<str> = r.text()?.into();
            let sequence_number = r.text()?;
            let partition_key = r.text()?;
            let subsequence_number = u64::from_le_bytes(r.array()?);
            Some(Origin::Kinesis(KinesisMetadata { shard_id, sequence_number, subsequence_number, partition_key }))
        }
        KAFKA => {
            let topic: Arc<str> = r.text()?.into();
            let partition = i32::from_le_bytes(r.array()?);
            let offset = i64::from_le_bytes(r.array()?);
            let timestamp_ms = Some(i64::from_le_bytes(r.array()?)).filter(|t| *t != i64::MIN);
            let key = match u32::from_le_bytes(r.array()?) {
                NO_KEY => None,
                len => Some(Bytes::from(r.bytes_of(len)?)),
            };
            let count = u32::from_le_bytes(r.array()?);
            let mut headers = Vec::with_capacity(count.min(1024) as usize);
            for _ in 0..count {
                headers.push((r.text()?, Bytes::from(r.bytes()?)));
            }
            Some(Origin::Kafka(KafkaMetadata { topic, partition, offset, timestamp_ms, key, headers }))
        }
        other => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown record origin tag {other}"))),
    };
    Ok((origin.map(Arc::new), r.read))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(origin: Option<Origin>) {
        let mut out = Vec::new();
        encode(origin.as_ref(), &mut out);
        out.extend_from_slice(b"after");
        let mut reader = &out[..];
        let (back, size) = decode(&mut reader).unwrap();
        assert_eq!(back.as_deref(), origin.as_ref());
        assert_eq!(size as usize, out.len() - 5);
        assert_eq!(reader, b"after");
    }

    #[test]
    fn every_origin_comes_back_as_written() {
        round_trip(None);
        round_trip(Some(Origin::Kinesis(KinesisMetadata {
            shard_id: "shardId-0".into(),
            sequence_number: "4955".into(),
            subsequence_number: 3,
            partition_key: "pk".into(),
        })));
        round_trip(Some(Origin::Kafka(KafkaMetadata {
            topic: "logs".into(),
            partition: 7,
            offset: 123_456,
            timestamp_ms: Some(1_700_000_000_000),
            key: Some(Bytes::from_static(b"")),
            headers: vec![("trace".into(), Bytes::from_static(b"abc")), ("empty".into(), Bytes::new())],
        })));
        round_trip(Some(Origin::Kafka(KafkaMetadata {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: None,
            headers: vec![],
        })));
    }
}
