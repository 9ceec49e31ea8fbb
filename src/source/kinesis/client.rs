//! A small Kinesis Data Streams client: the three read calls sluice needs (ListShards,
//! GetShardIterator, GetRecords) over AWS JSON 1.1 (`aws::request::AwsJsonClient`).

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;

use crate::aws::request::{AwsCallError, AwsJsonClient, JSON_1_1};

#[derive(Debug, Error)]
pub enum KinesisError {
    /// The shard's read limit: back off and call again.
    #[error("ProvisionedThroughputExceededException: {0}")]
    Throttled(String),
    /// The iterator is older than 5 minutes: get a new one from the last position.
    #[error("ExpiredIteratorException: {0}")]
    ExpiredIterator(String),
    #[error("ResourceNotFoundException: {0}")]
    NotFound(String),
    /// Anything else the service answered (access denied, validation, 5xx), or no answer.
    #[error(transparent)]
    Other(AwsCallError),
}

impl From<AwsCallError> for KinesisError {
    fn from(e: AwsCallError) -> Self {
        match e {
            AwsCallError::Service { kind, message } => match kind.as_str() {
                "ProvisionedThroughputExceededException" | "LimitExceededException" => KinesisError::Throttled(message),
                "ExpiredIteratorException" => KinesisError::ExpiredIterator(message),
                "ResourceNotFoundException" => KinesisError::NotFound(message),
                _ => KinesisError::Other(AwsCallError::Service { kind, message }),
            },
            other => KinesisError::Other(other),
        }
    }
}

fn malformed(operation: &str, message: String) -> KinesisError {
    KinesisError::Other(AwsCallError::Service { kind: operation.to_string(), message })
}

pub struct KinesisClient {
    aws: AwsJsonClient,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
}

pub struct KinesisRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub arrival_ms: i64,
    pub data: Bytes,
}

pub struct RecordsPage {
    pub records: Vec<KinesisRecord>,
    /// `None`: the shard is closed and every record has been read.
    pub next_iterator: Option<String>,
    pub millis_behind_latest: u64,
}

/// Where a shard iterator starts.
pub enum IteratorStart<'a> {
    TrimHorizon,
    Latest,
    AtTimestamp(i64),
    AfterSequence(&'a str),
}

impl KinesisClient {
    pub fn new(endpoint: Option<&str>, region: &str) -> Result<Self, KinesisError> {
        Ok(Self { aws: AwsJsonClient::new(endpoint, region, "kinesis", (JSON_1_1, "Kinesis_20131202"))? })
    }

    async fn call(&self, operation: &str, body: Value) -> Result<Value, KinesisError> {
        Ok(self.aws.call(operation, &body).await?)
    }

    /// Every shard of the stream, open and closed (ListShards, all pages).
    pub async fn list_shards(&self, stream_name: &str) -> Result<Vec<Shard>, KinesisError> {
        let mut shards = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let body = match &next {
                Some(token) => json!({ "NextToken": token }),
                None => json!({ "StreamName": stream_name }),
            };
            let page = self.call("ListShards", body).await?;
            let listed: Vec<Shard> = serde_json::from_value(page.get("Shards").cloned().unwrap_or(Value::Null))
                .map_err(|e| malformed("ListShards", e.to_string()))?;
            shards.extend(listed);
            next = page.get("NextToken").and_then(Value::as_str).map(str::to_string);
            if next.is_none() {
                return Ok(shards);
            }
        }
    }

    pub async fn shard_iterator(
        &self,
        stream_name: &str,
        shard_id: &str,
        start: IteratorStart<'_>,
    ) -> Result<String, KinesisError> {
        let mut body = json!({ "StreamName": stream_name, "ShardId": shard_id });
        if let Some(o) = body.as_object_mut() {
            match start {
                IteratorStart::TrimHorizon => {
                    o.insert("ShardIteratorType".into(), "TRIM_HORIZON".into());
                }
                IteratorStart::Latest => {
                    o.insert("ShardIteratorType".into(), "LATEST".into());
                }
                IteratorStart::AtTimestamp(ms) => {
                    o.insert("ShardIteratorType".into(), "AT_TIMESTAMP".into());
                    o.insert("Timestamp".into(), (ms as f64 / 1000.0).into());
                }
                IteratorStart::AfterSequence(seq) => {
                    o.insert("ShardIteratorType".into(), "AFTER_SEQUENCE_NUMBER".into());
                    o.insert("StartingSequenceNumber".into(), seq.into());
                }
            }
        }
        let out = self.call("GetShardIterator", body).await?;
        out.get("ShardIterator")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| malformed("GetShardIterator", "the answer holds no ShardIterator".into()))
    }

    pub async fn get_records(&self, iterator: &str, limit: usize) -> Result<RecordsPage, KinesisError> {
        /// GetRecords' answer, parsed in place: `Data` stays borrowed until it is decoded.
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Page<'a> {
            #[serde(borrow, default)]
            records: Vec<Rec<'a>>,
            next_shard_iterator: Option<String>,
            #[serde(default)]
            millis_behind_latest: u64,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Rec<'a> {
            #[serde(borrow)]
            sequence_number: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            data: std::borrow::Cow<'a, str>,
            #[serde(borrow, default)]
            partition_key: std::borrow::Cow<'a, str>,
            #[serde(default)]
            approximate_arrival_timestamp: f64,
        }
        let body = self.aws.call_raw("GetRecords", &json!({ "ShardIterator": iterator, "Limit": limit })).await?;
        let bad = |message: String| malformed("GetRecords", message);
        let page: Page =
            serde_json::from_slice(&body).map_err(|e| bad(format!("the answer is not GetRecords output: {e}")))?;
        let mut records = Vec::with_capacity(page.records.len());
        for r in page.records {
            let data = base64::engine::general_purpose::STANDARD
                .decode(r.data.as_bytes())
                .map_err(|e| bad(format!("a record's Data is not base64: {e}")))?;
            records.push(KinesisRecord {
                sequence_number: r.sequence_number.into_owned(),
                partition_key: r.partition_key.into_owned(),
                arrival_ms: (r.approximate_arrival_timestamp * 1000.0) as i64,
                data: Bytes::from(data),
            });
        }
        Ok(RecordsPage {
            records,
            next_iterator: page.next_shard_iterator,
            millis_behind_latest: page.millis_behind_latest,
        })
    }
}
