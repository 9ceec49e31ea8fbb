//! sluice's own outgoing AWS JSON calls (the Kinesis source, its DynamoDB lease table, `sluice
//! bench ingest`), signed with AWS's signer, aws-sigv4, as every SDK signs them. (Incoming requests
//! are verified in api/auth.rs.)
//!
//! Why not the AWS SDK crates: they work, but each adds about 200 crates and 90 s to a clean debug
//! build and their MSRV moves faster than ours (../shared/crates.md). sluice needs a handful of
//! calls of two JSON protocols, and the signer is the same crate that verifies sluice's own API.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use bytes::Bytes;
use serde_json::Value;
use thiserror::Error;

/// Static credentials to sign with.
#[derive(Clone)]
pub struct Keys {
    pub id: String,
    pub secret: String,
    pub token: Option<String>,
}

impl Keys {
    /// From the environment or the shared files (the chain the S3 destination uses); anonymous
    /// placeholders otherwise, which local emulators accept.
    pub fn from_chain() -> Keys {
        if let (Ok(id), Ok(secret)) = (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
            return Keys { id, secret, token: std::env::var("AWS_SESSION_TOKEN").ok() };
        }
        let profile = crate::aws::profile::load();
        match (profile.access_key_id, profile.secret_access_key) {
            (Some(id), Some(secret)) => Keys { id, secret, token: profile.session_token },
            _ => Keys { id: "anonymous".into(), secret: "anonymous".into(), token: None },
        }
    }
}

/// AWS JSON 1.1 (Kinesis, Firehose); DynamoDB speaks 1.0.
pub const JSON_1_1: &str = "application/x-amz-json-1.1";
pub const JSON_1_0: &str = "application/x-amz-json-1.0";

/// The headers to add to a `POST url` with this `X-Amz-Target` and body: `Authorization`,
/// `X-Amz-Date` (and the security token, with one). Signed now, over `host`, `content-type`,
/// `x-amz-target` and the body's hash.
pub fn signed_json_headers(
    keys: &Keys,
    region: &str,
    service: &str,
    url: &str,
    (content_type, target): (&str, &str),
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    sign_now(keys, region, service, "POST", url, &[("content-type", content_type), ("x-amz-target", target)], body)
}

/// The headers for a signed `GET url` with no body (`sluice tap`).
pub fn signed_get_headers(
    keys: &Keys,
    region: &str,
    service: &str,
    url: &str,
) -> Result<Vec<(String, String)>, String> {
    sign_now(keys, region, service, "GET", url, &[], b"")
}

fn sign_now(
    keys: &Keys,
    region: &str,
    service: &str,
    method: &str,
    url: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    let host = reqwest::Url::parse(url).map_err(|e| e.to_string())?.authority().to_string();
    let mut headers = vec![("host", host.as_str())];
    headers.extend_from_slice(extra);
    let identity = Credentials::new(&keys.id, &keys.secret, keys.token.clone(), None, "sluice").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(method, url, headers.iter().copied(), SignableBody::Bytes(body))
        .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params).map_err(|e| e.to_string())?.into_parts();
    Ok(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

#[derive(Debug, Error)]
pub enum AwsCallError {
    /// What the service answered: the exception's short name (`__type` without its namespace) and
    /// its message.
    #[error("{kind}: {message}")]
    Service { kind: String, message: String },
    #[error("cannot reach {service} at {endpoint}: {message}")]
    Transport { service: &'static str, endpoint: String, message: String },
}

/// One AWS JSON service at one endpoint: `call("ListShards", body)` posts a signed request with
/// `X-Amz-Target: <prefix>.ListShards` and returns the answer's body.
pub struct AwsJsonClient {
    http: reqwest::Client,
    /// With a trailing `/`: the URL that is signed and called.
    url: String,
    region: String,
    service: &'static str,
    target_prefix: &'static str,
    content_type: &'static str,
    keys: Keys,
}

impl AwsJsonClient {
    /// `endpoint` defaults to `https://<service>.<region>.amazonaws.com`.
    pub fn new(
        endpoint: Option<&str>,
        region: &str,
        service: &'static str,
        (content_type, target_prefix): (&'static str, &'static str),
    ) -> Result<Self, AwsCallError> {
        let endpoint = endpoint.map_or_else(|| format!("https://{service}.{region}.amazonaws.com"), str::to_string);
        let url = if endpoint.ends_with('/') { endpoint } else { format!("{endpoint}/") };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| AwsCallError::Transport { service, endpoint: url.clone(), message: e.to_string() })?;
        Ok(Self {
            http,
            url,
            region: region.to_string(),
            service,
            target_prefix,
            content_type,
            keys: Keys::from_chain(),
        })
    }

    /// One signed call; the successful answer's body, unparsed.
    pub async fn call_raw(&self, operation: &str, body: &Value) -> Result<Bytes, AwsCallError> {
        let body = body.to_string().into_bytes();
        let target = format!("{}.{operation}", self.target_prefix);
        let transport =
            |message: String| AwsCallError::Transport { service: self.service, endpoint: self.url.clone(), message };
        let signed =
            signed_json_headers(&self.keys, &self.region, self.service, &self.url, (self.content_type, &target), &body)
                .map_err(transport)?;
        let mut request =
            self.http.post(&self.url).header("content-type", self.content_type).header("x-amz-target", &target);
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
        Err(AwsCallError::Service { kind, message })
    }

    /// One signed call, its answer parsed as JSON (`null` for an empty body).
    pub async fn call(&self, operation: &str, body: &Value) -> Result<Value, AwsCallError> {
        let bytes = self.call_raw(operation, body).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}
