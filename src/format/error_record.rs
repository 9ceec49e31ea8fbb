//! Firehose's error-output record (spec §6): one JSON document per failed record, newline-delimited
//! in objects under the error prefix.
//!
//! sluice writes the `processing-failed` shape for every error type it produces today, since Firehose
//! documents no separate layout for `decompression-failed` (it only says the original bytes are kept,
//! which `rawData` does):
//! `{"attemptsMade","arrivalTimestamp","errorCode","errorMessage","attemptEndingTimestamp","rawData"}`
//! plus `lambdaArn` when a transform plugin failed (the plugin's path stands in for the ARN).

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;

use crate::process::Failed;

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
}

/// Renders one failed record as Firehose's error JSON (without a trailing newline).
pub fn render(failed: &Failed, attempt_ending_ms: i64) -> Bytes {
    let record = ErrorRecord {
        attempts_made: failed.attempts,
        arrival_timestamp: failed.record.arrival_ms,
        error_code: &failed.code,
        error_message: &failed.message,
        attempt_ending_timestamp: attempt_ending_ms,
        raw_data: base64::engine::general_purpose::STANDARD.encode(&failed.record.data),
        lambda_arn: failed.lambda_arn.as_deref(),
    };
    Bytes::from(serde_json::to_vec(&record).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ErrorOutputType;
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
}
