//! Write a sluice transform plugin as one Rust function.
//!
//! ```ignore
//! use sluice_plugin::{transform, Output, Record};
//!
//! #[transform]
//! fn shout(record: Record) -> Output {
//!     Output::ok(record.data.to_ascii_uppercase())
//! }
//! ```
//!
//! A plugin that takes options declares them as a struct, and sluice checks a pipeline's
//! `config:` against it when the config is validated: a misspelt key is an error, not a setting
//! silently ignored.
//!
//! ```ignore
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { fields: Vec<String> }
//!
//! #[transform(config = Config)]
//! fn redact(record: Record, config: &Config) -> Output { ... }
//! ```
//!
//! Build with `cargo build --target wasm32-wasip1 --release` (crate-type `cdylib`) and point a
//! pipeline's `wasm: { module: ... }` at the `.wasm` file. The contract is Firehose's Lambda
//! contract: every record comes back `Ok` (with new data and optional partition keys), `Dropped`
//! or `ProcessingFailed`. The SDK owns the memory handling and the batch encoding of ABI.md.

pub use sluice_plugin_macros::{transform, transform_batch};

/// Version 2 gives records their Kinesis metadata, version 3 their Kafka metadata; sluice still
/// runs version 1 and 2 modules.
pub const ABI_VERSION: i32 = 3;

/// A record handed to the plugin.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub data: &'a [u8],
    /// Approximate arrival time at sluice (at the stream, for a Kinesis source), epoch ms.
    pub arrival_ms: i64,
    /// Where the record was read, when the pipeline's source is a Kinesis Data Stream (Firehose's
    /// `kinesisRecordMetadata`); `None` for every other source.
    pub kinesis: Option<KinesisRecordMetadata<'a>>,
    /// Where the record was read, when the pipeline's source is a Kafka topic; `None` for every
    /// other source.
    pub kafka: Option<KafkaRecordMetadata<'a>>,
}

/// A Kafka record's place, timestamp, key and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecordMetadata<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp (producer or broker time, as the topic is set up), epoch ms.
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    /// In the producer's order; a header without a value has an empty one.
    pub headers: Vec<(&'a str, &'a [u8])>,
}

/// Firehose's `kinesisRecordMetadata`. Its `approximateArrivalTimestamp` is the record's
/// `arrival_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KinesisRecordMetadata<'a> {
    pub shard_id: &'a str,
    pub partition_key: &'a str,
    pub sequence_number: &'a str,
    /// The user record's position inside a KPL aggregate; 0 for a record that was not aggregated.
    pub subsequence_number: u64,
}

use std::borrow::Cow;

/// What happens to a record. `Ok` data may borrow the input record (no copy when unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'a> {
    Ok(Cow<'a, [u8]>),
    Dropped,
    ProcessingFailed,
}

/// A record's outcome plus the partition keys it sets (`!{partitionKeyFromLambda:name}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output<'a> {
    pub outcome: Outcome<'a>,
    pub partition_keys: Vec<(String, String)>,
}

impl<'a> Output<'a> {
    /// Keeps the record, with new data (a `Vec<u8>`) or the input's own bytes (a `&[u8]`).
    pub fn ok(data: impl Into<Cow<'a, [u8]>>) -> Self {
        Self { outcome: Outcome::Ok(data.into()), partition_keys: Vec::new() }
    }

    pub fn dropped() -> Self {
        Self { outcome: Outcome::Dropped, partition_keys: Vec::new() }
    }

    pub fn failed() -> Self {
        Self { outcome: Outcome::ProcessingFailed, partition_keys: Vec::new() }
    }

    pub fn with_key(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.partition_keys.push((name.into(), value.into()));
        self
    }
}

static mut CONFIG: Option<String> = None;

/// The plugin's `config:` from the pipeline YAML, as JSON text (`{}` when none was given).
#[allow(static_mut_refs)]
pub fn config() -> &'static str {
    // Plugins are single-threaded WebAssembly instances; CONFIG is written once, by sluice_init.
    unsafe { CONFIG.as_deref().unwrap_or("{}") }
}

#[doc(hidden)]
pub mod __private {
    use super::*;
    pub use std::sync::OnceLock;

    // Why sluice_init refused the config, for sluice_init_error.
    static mut INIT_ERROR: Vec<u8> = Vec::new();

    /// Parses the config into the plugin's typed config; on failure keeps serde's message
    /// (`unknown field `feilds`, expected `fields``) for the host to show.
    #[allow(static_mut_refs)]
    pub fn init_typed<T: serde::de::DeserializeOwned + Send + Sync>(ptr: i32, len: i32, slot: &OnceLock<T>) -> i32 {
        let code = init(ptr, len);
        if code != 0 {
            unsafe { INIT_ERROR = b"the config is not UTF-8".to_vec() };
            return code;
        }
        match serde_json::from_str::<T>(config()) {
            Ok(parsed) => {
                let _ = slot.set(parsed);
                0
            }
            Err(e) => {
                unsafe { INIT_ERROR = format!("config: {e}").into_bytes() };
                2
            }
        }
    }

    /// `(ptr << 32) | len` of the last init error's text (0 when there is none).
    #[allow(static_mut_refs)]
    pub fn init_error() -> i64 {
        unsafe {
            if INIT_ERROR.is_empty() {
                0
            } else {
                ((INIT_ERROR.as_ptr() as u32 as i64) << 32) | INIT_ERROR.len() as i64
            }
        }
    }

    // The last output batch stays alive until the next call (the ABI's ownership rule).
    static mut LAST_OUTPUT: Vec<u8> = Vec::new();

    pub fn alloc(len: i32) -> i32 {
        let mut buf = Vec::<u8>::with_capacity(len.max(0) as usize);
        let ptr = buf.as_mut_ptr();
        std::mem::forget(buf);
        ptr as i32
    }

    /// Takes ownership of a buffer made by `alloc`.
    unsafe fn take(ptr: i32, len: i32) -> Vec<u8> {
        let len = len.max(0) as usize;
        Vec::from_raw_parts(ptr as *mut u8, len, len)
    }

    #[allow(static_mut_refs)]
    pub fn init(ptr: i32, len: i32) -> i32 {
        let bytes = unsafe { take(ptr, len) };
        match String::from_utf8(bytes) {
            Ok(text) => {
                unsafe { CONFIG = Some(text) };
                0
            }
            Err(_) => 1,
        }
    }

    /// Reads the input batch (ABI version 3); stops at the first record that does not fit.
    fn decode(input: &[u8]) -> Vec<(u64, Record<'_>)> {
        let mut at = Reader { input, pos: 0 };
        let count = at.u32().unwrap_or(0) as usize;
        let mut records = Vec::with_capacity(count.min(input.len() / 21));
        for _ in 0..count {
            match at.record() {
                Some(r) => records.push(r),
                None => break,
            }
        }
        records
    }

    struct Reader<'a> {
        input: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
            let out = self.input.get(self.pos..self.pos.checked_add(n)?)?;
            self.pos += n;
            Some(out)
        }
        fn u16(&mut self) -> Option<u16> {
            Some(u16::from_le_bytes(self.bytes(2)?.try_into().ok()?))
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
        }
        fn str(&mut self) -> Option<&'a str> {
            let len = self.u16()? as usize;
            std::str::from_utf8(self.bytes(len)?).ok()
        }
        fn record(&mut self) -> Option<(u64, Record<'a>)> {
            let id = self.u64()?;
            let arrival_ms = self.u64()? as i64;
            let len = self.u32()? as usize;
            let data = self.bytes(len)?;
            let (mut kinesis, mut kafka) = (None, None);
            match self.bytes(1)? {
                [1] => {
                    kinesis = Some(KinesisRecordMetadata {
                        shard_id: self.str()?,
                        partition_key: self.str()?,
                        sequence_number: self.str()?,
                        subsequence_number: self.u64()?,
                    })
                }
                [2] => kafka = Some(self.kafka()?),
                _ => {}
            }
            Some((id, Record { data, arrival_ms, kinesis, kafka }))
        }
        fn kafka(&mut self) -> Option<KafkaRecordMetadata<'a>> {
            let topic = self.str()?;
            let partition = self.u32()? as i32;
            let offset = self.u64()? as i64;
            let timestamp_ms = Some(self.u64()? as i64).filter(|t| *t != i64::MIN);
            let key = match self.u32()? {
                u32::MAX => None,
                len => Some(self.bytes(len as usize)?),
            };
            let count = self.u16()? as usize;
            let mut headers = Vec::with_capacity(count);
            for _ in 0..count {
                let name = self.str()?;
                let len = self.u32()? as usize;
                headers.push((name, self.bytes(len)?));
            }
            Some(KafkaRecordMetadata { topic, partition, offset, timestamp_ms, key, headers })
        }
    }

    fn encode(out: &mut Vec<u8>, id: u64, output: &Output<'_>) {
        let (result, data): (u8, &[u8]) = match &output.outcome {
            Outcome::Ok(d) => (0, d.as_ref()),
            Outcome::Dropped => (1, &[]),
            Outcome::ProcessingFailed => (2, &[]),
        };
        out.extend_from_slice(&id.to_le_bytes());
        out.push(result);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(&(output.partition_keys.len() as u16).to_le_bytes());
        for (k, v) in &output.partition_keys {
            out.extend_from_slice(&(k.len() as u16).to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u16).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
    }

    #[allow(static_mut_refs)]
    fn finish(out: Vec<u8>) -> i64 {
        unsafe {
            LAST_OUTPUT = out;
            ((LAST_OUTPUT.as_ptr() as u32 as i64) << 32) | LAST_OUTPUT.len() as i64
        }
    }

    pub fn process_each(ptr: i32, len: i32, f: for<'a> fn(Record<'a>) -> Output<'a>) -> i64 {
        let input = unsafe { take(ptr, len) };
        let records = decode(&input);
        let mut out = Vec::with_capacity(input.len() + records.len() * 16);
        out.extend_from_slice(&(records.len() as u32).to_le_bytes());
        for (id, record) in records {
            encode(&mut out, id, &f(record));
        }
        finish(out)
    }

    pub fn process_batch(ptr: i32, len: i32, f: for<'a> fn(&[Record<'a>]) -> Vec<Output<'a>>) -> i64 {
        let input = unsafe { take(ptr, len) };
        let (ids, records): (Vec<u64>, Vec<Record<'_>>) = decode(&input).into_iter().unzip();
        let outputs = f(&records);
        let mut out = Vec::with_capacity(input.len() + records.len() * 16);
        out.extend_from_slice(&(outputs.len().min(ids.len()) as u32).to_le_bytes());
        for (id, output) in ids.iter().zip(&outputs) {
            encode(&mut out, *id, output);
        }
        finish(out)
    }
}
