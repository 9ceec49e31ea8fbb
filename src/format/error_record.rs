//! Firehose's error-output record (spec §6): one JSON document per failed record, newline-delimited
//! in objects under the error prefix.
//!
//! sluice writes the `processing-failed` shape for every error type it produces today, since Firehose
//! documents no separate layout for `decompression-failed` (it only says the original bytes are kept,
//! which `rawData` does):
//! `{"attemptsMade","arrivalTimestamp","errorCode","errorMessage","attemptEndingTimestamp","rawData"}`
//! plus `lambdaArn` when a transform plugin failed (the plugin's path stands in for the ARN).
//!
//! `format-conversion-failed` has its own documented shape: `lastErrorCode`/`lastErrorMessage`
//! instead of `errorCode`/`errorMessage`. Its `sequenceNumber`/`subSequenceNumber` (Kinesis
//! sources) and `dataCatalogTable` (the Glue table) are left out: Direct PUT has no sequence
//! numbers and sluice's schema comes from the config, not from Glue.

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;

use crate::process::{ErrorOutputType, Failed};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorRecord<'a> {
    attempts_made: u32,
    arrival_timestamp: i64,
    error_code: &'a str,
    error_message: &'a str,
    attempt_ending_timestamp: i64,
    raw_data: String,
    #[serde(rename = "lambdaArn", skip_serializing_if = "Option::is_none")]
    lambda_arn: Option<&'a str>,
    /// Destination-specific fields (`esDocumentId`, `esIndexName`, ...).
    #[serde(flatten)]
    detail: std::collections::BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConversionErrorRecord<'a> {
    attempts_made: u32,
    arrival_timestamp: i64,
    last_error_code: &'a str,
    last_error_message: &'a str,
    attempt_ending_timestamp: i64,
    raw_data: String,
}

/// Renders one failed record as Firehose's error JSON (without a trailing newline).
pub fn render(failed: &Failed, attempt_ending_ms: i64) -> Bytes {
    if failed.kind == ErrorOutputType::FormatConversionFailed {
        let record = ConversionErrorRecord {
            attempts_made: failed.attempts,
            arrival_timestamp: failed.record.arrival_ms,
            last_error_code: &failed.code,
            last_error_message: &failed.message,
            attempt_ending_timestamp: attempt_ending_ms,
            raw_data: base64::engine::general_purpose::STANDARD.encode(&failed.record.data),
        };
        return Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
    }
    let record = ErrorRecord {
        attempts_made: failed.attempts,
        arrival_timestamp: failed.record.arrival_ms,
        error_code: &failed.code,
        error_message: &failed.message,
        attempt_ending_timestamp: attempt_ending_ms,
        raw_data: base64::engine::general_purpose::STANDARD.encode(&failed.record.data),
        lambda_arn: failed.lambda_arn.as_deref(),
        detail: failed.detail.iter().map(|(k, v)| (*k, v.as_str())).collect(),
    };
    Bytes::from(serde_json::to_vec(&record).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    #[test]
    fn matches_firehose_field_names() {
        let f = Failed::new(
            Record { seq: 1, arrival_ms: 1000, data: Bytes::from_static(b"raw") },
            ErrorOutputType::ProcessingFailed,
            "X.Code",
            "why",
        );
        let v: serde_json::Value = serde_json::from_slice(&render(&f, 2000)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"attemptsMade": 1, "arrivalTimestamp": 1000, "errorCode": "X.Code", "errorMessage": "why",
                               "attemptEndingTimestamp": 2000, "rawData": "cmF3"})
        );
    }

    #[test]
    fn format_conversion_failures_use_their_own_field_names() {
        let f = Failed::new(
            Record { seq: 1, arrival_ms: 1000, data: Bytes::from_static(b"{") },
            ErrorOutputType::FormatConversionFailed,
            "DataFormatConversion.ParseError",
            "bad",
        );
        let v: serde_json::Value = serde_json::from_slice(&render(&f, 2000)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"attemptsMade": 1, "arrivalTimestamp": 1000, "lastErrorCode": "DataFormatConversion.ParseError",
                               "lastErrorMessage": "bad", "attemptEndingTimestamp": 2000, "rawData": "ew=="})
        );
    }
}
