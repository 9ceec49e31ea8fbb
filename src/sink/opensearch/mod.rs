//! OpenSearch / Elasticsearch delivery through the `_bulk` API (spec §8).
//!
//! One `_bulk` request per part of a buffer (split at `bulk_max_bytes`), every document with an
//! explicit `_index` (rotation by the record's arrival time) and, with `FIREHOSE_DEFAULT`, an `_id`
//! derived from the batch's identity and the record's position in it: the same on every retry and
//! after a crash and replay, so a re-send overwrites instead of duplicating.
//!
//! A 200 whose items report errors is not success: items that failed with 429 or 5xx are sent again
//! (only they), items rejected for good (mapping and parse errors, other 4xx) become
//! `AmazonOpenSearchService-failed` error records with `esDocumentId`, `esIndexName`, `errorCode`
//! (the item's HTTP status) and `errorMessage` (its error type and reason). Other shippers drop them.

mod body;
pub mod config;
pub mod firehose;
pub mod index;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::destination::{Destination, Outcome, SendError};
use super::SinkError;
use crate::process::ErrorOutputType;
use crate::record::Record;
use config::{SearchAuth, SearchSpec};

const MAX_RESPONSE_BYTES: usize = 64 << 20;

pub struct OpenSearch {
    client: reqwest::Client,
    bulk_url: reqwest::Url,
    auth: Option<HeaderValue>,
    spec: SearchSpec,
    name: String,
}

impl OpenSearch {
    pub fn new(spec: &SearchSpec) -> Result<Self, SinkError> {
        let client = super::http_client::client(spec.request_timeout, spec.ca_file.as_deref())?;
        let base = reqwest::Url::parse(&spec.endpoint).map_err(|e| SinkError::Setup(format!("bad endpoint: {e}")))?;
        let bulk_url = base.join("_bulk").map_err(|e| SinkError::Setup(format!("bad endpoint: {e}")))?;
        let auth = match &spec.auth {
            None => None,
            Some(SearchAuth::Basic { username, password }) => {
                use base64::Engine;
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
                Some(format!("Basic {token}"))
            }
            Some(SearchAuth::ApiKey(key)) => Some(format!("ApiKey {}", key.expose())),
            Some(SearchAuth::AwsSigv4 { .. }) => None, // signed per request
        }
        .map(|v| {
            HeaderValue::from_str(&v)
                .map(|mut h| {
                    h.set_sensitive(true);
                    h
                })
                .map_err(|_| SinkError::Setup("the credentials hold characters a header cannot carry".into()))
        })
        .transpose()?;
        let name = base.host_str().unwrap_or("opensearch").to_string();
        Ok(Self { client, bulk_url, auth, spec: spec.clone(), name })
    }

    fn document_id(&self, request_id: &str, index: usize) -> Option<String> {
        self.spec.document_ids.then(|| format!("{request_id}-{index}"))
    }

    /// The `_bulk` body: an action line and a document line per record. A record that is not a
    /// single line of JSON cannot be framed; it is rejected before sending.
    fn body(
        &self,
        request_id: &str,
        records: &[Record],
        indexes: &[usize],
    ) -> (body::SegmentedBody, Vec<usize>, Vec<(usize, SendError)>) {
        let mut body = body::Segments::default();
        let (mut sent, mut rejected) = (Vec::with_capacity(indexes.len()), Vec::new());
        // Records of one batch mostly share an arrival time, so the rotated index name (a date
        // format) is computed when it changes, not per document.
        let mut index_of: Option<(i64, String)> = None;
        for (k, &i) in indexes.iter().enumerate() {
            let Some(record) = records.get(i) else { continue };
            let index = match &index_of {
                Some((at, name)) if *at == record.arrival_ms => name,
                _ => {
                    let name = self.spec.rotation.index(&self.spec.index, record.arrival_ms);
                    &index_of.insert((record.arrival_ms, name)).1
                }
            };
            let id = self.document_id(request_id, i);
            let doc = single_line_json(&record.data);
            let Some(doc) = doc else {
                let mut e = SendError::permanent("400", "the record is not a single-line JSON document");
                e.detail = detail(id.as_deref(), index);
                rejected.push((k, e));
                continue;
            };
            // The action line, written directly (keys in the order a JSON object map sorts them).
            body.extend(b"{\"index\":{");
            if let Some(id) = &id {
                body.extend(b"\"_id\":");
                json_string(&mut body, id);
                body.extend(b",");
            }
            body.extend(b"\"_index\":");
            json_string(&mut body, index);
            if let Some(t) = &self.spec.type_name {
                body.extend(b",\"_type\":");
                json_string(&mut body, t);
            }
            body.extend(b"}}\n");
            body.extend(&doc);
            body.extend(b"\n");
            sent.push(k);
        }
        (body.finish(), sent, rejected)
    }
}

/// A `_bulk` answer, read as typed values: only failed items carry an error worth decoding, and
/// the strings borrow from the body.
#[derive(serde::Deserialize)]
struct BulkAnswer<'a> {
    #[serde(default, borrow)]
    items: Items<'a>,
}

/// The answer's items, counted as they are read; only the failed ones are kept (with their
/// position). A 5 MiB request has tens of thousands of items: holding them all would cost the
/// daemon a megabyte-sized allocation per request for nothing but a count.
#[derive(Default)]
struct Items<'a> {
    count: usize,
    failed: Vec<(usize, ItemResult<'a>)>,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Items<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<Items<'a>>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Items<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of bulk items")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Items<'a>, S::Error> {
                let mut items = Items::default();
                while let Some(item) = seq.next_element::<BulkItem<'de>>()? {
                    let result = item.index.or(item.create).unwrap_or_default();
                    if !(200..300).contains(&result.status()) {
                        items.failed.push((items.count, result));
                    }
                    items.count += 1;
                }
                Ok(items)
            }
        }
        deserializer.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

/// One item: the action's result under its name (`index` is what sluice sends; `create` is
/// accepted too). An item with neither counts as failed with 500.
#[derive(serde::Deserialize)]
struct BulkItem<'a> {
    #[serde(borrow)]
    index: Option<ItemResult<'a>>,
    #[serde(borrow)]
    create: Option<ItemResult<'a>>,
}

#[derive(serde::Deserialize, Default)]
struct ItemResult<'a> {
    status: Option<u64>,
    error: Option<serde_json::Value>,
    #[serde(rename = "_index", borrow)]
    index: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "_id", borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
}

impl ItemResult<'_> {
    /// The item's HTTP status; an item without one failed (500).
    fn status(&self) -> u64 {
        self.status.unwrap_or(500)
    }
}

/// `text` as a JSON string (quoted and escaped).
fn json_string(out: &mut body::Segments, text: &str) {
    // Writing a str into memory cannot fail; the fallback keeps the body well-formed regardless.
    if serde_json::to_writer(&mut *out, text).is_err() {
        out.extend(b"\"\"");
    }
}

fn detail(id: Option<&str>, index: &str) -> Vec<(&'static str, String)> {
    let mut d = vec![("esIndexName", index.to_string())];
    if let Some(id) = id {
        d.push(("esDocumentId", id.to_string()));
    }
    d
}

/// The record as one line of JSON: as is when it is one, compacted when it spans lines.
fn single_line_json(data: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let trimmed = data.strip_suffix(b"\n").unwrap_or(data);
    if !trimmed.contains(&b'\n') && !trimmed.is_empty() {
        return Some(std::borrow::Cow::Borrowed(trimmed));
    }
    let value: serde_json::Value = serde_json::from_slice(trimmed).ok()?;
    serde_json::to_vec(&value).ok().map(std::borrow::Cow::Owned)
}

#[async_trait]
impl Destination for OpenSearch {
    fn name(&self) -> &str {
        &self.name
    }

    fn error_output_type(&self) -> ErrorOutputType {
        ErrorOutputType::DeliveryFailed("AmazonOpenSearchService-failed")
    }

    fn requests(&self, records: &[Record]) -> Vec<std::ops::Range<usize>> {
        // A document plus its action line.
        super::http_client::split(records, usize::MAX, self.spec.bulk_max_bytes, |r| r.data.len() + 160)
    }

    fn record_detail(&self, request_id: &str, records: &[Record], index: usize) -> Vec<(&'static str, String)> {
        let Some(record) = records.get(index) else { return Vec::new() };
        let name = self.spec.rotation.index(&self.spec.index, record.arrival_ms);
        detail(self.document_id(request_id, index).as_deref(), &name)
    }

    async fn send(&self, request_id: &str, records: &[Record], indexes: &[usize]) -> Outcome {
        let (body, sent, mut rejected) = self.body(request_id, records, indexes);
        if sent.is_empty() {
            return Outcome::Partial { retry: Vec::new(), rejected, cause: SendError::retry("400", "nothing to send") };
        }
        let signature = match &self.spec.auth {
            Some(SearchAuth::AwsSigv4 { service, region }) => {
                match sign(&self.bulk_url, &body.sha256(), service, region) {
                    Ok(headers) => headers,
                    Err(e) => return Outcome::Partial { retry: sent, rejected, cause: e },
                }
            }
            _ => Vec::new(),
        };
        let mut request = self
            .client
            .post(self.bulk_url.clone())
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(reqwest::Body::wrap(body));
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        for (name, value) in signature {
            request = request.header(name, value);
        }
        let failed = |e: SendError| Outcome::Partial { retry: sent.clone(), rejected: Vec::new(), cause: e };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return failed(SendError::retry("OS.RequestTimeout", "no answer in time")),
            Err(e) => return failed(SendError::retry("OS.ConnectionFailed", format!("the request failed: {e}"))),
        };
        let status = response.status();
        let body = match read_capped(response).await {
            Ok(b) => b,
            Err(e) => return failed(e),
        };
        if status.as_u16() != 200 {
            let text: String = String::from_utf8_lossy(&body).chars().take(1024).collect();
            return failed(SendError::retry("OS.DestinationException", format!("_bulk answered {status}: {text}")));
        }
        let Ok(answer) = serde_json::from_slice::<BulkAnswer>(&body) else {
            return failed(SendError::retry("OS.InvalidResponse", "the _bulk answer is not JSON"));
        };
        if answer.items.count != sent.len() {
            return failed(SendError::retry(
                "OS.InvalidResponse",
                format!("the _bulk answer has {} items for {} documents", answer.items.count, sent.len()),
            ));
        }
        let mut retry = Vec::new();
        let mut cause = SendError::retry("429", "documents were throttled or failed on the server");
        for (position, result) in answer.items.failed {
            // Positions are below `count`, which is `sent.len()`.
            let Some(&k) = sent.get(position) else { continue };
            let code = result.status();
            let error = result.error.as_ref();
            let text = |key: &str| error.and_then(|e| e.get(key)).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let message = match error {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(_) => format!("{}: {}", text("type"), text("reason")),
                None => format!("the item failed with status {code}"),
            };
            if code == 429 || code >= 500 {
                cause = SendError::retry(status_code(code), message);
                retry.push(k);
            } else {
                let mut e = SendError::permanent(status_code(code), message);
                e.detail = detail(result.id.as_deref(), result.index.as_deref().unwrap_or(""));
                rejected.push((k, e));
            }
        }
        if retry.is_empty() && rejected.is_empty() {
            Outcome::Delivered
        } else {
            Outcome::Partial { retry, rejected, cause }
        }
    }
}

/// Firehose's errorCode for an OpenSearch item is its HTTP status, as text.
fn status_code(code: u64) -> &'static str {
    match code {
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        413 => "413",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        c if c < 500 => "4xx",
        _ => "5xx",
    }
}

async fn read_capped(response: reqwest::Response) -> Result<Vec<u8>, SendError> {
    super::http_client::read_capped(response, MAX_RESPONSE_BYTES).await.map_err(|e| match e {
        super::http_client::ReadError::TooLarge => {
            SendError::retry("OS.ResponseTooLarge", "the _bulk answer is too large")
        }
        super::http_client::ReadError::Broken(e) => {
            SendError::retry("OS.ConnectionReset", format!("the answer broke off: {e}"))
        }
    })
}

/// SigV4 headers for a `_bulk` POST (object_store's signer; credentials from the environment or the
/// shared files, read per request so rotated keys are picked up).
fn sign(
    url: &reqwest::Url,
    body_sha256: &[u8; 32],
    service: &str,
    region: &str,
) -> Result<Vec<(http::HeaderName, HeaderValue)>, SendError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let profile = crate::aws::profile::load();
    let (key_id, secret_key, token) = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => (id, secret, env("AWS_SESSION_TOKEN")),
        _ => match (profile.access_key_id, profile.secret_access_key) {
            (Some(id), Some(secret)) => (id, secret, profile.session_token),
            _ => {
                return Err(SendError::retry(
                    "OS.CredentialsMissing",
                    "no AWS credentials for SigV4: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a shared credentials profile",
                ))
            }
        },
    };
    // The signer would panic on a token a header cannot carry: refuse it here instead.
    if token.as_deref().is_some_and(|t| HeaderValue::from_str(t).is_err()) {
        return Err(SendError::retry(
            "OS.CredentialsInvalid",
            "AWS_SESSION_TOKEN holds characters a header cannot carry",
        ));
    }
    let credential = object_store::aws::AwsCredential { key_id, secret_key, token };
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return Err(SendError::retry("OS.InvalidEndpoint", "the endpoint has no host")),
    };
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(url.as_str())
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/x-ndjson")
        .body(object_store::client::HttpRequestBody::from(Vec::new()))
        .map_err(|e| SendError::retry("OS.InvalidEndpoint", e.to_string()))?;
    object_store::aws::AwsAuthorizer::new(&credential, service, region)
        .try_authorize(&mut request, Some(body_sha256))
        .map_err(|e| SendError::retry("OS.SigningFailed", e.to_string()))?;
    Ok(request
        .headers()
        .iter()
        .filter(|(name, _)| *name != http::header::CONTENT_TYPE)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(type_name: Option<&str>, document_ids: bool) -> OpenSearch {
        let spec = SearchSpec {
            endpoint: "http://127.0.0.1:9200".into(),
            index: "lo\"gs".into(),
            rotation: index::Rotation::OneDay,
            type_name: type_name.map(str::to_string),
            document_ids,
            auth: None,
            retry_duration: std::time::Duration::from_secs(1),
            request_timeout: std::time::Duration::from_secs(1),
            bulk_max_bytes: 1 << 20,
            ca_file: None,
            backup_all: false,
            elasticsearch: false,
        };
        match OpenSearch::new(&spec) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_bulk_answer_is_counted_and_only_failed_items_are_kept_with_their_positions() {
        let answer = br#"{"took":3,"errors":true,"items":[
            {"index":{"_index":"logs","_id":"a","status":201}},
            {"index":{"_index":"logs","_id":"b","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"create":{"_index":"logs","_id":"c","status":400,"error":"mapper_parsing_exception"}},
            {"delete":{"_index":"logs","_id":"d","status":200}},
            {"index":{"_index":"logs","_id":"e","status":200}}]}"#;
        let answer: BulkAnswer = serde_json::from_slice(answer).unwrap();
        assert_eq!(answer.items.count, 5);
        let failed: Vec<(usize, u64, Option<&str>)> =
            answer.items.failed.iter().map(|(k, r)| (*k, r.status(), r.id.as_deref())).collect();
        // An item under neither `index` nor `create` has no status for sluice: failed with 500.
        assert_eq!(failed, vec![(1, 429, Some("b")), (2, 400, Some("c")), (3, 500, None)]);
        let empty: BulkAnswer = serde_json::from_slice(br#"{"took":1,"errors":false}"#).unwrap();
        assert_eq!((empty.items.count, empty.items.failed.len()), (0, 0));
    }

    #[test]
    fn action_lines_are_the_json_a_serializer_writes() {
        let day = 1_765_000_000_000;
        let records: Vec<Record> = [(0, day), (1, day), (2, day + 86_400_000)]
            .into_iter()
            .map(|(i, at)| Record::new(i, at, bytes::Bytes::from(format!("{{\"n\":{i}}}"))))
            .collect();
        for (type_name, ids) in [(None, true), (Some("_doc"), true), (None, false)] {
            let os = search(type_name, ids);
            let (body, sent, rejected) = os.body("req", &records, &[0, 1, 2]);
            assert_eq!((sent, rejected.len()), (vec![0, 1, 2], 0));
            let text = String::from_utf8(body.to_vec()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (k, record) in records.iter().enumerate() {
                let mut action =
                    serde_json::json!({ "_index": os.spec.rotation.index(&os.spec.index, record.arrival_ms) });
                if ids {
                    action["_id"] = format!("req-{k}").into();
                }
                if let Some(t) = type_name {
                    action["_type"] = t.into();
                }
                assert_eq!(lines[2 * k], serde_json::json!({ "index": action }).to_string());
                assert_eq!(lines[2 * k + 1].as_bytes(), &record.data[..]);
            }
        }
    }
}
