//! Splunk HTTP Event Collector delivery with indexer acknowledgement (spec §8).
//!
//! A request posts the records to `/services/collector/event` (each record becomes `{"event": ...}`:
//! the JSON itself when the record is JSON, else its text) or `/services/collector/raw` (records
//! concatenated, as Firehose sends them), with `Authorization: Splunk <token>` and a channel id. HEC
//! answers with an ack id; the records count as delivered only once `/services/collector/ack` says
//! that id is indexed. If that does not happen within `hec_acknowledgment_timeout_seconds`, the
//! request is sent again (Firehose's `Splunk.AckTimeout`). HEC's error codes map to Firehose's.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::destination::{Destination, Outcome, SendError};
use super::SinkError;
use config::SplunkSpec;

pub mod config;
pub mod firehose;
use crate::process::ErrorOutputType;
use crate::record::Record;

/// Records per request, and bytes: HEC's default `max_content_length` is 800 MB, but large requests
/// make an ack timeout expensive; Firehose's Splunk buffer is at most 5 MB anyway.
const MAX_REQUEST_BYTES: usize = 5 << 20;
const MAX_RESPONSE_BYTES: usize = 1 << 20;
const ACK_POLL_EVERY: Duration = Duration::from_millis(200);

pub struct Splunk {
    client: reqwest::Client,
    base: reqwest::Url,
    auth: HeaderValue,
    channel: String,
    spec: SplunkSpec,
    name: String,
    /// DeliveryToSplunk.DataAckLatency: from a request's answer to its indexer acknowledgement.
    ack_latency: metrics::Histogram,
}

impl Splunk {
    pub fn new(spec: &SplunkSpec, stream: &str) -> Result<Self, SinkError> {
        let client = super::http_client::client(Duration::from_secs(60), spec.ca_file.as_deref())?;
        let base = reqwest::Url::parse(&spec.endpoint).map_err(|e| SinkError::Setup(format!("bad endpoint: {e}")))?;
        let mut auth = HeaderValue::from_str(&format!("Splunk {}", spec.token.expose()))
            .map_err(|_| SinkError::Setup("the HEC token holds characters a header cannot carry".into()))?;
        auth.set_sensitive(true);
        let name = base.host_str().unwrap_or("splunk").to_string();
        metrics::describe_histogram!(
            "sluice_delivery_to_splunk_data_ack_latency_seconds",
            metrics::Unit::Seconds,
            "DeliveryToSplunk.DataAckLatency: from HEC's answer to its indexer acknowledgement"
        );
        let ack_latency = metrics::histogram!(
            "sluice_delivery_to_splunk_data_ack_latency_seconds",
            "delivery_stream_name" => stream.to_string()
        );
        Ok(Self {
            client,
            base,
            auth,
            channel: uuid::Uuid::new_v4().to_string(),
            spec: spec.clone(),
            name,
            ack_latency,
        })
    }

    fn body(&self, records: &[Record], indexes: &[usize]) -> Vec<u8> {
        let mut body = Vec::new();
        for &i in indexes {
            let Some(r) = records.get(i) else { continue };
            if self.spec.raw {
                body.extend_from_slice(&r.data);
                continue;
            }
            let data = r.data.strip_suffix(b"\n").unwrap_or(&r.data);
            let event = match serde_json::from_slice::<serde_json::Value>(data) {
                Ok(json) => json,
                Err(_) => serde_json::Value::String(String::from_utf8_lossy(data).into_owned()),
            };
            body.extend_from_slice(serde_json::json!({ "event": event }).to_string().as_bytes());
            body.push(b'\n');
        }
        body
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<(u16, serde_json::Value), SendError> {
        let url = self.base.join(path).map_err(|e| SendError::retry("Splunk.InvalidEndpoint", e.to_string()))?;
        let response = self
            .client
            .post(url)
            .header(AUTHORIZATION, self.auth.clone())
            .header("X-Splunk-Request-Channel", self.channel.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    SendError::retry("Splunk.ConnectionTimeout", "HEC did not answer in time")
                } else {
                    SendError::retry("Splunk.ConnectionClosed", format!("the request failed: {e}"))
                }
            })?;
        let status = response.status().as_u16();
        let bytes = super::http_client::read_capped(response, MAX_RESPONSE_BYTES).await.map_err(|e| match e {
            super::http_client::ReadError::TooLarge => {
                SendError::retry("Splunk.ServerError", "HEC's answer is too large")
            }
            super::http_client::ReadError::Broken(e) => {
                SendError::retry("Splunk.ConnectionClosed", format!("the answer broke off: {e}"))
            }
        })?;
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok((status, json))
    }

    /// Polls until HEC says `ack` is indexed, or the acknowledgement timeout passes.
    async fn await_ack(&self, ack: u64) -> Result<(), SendError> {
        let started = Instant::now();
        let deadline = started + self.spec.ack_timeout;
        loop {
            let body = serde_json::json!({ "acks": [ack] }).to_string().into_bytes();
            let (status, json) = self.post("services/collector/ack", body).await?;
            if status == 200 && json["acks"][ack.to_string()].as_bool() == Some(true) {
                self.ack_latency.record(started.elapsed());
                return Ok(());
            }
            if status != 200 {
                return Err(hec_error(status, &json));
            }
            if Instant::now() >= deadline {
                return Err(SendError::retry(
                    "Splunk.AckTimeout",
                    format!("HEC did not acknowledge ack id {ack} within {} s", self.spec.ack_timeout.as_secs()),
                ));
            }
            tokio::time::sleep(ACK_POLL_EVERY).await;
        }
    }
}

/// Firehose's error code for a HEC answer (HEC's `code` field, or the HTTP status).
fn hec_error(status: u16, json: &serde_json::Value) -> SendError {
    let text = json["text"].as_str().unwrap_or("").to_string();
    let code = match json["code"].as_u64() {
        Some(1 | 2) => "Splunk.DisabledToken",
        Some(3 | 4) => "Splunk.InvalidToken",
        Some(6) => "Splunk.InvalidDataFormat",
        Some(7) => "Splunk.InvalidIndex",
        Some(9) => "Splunk.ServerError",
        Some(14) => "Splunk.DisabledAck",
        _ if status == 401 || status == 403 => "Splunk.InvalidToken",
        _ => "Splunk.ServerError",
    };
    SendError::retry(code, format!("HEC answered {status}: {}", if text.is_empty() { "(no text)" } else { &text }))
}

#[async_trait]
impl Destination for Splunk {
    fn name(&self) -> &str {
        &self.name
    }

    fn error_output_type(&self) -> ErrorOutputType {
        ErrorOutputType::DeliveryFailed("splunk-failed")
    }

    fn requests(&self, records: &[Record]) -> Vec<std::ops::Range<usize>> {
        // A record plus its `{"event":}` wrapping.
        super::http_client::split(records, usize::MAX, MAX_REQUEST_BYTES, |r| r.data.len() + 16)
    }

    async fn send(&self, _request_id: &str, records: &[Record], indexes: &[usize]) -> Outcome {
        let path = if self.spec.raw { "services/collector/raw" } else { "services/collector/event" };
        let (status, json) = match self.post(path, self.body(records, indexes)).await {
            Ok(answer) => answer,
            Err(e) => return Outcome::Failed(e),
        };
        if status != 200 || json["code"].as_u64().is_some_and(|c| c != 0) {
            return Outcome::Failed(hec_error(status, &json));
        }
        let Some(ack) = json["ackId"].as_u64() else {
            return Outcome::Failed(SendError::retry(
                "Splunk.DisabledAck",
                "HEC answered without an ackId: enable indexer acknowledgement on the token",
            ));
        };
        match self.await_ack(ack).await {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hec_codes_map_to_firehose_codes() {
        let code = |status, json: serde_json::Value| hec_error(status, &json).code;
        assert_eq!(code(403, serde_json::json!({"text": "Invalid token", "code": 4})), "Splunk.InvalidToken");
        assert_eq!(code(403, serde_json::json!({"text": "Token disabled", "code": 1})), "Splunk.DisabledToken");
        assert_eq!(
            code(400, serde_json::json!({"text": "Invalid data format", "code": 6})),
            "Splunk.InvalidDataFormat"
        );
        assert_eq!(code(400, serde_json::json!({"text": "Incorrect index", "code": 7})), "Splunk.InvalidIndex");
        assert_eq!(code(503, serde_json::json!({"text": "Server is busy", "code": 9})), "Splunk.ServerError");
        assert_eq!(code(400, serde_json::json!({"text": "ACK is disabled", "code": 14})), "Splunk.DisabledAck");
        assert_eq!(code(401, serde_json::Value::Null), "Splunk.InvalidToken");
        assert_eq!(code(502, serde_json::Value::Null), "Splunk.ServerError");
    }
}
