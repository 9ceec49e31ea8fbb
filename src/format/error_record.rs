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
//! instead of `errorCode`/`errorMessage`, and `sequenceNumber`/`subSequenceNumber` for records read
//! from a Kinesis stream. Its `dataCatalogTable` (the Glue table) is left out: sluice's schema
//! comes from the config, not from Glue.
//!
//! Firehose documents the stream position only on that shape (and `subsequenceNumber`, so spelt,
//! on `http-endpoint-failed`). sluice writes it on every error record of a Kinesis-sourced
//! record, in the spelling of the documented shape closest to it, so any failed record can be
//! found again in its shard. A record read from Kafka (Firehose documents no error-record fields
//! for MSK sources) carries `kafkaTopic`, `kafkaPartition` and `kafkaOffset`, sluice's names, so
//! it can be found again in its partition. Records from other sources have no such fields.

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
    #[serde(flatten)]
    position: Option<Position<'a>>,
    #[serde(flatten)]
    kafka: Option<KafkaPosition<'a>>,
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
    #[serde(flatten)]
    position: Option<Position<'a>>,
    #[serde(flatten)]
    kafka: Option<KafkaPosition<'a>>,
}

/// Where a Kafka-sourced record sits in its topic.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KafkaPosition<'a> {
    kafka_topic: &'a str,
    kafka_partition: i32,
    kafka_offset: i64,
}

fn kafka_position(failed: &Failed) -> Option<KafkaPosition<'_>> {
    let k = failed.record.kafka()?;
    Some(KafkaPosition { kafka_topic: &k.topic, kafka_partition: k.partition, kafka_offset: k.offset })
}

/// Where a Kinesis-sourced record sits in its shard.
#[derive(Serialize)]
struct Position<'a> {
    #[serde(rename = "sequenceNumber")]
    sequence_number: &'a str,
    #[serde(rename = "subSequenceNumber", skip_serializing_if = "Option::is_none")]
    sub_sequence_number: Option<u64>,
    /// `http-endpoint-failed` spells it this way (spec §6).
    #[serde(rename = "subsequenceNumber", skip_serializing_if = "Option::is_none")]
    subsequence_number: Option<u64>,
}

/// The one error output type whose records spell the position differently (spec §6).
const HTTP_ENDPOINT_FAILED: ErrorOutputType = ErrorOutputType::DeliveryFailed("http-endpoint-failed");

fn position(failed: &Failed) -> Option<Position<'_>> {
    let kinesis = failed.record.kinesis()?;
    let sub = Some(kinesis.subsequence_number);
    let http = failed.kind == HTTP_ENDPOINT_FAILED;
    Some(Position {
        sequence_number: &kinesis.sequence_number,
        sub_sequence_number: sub.filter(|_| !http),
        subsequence_number: sub.filter(|_| http),
    })
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
            position: position(failed),
            kafka: kafka_position(failed),
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
        position: position(failed),
        kafka: kafka_position(failed),
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
            Record::new(1, 1000, Bytes::from_static(b"raw")),
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
            Record::new(1, 1000, Bytes::from_static(b"{")),
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

    #[test]
    fn kinesis_records_carry_their_stream_position() {
        let kinesis = crate::record::KinesisMetadata {
            shard_id: std::sync::Arc::from("shardId-000000000000"),
            sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            subsequence_number: 3,
            partition_key: "k".into(),
        };
        let record = Record {
            origin: Some(std::sync::Arc::new(crate::record::Origin::Kinesis(kinesis))),
            ..Record::new(1, 1000, Bytes::new())
        };
        let fields = |kind| {
            let v: serde_json::Value =
                serde_json::from_slice(&render(&Failed::new(record.clone(), kind, "C", "m"), 2000)).unwrap();
            (v["sequenceNumber"].clone(), v["subSequenceNumber"].clone(), v["subsequenceNumber"].clone())
        };
        let seq = serde_json::json!("49590338271490256608559692538361571095921575989136588898");
        let none = serde_json::Value::Null;
        let three = serde_json::json!(3);
        assert_eq!(fields(ErrorOutputType::FormatConversionFailed), (seq.clone(), three.clone(), none.clone()));
        assert_eq!(fields(ErrorOutputType::ProcessingFailed), (seq.clone(), three.clone(), none.clone()));
        assert_eq!(fields(HTTP_ENDPOINT_FAILED), (seq, none, three));
    }
}
