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

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamNameInput {
    pub delivery_stream_name: String,
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
    pub record_id: String,
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
    pub record_id: Option<String>,
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
