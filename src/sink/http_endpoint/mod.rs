//! Firehose's HTTP endpoint delivery protocol 1.0 (spec §7), as a client.
//!
//! One request carries at most 10,000 records and 64 MiB of body before compression; a larger
//! batch is split, and each part has its own request id, derived from the batch's identity so that
//! it is the same on every retry and after a crash and replay (the receiver can deduplicate on it).
//! Only a 200 whose JSON body echoes the request id is success. Redirects are not followed, a
//! response body over 1 MiB is an error, and a 413 is permanent.

use std::io::Write;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};

use super::destination::{Destination, Outcome, SendError};
use super::SinkError;
use config::HttpEndpointSpec;

pub mod config;
pub mod firehose;
use crate::record::Record;

pub const MAX_RECORDS_PER_REQUEST: usize = 10_000;
pub const MAX_BODY_BYTES: usize = 64 << 20;
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// How much of a failed response's body goes into an error message.
const MAX_ERROR_TEXT: usize = 8_192;

pub struct HttpEndpoint {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    gzip: bool,
    pub name: String,
}

impl HttpEndpoint {
    /// `source_arn`: the delivery stream's ARN, sent as `X-Amz-Firehose-Source-Arn`.
    pub fn new(spec: &HttpEndpointSpec, source_arn: &str) -> Result<Self, SinkError> {
        let client = super::http_client::client(spec.request_timeout, spec.ca_file.as_deref())?;
        let url = reqwest::Url::parse(&spec.url).map_err(|e| SinkError::Setup(format!("bad url: {e}")))?;
        let mut headers = HeaderMap::new();
        let static_header = |v: &'static str| HeaderValue::from_static(v);
        headers.insert(CONTENT_TYPE, static_header("application/json"));
        headers.insert(HeaderName::from_static("x-amz-firehose-protocol-version"), static_header("1.0"));
        let arn = HeaderValue::from_str(source_arn).map_err(|e| SinkError::Setup(e.to_string()))?;
        headers.insert(HeaderName::from_static("x-amz-firehose-source-arn"), arn);
        if let Some(key) = &spec.access_key {
            let mut value = HeaderValue::from_str(key.expose())
                .map_err(|_| SinkError::Setup("the access key holds characters a header cannot carry".into()))?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-amz-firehose-access-key"), value);
        }
        if !spec.common_attributes.is_empty() {
            let json = serde_json::json!({ "commonAttributes": spec.common_attributes }).to_string();
            let value = HeaderValue::from_str(&json).map_err(|e| SinkError::Setup(e.to_string()))?;
            headers.insert(HeaderName::from_static("x-amz-firehose-common-attributes"), value);
        }
        if spec.gzip {
            headers.insert(CONTENT_ENCODING, static_header("gzip"));
        }
        let name = spec.name.clone().unwrap_or_else(|| url.host_str().unwrap_or("endpoint").to_string());
        Ok(Self { client, url, headers, gzip: spec.gzip, name })
    }

    /// Posts one request; `Ok` only for a 200 that echoes `request_id`.
    pub async fn post(&self, request_id: &str, records: &[Record]) -> Result<(), SendError> {
        let body = self.body(request_id, records)?;
        let mut headers = self.headers.clone();
        let id = HeaderValue::from_str(request_id)
            .map_err(|_| SendError::retry("HttpEndpoint.DestinationException", "invalid request id"))?;
        headers.insert(HeaderName::from_static("x-amz-firehose-request-id"), id);
        let response = self.client.post(self.url.clone()).headers(headers).body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                SendError::retry("HttpEndpoint.RequestTimeout", "the endpoint did not answer in time")
            } else if e.is_connect() {
                SendError::retry("HttpEndpoint.ConnectionFailed", format!("cannot connect: {}", root_cause(&e)))
            } else {
                SendError::retry("HttpEndpoint.ConnectionReset", format!("the connection failed: {}", root_cause(&e)))
            }
        })?;
        let status = response.status();
        let body = read_capped(response).await?;
        if status.as_u16() == 413 {
            return Err(SendError::permanent(
                "HttpEndpoint.DestinationException",
                format!("the endpoint answered 413 Payload Too Large: {}", error_text(&body)),
            ));
        }
        if status.as_u16() != 200 {
            return Err(SendError::retry(
                "HttpEndpoint.DestinationException",
                format!("the endpoint answered {status}: {}", error_text(&body)),
            ));
        }
        let echoed = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("requestId").and_then(|r| r.as_str()).map(str::to_string));
        match echoed {
            Some(id) if id == request_id => Ok(()),
            Some(other) => Err(SendError::retry(
                "HttpEndpoint.InvalidResponseFromDestination",
                format!(
                    "the response's requestId `{}` is not the request's",
                    other.chars().take(64).collect::<String>()
                ),
            )),
            None => Err(SendError::retry(
                "HttpEndpoint.InvalidResponseFromDestination",
                "the response is not JSON with the request's requestId (counted as a 500)",
            )),
        }
    }

    fn body(&self, request_id: &str, records: &[Record]) -> Result<Vec<u8>, SendError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let size: usize = records.iter().map(|r| r.data.len().div_ceil(3) * 4 + 12).sum::<usize>() + 96;
        let mut json = Vec::with_capacity(size);
        let now = crate::clock::now_ms();
        json.extend_from_slice(
            format!("{{\"requestId\":\"{request_id}\",\"timestamp\":{now},\"records\":[").as_bytes(),
        );
        for (i, r) in records.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(b"{\"data\":\"");
            let start = json.len();
            json.resize(start + r.data.len().div_ceil(3) * 4, 0);
            let written = b64.encode_slice(&r.data, &mut json[start..]).unwrap_or(0);
            json.truncate(start + written);
            json.extend_from_slice(b"\"}");
        }
        json.extend_from_slice(b"]}");
        if !self.gzip {
            return Ok(json);
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 4), flate2::Compression::default());
        gz.write_all(&json)
            .and_then(|_| gz.finish())
            .map_err(|e| SendError::retry("HttpEndpoint.DestinationException", format!("gzip failed: {e}")))
    }
}

#[async_trait::async_trait]
impl Destination for HttpEndpoint {
    fn name(&self) -> &str {
        &self.name
    }

    fn error_output_type(&self) -> crate::process::ErrorOutputType {
        crate::process::ErrorOutputType::DeliveryFailed("http-endpoint-failed")
    }

    fn requests(&self, records: &[Record]) -> Vec<std::ops::Range<usize>> {
        split(records)
    }

    /// The protocol has no per-record answer: a request succeeds or fails whole.
    async fn send(&self, request_id: &str, records: &[Record], indexes: &[usize]) -> Outcome {
        let subset: Vec<Record> = indexes.iter().filter_map(|&i| records.get(i).cloned()).collect();
        match self.post(request_id, &subset).await {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// Reads a response body, refusing more than 1 MiB.
async fn read_capped(response: reqwest::Response) -> Result<Vec<u8>, SendError> {
    super::http_client::read_capped(response, MAX_RESPONSE_BYTES).await.map_err(|e| match e {
        super::http_client::ReadError::TooLarge => SendError::retry(
            "HttpEndpoint.ResponseTooLarge",
            format!("the response body is over {MAX_RESPONSE_BYTES} bytes"),
        ),
        super::http_client::ReadError::Broken(e) if e.is_timeout() => {
            SendError::retry("HttpEndpoint.RequestTimeout", "the response did not finish in time")
        }
        super::http_client::ReadError::Broken(e) => {
            SendError::retry("HttpEndpoint.ConnectionReset", format!("the response broke off: {}", root_cause(&e)))
        }
    })
}

/// The endpoint's `errorMessage` if it sent one, else the start of its body.
fn error_text(body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errorMessage").and_then(|m| m.as_str()).map(str::to_string));
    let text = message.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    if text.is_empty() {
        return "(no body)".into();
    }
    text.chars().take(MAX_ERROR_TEXT).collect()
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Splits a batch into requests within the protocol's limits (10,000 records, 64 MiB of body).
pub fn split(records: &[Record]) -> Vec<std::ops::Range<usize>> {
    // A record's base64 text plus its `{"data":""},`; the envelope's own bytes are kept below the limit.
    super::http_client::split(records, MAX_RECORDS_PER_REQUEST, MAX_BODY_BYTES - 256, |r| {
        r.data.len().div_ceil(3) * 4 + 12
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn batches_split_at_ten_thousand_records_and_64_mib() {
        let small: Vec<Record> = (0..25_000).map(|seq| Record::new(seq, 0, Bytes::from_static(b"x"))).collect();
        assert_eq!(split(&small), vec![0..10_000, 10_000..20_000, 20_000..25_000]);
        let big: Vec<Record> = (0..70).map(|seq| Record::new(seq, 0, Bytes::from(vec![b'a'; 1_000_000]))).collect();
        let parts = split(&big);
        assert!(parts.len() == 2 && parts[0].end == 50, "{parts:?}");
        assert!(split(&[]).is_empty());
    }
}
