//! Signing sluice's own outgoing AWS JSON 1.1 calls (the Kinesis source, `sluice bench ingest`) with
//! AWS's signer, aws-sigv4, as every SDK signs them. (Incoming requests are verified in api/auth.rs.)

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};

/// Static credentials to sign with.
#[derive(Clone)]
pub struct Keys {
    pub id: String,
    pub secret: String,
    pub token: Option<String>,
}

/// The headers to add to a `POST url` with this `X-Amz-Target` and body: `Authorization`,
/// `X-Amz-Date` (and the security token, with one). Signed now, over `host`, `content-type`,
/// `x-amz-target` and the body's hash.
pub fn signed_json_headers(
    keys: &Keys,
    region: &str,
    service: &str,
    url: &str,
    target: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    let host = reqwest::Url::parse(url).map_err(|e| e.to_string())?.authority().to_string();
    let headers = [("host", host.as_str()), ("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target)];
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
    let request = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(body))
        .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params).map_err(|e| e.to_string())?.into_parts();
    Ok(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}
