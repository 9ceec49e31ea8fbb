//! Request and response shapes of the Firehose JSON 1.1 API (botocore's firehose model).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordInput<'a> {
    #[serde(borrow)]
    pub delivery_stream_name: Cow<'a, str>,
    #[serde(borrow)]
    pub record: RecordIn<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordBatchInput<'a> {
    #[serde(borrow)]
    pub delivery_stream_name: Cow<'a, str>,
    #[serde(borrow)]
    pub records: Vec<RecordIn<'a>>,
}

/// `Data` stays borrowed from the request body (base64 has no JSON escapes in practice) and is
/// decoded straight into the WAL frame.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordIn<'a> {
    #[serde(borrow)]
    pub data: Cow<'a, str>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListInput {
    pub limit: Option<i64>,
    pub delivery_stream_type: Option<String>,
    pub exclusive_start_delivery_stream_name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordOutput {
    pub record_id: RecordId,
    pub encrypted: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordBatchOutput {
    pub failed_put_count: usize,
    pub encrypted: bool,
    pub request_responses: Vec<RecordResult>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<RecordId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListOutput {
    pub delivery_stream_names: Vec<String>,
    pub has_more_delivery_streams: bool,
}

/// A RecordId: the stream's seed and the record's WAL sequence as 32 hex digits. Written straight
/// into the response (a PutRecordBatch answers 500 of them; no string is built for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordId {
    pub seed: u64,
    pub seq: u64,
}

impl RecordId {
    fn hex(self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let (word, shift) = if i < 16 { (self.seed, (15 - i) * 4) } else { (self.seq, (31 - i) * 4) };
            *byte = DIGITS[((word >> shift) & 0xf) as usize];
        }
        out
    }
}

impl Serialize for RecordId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = self.hex();
        // Hex digits are ASCII, so this never fails; an empty id would be the only fallback.
        s.serialize_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_the_seed_and_sequence_in_hex() {
        let id = RecordId { seed: 0x0123_4567_89ab_cdef, seq: 42 };
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{:016x}{:016x}\"", 0x0123_4567_89ab_cdef_u64, 42));
    }
}
