//! A small Kinesis Data Streams client: the three read calls sluice needs (ListShards,
//! GetShardIterator, GetRecords) over JSON 1.1 on reqwest, signed with aws-sigv4.
//!
//! Why not aws-sdk-kinesis: it works, but adds about 200 crates and 90 s to a clean debug build and
//! its MSRV moves faster than ours (../shared/crates.md). The API surface here is three calls, and
//! the signer is the same crate that verifies sluice's own API (api/auth.rs).

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;

use crate::aws_request::{signed_json_headers, Keys};

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
    /// Anything else the service answered (access denied, validation, 5xx).
    #[error("{kind}: {message}")]
    Service { kind: String, message: String },
    #[error("cannot reach Kinesis at {endpoint}: {message}")]
    Transport { endpoint: String, message: String },
}

/// Static credentials for the signer, from the environment or the shared files (the chain the S3
/// destination uses); anonymous placeholders otherwise, which local emulators accept.
fn keys_from_chain() -> Keys {
    if let (Ok(id), Ok(secret)) = (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
        return Keys { id, secret, token: std::env::var("AWS_SESSION_TOKEN").ok() };
    }
    let profile = crate::sink::aws_profile::load();
    match (profile.access_key_id, profile.secret_access_key) {
        (Some(id), Some(secret)) => Keys { id, secret, token: profile.session_token },
        _ => Keys { id: "anonymous".into(), secret: "anonymous".into(), token: None },
    }
}

pub struct KinesisClient {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    keys: Keys,
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
        let endpoint = endpoint.map_or_else(|| format!("https://kinesis.{region}.amazonaws.com"), str::to_string);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| KinesisError::Transport { endpoint: endpoint.clone(), message: e.to_string() })?;
        Ok(Self { http, endpoint, region: region.to_string(), keys: keys_from_chain() })
    }

    async fn call(&self, operation: &str, body: Value) -> Result<Value, KinesisError> {
        let bytes = self.call_raw(operation, body).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// One signed call; the successful answer's body, unparsed.
    async fn call_raw(&self, operation: &str, body: Value) -> Result<Bytes, KinesisError> {
        let body = body.to_string().into_bytes();
        let target = format!("Kinesis_20131202.{operation}");
        let url = if self.endpoint.ends_with('/') { self.endpoint.clone() } else { format!("{}/", self.endpoint) };
        let transport = |message: String| KinesisError::Transport { endpoint: self.endpoint.clone(), message };
        let signed =
            signed_json_headers(&self.keys, &self.region, "kinesis", &url, &target, &body).map_err(transport)?;
        let mut request =
            self.http.post(&url).header("content-type", "application/x-amz-json-1.1").header("x-amz-target", &target);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.map_err(|e| transport(e.to_string()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| transport(e.to_string()))?;
        if status.is_success() {
            return Ok(bytes);
        }
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let kind = value
            .get("__type")
            .and_then(Value::as_str)
            .map_or_else(|| format!("HTTP {status}"), |t| t.rsplit('#').next().unwrap_or(t).to_string());
        let message =
            value.get("message").or_else(|| value.get("Message")).and_then(Value::as_str).unwrap_or("").to_string();
        Err(match kind.as_str() {
            "ProvisionedThroughputExceededException" | "LimitExceededException" => KinesisError::Throttled(message),
            "ExpiredIteratorException" => KinesisError::ExpiredIterator(message),
            "ResourceNotFoundException" => KinesisError::NotFound(message),
            _ => KinesisError::Service { kind, message },
        })
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
                .map_err(|e| KinesisError::Service { kind: "ListShards".into(), message: e.to_string() })?;
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
        out.get("ShardIterator").and_then(Value::as_str).map(str::to_string).ok_or_else(|| KinesisError::Service {
            kind: "GetShardIterator".into(),
            message: "the answer holds no ShardIterator".into(),
        })
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
            #[serde(default)]
            approximate_arrival_timestamp: f64,
        }
        let body = self.call_raw("GetRecords", json!({ "ShardIterator": iterator, "Limit": limit })).await?;
        let bad = |message: String| KinesisError::Service { kind: "GetRecords".into(), message };
        let page: Page =
            serde_json::from_slice(&body).map_err(|e| bad(format!("the answer is not GetRecords output: {e}")))?;
        let mut records = Vec::with_capacity(page.records.len());
        for r in page.records {
            let data = base64::engine::general_purpose::STANDARD
                .decode(r.data.as_bytes())
                .map_err(|e| bad(format!("a record's Data is not base64: {e}")))?;
            records.push(KinesisRecord {
                sequence_number: r.sequence_number.into_owned(),
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
